"""Exact-match response cache: the key function and the stores (SQLite on local disk, Redis).

The gateway reads the ``cf-aig-skip-cache``, ``cf-aig-cache-ttl`` and ``cf-aig-cache-key``
headers; this module computes the key (:func:`cache_key`, what the request asks; then
:func:`scoped_key`, that key within one tenant's namespace, which is what the stores are
given) and keeps the answers (:class:`ResponseCache`). Each entry carries the fingerprint of
the policy that produced it (``CachedResponse.policy``); who may read what, and which answers
may be kept, is decided in :mod:`proxy.cache_policy`. Streamed answers are kept as their
chunks and replayed as a stream.

Stores:

- :class:`SqliteResponseCache` (the default): one file on local disk that survives restarts.
  Every SQLite call runs on one dedicated thread, so nothing blocks the event loop.
- :class:`RedisResponseCache` (``cache.url = "redis://..."``): shared by several gateway
  instances; Redis expires entries itself.

Failures of a store raise :class:`proxy.errors.StoreError`; the gateway treats a failed ``get``
as a miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import orjson

from proxy.errors import GatewayConfigError, StoreError
from proxy.stores.backends import is_redis_url, open_redis, redacted, redis_errors

__all__ = [
    "IGNORED_FIELDS",
    "REDIS_MAX_TTL_MS",
    "CachedResponse",
    "RedisResponseCache",
    "ResponseCache",
    "SqliteResponseCache",
    "cache_key",
    "open_cache",
    "scoped_key",
]

#: Request fields that do not change the answer, left out of the key. ``stream`` stays in:
#: a streamed answer is stored as chunks, a plain one as a body, so they are different entries.
IGNORED_FIELDS = frozenset({"user", "metadata", "stream_options"})

_T = TypeVar("_T")

#: The longest time an entry lives in Redis (about 285,000 years): Redis refuses expiry
#: times past a 64-bit count of milliseconds, and ``round`` refuses ``inf``.
REDIS_MAX_TTL_MS: Final = 2**53

_log = logging.getLogger("aigw.proxy")


def cache_key(
    body: dict[str, Any], *, provider: str, model: str, override: str | None = None
) -> str:
    """The cache key of a request: SHA-256 hex (64 characters).

    Hashes canonical JSON (keys sorted at every depth, no whitespace) of ``provider``,
    ``model`` and the request body less :data:`IGNORED_FIELDS`, so reordered keys and a
    different ``user`` or ``metadata`` hit the same entry while any other field (temperature,
    messages, tools, ``stream``) makes a new one. Values are compared as JSON: ``1`` and
    ``1.0`` are different keys. ``override`` (the ``cf-aig-cache-key`` header) replaces the
    body part: requests with the same override, provider and model share one entry.
    """
    if override is not None:
        subject: dict[str, Any] = {"provider": provider, "model": model, "key": override}
    else:
        kept = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
        subject = {"provider": provider, "model": model, "body": kept}
    return hashlib.sha256(orjson.dumps(subject, option=orjson.OPT_SORT_KEYS)).hexdigest()


def scoped_key(key: str, namespace: str) -> str:
    """The store key of request key ``key`` (from :func:`cache_key`) in ``namespace`` (a
    tenant, see :func:`proxy.cache_policy.cache_namespace`): SHA-256 hex of canonical JSON of
    both, so the same request (or the same ``cf-aig-cache-key``) from two namespaces reads
    and writes two entries. Stable across releases, like :func:`cache_key`.
    """
    subject = {"namespace": namespace, "key": key}
    return hashlib.sha256(orjson.dumps(subject, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """One stored answer. Exactly one of ``body`` (a plain response) and ``chunks`` (a
    streamed response, replayed chunk by chunk) is set.

    ``usage`` holds token counts as the provider reported them (for logs and savings);
    ``stored_at`` is unix seconds (UTC); ``policy`` is the fingerprint of the route policy
    that produced the answer (entries written before fingerprints existed read as ``""``).
    """

    status: int
    content_type: str
    body: bytes | None
    chunks: tuple[bytes, ...] | None
    usage: dict[str, int]
    model: str
    provider: str
    stored_at: float
    policy: str = ""

    def __post_init__(self) -> None:
        if (self.body is None) == (self.chunks is None):
            raise ValueError("a CachedResponse has either a body or chunks, not both or neither")

    def encode(self) -> bytes:
        """Bytes for a store: a length-prefixed JSON header, then the payload bytes raw."""
        parts = self.chunks if self.chunks is not None else (self.body or b"",)
        header = orjson.dumps(
            {
                "status": self.status,
                "content_type": self.content_type,
                "stream": self.chunks is not None,
                "lengths": [len(p) for p in parts],
                "usage": self.usage,
                "model": self.model,
                "provider": self.provider,
                "stored_at": self.stored_at,
                "policy": self.policy,
            }
        )
        return b"".join((struct.pack(">I", len(header)), header, *parts))

    @classmethod
    def decode(cls, data: bytes) -> CachedResponse:
        """The inverse of :meth:`encode`."""
        (size,) = struct.unpack_from(">I", data)
        header = orjson.loads(data[4 : 4 + size])
        view = memoryview(data)
        offset = 4 + size
        parts: list[bytes] = []
        for length in header["lengths"]:
            parts.append(bytes(view[offset : offset + length]))
            offset += length
        stream = bool(header["stream"])
        return cls(
            status=int(header["status"]),
            content_type=str(header["content_type"]),
            body=None if stream else parts[0],
            chunks=tuple(parts) if stream else None,
            usage={str(k): int(v) for k, v in header["usage"].items()},
            model=str(header["model"]),
            provider=str(header["provider"]),
            stored_at=float(header["stored_at"]),
            policy=str(header.get("policy", "")),
        )


class ResponseCache(Protocol):
    """Where answers are kept. Safe to share between the tasks of one event loop."""

    async def get(self, key: str) -> CachedResponse | None:
        """The answer stored under ``key``; ``None`` when absent or expired."""
        ...

    async def put(self, key: str, value: CachedResponse, ttl_s: float) -> None:
        """Store ``value`` for ``ttl_s`` seconds from ``value.stored_at`` (``<= 0``: not kept)."""
        ...

    async def close(self) -> None:
        """Release the store (files, connections). The cache is unusable afterwards."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    stored_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_stored_at ON responses (stored_at);
