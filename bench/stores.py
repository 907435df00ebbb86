"""Gateway stores benchmark: per-call cost of cache gets, rate-limit acquires and spend adds.

    python bench/stores.py [--calls 5000] [--concurrency 64]

Runs on uvloop (as the gateway does) against a SQLite file in a temporary folder and a
redis-server it starts on 127.0.0.1 (no persistence). For each operation it prints:

- latency of one call made alone (median and p99, microseconds);
- throughput with ``--concurrency`` tasks calling at once (calls per second);
- this process's CPU per call (microseconds): what the gateway itself spends; Redis's own
  CPU is another process.

It also compares the two ways to run a SQLite read off the event loop: ``asyncio.to_thread``
(default pool; the connection then needs a lock) and one dedicated thread. Not a test; the
README records the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import uvloop

# Run as `python bench/stores.py`, this folder comes first on sys.path; the packages live one
# level up.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

from proxy.stores.cache import (  # noqa: E402 - after the sys.path fix above
    CachedResponse,
    RedisResponseCache,
    ResponseCache,
    SqliteResponseCache,
)
from proxy.stores.counters import MemorySpendCounter, RedisSpendCounter  # noqa: E402
from proxy.stores.ratelimit import Limit, MemoryRateLimiter, RedisRateLimiter  # noqa: E402
from tests.proxy.redis_server import run_redis_server  # noqa: E402

PLAIN = CachedResponse(
    status=200,
    content_type="application/json",
    body=b'{"choices":[{"message":{"content":"' + b"x" * 2000 + b'"}}]}',
    chunks=None,
    usage={"prompt_tokens": 500, "completion_tokens": 400},
    model="gpt-4o-mini",
    provider="openai",
    stored_at=time.time(),
)
LIMITS = [
    Limit("rpm", "requests", 10**9, 60),
    Limit("tpm", "tokens", 10**12, 60, sliding=True),
]


async def measure(
    name: str, call: Callable[[int], Awaitable[object]], calls: int, concurrency: int
) -> None:
    """Print latency alone, throughput under concurrency and CPU per call for ``call``."""
    for i in range(min(200, calls)):  # warm pools, connections and caches
        await call(i)
    latencies = []
    cpu = time.process_time()
    for i in range(calls):
        start = time.perf_counter()
        await call(i)
        latencies.append(time.perf_counter() - start)
    cpu_per_call = (time.process_time() - cpu) / calls
    latencies.sort()

    async def worker(offset: int) -> None:
        for i in range(offset, calls, concurrency):
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    rate = calls / (time.perf_counter() - start)
    print(
        f"{name:<36} median {latencies[len(latencies) // 2] * 1e6:7.1f} us"
        f"   p99 {latencies[int(len(latencies) * 0.99)] * 1e6:7.1f} us"
        f"   cpu {cpu_per_call * 1e6:6.1f} us/call"
        f"   x{concurrency}: {rate:9,.0f} calls/s"
    )


async def cache_gets(name: str, cache: ResponseCache, calls: int, concurrency: int) -> None:
    keys = [f"{i:064x}" for i in range(1000)]
    for key in keys:
        await cache.put(key, PLAIN, 3600)
    await measure(f"{name} get hit", lambda i: cache.get(keys[i % 1000]), calls, concurrency)
    await measure(f"{name} get miss", lambda i: cache.get(f"miss{i}"), calls, concurrency)
    await measure(f"{name} put", lambda i: cache.put(keys[i % 1000], PLAIN, 3600), calls, 1)
    await cache.close()


async def thread_hops(path: Path, calls: int, concurrency: int) -> None:
    """The same SQLite read through asyncio.to_thread and through one dedicated thread."""
    conn = sqlite3.connect(path, check_same_thread=False)
    lock = threading.Lock()
    key = f"{0:064x}"

    def read() -> object:
        with lock:
            return conn.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()

    single = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    await measure("sqlite read, to_thread", lambda _: asyncio.to_thread(read), calls, concurrency)
    await measure(
        "sqlite read, own thread",
        lambda _: loop.run_in_executor(single, read),
        calls,
        concurrency,
    )
    single.shutdown()
    conn.close()


async def main(calls: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="aigw-bench-") as tmp, run_redis_server() as url:
        path = Path(tmp) / "cache.sqlite"
        await cache_gets("sqlite", SqliteResponseCache(path), calls, concurrency)
        cold = SqliteResponseCache(path, hot_bytes=0)
        await cache_gets("sqlite, no memory layer", cold, calls, concurrency)
        await thread_hops(path, calls, concurrency)
        await cache_gets("redis", RedisResponseCache(url), calls, concurrency)

        memory = MemoryRateLimiter()
        shared = RedisRateLimiter(url)
        cost = {"requests": 1, "tokens": 900}
        for label, limiter in (("memory", memory), ("redis", shared)):
            await measure(
                f"{label} acquire (2 limits)",
                lambda i, lim=limiter: lim.acquire(f"user-{i % 100}", LIMITS, cost),  # type: ignore[misc]
                calls,
                concurrency,
            )
            await limiter.close()

        for label, counter in (("memory", MemorySpendCounter()), ("redis", RedisSpendCounter(url))):
            await measure(
                f"{label} spend add",
                lambda i, c=counter: c.add(f"key-{i % 100}", "day:2026-11-28", 0.001),  # type: ignore[misc]
                calls,
                concurrency,
            )
            await counter.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    uvloop.run(main(args.calls, args.concurrency))
