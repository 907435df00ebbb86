"""Normalise one parsed log record (Logpush or REST shape) into a warehouse row.

Contract: ``normalize(record, raw)`` returns a tuple in ``ROW_FIELDS`` order or
raises ``InvalidRecord`` with a one-line reason. It never drops a field: keys it
does not know (top level and inside ``Metrics``) go into ``extra``; of a key a REST
record repeats, the first value is kept and the key named in ``duplicate_keys``.

Token convention (the warehouse's): ``tokens_in`` counts every input token,
cache reads and writes included. Sources that report cache tokens apart from
input tokens (Anthropic's ``cache_read_input_tokens`` /
``cache_creation_input_tokens``) get them added; so does any record whose input
count is smaller than its cache counts, which cannot be an inclusive count.
``cache_write_tokens`` counts every cache write; ``cache_write_1h_tokens`` those of
them with a 1-hour TTL, as reported (``cacheWrite1hTokens``, or Anthropic's
``cache_creation.ephemeral_1h_input_tokens`` in a decrypted response body).
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from core.schema import RECORD_FIELDS
from ingest import fields as _f
from ingest.decrypt import Decryptor, is_encrypted
from ingest.errors import DecryptError, InvalidRecord
from ingest.fields import (
    ANTHROPIC_CACHE_FIELDS as _ANTHROPIC_CACHE_FIELDS,
)
from ingest.fields import (
    CACHE_KEY_HASH as _CACHE_KEY_HASH,
)
from ingest.fields import (
    CACHE_READ as _CACHE_READ,
)
from ingest.fields import (
    CACHE_WRITE as _CACHE_WRITE,
)
from ingest.fields import (
    CACHED as _CACHED,
)
from ingest.fields import (
    COST as _COST,
)
from ingest.fields import (
    DLP_ACTION as _DLP_ACTION,
)
from ingest.fields import (
    DLP_CATEGORIES as _DLP_CATEGORIES,
)
from ingest.fields import (
    DURATION as _DURATION,
)
from ingest.fields import (
    ENDPOINT as _ENDPOINT,
)
from ingest.fields import (
    EVENT_ID as _EVENT_ID,
)
from ingest.fields import (
    GATEWAY as _GATEWAY,
)
from ingest.fields import (
    GUARDRAIL_ACTION as _GUARDRAIL_ACTION,
)
from ingest.fields import (
    GUARDRAIL_CATEGORIES as _GUARDRAIL_CATEGORIES,
)
from ingest.fields import (
    ID as _ID,
)
from ingest.fields import (
    LOGPUSH_FIELDS as _LOGPUSH_FIELDS,
)
from ingest.fields import (
    METADATA as _METADATA,
)
from ingest.fields import (
    METRIC_FIELDS as _METRIC_FIELDS,
)
from ingest.fields import (
    METRICS as _METRICS,
)
from ingest.fields import (
    MODEL as _MODEL,
)
from ingest.fields import (
    NSLOTS as _NSLOTS,
)
from ingest.fields import (
    PROVIDER as _PROVIDER,
)
from ingest.fields import (
    RATE_LIMITED as _RATE_LIMITED,
)
from ingest.fields import (
    REQUEST_BODY as _REQUEST_BODY,
)
from ingest.fields import (
    REQUESTED_MODEL as _REQUESTED_MODEL,
)
from ingest.fields import (
    RESPONSE_BODY as _RESPONSE_BODY,
)
from ingest.fields import (
    REST_FIELDS as _REST_FIELDS,
)
from ingest.fields import (
    ROUTE as _ROUTE,
)
from ingest.fields import (
    ROUTING_ID as _ROUTING_ID,
)
from ingest.fields import (
    ROUTING_REASON as _ROUTING_REASON,
)
from ingest.fields import (
    STATUS as _STATUS,
)
from ingest.fields import (
    STEP as _STEP,
)
from ingest.fields import (
    SUCCESS as _SUCCESS,
)
from ingest.fields import (
    TOK_IN as _TOK_IN,
)
from ingest.fields import (
    TOK_OUT as _TOK_OUT,
)
from ingest.fields import (
    TS as _TS,
)
from ingest.rest import endpoint_of, first_wins

__all__ = ["ROW_FIELDS", "InvalidRecord", "normalize", "record_key"]

# Order of the tuple ``normalize`` returns (the ``requests`` columns a record gives, from
# ``core.schema``); the loader adds source_file, source_line and ingested_at.
ROW_FIELDS: Final = RECORD_FIELDS


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_US: Final = 9_000_000_000_000_000  # ~ year 2255; keeps int64 nanoseconds valid


def record_key(raw: bytes) -> str:
    """Stable id of a record that carries none: SHA-256 of its raw bytes, 128 bits in hex.

    A cryptographic hash, so that nobody can craft a record that hides another one
    (measured faster than BLAKE2 here: the CPU has SHA instructions).
    """
    return hashlib.sha256(raw.strip()).hexdigest()[:32]


def normalize(record: object, raw: bytes, decryptor: Decryptor | None = None) -> tuple[Any, ...]:
    """Map one parsed record to a row in ``ROW_FIELDS`` order; raise ``InvalidRecord``.

    With a ``decryptor``, encrypted ``Metadata`` and bodies are opened: metadata is
    stored decrypted, token usage missing from ``Metrics`` is taken from the
    decrypted response body, and decrypted bodies are not stored. A field that
    does not open is kept encrypted and ``decrypt_error`` says why (the record is
    still loaded).
    """
    if not isinstance(record, dict):
        raise InvalidRecord(f"not a JSON object but {_json_kind(record)}")
    slots: list[Any] = [None] * _NSLOTS
    extra: dict[str, Any] = {}
    if "Timestamp" in record or (
        _LOGPUSH_FIELDS.keys() & record.keys() and not _REST_FIELDS.keys() & record.keys()
    ):
        log_format = "logpush"
        _collect(record, _LOGPUSH_FIELDS, slots, extra)
        metrics = slots[_METRICS]
        if metrics is not None:
            if not isinstance(metrics, dict):
                raise InvalidRecord(f"Metrics is not an object but {_json_kind(metrics)}")
            unknown: dict[str, Any] = {}
            _collect(metrics, _METRIC_FIELDS, slots, unknown)
            if unknown:
                extra["Metrics"] = unknown
        if slots[_TS] is None:
            raise InvalidRecord("missing Timestamp")
    elif _REST_FIELDS.keys() & record.keys():
        log_format = "rest"
        record, repeated = first_wins(record, raw)
        _collect(record, _REST_FIELDS, slots, extra)
        if slots[_TS] is None:
            raise InvalidRecord("missing created_at")
    else:
        raise InvalidRecord("unrecognised record: neither Logpush nor REST log fields")
    decrypt_error = _decrypt(slots, decryptor) if decryptor is not None else None
    row = _row(slots, extra, log_format, raw, decrypt_error)
    write_1h = _integer(slots[_f.CACHE_WRITE_1H], "1-hour cache-write tokens")
    prefix = (
        _text(slots[_f.PROMPT_PREFIX_HASH], "prompt prefix hash"),
        _integer(slots[_f.PROMPT_PREFIX_TOKENS], "prompt prefix tokens"),
    )
    return (*row, repeated if log_format == "rest" else None, write_1h, *prefix)


def _collect(
    source: dict[str, Any], fields: dict[str, int], slots: list[Any], extra: dict[str, Any]
) -> None:
    """Put each known value in its slot, metric spellings included; the rest in ``extra``."""
    for key, value in source.items():
        slot = fields.get(key)
        if slot is None:
            slot = _METRIC_FIELDS.get(key)
            if slot is None:
                slot = _ANTHROPIC_CACHE_FIELDS.get(key)
                if slot is None:
                    extra[key] = value
                    continue
                slots[_f.CACHE_APART] = True
        slots[slot] = value


def _decrypt(slots: list[Any], decryptor: Decryptor) -> str | None:
    """Open the encrypted fields in place; return the first failure's reason, if any."""
    error = None
    for slot in (_METADATA, _REQUEST_BODY, _RESPONSE_BODY):
        if not is_encrypted(slots[slot]):
            continue
        try:
            value = decryptor.open(slots[slot])
        except DecryptError as err:
            error = error or f"{_FIELD_NAMES[slot]}: {err}"
            continue
        if slot == _RESPONSE_BODY:
            _usage_from_body(slots, value)
        slots[slot] = value if slot == _METADATA else None  # bodies: extracted, not kept
    return error


