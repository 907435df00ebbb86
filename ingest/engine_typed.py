"""The typed fast path of ``ingest.engine``: each NDJSON line parsed once, by msgspec,
into typed fields, and a block's rows built column by column as Arrow arrays.

``normalise_lines(lines, first_number)`` returns the rows of the lines it vouches for
(``ROW_SCHEMA``, ``source_line`` included, in line order) and the numbers of the others,
which ``ingest.engine`` hands to the Python path of ``ingest.records``. The fast path
never rejects a line and never words a reason, so rows and rejects stay the Python
path's by construction; ``tests/ingest/test_engine_typed.py`` compares both on random
records.

A line is vouched for when msgspec reads it as a Logpush record of this shape (anything
else, blank lines included, goes to Python):

* ``Timestamp`` present and not null; every key a known Logpush field (a record with
  unknown keys needs ``extra``) and every ``Metrics`` key a known spelling, at most one
  spelling per value;
* text fields: JSON strings or null; booleans: true, false or null; status and step:
  32-bit JSON integers; token counts: JSON integers of at most 2**53 either way (so that
  input plus cache tokens cannot overflow); cost and duration: JSON numbers;
  categories: an array of strings or a string;
* ``Timestamp`` (integer, number or text), categories, ``Metadata`` and the bodies
  (any JSON value) are converted by the Python path's own functions, or for a block
  whose timestamps are all integers, or all RFC 3339 text with a zone, by Arrow with the
  same rules; a value they refuse (a bad timestamp, a number orjson cannot print) sends
  its line to Python.

Why the typed values are the ones orjson gives the Python path: both refuse the same
malformed JSON here (NaN, trailing commas, bad UTF-8, lone surrogates), read numbers to
the nearest double and keep the last of repeated keys. They differ on integers past 64
bits (orjson reads them as floats, msgspec as integers): integer fields are bounded, so
msgspec refuses them there, and in a JSON value orjson cannot print them back, which
sends the line to Python. msgspec's own depth limit (``RecursionError``) does the same.
Thread-safety: the decoders are read-only; a call holds the GIL.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated, Any, Final, Generic, TypeVar

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from msgspec import UNSET, Meta, Struct, UnsetType, field

from core import logpush
from ingest import fields as f
from ingest.fields import ANTHROPIC_CACHE_FIELDS, METRIC_FIELDS
from ingest.loader import ROW_SCHEMA
from ingest.records import InvalidRecord, record_key
from ingest.values import (  # the same conversions
    MAX_US,
    MICROS_FROM,
    MILLIS_FROM,
    NANOS_FROM,
    json_text,
    metadata_value,
    timestamp_us,
)
from ingest.values import names as category_names

__all__ = ["normalise_lines"]

I32 = Annotated[int, Meta(ge=-(2**31), lt=2**31)]
I64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]  # orjson reads these as integers too
Tokens = Annotated[int, Meta(ge=-(2**53), le=2**53)]
Names = list[str] | str | None


class Metrics(Struct, forbid_unknown_fields=True, gc=False):
    """``Metrics`` as aigw's gateway and Cloudflare spell it (other spellings: see
    ``Spellings``). Fields in the gateway's order: msgspec reads them faster so."""

    duration: float | None = field(default=None, name=logpush.METRIC_DURATION_MS)
    tokens_in: Tokens | None = field(default=None, name=logpush.METRIC_TOKENS_IN)
    tokens_out: Tokens | None = field(default=None, name=logpush.METRIC_TOKENS_OUT)
    cost: float | None = field(default=None, name=logpush.METRIC_COST)
    cache_read: Tokens | None = field(default=None, name=logpush.METRIC_CACHE_READ_TOKENS)
    cache_write: Tokens | None = field(default=None, name=logpush.METRIC_CACHE_WRITE_TOKENS)
    cache_write_1h: Tokens | None = field(default=None, name=logpush.METRIC_CACHE_WRITE_1H_TOKENS)


# Every spelling ``ingest.records`` knows inside ``Metrics``, unset when absent (a null
# spelling still counts: the Python path takes the last spelling present, and marks
# Anthropic's cache spellings as not included in the input count even when null).
_SLOT_TYPES: Final = {f.COST: float, f.DURATION: float}
_SPELLINGS: Final = {**METRIC_FIELDS, **ANTHROPIC_CACHE_FIELDS}
Spellings = msgspec.defstruct(
    "Spellings",
    [
        (key, _SLOT_TYPES.get(slot, Tokens) | None | UnsetType, UNSET)
        for key, slot in _SPELLINGS.items()
    ],
    forbid_unknown_fields=True,
    gc=False,
)
M = TypeVar("M")


