"""The gateway's branch of aigw's error tree (drawn whole in ``core.errors``).

Errors the client sees (401, 429, guardrail and DLP blocks) are ``RequestRefused``, turned
into HTTP responses in the API's error shape at the gateway's edge.
"""

from core.errors import (
    BodyTooLarge,
    GatewayConfigError,
    LogSinkError,
    ProxyError,
    RequestRefused,
    StoreError,
    UpstreamError,
)

__all__ = [
    "BodyTooLarge",
    "GatewayConfigError",
    "LogSinkError",
    "ProxyError",
    "RequestRefused",
    "StoreError",
    "UpstreamError",
]
