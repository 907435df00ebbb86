"""What the what-ifs share: their answer, the repricing of token counts, the scope.

A what-if reads either hourly rollup rows (``models.reports.read_rollup``: token and USD
sums per hour) or costed requests (``models.rollups.costed_requests``: one row a
request); ``as_units`` makes both one shape (``ts``: the hour or the request's time,
``requests``: how many requests a row holds). ``reprice`` prices a row's tokens at
another price table with ``models.cost.with_cost``, the function that priced them in the
first place, so that "current" is what ``aigw report cost`` says and "projected" follows
the same rules. Pricing an hour's token sums equals the sum of its requests' prices when
``exact_by_hour`` holds for the table; otherwise the caller reads the raw requests.
Money is USD, times UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl

from models.cost import with_cost

__all__ = [
    "MEASURES",
    "RAW_NOTE",
    "REPRICED",
    "TOKENS",
    "WhatIf",
    "as_units",
    "exact_by_hour",
    "needs_raw",
    "reprice",
    "shaped",
    "summed",
]

# The cost sources recomputed from tokens: only those rows can be priced differently.
# Response-cache hits and refused attempts ("free") stay free; "logged" and "unknown"
# rows (no price for their model) keep their cost and are counted as not repriced.
REPRICED: Final = ("catalog", "override")
TOKENS: Final = (
    "tokens_in",
    "tokens_out",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
)
# The columns every what-if table ends with (counts, then USD).
MEASURES: Final = (
    "requests",
    "affected_requests",
    "current_cost_usd",
    "projected_cost_usd",
    "saving_usd",
)


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A what-if's answer.

    ``change``: the change in words; ``table``: one row per value of the ``by``
    dimensions (biggest saving first) with at least ``requests`` (in scope),
    ``affected_requests`` (those the change touches), ``current_cost_usd`` (what the scope
    cost, as ``aigw report cost`` says), ``projected_cost_usd`` (what it would have cost) and
    ``saving_usd`` (current minus projected; negative: the change costs more);
    ``notes``: the assumptions made and what could not be priced, one line each;
    ``window``: the ``[since, until)`` replayed (UTC), when the caller knows it;
    ``additive``: whether the rows add up (not when their scopes overlap).
    """

    change: str
    table: pl.DataFrame
    notes: tuple[str, ...] = ()
    window: tuple[datetime, datetime] | None = None
    additive: bool = True

    def totals(self) -> dict[str, float | int]:
        """The table's counts and USD summed over its rows (0 for an empty table); empty
        when the rows do not add up."""
        if not self.additive:
            return {}
        sums = self.table.select(
            pl.col(name).sum() for name in self.table.columns if name.endswith(("requests", "_usd"))
        )
        if not sums.width:
            return {}
        return {name: value or 0 for name, value in sums.row(0, named=True).items()}


def as_units(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Rollup rows (``hour``, ``requests``) or costed requests (``ts``) in one shape: ``ts``
    and ``requests`` (1 a request); the other columns as they are."""
    names = frame.collect_schema().names()
    if "ts" not in names:
        frame = frame.rename({"hour": "ts"})
    if "requests" not in names:
        frame = frame.with_columns(pl.lit(1, pl.Int64).alias("requests"))
    return frame


def exact_by_hour(prices: pl.DataFrame) -> bool:
    """Whether pricing an hour's token sums gives the sum of its requests' prices at
    ``prices``: no long-context tier (decided per request) and every start date and
    time-of-day window boundary on a whole hour."""
    off_hour = (pl.col("daily_start_min") % 60 != 0) | (pl.col("daily_end_min") % 60 != 0)
    mid_hour = pl.col("valid_from") != pl.col("valid_from").dt.truncate("1h")
    return prices.filter(
        pl.col("above_input_tokens").is_not_null() | off_hour | mid_hour
    ).is_empty()


def needs_raw(frame: pl.LazyFrame, prices: pl.DataFrame, models: Sequence[str]) -> bool:
    """Whether rollup rows ``frame`` must give way to raw requests to be priced exactly at
    the ``prices`` of ``models`` (a frame of requests never needs to)."""
    is_rollup = "hour" in frame.collect_schema().names()
    return is_rollup and not exact_by_hour(prices.filter(pl.col("model").is_in(models)))


RAW_NOTE: Final = "priced request by request: the prices depend on each request's tokens or time"


def reprice(frame: pl.LazyFrame, prices: pl.DataFrame) -> pl.LazyFrame:
    """``frame`` with ``projected_cost_usd``: its tokens (times ``token_ratio``, 1 when absent)
    priced as ``target_provider`` / ``target_model`` at ``prices`` (null: no price).

    ``frame`` is ``as_units``-shaped with the token columns; its rows are taken as billed
    (status 200, not cached, not rate-limited): pass only rows of ``REPRICED`` sources.
    """
    names = frame.collect_schema().names()
    ratio = pl.col("token_ratio") if "token_ratio" in names else pl.lit(1.0)
    priceable = frame.select(
        "ts",
        pl.col("target_provider").alias("provider"),
        pl.col("target_model").alias("model"),
        pl.lit(200, pl.Int32).alias("status_code"),
        pl.lit(False).alias("cached"),
        pl.lit(False).alias("rate_limited"),
        *(pl.col(name).fill_null(0).cast(pl.Float64) * ratio for name in TOKENS if name in names),
        pl.lit(None, pl.Float64).alias("cost"),
    )
    projected = with_cost(priceable, prices).select(
        pl.when(pl.col("cost_source").is_in(REPRICED))
        .then(pl.col("cost_usd"))
        .otherwise(None)
        .alias("projected_cost_usd")
    )
    return pl.concat([frame, projected], how="horizontal")


def summed(
    frame: pl.LazyFrame, by: Sequence[str], *, extra: Sequence[pl.Expr] = ()
) -> pl.DataFrame:
    """``MEASURES`` (and ``extra`` aggregations) summed by ``by``, biggest saving first.

    ``frame`` has ``requests``, ``affected_requests``, ``current_cost_usd`` and
    ``projected_cost_usd`` per row.
    """
    keys = list(by)
    aggregations = [
        pl.col("requests").sum().cast(pl.Int64),
        pl.col("affected_requests").sum().cast(pl.Int64),
        pl.col("current_cost_usd").sum().cast(pl.Float64),
        pl.col("projected_cost_usd").sum().cast(pl.Float64),
        *extra,
    ]
    result = frame.group_by(keys).agg(aggregations) if keys else frame.select(aggregations)
    return shaped(result, keys).collect()


def shaped(sums: pl.LazyFrame, keys: Sequence[str]) -> pl.LazyFrame:
    """A what-if table from its sums (one row per ``keys``, with ``requests``,
    ``affected_requests``, ``current_cost_usd``, ``projected_cost_usd`` and any other
    columns): ``saving_usd`` added, enum keys as text, ``keys`` then ``MEASURES`` first,
    rows without requests dropped, biggest saving first (then by ``keys``)."""
    keys = list(keys)
    result = sums.with_columns(pl.col(pl.Enum).cast(pl.String))
    saving = (pl.col("current_cost_usd") - pl.col("projected_cost_usd")).alias("saving_usd")
    return (
        result.with_columns(saving)
        .select(*keys, *MEASURES, pl.exclude(*keys, *MEASURES))
        .filter(pl.col("requests") > 0)
        .sort(["saving_usd", *keys], descending=[True, *([False] * len(keys))], nulls_last=True)
    )
