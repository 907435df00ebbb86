"""Spend counters for the gateway's budgets: USD per key per period, in process or on Redis.

``proxy.policy.controls`` builds both strings: ``key`` names a route and who spends in it
(``"<route>:<gateway key id, route name or metadata value>"``) and ``period`` the budget
period (``"day:2026-11-28"``, ``"month:2026-11"``). A counter lives about :data:`RETENTION_S` after
its last add, long enough for a monthly budget and its month-end report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol, cast

from proxy.stores.backends import open_redis, redis_errors, redis_or_memory

__all__ = [
    "RETENTION_S",
    "MemorySpendCounter",
    "RedisSpendCounter",
    "SpendCounter",
    "open_counter",
]

#: How long a counter is kept after its last add: 35 days, in seconds.
RETENTION_S = 35 * 86_400


class SpendCounter(Protocol):
    """Running USD totals per (key, period). Safe to share between tasks of one event loop."""

    async def add(self, key: str, period: str, amount_usd: float) -> float:
        """Add ``amount_usd`` (USD, may be negative for a refund) and return the new total."""
        ...

    async def total(self, key: str, period: str) -> float:
        """The total in USD; 0.0 for a counter never added to or expired."""
        ...

    async def close(self) -> None:
        """Release the counter's connections."""
        ...


def _check(amount_usd: float) -> None:
    if not math.isfinite(amount_usd):
        raise ValueError(f"spend must be a finite number of USD, got {amount_usd!r}")


class MemorySpendCounter:
    """Totals in this process: lost on restart (the warehouse stays the record of spend).

    Counters idle for :data:`RETENTION_S` by ``clock`` (unix seconds, injectable) read as 0
    and are dropped every ``sweep_every`` adds. Not thread-safe; atomic per event loop.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.time, sweep_every: int = 10_000
    ) -> None:
        self._totals: dict[tuple[str, str], tuple[float, float]] = {}  # total, last add
        self._clock = clock
        self._sweep_every = sweep_every
        self._adds = 0

    async def add(self, key: str, period: str, amount_usd: float) -> float:
        """See :meth:`SpendCounter.add`."""
        _check(amount_usd)
        now = self._clock()
        new = await self.total(key, period) + amount_usd
        self._totals[(key, period)] = (new, now)
        self._adds += 1
        if self._adds % self._sweep_every == 0:
            cutoff = now - RETENTION_S
            for k in [k for k, (_, at) in self._totals.items() if at <= cutoff]:
                del self._totals[k]
        return new

    async def total(self, key: str, period: str) -> float:
        """See :meth:`SpendCounter.total`."""
        entry = self._totals.get((key, period))
        if entry is None or entry[1] <= self._clock() - RETENTION_S:
            return 0.0
        return entry[0]

    async def close(self) -> None:
        """Nothing to release."""


class RedisSpendCounter:
    """Totals on a Redis server, shared by every gateway instance pointing at it.

    Keys are ``aigw:spend:{<key>}:<period>``, added to with ``INCRBYFLOAT`` (atomic on the
    server; Redis keeps a long double and prints up to 17 significant digits) and expiring
    :data:`RETENTION_S` after the last add. Owns its pooled client; :meth:`close` releases it.
    """

    PREFIX = "aigw:spend:"

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis = open_redis(url, what="budgets.url")

    def _key(self, key: str, period: str) -> str:
        return f"{self.PREFIX}{{{key}}}:{period}"

    async def add(self, key: str, period: str, amount_usd: float) -> float:
        """See :meth:`SpendCounter.add`. One round trip (a MULTI with the expiry)."""
        _check(amount_usd)
        name = self._key(key, period)
        async with (
            redis_errors(self.url, what="spend counter"),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            pipe.incrbyfloat(name, amount_usd)
            pipe.expire(name, RETENTION_S)
            new, _ = await pipe.execute()
        return float(new)

    async def total(self, key: str, period: str) -> float:
        """See :meth:`SpendCounter.total`."""
        async with redis_errors(self.url, what="spend counter"):
            value = await self._redis.get(self._key(key, period))
        return 0.0 if value is None else float(cast(bytes, value))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_counter(url: str | None) -> SpendCounter:
    """Spend counters in this process or on the Redis server ``url`` names; see
    :func:`proxy.stores.backends.redis_or_memory` for the URLs and the error."""
    redis_url = redis_or_memory(url, setting="budgets.url", kept="counters")
    return MemorySpendCounter() if redis_url is None else RedisSpendCounter(redis_url)
