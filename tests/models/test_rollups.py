"""Hourly rollups on real warehouse files: totals equal the costed requests after
incremental loads and late records; settings changes rebuild; idle refreshes do nothing."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from app.service import refresh
from ingest import IngestSettings, run_ingest
from models import (
    COST_RULES_VERSION,
    ModelsSettings,
    RefreshResult,
    hourly_rollup,
    load_price_file,
    price_table,
    rollups_stale,
    with_cost,
)
from tests.conftest import logpush_record, write_ndjson

H0 = 1_776_470_400  # 2026-04-18T00:00:00Z, unix seconds
HOUR = 3_600
T0 = datetime(2026, 4, 18, tzinfo=UTC)
UTC_US = pl.Datetime("us", "UTC")

PRICES = """\
[[price]]
provider = "replicate"
model = "acme/chat"
input = {input}
output = 2
"""


def acme(at: int, tokens_in: int, tokens_out: int, **fields: Any) -> dict[str, Any]:
    """A request to a model priced only by the user price file ($1 in, $2 out per MTok)."""
    return logpush_record(
        Timestamp=at,
        Provider="replicate",
        Model="acme/chat",
        Metrics={"tokensIn": tokens_in, "tokensOut": tokens_out, "durationMs": 100},
        **fields,
    )


BATCH_A = [
    acme(H0 + 10, 1_000, 500),  # $0.002
    acme(H0 + 20, 2_000, 500),  # $0.003
    logpush_record(Timestamp=H0 + HOUR + 10),  # openai gpt-4o-mini, catalogue price
    acme(H0 + HOUR + 20, 1_000, 500, Cached=True),  # free, saved $0.002
]
BATCH_B = [
    logpush_record(
        Timestamp=H0 + 2 * HOUR + 5,
        Provider="anthropic",
        Model="claude-sonnet-4",
        Metrics={"tokensIn": 10_000, "cacheReadTokens": 4_000, "tokensOut": 300, "cost": 0.02},
    ),
    logpush_record(
        Timestamp=H0 + 2 * HOUR + 6,
        Provider="replicate",
        Model="acme/chat",
        StatusCode=429,
        RateLimited=True,
        Metrics={"durationMs": 3},
    ),
    logpush_record(
        Timestamp=H0 + 3 * HOUR + 1,
        Provider="replicate",
        Model="unknown/model",
        Metrics={"tokensIn": 10, "tokensOut": 10, "cost": 0.05},
    ),
    logpush_record(
        Timestamp=H0 + 3 * HOUR + 2,
        Provider="replicate",
        Model="unknown/model",
        Metrics={"tokensIn": 10, "tokensOut": 10},
    ),
]
LATE = [acme(H0 + 30, 3_000, 1_000)]  # $0.005, arrives after hours 1-3 were rolled up


@pytest.fixture
def settings(tmp_path: Path) -> ModelsSettings:
    path = tmp_path / "prices.toml"
    path.write_text(PRICES.format(input="1.0"))
    return ModelsSettings(prices=path)


def load(logs: Path, db_path: Path, name: str, records: list[dict[str, Any]]) -> None:
    """Deliver one more Logpush object and ingest the folder (old objects are skipped)."""
    write_ndjson(logs / f"{name}.log.gz", records)
    summary = run_ingest(IngestSettings(source=str(logs), db_path=db_path))
    assert summary.rows_loaded == len(records) and not summary.failures


def frame(db_path: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return pl.DataFrame(pl.from_arrow(con.execute(sql).to_arrow_table()))
    finally:
        con.close()


def rollup_by_hour(db_path: Path) -> pl.DataFrame:
    """What the rollup says per hour."""
    return frame(
        db_path,
        "SELECT hour, sum(requests)::BIGINT AS requests, sum(tokens_in)::BIGINT AS tokens_in, "
        "sum(tokens_out)::BIGINT AS tokens_out, sum(cost_usd) AS cost_usd, "
        "sum(saved_usd) AS saved_usd FROM rollup_hourly GROUP BY hour ORDER BY hour",
    ).with_columns(pl.col("hour").dt.convert_time_zone("UTC"))


def costed_by_hour(db_path: Path, settings: ModelsSettings) -> pl.DataFrame:
    """The same sums computed straight from every raw request through ``with_cost``."""
    requests = frame(
        db_path,
        "SELECT ts, provider, model, status_code, cached, rate_limited, tokens_in, tokens_out, "
        "cache_read_tokens, cache_write_tokens, cost FROM requests",
    ).with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    assert settings.prices is not None
    table = price_table(
        requests.select("provider", "model").unique().rows(), load_price_file(settings.prices)
    )
    return (
        with_cost(requests.lazy(), table)
        .group_by(pl.col("ts").dt.truncate("1h").alias("hour"))
        .agg(
            pl.len().cast(pl.Int64).alias("requests"),
            pl.col("tokens_in").sum().cast(pl.Int64),
            pl.col("tokens_out").sum().cast(pl.Int64),
            pl.col("cost_usd").sum(),
            pl.col("saved_usd").sum(),
        )
        .sort("hour")
        .collect()
    )


def test_rollup_totals_equal_costed_requests_through_incremental_loads_and_a_late_record(
    tmp_path: Path, db_path: Path, settings: ModelsSettings
) -> None:
    """After every load, the rollup's requests, tokens and cost per hour equal the raw requests'."""
    logs = tmp_path / "logs"
    load(logs, db_path, "a", BATCH_A)
    assert refresh(db_path, settings).full
    assert_frame_equal(rollup_by_hour(db_path), costed_by_hour(db_path, settings))

    load(logs, db_path, "b", BATCH_B)
    second = refresh(db_path, settings)
    assert (second.full, second.hours) == (False, 2)
    assert_frame_equal(rollup_by_hour(db_path), costed_by_hour(db_path, settings))

    later_hours = rollup_by_hour(db_path).filter(pl.col("hour") > T0)
    load(logs, db_path, "late", LATE)
    third = refresh(db_path, settings)
    assert (third.full, third.hours) == (False, 1)  # only the late record's hour
    after = rollup_by_hour(db_path)
    assert_frame_equal(after, costed_by_hour(db_path, settings))
    assert_frame_equal(after.filter(pl.col("hour") > T0), later_hours)
    # hour 0 by hand: $0.002 + $0.003 + the late $0.005
    assert after.row(0) == (T0, 3, 6_000, 2_000, pytest.approx(0.01), 0.0)


def test_the_daily_rollup_sums_the_hourly_one_with_the_same_column_types(
    tmp_path: Path, db_path: Path, settings: ModelsSettings
) -> None:
    """Long-range reports read rollup_daily: per UTC day it equals rollup_hourly, types included."""
    logs = tmp_path / "logs"
    load(logs, db_path, "a", BATCH_A)
    refresh(db_path, settings)
    load(logs, db_path, "b", [*BATCH_B, acme(H0 + 24 * HOUR + 5, 100, 100)])  # and a second day
    refresh(db_path, settings)
    load(logs, db_path, "late", LATE)
    refresh(db_path, settings)
    by_day = frame(
        db_path,
        "SELECT date_trunc('day', hour) AS day, team, cost_source, sum(requests)::BIGINT, "
        "sum(tokens_in)::BIGINT, sum(cost_usd), sum(unknown_cost_requests)::BIGINT "
        "FROM rollup_hourly GROUP BY ALL ORDER BY ALL",
    )
    daily_sums = frame(
        db_path,
        "SELECT hour AS day, team, cost_source, sum(requests)::BIGINT, "
        "sum(tokens_in)::BIGINT, sum(cost_usd), sum(unknown_cost_requests)::BIGINT "
        "FROM rollup_daily GROUP BY ALL ORDER BY ALL",
    )
    assert_frame_equal(daily_sums, by_day)
    assert by_day["day"].dt.convert_time_zone("UTC").unique().to_list() == [
        T0,
        T0 + timedelta(days=1),
    ]
    hourly = frame(db_path, "SELECT * FROM rollup_hourly LIMIT 0").schema
    daily = frame(db_path, "SELECT * FROM rollup_daily LIMIT 0").schema
    assert daily == hourly  # counts stay BIGINT, not HUGEINT (JSON reports print them as text)


def test_unknown_costs_count_as_unknown_requests_in_the_rollup(
    tmp_path: Path, db_path: Path, settings: ModelsSettings
) -> None:
    """Requests without any price are counted per model, so a report can warn about them."""
    load(tmp_path / "logs", db_path, "b", BATCH_B)
    refresh(db_path, settings)
    rows = frame(
        db_path,
        "SELECT model, cost_source, requests, unknown_cost_requests, rate_limited_requests, "
        "errors, cost_usd > 0 AS billed FROM rollup_hourly ORDER BY model, cost_source",
    )
    assert rows.rows() == [
        ("acme/chat", "free", 1, 0, 1, 1, False),
        ("claude-sonnet-4", "catalog", 1, 0, 0, 0, True),
        ("unknown/model", "logged", 1, 0, 0, 0, True),
        ("unknown/model", "unknown", 1, 1, 0, 0, False),
    ]


def test_a_second_refresh_with_nothing_new_does_nothing(
    tmp_path: Path, db_path: Path, settings: ModelsSettings
) -> None:
    """Refreshing twice without new rows recomputes no hour and leaves the rollup as it was."""
    load(tmp_path / "logs", db_path, "a", BATCH_A)
    refresh(db_path, settings)
    before = frame(db_path, "SELECT * FROM rollup_hourly ORDER BY ALL")
    assert refresh(db_path, settings) == RefreshResult(full=False, hours=0, rows=0)
    assert_frame_equal(frame(db_path, "SELECT * FROM rollup_hourly ORDER BY ALL"), before)


def test_rollups_of_an_older_aigw_or_catalogue_are_rebuilt_in_full(
    tmp_path: Path, db_path: Path, settings: ModelsSettings
) -> None:
    """The rollups remember the cost rules and genai-prices version they were priced with:
    a warehouse refreshed by an older aigw (its state has the fingerprint of the time) is
    stale, and the next refresh re-prices every hour, with the same result here."""
    load(tmp_path / "logs", db_path, "a", BATCH_A)
    refresh(db_path, settings)
    before = frame(db_path, "SELECT * FROM rollup_hourly ORDER BY ALL")
    fingerprint = settings.fingerprint()
    assert fingerprint.endswith(f"rules[{COST_RULES_VERSION}] catalogue[{version('genai-prices')}]")
    older = fingerprint.replace(f"rules[{COST_RULES_VERSION}]", "rules[1]")
    con = duckdb.connect(str(db_path))
    try:
        con.execute("UPDATE rollup_state SET fingerprint = ?", [older])
        assert rollups_stale(con, settings)
    finally:
        con.close()
    rebuilt = refresh(db_path, settings)
    assert rebuilt == RefreshResult(full=True, hours=0, rows=before.height)
    assert_frame_equal(frame(db_path, "SELECT * FROM rollup_hourly ORDER BY ALL"), before)
    assert refresh(db_path, settings) == RefreshResult(full=False, hours=0, rows=0)


def test_changing_the_price_file_rebuilds_every_hour_at_the_new_price(
    tmp_path: Path, db_path: Path, settings: ModelsSettings
) -> None:
    """Editing a negotiated price re-prices history: the refresh is a full rebuild."""
    load(tmp_path / "logs", db_path, "a", BATCH_A)
    refresh(db_path, settings)
    assert settings.prices is not None
    settings.prices.write_text(PRICES.format(input="4.0"))  # same size, new content
    stat = settings.prices.stat()
    os.utime(settings.prices, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    rebuilt = refresh(db_path, settings)
    assert rebuilt.full and rebuilt.rows > 0
    hour0 = rollup_by_hour(db_path).row(0, named=True)
    # (1,000 x $4 + 500 x $2) + (2,000 x $4 + 500 x $2), per million
    assert hour0["cost_usd"] == pytest.approx(0.014)
    assert_frame_equal(rollup_by_hour(db_path), costed_by_hour(db_path, settings))


def test_changing_the_dimensions_rebuilds_the_rollup(
    tmp_path: Path, db_path: Path, settings: ModelsSettings
) -> None:
    """A new metadata dimension appears on every hour, old ones included."""
    load(tmp_path / "logs", db_path, "a", BATCH_A)
    refresh(db_path, settings)
    wider = ModelsSettings(dimensions={"team": "team", "person": "user"}, prices=settings.prices)
    result = refresh(db_path, wider)
    assert result.full
    people = frame(db_path, "SELECT DISTINCT person FROM rollup_hourly")
    assert people["person"].to_list() == ["ana"]


def test_full_refresh_rebuilds_even_when_nothing_changed(
    tmp_path: Path, db_path: Path, settings: ModelsSettings
) -> None:
    """`aigw rollup --full` recomputes every hour on demand, with the same result."""
    load(tmp_path / "logs", db_path, "a", BATCH_A)
    first = refresh(db_path, settings)
    before = frame(db_path, "SELECT * FROM rollup_hourly ORDER BY ALL")
    again = refresh(db_path, settings, full=True)
    assert again.full and again.rows == first.rows
    assert_frame_equal(frame(db_path, "SELECT * FROM rollup_hourly ORDER BY ALL"), before)


def test_hourly_rollup_counts_requests_by_outcome() -> None:
    """Per hour and dimension: requests, errors, cache hits, rate limits and unknown costs."""
    costed = pl.LazyFrame(
        {
            "ts": [T0, T0 + timedelta(minutes=59), T0 + timedelta(minutes=61), T0],
            "team": ["search", "search", "search", "search"],
            "status_code": [200, 500, 200, 429],
            "cached": [True, False, False, False],
            "rate_limited": [False, False, False, True],
            "tokens_in": [100, None, 300, None],
            "tokens_out": [10, None, 30, None],
            "cache_read_tokens": [None, None, 100, None],
            "cache_write_tokens": [None, None, None, None],
            "cost_usd": [0.0, 0.0, None, 0.0],
            "cost_logged": [0.0, None, None, None],
            "saved_usd": [0.5, None, None, None],
            "cost_source": ["free", "free", "unknown", "free"],
            "duration_ms": [5.0, 900.0, 1_000.0, 3.0],
        },
        schema_overrides={"ts": UTC_US, "cache_write_tokens": pl.Int64, "cost_usd": pl.Float64},
    )
    out = hourly_rollup(costed, ["team"]).collect().sort("hour", "cost_source")
    assert out.select(
        "hour",
        "team",
        "cost_source",
        "requests",
        "errors",
        "cached_requests",
        "rate_limited_requests",
        "unknown_cost_requests",
        "tokens_in",
        "cache_read_tokens",
        "saved_usd",
        "duration_ms_sum",
    ).rows() == [
        (T0, "search", "free", 3, 2, 1, 1, 0, 100, 0, 0.5, 908.0),
        (T0 + timedelta(hours=1), "search", "unknown", 1, 0, 0, 0, 1, 300, 100, 0.0, 1_000.0),
    ]
