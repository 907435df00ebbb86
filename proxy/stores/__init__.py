"""The gateway's state: the response cache (SQLite on local disk, or Redis), rate-limit
counters and budget spend counters (in process, or Redis to share them between instances).

Each store is a Protocol with an in-process and a Redis implementation, opened from its
URL by an ``open_*`` function; ``backends`` holds what they share (store URLs, pooled Redis
clients, the one place where ``redis`` errors become :class:`proxy.errors.StoreError`).
"""

from proxy.stores.backends import is_redis_url, redacted
from proxy.stores.cache import CachedResponse, ResponseCache, cache_key, open_cache, scoped_key
from proxy.stores.counters import SpendCounter, open_counter
from proxy.stores.ratelimit import Decision, Limit, RateLimiter, open_rate_limiter

__all__ = [
    "CachedResponse",
    "Decision",
    "Limit",
    "RateLimiter",
    "ResponseCache",
    "SpendCounter",
    "cache_key",
    "is_redis_url",
    "open_cache",
    "open_counter",
    "open_rate_limiter",
    "redacted",
    "scoped_key",
]
