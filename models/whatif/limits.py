"""The gateway's rate limits (``gateway.toml`` routes' ``rate_limits``) replayed on the
period's requests, with the routes' budgets (``models.whatif.route_budgets``) in the same
time-ordered pass: which would have been refused or rerouted, per window, per user, and
the spend avoided.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
import pyarrow as pa

from core.warehouse import KEY_HASH, in_time_order
from models.whatif.common import TOKENS, WhatIf
from models.whatif.limits_kernel import GateArrays, LimitArrays, decide
from models.whatif.limits_tables import BUDGET_LIMIT, RouteDecisions, answer_tables
from models.whatif.route_budgets import (
    BUDGET_NOTES,
    BudgetGate,
    RouteBudget,
    budget_gate,
    priced_reroutes,
    spent_before,
)

__all__ = [
    "BUDGET_LIMIT",
    "LIMIT_NOTES",
    "TIE_ORDER",
    "LimitsReplay",
    "RateLimitRule",
    "limit_decisions",
    "replay_rate_limits",
    "subject_column",
    "unique_keys",
]

_NONE: Final = "-"  # the gateway's subject for a request without one
# a request's key: its event id, else its log id, or the caller's (a warehouse read's hash)
_KEY: Final = KEY_HASH
# requests at one time, folded from their keys' text, go in this column's order when given
# (the read's key hash, as requests that need no folding go): the text's order would let
# an unrelated failover elsewhere in the window reorder them
TIE_ORDER: Final = "_tie"
_POSITION: Final = "_position"  # a rerouted request's position in its route's requests
_SERVED: Final = ("provider", "model", "cost_source")  # of the attempt that answered
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
    """The replay: ``whatif.table`` one row per route with limits or a budget
    (``affected_requests`` the refused and rerouted ones, ``saving_usd`` the spend avoided,
    ``rerouted_requests``, ``refused_users``, ``first_refused``); ``users``: refused and
    rerouted requests and avoided spend per route and user (the disruption); ``windows``:
    the same per route, limit (``budget`` for a budget), subject and window start (a
    budget's: its period's)."""

    whatif: WhatIf
    users: pl.DataFrame
    windows: pl.DataFrame


def subject_column(per: str) -> str:
    """The requests' column a limit counts by: ``api_key`` for ``key``, ``route``, or
    ``metadata:<name>`` itself (the caller names the metadata value's column so)."""
    return {"key": "api_key", "route": "route"}.get(per, per)


def _one_per_request(
    requests: pl.LazyFrame, columns: list[str], *, checked: bool = False
) -> pl.DataFrame:
    """The attempts of one request (one ``event_id``) as one row at its first attempt:
    the first attempt's subjects, the answering (last) attempt's provider, model and cost
    source, the attempts' cost and tokens summed; in time order (ties by ``TIE_ORDER``
    when given, then by the request's key; the column is dropped). ``checked``: the
    caller's ``_request`` keys are known not to repeat."""
    names = requests.collect_schema().names()
    tokens = [name for name in TOKENS if name in names]
    filled = [pl.col("cost_usd").fill_null(0.0), *(pl.col(name).fill_null(0) for name in tokens)]
    if _KEY in names:  # the caller's keys, one a request
        frame = requests.with_columns(filled).collect()
        if not checked and not unique_keys(frame[_KEY]):
            raise ValueError(f"requests' {_KEY} repeats: give log_id (and event_id) to fold")
        # in time order, ties as the caller ordered them
        return frame if frame["ts"].is_sorted() else frame.sort("ts", maintain_order=True)
    key = pl.col("log_id")
    if "event_id" in names:
        key = pl.coalesce(pl.col("event_id"), pl.col("log_id"))
    order = ["ts", pl.col("step").fill_null(0)] if "step" in names else ["ts"]
    frame = requests.with_columns(key.alias(_KEY), *filled).collect()
    ties = [TIE_ORDER, _KEY] if TIE_ORDER in names else [_KEY]
    if unique_keys(frame[_KEY]):  # no failover: nothing to fold (the usual case)
        if TIE_ORDER not in names and in_time_order(frame, _KEY):  # as the read sorts them
            return frame
        # one sort of the two keys, then one gather of the rows: sorting the whole frame
        # twice (by attempt, then by request) took 17.7 s and 8 GB more for 10 M requests
        frame = frame[frame.select(pl.arg_sort_by("ts", *ties)).to_series()]
        return frame.drop(TIE_ORDER, strict=False)
    frame = frame.sort([*order, "log_id"])
    served = [name for name in _SERVED if name in names and name not in columns]
    return (
        frame.group_by(_KEY, maintain_order=True)
        .agg(
            pl.col("ts").first(),
            pl.col("log_id").first(),
            *(pl.col(name).first() for name in columns),
            *(pl.col(name).last() for name in served),
            *(pl.col(name).first() for name in ties[:-1]),
            pl.col("cost_usd").sum(),
            *(pl.col(name).sum() for name in tokens),
        )
        .sort("ts", *ties)
        .drop(TIE_ORDER, strict=False)
    )


def unique_keys(keys: pl.Series) -> bool:
    """Whether no two of ``keys`` are equal: their 64-bit hashes (unsigned 64-bit keys
    as they are) counted by Polars' ``n_unique`` (0.22 s for 10 M keys on the 2-core
    machine, where NumPy's sort took 0.19-0.76 s by CPU, ``is_unique`` 1 s and comparing
    the strings 6.4 s); the keys themselves only when two hashes meet."""
    hashes = keys if keys.dtype == pl.UInt64 else keys.hash()
    if hashes.n_unique() == hashes.len():  # (two nulls are one key twice)
        return True
    return keys.dtype != pl.UInt64 and bool(keys.is_unique().all())


def _limit_arrays(
    frame: pl.DataFrame, rules: Sequence[RateLimitRule]
) -> tuple[LimitArrays, list[pl.Series]]:
    """The loop's arrays of ``rules`` over one route's requests (``frame``, in time order)
    and each rule's subjects (by code)."""
    codes = np.empty((len(rules), frame.height), dtype=np.int64)  # (filled row by row)
    names = []
    for row, rule in enumerate(rules):
        code, subjects = subject_codes(frame[subject_column(rule.per)])
        codes[row] = code.to_numpy()
        names.append(subjects)
    tokens_in = frame["tokens_in"].cast(pl.Int64)
    ts = frame["ts"]  # (microseconds as they are: no copy)
    micro = isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_unit == "us"
    us = ts.to_physical() if micro else ts.dt.epoch("us")
    arrays = LimitArrays(
        us=us.to_numpy(),
        tokens_in=tokens_in.to_numpy(),
        tokens_total=(tokens_in + frame["tokens_out"].cast(pl.Int64)).to_numpy(),
        code=codes,
        window_s=np.array([rule.window_s for rule in rules], dtype=np.float64),
        sliding=np.array([rule.sliding for rule in rules], dtype=np.bool_),
        tokens=np.array([rule.unit != "requests" for rule in rules], dtype=np.bool_),
        limit=np.array([rule.limit for rule in rules], dtype=np.float64),
        subjects=np.array([names_.len() for names_ in names], dtype=np.int64),
    )
    return arrays, names


def subject_codes(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Each value's code (Int64) and the subjects by code (text; a null is the gateway's
    ``-``). An ``Enum`` column's codes are its own (its categories, a ``-`` added for
    nulls when missing); text is coded in order of first appearance (an enum's codes:
    0.15 s for 10 M requests, where ``replace_strict`` took 0.45 s)."""
    if isinstance(values.dtype, pl.Enum):
        subjects = values.dtype.categories
        code = values.to_physical().cast(pl.Int64)
        if values.null_count():
            at = subjects.index_of(_NONE)
            if at is None:
                at = subjects.len()
                subjects = subjects.append(pl.Series([_NONE]))
            code = code.fill_null(at)
        return code, subjects.rename(values.name)
    who = values.cast(pl.String).fill_null(_NONE)
    subjects = who.unique(maintain_order=True)
    return who.cast(pl.Enum(subjects)).to_physical().cast(pl.Int64), subjects


def _gate_arrays(gate: BudgetGate | None) -> GateArrays:
    if gate is None:
        none = np.empty(0, dtype=np.int64)
        return GateArrays(none, none.astype(np.float64), none.astype(np.float64), math.inf, False)
    reroute = gate.budget.action == "reroute"
    return GateArrays(gate.code, gate.cost, gate.spent, gate.budget.usd, reroute)


def _route_decisions(
    route: str, frame: pl.DataFrame, rules: Sequence[RateLimitRule], gate: BudgetGate | None
) -> RouteDecisions:
    """The loop's decisions over one route's requests (``frame``, in time order) with the
    route's ``rules`` and budget ``gate``."""
    arrays, subjects = _limit_arrays(frame, rules)
    budget = () if gate is None else (gate,)
    return RouteDecisions(
        route=route,
        frame=frame,
        decided=decide(frame.height, arrays, _gate_arrays(gate)),
        names=(*(rule.name for rule in rules), *(BUDGET_LIMIT for _ in budget)),
        subjects=(*subjects, *(pl.Series(gate.subjects, dtype=pl.String) for gate in budget)),
        window_s=np.array([*(rule.window_s for rule in rules), *(0.0 for _ in budget)]),
        starts=None if gate is None else gate.starts,
    )


