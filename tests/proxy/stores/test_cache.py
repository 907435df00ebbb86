"""The response cache: key normalisation, and the SQLite and Redis stores against a real
SQLite file and a real redis-server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import socket
import sqlite3
import struct
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from proxy.errors import GatewayConfigError, StoreError
from proxy.stores.cache import (
    CachedResponse,
    RedisResponseCache,
    ResponseCache,
    SqliteResponseCache,
    cache_key,
    open_cache,
    scoped_key,
)
from tests.proxy.redis_server import flush, run_redis_server

BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Name three primes."}],
    "temperature": 0.2,
    "max_tokens": 50,
}

PLAIN = CachedResponse(
    status=200,
    content_type="application/json",
    body=b'{"choices":[{"message":{"content":"2, 3, 5"}}]}',
    chunks=None,
    usage={"prompt_tokens": 12, "completion_tokens": 7},
    model="gpt-4o-mini-2024-07-18",
    provider="openai",
    stored_at=time.time(),
    policy="0123456789abcdef",
)

T = TypeVar("T")

STREAMED = CachedResponse(
    status=200,
    content_type="text/event-stream",
    body=None,
    chunks=(b'data: {"delta":"2, "}\n\n', b"", b'data: {"delta":"3, 5"}\n\n', b"data: [DONE]\n\n"),
    usage={"prompt_tokens": 12, "completion_tokens": 7},
    model="claude-sonnet-4",
    provider="anthropic",
    stored_at=time.time(),
    policy="fedcba9876543210",
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One real redis-server for this file's tests."""
    with run_redis_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "sqlite-no-memory", "redis"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], ResponseCache]:
    """Opens a store (a new instance on each call, over the same file or server)."""
    if request.param == "sqlite":
        return lambda: SqliteResponseCache(tmp_path / "cache.sqlite")
    if request.param == "sqlite-no-memory":  # every get reads the file
        return lambda: SqliteResponseCache(tmp_path / "cache.sqlite", hot_bytes=0)
    url: str = request.getfixturevalue("redis_url")
    flush(url)
    return lambda: RedisResponseCache(url)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the key ------------------------------------------------------------------------------


def test_key_is_stable_sha256_hex_across_releases() -> None:
    """Keys are persisted (cache files, the warehouse's cache key hash): they must not drift."""
    canonical = b'{"body":{"messages":[],"model":"m"},"model":"m","provider":"openai"}'
    assert hashlib.sha256(canonical).hexdigest() == (
        "720b62e0042c804ff6755be1fd07787e9abe5632d7032b408094e7dd07b60d22"
    )
    assert cache_key({"model": "m", "messages": []}, provider="openai", model="m") == (
        "720b62e0042c804ff6755be1fd07787e9abe5632d7032b408094e7dd07b60d22"
    )


def test_key_ignores_key_order_at_every_depth() -> None:
    reordered = {
        "max_tokens": 50,
        "temperature": 0.2,
        "messages": [{"content": "Name three primes.", "role": "user"}],
        "model": "gpt-4o-mini",
    }
    assert cache_key(reordered, provider="openai", model="gpt-4o-mini") == cache_key(
        BODY, provider="openai", model="gpt-4o-mini"
    )


def test_key_ignores_user_metadata_and_stream_options() -> None:
    noisy = {
        **BODY,
        "user": "ana",
        "metadata": {"team": "search"},
        "stream_options": {"include_usage": True},
    }
    assert cache_key(noisy, provider="openai", model="gpt-4o-mini") == cache_key(
        BODY, provider="openai", model="gpt-4o-mini"
    )


@pytest.mark.parametrize(
    ("body", "provider", "model"),
    [
        ({**BODY, "temperature": 0.3}, "openai", "gpt-4o-mini"),
        ({**BODY, "stream": True}, "openai", "gpt-4o-mini"),
        ({**BODY, "messages": [{"role": "user", "content": "Name four primes."}]}, "openai",
         "gpt-4o-mini"),
        (BODY, "azure-openai", "gpt-4o-mini"),
        (BODY, "openai", "gpt-4o"),
    ],
    ids=["temperature", "stream", "messages", "provider", "model"],
)  # fmt: skip
def test_key_changes_with_anything_that_changes_the_answer(
    body: dict[str, Any], provider: str, model: str
) -> None:
    assert cache_key(body, provider=provider, model=model) != cache_key(
        BODY, provider="openai", model="gpt-4o-mini"
    )


