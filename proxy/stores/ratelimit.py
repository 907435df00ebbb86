"""Request and token rate limits: fixed and sliding windows, in process or on Redis.

A limit counts ``requests`` or ``tokens`` per window for one key (a gateway key, a route, a
client IP or a metadata value such as the user; the gateway builds the key string). The
gateway calls :meth:`RateLimiter.acquire` before the provider call with the estimated input
tokens, answers 429 with ``Retry-After`` when it is refused, and calls
:meth:`RateLimiter.settle` afterwards with actual minus estimated tokens.

Windows:

- **Fixed**: one counter per (key, limit, window index), index = ``floor(now / window_s)``.
  Exact; a burst at the edge of two windows may pass up to twice the limit in ``window_s``.
- **Sliding** (Cloudflare's weighted window): ``estimate = previous * (1 - elapsed) + current``
  where ``elapsed`` is the fraction of the current fixed window gone. Two counters, no log of
  requests. It assumes the previous window's traffic was spread evenly: exact then; otherwise
  the estimate of the last ``window_s`` seconds is off by at most ``previous * elapsed`` too
  low (that traffic came late in its window) or ``previous * (1 - elapsed)`` too high (early).

Windows are aligned to the unix epoch of the caller's clock, so instances that share Redis must
keep their clocks in sync (NTP); a skew moves the window edges by that skew.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from proxy.stores.backends import open_redis, redis_errors, redis_or_memory

__all__ = [
    "Decision",
    "Limit",
    "MemoryRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "open_rate_limiter",
]


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` ``unit`` per ``window_s`` seconds; ``name`` is unique per key."""

    name: str
    unit: Literal["requests", "tokens"]
    limit: int
    window_s: float
    sliding: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one acquire.

    Refused: ``limit`` is the limit that refused (the one freeing up last when several do),
    ``retry_after_s`` the seconds until this cost would fit it if nothing else arrives, and
    ``remaining`` what it has left now. Allowed: ``limit`` is the tightest limit (least
    remaining as a share of its size), ``remaining`` its room after this charge, in its unit,
    and ``retry_after_s`` is 0. ``limit`` is ``None`` when no limit applied.
    """

    allowed: bool
    retry_after_s: float
    remaining: int
    limit: Limit | None

    @property
    def retry_after_header(self) -> str:
        """The ``Retry-After`` value: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter(Protocol):
    """Counts requests and tokens per key. Safe to share between tasks of one event loop."""

    async def acquire(
        self,
        key: str,
        limits: Sequence[Limit],
        cost: Mapping[str, int],
        now: float | None = None,
    ) -> Decision:
        """Charge ``cost`` (``{"requests": 1, "tokens": estimate}``) to every limit, or to
        none: when any limit would be exceeded nothing is charged and the decision says which
        and when to retry. ``now`` is unix seconds (default: the clock)."""
        ...

    async def settle(
        self, key: str, limits: Sequence[Limit], tokens_delta: int, now: float | None = None
    ) -> None:
        """Charge actual minus estimated tokens to the token limits' current windows (may be
        negative; a counter never goes below 0)."""
        ...

    async def close(self) -> None:
        """Release the limiter's connections."""
        ...


# Slack for float rounding in the sliding estimate: without it an estimate of exactly the
# limit can come out as limit + 4e-15 and refuse. It moves a decision only within 1e-9 of a
# unit of the boundary. The Lua script uses the same constant.
_EPS = 1e-9


def _window(limit: Limit, now: float) -> tuple[int, float]:
    """The window index at ``now`` and the weight of the previous window (sliding only)."""
    index = math.floor(now / limit.window_s)
    if not limit.sliding:
        return index, 0.0
    elapsed = (now - index * limit.window_s) / limit.window_s
    return index, 1.0 - elapsed


def _retry_after(
    limit: Limit, cost: int, *, current: int, previous: int, index: int, now: float
) -> float:
    """Seconds until ``cost`` fits ``limit`` given the window counts, if nothing else comes."""
    start = index * limit.window_s
    end = start + limit.window_s
    if cost > limit.limit:  # never fits: point at the next window, the gateway answers 429
        return end - now
    if not limit.sliding:
        return end - now
    room = limit.limit - cost
    if current <= room and previous > 0:
        # Within this window the previous count's weight falls until the estimate fits.
        at = end - limit.window_s * (room - current) / previous
    else:
        # In the next window this window's count becomes the previous one and decays in turn.
        at = end + limit.window_s - limit.window_s * room / current
    return max(0.0, at - now)


