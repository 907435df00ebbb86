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

from collections.abc import Sequence
from dataclasses import dataclass
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
    the first attempt's subjects, the attempts' cost and tokens summed; in time order
    (ties by the request's key)."""
    names = requests.collect_schema().names()
    key = pl.col("log_id")
    if "event_id" in names:
        key = pl.coalesce(pl.col("event_id"), pl.col("log_id"))
    order = ["ts", pl.col("step").fill_null(0)] if "step" in names else ["ts"]
    frame = (
        requests.with_columns(
            key.alias("_request"),
            pl.col("cost_usd").fill_null(0.0),
            pl.col("tokens_in").fill_null(0),
            pl.col("tokens_out").fill_null(0),
        )
        .sort([*order, "log_id"])
        .collect()
    )
    if frame["_request"].is_unique().all():  # no failover: nothing to fold (the usual case)
        return frame.sort("ts", "_request", maintain_order=True)
    return (
        frame.group_by("_request", maintain_order=True)
        .agg(
            pl.col("ts").first(),
            *(pl.col(name).first() for name in columns),
            pl.col("cost_usd").sum(),
            pl.col("tokens_in").sum(),
            pl.col("tokens_out").sum(),
        )
        .sort("ts", "_request")
    )


@dataclass(slots=True)
class _Counts:
    """One limit's columns over one route's requests (codes of the subject, window index,
    previous window's weight, charge before the call and once allowed) and its counters
    per subject code (window index, current and previous counts)."""

    rule: RateLimitRule
    subjects: list[str]
    code: list[int]
    index: list[int]
    weight: list[float]
    check: list[int]
    charge: list[int]
    window: list[int]
    current: list[float]
    previous: list[float]


def _counts(frame: pl.DataFrame, rule: RateLimitRule) -> _Counts:
    """The columns the loop reads, computed once in Polars."""
    who = frame[subject_column(rule.per)].cast(pl.String).fill_null(_NONE)
    subjects = who.unique(maintain_order=True)
    code = who.replace_strict(subjects, pl.int_range(subjects.len(), eager=True))
    seconds = frame["ts"].dt.epoch("us").cast(pl.Float64) / 1e6
    index = (seconds / rule.window_s).floor()
    weight = 1.0 - (seconds - index * rule.window_s) / rule.window_s
    requests = rule.unit == "requests"
    ones = pl.repeat(1, frame.height, eager=True, dtype=pl.Int64)
    return _Counts(
        rule=rule,
        subjects=subjects.to_list(),
        code=code.to_list(),
        index=index.cast(pl.Int64).to_list(),
        weight=weight.to_list() if rule.sliding else [0.0] * frame.height,
        check=(ones if requests else frame["tokens_in"]).to_list(),
        charge=(ones if requests else frame["tokens_in"] + frame["tokens_out"]).to_list(),
        window=[-(2**62)] * subjects.len(),
        current=[0.0] * subjects.len(),
        previous=[0.0] * subjects.len(),
    )


def _refusals(frame: pl.DataFrame, rules: Sequence[RateLimitRule]) -> pl.DataFrame:
    """Per request of one route (in time order) with the route's ``rules``: ``limit`` that
    refused it (the first of the route's that would pass), its ``subject`` and the
    ``window_start``; nulls when allowed."""
    limits = [_counts(frame, rule) for rule in rules]
    which: list[int | None] = []  # the refusing limit's position
    whom: list[str | None] = []
    start: list[float | None] = []  # the window's start, unix seconds
    for at in range(frame.height):
        refusal = None
        for position, counts in enumerate(limits):
            who, index = counts.code[at], counts.index[at]
            if counts.window[who] != index:  # a new window: current becomes previous
                last = counts.window[who] == index - 1
                counts.previous[who] = counts.current[who] if last else 0.0
                counts.current[who], counts.window[who] = 0.0, index
            used = counts.previous[who] * counts.weight[at] + counts.current[who]
            if used + counts.check[at] > counts.rule.limit + _EPS:
                refusal = (position, counts.subjects[who], index * counts.rule.window_s)
                break
        if refusal is None:
            for counts in limits:
                counts.current[counts.code[at]] += counts.charge[at]
            which.append(None)
            whom.append(None)
            start.append(None)
        else:
            which.append(refusal[0])
            whom.append(refusal[1])
            start.append(refusal[2])
    names = pl.Series([rule.name for rule in rules], dtype=pl.String)
    return pl.DataFrame(
        {
            "limit": pl.Series(which, dtype=pl.Int64).replace_strict(
                pl.int_range(len(rules), eager=True), names, default=None
            ),
            "subject": pl.Series(whom, dtype=pl.String),
            "window_start": (pl.Series(start, dtype=pl.Float64) * 1e6)
            .cast(pl.Int64)
            .cast(pl.Datetime("us", "UTC")),
        }
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
    # Routes count apart (a limit's counters are per route): each is replayed alone.
    parts = []
    for route in routes:
        own = frame.filter(pl.col("route") == route)
        decided = _refusals(own, [rule for rule in rules if rule.route == route])
        parts.append(pl.concat([own, decided], how="horizontal"))
    marked = pl.concat(parts).with_columns(
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
