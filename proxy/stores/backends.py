"""What the cache, rate limiter and spend counters share: store URLs and pooled Redis clients.

One place turns ``redis`` driver errors into :class:`proxy.errors.StoreError`, and one place
prints a store URL: :func:`redacted` drops the user, password and query so that a secret in
``redis://:password@host`` never reaches a log line or an error message. :func:`redis_or_memory`
reads the URL of a store that is kept in process or on Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from proxy.errors import GatewayConfigError, StoreError

__all__ = [
    "POOL_SIZE",
    "POOL_WAIT_S",
    "REDIS_SCHEMES",
    "is_redis_url",
    "open_redis",
    "redacted",
    "redis_errors",
    "redis_or_memory",
]

#: URL schemes that select the Redis-backed stores (TCP, TLS, Unix socket).
REDIS_SCHEMES = ("redis", "rediss", "unix")


def redacted(url: str) -> str:
    """``url`` without credentials or query: ``scheme://host:port/path``, safe to print."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an unparseable port: print the scheme only
        return f"{url.split('://', 1)[0]}://…" if "://" in url else "<store url>"
    if not parts.scheme:
        return "<store url>" if "@" in url else url
    return f"{parts.scheme}://{host}{port}{parts.path}"


def is_redis_url(url: str) -> bool:
    """True when ``url`` names a Redis server (``redis://``, ``rediss://``, ``unix://``)."""
    return urlsplit(url).scheme in REDIS_SCHEMES


def redis_or_memory(url: str | None, *, setting: str, kept: str) -> str | None:
    """Where a store that lives in process or on Redis is kept: ``url`` itself when it names
    a Redis server (``redis://``, ``rediss://``, ``unix://``); ``None`` (in this process)
    when it is ``None`` or ``memory://``. Anything else raises ``GatewayConfigError`` naming
    ``setting`` and the URL without its secrets; ``kept`` names what the in-process store
    keeps ("counters", "limits")."""
    if url is None or url == "memory://":
        return None
    if is_redis_url(url):
        return url
    raise GatewayConfigError(
        f"{setting} = {redacted(url)!r} is not supported: use redis://host:port/db"
        f" or leave it unset for in-process {kept}"
    )


#: Connections per client. Past it a command waits (up to ``POOL_WAIT_S``) for a free one
#: rather than failing, as redis-py's default pool does past 100 concurrent commands.
POOL_SIZE = 64
POOL_WAIT_S = 2.0


def open_redis(url: str, *, what: str) -> aioredis.Redis:
    """A pooled asyncio Redis client for ``url`` (connects lazily, on the first command).

    At most :data:`POOL_SIZE` connections; more concurrent commands queue for one. The caller
    owns the client and its pool and closes both with ``await client.aclose()``. ``what``
    names the setting in errors ("cache.url"). A malformed URL raises ``GatewayConfigError``
    (redacted).
    """
    try:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT_S,
            # A short connect timeout: a store that cannot be reached should cost the request
            # path at most this long before the gateway fails open or closed.
            socket_connect_timeout=2.0,
            socket_timeout=2.0,
            health_check_interval=30,
        )
    except ValueError as exc:
        raise GatewayConfigError(
            f"{what} = {redacted(url)!r} is not a valid Redis URL: use redis://host:port/db"
        ) from exc
    return aioredis.Redis.from_pool(pool)


@asynccontextmanager
async def redis_errors(url: str, *, what: str) -> AsyncIterator[None]:
    """Turn Redis driver errors raised inside the block into a one-line ``StoreError``."""
    try:
        yield
    except RedisError as exc:
        raise StoreError(
            f"{what} at {redacted(url)} failed ({type(exc).__name__}); is Redis running?"
        ) from exc