def decide(
    limits: Sequence[Limit],
    cost: Mapping[str, int],
    counts: Sequence[tuple[int, int]],
    now: float,
) -> Decision:
    """The decision for ``cost`` given each limit's (current, previous) window counts.

    Pure: the in-memory and the Redis limiter both call it, so they agree to the bit.
    """
    refused: list[tuple[float, Limit, int]] = []
    tightest: tuple[float, Limit, int] | None = None
    for limit, (current, previous) in zip(limits, counts, strict=True):
        index, weight = _window(limit, now)
        charge = cost.get(limit.unit, 0)
        used = previous * weight + current
        if used + charge > limit.limit + _EPS:
            wait = _retry_after(
                limit, charge, current=current, previous=previous, index=index, now=now
            )
            refused.append((wait, limit, max(0, math.floor(limit.limit - used + _EPS))))
            continue
        left = math.floor(limit.limit - used - charge + _EPS)
        share = left / limit.limit if limit.limit else 0.0
        if tightest is None or share < tightest[0]:
            tightest = (share, limit, left)
    if refused:
        wait, limit, left = max(refused, key=lambda r: r[0])
        return Decision(allowed=False, retry_after_s=wait, remaining=left, limit=limit)
    if tightest is None:
        return Decision(allowed=True, retry_after_s=0.0, remaining=0, limit=None)
    return Decision(allowed=True, retry_after_s=0.0, remaining=tightest[2], limit=tightest[1])


class MemoryRateLimiter:
    """Counters in this process (the default for one gateway instance).

    Per (key, limit name) it keeps the current window index and the current and previous
    counts, so memory is O(keys x limits); windows idle for two periods are swept every
    ``sweep_every`` acquires. ``acquire`` checks and charges without awaiting in between, so
    it is atomic with respect to other tasks on the loop (not thread-safe).
    """

    def __init__(self, *, sweep_every: int = 10_000) -> None:
        self._state: dict[tuple[str, str], list[float]] = {}  # [index, current, previous, window]
        self._sweep_every = sweep_every
        self._calls = 0

    def _counts(self, key: str, limit: Limit, now: float) -> list[float]:
        index = math.floor(now / limit.window_s)
        state = self._state.get((key, limit.name))
        if state is None or state[3] != limit.window_s:
            state = [index, 0, 0, limit.window_s]
            self._state[(key, limit.name)] = state
        elif state[0] != index:
            state[2] = state[1] if state[0] == index - 1 else 0
            state[1] = 0
            state[0] = index
        return state

    async def acquire(
        self,
        key: str,
        limits: Sequence[Limit],
        cost: Mapping[str, int],
        now: float | None = None,
    ) -> Decision:
        """See :meth:`RateLimiter.acquire`."""
        at = time.time() if now is None else now
        states = [self._counts(key, limit, at) for limit in limits]
        decision = decide(limits, cost, [(int(s[1]), int(s[2])) for s in states], at)
        if decision.allowed:
            for limit, state in zip(limits, states, strict=True):
                state[1] += cost.get(limit.unit, 0)
        self._calls += 1
        if self._calls % self._sweep_every == 0:
            self._sweep(at)
        return decision

    async def settle(
        self, key: str, limits: Sequence[Limit], tokens_delta: int, now: float | None = None
    ) -> None:
        """See :meth:`RateLimiter.settle`."""
        at = time.time() if now is None else now
        for limit in limits:
            if limit.unit == "tokens":
                state = self._counts(key, limit, at)
                state[1] = max(0, state[1] + tokens_delta)

    def _sweep(self, now: float) -> None:
        stale = [k for k, s in self._state.items() if s[0] < math.floor(now / s[3]) - 1]
        for k in stale:
            del self._state[k]

    async def close(self) -> None:
        """Nothing to release."""


