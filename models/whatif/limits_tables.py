"""The rate-limit replay's answer (its three tables) summed from the loop's arrays.

The loop (``limits_kernel.decide``) says per request which limit or budget refused or
rerouted it. The answer's tables were grouped from per-request decision columns (a limit,
a subject, a window start, nulls where allowed): for the benchmark's month of 10 M
requests, 1.3 s to write the columns and 1.3 s to group them. Here each table is summed
from the arrays themselves (NumPy's ``bincount`` per user, one compiled pass for the
windows, plain sums per route), in request order, and only its few rows become text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from models.whatif.common import shaped
from models.whatif.limits_kernel import Decisions, RefusalGroups, refusal_groups

__all__ = ["BUDGET_LIMIT", "RouteDecisions", "answer_tables"]

BUDGET_LIMIT: Final = "budget"  # the ``limit`` of a request a route's budget refused or rerouted


@dataclass(frozen=True, slots=True)
class RouteDecisions:
    """One route's replay: its requests (``frame``, one a request, in time order, with
    ``ts`` and ``cost_usd`` without nulls), the loop's ``decided``, and per refuser (the
    route's limits in order, then its budget when it has one) its ``names`` (the
    budget's: ``BUDGET_LIMIT``), its ``subjects`` by code (the budget's: by (subject,
    period) code) and its window in seconds (``window_s``; the budget's 0, its periods'
    starts in seconds in ``starts``). A refuser's number is its position in ``names``."""

    route: str
    frame: pl.DataFrame
    decided: Decisions
    names: tuple[str, ...]
    subjects: tuple[pl.Series, ...]
    window_s: np.ndarray  # float64, one a refuser (the budget's 0)
    starts: np.ndarray | None  # float64, the budget's periods' starts by code; None: no budget

    @property
    def widths(self) -> np.ndarray:
        """Each refuser's number of subjects (codes)."""
        return np.array([names.len() for names in self.subjects], dtype=np.int64)

    def everyone(self) -> tuple[np.ndarray, pl.Series]:
        """Every refuser's subjects in one list (text; two refusers may share one), and
        where each refuser's begin in it: refuser ``r``'s code ``c`` is at
        ``offsets[r] + c``."""
        offsets = np.cumsum([0, *self.widths[:-1]], dtype=np.int64)
        if not self.subjects:
            return offsets, pl.Series([], dtype=pl.String)
        return offsets, pl.concat(self.subjects).cast(pl.String)

    def window_starts(self, which: np.ndarray, code: np.ndarray, window: np.ndarray) -> np.ndarray:
        """The start of each refusal's window (microseconds since the epoch, UTC): a
        limit's ``window * window_s``, the budget's period's (floats of seconds, as the
        loop computes windows)."""
        start = window * self.window_s[which]
        if self.starts is not None:
            budget = which == len(self.names) - 1
            start[budget] = self.starts[code[budget]]
        micros: np.ndarray = (start * 1e6).astype(np.int64)
        return micros


