"""Estimated savings of the response-cache hits that tokens cannot price.

Contract (USD, UTC; pure functions, nothing read or written). ``models.cost`` prices a
hit's saving from its token counts; a hit without them (the documented Logpush
``Metrics`` carry only ``cost`` and ``durationMs``) or of a model without a price has a
null ``saved_usd``. ``with_estimated_savings`` gives such a hit what its answer cost
when a provider gave it, in this order:

1. the logged cost of a miss with the same cache key (``request_hash``) logged from the
   start of the UTC day before the hit's to the end of its day: the latest at or before
   the hit, else the first one after it;
2. else the median logged cost of the misses of the same provider and model on the
   hit's UTC day;
3. else nothing: ``saved_usd`` stays null (unknown, never 0).

``saved_estimated`` is true for 1 and 2, false otherwise, so that reports can show the
estimated part of the savings apart. A miss is an answer a provider gave: not a cache
hit, not rate limited, status below 400, with a logged cost
(``core.warehouse.cache_miss_costs`` reads them).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

__all__ = ["MISS_COLUMNS", "needs_estimate", "with_estimated_savings"]

MISS_COLUMNS: Final = {
    "request_hash": pl.String(),
    "provider": pl.String(),
    "model": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "cost": pl.Float64(),
}


_DAY: Final = timedelta(days=1)


def needs_estimate() -> pl.Expr:
    """True for a response-cache hit whose saving tokens did not price (needs
    ``with_cost``'s columns)."""
    return pl.col("cached").fill_null(False) & pl.col("saved_usd").is_null()


def with_estimated_savings(
    costed: pl.LazyFrame,
    hashes: pl.LazyFrame,
    misses: pl.LazyFrame,
    keyed: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """``costed`` (``with_cost``'s columns with ``log_id``, ``ts``, ``provider``,
    ``model``, ``cached``) with ``saved_usd`` estimated where ``needs_estimate`` and a
    ``saved_estimated`` column; row order and count are kept.

    ``hashes`` gives the hits' cache keys (``log_id``, ``request_hash``; a hit without
    one, or absent, can only get the median). ``misses`` (``MISS_COLUMNS``) give the
    medians and, when ``keyed`` is None, the key matches too; ``keyed`` (the same
    columns) are the misses to match keys against when they were read apart (only those
    with the hits' keys: ``core.warehouse.cache_miss_costs``).
    """
    hits = (
        costed.filter(needs_estimate())
        .select("log_id", "ts", pl.col("provider").fill_null(""), "model")
        .join(hashes.select("log_id", "request_hash"), on="log_id", how="left")
    )
    answered = misses.select(
        pl.col("provider").fill_null(""), "model", pl.col("ts").alias("miss_ts"), "cost"
    )
    matches = (misses if keyed is None else keyed).select(
        "request_hash", pl.col("ts").alias("miss_ts"), "cost"
    )
    hit_day = pl.col("ts").dt.truncate("1d")
    by_key = (
        hits.filter(pl.col("request_hash").is_not_null())
        .join(matches, on="request_hash")
        .filter((pl.col("miss_ts") >= hit_day - _DAY) & (pl.col("miss_ts") < hit_day + _DAY))
        .sort("log_id", "miss_ts", "cost")
        .group_by("log_id")
        .agg(
            pl.coalesce(
                pl.col("cost").filter(pl.col("miss_ts") <= pl.col("ts")).last(),
                pl.col("cost").first(),
            ).alias("key_cost")
        )
    )
    day = pl.col("miss_ts").dt.truncate("1d").alias("day")
    medians = answered.group_by("provider", "model", day).agg(
        pl.col("cost").median().alias("median_cost")
    )
    estimates = (
        hits.with_columns(pl.col("ts").dt.truncate("1d").alias("day"))
        .join(by_key, on="log_id", how="left")
        .join(medians, on=["provider", "model", "day"], how="left")
        .select("log_id", pl.coalesce("key_cost", "median_cost").alias("_estimate"))
    )
    estimated = needs_estimate() & pl.col("_estimate").is_not_null()
    return (
        costed.with_row_index("_row")
        .join(estimates, on="log_id", how="left")
        .sort("_row")
        .with_columns(
            pl.coalesce("saved_usd", "_estimate").alias("saved_usd"),
            estimated.alias("saved_estimated"),
        )
        .drop("_row", "_estimate")
    )
