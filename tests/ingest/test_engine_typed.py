"""The typed fast path (msgspec) gives exactly the Python path's rows, rejects and repeats."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import logpush
from ingest import IngestSettings, run_ingest
from ingest import fields as f
from ingest.engine_typed import Metrics, Record, Spellings, normalise_lines
from ingest.fields import ANTHROPIC_CACHE_FIELDS, LOGPUSH_FIELDS, METRIC_FIELDS, REST_FIELDS
from ingest.values import MAX_US, MICROS_FROM, MILLIS_FROM, NANOS_FROM
from sim.synthetic import TrafficShape, synthetic_records, write_logpush_files
from tests.conftest import logpush_record, write_ndjson
from tests.ingest import parity
from tests.ingest.parity import Outcome, assert_same


def both_paths(data: bytes) -> tuple[Outcome, Outcome]:
    """(Python path, typed path) outcomes of one object's bytes."""
    return parity.both_paths(data)


def slow_lines(lines: list[bytes]) -> list[int]:
    """The numbers of the lines the typed path leaves to Python."""
    return normalise_lines(lines, 1)[1]


def test_the_typed_fields_are_the_python_paths_known_keys() -> None:
    """Every key the typed path reads is one ``ingest.records`` knows, so no line whose
    keys belong in ``extra`` can take it."""
    top = {field.encode_name for field in msgspec.structs.fields(Record)}
    assert top == LOGPUSH_FIELDS.keys()
    metrics = {field.encode_name for field in msgspec.structs.fields(Metrics)}
    assert metrics == {
        logpush.METRIC_COST,
        logpush.METRIC_DURATION_MS,
        logpush.METRIC_TOKENS_IN,
        logpush.METRIC_TOKENS_OUT,
        logpush.METRIC_CACHE_READ_TOKENS,
        logpush.METRIC_CACHE_WRITE_TOKENS,
        logpush.METRIC_CACHE_WRITE_1H_TOKENS,
    }
    assert metrics <= METRIC_FIELDS.keys()
    spellings = {field.encode_name for field in msgspec.structs.fields(Spellings)}
    assert spellings == METRIC_FIELDS.keys() | ANTHROPIC_CACHE_FIELDS.keys()


def test_common_logpush_shapes_take_the_typed_path() -> None:
    """Cloudflare's fields, aigw's extension fields, every timestamp format, other token
    spellings and categories are normalised by the typed path, not left to Python."""
    records = [
        logpush_record(),
        logpush_record(Timestamp="2026-04-18T00:00:00.123456Z"),
        logpush_record(Timestamp="2026-04-17T19:00:00-05:00"),
        logpush_record(Timestamp=1_776_470_400),
        logpush_record(Timestamp=1_776_470_400.25),
        logpush_record(Timestamp="1776470400123456000"),
        logpush_record(Metrics={"input_tokens": 100, "cache_read_input_tokens": 900}),
        logpush_record(Metrics={"tokensIn": 100, "cacheWriteTokens": 50, "cacheWrite1hTokens": 30}),
        logpush_record(Metrics={"tokensIn": 100, "cacheReadTokens": 900}),
        logpush_record(Metrics={"cacheReadTokens": 900}),
        logpush_record(Metrics=None, Metadata=None),
        logpush_record(LogId="a", Step=1, DlpCategories=["EMAIL"], GuardrailCategories="x, y"),
        logpush_record(PromptPrefixHash="5e1d", PromptPrefixTokens=5000),
        logpush_record(Metadata='{"team":"x"}', RequestBody={"type": "encrypted", "data": "Zm9v"}),
        logpush_record(Metadata={"n": [1, 2.5, {"deep": None}]}, ResponseBody="plain"),
    ]
    lines = [orjson.dumps(record) for record in records]
    # numbers past 64 bits in number fields: both read them as the nearest double
    lines.append(b'{"Timestamp":1776470400,"Metrics":{"cost":18446744073709552617}}')
    lines.append(b'{"Timestamp":1776470400,"Metrics":{"durationMs":-9223372036854775809}}')
    assert slow_lines(lines) == []
    python, typed = both_paths(b"\n".join(lines))
    assert_same(typed, python)
    tokens_in = [row["tokens_in"] for row in typed[0][6:10]]
    assert tokens_in == [1000, 100, 1000, 900]


