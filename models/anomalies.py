"""Spend anomalies and runaway-loop signals per value of one dimension (the scope).

``detect_anomalies(rollup, scope)`` reads hourly rollup rows (``hour``: UTC hour
start, ``cost_usd``: USD, ``requests``: count; see ``models.rollups``), sums them
per value of ``scope`` (an agent, API key, user: any dimension column) and hour,
and returns one row per flag. Three signals:

* ``spend``: the hour's spend is far above its baseline (robust z-score, below);
* ``requests``: the hour's request count is far above its baseline, the same way
  (a loop of cheap or free requests shows here before it shows in spend);
* ``new_identity``: a value seen for the first time spends ``new_identity_usd``
  or more within its first ``new_identity_hours`` hours.

Baseline of an hour (only earlier hours are used, so scanning a long window gives
what an hourly job would have raised at the time):

* expected: the median of the same hour of week over the previous
  ``seasonal_weeks`` weeks when ``min_seasonal`` of them exist (``hour_of_week``:
  quiet weekends and nights are expected, not flagged), else the median of the
  last ``history`` hours (``recent``);
* spread: the MAD (median absolute deviation) of the last ``history`` hours. Three
  or four same-hour values are too few to estimate a spread; the recent MAD also
  holds the weekly swing, which keeps the hour-of-week score on the safe side.

``score = 0.6745 * (actual - expected) / max(MAD, floor)`` with
``floor = max(mad_floor_ratio * expected, min_mad)``: 0.6745 makes the score read
as a z-score for normal noise, and the floor keeps a flat series (MAD 0) from
turning a cent into an infinite score. Hours without a request count as zero once
a value has been seen. A series is scored once it has ``min_history`` of hours.

Rows whose scope is null (traffic without that dimension) form one series of
their own (``value`` null); they never count as a new identity.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import polars as pl

from models.errors import ModelsError

__all__ = ["ANOMALY_SCHEMA", "SIGNALS", "detect_anomalies"]

SIGNALS: Final = ("spend", "requests", "new_identity")
ANOMALY_SCHEMA: Final = pl.Schema(
    {
        "scope": pl.String(),
        "value": pl.String(),
        "hour": pl.Datetime("us", "UTC"),
        "signal": pl.String(),
        "baseline": pl.String(),
        "score": pl.Float64(),
        "actual_usd": pl.Float64(),
        "expected_usd": pl.Float64(),
        "impact_usd": pl.Float64(),
        "impact_pct": pl.Float64(),
        "actual_requests": pl.Int64(),
        "expected_requests": pl.Float64(),
    }
)
_Z: Final = 0.6745  # MAD of a standard normal: scales a MAD to a standard deviation
_HOUR: Final = timedelta(hours=1)
_WEEK_HOURS: Final = 168
_MEASURES: Final = ("spend", "requests")  # the scored series: USD and requests per hour


def detect_anomalies(
    rollup: pl.LazyFrame,
    scope: str = "agent",
    *,
    now: datetime | None = None,
    window: timedelta = timedelta(hours=24),
    min_score: float = 6.0,
    min_impact_usd: float = 0.0,
    history: timedelta = timedelta(days=7),
    min_history: timedelta = timedelta(days=7),
    seasonal_weeks: int = 4,
    min_seasonal: int = 3,
    mad_floor_ratio: float = 0.1,
    min_mad_usd: float = 0.01,
    min_mad_requests: float = 1.0,
    new_identity_hours: int = 3,
    new_identity_usd: float = 10.0,
) -> pl.DataFrame:
    """Flags for the hours in ``[now - window, now)``, oldest first (``ANOMALY_SCHEMA``).

    ``rollup`` needs ``hour`` (UTC), ``scope``, ``cost_usd`` (USD; null counts as 0)
    and ``requests``; rows at or after ``now`` are ignored. ``now`` (aware) defaults
    to the end of the newest hour; an hour that has begun before ``now`` is scored
    with what it holds so far.

    Parameters (USD, hours and counts):

    * ``min_score``: the robust z-score from which ``spend`` and ``requests`` flag.
      Hourly spend is right-skewed (a few large prompts make an expensive hour), so
      the tail is heavier than a normal one: on the synthetic traffic (24 to 60
      requests per series-hour) steady series scored 5 or more about once per
      1,000 to 3,000 series-hours, 6 or more once per 4,000 to 10,000, while a
      runaway loop (20 times the usual rate) scored 50 to 130.
    * ``min_impact_usd``: ``spend`` and ``new_identity`` flags with a smaller
      ``impact_usd`` are dropped (``requests`` flags are kept: a loop of free or
      rate-limited requests costs nothing yet is still a loop).
    * ``history`` (7 days: every weekday in it) and ``min_history``: the recent
      hours of the baseline, and how many a series needs before it is scored.
    * ``seasonal_weeks``, ``min_seasonal``: weeks looked back for the same hour of
      week, and how many are needed. Three, so that the median is still right when
      one of those weeks held an incident.
    * ``mad_floor_ratio``, ``min_mad_usd``, ``min_mad_requests``: the MAD floor,
      relative to the expected value and absolute (per measure).
    * ``new_identity_hours``, ``new_identity_usd``: the spend that makes a new
      value a flag. A value is new when first seen at least ``min_history`` after
      the rollup's first hour (before that, new and not yet seen look the same).

    Columns: ``scope`` (the dimension), ``value``, ``hour``, ``signal`` (one of
    ``SIGNALS``), ``baseline`` (``hour_of_week``, ``recent`` or ``none``), ``score``
    (robust z of the signal's measure; null for ``new_identity``), ``actual_usd``
    and ``expected_usd`` (the hour's spend and its baseline; for ``new_identity``
    the spend since first seen and 0), ``impact_usd`` (actual - expected),
    ``impact_pct`` (impact / expected x 100, null when nothing was expected),
    ``actual_requests`` and ``expected_requests`` (the same for requests).
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    _check_arguments(window, history, min_history, seasonal_weeks, min_seasonal)
    if new_identity_hours < 1:
        raise ValueError("new_identity_hours must be at least 1")
    columns = rollup.collect_schema().names()
    if "hour" not in columns:  # no rollup table yet
        return ANOMALY_SCHEMA.to_frame()
    if scope not in columns:
        raise ModelsError(f"unknown scope {scope!r}: not a column of the rollup")
    # Both frames are read by several signals: materialised once, not recomputed.
    series = _hourly(rollup, scope, now).collect().lazy()
    end = _end_hour(series, now)
    if end is None:
        return ANOMALY_SCHEMA.to_frame()
    window_start = end - _ceil_hours(window) * _HOUR
    # Enough hours before the window for every baseline of the hours in it.
    lead = max(_ceil_hours(history), seasonal_weeks * _WEEK_HOURS, new_identity_hours)
    load_start = window_start - lead * _HOUR
    grid = _dense(series, load_start, end).collect().lazy()
    scored = _score(
        grid,
        since=window_start - _ceil_hours(history) * _HOUR,
        first_hour=window_start,
        history_hours=_ceil_hours(history),
        min_history_hours=_ceil_hours(min_history),
        seasonal_weeks=seasonal_weeks,
        min_seasonal=min_seasonal,
        mad_floor_ratio=mad_floor_ratio,
        min_mad={"spend": min_mad_usd, "requests": min_mad_requests},
    )
    flags = [
        _statistical_flags(scored, "spend", min_score).filter(
            pl.col("impact_usd") >= min_impact_usd
        ),
        _statistical_flags(scored, "requests", min_score),
        _new_identity_flags(
            grid,
            series,
            not_before=window_start,
            watched=_ceil_hours(min_history) * _HOUR,
            hours=new_identity_hours,
            threshold_usd=new_identity_usd,
        ).filter(pl.col("impact_usd") >= min_impact_usd),
    ]
    return (
        pl.concat(flags)
        .with_columns(pl.lit(scope).alias("scope"))
        .select(ANOMALY_SCHEMA.names())
        .sort("hour", "signal", "value", nulls_last=True)
        .collect()
        .cast(ANOMALY_SCHEMA)
    )


def _check_arguments(
    window: timedelta,
    history: timedelta,
    min_history: timedelta,
    seasonal_weeks: int,
    min_seasonal: int,
) -> None:
    if window <= timedelta(0) or history <= timedelta(0):
        raise ValueError("window and history must be positive")
    if not timedelta(0) < min_history <= history:
        raise ValueError("min_history must be positive and at most history")
    if not 1 <= min_seasonal <= seasonal_weeks:
        raise ValueError("min_seasonal must be between 1 and seasonal_weeks")


def _ceil_hours(span: timedelta) -> int:
    """Whole hours covering ``span``."""
    return -(-span // _HOUR)


def _hourly(rollup: pl.LazyFrame, scope: str, now: datetime | None) -> pl.LazyFrame:
    """Columns ``value``, ``hour``, ``spend``, ``requests``: one row per value and hour."""
    if now is not None:
        rollup = rollup.filter(pl.col("hour") < now)
    return rollup.group_by(pl.col(scope).cast(pl.String).alias("value"), "hour").agg(
        pl.col("cost_usd").sum().cast(pl.Float64).alias("spend"),
        pl.col("requests").sum().cast(pl.Float64).alias("requests"),
    )


def _end_hour(series: pl.LazyFrame, now: datetime | None) -> datetime | None:
    """The end of the last hour to score: ``now`` rounded up to the hour (UTC)."""
    if now is None:
        newest = series.select(pl.col("hour").max()).collect().item()
        return None if newest is None else newest.astimezone(UTC) + _HOUR
    floor = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor if floor == now else floor + _HOUR


def _dense(series: pl.LazyFrame, start: datetime, end: datetime) -> pl.LazyFrame:
    """Every hour in ``[max(start, first seen), end)`` per value; missing hours are 0."""
    spans = series.group_by("value").agg(pl.col("hour").min().alias("first"))
    hours = spans.select(
        "value",
        pl.datetime_ranges(
            pl.max_horizontal("first", pl.lit(start)), pl.lit(end - _HOUR), interval="1h"
        ).alias("hour"),
    ).explode("hour")
    return (
        hours.join(
            series.filter(pl.col("hour") >= start),
            on=["value", "hour"],
            how="left",
            nulls_equal=True,
        )
        .with_columns(pl.col("spend", "requests").fill_null(0.0))
        .sort("value", "hour", nulls_last=True)
    )


def _score(
    grid: pl.LazyFrame,
    *,
    since: datetime,
    first_hour: datetime,
    history_hours: int,
    min_history_hours: int,
    seasonal_weeks: int,
    min_seasonal: int,
    mad_floor_ratio: float,
    min_mad: dict[str, float],
) -> pl.LazyFrame:
    """The hours of ``grid`` from ``first_hour``, with ``{measure}_expected``,
    ``{measure}_score`` and ``{measure}_baseline`` for each measure.

    Scores are null where the series has less than ``min_history_hours`` behind it.
    The rolling windows (the costly part) run from ``since`` only: ``history``
    before ``first_hour``.
    """
    weeks = range(1, seasonal_weeks + 1)
    grid = grid.with_columns(
        pl.col(measure).shift(_WEEK_HOURS * k).over("value").alias(f"_{measure}_{k}w")
        for measure in _MEASURES
        for k in weeks
    ).filter(pl.col("hour") >= since)
    recent = (
        grid.select("value", "hour", *_MEASURES)
        .rolling(index_column="hour", period=f"{history_hours}h", closed="left", group_by="value")
        .agg(
            pl.len().alias("_hours"),
            *(
                expr
                for measure in _MEASURES
                for expr in (
                    pl.col(measure).median().alias(f"_{measure}_median"),
                    (pl.col(measure) - pl.col(measure).median())
                    .abs()
                    .median()
                    .alias(f"_{measure}_mad"),
                )
            ),
        )
    )
    frame = grid.filter(pl.col("hour") >= first_hour).join(
        recent, on=["value", "hour"], how="left", nulls_equal=True
    )
    ready = pl.col("_hours") >= min_history_hours
    scores: list[pl.Expr] = []
    for measure in _MEASURES:
        past = pl.concat_list(f"_{measure}_{k}w" for k in weeks)
        seasonal = past.list.drop_nulls().list.len() >= min_seasonal
        expected = pl.when(seasonal).then(past.list.median()).otherwise(f"_{measure}_median")
        floor = pl.max_horizontal(mad_floor_ratio * expected, pl.lit(min_mad[measure]))
        spread = pl.max_horizontal(f"_{measure}_mad", floor)
        baseline = pl.when(seasonal).then(pl.lit("hour_of_week")).otherwise(pl.lit("recent"))
        scores += [
            pl.when(ready).then(expected).alias(f"{measure}_expected"),
            pl.when(ready)
            .then(_Z * (pl.col(measure) - expected) / spread)
            .alias(f"{measure}_score"),
            pl.when(ready).then(baseline).alias(f"{measure}_baseline"),
        ]
    return frame.with_columns(scores)


def _statistical_flags(scored: pl.LazyFrame, measure: str, min_score: float) -> pl.LazyFrame:
    """Rows of ``scored`` whose ``measure`` scores ``min_score`` or more."""
    impact = pl.col("spend") - pl.col("spend_expected")
    return scored.filter(pl.col(f"{measure}_score") >= min_score).select(
        "value",
        "hour",
        pl.lit(measure).alias("signal"),
        pl.col(f"{measure}_baseline").alias("baseline"),
        pl.col(f"{measure}_score").alias("score"),
        pl.col("spend").alias("actual_usd"),
        pl.col("spend_expected").alias("expected_usd"),
        impact.alias("impact_usd"),
        _percent(impact, pl.col("spend_expected")).alias("impact_pct"),
        pl.col("requests").alias("actual_requests"),
        pl.col("requests_expected").alias("expected_requests"),
    )


def _new_identity_flags(
    grid: pl.LazyFrame,
    series: pl.LazyFrame,
    *,
    not_before: datetime,
    watched: timedelta,
    hours: int,
    threshold_usd: float,
) -> pl.LazyFrame:
    """The hour a new value's spend since first seen reaches ``threshold_usd``.

    New: first seen ``watched`` or more after the first hour of ``series``, and
    the threshold reached within its first ``hours`` hours, at ``not_before`` or later.
    """
    first = series.group_by("value").agg(pl.col("hour").min().alias("first_seen"))
    opened = series.select(pl.col("hour").min().alias("opened"))
    new = first.join(opened, how="cross").filter(
        pl.col("value").is_not_null() & (pl.col("first_seen") >= pl.col("opened") + watched)
    )
    spent = pl.col("spend").cum_sum().over("value")
    asked = pl.col("requests").cum_sum().over("value")
    return (
        grid.join(new, on="value", how="inner")
        .filter(
            pl.col("hour").is_between(
                pl.col("first_seen"), pl.col("first_seen") + (hours - 1) * _HOUR
            )
        )
        .sort("value", "hour")
        .with_columns(spent.alias("_spent"), asked.alias("_asked"))
        .filter(
            (pl.col("_spent") >= threshold_usd)
            & (pl.col("_spent") - pl.col("spend") < threshold_usd)
            & (pl.col("hour") >= not_before)
        )
        .select(
            "value",
            "hour",
            pl.lit("new_identity").alias("signal"),
            pl.lit("none").alias("baseline"),
            pl.lit(None, pl.Float64).alias("score"),
            pl.col("_spent").alias("actual_usd"),
            pl.lit(0.0).alias("expected_usd"),
            pl.col("_spent").alias("impact_usd"),
            pl.lit(None, pl.Float64).alias("impact_pct"),
            pl.col("_asked").alias("actual_requests"),
            pl.lit(0.0).alias("expected_requests"),
        )
    )


def _percent(part: pl.Expr, whole: pl.Expr) -> pl.Expr:
    """``part / whole`` in percent, null when ``whole`` is 0."""
    return pl.when(whole > 0).then(part / whole * 100.0)