class Record(Struct, Generic[M], forbid_unknown_fields=True, gc=False):
    """A Logpush record, each field typed as the module says; ``Record[Metrics]`` for the
    common case, ``Record[Spellings]`` for other ``Metrics`` spellings. Fields in the
    order the gateway and Cloudflare write them: msgspec reads them faster so."""

    ts: I64 | float | str = field(name=logpush.TIMESTAMP)
    gateway: str | None = field(default=None, name=logpush.GATEWAY)
    provider: str | None = field(default=None, name=logpush.PROVIDER)
    model: str | None = field(default=None, name=logpush.MODEL)
    requested_model: str | None = field(default=None, name=logpush.REQUESTED_MODEL)
    endpoint: str | None = field(default=None, name=logpush.ENDPOINT)
    status_code: I32 | None = field(default=None, name=logpush.STATUS_CODE)
    cached: bool | None = field(default=None, name=logpush.CACHED)
    rate_limited: bool | None = field(default=None, name=logpush.RATE_LIMITED)
    metrics: M | None = field(default=None, name=logpush.METRICS)
    metadata: Any = field(default=None, name=logpush.METADATA)
    routing_decision_id: str | None = field(default=None, name=logpush.ROUTING_DECISION_ID)
    routing_reason: str | None = field(default=None, name=logpush.ROUTING_REASON)
    request_body: Any = field(default=None, name=logpush.REQUEST_BODY)
    response_body: Any = field(default=None, name=logpush.RESPONSE_BODY)
    log_id: str | None = field(default=None, name=logpush.LOG_ID)
    event_id: str | None = field(default=None, name=logpush.EVENT_ID)
    route: str | None = field(default=None, name=logpush.ROUTE)
    api_key_id: str | None = field(default=None, name=logpush.API_KEY_ID)
    step: I32 | None = field(default=None, name=logpush.STEP)
    dlp_action: str | None = field(default=None, name=logpush.DLP_ACTION)
    dlp_categories: Names = field(default=None, name=logpush.DLP_CATEGORIES)
    guardrail_action: str | None = field(default=None, name=logpush.GUARDRAIL_ACTION)
    guardrail_categories: Names = field(default=None, name=logpush.GUARDRAIL_CATEGORIES)
    cache_key_hash: str | None = field(default=None, name=logpush.CACHE_KEY_HASH)
    prompt_prefix_hash: str | None = field(default=None, name=logpush.PROMPT_PREFIX_HASH)
    prompt_prefix_tokens: Tokens | None = field(default=None, name=logpush.PROMPT_PREFIX_TOKENS)


_RECORD: Final = msgspec.json.Decoder(Record[Metrics])
_SPELT: Final = msgspec.json.Decoder(Record[Spellings])  # type: ignore[valid-type]
_NOT_OURS: Final = (msgspec.DecodeError, RecursionError)  # msgspec's depth limit
_NO_METRICS: Final = Metrics()
_METRIC_ATTRS: Final = {
    f.COST: "cost",
    f.DURATION: "duration",
    f.TOK_IN: "tokens_in",
    f.TOK_OUT: "tokens_out",
    f.CACHE_READ: "cache_read",
    f.CACHE_WRITE: "cache_write",
    f.CACHE_WRITE_1H: "cache_write_1h",
}
# Columns copied as they are from the field of the same name.
_PLAIN: Final = (
    "gateway",
    "provider",
    "model",
    "requested_model",
    "endpoint",
    "cached",
    "rate_limited",
    "step",
    "event_id",
    "routing_decision_id",
    "routing_reason",
    "route",
    "api_key_id",
    "dlp_action",
    "guardrail_action",
    "cache_key_hash",
    "prompt_prefix_hash",
    "prompt_prefix_tokens",
)
_FROM_METRICS: Final = (
    ("duration_ms", "duration"),
    ("tokens_out", "tokens_out"),
    ("cost", "cost"),
    ("cache_write_1h_tokens", "cache_write_1h"),
)
_TYPES: Final = dict(zip(ROW_SCHEMA.names, ROW_SCHEMA.types, strict=True))


def normalise_lines(lines: list[bytes], first_number: int) -> tuple[pa.Table | None, list[int]]:
    """The rows (``ROW_SCHEMA``, in line order) of the lines of ``lines`` (numbered from
    ``first_number``) this path vouches for, and the numbers of the others (ascending)."""
    decoded = _decode(lines, first_number)
    try:
        values = _converted(decoded.records)
    except _REFUSED:  # a value the Python path refuses or cannot print: that line to Python
        decoded = decoded.only([_convertible(record) for record in decoded.records])
        values = _converted(decoded.records)
    if not decoded.records:
        return None, decoded.slow
    return _table(decoded, values), decoded.slow


