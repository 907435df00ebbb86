"""The ingest engine's SQL path gives exactly the Python path's rows, rejects and repeats."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import logpush
from core.warehouse import open_warehouse
from ingest.engine import SqlEngine
from ingest.fields import ANTHROPIC_CACHE_FIELDS, LOGPUSH_FIELDS, METRIC_FIELDS, REST_FIELDS
from ingest.run import ingest
from ingest.sources import LocalFolder
from sim.synthetic import TrafficShape, synthetic_records, write_logpush_files
from tests.conftest import logpush_record
from tests.ingest import parity
from tests.ingest.parity import Outcome, assert_same

_ENGINE = SqlEngine(min_lines=0)  # every block through SQL, however small


def both_paths(data: bytes) -> tuple[Outcome, Outcome]:
    """(Python path, engine) outcomes of one object's bytes."""
    return parity.both_paths(data, _ENGINE)


def fast_rows(lines: list[bytes]) -> int:
    """How many of ``lines`` the SQL path vouches for (the rest go to Python)."""
    table = _ENGINE.normalise(pa.array([line.decode() for line in lines], pa.large_string()), 1)
    return sum(table["fast"].to_pylist())


def test_plain_logpush_and_gateway_records_take_the_sql_path() -> None:
    """The common shapes (Cloudflare's fields, aigw's extension fields, every timestamp
    format, token spellings) are normalised in SQL, not left to Python."""
    records = [
        logpush_record(),
        logpush_record(Timestamp="2026-04-18T00:00:00.123456Z"),
        logpush_record(Timestamp="2026-04-17T19:00:00-05:00"),
        logpush_record(Timestamp=1_776_470_400),
        logpush_record(Timestamp="1776470400123456000"),
        logpush_record(Metrics={"input_tokens": 100, "cache_read_input_tokens": 900}),
        logpush_record(Metrics={"tokensIn": 100, "cacheWriteTokens": 50, "cacheWrite1hTokens": 30}),
        logpush_record(LogId="a", Step=1, DlpCategories=["EMAIL"], GuardrailCategories="x, y"),
        logpush_record(PromptPrefixHash="5e1d", PromptPrefixTokens=5000),
        {"id": "r1", "created_at": "2026-04-18T00:00:00Z", "provider": "openai", "cost": 0.5},
    ]
    lines = [orjson.dumps(record) for record in records]
    assert fast_rows(lines) == len(lines)
    python, engine = both_paths(b"\n".join(lines))
    assert_same(engine, python)


def test_lines_sql_cannot_vouch_for_get_the_python_reasons() -> None:
    """Bad JSON, NaN, trailing commas, duplicate keys and broken fields are rejected with
    the Python path's exact reasons; blank lines are skipped, line numbers kept."""
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
    ]
    python, engine = both_paths(b"\n".join(lines))
    assert_same(engine, python)
    assert [reject["line_number"] for reject in python[1]] == [1, 2, 3, 5, 6, 7, 8, 10]


def test_repeats_inside_an_object_are_dropped_once_first_wins() -> None:
    """Two records with the same LogId: the first line's row stays, one repeat counted."""
    first = orjson.dumps(logpush_record(LogId="same", Model="first"))
    second = orjson.dumps(logpush_record(LogId="same", Model="second"))
    python, engine = both_paths(b"\n".join([first, b"{bad", second]))
    assert_same(engine, python)
    assert [row["model"] for row in engine[0]] == ["first"]
    assert engine[2] == 1


