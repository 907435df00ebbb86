"""The rate-limit and route-budget replay's loop over one route's requests, compiled.

A request's decision depends on every decision before it (a refused request charges
nothing; a route's limits are charged together; a budget's spend follows the answers),
so the replay goes request by request. In Python that loop took about 3 µs a request
with two limits (30 s for a month of 10 M requests); compiled by Numba (LLVM) it takes a
few nanoseconds. The rule is ``models.whatif.limits``' (documented there); this module
holds only the loop, over plain arrays, and compiles it on first use (kept in Numba's
cache beside the module, so later processes load it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "SOURCES",
    "Decisions",
    "GateArrays",
    "LimitArrays",
    "RefusalGroups",
    "decide",
    "refusal_groups",
]

EPS: Final = 1e-9  # the gateway's slack for float rounding in the sliding estimate
NO_WINDOW: Final = -(2**62)  # a subject's window before its first request


class LimitArrays(NamedTuple):
    """A route's limits over its requests (``n``): per request its time (microseconds
    since the epoch), input tokens and input plus output tokens; one row a limit of the
    subject's code; per limit its window (seconds), whether it slides, whether it counts
    tokens (else requests), the limit and its number of subjects. The loop derives each
    request's window index ``floor(t / window)`` and the previous window's weight
    ``1 - (t - index * window) / window`` (t in seconds, as float64: the same arithmetic
    as the Polars expressions it replaced, so the same decisions), and the charges
    (1 a request, or the tokens)."""

    us: np.ndarray  # int64 (n,)
    tokens_in: np.ndarray  # int64 (n,)
    tokens_total: np.ndarray  # int64 (n,)
    code: np.ndarray  # int64 (limits, n)
    window_s: np.ndarray  # float64 (limits,)
    sliding: np.ndarray  # bool (limits,)
    tokens: np.ndarray  # bool (limits,)
    limit: np.ndarray  # float64 (limits,)
    subjects: np.ndarray  # int64 (limits,)


class GateArrays(NamedTuple):
    """A route's budget over its requests: each request's (subject, period) code and
    cost, the spend per code before the first request, the budget (USD) and whether over
    it reroutes (else refuses). No budget: ``usd`` infinite, the arrays empty."""

    code: np.ndarray  # int64 (n,) or (0,)
    cost: np.ndarray  # float64 (n,) or (0,)
    spent: np.ndarray  # float64 (codes,)
    usd: float
    reroute: bool


class Decisions(NamedTuple):
    """Per request: ``which`` refused it (a limit's row, the number of limits for the
    budget, -1 for none), the refusing ``code`` (the limit's subject or the budget's
    (subject, period)), the limit's ``window`` index, and whether it was ``rerouted``."""

    which: np.ndarray  # int64
    code: np.ndarray  # int64
    window: np.ndarray  # int64
    rerouted: np.ndarray  # bool


