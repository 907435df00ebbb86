"""Spend reports over rollups: hand-computed sums by dimensions and grain, top-N with
"other", filters, and properties that hold for any small rollup."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from models import GRAINS, read_rollup, spend_by
from models.reports import OTHER, REPORT_MEASURES

UTC_US = pl.Datetime("us", "UTC")
DIMENSIONS = ("provider", "model", "team")
ROLLUP_SCHEMA = pl.Schema(
    {
        "hour": UTC_US,
        "provider": pl.String(),
        "model": pl.String(),
        "team": pl.String(),
        "cost_source": pl.String(),
        **{name: pl.Float64() if name.endswith("_usd") else pl.Int64() for name in REPORT_MEASURES},
    }
)
MEASURE_SCHEMA = {name: ROLLUP_SCHEMA[name] for name in REPORT_MEASURES}
DAY1 = datetime(2026, 4, 18, tzinfo=UTC)
DAY2 = datetime(2026, 4, 19, tzinfo=UTC)


def rollup(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Rollup rows; measures not given are 0 (``requests`` 1)."""
    base: dict[str, Any] = {
        "hour": DAY1,
        "cost_source": "catalog",
        **dict.fromkeys(REPORT_MEASURES, 0),
        "requests": 1,
        "saved_usd": None,
    }
    return pl.DataFrame([{**base, **row} for row in rows], schema=ROLLUP_SCHEMA).lazy()