def test_override_replaces_the_body_but_not_provider_and_model() -> None:
    other = {**BODY, "temperature": 1.5}
    a = cache_key(BODY, provider="openai", model="gpt-4o-mini", override="faq-42")
    assert a == cache_key(other, provider="openai", model="gpt-4o-mini", override="faq-42")
    assert a != cache_key(BODY, provider="openai", model="gpt-4o-mini")
    assert a != cache_key(BODY, provider="openai", model="gpt-4o", override="faq-42")
    assert a != cache_key(BODY, provider="openai", model="gpt-4o-mini", override="faq-43")


def test_scoped_key_is_stable_and_differs_between_namespaces() -> None:
    """The store key of a request key within a tenant's namespace: persisted, so pinned."""
    key = cache_key({"model": "m", "messages": []}, provider="openai", model="m")
    canonical = f'{{"key":"{key}","namespace":"key:team-a"}}'.encode()
    assert scoped_key(key, "key:team-a") == hashlib.sha256(canonical).hexdigest()
    assert scoped_key(key, "key:team-a") == (
        "b351fbff1f7af8cea296e6c099c3b52d2d498ed8abe0fbb50b685494fc7e9ab4"
    )
    assert scoped_key(key, "key:team-b") != scoped_key(key, "key:team-a")
    assert scoped_key(key, "anonymous") != scoped_key(key, "shared")


def test_an_entry_written_without_a_policy_reads_as_the_empty_policy() -> None:
    """Entries stored before fingerprints existed match no route's policy."""
    header = b'{"status":200,"content_type":"application/json","stream":false,"lengths":[2],'
    header += b'"usage":{},"model":"m","provider":"openai","stored_at":1.5}'
    legacy = struct.pack(">I", len(header)) + header + b"{}"
    assert CachedResponse.decode(legacy).policy == ""
    assert CachedResponse.decode(legacy).body == b"{}"


def test_a_cached_response_has_a_body_or_chunks_never_both() -> None:
    with pytest.raises(ValueError, match="either a body or chunks"):
        CachedResponse(**{**_fields(PLAIN), "chunks": (b"x",)})
    with pytest.raises(ValueError, match="either a body or chunks"):
        CachedResponse(**{**_fields(PLAIN), "body": None})


# --- both stores --------------------------------------------------------------------------


def test_plain_and_streamed_responses_round_trip(open_store: Callable[[], ResponseCache]) -> None:
    sent = (fresh(PLAIN), fresh(STREAMED))

    async def main() -> tuple[CachedResponse | None, CachedResponse | None, CachedResponse | None]:
        store = open_store()
        try:
            await store.put("plain", sent[0], 60)
            await store.put("streamed", sent[1], 60)
            return await store.get("plain"), await store.get("streamed"), await store.get("x")
        finally:
            await store.close()

    plain, streamed, missing = run(main())
    assert plain == sent[0]
    assert streamed == sent[1]
    assert streamed is not None and streamed.chunks is not None and len(streamed.chunks) == 4
    assert missing is None


def test_entries_expire_after_their_ttl(open_store: Callable[[], ResponseCache]) -> None:
    async def main() -> tuple[bool, bool]:
        store = open_store()
        try:
            await store.put("k", fresh(PLAIN), 0.2)
            before = await store.get("k") is not None
            await asyncio.sleep(0.3)
            return before, await store.get("k") is not None
        finally:
            await store.close()

    assert run(main()) == (True, False)


def test_zero_ttl_stores_nothing(open_store: Callable[[], ResponseCache]) -> None:
    async def main() -> CachedResponse | None:
        store = open_store()
        try:
            await store.put("k", fresh(PLAIN), 0)
            return await store.get("k")
        finally:
            await store.close()

    assert run(main()) is None


