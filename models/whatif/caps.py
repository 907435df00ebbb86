"""Budgets enforced as spend caps, replayed on the period's requests.

A ``SpendCap`` refuses, as the gateway's budgets do, every request of its scope once the
scope's spend in the current period has reached ``amount_usd``: a request is refused
when the spend of the requests before it in the period is at least the amount (refused
requests spend nothing, so from the first refusal to the period's end every request of
the scope is refused, cache hits included: the gateway checks budgets before its cache).
Spend is the effective cost (``cost_usd``; unknown costs count 0).

The replay reads hourly rollups and the raw requests of one hour per refused scope and
period only: hours whose cumulative spend stays under the amount are allowed whole, hours
after the crossing hour are refused whole, and the crossing hour's requests are replayed
one by one in time order. Each cap is replayed alone, as if it were the only one, and
asks for the raw requests of its own crossing (hour, scope) pairs only.
A period that began before the replayed window counts the spend since its start (the
caller reads the rollup from there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import polars as pl

from models.whatif.common import WhatIf

__all__ = ["CAP_PERIODS", "CapsReplay", "RequestsOfScopes", "SpendCap", "replay_caps"]

CAP_PERIODS: Final = {"daily": "1d", "weekly": "1w", "monthly": "1mo"}
RequestsOfScopes = Callable[[str | None, list[tuple[datetime, str | None]]], pl.LazyFrame]
"""``requests_of(dimension, pairs)``: the costed requests (raw rows, the caps' dimensions
included) of some UTC hours. With a dimension, each (hour, value) pair stands for the
requests of that hour whose dimension's value, as text, is the pair's (None: a null
value); without one, the values are None and every request of the pairs' hours is
wanted. Rows beyond those are allowed (the replay keeps its own)."""
_NONE: Final = "(none)"


@dataclass(frozen=True, slots=True)
class SpendCap:
    """``amount_usd`` per calendar ``period`` (``CAP_PERIODS``, in ``timezone``) for the
    requests matching ``filters``, per value of ``split_by`` when set."""

    name: str
    amount_usd: float
    period: str = "monthly"
    filters: Mapping[str, str] = field(default_factory=dict)
    split_by: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class CapsReplay:
    """The replay: ``whatif.table`` one row per cap and scope value (``refused_requests``
    is ``affected_requests``; ``saving_usd`` the spend avoided), ``users``: refused
    requests per cap, scope value and user (the disruption), ``hours``: the refused
    requests and avoided spend per cap, scope value and UTC hour."""

    whatif: WhatIf
    users: pl.DataFrame
    hours: pl.DataFrame


def replay_caps(
    rollup: pl.LazyFrame,
    caps: Sequence[SpendCap],
    requests_of: RequestsOfScopes,
    *,
    user: str = "user",
    since: datetime | None = None,
) -> CapsReplay:
    """Replay ``caps`` on ``rollup`` (hourly rows with ``hour``, ``requests``,
    ``cost_usd``, ``user`` and the caps' filter and split dimensions); ``requests_of``
    reads the raw requests of the crossing hours (``ts``, ``log_id``, ``cost_usd``, the
    same dimensions), once per cap that crosses: the pairs of the cap's ``split_by`` (else
    of its first filter's dimension, else whole hours), sorted. With ``since``, the
    rollup's earlier hours (from the start of each cap's period that holds ``since``)
    count towards the spend and only the requests from ``since`` on are replayed and
    reported."""
    if not caps:
        raise ValueError("no cap to replay")
    marked = [_refusals_by_hour(rollup, cap) for cap in caps]
    if since is not None:
        marked = [frame.filter(pl.col("hour") >= since) for frame in marked]
    parts = [
        _refused(frame, _crossing_requests(frame, cap, requests_of), cap, user)
        for frame, cap in zip(marked, caps, strict=True)
    ]
    detail = pl.concat(parts, how="vertical_relaxed")
    table = (
        detail.group_by("budget", "scope", maintain_order=True)
        .agg(
            pl.col("requests").sum(),
            pl.col("refused_requests").sum().alias("affected_requests"),
            pl.col("cost_usd").sum().alias("current_cost_usd"),
            (pl.col("cost_usd").sum() - pl.col("avoided_usd").sum()).alias("projected_cost_usd"),
            pl.col("avoided_usd").sum().alias("saving_usd"),
            pl.col(user)
            .filter(pl.col("refused_requests") > 0)
            .n_unique()
            .cast(pl.Int64)
            .alias("refused_users"),
            pl.col("hour")
            .filter(pl.col("refused_requests") > 0)
            .n_unique()
            .cast(pl.Int64)
            .alias("refused_hours"),
            pl.col("first_refused").min(),
        )
        .sort(["saving_usd", "budget", "scope"], descending=[True, False, False])
    )
    refused = detail.filter(pl.col("refused_requests") > 0)
    users = (
        refused.group_by("budget", "scope", user)
        .agg(pl.col("refused_requests").sum(), pl.col("avoided_usd").sum())
        .sort(["budget", "scope", "refused_requests", user], descending=[False, False, True, False])
    )
    by_hour = (
        refused.group_by("budget", "scope", "hour")
        .agg(pl.col("refused_requests").sum(), pl.col("avoided_usd").sum())
        .sort("budget", "scope", "hour")
    )
    notes = ("each budget is replayed alone, as the only cap; spend is the effective cost",)
    change = "budgets as caps: " + ", ".join(cap.name for cap in caps)
    return CapsReplay(WhatIf(change, table, notes, additive=False), users, by_hour)


def _refusals_by_hour(rollup: pl.LazyFrame, cap: SpendCap) -> pl.DataFrame:
    """The cap's hourly rows with ``scope`` and ``period``, the spend of the period before
    the hour (``_before``), and whether the hour is ``_refused`` whole or ``_crossing``."""
    frame = rollup
    for name, value in cap.filters.items():
        frame = frame.filter(pl.col(name) == value)
    scope = _scope(cap)
    period = pl.col("hour").dt.convert_time_zone(cap.timezone).dt.truncate(CAP_PERIODS[cap.period])
    hourly = (
        frame.with_columns(scope.alias("scope"), period.alias("period"))
        .group_by("scope", "period", "hour")
        .agg(pl.col("cost_usd").fill_null(0.0).sum().alias("_spent"))
        .sort("scope", "period", "hour")
        .with_columns(
            (pl.col("_spent").cum_sum().over("scope", "period") - pl.col("_spent")).alias("_before")
        )
        .with_columns(
            (pl.col("_before") >= cap.amount_usd).alias("_refused"),
            (
                (pl.col("_before") < cap.amount_usd)
                & (pl.col("_before") + pl.col("_spent") >= cap.amount_usd)
            ).alias("_crossing"),
        )
    )
    return (
        frame.with_columns(scope.alias("scope"))
        .join(hourly, on=["scope", "hour"], how="left")
        .with_columns(pl.lit(cap.name).alias("budget"))
        .collect()
    )


def _crossing_requests(
    marked: pl.DataFrame, cap: SpendCap, requests_of: RequestsOfScopes
) -> pl.DataFrame:
    """The raw requests of the cap's crossing hours, asked per (hour, value) of the
    dimension that tells its scopes apart (``split_by``; a filter's for an unsplit cap,
    whose crossing hours' rows all have the filter's value); none without a crossing."""
    crossing = marked.filter(pl.col("_crossing"))
    if crossing.is_empty():
        return pl.DataFrame()
    by = cap.split_by or next(iter(cap.filters), None)
    if by is None:
        pairs: list[tuple[datetime, str | None]] = [
            (hour, None) for hour in sorted(set(crossing["hour"].to_list()))
        ]
    else:
        values = (
            crossing.select("hour", pl.col(by).cast(pl.String))
            .unique()
            .sort("hour", by, nulls_last=False)
        )
        pairs = list(values.iter_rows())
    return requests_of(by, pairs).collect()


def _scope(cap: SpendCap) -> pl.Expr:
    """The cap's scope value: ``split_by=value`` (or the filters) as text."""
    fixed = ", ".join(f"{name}={value}" for name, value in cap.filters.items())
    if cap.split_by is None:
        return pl.lit(fixed or "everything")
    value = pl.col(cap.split_by).cast(pl.String).fill_null(_NONE)
    prefix = f"{fixed}, " if fixed else ""
    return pl.concat_str(pl.lit(f"{prefix}{cap.split_by}="), value)


