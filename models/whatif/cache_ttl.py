"""Response-cache TTL replay: the period's identical requests under another TTL.

Identical requests are those with the same ``request_hash`` (the gateway's cache key
hash, else an MD5 of a plain request body; ``core.warehouse.read_requests``) on the same
gateway and model, and with ``per_key`` the same gateway key (aigw's gateway keeps one
cache per key unless a route says ``cache_scope = "shared"``; Cloudflare's cache is per
gateway). The replay rule, per such group in time order:

* only answered requests take part (status below 400, not rate-limited) that did not
  ask to skip the cache (``cache_skipped``: ``cf-aig-skip-cache``, logged by aigw's
  gateway): the others neither hit nor fill it;
* a request is a hit when an entry is alive: filled less than ``ttl`` before it; a hit
  does not extend the entry;
* any other request is a miss: it goes to the provider and fills the entry for ``ttl``;
* the cache starts empty at the window's start, except that a group's first request,
  when it was a hit, was filled before the window: it stays a hit and starts the entry.

The saving counts each change once against what really happened: a paid request that
the replay makes a hit saves its cost (``extra_hit_requests``); a real hit that the
replay makes a miss (a shorter TTL) costs what it would have cost (``lost_hit_requests``,
its ``saved_usd``). What the cache already saved (``cache_saved_usd``) is not counted
again. Otherwise the replay assumes every identical request may be cached: a route
without a cache or non-deterministic prompts make the real saving smaller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import numpy as np
import polars as pl

from core.warehouse import GROUP_CHECK, GROUP_HASH
from models.cache import ROUTE
from models.whatif.common import WhatIf, summed

__all__ = [
    "DEFAULT_CACHE_BY",
    "TTL_CHOICES",
    "parse_ttl",
    "replay_cache_ttl",
    "replay_cache_ttls",
    "replay_identified",
]

DEFAULT_CACHE_BY: Final = ROUTE
TTL_CHOICES: Final = {
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
}
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_GROUP: Final = ("gateway", "model", "request_hash")
_US: Final = 1_000_000


def parse_ttl(text: str) -> timedelta:
    """``5m``, ``1h``, ``24h``, ``90s``, ``2d`` (or bare seconds); ``ValueError`` otherwise."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit else value
    seconds = float(number) * (unit or 1)
    if not seconds > 0:
        raise ValueError(f"TTL {text!r} must be above 0")
    return timedelta(seconds=seconds)


def replay_cache_ttl(
    rollup: pl.LazyFrame,
    repeated: pl.LazyFrame,
    ttl: timedelta,
    *,
    by: Sequence[str] = DEFAULT_CACHE_BY,
    per_key: bool = False,
) -> WhatIf:
    """The window's traffic by ``by`` with the cache replayed under ``ttl``.

    ``rollup``: the window's rollup rows (scope already filtered) with ``requests``,
    ``cached_requests``, ``cost_usd``, ``saved_usd`` and the ``by`` columns: the
    current cost and what the cache saved. ``repeated``: the window's costed requests
    whose ``request_hash`` occurs at least twice (``ts``, ``gateway``, ``model``,
    ``request_hash``, ``status_code``, ``cached``, ``rate_limited``, ``cost_usd``,
    ``saved_usd``, ``api_key`` with ``per_key``, ``cache_skipped`` when known, and the
    ``by`` columns), same scope.
    """
    return replay_cache_ttls(rollup, repeated, [ttl], by=by, per_key=per_key)[0]


def replay_cache_ttls(
    rollup: pl.LazyFrame,
    repeated: pl.LazyFrame,
    ttls: Sequence[timedelta],
    *,
    by: Sequence[str] = DEFAULT_CACHE_BY,
    per_key: bool = False,
) -> list[WhatIf]:
    """``replay_cache_ttl`` for each of ``ttls``, the requests grouped and sorted once."""
    return replay_identified(
        rollup, _identified(repeated, per_key=per_key), ttls, by=by, per_key=per_key
    )


