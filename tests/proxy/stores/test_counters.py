"""Spend counters for budgets, in process and on a real redis-server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import redis

from proxy.errors import GatewayConfigError
from proxy.stores.counters import (
    RETENTION_S,
    MemorySpendCounter,
    RedisSpendCounter,
    SpendCounter,
    open_counter,
)
from tests.proxy.redis_server import flush, run_redis_server

T = TypeVar("T")
DAY = "day:2026-11-28"
MONTH = "month:2026-11"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real redis-server for this file's tests."""
    with run_redis_server() as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
def open_spend(request: pytest.FixtureRequest) -> Callable[[], SpendCounter]:
    """Opens a counter; for Redis each call is a new instance sharing one server."""
    if request.param == "memory":
        return MemorySpendCounter
    url: str = request.getfixturevalue("redis_url")
    flush(url)
    return lambda: RedisSpendCounter(url)


def test_add_returns_the_running_total_and_total_reads_it(
    open_spend: Callable[[], SpendCounter],
) -> None:
    async def main() -> tuple[list[float], float, float]:
        counter = open_spend()
        try:
            added = [await counter.add("key:ci", DAY, usd) for usd in (0.25, 1.5, 0.125)]
            return added, await counter.total("key:ci", DAY), await counter.total("nobody", DAY)
        finally:
            await counter.close()

    assert run(main()) == ([0.25, 1.75, 1.875], 1.875, 0.0)


def test_periods_and_keys_are_separate_counters(open_spend: Callable[[], SpendCounter]) -> None:
    async def main() -> list[float]:
        counter = open_spend()
        try:
            await counter.add("agent=summarizer", DAY, 2.0)
            await counter.add("agent=summarizer", MONTH, 2.0)
            await counter.add("agent=summarizer", MONTH, 3.5)
            await counter.add("agent=planner", MONTH, 0.5)
            return [
                await counter.total("agent=summarizer", DAY),
                await counter.total("agent=summarizer", MONTH),
                await counter.total("agent=planner", MONTH),
                await counter.total("agent=planner", DAY),
            ]
        finally:
            await counter.close()

    assert run(main()) == [2.0, 5.5, 0.5, 0.0]


def test_a_negative_amount_refunds(open_spend: Callable[[], SpendCounter]) -> None:
    async def main() -> float:
        counter = open_spend()
        try:
            await counter.add("k", DAY, 3.0)
            return await counter.add("k", DAY, -1.25)
        finally:
            await counter.close()

    assert run(main()) == 1.75


def test_concurrent_adds_lose_nothing(open_spend: Callable[[], SpendCounter]) -> None:
    async def main() -> float:
        counter = open_spend()
        try:
            await asyncio.gather(*(counter.add("k", MONTH, 0.25) for _ in range(200)))
            return await counter.total("k", MONTH)
        finally:
            await counter.close()

    assert run(main()) == 50.0


@pytest.mark.parametrize("amount", [float("nan"), float("inf")])
def test_a_non_finite_amount_is_refused(
    open_spend: Callable[[], SpendCounter], amount: float
) -> None:
    async def main() -> float:
        counter = open_spend()
        try:
            with pytest.raises(ValueError, match="finite"):
                await counter.add("k", DAY, amount)
            return await counter.total("k", DAY)
        finally:
            await counter.close()

    assert run(main()) == 0.0


def test_memory_counters_expire_35_days_after_the_last_add() -> None:
    now = [1_000_000.0]

    async def main() -> list[float]:
        counter = MemorySpendCounter(clock=lambda: now[0])
        await counter.add("k", MONTH, 4.0)
        seen = []
        for t in (1_000_000.0 + RETENTION_S - 1, 1_000_000.0 + RETENTION_S):
            now[0] = t
            seen.append(await counter.total("k", MONTH))
        return seen

    assert RETENTION_S == 35 * 86_400
    assert run(main()) == [4.0, 0.0]


def test_redis_counters_expire_35_days_after_the_last_add(redis_url: str) -> None:
    flush(redis_url)

    async def main() -> None:
        counter = RedisSpendCounter(redis_url)
        try:
            await counter.add("team=search", MONTH, 1.0)
        finally:
            await counter.close()

    run(main())
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys("*") == [b"aigw:spend:{team=search}:month:2026-11"]
        ttl = client.ttl(b"aigw:spend:{team=search}:month:2026-11")
        assert RETENTION_S - 5 <= ttl <= RETENTION_S
    finally:
        client.close()


def test_two_redis_counters_share_totals(redis_url: str) -> None:
    flush(redis_url)

    async def main() -> float:
        a, b = RedisSpendCounter(redis_url), RedisSpendCounter(redis_url)
        try:
            await a.add("k", DAY, 1.5)
            await b.add("k", DAY, 2.5)
            return await a.total("k", DAY)
        finally:
            await a.close()
            await b.close()

    assert run(main()) == 4.0


def test_open_counter_picks_the_store_from_the_url() -> None:
    assert isinstance(open_counter(None), MemorySpendCounter)
    shared = open_counter("redis://:pw@127.0.0.1:6399/0")
    assert isinstance(shared, RedisSpendCounter)
    run(shared.close())
    with pytest.raises(GatewayConfigError, match=r"budgets\.url") as info:
        open_counter("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(info.value)