def _refused(marked: pl.DataFrame, raw: pl.DataFrame, cap: SpendCap, user: str) -> pl.DataFrame:
    """Per scope, hour and user: requests, ``cost_usd``, ``refused_requests``,
    ``avoided_usd`` and ``first_refused``; whole hours from the rollup, the crossing hours
    from the raw requests."""
    whole = marked.filter(~pl.col("_crossing")).select(
        "budget",
        "scope",
        "hour",
        user,
        pl.col("requests"),
        pl.col("cost_usd").fill_null(0.0),
        pl.when(pl.col("_refused")).then(pl.col("requests")).otherwise(0).alias("refused_requests"),
        pl.when(pl.col("_refused"))
        .then(pl.col("cost_usd").fill_null(0.0))
        .otherwise(0.0)
        .alias("avoided_usd"),
        pl.when(pl.col("_refused")).then(pl.col("hour")).otherwise(None).alias("first_refused"),
    )
    crossings = marked.filter(pl.col("_crossing")).select("scope", "hour", "_before").unique()
    if crossings.is_empty():
        return whole
    requests = raw.lazy()
    for name, value in cap.filters.items():
        requests = requests.filter(pl.col(name) == value)
    replayed = (
        requests.with_columns(
            _scope(cap).alias("scope"), pl.col("ts").dt.truncate("1h").alias("hour")
        )
        .join(crossings.lazy(), on=["scope", "hour"], how="inner")
        .sort("scope", "ts", "log_id")
        .with_columns(
            (
                pl.col("_before")
                + pl.col("cost_usd").fill_null(0.0).cum_sum().over("scope", "hour")
                - pl.col("cost_usd").fill_null(0.0)
                >= cap.amount_usd
            ).alias("_no")
        )
        .group_by("scope", "hour", user)
        .agg(
            pl.len().cast(pl.Int64).alias("requests"),
            pl.col("cost_usd").fill_null(0.0).sum(),
            pl.col("_no").sum().cast(pl.Int64).alias("refused_requests"),
            pl.col("cost_usd").fill_null(0.0).filter(pl.col("_no")).sum().alias("avoided_usd"),
            pl.col("ts").filter(pl.col("_no")).min().alias("first_refused"),
        )
        .with_columns(pl.lit(cap.name).alias("budget"))
    )
    return pl.concat([whole, replayed.collect().select(whole.columns)], how="vertical_relaxed")