def replay_identified(
    rollup: pl.LazyFrame,
    identified: pl.DataFrame,
    ttls: Sequence[timedelta],
    *,
    by: Sequence[str] = DEFAULT_CACHE_BY,
    per_key: bool = False,
) -> list[WhatIf]:
    """``replay_cache_ttls`` of requests already narrowed to those that take part and
    identified: ``ts``, ``GROUP_HASH`` and ``GROUP_CHECK`` (equal in both: identical
    requests; with ``per_key``, same gateway key too), ``cached``, ``cost_usd``,
    ``saved_usd`` and the ``by`` columns (``core.warehouse.read_cacheable``'s frame)."""
    if any(ttl <= timedelta(0) for ttl in ttls):
        raise ValueError("the TTL must be above 0")
    answered = _ordered(identified)
    return [_replayed(rollup, answered, ttl, list(by), per_key) for ttl in ttls]


def _replayed(
    rollup: pl.LazyFrame,
    answered: _Sorted,
    ttl: timedelta,
    keys: list[str],
    per_key: bool,
) -> WhatIf:
    """One TTL's replay of the answered requests (``_ordered``), summed by ``keys``."""
    frame = answered.frame
    hits = np.zeros(frame.height, dtype=bool)
    if frame.height:
        ttl_us = int(ttl / timedelta(microseconds=1))
        hits[answered.order] = _replay(answered.ts, answered.starts, answered.cached, ttl_us)
    changed = frame.lazy().with_columns(pl.Series("replay_hit", hits))
    extra = (pl.col("replay_hit") & ~pl.col("cached")).alias("extra")
    lost = (~pl.col("replay_hit") & pl.col("cached")).alias("lost")
    deltas = (
        changed.filter(extra | lost)
        .group_by(keys)
        .agg(
            extra.sum().cast(pl.Int64).alias("extra_hit_requests"),
            lost.sum().cast(pl.Int64).alias("lost_hit_requests"),
            # the saving: a paid request served from the cache, less a real hit paid again
            (
                pl.when(extra).then(pl.col("cost_usd").fill_null(0.0)).otherwise(0.0)
                - pl.when(lost).then(pl.col("saved_usd").fill_null(0.0)).otherwise(0.0)
            )
            .sum()
            .alias("_saving"),
        )
        .with_columns(
            pl.lit(0, pl.Int64).alias("requests"),
            pl.lit(0, pl.Int64).alias("cached_requests"),
            pl.lit(0.0).alias("current_cost_usd"),
            pl.lit(0.0).alias("cache_saved_usd"),
        )
    )
    scope = rollup.select(
        *keys,
        pl.col("requests").cast(pl.Int64),
        pl.col("cached_requests").cast(pl.Int64),
        pl.lit(0, pl.Int64).alias("extra_hit_requests"),
        pl.lit(0, pl.Int64).alias("lost_hit_requests"),
        pl.col("cost_usd").fill_null(0.0).alias("current_cost_usd"),
        pl.col("saved_usd").fill_null(0.0).alias("cache_saved_usd"),
        pl.lit(0.0).alias("_saving"),
    )
    rows = pl.concat([scope, deltas.select(scope.collect_schema().names())], how="vertical_relaxed")
    rows = rows.with_columns(
        (pl.col("current_cost_usd") - pl.col("_saving")).alias("projected_cost_usd"),
        (pl.col("extra_hit_requests") + pl.col("lost_hit_requests")).alias("affected_requests"),
    )
    table = summed(
        rows,
        keys,
        extra=[
            pl.col("cached_requests").sum(),
            (
                pl.col("cached_requests").sum()
                + pl.col("extra_hit_requests").sum()
                - pl.col("lost_hit_requests").sum()
            ).alias("replay_cached_requests"),
            pl.col("extra_hit_requests").sum(),
            pl.col("lost_hit_requests").sum(),
            pl.col("cache_saved_usd").sum(),
        ],
    )
    return WhatIf(f"response cache TTL {_label(ttl)}", table, _notes(per_key))