_KEYS = [*LOGPUSH_FIELDS, *METRIC_FIELDS, *ANTHROPIC_CACHE_FIELDS, *REST_FIELDS, "Other", "x"]
_METRIC_KEYS = [*METRIC_FIELDS, *ANTHROPIC_CACHE_FIELDS, "ttfbMs"]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 1, 200, 429, 1_776_470_400, 1_776_470_400_123, 1_776_470_400_123_456]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, 12.0, 1e-7, 1e16, 1e22, 1_776_470_400.5, 0.0015]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "2026-04-18T00:00:00Z",
            "2026-04-18T00:00:00.5+02:00",
            "2026-04-18T00:00:00.1234567Z",
            "2026-02-30T00:00:00Z",
            "2026-04-18T24:00:00Z",
            "2026-04-18 00:00:00",
            "1776470400",
            " 12 ",
            "12",
            "1_000",
            "²",
            "-5",
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
    st.dictionaries(st.sampled_from(["team", "user", "type", "data"]), _scalars, max_size=3),
    st.dictionaries(st.sampled_from(_METRIC_KEYS), _scalars, max_size=4),
)
_records = st.one_of(
    st.builds(
        lambda base, extra, metrics: {**base, **extra, **({"Metrics": metrics} if metrics else {})},
        st.just(logpush_record()),
        st.dictionaries(st.sampled_from(_KEYS), _values, max_size=4),
        st.dictionaries(st.sampled_from(_METRIC_KEYS), _values, max_size=4),
    ),
    st.dictionaries(st.sampled_from(_KEYS), _values, max_size=8),
)


def _line(record: dict[str, Any], style: int) -> bytes:
    text = orjson.dumps(record)
    if style == 1:
        return text.replace(b",", b", ").replace(b":", b": ")
    if style == 2 and len(text) > 2:  # a duplicated key, or a broken tail
        return text[:-1] + b',"' + logpush.TIMESTAMP.encode() + b'":1776470400}'
    if style == 3:
        return text[:-1] + b",}"
    if style == 4:
        return text[: len(text) // 2]
    return text


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(_records, st.sampled_from([0, 0, 0, 1, 2, 3, 4])), max_size=12))
def test_sql_and_python_paths_agree_on_random_records(lines: list[tuple[Any, int]]) -> None:
    """Random valid and broken records: same rows, same rejects and reasons, same repeats."""
    data = b"\n".join(_line(record, style) for record, style in lines)
    python, engine = both_paths(data)
    assert_same(engine, python)


@pytest.mark.parametrize("size", [1, 3])
def test_an_object_larger_than_one_block_keeps_line_numbers(size: int) -> None:
    """Blank lines and blocks keep every line's number; repeats across blocks are found."""
    lines = [
        orjson.dumps(logpush_record(LogId=f"id-{i % 4}", StatusCode=200 + i)) for i in range(8)
    ]
    data = b"\n\n".join(lines) * size
    python, engine = both_paths(data)
    assert_same(engine, python)


def test_ingest_with_the_sql_engine_stores_what_the_python_path_stores(tmp_path: Path) -> None:
    """A whole run with ``sql=True`` (two parser threads, SQL for blocks of 2,000+ lines)
    gives the same rows, counts and rejects as the default Python path."""
    logs = tmp_path / "logs"
    shape = TrafficShape(encrypted_bodies=False, gateway_fields=True)
    paths = write_logpush_files(logs, synthetic_records(7_500, seed=3, shape=shape), per_file=2_500)
    with paths[1].open("ab") as extra:  # one more gzip member: a reject and a record
        extra.write(gzip.compress(b"not json\n" + orjson.dumps(logpush_record(LogId="r"))))
    results = []
    for sql in (False, True):
        with open_warehouse(tmp_path / f"{sql}.duckdb") as warehouse:
            summary = ingest(LocalFolder(logs), warehouse, sql=sql)
            rows = warehouse.con.execute(
                "SELECT * EXCLUDE (ingested_at) FROM requests ORDER BY source_file, source_line"
            ).fetchall()
            rejects = warehouse.con.execute(
                "SELECT source_file, line_number, raw_line, reason FROM rejects ORDER BY ALL"
            ).fetchall()
        counts = (summary.records, summary.rows_loaded, summary.duplicates, summary.rejected)
        results.append((counts, rows, rejects))
    assert results[0][0] == (7_502, 7_501, 0, 1)
    assert results[1] == results[0]
