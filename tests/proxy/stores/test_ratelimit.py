"""The rate limiter: exact allow/deny sequences with an injected clock, in process and on a
real redis-server on 127.0.0.1 (the multi-instance case included)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import pytest

from proxy.errors import GatewayConfigError, StoreError
from proxy.stores.ratelimit import (
    Decision,
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    open_rate_limiter,
)
from tests.proxy.redis_server import flush, run_redis_server

T = TypeVar("T")

REQS = Limit(name="rpm", unit="requests", limit=3, window_s=10)
TOKENS = Limit(name="tpm", unit="tokens", limit=1000, window_s=60)
SLIDING = Limit(name="sliding", unit="requests", limit=10, window_s=10, sliding=True)
ONE = {"requests": 1}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real redis-server for this file's tests."""
    with run_redis_server() as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
def open_limiter(request: pytest.FixtureRequest) -> Callable[[], RateLimiter]:
    """Opens a limiter; for Redis each call is a new instance sharing one server."""
    if request.param == "memory":
        return MemoryRateLimiter
    url: str = request.getfixturevalue("redis_url")
    flush(url)
    return lambda: RedisRateLimiter(url)


async def sequence(
    limiter: RateLimiter,
    steps: Sequence[tuple[float, Mapping[str, int]]],
    limits: Sequence[Limit],
    key: str = "key-1",
) -> list[tuple[bool, float, int, str | None]]:
    """Acquire at each (now, cost); return (allowed, retry_after_s, remaining, limit name)."""
    out = []
    try:
        for now, cost in steps:
            d = await limiter.acquire(key, limits, cost, now=now)
            out.append((d.allowed, d.retry_after_s, d.remaining, d.limit and d.limit.name))
    finally:
        await limiter.close()
    return out


def test_fixed_window_allows_the_limit_then_refuses_until_the_next_window(
    open_limiter: Callable[[], RateLimiter],
) -> None:
    steps = [(100.0, ONE), (101.0, ONE), (102.5, ONE), (103.0, ONE), (109.5, ONE), (110.0, ONE)]
    assert run(sequence(open_limiter(), steps, [REQS])) == [
        (True, 0.0, 2, "rpm"),
        (True, 0.0, 1, "rpm"),
        (True, 0.0, 0, "rpm"),
        (False, 7.0, 0, "rpm"),  # the window [100, 110) ends in 7 s
        (False, 0.5, 0, "rpm"),
        (True, 0.0, 2, "rpm"),
    ]


def test_sliding_window_weights_the_previous_window_by_its_remaining_share(
    open_limiter: Callable[[], RateLimiter],
) -> None:
    steps = [(101.0, ONE)] * 10 + [
        (105.0, ONE),  # 10 in this window: fits when 10 * (1 - e) + 0 + 1 <= 10, at 111
        (111.0, ONE),  # estimate 10 * 0.9 + 0 = 9 -> allowed, now 10
        (112.0, ONE),  # 10 * 0.8 + 1 = 9 -> allowed, now 10
        (112.0, ONE),  # 8 + 2 + 1 > 10: fits when 10 * (1 - e) <= 7, at e = 0.3 -> 113
        (113.0, ONE),  # 7 + 2 + 1 = 10 -> allowed
        (125.0, ONE),  # previous window [110, 120) held 3: 3 * 0.5 + 0 + 1 -> remaining 7
    ]
    got = run(sequence(open_limiter(), steps, [SLIDING]))
    assert got[:10] == [(True, 0.0, 9 - i, "sliding") for i in range(10)]
    assert got[10:] == [
        (False, 6.0, 0, "sliding"),
        (True, 0.0, 0, "sliding"),
        (True, 0.0, 0, "sliding"),
        (False, 1.0, 0, "sliding"),
        (True, 0.0, 0, "sliding"),
        (True, 0.0, 7, "sliding"),
    ]


def test_tokens_are_estimated_then_settled_to_actual_usage(
    open_limiter: Callable[[], RateLimiter],
) -> None:
    async def main() -> list[tuple[bool, int]]:
        limiter = open_limiter()
        seen = []

        async def acquire(tokens: int) -> None:
            d = await limiter.acquire("k", [TOKENS], {"requests": 1, "tokens": tokens}, now=60.0)
            seen.append((d.allowed, d.remaining))

        try:
            await acquire(400)  # 400 charged
            await limiter.settle("k", [TOKENS], 200, now=61.0)  # used 600, not 400: 600
            await acquire(400)  # 1000
            await limiter.settle("k", [TOKENS], -300, now=62.0)  # used 100, not 400: 700
            await acquire(300)  # 1000
            await acquire(1)  # refused
            await limiter.settle("k", [TOKENS], -5000, now=63.0)  # never below 0
            await acquire(1000)
        finally:
            await limiter.close()
        return seen

    assert run(main()) == [(True, 600), (True, 0), (True, 0), (False, 0), (True, 0)]


