"""Spend anomalies and runaway loops: the robust score by hand, the hour-of-week
baseline, new identities, and end to end on synthetic Logpush traffic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingest import IngestSettings, open_warehouse, run_ingest
from models.anomalies import ANOMALY_SCHEMA, detect_anomalies
from models.config import ModelsSettings
from models.errors import ModelsError
from models.reports import read_rollup
from models.rollups import refresh_rollups
from sim.synthetic import RunawayAgent, TrafficShape, synthetic_records, write_logpush_files

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
Hours = Sequence[tuple[float, int] | None]  # (spend USD, requests) per hour, None: no row


def _rollup(series: dict[str, Hours]) -> pl.LazyFrame:
    """Rollup rows: agent -> (spend USD, requests) per hour from ``MONDAY``; ``None``
    for an hour without a row (an agent not seen yet)."""
    rows = [
        (MONDAY + offset * HOUR, agent, *hour)
        for agent, hours in series.items()
        for offset, hour in enumerate(hours)
        if hour is not None
    ]
    return pl.LazyFrame(
        rows,
        schema={
            "hour": pl.Datetime("us", "UTC"),
            "agent": pl.String,
            "cost_usd": pl.Float64,
            "requests": pl.Int64,
        },
        orient="row",
    )


def _flags(*rows: dict[str, Any]) -> pl.DataFrame:
    """Expected flags, scope ``agent``."""
    return pl.DataFrame([{"scope": "agent", **row} for row in rows], schema=ANOMALY_SCHEMA)


def test_score_is_the_robust_z_of_the_hour_against_the_recent_median_and_mad() -> None:
    """Hours 1, 2, 3, 4, 5 USD then 10: median 3, MAD 1, score 0.6745 * 7 / 1."""
    rollup = _rollup({"bot": [(1.0, 10), (2.0, 10), (3.0, 10), (4.0, 10), (5.0, 10), (10.0, 10)]})
    flags = detect_anomalies(
        rollup,
        now=MONDAY + 6 * HOUR,
        window=HOUR,
        history=5 * HOUR,
        min_history=5 * HOUR,
        min_score=3.0,
    )
    expected = _flags(
        {
            "value": "bot",
            "hour": MONDAY + 5 * HOUR,
            "signal": "spend",
            "baseline": "recent",
            "score": 0.6745 * 7 / 1,
            "actual_usd": 10.0,
            "expected_usd": 3.0,
            "impact_usd": 7.0,
            "impact_pct": 700 / 3,
            "actual_requests": 10,
            "expected_requests": 10.0,
        }
    )
    assert_frame_equal(flags, expected)


def test_a_flat_series_is_scored_against_the_mad_floor_not_an_infinite_score() -> None:
    """MAD 0 on a flat 2 USD series: the spread is 10% of 2, so 2.5 scores 1.69 and 4 scores 6.7."""
    rollup = _rollup({"bot": [(2.0, 10)] * 5 + [(2.5, 10), (4.0, 10)]})
    flags = detect_anomalies(
        rollup,
        now=MONDAY + 7 * HOUR,
        window=2 * HOUR,
        history=5 * HOUR,
        min_history=5 * HOUR,
        min_score=1.0,
    )
    same = {"value": "bot", "signal": "spend", "baseline": "recent", "expected_usd": 2.0}
    expected = _flags(
        {
            **same,
            "hour": MONDAY + 5 * HOUR,
            "score": 0.6745 * 0.5 / 0.2,
            "actual_usd": 2.5,
            "impact_usd": 0.5,
            "impact_pct": 25.0,
            "actual_requests": 10,
            "expected_requests": 10.0,
        },
        {
            **same,
            "hour": MONDAY + 6 * HOUR,
            "score": 0.6745 * 2.0 / 0.2,
            "actual_usd": 4.0,
            "impact_usd": 2.0,
            "impact_pct": 100.0,
            "actual_requests": 10,
            "expected_requests": 10.0,
        },
    )
    assert_frame_equal(flags, expected)


def _weekly(weeks: int) -> Hours:
    """``weeks`` weeks from a Monday: 10 USD and 100 requests a weekday hour, 2 and 20 a
    weekend hour; then the next Monday's first hour at 30 USD and 100 requests."""
    week = [(10.0, 100)] * 120 + [(2.0, 20)] * 48
    return week * weeks + [(30.0, 100)]