_FIELD_NAMES: Final = {
    _METADATA: "Metadata",
    _REQUEST_BODY: "RequestBody",
    _RESPONSE_BODY: "ResponseBody",
}


def _usage_from_body(slots: list[Any], body: Any) -> None:
    """Token counts from an OpenAI, Anthropic, Google or Workers AI response, where
    ``Metrics`` had none (the same spellings as ``Metrics``, plus Google's)."""
    if not isinstance(body, dict) or slots[_TOK_IN] is not None or slots[_TOK_OUT] is not None:
        return
    result = body.get("result")
    usage = body.get("usage") or (result.get("usage") if isinstance(result, dict) else None)
    if isinstance(usage, dict):
        found: dict[str, Any] = {}
        _collect(usage, _METRIC_FIELDS, slots, found)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and details.get("cached_tokens") is not None:
            slots[_CACHE_READ] = details["cached_tokens"]
        creation = usage.get("cache_creation")  # Anthropic: the writes by TTL
        if isinstance(creation, dict):
            slots[_f.CACHE_WRITE_1H] = creation.get("ephemeral_1h_input_tokens")
        return
    google = body.get("usageMetadata")
    if isinstance(google, dict):
        slots[_TOK_IN] = google.get("promptTokenCount")
        slots[_TOK_OUT] = google.get("candidatesTokenCount")
        if google.get("cachedContentTokenCount") is not None:
            slots[_CACHE_READ] = google["cachedContentTokenCount"]