def _refusals(part: RouteDecisions, limits: pl.Enum) -> pl.DataFrame:
    """Per request of one route (in time order): ``limit`` that refused it (the first of
    the route's that would pass, else ``BUDGET_LIMIT`` when the budget refused or
    rerouted it; of the ``limits`` enum), its ``subject`` (an enum of the route's
    subjects), the ``window_start`` and whether it was ``rerouted``; nulls (and false)
    when allowed. Enums, not text: 10 M requests' text took 1.5 s to write and longer to
    group."""
    decided = part.decided
    hit = decided.which >= 0
    by = np.where(hit, decided.which, 0)  # a refuser's number
    code = np.where(hit, decided.code, 0)
    offsets, everyone = part.everyone()  # the limits' subjects in order, then the budget's
    distinct = everyone.unique(maintain_order=True)  # two limits may share a subject
    position = everyone.cast(pl.Enum(distinct)).to_physical().to_numpy()
    start = part.window_starts(by, code, decided.window)
    limit_code = pl.Series(part.names, dtype=pl.String).cast(limits).to_physical().to_numpy()
    # (whole columns computed in NumPy, then nulls where allowed: scattering the 6.45 M
    # refusals of the benchmark's month into null columns took twice as long)
    kept = pl.Series(hit)
    subject = position[offsets[by] + code] if position.size else np.zeros(len(by), np.uint32)
    return pl.DataFrame(
        {
            "limit": _where(kept, limit_code[by]).cat.to(limits),
            "subject": _where(kept, subject).cat.to(pl.Enum(distinct)),
            "window_start": pl.Series(pa.array(start, pa.timestamp("us", "UTC"), mask=~hit)),
            "rerouted": pl.Series(decided.rerouted, dtype=pl.Boolean),
        }
    )