def test_an_infinite_ttl_keeps_the_entry_and_nan_stores_nothing(
    open_store: Callable[[], ResponseCache],
) -> None:
    """Any float is a TTL the stores take without raising (a client's cf-aig-cache-ttl of
    ``inf`` once made the Redis put raise OverflowError): ``inf`` and ``1e300`` keep the
    entry, NaN and ``-inf`` store nothing."""

    async def main() -> list[bool]:
        store = open_store()
        try:
            for key, ttl in [
                ("inf", math.inf),
                ("big", 1e300),
                ("nan", math.nan),
                ("neg", -math.inf),
            ]:
                await store.put(key, fresh(PLAIN), ttl)
            return [await store.get(k) is not None for k in ("inf", "big", "nan", "neg")]
        finally:
            await store.close()

    assert run(main()) == [True, True, False, False]


def test_entries_survive_closing_and_reopening(open_store: Callable[[], ResponseCache]) -> None:
    sent = fresh(STREAMED)

    async def main() -> CachedResponse | None:
        first = open_store()
        await first.put("k", sent, 600)
        await first.close()
        second = open_store()
        try:
            return await second.get("k")
        finally:
            await second.close()

    assert run(main()) == sent


def test_an_entry_whose_ttl_ran_out_before_the_put_is_not_stored(
    open_store: Callable[[], ResponseCache],
) -> None:
    async def main() -> CachedResponse | None:
        store = open_store()
        try:
            await store.put("k", at(time.time() - 120), 60)
            return await store.get("k")
        finally:
            await store.close()

    assert run(main()) is None


def test_a_put_replaces_the_entry_under_the_same_key(
    open_store: Callable[[], ResponseCache],
) -> None:
    second = fresh(STREAMED)

    async def main() -> CachedResponse | None:
        store = open_store()
        try:
            await store.put("k", fresh(PLAIN), 60)
            await store.put("k", second, 60)
            return await store.get("k")
        finally:
            await store.close()

    assert run(main()) == second


def _fields(value: CachedResponse) -> dict[str, Any]:
    return {name: getattr(value, name) for name in CachedResponse.__slots__}


def fresh(value: CachedResponse) -> CachedResponse:
    """``value`` stored now, for the stores that expire by the real clock."""
    return dataclasses.replace(value, stored_at=time.time())


def at(stored_at: float) -> CachedResponse:
    return CachedResponse(**{**_fields(PLAIN), "stored_at": stored_at})


# --- SQLite -------------------------------------------------------------------------------


def test_sqlite_expiry_is_exactly_stored_at_plus_ttl(tmp_path: Path) -> None:
    now = [1000.0]

    async def main() -> list[bool]:
        store = SqliteResponseCache(tmp_path / "c.sqlite", clock=lambda: now[0])
        seen = []
        try:
            await store.put("k", at(1000.0), 60)
            for t in (1000.0, 1059.999, 1060.0):
                now[0] = t
                seen.append(await store.get("k") is not None)
        finally:
            await store.close()
        return seen

    assert run(main()) == [True, True, False]


def test_sqlite_evicts_the_oldest_entries_past_max_entries(tmp_path: Path) -> None:
    """Past max_entries the oldest answers go, by their write time."""

    async def main() -> list[str]:
        store = SqliteResponseCache(tmp_path / "c.sqlite", max_entries=3, clock=lambda: 10.0)
        try:
            for i, key in enumerate(["a", "b", "c", "a", "d", "e"]):
                await store.put(key, at(float(i)), 3600)
            await store.flush()  # puts are written behind; evictions apply once written
            return [k for k in "abcde" if await store.get(k) is not None]
        finally:
            await store.close()

    # "a" was rewritten at t=3, so "b" (t=1) and "c" (t=2) are the oldest when d and e arrive.
    assert run(main()) == ["a", "d", "e"]


def test_sqlite_evicts_expired_entries_before_live_ones(tmp_path: Path) -> None:
    async def main() -> list[str]:
        store = SqliteResponseCache(tmp_path / "c.sqlite", max_entries=2, clock=lambda: 100.0)
        try:
            await store.put("old-live", at(1.0), 3600)
            await store.put("expired", at(50.0), 10)  # expired at t=60
            await store.put("new", at(99.0), 3600)
            await store.flush()
            return [k for k in ("old-live", "expired", "new") if await store.get(k) is not None]
        finally:
            await store.close()

    assert run(main()) == ["old-live", "new"]