def _row(
    slots: list[Any],
    extra: dict[str, Any],
    log_format: str,
    raw: bytes,
    decrypt_error: str | None,
) -> tuple[Any, ...]:
    status = _integer(slots[_STATUS], "status code")
    success = _boolean(slots[_SUCCESS], "success")
    if success is None and status is not None:
        success = 200 <= status < 400
    tokens_in = _integer(slots[_TOK_IN], "input tokens")
    cache_read = _integer(slots[_CACHE_READ], "cache-read tokens")
    cache_write = _integer(slots[_CACHE_WRITE], "cache-write tokens")
    if cache_read is not None or cache_write is not None:
        cache_total = (cache_read or 0) + (cache_write or 0)
        if tokens_in is None:
            tokens_in = cache_total
        elif slots[_f.CACHE_APART] or tokens_in < cache_total:
            tokens_in += cache_total
        if not -_MAX_STORED <= tokens_in < _MAX_STORED:  # three counts near 2**62 each
            raise InvalidRecord(f"input tokens with cache tokens out of range: {tokens_in}")
    log_id = slots[_ID]
    if log_id is None:
        log_id = record_key(raw)
    elif not isinstance(log_id, str):
        log_id = _text(log_id, "id")
    return (
        log_id,
        _timestamp_us(slots[_TS]),
        _text(slots[_GATEWAY], "gateway"),
        _text(slots[_PROVIDER], "provider"),
        _text(slots[_MODEL], "model"),
        _text(slots[_REQUESTED_MODEL], "requested model"),
        _endpoint(slots, log_format),
        status,
        success,
        _boolean(slots[_CACHED], "cached"),
        _boolean(slots[_RATE_LIMITED], "rate limited"),
        _number(slots[_DURATION], "duration"),
        tokens_in,
        _integer(slots[_TOK_OUT], "output tokens"),
        cache_read,
        cache_write,
        _number(slots[_COST], "cost"),
        _integer(slots[_STEP], "step"),
        _text(slots[_EVENT_ID], "event id"),
        _text(slots[_ROUTING_ID], "routing decision id"),
        _text(slots[_ROUTING_REASON], "routing reason"),
        _json_text(_metadata(slots[_METADATA]), "metadata"),
        _json_text(slots[_REQUEST_BODY], "request body"),
        _json_text(slots[_RESPONSE_BODY], "response body"),
        _json_text(extra, "unknown fields") if extra else None,
        log_format,
        decrypt_error,
        _text(slots[_ROUTE], "route"),
        _text(slots[_f.API_KEY_ID], "api key id"),
        _text(slots[_DLP_ACTION], "DLP action"),
        _names(slots[_DLP_CATEGORIES], "DLP categories"),
        _text(slots[_GUARDRAIL_ACTION], "guardrail action"),
        _names(slots[_GUARDRAIL_CATEGORIES], "guardrail categories"),
        _text(slots[_CACHE_KEY_HASH], "cache key hash"),
        _boolean(slots[_f.CUSTOM_COST], "custom cost"),
        _text(slots[_f.MODEL_TYPE], "model type"),
        _text(slots[_f.REQUEST_TYPE], "request type"),
        _text(slots[_f.REQUEST_CONTENT_TYPE], "request content type"),
        _text(slots[_f.RESPONSE_CONTENT_TYPE], "response content type"),
    )