def test_synthetic_objects_take_the_typed_path_whole() -> None:
    """Both benchmark profiles (gateway fields; encrypted bodies): every line typed, and
    the same rows as the Python path."""
    for shape in (TrafficShape(encrypted_bodies=False, gateway_fields=True), TrafficShape()):
        lines = [orjson.dumps(r) for r in islice(synthetic_records(300, seed=5, shape=shape), 300)]
        assert slow_lines(lines) == []
        python, typed = both_paths(b"\n".join(lines))
        assert_same(typed, python)
        assert len(typed[0]) == 300


def test_gzip_objects_with_a_second_member_give_the_python_paths_batches(tmp_path: Path) -> None:
    """Whole objects as ``aigw ingest`` reads them (gzip, several blocks, a second gzip
    member with a bad line and a record): the same rows, rejects and counts."""
    shape = TrafficShape(encrypted_bodies=False, gateway_fields=True)
    paths = write_logpush_files(
        tmp_path, synthetic_records(5_000, seed=3, shape=shape), per_file=2_500
    )
    with paths[1].open("ab") as extra:
        extra.write(gzip.compress(b"not json\n" + orjson.dumps(logpush_record(LogId="r"))))
    outcomes = [both_paths(path.read_bytes()) for path in paths]
    assert [typed for _, typed in outcomes] == [python for python, _ in outcomes]
    assert [(len(rows), len(rejects)) for rows, rejects, _ in (o[1] for o in outcomes)] == [
        (2_500, 0),
        (2_501, 1),
    ]


def test_lines_the_typed_path_cannot_vouch_for_get_the_python_reasons() -> None:
    """Bad JSON, NaN, trailing commas, bad values, unknown keys, REST records, integers
    past 64 bits and two spellings of one count go to Python: the same rows and reasons."""
    lines = [
        b'{"Timestamp": NaN}',
        b'{"Timestamp": 1776470400,}',
        b"not json",
        b"",
        b'{"Timestamp": 1776470400, "Timestamp": "yesterday"}',
        orjson.dumps(logpush_record(StatusCode="abc")),
        orjson.dumps(logpush_record(Metrics=[1, 2])),
        orjson.dumps(logpush_record(Cached="maybe")),
        b"   ",
        orjson.dumps({"foo": 1}),
        orjson.dumps(logpush_record(Other=1)),  # loaded, with extra
        orjson.dumps({"id": "r1", "created_at": "2026-04-18T00:00:00Z", "cost": 0.5}),
        b'{"Timestamp": 1776470400, "Metadata": {"n": 18446744073709551616}}',
        orjson.dumps(logpush_record(Metrics={"tokensIn": 1, "input_tokens": 2})),
        orjson.dumps(logpush_record(Timestamp=-5)),
        orjson.dumps(logpush_record(StatusCode=200.0, Gateway=7)),  # loaded: Python converts
        b'{"Timestamp": 18446744073709552616}',  # orjson reads a float
    ]
    assert slow_lines(lines) == list(range(1, 18))
    python, typed = both_paths(b"\n".join(lines))
    assert_same(typed, python)
    assert [reject["line_number"] for reject in python[1]] == [1, 2, 3, 5, 6, 7, 8, 10, 15, 17]
    assert [row["source_line"] for row in python[0]] == [11, 12, 13, 14, 16]


def test_repeats_across_both_paths_keep_the_first_line() -> None:
    """A Python-path line and a later typed line with the same LogId: the first stays."""
    first = orjson.dumps(logpush_record(LogId="same", Model="first", Other=1))
    second = orjson.dumps(logpush_record(LogId="same", Model="second"))
    python, typed = both_paths(b"\n".join([first, b"{bad", second]))
    assert_same(typed, python)
    assert [row["model"] for row in typed[0]] == ["first"]
    assert typed[2] == 1