def _loop(  # noqa: PLR0917 - the kernel takes plain arrays (Numba compiles no objects)
    n: int,
    us: np.ndarray,
    tokens_in: np.ndarray,
    tokens_total: np.ndarray,
    code: np.ndarray,
    window_s: np.ndarray,
    sliding: np.ndarray,
    tokens: np.ndarray,
    limit: np.ndarray,
    subjects: np.ndarray,
    gate_code: np.ndarray,
    gate_cost: np.ndarray,
    spent: np.ndarray,
    usd: float,
    reroute: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The replay (see ``decide``); ``spent`` is updated in place."""
    limits = code.shape[0]
    width = 1
    for count in subjects:
        width = max(width, count)
    seen = np.full((limits, width), NO_WINDOW, dtype=np.int64)
    current = np.zeros((limits, width), dtype=np.float64)
    previous = np.zeros((limits, width), dtype=np.float64)
    which = np.full(n, -1, dtype=np.int64)
    whom = np.full(n, -1, dtype=np.int64)
    index = np.zeros(n, dtype=np.int64)
    rerouted = np.zeros(n, dtype=np.bool_)
    gated = gate_code.shape[0] > 0
    now = np.zeros(limits, dtype=np.int64)  # this request's window index, per limit
    for at in range(n):
        seconds = us[at] / 1e6
        refused = -1
        for row in range(limits):
            who, span = code[row, at], window_s[row]
            start = np.floor(seconds / span)
            now[row] = np.int64(start)
            if seen[row, who] != now[row]:  # a new window: current becomes previous
                was = seen[row, who] == now[row] - 1
                previous[row, who] = current[row, who] if was else 0.0
                current[row, who] = 0.0
                seen[row, who] = now[row]
            weight = 1.0 - (seconds - start * span) / span if sliding[row] else 0.0
            used = previous[row, who] * weight + current[row, who]
            check = tokens_in[at] if tokens[row] else 1
            if used + check > limit[row] + EPS:
                refused = row
                break
        if refused >= 0:
            which[at], whom[at] = refused, code[refused, at]
            index[at] = now[refused]
            continue
        over = gated and not spent[gate_code[at]] < usd  # a NaN spend is over, as before
        # the gateway charged the limits before the budget: a refusal keeps the estimate
        for row in range(limits):
            settled = tokens_total[at] if not over or reroute else tokens_in[at]
            current[row, code[row, at]] += settled if tokens[row] else 1
        if not gated:
            continue
        if not over:
            spent[gate_code[at]] += gate_cost[at]
        else:
            which[at], whom[at] = limits, gate_code[at]
            rerouted[at] = reroute
    return which, whom, index, rerouted


def _group_refusals(  # noqa: PLR0917 - plain arrays (as ``_loop``)
    which: np.ndarray,
    code: np.ndarray,
    window: np.ndarray,
    width: np.ndarray,
    rerouted: np.ndarray,
    avoided: np.ndarray,
    user: np.ndarray,
    users: int,
) -> tuple[np.ndarray, ...]:
    """The groups of ``refusal_groups`` (see there): the windows' six arrays, then the
    users' three."""
    most = 1
    for count in width:
        most = max(most, count)
    last = np.full((width.shape[0], most), -1, dtype=np.int64)  # each refuser's subject's group
    n = 0
    for who in which:
        n += who >= 0
    by, whom, at = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    refusals, reroutes = np.zeros(n, np.int64), np.zeros(n, np.int64)
    total = np.zeros(n, np.float64)
    user_refusals, user_reroutes = np.zeros(users, np.int64), np.zeros(users, np.int64)
    user_total = np.zeros(users, np.float64)
    groups = 0
    for row in range(which.shape[0]):
        who, what, when = which[row], code[row], window[row]
        if who < 0:  # allowed as is
            continue
        group = last[who, what]
        if group < 0 or at[group] != when:  # a subject's windows come in time order
            group = groups
            groups += 1
            by[group], whom[group], at[group] = who, what, when
            last[who, what] = group
        if rerouted[row]:
            reroutes[group] += 1
            user_reroutes[user[row]] += 1
        else:
            refusals[group] += 1
            user_refusals[user[row]] += 1
        total[group] += avoided[row]
        user_total[user[row]] += avoided[row]
    return (
        by[:groups], whom[:groups], at[:groups], refusals[:groups], reroutes[:groups],
        total[:groups], user_refusals, user_reroutes, user_total,
    )  # fmt: skip


# the compiled functions' Python sources, by name (a test runs them as they are)
SOURCES: Final[dict[str, Callable[..., Any]]] = {"loop": _loop, "refusals": _group_refusals}
_compiled: dict[str, Callable[..., Any]] = {}


def _kernel(name: str) -> Callable[..., Any]:
    """``_loop`` (``"loop"``) or ``_group_refusals`` (``"refusals"``) compiled (once a
    process; Numba imported on demand: 0.3 s)."""
    if name not in _compiled:
        numba: Any = importlib.import_module("numba")  # on demand (see above); untyped

        # one signature each, compiled once (the callers hand over exactly these types)
        def given(dtype: Any, dims: int = 1) -> Any:  # an input: C-ordered, read only
            return numba.types.Array(dtype, dims, "C", readonly=True)

        vector, real, flags = numba.int64[::1], numba.float64[::1], numba.boolean[::1]
        ints, reals, bools = given(numba.int64), given(numba.float64), given(numba.boolean)
        if name == "loop":
            signature = numba.types.Tuple((vector, vector, vector, flags))(
                numba.int64, ints, ints, ints, given(numba.int64, 2), reals, bools, bools,
                reals, ints, ints, reals, real, numba.float64, numba.boolean,
            )  # fmt: skip
        else:
            signature = numba.types.Tuple((*(vector,) * 5, real, vector, vector, real))(
                ints, ints, ints, ints, bools, reals, ints, numba.int64
            )
        try:
            _compiled[name] = numba.njit(signature, cache=True, nogil=True)(SOURCES[name])
        except RuntimeError:  # no writable cache folder: compiled in each process (about 1 s)
            _compiled[name] = numba.njit(signature, nogil=True)(SOURCES[name])
    return _compiled[name]


def _given(array: np.ndarray, dtype: type) -> np.ndarray:
    """``array`` as a C-ordered, read-only array of ``dtype`` (a view; copied only when
    it is of another type or order): the one type the compiled loops take for an input
    (Polars hands out read-only views; copying three columns of 10 M requests to make
    them writable took 0.04-0.33 s)."""
    given = np.require(array, dtype=dtype, requirements=["C"]).view()
    given.flags.writeable = False
    return given


def decide(n: int, limits: LimitArrays, gate: GateArrays) -> Decisions:
    """Replay ``n`` requests of one route in time order: for each, its limits first (a
    request is refused by the first limit whose count, the previous window's weighted by
    its weight plus the current one's, plus the charge before the call (1, or the input
    tokens) would pass the limit + 1e-9; else every limit is charged its charge once
    allowed (1, or input plus output tokens)), then its budget (under it: allowed, its
    cost spent; over it: rerouted, or refused with the limits charged the input tokens
    only)."""
    which, whom, index, rerouted = _kernel("loop")(
        int(n),
        _given(limits.us, np.int64),
        _given(limits.tokens_in, np.int64),
        _given(limits.tokens_total, np.int64),
        _given(limits.code, np.int64),
        _given(limits.window_s, np.float64),
        _given(limits.sliding, np.bool_),
        _given(limits.tokens, np.bool_),
        _given(limits.limit, np.float64),
        _given(limits.subjects, np.int64),
        _given(gate.code, np.int64),
        _given(gate.cost, np.float64),
        np.array(gate.spent, dtype=np.float64, order="C"),  # a copy: the loop spends it
        float(gate.usd),
        bool(gate.reroute),
    )
    return Decisions(which, whom, index, rerouted)


class RefusalGroups(NamedTuple):
    """The refused and rerouted requests grouped by refuser (``which``), its subject or
    (subject, period) ``code`` and ``window`` index, in order of each group's first
    request: per group its refused and rerouted requests and the spend avoided; and per
    user (by code) the same (``user_refused``, ``user_rerouted``, ``user_avoided``).
    Sums in request order."""

    which: np.ndarray  # int64
    code: np.ndarray  # int64
    window: np.ndarray  # int64
    refused: np.ndarray  # int64
    rerouted: np.ndarray  # int64
    avoided: np.ndarray  # float64
    user_refused: np.ndarray  # int64
    user_rerouted: np.ndarray  # int64
    user_avoided: np.ndarray  # float64


def refusal_groups(
    decided: Decisions,
    width: np.ndarray,
    avoided: np.ndarray,
    users: tuple[np.ndarray, int],
) -> RefusalGroups:
    """Group one route's refused and rerouted requests (``decided``, in time order;
    ``avoided``: the spend each request avoided) by refuser, code and window (``width``:
    per refuser, its number of codes), and by user (``users``: each request's user code,
    and how many codes). One pass, as a subject's windows come in time order (a hash
    grouping of the benchmark month's 6.45 M refusals took 0.3-0.5 s, NumPy's
    ``bincount`` per user 0.1 s)."""
    return RefusalGroups(
        *_kernel("refusals")(
            _given(decided.which, np.int64),
            _given(decided.code, np.int64),
            _given(decided.window, np.int64),
            _given(width, np.int64),
            _given(decided.rerouted, np.bool_),
            _given(avoided, np.float64),
            _given(users[0], np.int64),
            int(users[1]),
        )
    )
