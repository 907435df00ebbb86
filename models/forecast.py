"""Month-end spend forecast per scope value, from the hourly rollups.

``forecast_month(rollup, now=..., scope=("team",), tz="Europe/Paris")`` gives, for
the calendar month holding ``now`` in ``tz``: spend so far (month to date), a
projection of the month's total, and an interval around it. Amounts are USD
(sums of ``cost_usd``; requests of unknown cost count as 0), days are calendar
days in ``tz``.

Method (a normal approximation, documented so that a user can redo it by hand):

* the daily spends of the last ``lookback_days`` complete days before today
  (days without traffic count as 0, days before a value was first seen do not,
  its first day counts whole; the previous month's days count too) give ``daily_mean_usd`` and
  ``daily_std_usd`` (sample standard deviation) over ``basis_days`` days;
* ``projected = mtd + mean * remaining`` with ``remaining = days_in_month -
  days_elapsed`` (fractional: the rest of today counts pro rata);
* the remaining spend is a sum of ``remaining`` daily spends, each with the
  observed spread, around an estimated mean, so its standard deviation is
  ``std * sqrt(remaining + remaining**2 / basis_days)``; the interval is the
  projection -/+ z of that, z the normal quantile of ``confidence`` (two-sided),
  and the low end is never below the spend already made.

A rollup hour belongs to the local day holding its start (exact for time zones
whose offset is whole hours).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from models.errors import ModelsError

__all__ = ["FORECAST_COLUMNS", "forecast_month"]

FORECAST_COLUMNS: Final = (
    "month_start",
    "mtd_usd",
    "projected_usd",
    "projected_low_usd",
    "projected_high_usd",
    "days_elapsed",
    "days_in_month",
    "daily_mean_usd",
    "daily_std_usd",
    "basis_days",
)
_ALL: Final = "_all"  # the one group when no scope is asked for


def forecast_month(
    rollup: pl.LazyFrame,
    *,
    now: datetime,
    scope: Sequence[str] = (),
    tz: str = "UTC",
    lookback_days: int = 14,
    confidence: float = 0.9,
) -> pl.DataFrame:
    """One row per scope value with spend this month or in the lookback, biggest first.

    ``rollup`` needs ``hour`` (UTC), ``cost_usd`` (USD) and the ``scope`` columns;
    hours starting at or after ``now`` (timezone-aware) are ignored. With no
    ``scope`` the row is the total. ``lookback_days`` (14: two of each weekday)
    and ``confidence`` (0.9: the true total falls outside the interval about one
    month in ten, if days behave like independent draws) tune the projection.

    Columns: the ``scope`` columns, then ``month_start`` (local date of the 1st),
    ``mtd_usd``, ``projected_usd``, ``projected_low_usd``, ``projected_high_usd``,
    ``days_elapsed`` (fractional local days since the 1st), ``days_in_month``,
    ``daily_mean_usd``, ``daily_std_usd``, ``basis_days`` (complete days behind
    the mean). The projection is null without a complete day behind it, and the
    interval is null with fewer than two.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if lookback_days < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("lookback_days must be positive and confidence in (0, 1)")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ModelsError(f"unknown time zone {tz!r}") from err
    columns = rollup.collect_schema().names()
    keys = list(scope)
    if "hour" not in columns:  # no rollup table yet
        return _empty(keys)
    missing = [name for name in keys if name not in columns]
    if missing:
        raise ModelsError(f"unknown scope {', '.join(missing)}: not columns of the rollup")

    local = now.astimezone(zone)
    today = local.date()
    month_start = today.replace(day=1)
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    wall = local.replace(tzinfo=None)  # wall-clock time: a DST day still counts as one day
    days_elapsed = (today - month_start).days + (
        wall - wall.replace(hour=0, minute=0, second=0, microsecond=0)
    ) / timedelta(days=1)
    first_basis_day = today - timedelta(days=lookback_days)

    group = keys or [_ALL]
    history = _daily(rollup, now=now, tz=tz, keys=keys).collect().lazy()  # read twice
    recent = history.filter(pl.col("day") >= min(first_basis_day, month_start))
    mtd = (
        recent.filter(pl.col("day") >= month_start)
        .group_by(group)
        .agg(pl.col("spend").sum().alias("mtd_usd"))
    )
    basis = _basis(history, group, first=first_basis_day, last=today)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    remaining = days_in_month - days_elapsed
    spread = pl.col("daily_std_usd") * (remaining + remaining**2 / pl.col("basis_days")).sqrt()
    result = (
        recent.select(group)
        .unique()
        .join(mtd, on=group, how="left", nulls_equal=True)
        .join(basis, on=group, how="left", nulls_equal=True)
        .with_columns(
            pl.lit(month_start).alias("month_start"),
            pl.col("mtd_usd").fill_null(0.0),
            pl.col("basis_days").fill_null(0).cast(pl.Int64),
            pl.lit(days_elapsed).alias("days_elapsed"),
            pl.lit(days_in_month, pl.Int64).alias("days_in_month"),
        )
        .with_columns(
            (pl.col("mtd_usd") + pl.col("daily_mean_usd") * remaining).alias("projected_usd")
        )
        .with_columns(
            pl.when(spread.is_not_null())
            .then(pl.max_horizontal(pl.col("projected_usd") - z * spread, "mtd_usd"))
            .alias("projected_low_usd"),
            (pl.col("projected_usd") + z * spread).alias("projected_high_usd"),
        )
        .select(*keys, *FORECAST_COLUMNS)
        .sort(
            ["projected_usd", "mtd_usd", *keys],
            descending=[True, True, *([False] * len(keys))],
            nulls_last=True,
        )
    )
    return result.collect()