class _Decoded:
    """The records a block decoded, with their metrics, line numbers and raw lines."""

    __slots__ = ("apart", "metrics", "numbers", "raws", "records", "slow")

    def __init__(self) -> None:
        self.records: list[Record[Any]] = []
        self.metrics: list[Metrics] = []
        self.numbers: list[int] = []
        self.raws: list[bytes] = []
        self.apart: set[int] = set()  # positions whose cache counts are apart (Anthropic's)
        self.slow: list[int] = []  # line numbers left to the Python path

    def only(self, keep: list[bool]) -> _Decoded:
        """These records where ``keep`` says so; the others' lines join ``slow``."""
        kept = _Decoded()
        for position, ok in enumerate(keep):
            if ok:
                if position in self.apart:
                    kept.apart.add(len(kept.records))
                kept.records.append(self.records[position])
                kept.metrics.append(self.metrics[position])
                kept.numbers.append(self.numbers[position])
                kept.raws.append(self.raws[position])
        dropped = (n for n, ok in zip(self.numbers, keep, strict=True) if not ok)
        kept.slow = sorted([*self.slow, *dropped])
        return kept


def _decode(lines: list[bytes], number: int) -> _Decoded:
    decoded = _Decoded()
    records, metrics, numbers, raws = (
        decoded.records,
        decoded.metrics,
        decoded.numbers,
        decoded.raws,
    )
    for line in lines:
        try:
            record: Record[Any] = _RECORD.decode(line)
            values = record.metrics or _NO_METRICS
        except _NOT_OURS:
            spelt = _spelt(line)
            if spelt is None:
                decoded.slow.append(number)
                number += 1
                continue
            record, values, apart = spelt
            if apart:
                decoded.apart.add(len(records))
        records.append(record)
        metrics.append(values)
        numbers.append(number)
        raws.append(line)
        number += 1
    return decoded


def _spelt(line: bytes) -> tuple[Record[Any], Metrics, bool] | None:
    """A record with other ``Metrics`` spellings, its metrics and whether its cache counts
    are apart from its input count; None when not vouched for."""
    try:
        record = _SPELT.decode(line)
    except _NOT_OURS:
        return None
    spellings = record.metrics
    if spellings is None:
        return record, _NO_METRICS, False
    values: dict[str, Any] = {}
    apart = False
    for key, slot in _SPELLINGS.items():
        value = getattr(spellings, key)
        if value is UNSET:
            continue
        name = _METRIC_ATTRS[slot]
        if name in values:  # two spellings of one value: their order decides (Python)
            return None
        values[name] = value
        apart = apart or key in ANTHROPIC_CACHE_FIELDS
    return record, Metrics(**values), apart


_REFUSED: Final = (InvalidRecord, orjson.JSONEncodeError)
_Converted = tuple[
    pa.Array | list[int], list[str | None], list[str | None], list[str | None], Any, Any
]


def _converted(records: list[Record[Any]]) -> _Converted:
    """The values the Python path's converters give: timestamps (microseconds), metadata
    and bodies as JSON text, category lists; raises what they raise."""
    return (
        _timestamps(records),
        [
            None
            if (v := r.metadata) is None
            else orjson.dumps(v).decode()  # json_text, inlined for the common case
            if type(v) is dict
            else json_text(metadata_value(v))
            for r in records
        ],
        [None if (v := r.request_body) is None else json_text(v) for r in records],
        [None if (v := r.response_body) is None else json_text(v) for r in records],
        [
            None if (v := r.dlp_categories) is None else category_names(v, "DLP categories")
            for r in records
        ],
        [
            None if (v := r.guardrail_categories) is None else category_names(v, "categories")
            for r in records
        ],
    )


def _timestamps(records: list[Record[Any]]) -> pa.Array | list[int]:
    """Microseconds since the epoch (UTC). Integers in every record (Logpush's default
    ``unixnano``, or unix, millis, micros) and RFC 3339 text with a zone in every record
    (aigw's gateway) are converted by Arrow in one go; anything else, or anything out of
    range, by the Python path's own function (which then says why)."""
    values = [r.ts for r in records]
    micros = _arrow_micros(values)
    return micros if micros is not None else [timestamp_us(value) for value in values]


def _arrow_micros(values: list[Any]) -> pa.Array | None:
    """The block's microseconds as Arrow gives them, or None when Arrow cannot vouch for
    every one (text and numbers mixed, numbers with a fraction, anything out of range)."""
    try:
        typed = pa.array(values)  # int64 when every one is an integer (I64 bounds them)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # text and numbers mixed
        return None
    if typed.type == pa.int64():
        return _integer_micros(typed)
    if typed.type == pa.string():
        return _text_micros(typed)
    return None  # numbers with a fraction among them