def _where(kept: pl.Series, values: np.ndarray) -> pl.Series:
    """``values`` where ``kept``, else null."""
    return pl.select(pl.when(kept).then(pl.Series(values))).to_series()


def _decided_routes(
    requests: pl.LazyFrame,
    rules: Sequence[RateLimitRule],
    budgets: Sequence[RouteBudget],
    *,
    user: str,
    earlier: pl.LazyFrame | None,
    checked: bool,
) -> list[RouteDecisions]:
    """The decisions of each route with ``rules`` or ``budgets``, by route name (see
    ``limit_decisions``)."""
    if len({budget.route for budget in budgets}) != len(budgets):
        raise ValueError("one budget a route")
    routes = sorted({rule.route for rule in rules} | {budget.route for budget in budgets})
    pers = [rule.per for rule in rules] + [budget.per for budget in budgets]
    subjects = sorted({subject_column(per) for per in pers} | {"route", user})
    frame = _one_per_request(
        requests.filter(pl.col("route").is_in(routes)), subjects, checked=checked
    )
    spent = None
    if earlier is not None and budgets:
        spent = spent_before(earlier, budgets, {per: subject_column(per) for per in pers})
    by_route = {budget.route: budget for budget in budgets}
    # Routes count apart (a limit's counters and a budget are per route): each alone.
    parts = []
    for route in routes:
        # the frame holds only these routes: one route's is all of it (a filter copied all
        # 10 M rows; partition_by took longer still)
        own = frame if len(routes) == 1 else frame.filter(pl.col("route") == route)
        budget = by_route.get(route)
        gate = None
        if budget is not None:
            who = own[subject_column(budget.per)].cast(pl.String).fill_null(_NONE)
            gate = budget_gate(own, who, budget, spent)
        route_rules = [rule for rule in rules if rule.route == route]
        parts.append(_route_decisions(route, own, route_rules, gate))
    return parts