def _identified(repeated: pl.LazyFrame, *, per_key: bool) -> pl.DataFrame:
    """The answered repeated requests that did not skip the cache, with their identity
    (``GROUP_HASH``, ``GROUP_CHECK``: Polars' 64-bit hashes of the group's columns, two
    seeds)."""
    group = [*_GROUP, "api_key"] if per_key else list(_GROUP)
    identity = pl.struct(group)
    skipped = (
        pl.col("cache_skipped").fill_null(False)
        if "cache_skipped" in repeated.collect_schema().names()
        else pl.lit(False)
    )
    return (
        repeated.filter(
            pl.col("request_hash").is_not_null()
            & ~pl.col("rate_limited").fill_null(False)
            & (pl.col("status_code").fill_null(200) < 400)
            & ~skipped
        )
        .with_columns(
            pl.col("cached").fill_null(False),
            identity.hash(seed=0).alias(GROUP_HASH),
            identity.hash(seed=1).alias(GROUP_CHECK),
        )
        .collect()
    )


@dataclass(frozen=True, slots=True)
class _Sorted:
    """The answered requests (``frame``), the ``order`` that sorts them by group and time,
    and in that order the arrays every TTL's replay reads: ``ts`` (microseconds),
    ``starts`` (a group's first request), ``cached``. (The frame itself is not gathered
    into that order: for 2.5 M requests Polars took 0.75 s, the hits' scatter back 0.02 s.)"""

    frame: pl.DataFrame
    order: np.ndarray
    ts: np.ndarray
    starts: np.ndarray
    cached: np.ndarray


def _ordered(answered: pl.DataFrame) -> _Sorted:
    """``answered`` sorted by group and time, once for every TTL.

    Two groups are merged only if both identity hashes collide (about 2^-128 a pair);
    neighbours sharing the first are told apart by the second. Sorting the hashes and
    times (numpy, ``_group_order``) instead of the strings takes 2.5 M requests in
    0.12-0.25 s; sorting or gathering the strings took 2 s (measured)."""
    empty = np.zeros(0, dtype=bool)
    if answered.is_empty():
        none = np.zeros(0, dtype=np.int64)
        return _Sorted(answered, none, none, empty, empty)
    ts = answered["ts"].dt.epoch("us").to_numpy()
    first = answered[GROUP_HASH].to_numpy()
    order, renumbered = _group_order(ts, first, answered[GROUP_CHECK].to_numpy())
    group = (first if renumbered is None else renumbered)[order]
    starts = np.empty(len(order), dtype=bool)
    starts[0] = True
    np.not_equal(group[1:], group[:-1], out=starts[1:])
    return _Sorted(answered, order, ts[order], starts, answered["cached"].to_numpy()[order])