def test_sqlite_eviction_counts_rows_left_by_an_earlier_process(tmp_path: Path) -> None:
    async def main() -> list[str]:
        first = SqliteResponseCache(tmp_path / "c.sqlite", max_entries=2, clock=lambda: 10.0)
        await first.put("a", at(1.0), 3600)
        await first.put("b", at(2.0), 3600)
        await first.close()
        second = SqliteResponseCache(tmp_path / "c.sqlite", max_entries=2, clock=lambda: 10.0)
        try:
            await second.put("c", at(3.0), 3600)
            await second.flush()
            return [k for k in "abc" if await second.get(k) is not None]
        finally:
            await second.close()

    assert run(main()) == ["b", "c"]


def test_sqlite_memory_layer_keeps_the_most_recent_hits_within_its_byte_budget(
    tmp_path: Path,
) -> None:
    """Rows deleted behind the cache's back show which answers it still holds in memory."""
    path = tmp_path / "c.sqlite"
    size = len(PLAIN.body or b"")

    async def main() -> list[str]:
        store = SqliteResponseCache(path, hot_bytes=2 * size)
        try:
            for key in "abc":  # room for two: c pushes a out of memory
                await store.put(key, fresh(PLAIN), 3600)
            await store.get("a")  # read from the file, back in memory: b goes out
            await store.put("d", fresh(PLAIN), 3600)  # c, the least recently used, goes out
            with sqlite3.connect(path) as conn:
                conn.execute("DELETE FROM responses")
            return [k for k in "abcd" if await store.get(k) is not None]
        finally:
            await store.close()

    assert run(main()) == ["a", "d"]


# --- Redis --------------------------------------------------------------------------------


def test_two_redis_caches_share_entries(redis_url: str) -> None:
    flush(redis_url)
    sent = fresh(STREAMED)

    async def main() -> CachedResponse | None:
        writer, reader = RedisResponseCache(redis_url), RedisResponseCache(redis_url)
        try:
            await writer.put("shared", sent, 60)
            return await reader.get("shared")
        finally:
            await writer.close()
            await reader.close()

    assert run(main()) == sent


def test_an_unreachable_redis_raises_store_error_without_the_password() -> None:
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"

    async def main() -> None:
        store = RedisResponseCache(url)
        try:
            await store.get("k")
        finally:
            await store.close()

    with pytest.raises(StoreError) as info:
        run(main())
    assert "hunter2" not in str(info.value)
    assert "redis://127.0.0.1:" in str(info.value)


# --- open_cache ---------------------------------------------------------------------------


def test_open_cache_picks_the_store_from_the_url(tmp_path: Path) -> None:
    async def close_all(*stores: ResponseCache) -> None:
        for store in stores:
            await store.close()

    default = open_cache(None, default_path=tmp_path / "default.sqlite")
    plain = open_cache(str(tmp_path / "plain.sqlite"), default_path=tmp_path / "d")
    url = open_cache(f"sqlite://{tmp_path}/url.sqlite", default_path=tmp_path / "d")
    shared = open_cache("redis://:pw@127.0.0.1:6399/2", default_path=tmp_path / "d")
    run(close_all(default, plain, url, shared))
    assert isinstance(default, SqliteResponseCache)
    assert default.path == tmp_path / "default.sqlite"
    assert isinstance(plain, SqliteResponseCache)
    assert plain.path == tmp_path / "plain.sqlite"
    assert isinstance(url, SqliteResponseCache)
    assert url.path == tmp_path / "url.sqlite"
    assert isinstance(shared, RedisResponseCache)


@pytest.mark.parametrize(
    "url", ["memcached://admin:hunter2@cache.internal:11211", "sqlite://hunter2@relative/x.db"]
)
def test_open_cache_rejects_other_urls_without_printing_credentials(
    url: str, tmp_path: Path
) -> None:
    with pytest.raises(GatewayConfigError) as info:
        open_cache(url, default_path=tmp_path / "d")
    assert "hunter2" not in str(info.value)
    assert "cache.url" in str(info.value)