CREATE INDEX IF NOT EXISTS responses_expires_at ON responses (expires_at);
"""


class _HotLayer:
    """Decoded entries in memory, least recently used out first past ``max_bytes`` of payload.

    Not thread-safe: the event loop's thread alone uses it.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[CachedResponse, float, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: str, now: float) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            self.pop(key)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, value: CachedResponse, expires_at: float) -> None:
        size = len(value.body or b"") + sum(len(c) for c in value.chunks or ())
        if size > self.max_bytes:
            return
        self.pop(key)
        self._entries[key] = (value, expires_at, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped

    def pop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]


class SqliteResponseCache:
    """The embedded store: one SQLite file (WAL) that survives restarts.

    An entry expires at ``stored_at + ttl_s`` by ``clock`` (unix seconds; injectable for
    tests). When a put would pass ``max_entries`` live rows, expired rows go first, then the
    oldest by ``stored_at``. All SQLite work runs on one dedicated thread (measured cheaper
    than ``asyncio.to_thread``, and the connection never changes threads).

    Hits are also kept decoded in memory, least recently used first out past ``hot_bytes`` of
    payload (0 turns it off): a hit from memory costs a few microseconds instead of a thread
    round trip of about 0.1 ms. The keys and expiry times of the file's entries are kept in
    memory too (loaded at the first call), so a miss never leaves the event loop, and puts
    are written behind (the caller does not wait; a failed write is logged and forgotten):
    on the gateway's miss path this halved the CPU per request (bench/proxy.py). So an entry
    another process writes to the same file is not seen by this one until it reopens the
    file: gateway instances share a cache through Redis. Call :meth:`close` to finish the
    pending writes and release the file.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_entries: int = 100_000,
        hot_bytes: int = 32 * 2**20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise GatewayConfigError(f"cache max_entries must be >= 1, got {max_entries}")
        self.path = path
        self.max_entries = max_entries
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigw-cache")
        self._conn: sqlite3.Connection | None = None
        self._count = 0  # live rows as this process knows them; exact while it is the only writer
        self._hot = _HotLayer(hot_bytes)  # touched on the event loop's thread only
        self._index: dict[str, float] | None = None  # key -> expires_at; event loop only
        self._pending: set[asyncio.Future[list[str]]] = set()

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, fn)
        except sqlite3.Error as exc:
            raise StoreError(
                f"response cache {self.path} failed ({exc}); check the disk and permissions"
            ) from exc

    def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        # WAL + NORMAL: a commit does not fsync (a crash may lose the last entries, which a
        # cache can afford); readers never wait for the writer.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        self._count = int(conn.execute("SELECT count(*) FROM responses").fetchone()[0])
        return conn

    async def _keys(self) -> dict[str, float]:
        if self._index is None:
            now = self._clock()

            def load(conn: sqlite3.Connection) -> dict[str, float]:
                rows = conn.execute(
                    "SELECT key, expires_at FROM responses WHERE expires_at > ?", (now,)
                ).fetchall()
                return {str(key): float(expires_at) for key, expires_at in rows}

            index = await self._run(load)
            if self._index is None:
                self._index = index
        return self._index

    async def get(self, key: str) -> CachedResponse | None:
        """The live entry under ``key``, or ``None``."""
        now = self._clock()
        hot = self._hot.get(key, now)
        if hot is not None:
            return hot
        index = await self._keys()
        expires_at = index.get(key)
        if expires_at is None:
            return None
        if expires_at <= now:
            del index[key]
            return None

        def read(conn: sqlite3.Connection) -> tuple[bytes, float] | None:
            row = conn.execute(
                "SELECT value, expires_at FROM responses WHERE key = ? AND expires_at > ?",
                (key, now),
            ).fetchone()
            return None if row is None else (cast(bytes, row[0]), float(row[1]))

        found = await self._run(read)
        if found is None:
            return None
        value = CachedResponse.decode(found[0])
        self._hot.put(key, value, found[1])
        return value

    async def put(self, key: str, value: CachedResponse, ttl_s: float) -> None:
        """Store ``value`` until ``value.stored_at + ttl_s``; evict past ``max_entries``.
        A ``ttl_s`` of ``inf`` keeps it until evicted; NaN stores nothing."""
        if not ttl_s > 0:
            return
        data = value.encode()
        expires_at = value.stored_at + ttl_s
        now = self._clock()

        def write(conn: sqlite3.Connection) -> list[str]:
            exists = conn.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone()
            conn.execute(
                "INSERT OR REPLACE INTO responses (key, stored_at, expires_at, value)"
                " VALUES (?, ?, ?, ?)",
                (key, value.stored_at, expires_at, data),
            )
            if exists is None:
                self._count += 1
            return self._evict(conn, now) if self._count > self.max_entries else []

        index = await self._keys()
        index[key] = expires_at
        self._hot.put(key, value, expires_at)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._call, write)
        self._pending.add(future)
        future.add_done_callback(lambda done: self._written(key, done))

    async def flush(self) -> None:
        """Wait until every put so far is in the file (and its evictions applied)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _written(self, key: str, done: asyncio.Future[list[str]]) -> None:
        """On the event loop, after a write-behind put: forget evicted keys, or the entry
        whose write failed (memory must not promise what the file does not hold)."""
        self._pending.discard(done)
        index = self._index if self._index is not None else {}
        if done.cancelled() or done.exception() is not None:
            error = None if done.cancelled() else done.exception()
            _log.warning("response cache %s: a write failed (%s)", self.path, error)
            index.pop(key, None)
            self._hot.pop(key)
            return
        for gone in done.result():
            index.pop(gone, None)
            self._hot.pop(gone)

    def _evict(self, conn: sqlite3.Connection, now: float) -> list[str]:
        """Drop expired rows, then the oldest past ``max_entries``; return the latter's keys."""
        conn.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))
        self._count = int(conn.execute("SELECT count(*) FROM responses").fetchone()[0])
        excess = self._count - self.max_entries
        if excess <= 0:
            return []
        rows = conn.execute(
            "DELETE FROM responses WHERE key IN"
            " (SELECT key FROM responses ORDER BY stored_at LIMIT ?) RETURNING key",
            (excess,),
        ).fetchall()
        self._count -= len(rows)
        return [str(row[0]) for row in rows]

    async def close(self) -> None:
        """Close the file and stop the cache's thread (waits for pending writes)."""

        def shut(_: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self.flush()
        if self._conn is not None:
            await self._run(shut)
        await asyncio.to_thread(self._executor.shutdown, wait=True)


class RedisResponseCache:
    """A cache on a Redis server, shared by every gateway instance that points at it.

    Keys are ``aigw:cache:<cache_key>``; Redis expires each entry at ``stored_at + ttl_s`` by
    ``clock`` (unix seconds; the put sets the time left, in whole milliseconds), like the
    SQLite store. The client is pooled and safe for concurrent tasks of one event loop; the
    cache owns it and :meth:`close` releases it.
    """

    PREFIX = "aigw:cache:"

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._clock = clock
        self._redis = open_redis(url, what="cache.url")

    async def get(self, key: str) -> CachedResponse | None:
        """The live entry under ``key``, or ``None``."""
        async with redis_errors(self.url, what="response cache"):
            data = await self._redis.get(self.PREFIX + key)
        return None if data is None else CachedResponse.decode(cast(bytes, data))

    async def put(self, key: str, value: CachedResponse, ttl_s: float) -> None:
        """Store ``value`` until ``value.stored_at + ttl_s`` (already past, or NaN: not
        stored); past :data:`REDIS_MAX_TTL_MS` (``inf`` included) it lives that long."""
        left_s = value.stored_at + ttl_s - self._clock()
        if not (ttl_s > 0 and left_s > 0):
            return
        left_ms = max(1, round(min(left_s * 1000, REDIS_MAX_TTL_MS)))  # inf: no OverflowError
        async with redis_errors(self.url, what="response cache"):
            await self._redis.set(self.PREFIX + key, value.encode(), px=left_ms)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_cache(
    url: str | None, *, default_path: Path, clock: Callable[[], float] = time.time
) -> ResponseCache:
    """The store that ``cache.url`` names, its entries expiring by ``clock`` (unix seconds).

    ``None`` -> SQLite at ``default_path``; a plain path or ``sqlite:///abs/path`` -> SQLite
    there; ``redis://``, ``rediss://`` or ``unix://`` -> Redis. Anything else raises
    ``GatewayConfigError`` naming the value without its credentials.
    """
    if url is None:
        return SqliteResponseCache(default_path, clock=clock)
    if "://" not in url:
        return SqliteResponseCache(Path(url), clock=clock)
    if is_redis_url(url):
        return RedisResponseCache(url, clock=clock)
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and not parts.netloc and parts.path:
        return SqliteResponseCache(Path(parts.path), clock=clock)
    raise GatewayConfigError(
        f"cache.url = {redacted(url)!r} is not supported: use a file path,"
        " sqlite:///absolute/path or redis://host:port/db"
    )