def _group_order(
    ts: np.ndarray, first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """The order that sorts requests by group (hashes ``first``, ``second``) and time,
    and new group numbers when two groups share ``first`` (else None)."""
    order = _bucket_order(ts, first)
    if order is None:  # two groups share a bucket: the long way
        order = np.lexsort((ts, first))
    ordered, checks = first[order], second[order]
    if not ((ordered[1:] == ordered[:-1]) & (checks[1:] != checks[:-1])).any():
        return order, None
    # two groups share the first hash (about 2^-64 a pair): both order and number them
    order = np.lexsort((ts, second, first))
    change = (first[order][1:] != first[order][:-1]) | (second[order][1:] != second[order][:-1])
    renumbered = np.empty(len(order), dtype=np.uint64)
    renumbered[order] = np.cumsum(np.concatenate(([True], change))).astype(np.uint64)
    return order, renumbered


def _bucket_order(ts: np.ndarray, first: np.ndarray) -> np.ndarray | None:
    """``np.lexsort((ts, first))`` by one sort of 64-bit keys: the high bits of ``first``
    (its bucket) above each request's rank in time, then the ranks read back from the low
    bits (2.5 M requests: 0.12 s against 0.5 s). Groups that share a bucket come out
    interleaved in time order (with one group a request, a few pairs at 2.5 M requests):
    a stable sort by ``first`` of that nearly sorted order separates them. None past 2^40
    requests (no room for the bucket)."""
    count = len(ts)
    bits = max(1, count.bit_length())
    if bits > 40:
        return None
    by_time = np.argsort(ts, kind="stable")  # ties keep their order, as in lexsort
    rank = np.empty(count, dtype=np.uint64)
    rank[by_time] = np.arange(count, dtype=np.uint64)
    shift = np.uint64(bits)
    keys = np.sort(((first.astype(np.uint64) >> shift) << shift) | rank)
    order = by_time[(keys & np.uint64((1 << bits) - 1)).astype(np.int64)]
    ordered = first[order]
    bucket = keys >> shift
    if ((bucket[1:] == bucket[:-1]) & (ordered[1:] != ordered[:-1])).any():
        order = order[np.argsort(ordered, kind="stable")]  # time order kept in each group
    return order


def _replay(ts: np.ndarray, starts: np.ndarray, cached: np.ndarray, ttl_us: int) -> np.ndarray:
    """Replay hits of requests sorted by group and time (``starts`` marks each group's
    first; ``ts`` in microseconds).

    Vectorised: a request's successor, the first request of its group at or after its
    expiry, comes from one binary search over (group, time) keys; the fills are then
    followed from every group's first request at once, one step per round, so the rounds
    are the most fills of one group, not the requests. The keys are ``group * stride +
    time``; groups are taken in chunks small enough for them to fit in 63 bits."""
    hits = np.zeros(len(ts), dtype=bool)
    if not len(ts):
        return hits
    offset = (ts - ts.min()).astype(np.int64)
    stride = int(offset.max()) + ttl_us + 1
    firsts = np.flatnonzero(starts)
    per_chunk = max(1, _KEY_LIMIT // stride)
    for chunk in range(0, len(firsts), per_chunk):
        begin = int(firsts[chunk])
        stop = int(firsts[chunk + per_chunk]) if chunk + per_chunk < len(firsts) else len(ts)
        hits[begin:stop] = _replay_chunk(
            offset[begin:stop], starts[begin:stop], cached[begin:stop], ttl_us, stride
        )
    return hits


_KEY_LIMIT: Final = 2**62


def _replay_chunk(
    offset: np.ndarray, starts: np.ndarray, cached: np.ndarray, ttl_us: int, stride: int
) -> np.ndarray:
    group = np.cumsum(starts) - 1
    firsts = np.flatnonzero(starts)
    ends = np.append(firsts[1:], len(offset))[group]  # each row's group end (exclusive)
    key = group.astype(np.int64) * stride + offset
    # key + ttl stays below the next group's first key: stride > offset + ttl
    successor = np.searchsorted(key, key + ttl_us, side="left")
    fill = np.zeros(len(offset), dtype=bool)
    frontier = firsts
    while frontier.size:
        fill[frontier] = True
        following = successor[frontier]
        frontier = following[following < ends[frontier]]
    hits = ~fill
    hits[firsts] = cached[firsts]  # a group's first hit was filled before the window
    return hits


def _label(ttl: timedelta) -> str:
    seconds = int(ttl.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _notes(per_key: bool) -> tuple[str, ...]:
    shared = "one cache per gateway key" if per_key else "one cache per gateway (shared by keys)"
    return (
        f"identical requests: same request hash, gateway and model; {shared}",
        "assumes every identical request may be cached (deterministic prompts); requests "
        "sent with cf-aig-skip-cache (logged by aigw's gateway) are left out",
    )
