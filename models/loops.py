"""Runaway loops seen as repeated identical prompts.

An agent stuck in a loop sends the same request again and again. Given costed
requests with a ``request_hash`` (see ``core.warehouse.reads.read_requests``), this flags
every hour in which one value of a dimension sent one identical request at least
``min_repeats`` times. Rows follow ``models.anomalies.ANOMALY_SCHEMA`` so they list
beside the statistical flags: ``signal`` is ``repeated_prompt``, ``baseline``
``none``, ``score`` the repeat count, ``actual_requests`` the repeats (expected: 1),
``actual_usd`` their cost, ``expected_usd`` the cost of one of them, and
``impact_usd`` the rest (USD). Requests without a hash (encrypted bodies, and no
gateway cache key) cannot be compared and are ignored.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from models.anomalies import ANOMALY_SCHEMA
from models.errors import ModelsError

__all__ = ["MIN_REPEATS", "repeated_prompt_flags"]

#: Identical requests in one hour from one value that make a runaway loop, by default.
MIN_REPEATS = 20


def repeated_prompt_flags(
    requests: pl.LazyFrame,
    scope: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_repeats: int = MIN_REPEATS,
) -> pl.DataFrame:
    """Hours in ``[since, until)`` where a ``scope`` value sent one request ``min_repeats`` times
    or more, biggest repeat count first within each hour and value.

    ``requests`` may be only those whose hash repeats ``min_repeats`` times in its hour
    (``models.rollups.repeated_requests(..., within="hour")``): the flags are the same, since
    a value's repeats are a subset of the hour's, and far fewer rows leave DuckDB."""
    if min_repeats < 2:
        raise ModelsError(f"min_repeats must be at least 2, not {min_repeats}")
    names = requests.collect_schema().names()
    missing = [name for name in ("ts", scope, "request_hash", "cost_usd") if name not in names]
    if missing:
        raise ModelsError(f"requests lack {', '.join(missing)} for repeated-prompt detection")
    frame = requests.filter(pl.col("request_hash").is_not_null())
    if since is not None:
        frame = frame.filter(pl.col("ts") >= since)
    if until is not None:
        frame = frame.filter(pl.col("ts") < until)
    repeats = pl.col("actual_requests")
    cost = pl.col("actual_usd")
    return (
        frame.group_by(
            pl.col("ts").dt.truncate("1h").alias("hour"),
            pl.col(scope).cast(pl.String).alias("value"),
            "request_hash",
        )
        .agg(
            pl.len().cast(pl.Int64).alias("actual_requests"),
            pl.col("cost_usd").fill_null(0.0).sum().alias("actual_usd"),
        )
        .filter(repeats >= min_repeats)
        .with_columns(
            pl.lit(scope).alias("scope"),
            pl.lit("repeated_prompt").alias("signal"),
            pl.lit("none").alias("baseline"),
            repeats.cast(pl.Float64).alias("score"),
            (cost / repeats).alias("expected_usd"),
            (cost - cost / repeats).alias("impact_usd"),
            ((repeats - 1) * 100.0).alias("impact_pct"),
            pl.lit(1.0).alias("expected_requests"),
        )
        .select(ANOMALY_SCHEMA.names())
        .cast(ANOMALY_SCHEMA)
        .sort("hour", "value", "score", descending=[False, False, True], nulls_last=True)
        .collect()
    )