def test_the_monday_after_a_quiet_weekend_is_expected_from_previous_mondays() -> None:
    """With three past weeks, Monday 00:00 expects the usual 10 USD, not the weekend's 2."""
    options: dict[str, Any] = {"history": timedelta(hours=48), "min_history": timedelta(hours=48)}
    flags = detect_anomalies(
        _rollup({"bot": _weekly(3)}), now=MONDAY + 505 * HOUR, window=HOUR, **options
    )
    # Spread: the last 48 hours are all 2 USD (MAD 0), so the floor, 10% of 10 USD.
    expected = _flags(
        {
            "value": "bot",
            "hour": MONDAY + 504 * HOUR,
            "signal": "spend",
            "baseline": "hour_of_week",
            "score": 0.6745 * 20 / 1.0,
            "actual_usd": 30.0,
            "expected_usd": 10.0,
            "impact_usd": 20.0,
            "impact_pct": 200.0,
            "actual_requests": 100,
            "expected_requests": 100.0,
        }
    )
    assert_frame_equal(flags, expected)
    # With two past weeks only, the same hour is judged against the recent weekend.
    short = detect_anomalies(
        _rollup({"bot": _weekly(2)}), now=MONDAY + 337 * HOUR, window=HOUR, **options
    )
    assert short.select("signal", "baseline", "expected_usd").rows() == [
        ("requests", "recent", 2.0),
        ("spend", "recent", 2.0),
    ]


def test_a_loop_of_free_requests_is_flagged_even_when_it_costs_nothing_more() -> None:
    """2,000 cached requests in an hour after a week of 100: flagged, whatever min_impact_usd."""
    steady = [(1.0, 100)] * 168
    rollup = _rollup({"bot": [*steady, (1.0, 2000)]})
    flags = detect_anomalies(rollup, now=MONDAY + 169 * HOUR, window=HOUR, min_impact_usd=5.0)
    expected = _flags(
        {
            "value": "bot",
            "hour": MONDAY + 168 * HOUR,
            "signal": "requests",
            "baseline": "recent",
            "score": 0.6745 * 1900 / 10.0,  # MAD 0: the floor is 10% of 100 requests
            "actual_usd": 1.0,
            "expected_usd": 1.0,
            "impact_usd": 0.0,
            "impact_pct": 0.0,
            "actual_requests": 2000,
            "expected_requests": 100.0,
        }
    )
    assert_frame_equal(flags, expected)


def test_a_new_identity_is_flagged_in_the_hour_its_spend_reaches_the_threshold() -> None:
    """A new agent at 4 USD an hour crosses 10 USD in its third hour; one at 1 USD never does."""
    before: Hours = [None] * 202  # not seen for 202 hours (more than a week)
    rollup = _rollup(
        {
            "steady": [(1.0, 100)] * 210,
            "burst": [*before, *[(4.0, 5)] * 8],
            "slow": [*before, *[(1.0, 5)] * 8],
        }
    )
    flags = detect_anomalies(
        rollup, now=MONDAY + 210 * HOUR, new_identity_hours=3, new_identity_usd=10.0
    )
    expected = _flags(
        {
            "value": "burst",
            "hour": MONDAY + 204 * HOUR,
            "signal": "new_identity",
            "baseline": "none",
            "score": None,
            "actual_usd": 12.0,
            "expected_usd": 0.0,
            "impact_usd": 12.0,
            "impact_pct": None,
            "actual_requests": 15,
            "expected_requests": 0.0,
        }
    )
    assert_frame_equal(flags, expected)


def test_an_unknown_scope_is_a_models_error_and_no_rollup_gives_no_flags() -> None:
    """A typo in the dimension name is reported; an empty warehouse has nothing to flag."""
    with pytest.raises(ModelsError, match="unknown scope 'agnet'"):
        detect_anomalies(_rollup({"bot": [(1.0, 1)]}), "agnet")
    assert_frame_equal(detect_anomalies(pl.LazyFrame()), ANOMALY_SCHEMA.to_frame())