_KEYS = [*LOGPUSH_FIELDS, *METRIC_FIELDS, *ANTHROPIC_CACHE_FIELDS, *REST_FIELDS, "Other"]
_METRIC_KEYS = [*METRIC_FIELDS, *ANTHROPIC_CACHE_FIELDS, "ttfbMs"]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**65),
    st.sampled_from([0, 1, 200, 429, 2**31, 2**53, 2**53 + 1, -(2**63) - 1, 2**64]),
    st.sampled_from([1_776_470_400, 1_776_470_400_123, 1_776_470_400_123_456]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, 12.0, 1e-7, 1e16, 1e22, 1_776_470_400.5, 0.0015, -0.0]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "2026-04-18T00:00:00Z",
            "2026-04-18T00:00:00.5+02:00",
            "2026-04-18T00:00:00.1234567Z",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-04-18T24:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-04-18T00:00:00.5-00:00",
            "2026-04-18T00:00:00.123+23:59",
            "2026-04-18 00:00:00",
            "1969-12-31T23:59:59Z",
            "1776470400",
            " 12 ",
            "a, b,,c",
            "true",
            '{"team":"x"}',
            '{"a":1e400}',
            "[1, 2]",
        ]
    ),
)
_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.sampled_from(["team", "user", "type", "data"]), _scalars, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.lists(_scalars, max_size=2), max_size=2),
)


def _iso(when: datetime) -> str:
    return when.isoformat() + "Z"


_rare = st.one_of(_scalars, _values)  # anything: mostly refused or converted by Python


