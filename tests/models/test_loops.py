"""Runaway loops as repeated identical prompts: hand-computed flags, and end to end
from plain request bodies through `aigw report anomalies`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingest import IngestSettings, open_warehouse, run_ingest
from models import ModelsSettings
from models.anomalies import ANOMALY_SCHEMA
from models.errors import ModelsError
from models.loops import repeated_prompt_flags
from models.rollups import costed_requests
from tests.conftest import logpush_record, run_aigw, write_ndjson

TEN = datetime(2026, 4, 18, 10, tzinfo=UTC)


def _requests(rows: list[tuple[datetime, str | None, str | None, float | None]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        rows,
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "agent": pl.String,
            "request_hash": pl.String,
            "cost_usd": pl.Float64,
        },
        orient="row",
    )


def test_one_request_repeated_in_an_hour_is_a_loop_with_its_cost_impact() -> None:
    """20 identical calls by one agent in an hour flag, with 19 of them as the impact."""
    rows = [(TEN + timedelta(minutes=i), "bot", "h1", 0.01) for i in range(20)]
    rows += [(TEN + timedelta(minutes=i), "bot", "h2", 0.5) for i in range(19)]  # one short
    rows += [(TEN, "helper", "h1", 0.01)]  # the same prompt, another agent: its own series
    flags = repeated_prompt_flags(_requests(rows), "agent")
    expected = pl.DataFrame(
        {
            "scope": ["agent"],
            "value": ["bot"],
            "hour": [TEN],
            "signal": ["repeated_prompt"],
            "baseline": ["none"],
            "score": [20.0],
            "actual_usd": [0.2],
            "expected_usd": [0.01],
            "impact_usd": [0.19],
            "impact_pct": [1900.0],
            "actual_requests": [20],
            "expected_requests": [1.0],
        },
        schema=ANOMALY_SCHEMA,
    )
    assert_frame_equal(flags, expected, abs_tol=1e-12)


def test_repeats_are_counted_per_hour_and_unhashed_requests_ignored() -> None:
    """Repeats split across two hours do not add up; requests without a hash never match."""
    rows = [(TEN + timedelta(minutes=50 + i), "bot", "h1", 0.01) for i in range(10)]
    rows += [(TEN + timedelta(hours=1, minutes=i), "bot", "h1", 0.01) for i in range(10)]
    rows += [(TEN, "bot", None, 0.01)] * 30
    assert repeated_prompt_flags(_requests(rows), "agent").is_empty()
    assert repeated_prompt_flags(_requests(rows), "agent", min_repeats=10).height == 2


def test_the_window_bounds_what_is_counted() -> None:
    """Only requests in [since, until) count."""
    rows = [(TEN + timedelta(minutes=i), "bot", "h1", None) for i in range(30)]
    flags = repeated_prompt_flags(
        _requests(rows), "agent", since=TEN + timedelta(minutes=15), min_repeats=15
    )
    assert flags["actual_requests"].to_list() == [15]
    assert flags["actual_usd"].to_list() == [0.0]


def test_bad_arguments_are_model_errors() -> None:
    """A threshold below 2 or a frame without request hashes is refused clearly."""
    with pytest.raises(ModelsError, match="at least 2"):
        repeated_prompt_flags(_requests([]), "agent", min_repeats=1)
    with pytest.raises(ModelsError, match="request_hash"):
        repeated_prompt_flags(_requests([]).drop("request_hash"), "agent")


def test_the_anomaly_report_lists_an_agent_sending_the_same_plain_prompt(
    tmp_path: Path, db_path: Path
) -> None:
    """`aigw report anomalies` flags an agent that sent one plain request 25 times in an hour."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "retry?"}]}
    start = 1_776_506_400  # 2026-04-18T10:00:00Z
    records = [
        logpush_record(Timestamp=start + 60 * i, RequestBody=body, Metadata={"agent": "looper"})
        for i in range(25)
    ]
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    assert run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db_path)).returncode == 0
    result = run_aigw("report", "anomalies", "--db", str(db_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    flags = orjson.loads(result.stdout)
    assert [(f["value"], f["signal"], f["actual_requests"]) for f in flags] == [
        ("looper", "repeated_prompt", 25)
    ]


def test_duckdb_keeps_only_requests_repeated_in_their_hour(tmp_path: Path) -> None:
    """``repeated_at_least`` selects in DuckDB the requests whose hash repeats in its hour;
    the flags are the same as from every request."""

    def body(text: str) -> dict[str, object]:
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}

    ten = 1_776_506_400  # 2026-04-18T10:00:00Z
    records = [  # prompt A: 24 in the hour, but 12 per agent (no loop)
        logpush_record(Timestamp=ten + i, RequestBody=body("A"), Metadata={"agent": agent})
        for i, agent in enumerate(["a", "b"] * 12)
    ]
    records += [  # prompt B: 21 by agent a at 10:xx (a loop), 5 more at 11:xx
        logpush_record(Timestamp=ten + 100 + i, RequestBody=body("B"), Metadata={"agent": "a"})
        for i in range(21)
    ]
    records += [
        logpush_record(Timestamp=ten + 3_600 + i, RequestBody=body("B"), Metadata={"agent": "a"})
        for i in range(5)
    ]
    records.append(logpush_record(Timestamp=ten + 200, RequestBody=body("C")))
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    db = tmp_path / "w.duckdb"
    assert run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db)).rows_loaded == 51
    settings = ModelsSettings()
    warehouse = open_warehouse(db, read_only=True)
    try:
        every = costed_requests(warehouse, settings, with_request_hash=True)
        repeated = costed_requests(
            warehouse, settings, with_request_hash=True, repeated_at_least=20
        )
        assert every.collect().height == 51
        assert repeated.collect().height == 45  # A's 24 and B's 21 at 10:xx
        in_range = costed_requests(
            warehouse, settings, with_request_hash=True, repeated_at_least=2, repeated_in="range"
        )
        assert in_range.collect().height == 50  # all but C, sent once
        flags = repeated_prompt_flags(repeated, "agent")
        assert_frame_equal(flags, repeated_prompt_flags(every, "agent"))
    finally:
        warehouse.close()
    assert [(f["value"], f["hour"], f["actual_requests"]) for f in flags.to_dicts()] == [
        ("a", TEN, 21)
    ]
