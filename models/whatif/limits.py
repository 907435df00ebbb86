"""The gateway's rate limits (``gateway.toml`` routes' ``rate_limits``) replayed on the
period's requests: which would have been refused, per window, per user, and the spend
avoided.

The rule is the gateway's (``proxy/stores/ratelimit.py``, held to it by a parity test):
every limit of a request's route is charged at once or none is, so a refused request uses
up nothing. A limit counts ``requests`` (1 a request) or ``tokens`` per subject (``per``:
the gateway key, the route, or a metadata value such as the user) in windows aligned to
the unix epoch, index ``floor(t / window_s)``. A **fixed** window counts its own charges; a
**sliding** one (Cloudflare's weighted window) estimates ``previous * (1 - elapsed) +
current``, ``elapsed`` the share of the current window gone. A request is refused when,
for one of its limits, the count plus its charge would pass the limit.

What the logs cannot say, and the replay assumes: a token limit is charged the logged
input tokens before the call (the gateway charges an estimate, characters / 4) and input
plus output once allowed; the attempts of one request (failover steps, one event id) are
one request at the time of its first attempt; a refused client that retries is not
modelled (each logged request is replayed once). Money is USD, times UTC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import polars as pl

from models.whatif.common import WhatIf, summed

__all__ = [
    "LIMIT_NOTES",
    "LimitsReplay",
    "RateLimitRule",
    "replay_rate_limits",
    "subject_column",
]

_EPS: Final = 1e-9  # the gateway's slack for float rounding in the sliding estimate
_NONE: Final = "-"  # the gateway's subject for a request without one
LIMIT_NOTES: Final = (
    "token limits are charged the logged input tokens before the call (the gateway "
    "estimates characters / 4) and input plus output once allowed",
    "each logged request is replayed once: clients that retry after a 429 are not modelled",
)


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """One entry of route ``route``'s ``rate_limits``: at most ``limit`` ``unit``
    (``requests`` or ``tokens``) per ``window_s`` seconds per subject ``per`` (``key``,
    ``route`` or ``metadata:<name>``), in a fixed or ``sliding`` window."""

    route: str
    name: str
    per: str
    unit: str
    limit: int
    window_s: float
    sliding: bool = False


@dataclass(frozen=True, slots=True)
class LimitsReplay:
    """The replay: ``whatif.table`` one row per route with limits (``affected_requests``
    the refused ones, ``saving_usd`` the spend avoided, ``refused_users``,
    ``first_refused``); ``users``: refused requests and avoided spend per route and user
    (the disruption); ``windows``: the same per route, limit, subject and window start."""

    whatif: WhatIf
    users: pl.DataFrame
    windows: pl.DataFrame


def subject_column(per: str) -> str:
    """The requests' column a limit counts by: ``api_key`` for ``key``, ``route``, or
    ``metadata:<name>`` itself (the caller names the metadata value's column so)."""
    return {"key": "api_key", "route": "route"}.get(per, per)


def _one_per_request(requests: pl.LazyFrame, columns: list[str]) -> pl.DataFrame:
    """The attempts of one request (one ``event_id``) as one row at its first attempt:
    the first attempt's subjects, the attempts' cost and tokens summed; in time order."""
    names = requests.collect_schema().names()
    key = pl.col("log_id")
    if "event_id" in names:
        key = pl.coalesce(pl.col("event_id"), pl.col("log_id"))
    order = ["ts", pl.col("step").fill_null(0)] if "step" in names else ["ts"]
    return (
        requests.with_columns(key.alias("_request"))
        .sort([*order, "log_id"])
        .group_by("_request", maintain_order=True)
        .agg(
            pl.col("ts").first(),
            *(pl.col(name).first() for name in columns),
            pl.col("cost_usd").fill_null(0.0).sum(),
            pl.col("tokens_in").fill_null(0).sum(),
            pl.col("tokens_out").fill_null(0).sum(),
        )
        .sort("ts", "_request")
        .collect()
    )


def _refusals(
    frame: pl.DataFrame, rules: Sequence[RateLimitRule]
) -> tuple[list[str | None], list[str | None], list[datetime | None]]:
    """Per request: the limit that refused it (the first of its route's that would pass),
    its subject and the window's start; None when allowed. State per limit and subject:
    the current window's index and count, and the previous window's count."""
    by_route: dict[str, list[tuple[RateLimitRule, list[str]]]] = {}
    for rule in rules:
        who = frame[subject_column(rule.per)].cast(pl.String).fill_null(_NONE).to_list()
        by_route.setdefault(rule.route, []).append((rule, who))
    seconds = (frame["ts"].dt.epoch("us") / 1e6).to_list()
    tokens_in = frame["tokens_in"].to_list()
    tokens = (frame["tokens_in"] + frame["tokens_out"]).to_list()
    state: dict[tuple[str, str, str], list[float]] = {}
    refused: list[tuple[str, str, datetime] | None] = []
    for at, (route, now) in enumerate(zip(frame["route"].to_list(), seconds, strict=True)):
        charged = []
        refusal = None
        for rule, subjects in by_route.get(route, []):
            index = math.floor(now / rule.window_s)
            counts = state.setdefault((rule.route, rule.name, subjects[at]), [index, 0.0, 0.0])
            if counts[0] != index:  # a new window: the current count becomes the previous
                counts[2] = counts[1] if counts[0] == index - 1 else 0.0
                counts[1], counts[0] = 0.0, index
            weight = 1.0 - (now - index * rule.window_s) / rule.window_s if rule.sliding else 0.0
            requests = rule.unit == "requests"
            if counts[2] * weight + counts[1] + (1 if requests else tokens_in[at]) > (
                rule.limit + _EPS
            ):
                start = datetime.fromtimestamp(index * rule.window_s, UTC)
                refusal = (rule.name, subjects[at], start)
                break
            charged.append((counts, 1 if requests else tokens[at]))
        if refusal is None:
            for counts, charge in charged:
                counts[1] += charge
        refused.append(refusal)
    return (
        [item[0] if item else None for item in refused],
        [item[1] if item else None for item in refused],
        [item[2] if item else None for item in refused],
    )


def replay_rate_limits(
    requests: pl.LazyFrame, rules: Sequence[RateLimitRule], *, user: str = "user"
) -> LimitsReplay:
    """Replay ``rules`` on ``requests`` (costed requests: ``log_id``, ``ts``, ``route``,
    ``cost_usd``, ``tokens_in``, ``tokens_out``, the ``user`` column and each rule's
    ``subject_column``; ``event_id`` and ``step`` when known) of the routes that have
    rules, in time order (ties by log id)."""
    if not rules:
        raise ValueError("no rate limit to replay")
    routes = sorted({rule.route for rule in rules})
    subjects = sorted({subject_column(rule.per) for rule in rules} | {"route", user})
    frame = _one_per_request(requests.filter(pl.col("route").is_in(routes)), subjects)
    limit, subject, window = _refusals(frame, rules)
    marked = frame.with_columns(
        pl.Series("limit", limit, pl.String),
        pl.Series("subject", subject, pl.String),
        pl.Series("window_start", window, pl.Datetime("us", "UTC")),
    ).with_columns(
        pl.col("limit").is_not_null().alias("_refused"),
        pl.lit(1, pl.Int64).alias("requests"),
        pl.col("limit").is_not_null().cast(pl.Int64).alias("affected_requests"),
        pl.col("cost_usd").alias("current_cost_usd"),
        pl.when(pl.col("limit").is_null())
        .then(pl.col("cost_usd"))
        .otherwise(0.0)
        .alias("projected_cost_usd"),
    )
    table = summed(
        marked.lazy(),
        ["route"],
        extra=[
            pl.col(user)
            .filter(pl.col("_refused"))
            .n_unique()
            .cast(pl.Int64)
            .alias("refused_users"),
            pl.col("ts").filter(pl.col("_refused")).min().alias("first_refused"),
        ],
    )
    refused = marked.filter(pl.col("_refused"))
    users = (
        refused.group_by("route", user)
        .agg(
            pl.len().cast(pl.Int64).alias("refused_requests"),
            pl.col("cost_usd").sum().alias("avoided_usd"),
        )
        .sort(["route", "refused_requests", user], descending=[False, True, False], nulls_last=True)
    )
    windows = (
        refused.group_by("route", "limit", "subject", "window_start")
        .agg(
            pl.len().cast(pl.Int64).alias("refused_requests"),
            pl.col("cost_usd").sum().alias("avoided_usd"),
        )
        .sort("route", "limit", "subject", "window_start")
    )
    names = ", ".join(f"{rule.route}.{rule.name}" for rule in rules)
    return LimitsReplay(WhatIf(f"rate limits: {names}", table, LIMIT_NOTES), users, windows)