def _usually(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Values the typed path takes; one time in 20 null, one in 40 any value."""
    return st.integers(0, 39).flatmap(
        lambda k: _rare if k == 0 else st.none() if k in {1, 2} else good
    )


_text = _usually(st.text(max_size=8))
_count = _usually(st.integers(min_value=-(2**54), max_value=2**54))
_names = _usually(st.one_of(st.lists(st.text(max_size=5), max_size=3), st.text(max_size=8)))
_json = st.one_of(_values, st.text(max_size=8).map(orjson.dumps).map(bytes.decode))
_typed_fields = {
    **dict.fromkeys(
        (
            logpush.GATEWAY,
            logpush.PROVIDER,
            logpush.MODEL,
            logpush.REQUESTED_MODEL,
            logpush.ENDPOINT,
            logpush.ROUTING_DECISION_ID,
            logpush.ROUTING_REASON,
            logpush.EVENT_ID,
            logpush.ROUTE,
            logpush.API_KEY_ID,
            logpush.DLP_ACTION,
            logpush.GUARDRAIL_ACTION,
            logpush.CACHE_KEY_HASH,
            logpush.PROMPT_PREFIX_HASH,
        ),
        _text,
    ),
    logpush.TIMESTAMP: _usually(
        st.one_of(
            st.integers(min_value=0, max_value=2**62),
            st.floats(min_value=0, max_value=2e9),
            st.datetimes(datetime(1970, 1, 2), datetime(2200, 1, 1)).map(_iso),
            st.sampled_from(["2026-04-18T00:00:00.5+02:00", "1776470400", " 12 "]),
        )
    ),
    logpush.STATUS_CODE: _usually(st.integers(min_value=-(2**31) - 1, max_value=2**31)),
    logpush.STEP: _usually(st.integers(min_value=-2, max_value=3)),
    logpush.CACHED: _usually(st.booleans()),
    logpush.RATE_LIMITED: _usually(st.booleans()),
    logpush.PROMPT_PREFIX_TOKENS: _count,
    logpush.DLP_CATEGORIES: _names,
    logpush.GUARDRAIL_CATEGORIES: _names,
    logpush.METADATA: _json,
    logpush.REQUEST_BODY: _json,
    logpush.RESPONSE_BODY: _json,
}
_metric_values = {
    key: _usually(st.floats(allow_nan=False, allow_infinity=False))
    if slot in {f.COST, f.DURATION}
    else _count
    for key, slot in {**METRIC_FIELDS, **ANTHROPIC_CACHE_FIELDS}.items()
}
_metric_objects = st.one_of(
    st.fixed_dictionaries({}, optional=dict.fromkeys(("tokensIn", "tokensOut"), _count)),
    st.fixed_dictionaries(
        {},
        optional={
            logpush.METRIC_COST: _metric_values["cost"],
            logpush.METRIC_DURATION_MS: _metric_values["durationMs"],
            logpush.METRIC_TOKENS_IN: _count,
            logpush.METRIC_TOKENS_OUT: _count,
            logpush.METRIC_CACHE_READ_TOKENS: _count,
            logpush.METRIC_CACHE_WRITE_TOKENS: _count,
            logpush.METRIC_CACHE_WRITE_1H_TOKENS: _count,
        },
    ),
    st.dictionaries(st.sampled_from(list(_metric_values)), _count, max_size=3),
    st.dictionaries(st.sampled_from(_METRIC_KEYS), _rare, max_size=3),
)
_metrics = st.integers(0, 9).flatmap(lambda k: _rare if k == 0 else _metric_objects)
_records = st.builds(
    lambda log_id, fields, noise, metrics, drop: {
        key: value
        for key, value in {
            **logpush_record(LogId=log_id),
            **fields,
            **noise,
            "Metrics": metrics,
        }.items()
        if key not in drop
    },
    st.one_of(st.sampled_from(["a", "b"]), st.text(min_size=3, max_size=6)),
    st.fixed_dictionaries({}, optional=_typed_fields),
    st.one_of(
        st.just({}), st.just({}), st.dictionaries(st.sampled_from(_KEYS), _values, max_size=2)
    ),
    _metrics,
    st.sets(
        st.sampled_from(["Timestamp", "LogId", "Metrics", "Metadata", "StatusCode"]), max_size=1
    ),
)


def _line(record: dict[str, Any], style: int) -> bytes:
    # the standard library's json prints integers past 64 bits (orjson refuses them); style
    # 4 escapes non-ASCII text as \\u sequences
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=style == 4).encode()
    if style == 1:
        return text.replace(b",", b", ").replace(b":", b": ")
    if style == 2 and len(text) > 2:  # a repeated key
        return text[:-1] + b',"' + logpush.GATEWAY.encode() + b'":"again"}'
    if style == 3:
        return text[: len(text) // 2]
    return text


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(_records, st.sampled_from([0, 0, 0, 0, 1, 2, 3, 4])), max_size=12))
def test_typed_and_python_paths_agree_on_random_records(lines: list[tuple[Any, int]]) -> None:
    """Random valid and broken records: same rows, same rejects and reasons, same repeats."""
    data = b"\n".join(_line(record, style) for record, style in lines)
    python, typed = both_paths(data)
    assert_same(typed, python)


@pytest.mark.parametrize("size", [1, 3])
def test_blank_lines_and_repeats_keep_line_numbers(size: int) -> None:
    """Blank lines keep every line's number; repeats are counted once each."""
    lines = [
        orjson.dumps(logpush_record(LogId=f"id-{i % 4}", StatusCode=200 + i)) for i in range(8)
    ]
    data = (b"\n\n".join(lines) + b"\n") * size
    python, typed = both_paths(data)
    assert_same(typed, python)
    assert len(typed[0]) == 4
    assert typed[2] == 8 * size - 4


_zones = st.sampled_from(["Z", "+02:00", "-05:30", "+23:59", "-00:00", "+24:00", "", "z", "+0200"])
_fractions = st.one_of(st.just(""), st.integers(1, 7).map(lambda n: "." + "123456789"[:n]))
_valid_text = st.builds(
    lambda when, fraction, zone: when.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone,
    st.datetimes(datetime(1970, 1, 1), datetime(2254, 12, 31)),
    _fractions,
    st.sampled_from(["Z", "+02:00", "-05:30", "+23:59", "-00:00"]),
)
_any_text = st.builds(
    lambda parts, fraction, zone: (
        "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*parts) + fraction + zone
    ),
    st.tuples(
        st.sampled_from([0, 1969, 1970, 2026, 2255, 9999]),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
    ),
    _fractions,
    _zones,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 9).flatmap(lambda k: _any_text if k == 0 else _valid_text)))