def _codes(values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Each value's code and the values by code (a null its own code, last): an enum's
    own codes, text coded in order of first appearance."""
    if not isinstance(values.dtype, pl.Enum):
        distinct = values.drop_nulls().unique(maintain_order=True).cast(pl.String)
        values = values.cast(pl.String).cast(pl.Enum(distinct))
    names = values.dtype.categories  # type: ignore[attr-defined]
    codes = values.to_physical().cast(pl.Int64)
    if values.null_count():
        codes = codes.fill_null(names.len())
        names = names.append(pl.Series([None], dtype=pl.String))
    return codes.to_numpy(), names


def answer_tables(
    routes: Sequence[RouteDecisions], projected: Sequence[np.ndarray], user: str
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The replay's tables from ``routes``' decisions and each request's ``projected``
    cost (0 when refused, the reroute's price when rerouted, else its cost): per route
    (``LimitsReplay.whatif``'s table), per route and ``user``, per route, refuser,
    subject and window start (``LimitsReplay``'s ``users`` and ``windows``)."""
    sums, users, windows = [], [], []
    for part, cost_after in zip(routes, projected, strict=True):
        cost = part.frame["cost_usd"].to_numpy()
        hit = part.decided.which >= 0
        rerouted = part.decided.rerouted
        codes, names = _codes(part.frame[user])
        groups = refusal_groups(part.decided, part.widths, cost - cost_after, (codes, names.len()))
        refused = hit & ~rerouted
        ts = part.frame["ts"]  # (in time order: the first refused is the earliest)
        first = ts.slice(int(np.argmax(refused)), 1) if refused.any() else ts.clear(1)
        sums.append(
            pl.DataFrame(
                {
                    "route": [part.route],
                    "requests": [part.frame.height],
                    "affected_requests": [int(np.count_nonzero(hit))],
                    "current_cost_usd": [float(cost.sum())],
                    "projected_cost_usd": [float(cost_after.sum())],
                    "rerouted_requests": [int(np.count_nonzero(rerouted))],
                    "refused_users": [int(np.count_nonzero(groups.user_refused))],
                    "first_refused": first,
                },
                schema_overrides={"requests": pl.Int64, "refused_users": pl.Int64},
            )
        )
        users.append(_users(part.route, user, names, groups))
        windows.append(_windows(part, groups))
    table = shaped(pl.concat(sums).lazy(), ["route"]).collect()
    by_user = (
        pl.concat(users)
        .sort(["route", "refused_requests", "rerouted_requests", user],
              descending=[False, True, True, False], nulls_last=True)
    )  # fmt: skip
    # each route's windows come sorted (routes in order: ``_decided_routes``)
    return table, by_user, pl.concat(windows)


def _users(route: str, user: str, names: pl.Series, groups: RefusalGroups) -> pl.DataFrame:
    """The refused and rerouted requests and the spend they avoided per user (of
    ``names``, by code) with any."""
    present = np.flatnonzero(groups.user_refused + groups.user_rerouted)
    return pl.DataFrame(
        {
            "route": pl.Series([route] * present.size, dtype=pl.String),
            user: names.gather(present).cast(pl.String),
            "refused_requests": groups.user_refused[present],
            "rerouted_requests": groups.user_rerouted[present],
            "avoided_usd": groups.user_avoided[present],
        }
    )


def _windows(part: RouteDecisions, groups: RefusalGroups) -> pl.DataFrame:
    """The refused and rerouted requests and the spend they avoided per refuser name,
    subject and window start, sorted by them (as text sorts: by ranks, where sorting the
    text of the benchmark month's 216,000 windows took 0.1 s)."""
    offsets, everyone = part.everyone()
    subject = offsets[groups.which] + groups.code
    names = pl.Series(part.names, dtype=pl.String)
    start = part.window_starts(groups.which, groups.code, groups.window)
    order = np.lexsort(
        (
            start,
            everyone.rank("dense").to_numpy()[subject],
            names.rank("dense").to_numpy()[groups.which],
        )
    )
    windows = pl.DataFrame(
        {
            "route": pl.Series([part.route] * order.size, dtype=pl.String),
            "limit": names.gather(groups.which[order]),
            "subject": everyone.gather(subject[order]),
            "window_start": pl.Series(start[order]).cast(pl.Datetime("us", "UTC")),
            "refused_requests": groups.refused[order],
            "rerouted_requests": groups.rerouted[order],
            "avoided_usd": groups.avoided[order],
        }
    )
    if names.n_unique() == names.len():
        return windows
    # two refusers of one name (the gateway allows two limits of a name, or a limit
    # called ``budget``): their groups of one subject and window start are one row, as
    # the table's keys say (they come next to each other, in order)
    keys = ["route", "limit", "subject", "window_start"]
    summed = pl.col("refused_requests", "rerouted_requests", "avoided_usd").sum()
    return windows.group_by(keys, maintain_order=True).agg(summed)
