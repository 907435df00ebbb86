"""The gateway's errors, under aigw's root ``AigwError``::

    AigwError
    └── ProxyError                  the gateway could not do something
        ├── GatewayConfigError      gateway.toml is invalid (names file, key, reason)
        ├── UpstreamError           a provider call failed (transient: try the next one)
        ├── StoreError              the cache, rate-limit or spend store failed (transient)
        └── LogSinkError            a log batch could not be written or uploaded (transient)

Errors the client sees (401, 429, guardrail and DLP blocks) are HTTP responses in
OpenAI's error shape, not exceptions.
"""

from __future__ import annotations

from ingest.errors import AigwError, ConfigError

__all__ = ["GatewayConfigError", "LogSinkError", "ProxyError", "StoreError", "UpstreamError"]


class ProxyError(AigwError):
    """Something the gateway could not do."""


class GatewayConfigError(ProxyError, ConfigError):
    """``gateway.toml`` is invalid; ``str()`` names the file, the key and the reason."""


class UpstreamError(ProxyError):
    """A provider call failed: connection refused, timeout, reset (worth the next provider)."""

    transient = True


class StoreError(ProxyError):
    """The response cache, rate-limit or spend store (SQLite, Redis) could not be used.

    ``str()`` names the store and its URL without credentials; the gateway decides whether to
    fail open (cache: treat as a miss) or closed.
    """

    transient = True


class LogSinkError(ProxyError):
    """A batch of log records could not be written or uploaded (retried, then spooled)."""

    transient = True