def _endpoint(slots: list[Any], log_format: str) -> str | None:
    """The logged endpoint; for a REST record without one, what its request type names."""
    endpoint = _text(slots[_ENDPOINT], "endpoint")
    if endpoint is None and log_format == "rest":
        return endpoint_of(_text(slots[_f.REQUEST_TYPE], "request type"))
    return endpoint


def _timestamp_us(value: Any) -> int:
    """Microseconds since the epoch (UTC) from unixnano, unix, millis or RFC 3339."""
    kind = type(value)
    if kind is str:
        text = value.strip()
        if text.isascii() and text.isdigit():
            if len(text) > _MAX_DIGITS:  # Python refuses to read past 4,300 digits
                raise InvalidRecord(f"bad timestamp {_show(value)}")
            return _timestamp_us(int(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRecord(f"bad timestamp {_show(value)}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        micros = (parsed - _EPOCH) // _ONE_US
    elif kind is int:
        magnitude = abs(value)
        if magnitude >= 10**17:
            micros = value // 1000
        elif magnitude >= 10**14:
            micros = value
        elif magnitude >= 10**11:
            micros = value * 1000
        else:
            micros = value * 1_000_000
    elif kind is float:
        return _timestamp_us(round(value * 1_000_000) if abs(value) < 10**11 else int(value))
    else:
        raise InvalidRecord(f"bad timestamp {_show(value)}")
    if not 0 <= micros < _MAX_US:
        raise InvalidRecord(f"timestamp out of range {_show(value)}")
    return int(micros)


_ONE_US: Final = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


# Integers past these cannot be stored (BIGINT; INTEGER for status and step); token
# counts stay under 2**62 so that input plus cache tokens still fit.
_MAX_COUNT: Final = 2**62
_MAX_STORED: Final = 2**63  # BIGINT
_MAX_DIGITS: Final = 40  # digits of a timestamp given as text (a real one has at most 19)
_MAX_SMALL: Final = 2**31
_SMALL_INTEGERS: Final = frozenset({"status code", "step"})


def _integer(value: Any, name: str) -> int | None:
    kind = type(value)
    if value is None:
        return None
    number: int | None = None
    if kind is int:
        number = value
    elif kind is float and value.is_integer():
        number = int(value)
    elif kind is str:
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None:
        raise InvalidRecord(f"{name} is not an integer: {_show(value)}")
    limit = _MAX_SMALL if name in _SMALL_INTEGERS else _MAX_COUNT
    if not -limit <= number < limit:
        raise InvalidRecord(f"{name} out of range: {_show(value)}")
    return number


def _number(value: Any, name: str) -> float | None:
    kind = type(value)
    if kind is float or value is None:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if kind is str:
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise InvalidRecord(f"{name} is not a number: {_show(value)}")


# True and False also match 1 and 0 (equal keys), which some writers use for booleans.
_TRUE: Final = {True: True, False: False, "true": True, "false": False}


def _boolean(value: Any, name: str) -> bool | None:
    if value is None:
        return None
    try:
        return _TRUE[value.lower() if type(value) is str else value]
    except (KeyError, TypeError):
        raise InvalidRecord(f"{name} is not a boolean: {_show(value)}") from None


def _text(value: Any, name: str) -> str | None:
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is float or kind is bool:
        return str(value)
    raise InvalidRecord(f"{name} is not a string: {_show(value)}")


def _names(value: Any, name: str) -> list[str] | None:
    """A list of category names; a comma-separated string is accepted too."""
    if value is None:
        return None
    if type(value) is str:
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(type(item) is str for item in value):
        return value
    raise InvalidRecord(f"{name} is not a list of names: {_show(value)}")


def _metadata(value: Any) -> Any:
    """Metadata as an object where it is JSON text (REST); other values as they are."""
    if type(value) is str and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _json_text(value: Any, name: str = "a JSON value") -> str | None:
    """``value`` as JSON text; ``InvalidRecord`` when it cannot be written back (nested
    deeper than orjson writes, 255 levels, though it parsed)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InvalidRecord(f"{name} cannot be stored as JSON: {reason}") from None


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return (
        "a number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else "a boolean"
    )


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for a reject reason."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