def table(keys: dict[str, pl.DataType], rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """An expected report: key columns, then requests, tokens_in, cost_usd, saved_usd."""
    schema = {
        **keys,
        "requests": pl.Int64(),
        "tokens_in": pl.Int64(),
        "cost_usd": pl.Float64(),
        "saved_usd": pl.Float64(),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def view(report: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return report.select(*keys, "requests", "tokens_in", "cost_usd", "saved_usd")


SAMPLE = rollup(
    {"provider": "openai", "model": "gpt-4o", "team": "search", "tokens_in": 100, "cost_usd": 1.5},
    {
        "provider": "openai",
        "model": "gpt-4o",
        "team": "support",
        "hour": DAY1 + timedelta(hours=5),
        "requests": 2,
        "tokens_in": 300,
        "cost_usd": 2.25,
    },
    {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "team": "search",
        "hour": DAY2,
        "requests": 4,
        "tokens_in": 1_000,
        "cost_usd": 1.0,
    },
    {
        "provider": "anthropic",
        "model": "claude-sonnet-4",
        "team": "support",
        "hour": DAY2 + timedelta(hours=23),
        "requests": 3,
        "tokens_in": 50,
        "cost_usd": 3.0,
    },
    {
        "provider": "anthropic",
        "model": "claude-sonnet-4",
        "team": "support",
        "cost_source": "free",
        "cached_requests": 1,
        "tokens_in": 20,
        "cost_usd": 0.0,
        "saved_usd": 0.4,
    },
)


def test_spend_by_provider_and_model_sums_every_measure() -> None:
    """Spend per provider and model adds up its hours and cost sources, biggest cost first."""
    report = spend_by(SAMPLE, ["provider", "model"])
    assert_frame_equal(
        view(report, ["provider", "model"]),
        table(
            {"provider": pl.String(), "model": pl.String()},
            [
                ("openai", "gpt-4o", 3, 400, 3.75, 0.0),
                ("anthropic", "claude-sonnet-4", 4, 70, 3.0, 0.4),
                ("openai", "gpt-4o-mini", 4, 1_000, 1.0, 0.0),
            ],
        ),
    )
    assert report.columns == ["provider", "model", *REPORT_MEASURES]
    assert report.filter(pl.col("provider") == "anthropic")["cached_requests"].item() == 1


def test_spend_by_day_gives_one_row_per_day_and_dimension() -> None:
    """At day grain, each UTC day has its own rows, days in order, biggest cost first in each."""
    report = spend_by(SAMPLE, ["provider"], grain="day")
    assert_frame_equal(
        view(report, ["period", "provider"]),
        table(
            {"period": UTC_US, "provider": pl.String()},
            [
                (DAY1, "openai", 3, 400, 3.75, 0.0),
                (DAY1, "anthropic", 1, 20, 0.0, 0.4),
                (DAY2, "anthropic", 3, 50, 3.0, 0.0),
                (DAY2, "openai", 4, 1_000, 1.0, 0.0),
            ],
        ),
    )


def test_top_keeps_the_biggest_and_sums_the_rest_into_other_placed_last() -> None:
    """--top 1 keeps the biggest team; the others are one "other" row, last even when bigger."""
    report = spend_by(SAMPLE, ["team"], top=1)
    assert_frame_equal(
        view(report, ["team"]),
        table(
            {"team": pl.String()},
            [
                ("support", 6, 370, 5.25, 0.4),
                (OTHER, 5, 1_100, 2.5, 0.0),
            ],
        ),
    )
    bigger_other = spend_by(SAMPLE, ["provider", "model"], top=1)
    assert_frame_equal(
        view(bigger_other, ["provider", "model"]),
        table(
            {"provider": pl.String(), "model": pl.String()},
            [
                ("openai", "gpt-4o", 3, 400, 3.75, 0.0),
                (OTHER, OTHER, 8, 1_070, 4.0, 0.4),
            ],
        ),
    )


def test_top_with_a_grain_ranks_over_the_whole_range_and_puts_other_last_per_period() -> None:
    """The top-N are chosen once for the range; each period has its own "other" row last."""
    report = spend_by(SAMPLE, ["team"], grain="day", top=1)
    assert_frame_equal(
        view(report, ["period", "team"]),
        table(
            {"period": UTC_US, "team": pl.String()},
            [
                (DAY1, "support", 3, 320, 2.25, 0.4),
                (DAY1, OTHER, 1, 100, 1.5, 0.0),
                (DAY2, "support", 3, 50, 3.0, 0.0),
                (DAY2, OTHER, 4, 1_000, 1.0, 0.0),
            ],
        ),
    )


def test_filters_keep_only_rows_with_that_dimension_value() -> None:
    """--where team=search reports the search team's spend only, by any other dimension."""
    report = spend_by(SAMPLE, ["model"], filters={"team": "search"})
    assert_frame_equal(
        view(report, ["model"]),
        table(
            {"model": pl.String()},
            [("gpt-4o", 1, 100, 1.5, 0.0), ("gpt-4o-mini", 4, 1_000, 1.0, 0.0)],
        ),
    )
    nothing = spend_by(SAMPLE, ["model"], filters={"team": "search", "provider": "anthropic"})
    assert nothing.is_empty()


def test_no_dimensions_gives_the_grand_total() -> None:
    """An empty dimension list sums everything into one row (one per period with a grain)."""
    assert view(spend_by(SAMPLE, []), []).rows() == [(11, 1_470, 7.75, 0.4)]
    assert view(spend_by(SAMPLE, [], grain="month"), ["period"]).rows() == [
        (datetime(2026, 4, 1, tzinfo=UTC), 11, 1_470, 7.75, 0.4)
    ]


def test_read_rollup_keeps_hours_in_the_half_open_range_in_utc() -> None:
    """read_rollup returns since <= hour < until, hours as UTC datetimes."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'Europe/Paris'")  # a session zone must not leak through
        assert read_rollup(con).collect_schema().names() == []  # no rollups yet
        frame = SAMPLE.collect()
        con.register("_sample", frame.to_arrow())
        con.execute("CREATE TABLE rollup_hourly AS SELECT * FROM _sample")
        con.unregister("_sample")
        read = read_rollup(con, since=DAY1 + timedelta(hours=5), until=DAY2 + timedelta(hours=23))
        assert read.collect_schema()["hour"] == UTC_US
        assert read.collect()["hour"].to_list() == [DAY1 + timedelta(hours=5), DAY2]
    finally:
        con.close()


def test_a_measure_the_stored_rollup_lacks_sums_to_zero_until_the_next_refresh() -> None:
    """A rollup built before ``saved_estimated_usd`` existed reads as 0 there, not an error
    (readers do not refresh; the next refresh rebuilds the table with it)."""
    con = duckdb.connect()
    try:
        con.register("_sample", SAMPLE.collect().to_arrow())
        con.execute("CREATE TABLE rollup_hourly AS SELECT * FROM _sample")
        read = read_rollup(con, by=[], measures=("saved_usd", "saved_estimated_usd")).collect()
        assert read.select(pl.col("saved_usd", "saved_estimated_usd").sum()).rows() == [(0.4, 0.0)]
    finally:
        con.close()


# --- properties ------------------------------------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)
rollup_rows = st.lists(
    st.fixed_dictionaries(
        {
            "hour": st.integers(0, 24 * 70).map(lambda hours: START + timedelta(hours=hours)),
            "provider": st.sampled_from(["openai", "anthropic", None]),
            "model": st.sampled_from(["a", "b", "c"]),
            "team": st.sampled_from(["search", "support", "growth", None]),
            "requests": st.integers(0, 1_000),
            "tokens_in": st.integers(0, 10**9),
            "cost_usd": st.floats(0, 1_000, allow_nan=False, allow_infinity=False),
            "saved_usd": st.none() | st.floats(0, 10, allow_nan=False, allow_infinity=False),
        }
    ),
    max_size=30,
)
dimension_sets = st.lists(st.sampled_from(DIMENSIONS), unique=True, max_size=3)
grains = st.none() | st.sampled_from(sorted(GRAINS))
filter_sets = st.none() | st.builds(
    lambda name, value: {name: value},
    st.sampled_from(DIMENSIONS),
    st.sampled_from(["openai", "a", "search", "growth", "nobody"]),
)


def _totals(frame: pl.DataFrame) -> tuple[int, int, float]:
    requests = frame["requests"].sum() if frame.height else 0
    tokens = frame["tokens_in"].sum() if frame.height else 0
    cost = frame["cost_usd"].sum() if frame.height else 0.0
    return int(requests), int(tokens), float(cost)


def _filtered(rows: list[dict[str, Any]], filters: dict[str, str] | None) -> pl.DataFrame:
    frame = rollup(*rows).collect()
    for name, value in (filters or {}).items():
        frame = frame.filter(pl.col(name) == value)
    return frame


def _check_totals(report: pl.DataFrame, source: pl.DataFrame) -> None:
    requests, tokens, cost = _totals(report)
    want_requests, want_tokens, want_cost = _totals(source)
    assert (requests, tokens) == (want_requests, want_tokens)
    assert math.isclose(cost, want_cost, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(rows=rollup_rows, dims=dimension_sets, grain=grains, filters=filter_sets)
def test_a_report_adds_up_to_the_filtered_rollup(
    rows: list[dict[str, Any]],
    dims: list[str],
    grain: str | None,
    filters: dict[str, str] | None,
) -> None:
    """Whatever the dimensions, grain and filter, the report's totals equal the input's."""
    report = spend_by(rollup(*rows), dims, grain=grain, filters=filters)
    _check_totals(report, _filtered(rows, filters))
    keys = (["period"] if grain else []) + dims
    if keys:
        assert report.select(keys).is_unique().all()


@settings(max_examples=60, deadline=None)
@given(
    rows=rollup_rows,
    dims=st.lists(st.sampled_from(DIMENSIONS), unique=True, min_size=1, max_size=3),
    grain=grains,
    filters=filter_sets,
    top=st.integers(1, 4),
)
def test_top_n_loses_no_spend_and_keeps_at_most_n_named_rows(
    rows: list[dict[str, Any]],
    dims: list[str],
    grain: str | None,
    filters: dict[str, str] | None,
    top: int,
) -> None:
    """With --top, nothing is lost: the named rows plus "other" add up to the filtered input."""
    report = spend_by(rollup(*rows), dims, grain=grain, top=top, filters=filters)
    _check_totals(report, _filtered(rows, filters))
    is_other = pl.all_horizontal(pl.col(name).eq(OTHER).fill_null(False) for name in dims)
    named = report.filter(~is_other).select(dims).unique()
    assert named.height <= top
    periods = report["period"].unique().to_list() if grain else [None]
    for period in periods:
        rows_of_period = report if grain is None else report.filter(pl.col("period") == period)
        flags = rows_of_period.select(is_other.alias("other"))["other"].to_list()
        assert flags.count(True) <= 1
        assert True not in flags[:-1]  # "other" comes last in its period
