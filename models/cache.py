"""Response-cache effectiveness: hit ratios and savings, and requests worth caching.

Contract (USD, UTC; pure functions, nothing read or written):

* ``cache_summary(rollup, by, grain)`` sums the hourly rollup by the ``by``
  columns (a route is ``ROUTE``: gateway and endpoint) and, with ``grain``, by
  period. ``request_hit_ratio`` is ``cached_requests / requests``;
  ``cost_hit_ratio`` is ``saved_usd / (saved_usd + cost_usd)``, the share of
  the would-be cost (what was paid plus what cache hits would have cost) that
  the cache saved. A ratio whose denominator is 0 is null, never NaN. A hit's
  saving is priced from its tokens (``models.cost``), else estimated from the
  cost of the misses (``models.savings``): ``saved_estimated_usd`` is that
  estimated part of ``saved_usd`` (0 from a rollup without the column). A hit
  with neither saves nothing here, so the cost ratio is then an underestimate;
  ``unknown_cost_requests`` says how many requests have no cost at all.
* ``cache_candidates(requests)`` finds identical requests (equal
  ``request_hash``, same gateway and model) that were answered more than once
  by the provider instead of the cache. Only successful (status below 400),
  not rate-limited, uncached occurrences count: those are the answers a cache
  would have stored or served. ``potential_saving_usd`` is the cost of every
  such occurrence but the first (by time), the first being the call that
  would have filled the cache; a TTL or a cache-bypass rule may make the real
  saving smaller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from models.errors import ModelsError
from models.reports import GRAINS

__all__ = ["ROUTE", "cache_candidates", "cache_summary"]

ROUTE: Final = ("gateway", "endpoint")
_UTC: Final = pl.Datetime("us", "UTC")
_SUMMED: Final = {
    "requests": pl.Int64(),
    "cached_requests": pl.Int64(),
    "cost_usd": pl.Float64(),
    "saved_usd": pl.Float64(),
    "saved_estimated_usd": pl.Float64(),
    "unknown_cost_requests": pl.Int64(),
}
_CANDIDATE_INPUT: Final = {
    "request_hash": pl.String(),
    "gateway": pl.String(),
    "model": pl.String(),
    "ts": _UTC,
    "status_code": pl.Int64(),
    "cached": pl.Boolean(),
    "rate_limited": pl.Boolean(),
    "cost_usd": pl.Float64(),
}


def cache_summary(
    rollup: pl.LazyFrame, by: Sequence[str], grain: str | None = None
) -> pl.DataFrame:
    """Cache hit ratios and savings by ``by`` (and ``period`` at ``grain``).

    Columns: ``period`` (UTC, only with ``grain``: one of ``models.reports.GRAINS``),
    the ``by`` columns, ``requests``, ``cached_requests``, ``request_hit_ratio``,
    ``cost_usd``, ``saved_usd``, ``saved_estimated_usd``, ``cost_hit_ratio``,
    ``unknown_cost_requests``.
    Sorted by period, then biggest ``saved_usd`` first. ``rollup`` is as
    ``models.reports.read_rollup`` returns it; a frame without columns gives an
    empty result. Raises ``ModelsError`` for an unknown grain or column.
    """
    if grain is not None and grain not in GRAINS:
        raise ModelsError(f"unknown grain {grain!r}: use one of {', '.join(GRAINS)}")
    keys = list(by)
    needed = {**_SUMMED, **dict.fromkeys(keys, pl.String())}
    if grain is not None:
        needed["hour"] = _UTC
    schema = rollup.collect_schema()
    if schema.names() and "saved_estimated_usd" not in schema:
        rollup = rollup.with_columns(pl.lit(0.0).alias("saved_estimated_usd"))
    frame = _checked(rollup, needed, what="cache summary")
    group = list(keys)
    if grain is not None:
        frame = frame.with_columns(pl.col("hour").dt.truncate(GRAINS[grain]).alias("period"))
        group = ["period", *keys]
    summed = frame.group_by(group).agg(
        *(pl.col(name).sum().cast(dtype) for name, dtype in _SUMMED.items())
    )
    would_be = pl.col("saved_usd") + pl.col("cost_usd")
    result = summed.select(
        *group,
        "requests",
        "cached_requests",
        _ratio(pl.col("cached_requests"), pl.col("requests")).alias("request_hit_ratio"),
        "cost_usd",
        "saved_usd",
        "saved_estimated_usd",
        _ratio(pl.col("saved_usd"), would_be).alias("cost_hit_ratio"),
        "unknown_cost_requests",
    )
    order = ["period"] if grain is not None else []
    return result.sort(
        [*order, "saved_usd", *keys],
        descending=[*([False] * len(order)), True, *([False] * len(keys))],
        nulls_last=True,
    ).collect()


def cache_candidates(requests: pl.LazyFrame, *, min_repeats: int = 2) -> pl.DataFrame:
    """Identical requests answered by the provider at least ``min_repeats`` times.

    ``requests`` is a costed request frame with ``request_hash``
    (``core.warehouse.reads.read_requests(..., with_request_hash=True)`` through
    ``models.cost.with_cost``); rows with a null hash (encrypted bodies) are
    skipped. Columns: ``request_hash``, ``gateway``, ``model``, ``repeats``
    (counted occurrences), ``cost_usd`` (their cost; unknown costs count 0),
    ``first_seen`` and ``last_seen`` (UTC), ``potential_saving_usd``. Biggest
    potential saving first. Raises ``ModelsError`` when ``min_repeats`` is below
    2 or a column is missing.
    """
    if min_repeats < 2:
        raise ModelsError(f"min_repeats must be at least 2 (a repeat), not {min_repeats}")
    frame = _checked(requests, _CANDIDATE_INPUT, what="cache candidates")
    uncached = frame.filter(
        pl.col("request_hash").is_not_null()
        & ~pl.col("cached").fill_null(False)
        & ~pl.col("rate_limited").fill_null(False)
        & (pl.col("status_code").fill_null(200) < 400)
    )
    by_time = pl.col("cost_usd").sort_by("ts")
    grouped = uncached.group_by("request_hash", "gateway", "model").agg(
        pl.len().cast(pl.Int64).alias("repeats"),
        pl.col("cost_usd").sum().cast(pl.Float64),
        pl.col("ts").min().alias("first_seen"),
        pl.col("ts").max().alias("last_seen"),
        by_time.slice(1).sum().cast(pl.Float64).alias("potential_saving_usd"),
    )
    return (
        grouped.filter(pl.col("repeats") >= min_repeats)
        .sort(
            ["potential_saving_usd", "repeats", "request_hash", "gateway", "model"],
            descending=[True, True, False, False, False],
            nulls_last=True,
        )
        .collect()
    )


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``numerator / denominator`` as Float64, null where the denominator is 0 or null."""
    return (
        pl.when(denominator > 0)
        .then(numerator.cast(pl.Float64) / denominator.cast(pl.Float64))
        .otherwise(None)
    )


def _checked(frame: pl.LazyFrame, needed: dict[str, pl.DataType], *, what: str) -> pl.LazyFrame:
    """``frame``, or an empty frame of the needed columns when it has no columns at all."""
    schema = frame.collect_schema()
    if not schema.names():
        return pl.LazyFrame(schema=needed)
    missing = [name for name in needed if name not in schema]
    if missing:
        raise ModelsError(f"{what} needs the column(s) {', '.join(missing)}")
    return frame
