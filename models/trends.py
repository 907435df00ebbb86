"""Rollup views the dashboard draws: totals and trends with rates, budget burn-down,
anomaly bands, and the values a filter can take.

Pure functions over rollup frames as ``models.reports.read_rollup`` returns them
(``hour`` UTC, USD sums, counts), so the numbers are the reports' numbers: a total
here is ``spend_by`` over the same frame. Ratios whose denominator is 0 are null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from models.anomalies import detect_anomalies
from models.reports import spend_by

__all__ = [
    "anomaly_bands",
    "budget_spend",
    "burndown",
    "dimension_values",
    "filter_rollup",
    "totals",
    "trend",
]

_Z: Final = 0.6745  # as in models.anomalies: scales a MAD to a standard deviation
# Forecasts need some of the period behind them (as alerts.evaluate).
_MIN_FORECAST_FRACTION: Final = 0.1


def filter_rollup(rollup: pl.LazyFrame, filters: Mapping[str, str] | None) -> pl.LazyFrame:
    """Rows whose dimension equals the value, for each ``dimension = value`` of ``filters``."""
    if not rollup.collect_schema().names():
        return rollup
    for name, value in (filters or {}).items():
        rollup = rollup.filter(pl.col(name) == value)
    return rollup


def _with_rates(frame: pl.DataFrame) -> pl.DataFrame:
    def ratio(part: str, whole: str) -> pl.Expr:
        return pl.when(pl.col(whole) > 0).then(pl.col(part) / pl.col(whole)).otherwise(None)

    return frame.with_columns(
        (pl.col("tokens_in") + pl.col("tokens_out")).alias("tokens"),
        ratio("cached_requests", "requests").alias("cache_hit_ratio"),
        ratio("errors", "requests").alias("error_rate"),
    )


def totals(rollup: pl.LazyFrame) -> dict[str, float | int | None]:
    """The report measures summed over ``rollup``, plus ``tokens`` (in + out),
    ``cache_hit_ratio`` (cached / requests) and ``error_rate`` (status >= 400 / requests)."""
    if not rollup.collect_schema().names():
        return {}
    summed = spend_by(rollup, [])
    if summed.is_empty():
        return {}
    return _with_rates(summed).row(0, named=True)


def trend(rollup: pl.LazyFrame, grain: str = "day") -> pl.DataFrame:
    """``totals`` per ``period`` at ``grain`` (oldest first)."""
    if not rollup.collect_schema().names():
        return pl.DataFrame()
    return _with_rates(spend_by(rollup, [], grain=grain)).sort("period")


def budget_spend(
    rollup: pl.LazyFrame,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    filters: Mapping[str, str] | None = None,
    split_by: str | None = None,
) -> pl.DataFrame:
    """Spend in a budget period ``[start, min(end, now))`` per ``split_by`` value, as
    ``aigw alerts run`` counts it: ``spent_usd`` and ``projected_usd`` (spent divided by
    the elapsed fraction of the period, null before 10% of it), biggest first."""
    elapsed = (min(now, end) - start) / (end - start)
    frame = filter_rollup(rollup, filters).filter(
        (pl.col("hour") >= start) & (pl.col("hour") < min(end, now))
    )
    keys = [split_by] if split_by else []
    spent = frame.group_by(keys or pl.lit(True).alias("_all")).agg(
        pl.col("cost_usd").sum().fill_null(0.0).alias("spent_usd")
    )
    projected = pl.col("spent_usd") / elapsed if elapsed >= _MIN_FORECAST_FRACTION else pl.lit(None)
    return (
        spent.with_columns(projected.cast(pl.Float64).alias("projected_usd"))
        .drop("_all", strict=False)
        .sort(["spent_usd", *keys], descending=[True, *([False] * len(keys))], nulls_last=True)
        .collect()
    )


def burndown(
    rollup: pl.LazyFrame,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    filters: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Cumulative spend through a budget period and its linear projection to ``end``.

    One row per hour (periods of two days or less) or per UTC day: ``period``,
    ``spent_usd`` (cumulative actual, up to ``now``) and ``projected_usd`` (from the
    last actual point, the spend rate so far carried to ``end``; null before).
    """
    grain = "1h" if end - start <= timedelta(days=2) else "1d"
    step = timedelta(hours=1) if grain == "1h" else timedelta(days=1)
    frame = filter_rollup(rollup, filters).filter(
        (pl.col("hour") >= start) & (pl.col("hour") < min(end, now))
    )
    actual = (
        frame.group_by(pl.col("hour").dt.truncate(grain).alias("period"))
        .agg(pl.col("cost_usd").sum().fill_null(0.0))
        .collect()
    )
    periods = pl.DataFrame(
        {"period": pl.datetime_range(start, end - step, step, eager=True, time_zone="UTC")}
    )
    joined = (
        periods.join(actual, on="period", how="left")
        .sort("period")
        .with_columns(pl.col("cost_usd").fill_null(0.0).cum_sum().alias("spent_usd"))
    )
    elapsed = (min(now, end) - start) / (end - start)
    last = joined.filter(pl.col("period") < now)
    spent = float(last["spent_usd"][-1]) if last.height else 0.0
    projected = pl.lit(None, pl.Float64)
    if now < end:
        rate_total = spent / max(elapsed, 1e-9)  # the period's spend at the rate so far
        ahead = (pl.col("period") + step - pl.lit(now)).dt.total_seconds() / (
            end - now
        ).total_seconds()
        projected = (
            pl.when(pl.col("period") + step >= now)
            .then(spent + (rate_total - spent) * ahead)
            .otherwise(None)
        )
    return joined.select(
        "period",
        pl.when(pl.col("period") < now).then(pl.col("spent_usd")).alias("spent_usd"),
        projected.alias("projected_usd"),
    )