def test_timestamps_in_text_agree(texts: list[str]) -> None:
    """RFC 3339 timestamps, parsed by Arrow for a whole block when every one has a zone
    and by Python otherwise: the Python path's microseconds and reasons either way."""
    lines = [orjson.dumps(logpush_record(LogId=str(i), Timestamp=t)) for i, t in enumerate(texts)]
    python, typed = both_paths(b"\n".join(lines))
    assert_same(typed, python)


def test_lines_that_crashed_the_run_are_rejects(tmp_path: Path) -> None:
    """Three lines that parsed but aborted ``aigw ingest`` on both paths (and on every
    rerun) are rejects with one-line reasons; the good line beside them loads."""

    def nested(depth: int) -> object:
        value: object = []
        for _ in range(depth - 1):
            value = [value]
        return value

    big = 2**62 - 1
    lines = [
        json.dumps(logpush_record()),
        json.dumps(
            logpush_record(
                Metrics={"tokensIn": big, "cacheReadTokens": big, "cacheWriteTokens": big}
            )
        ),
        json.dumps(logpush_record(Metadata=nested(300))),
        json.dumps(logpush_record(Timestamp="1" * 5000)),
    ]
    write_ndjson(tmp_path / "logs" / "20260418" / "a.log.gz", lines)
    db = tmp_path / "aigw.duckdb"
    summary = run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db, quality="off"))
    assert (summary.failed, summary.rows_loaded, summary.rejected) == (0, 1, 3)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT line_number, reason FROM rejects ORDER BY 1").fetchall() == [
            (2, "input tokens with cache tokens out of range: 13835058055282163709"),
            (3, "metadata cannot be stored as JSON: Recursion limit reached"),
            (4, "bad timestamp '" + "1" * 36 + "..."),
        ]


_unit_edges = [MILLIS_FROM, MICROS_FROM, NANOS_FROM, MAX_US, 10**21]  # timestamp_us's edges
_valid_integer = st.one_of(  # unix, millis, micros, nanos (Logpush's default), in range
    st.integers(0, MAX_US // 10**6 - 1),
    st.integers(MILLIS_FROM, MAX_US // 1000 - 1),
    st.integers(MICROS_FROM, MAX_US - 1),
    st.integers(NANOS_FROM, MAX_US * 1000 - 1),
)
_any_integer = st.one_of(
    st.integers(-(2**64), 2**64),
    st.sampled_from(_unit_edges).flatmap(lambda edge: st.integers(edge - 2, edge + 1)),
    st.floats(0, 2e9),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 9).flatmap(lambda k: _any_integer if k == 0 else _valid_integer)))
def test_timestamps_as_integers_agree(values: list[float]) -> None:
    """Integer timestamps, converted by Arrow for a whole block when every one is an
    integer in range and by Python otherwise: the Python path's microseconds and reasons."""
    lines = [json.dumps(logpush_record(LogId=str(i), Timestamp=v)) for i, v in enumerate(values)]
    python, typed = both_paths("\n".join(lines).encode())
    assert_same(typed, python)


def test_unixnano_timestamps_are_microseconds_of_the_same_instant() -> None:
    """Logpush's default timestamp format (unixnano) and its neighbours, a block at a time:
    each stored as the instant it names, to the microsecond."""
    values = [1_776_489_141_762_967_891, 1_776_489_141_762_967, 1_776_489_141_762, 1_776_489_141]
    lines = [orjson.dumps(logpush_record(LogId=str(i), Timestamp=v)) for i, v in enumerate(values)]
    rows, slow = normalise_lines(lines, 1)
    assert slow == []
    assert rows is not None
    assert rows["ts_us"].cast("int64").to_pylist() == [
        1_776_489_141_762_967,
        1_776_489_141_762_967,
        1_776_489_141_762_000,
        1_776_489_141_000_000,
    ]