# One round trip per acquire. KEYS: per limit, the current and previous window counters.
# ARGV: per limit (in order) the charge, the limit, the previous window's weight and the
# current counter's TTL in ms. Refused -> nothing charged. Returns the counts it read (before
# the charge) and 1/0 for allowed; Python recomputes the decision from them with decide().
_ACQUIRE = """
local n = #KEYS / 2
local counts = {}
local ok = 1
for i = 1, n do
  local cur = tonumber(redis.call('GET', KEYS[2*i-1]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[2*i]) or '0')
  counts[2*i-1] = cur
  counts[2*i] = prev
  local charge = tonumber(ARGV[4*i-3])
  if prev * tonumber(ARGV[4*i-1]) + cur + charge > tonumber(ARGV[4*i-2]) + 1e-9 then ok = 0 end
end
if ok == 1 then
  for i = 1, n do
    local charge = tonumber(ARGV[4*i-3])
    if charge ~= 0 then
      -- the ARGV string, not the Lua number: Lua 5.1 would print 1e+15 for large numbers
      redis.call('INCRBY', KEYS[2*i-1], ARGV[4*i-3])
      redis.call('PEXPIRE', KEYS[2*i-1], ARGV[4*i])
    end
  end
end
counts[2*n+1] = ok
return counts
"""

# KEYS: current token counters; ARGV[1]: the delta; ARGV[1+i]: TTL in ms of KEYS[i].
_SETTLE = """
for i = 1, #KEYS do
  local v = redis.call('INCRBY', KEYS[i], ARGV[1])
  if v < 0 then redis.call('SET', KEYS[i], 0) end
  redis.call('PEXPIRE', KEYS[i], ARGV[i+1])
end
return 1
"""


class RedisRateLimiter:
    """Counters on a Redis server, shared by every gateway instance pointing at it.

    One Lua script per acquire (atomic on the server: check all limits, charge all or none).
    Counter keys are ``aigw:rl:{<key>}:<limit name>:<window index>``; the braces keep one
    key's counters in one Redis Cluster slot. A counter lives until the end of the window
    after its own (a sliding window reads it as the previous one). The limiter owns its pooled
    client; :meth:`close` releases it.
    """

    PREFIX = "aigw:rl:"

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis = open_redis(url, what="rate_limits.url")
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._settle = self._redis.register_script(_SETTLE)

    def _key(self, key: str, limit: Limit, index: int) -> str:
        return f"{self.PREFIX}{{{key}}}:{limit.name}:{index}"

    @staticmethod
    def _ttl_ms(limit: Limit, index: int, now: float) -> int:
        return max(1, math.ceil(((index + 2) * limit.window_s - now) * 1000))

    async def acquire(
        self,
        key: str,
        limits: Sequence[Limit],
        cost: Mapping[str, int],
        now: float | None = None,
    ) -> Decision:
        """See :meth:`RateLimiter.acquire`."""
        at = time.time() if now is None else now
        if not limits:
            return decide(limits, cost, [], at)
        keys: list[str] = []
        args: list[str | int] = []
        for limit in limits:
            index, weight = _window(limit, at)
            keys += [self._key(key, limit, index), self._key(key, limit, index - 1)]
            # repr() round-trips a float exactly, so Lua compares the same double as decide().
            args += [cost.get(limit.unit, 0), limit.limit, repr(weight)]
            args.append(self._ttl_ms(limit, index, at))
        async with redis_errors(self.url, what="rate limiter"):
            raw = await self._acquire(keys=keys, args=args)
        counts = [(int(raw[2 * i]), int(raw[2 * i + 1])) for i in range(len(limits))]
        return decide(limits, cost, counts, at)

    async def settle(
        self, key: str, limits: Sequence[Limit], tokens_delta: int, now: float | None = None
    ) -> None:
        """See :meth:`RateLimiter.settle`."""
        at = time.time() if now is None else now
        tokens = [limit for limit in limits if limit.unit == "tokens"]
        if not tokens or tokens_delta == 0:
            return
        keys: list[str] = []
        ttls: list[int] = []
        for limit in tokens:
            index, _ = _window(limit, at)
            keys.append(self._key(key, limit, index))
            ttls.append(self._ttl_ms(limit, index, at))
        async with redis_errors(self.url, what="rate limiter"):
            await self._settle(keys=keys, args=[tokens_delta, *ttls])

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_rate_limiter(url: str | None) -> RateLimiter:
    """A rate limiter in this process or on the Redis server ``url`` names; see
    :func:`proxy.stores.backends.redis_or_memory` for the URLs and the error."""
    redis_url = redis_or_memory(url, setting="rate_limits.url", kept="limits")
    return MemoryRateLimiter() if redis_url is None else RedisRateLimiter(redis_url)