def anomaly_bands(
    rollup: pl.LazyFrame,
    scope: str,
    values: Sequence[str | None],
    *,
    now: datetime,
    window: timedelta,
    min_score: float = 6.0,
) -> pl.DataFrame:
    """The hourly spend of each of ``values`` in ``[now - window, now)`` with its band.

    Columns ``value``, ``hour``, ``actual_usd``, ``expected_usd`` and ``upper_usd``
    (``expected + min_score`` spreads: above it an hour flags). The expected value and
    the spread are ``models.anomalies``' own (every hour is scored and the spread read
    back from its score); hours not yet scorable (too little history) have no band.
    """
    scored = detect_anomalies(
        rollup,
        scope,
        now=now,
        window=window,
        min_score=float("-inf"),
        min_impact_usd=float("-inf"),
    ).filter((pl.col("signal") == "spend") & pl.col("value").is_in(list(values), nulls_equal=True))
    floor = pl.max_horizontal(0.1 * pl.col("expected_usd"), pl.lit(0.01))
    spread = (
        pl.when(pl.col("score").abs() > 1e-9)
        .then(_Z * (pl.col("actual_usd") - pl.col("expected_usd")) / pl.col("score"))
        .otherwise(floor)
    )
    return scored.select(
        "value",
        "hour",
        "actual_usd",
        "expected_usd",
        (pl.col("expected_usd") + min_score * spread / _Z).alias("upper_usd"),
    ).sort("value", "hour", nulls_last=True)


def dimension_values(
    rollup: pl.LazyFrame, dimensions: Sequence[str], *, limit: int = 500
) -> dict[str, list[str]]:
    """The non-null values of each dimension in ``rollup``, sorted (at most ``limit`` each)."""
    columns = rollup.collect_schema().names()
    result: dict[str, list[str]] = {}
    for name in dimensions:
        if name not in columns:
            result[name] = []
            continue
        values = rollup.select(pl.col(name).drop_nulls().unique().sort().head(limit)).collect()
        result[name] = [str(value) for value in values[name].to_list()]
    return result