def limit_decisions(
    requests: pl.LazyFrame,
    rules: Sequence[RateLimitRule],
    budgets: Sequence[RouteBudget] = (),
    *,
    user: str = "user",
    earlier: pl.LazyFrame | None = None,
    checked: bool = False,
) -> pl.DataFrame:
    """One row per request of the routes with ``rules`` or ``budgets`` (attempts folded,
    ``_request`` its key), in time order (ties by ``TIE_ORDER`` when given, else by the
    key), with ``limit`` (the rate limit that refused it, or ``BUDGET_LIMIT``: the budget
    refused or rerouted it; null: allowed as is), ``subject``, ``window_start`` and
    ``rerouted``. ``limit`` is an enum of the rules' names and ``BUDGET_LIMIT``;
    ``subject`` an enum of the subjects when one route is replayed, text when several
    are.

    ``requests``: costed requests (``log_id``, ``ts``, ``route``, ``cost_usd``, the token
    columns, the ``user`` column and each rule's and budget's ``subject_column``;
    ``event_id`` and ``step`` when known; ``provider``, ``model`` and ``cost_source`` to
    price reroutes). A ``_request`` column of keys (any type; ``log_id`` then unused)
    says the rows are one a request, in time order with ties as given (``ValueError`` if
    a key repeats; ``checked``: the caller has checked that none does, with
    ``unique_keys``, and it is not checked again). ``earlier``: the requests of the
    budgets' periods before the window (the same columns), whose recorded spend counts."""
    parts = _decided_routes(requests, rules, budgets, user=user, earlier=earlier, checked=checked)
    limits = pl.Enum(list(dict.fromkeys([*(rule.name for rule in rules), BUDGET_LIMIT])))
    frames = []
    for part in parts:
        decided = _refusals(part, limits)
        if len(parts) > 1:  # each route's subjects are its own enum: as text, to concatenate
            decided = decided.with_columns(pl.col("subject").cast(pl.String))
        frames.append(pl.concat([part.frame, decided], how="horizontal"))
    return pl.concat(frames, how="diagonal_relaxed")


def replay_rate_limits(
    requests: pl.LazyFrame,
    rules: Sequence[RateLimitRule],
    budgets: Sequence[RouteBudget] = (),
    *,
    user: str = "user",
    earlier: pl.LazyFrame | None = None,
    overrides: pl.DataFrame | None = None,
    cross_family_ratio: float | None = None,
    priced_as: Mapping[str, str] | None = None,
    checked: bool = False,
) -> LimitsReplay:
    """Replay ``rules`` and ``budgets`` on ``requests`` (see ``limit_decisions``): refused
    requests save their cost; rerouted ones cost what the reroute model charges for their
    tokens (``route_budgets.priced_reroutes``, at ``overrides``' prices or the
    catalogue's; ``cross_family_ratio`` as for a model switch; ``priced_as``: the
    gateway's provider names -> the catalogue providers they are priced as; ``checked``:
    as for ``limit_decisions``)."""
    if not rules and not budgets:
        raise ValueError("no rate limit or budget to replay")
    if user == "route":  # (the users table is keyed by route and user)
        raise ValueError("the user column cannot be the route")
    parts = _decided_routes(requests, rules, budgets, user=user, earlier=earlier, checked=checked)
    by_route = {budget.route: budget for budget in budgets if budget.action == "reroute"}
    projected, kept = [], 0
    for part in parts:
        hit, rerouted = part.decided.which >= 0, part.decided.rerouted
        # a refused request costs nothing, an allowed one its cost, a rerouted one its
        # reroute's price (below)
        after = np.where(hit, 0.0, part.frame["cost_usd"].to_numpy())
        budget = by_route.get(part.route)
        if budget is not None and rerouted.any():  # (the pricing columns are read only then)
            at = np.flatnonzero(rerouted)
            moved, unpriced = priced_reroutes(
                part.frame[at].with_columns(pl.Series(_POSITION, at)),
                [budget],
                overrides=overrides,
                cross_family_ratio=cross_family_ratio,
                priced_as=priced_as,
            )
            after[moved[_POSITION].to_numpy()] = moved["projected_cost_usd"].to_numpy()
            kept += unpriced
        projected.append(after)
    table, users, windows = answer_tables(parts, projected, user)
    return LimitsReplay(
        WhatIf(_change(rules, budgets), table, _notes(rules, budgets, kept)), users, windows
    )


def _change(rules: Sequence[RateLimitRule], budgets: Sequence[RouteBudget]) -> str:
    parts = []
    if rules:
        parts.append("rate limits: " + ", ".join(f"{rule.route}.{rule.name}" for rule in rules))
    if budgets:
        parts.append("budgets: " + "; ".join(str(budget) for budget in budgets))
    return "; ".join(parts)


def _notes(
    rules: Sequence[RateLimitRule], budgets: Sequence[RouteBudget], kept: int
) -> tuple[str, ...]:
    notes = list(LIMIT_NOTES if rules else LIMIT_NOTES[1:])
    if budgets:
        notes.extend(BUDGET_NOTES)
    if kept:
        notes.append(
            f"rerouted requests not priced from tokens (response-cache hits, models without "
            f"a price) keep their logged cost: {kept:,}"
        )
    return tuple(notes)