def _daily(rollup: pl.LazyFrame, *, now: datetime, tz: str, keys: list[str]) -> pl.LazyFrame:
    """Spend (USD) per scope value and local day, from hours that began before ``now``."""
    group = keys or [_ALL]
    frame = rollup.filter(pl.col("hour") < now.astimezone(UTC))
    if not keys:
        frame = frame.with_columns(pl.lit(True).alias(_ALL))
    return frame.group_by(
        *group, pl.col("hour").dt.convert_time_zone(tz).dt.date().alias("day")
    ).agg(pl.col("cost_usd").sum().cast(pl.Float64).alias("spend"))


def _basis(daily: pl.LazyFrame, group: list[str], *, first: date, last: date) -> pl.LazyFrame:
    """Mean and sample std of daily spend over the complete days in ``[first, last)``.

    A value's days start at its first day of spend (not before ``first``); missing
    days in between are 0.
    """
    starts = daily.group_by(group).agg(pl.col("day").min().alias("_first"))
    days = (
        starts.filter(pl.col("_first") < last)
        .select(
            *group,
            pl.date_ranges(
                pl.max_horizontal("_first", pl.lit(first)),
                pl.lit(last - timedelta(days=1)),
                interval="1d",
            ).alias("day"),
        )
        .explode("day")
    )
    return (
        days.join(daily, on=[*group, "day"], how="left", nulls_equal=True)
        .group_by(group)
        .agg(
            pl.len().alias("basis_days"),
            pl.col("spend").fill_null(0.0).mean().alias("daily_mean_usd"),
            pl.col("spend").fill_null(0.0).std().alias("daily_std_usd"),
        )
    )


def _empty(keys: list[str]) -> pl.DataFrame:
    """The forecast of an empty rollup: no rows, the documented columns."""
    schema = dict.fromkeys(keys, pl.String()) | {
        "month_start": pl.Date(),
        "mtd_usd": pl.Float64(),
        "projected_usd": pl.Float64(),
        "projected_low_usd": pl.Float64(),
        "projected_high_usd": pl.Float64(),
        "days_elapsed": pl.Float64(),
        "days_in_month": pl.Int64(),
        "daily_mean_usd": pl.Float64(),
        "daily_std_usd": pl.Float64(),
        "basis_days": pl.Int64(),
    }
    return pl.DataFrame(schema=schema)