def _integer_micros(integers: pa.Array) -> pa.Array | None:
    """``timestamp_us`` of each integer, its unit told by its size as there; None when
    any is negative or out of range (the Python path words the reason)."""
    if not pc.all(pc.greater_equal(integers, 0)).as_py():
        return None  # every negative one is refused; positive division then truncates as //
    micros = pc.case_when(
        pc.make_struct(
            pc.greater_equal(integers, NANOS_FROM),
            pc.greater_equal(integers, MICROS_FROM),
            pc.greater_equal(integers, MILLIS_FROM),
        ),
        pc.divide(integers, 1000),
        integers,
        pc.multiply(integers, 1000),  # under MICROS_FROM: no overflow
        pc.multiply(integers, 1_000_000),  # under MILLIS_FROM: no overflow
    )
    return micros if pc.all(_in_range(micros)).as_py() else None


def _text_micros(text: pa.Array) -> pa.Array | None:
    """RFC 3339 text with a zone, parsed by Arrow; None when any is not of that form,
    names a date that does not exist (Python refuses it too) or is out of range."""
    if not pc.all(pc.match_substring_regex(text, _RFC3339)).as_py():
        return None
    try:
        micros = text.cast(_TYPES["ts_us"]).cast(pa.int64())
    except pa.ArrowInvalid:
        return None
    return micros if pc.all(_in_range(micros)).as_py() else None


# Text both Arrow and ``datetime.fromisoformat`` read the same way (Arrow refuses days a
# month does not have, as Python does); a year before 1970 is out of range for both.
_RFC3339: Final = (
    r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?"
    r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)


def _in_range(micros: pa.Array) -> pa.Array:
    return pc.and_(pc.greater_equal(micros, 0), pc.less(micros, MAX_US))


def _convertible(record: Record[Any]) -> bool:
    try:
        _converted([record])
    except _REFUSED:
        return False
    return True


def _table(decoded: _Decoded, values: _Converted) -> pa.Table:
    records, metrics = decoded.records, decoded.metrics
    count = len(records)
    ts, metadata, request_body, response_body, dlp, guardrail = values
    ids = [r.log_id for r in records]
    if None in ids:  # Cloudflare's records carry no id: the hash of the line
        pairs = zip(ids, decoded.raws, strict=True)
        ids = [i if i is not None else record_key(raw) for i, raw in pairs]
    columns: dict[str, pa.Array] = {
        "log_id": pa.array(ids, pa.string()),
        "ts_us": (ts if isinstance(ts, pa.Array) else pa.array(ts, pa.int64())).cast(
            _TYPES["ts_us"]
        ),
        "metadata": pa.array(metadata, pa.string()),
        "request_body": pa.array(request_body, pa.string()),
        "response_body": pa.array(response_body, pa.string()),
        "dlp_categories": pa.array(dlp, _TYPES["dlp_categories"]),
        "guardrail_categories": pa.array(guardrail, _TYPES["guardrail_categories"]),
        "log_format": pa.repeat(pa.scalar("logpush"), count),
        "source_line": pa.array(decoded.numbers, pa.int32()),
    }
    for name in _PLAIN:
        columns[name] = pa.array(list(map(attrgetter(name), records)), _TYPES[name])
    for name, attr in _FROM_METRICS:
        columns[name] = pa.array(list(map(attrgetter(attr), metrics)), _TYPES[name])
    status = pa.array([r.status_code for r in records], pa.int32())
    columns["status_code"] = status
    columns["success"] = pc.and_(pc.greater_equal(status, 200), pc.less(status, 400))
    columns.update(_tokens(metrics, decoded.apart))
    for name in ROW_SCHEMA.names:
        if name not in columns:  # REST-only fields, extra, decrypt_error: none here
            columns[name] = pa.nulls(count, _TYPES[name])
    return pa.Table.from_arrays([columns[name] for name in ROW_SCHEMA.names], schema=ROW_SCHEMA)


def _tokens(metrics: list[Metrics], apart: set[int]) -> dict[str, pa.Array]:
    """Input, cache-read and cache-write tokens, with ``ingest.records``' rule: cache
    counts are added to the input count when reported apart or larger than it."""
    tokens_in = pa.array([m.tokens_in for m in metrics], pa.int64())
    read = pa.array([m.cache_read for m in metrics], pa.int64())
    write = pa.array([m.cache_write for m in metrics], pa.int64())
    cache = pc.or_(pc.is_valid(read), pc.is_valid(write))
    if pc.any(cache).as_py():
        total = pc.add(pc.fill_null(read, 0), pc.fill_null(write, 0))
        grow = pc.fill_null(pc.less(tokens_in, total), False)
        if apart:
            flags = pa.array([position in apart for position in range(len(metrics))])
            grow = pc.or_(grow, pc.and_(flags, pc.is_valid(tokens_in)))
        grown = pc.if_else(grow, pc.add(tokens_in, total), tokens_in)
        tokens_in = pc.if_else(pc.and_(cache, pc.is_null(tokens_in)), total, grown)
    return {"tokens_in": tokens_in, "cache_read_tokens": read, "cache_write_tokens": write}