def _warehouse_rollup(tmp_path: Path, shape: TrafficShape, count: int) -> pl.LazyFrame:
    """Synthetic records through the real pipeline: Logpush files, ingest, rollups."""
    logs, db = tmp_path / "logs", tmp_path / "aigw.duckdb"
    write_logpush_files(logs, synthetic_records(count, seed=3, shape=shape), per_file=10_000)
    run_ingest(IngestSettings(source=str(logs), db_path=db))
    with open_warehouse(db) as warehouse:
        refresh_rollups(warehouse, ModelsSettings())
        return read_rollup(warehouse.con).collect().lazy()


def test_a_runaway_agent_is_flagged_in_its_first_hour_and_steady_agents_never(
    tmp_path: Path,
) -> None:
    """Ten days, 60 requests an hour per agent; one agent runs 20x for an hour on day 9."""
    spike = MONDAY + timedelta(days=8, hours=14)
    shape = TrafficShape(
        start=MONDAY,
        requests_per_minute=5,
        encrypted_bodies=False,
        runaway=RunawayAgent("summarizer", start=spike, duration=HOUR, multiplier=20),
    )
    rollup = _warehouse_rollup(tmp_path, shape, count=5 * 60 * 24 * 10)
    end = MONDAY + timedelta(days=10)

    flags = detect_anomalies(rollup, "agent", now=end, window=timedelta(days=10))

    expected = pl.DataFrame(
        {
            "value": ["summarizer", "summarizer"],
            "hour": [spike, spike],
            "signal": ["requests", "spend"],
        },
        schema={name: ANOMALY_SCHEMA[name] for name in ("value", "hour", "signal")},
    )
    assert_frame_equal(flags.select("value", "hour", "signal"), expected)
    assert (flags["score"] > 20).all()  # far from the threshold: not a close call
    # An hourly job run when the spike hour ends raises the same flags.
    hourly = detect_anomalies(rollup, "agent", now=spike + HOUR)
    assert_frame_equal(hourly, flags)
    # Every series (four agents and untagged traffic) was scored after its first week.
    everything = float("-inf")
    scored = detect_anomalies(
        rollup,
        "agent",
        now=end,
        window=timedelta(days=10),
        min_score=everything,
        min_impact_usd=everything,
    )
    hours = scored.filter(pl.col("signal") == "spend").group_by("value").len()
    assert hours.height == 5
    assert (hours["len"] >= 60).all()


def test_quiet_weekends_raise_no_flag_over_four_weeks(tmp_path: Path) -> None:
    """Weekend traffic at a fifth of weekdays (60 requests an hour per gateway) is expected."""
    shape = TrafficShape(
        start=MONDAY, requests_per_minute=2, encrypted_bodies=False, weekend_factor=0.2
    )
    count = int(2 * 60 * 24 * (20 + 8 * 0.2))  # four weeks
    rollup = _warehouse_rollup(tmp_path, shape, count=count)
    hourly = rollup.group_by("hour").agg(pl.col("cost_usd").sum()).collect()
    weekend = pl.col("hour").dt.weekday() >= 6
    quiet = hourly.filter(weekend)["cost_usd"].mean()
    busy = hourly.filter(~weekend)["cost_usd"].mean()
    assert isinstance(quiet, float)
    assert isinstance(busy, float)
    assert quiet < 0.3 * busy  # the pattern is there

    end = MONDAY + timedelta(weeks=4)
    flags = detect_anomalies(rollup, "gateway", now=end, window=timedelta(weeks=4))

    assert_frame_equal(flags, ANOMALY_SCHEMA.to_frame())
    # The pattern is strong enough to fool a one-day baseline every Monday.
    naive = detect_anomalies(
        rollup,
        "gateway",
        now=end,
        window=timedelta(weeks=4),
        history=timedelta(days=1),
        min_history=timedelta(days=1),
    )
    assert naive.height > 0
    assert set(naive["hour"].dt.weekday()) == {1}
