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

__all__ = ["Decisions", "GateArrays", "LimitArrays", "decide"]

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


_compiled: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None


def _kernel() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``_loop`` compiled (once a process; Numba imported on demand: 0.3 s)."""
    global _compiled  # noqa: PLW0603 - one compiled loop a process
    if _compiled is None:
        numba: Any = importlib.import_module("numba")  # on demand (see above); untyped
        # one signature, compiled once (``decide`` hands over exactly these types)
        ints, vector, real = numba.int64[:, ::1], numba.int64[::1], numba.float64[::1]
        flags = numba.boolean[::1]
        signature = numba.types.Tuple((vector, vector, vector, flags))(
            numba.int64, vector, vector, vector, ints, real, flags, flags, real, vector,
            vector, real, real, numba.float64, numba.boolean,
        )  # fmt: skip
        try:
            _compiled = numba.njit(signature, cache=True, nogil=True)(_loop)
        except RuntimeError:  # no writable cache folder: compiled in each process (about 1 s)
            _compiled = numba.njit(signature, nogil=True)(_loop)
    return _compiled


def _owned(array: np.ndarray, dtype: type) -> np.ndarray:
    """``array`` as a C-ordered, writable array of ``dtype`` (copied only if it is not):
    the one type the compiled loop takes (a read-only view, as Polars hands out, would be
    another type to compile)."""
    return np.require(array, dtype=dtype, requirements=["C", "W"])


def decide(n: int, limits: LimitArrays, gate: GateArrays) -> Decisions:
    """Replay ``n`` requests of one route in time order: for each, its limits first (a
    request is refused by the first limit whose count, the previous window's weighted by
    its weight plus the current one's, plus the charge before the call (1, or the input
    tokens) would pass the limit + 1e-9; else every limit is charged its charge once
    allowed (1, or input plus output tokens)), then its budget (under it: allowed, its
    cost spent; over it: rerouted, or refused with the limits charged the input tokens
    only)."""
    which, whom, index, rerouted = _kernel()(
        int(n),
        _owned(limits.us, np.int64),
        _owned(limits.tokens_in, np.int64),
        _owned(limits.tokens_total, np.int64),
        _owned(limits.code, np.int64),
        _owned(limits.window_s, np.float64),
        _owned(limits.sliding, np.bool_),
        _owned(limits.tokens, np.bool_),
        _owned(limits.limit, np.float64),
        _owned(limits.subjects, np.int64),
        _owned(gate.code, np.int64),
        _owned(gate.cost, np.float64),
        np.array(gate.spent, dtype=np.float64),  # a copy: the loop spends it
        float(gate.usd),
        bool(gate.reroute),
    )
    return Decisions(which, whom, index, rerouted)