def test_a_refused_acquire_charges_no_limit(open_limiter: Callable[[], RateLimiter]) -> None:
    limits = [Limit("rpm", "requests", 5, 60), TOKENS]
    steps: list[tuple[float, Mapping[str, int]]] = [
        (0.0, {"requests": 1, "tokens": 900}),
        (1.0, {"requests": 1, "tokens": 200}),  # tokens refuse: the request is not counted
        (2.0, {"requests": 1, "tokens": 100}),
        (3.0, {"requests": 1, "tokens": 0}),
        (4.0, {"requests": 1, "tokens": 0}),
        (5.0, {"requests": 1, "tokens": 0}),
        (6.0, {"requests": 1, "tokens": 0}),  # the sixth request refuses
    ]
    assert run(sequence(open_limiter(), steps, limits)) == [
        (True, 0.0, 100, "tpm"),  # 100/1000 tokens left is tighter than 4/5 requests
        (False, 59.0, 100, "tpm"),
        (True, 0.0, 0, "tpm"),
        (True, 0.0, 0, "tpm"),
        (True, 0.0, 0, "tpm"),
        (True, 0.0, 0, "rpm"),
        (False, 54.0, 0, "rpm"),
    ]


def test_when_several_limits_refuse_the_decision_names_the_one_freeing_last(
    open_limiter: Callable[[], RateLimiter],
) -> None:
    limits = [Limit("per-10s", "requests", 1, 10), Limit("per-60s", "requests", 1, 60)]
    steps = [(0.0, ONE), (5.0, ONE)]
    assert run(sequence(open_limiter(), steps, limits)) == [
        (True, 0.0, 0, "per-10s"),
        (False, 55.0, 0, "per-60s"),
    ]


def test_keys_and_limits_count_separately(open_limiter: Callable[[], RateLimiter]) -> None:
    async def main() -> list[bool]:
        limiter = open_limiter()
        limit = Limit("one", "requests", 1, 60)
        try:
            return [
                (await limiter.acquire(key, [limit], ONE, now=1.0)).allowed
                for key in ("user:ana", "user:bob", "user:ana", "ip:10.0.0.1")
            ]
        finally:
            await limiter.close()

    assert run(main()) == [True, True, False, True]


def test_a_cost_larger_than_the_limit_is_refused(open_limiter: Callable[[], RateLimiter]) -> None:
    steps = [(30.0, {"tokens": 1001})]
    assert run(sequence(open_limiter(), steps, [TOKENS])) == [(False, 30.0, 1000, "tpm")]


def test_no_limits_allow_everything(open_limiter: Callable[[], RateLimiter]) -> None:
    assert run(sequence(open_limiter(), [(1.0, ONE)], [])) == [(True, 0.0, 0, None)]


def test_concurrent_acquires_allow_exactly_the_limit(
    open_limiter: Callable[[], RateLimiter],
) -> None:
    limit = Limit("burst", "requests", 50, 60)

    async def main() -> int:
        limiter = open_limiter()
        try:
            decisions = await asyncio.gather(
                *(limiter.acquire("k", [limit], ONE, now=30.0) for _ in range(200))
            )
        finally:
            await limiter.close()
        return sum(d.allowed for d in decisions)

    assert run(main()) == 50


def test_two_redis_limiters_share_counters(redis_url: str) -> None:
    flush(redis_url)

    async def main() -> list[bool]:
        a, b = RedisRateLimiter(redis_url), RedisRateLimiter(redis_url)
        limit = Limit("shared", "requests", 2, 60)
        try:
            return [
                (await limiter.acquire("k", [limit], ONE, now=5.0)).allowed
                for limiter in (a, b, a, b)
            ]
        finally:
            await a.close()
            await b.close()

    assert run(main()) == [True, True, False, False]


def test_retry_after_header_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    def header(seconds: float) -> str:
        return Decision(False, seconds, 0, REQS).retry_after_header

    assert [header(s) for s in (0.0, 0.2, 1.0, 6.01, 59.0)] == ["1", "1", "1", "7", "59"]


def test_an_unreachable_redis_raises_store_error_without_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        limiter = RedisRateLimiter(f"redis://:hunter2@127.0.0.1:{port}/0")
        try:
            await limiter.acquire("k", [REQS], ONE, now=1.0)
        finally:
            await limiter.close()

    with pytest.raises(StoreError) as info:
        run(main())
    assert "hunter2" not in str(info.value)


def test_open_rate_limiter_picks_the_store_from_the_url() -> None:
    assert isinstance(open_rate_limiter(None), MemoryRateLimiter)
    assert isinstance(open_rate_limiter("memory://"), MemoryRateLimiter)
    redis_limiter = open_rate_limiter("redis://:pw@127.0.0.1:6399/1")
    assert isinstance(redis_limiter, RedisRateLimiter)
    run(redis_limiter.close())
    with pytest.raises(GatewayConfigError, match=r"rate_limits\.url") as info:
        open_rate_limiter("postgres://admin:hunter2@db:5432/x")
    assert "hunter2" not in str(info.value)
