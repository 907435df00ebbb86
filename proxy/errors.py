"""The gateway's branch of aigw's error tree (drawn whole in ``core.errors``).

Errors the client sees (401, 429, guardrail and DLP blocks) are ``RequestRefused``, turned
into HTTP responses in the API's error shape at the gateway's edge. The gateway adds, under
``RequestRefused``::

    RequestRefused
    ├── BodyTimeout           the body did not arrive within [server] body_timeout_s (408)
    └── UnsendableHeader      a header to forward is not valid UTF-8 (400)
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
    "BodyTimeout",
    "BodyTooLarge",
    "GatewayConfigError",
    "LogSinkError",
    "ProxyError",
    "RequestRefused",
    "StoreError",
    "UnsendableHeader",
    "UpstreamError",
]


class BodyTimeout(RequestRefused):
    """The request body did not arrive in time (a slow or stalled client): 408."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            408,
            f"request body not received within {timeout_s:g} s",
            "invalid_request_error",
            "request_timeout",
        )
        self.timeout_s = timeout_s


class UnsendableHeader(RequestRefused):
    """A header the gateway forwards has a value that cannot be sent byte for byte: 400."""

    def __init__(self, name: str) -> None:
        super().__init__(
            400,
            f"header {name}: value is not valid UTF-8 (send ASCII or UTF-8)",
            "invalid_request_error",
            "invalid_header",
        )
        self.name = name
