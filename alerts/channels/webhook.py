"""Generic webhooks: the alert as JSON, signed with HMAC-SHA256.

Each delivery is one ``POST`` with ``Content-Type: application/json``, the body
``Alert.as_json()`` and these headers:

``X-Aigw-Alert-Id: <alert_id>``
    the stable id of the crossing. Delivery is at least once: a receiver that
    already has this id should answer 2xx and do nothing.
``X-Aigw-Signature: sha256=<hex>``
    sent when the channel has a secret: the hex HMAC-SHA256 of the exact body
    bytes, keyed with the secret (UTF-8).

A receiver verifies the signature on the raw body, before parsing it::

    import hashlib, hmac

    def verified(secret: str, body: bytes, header: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, header)

Re-serialising the parsed JSON would change the bytes and break the check. The
signature covers no timestamp, so a captured request can be replayed; replays
carry the same ``alert_id`` and are absorbed by deduplication.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from alerts.channels.base import post_json, url_host
from alerts.message import Alert

__all__ = ["WebhookChannel", "sign"]


def sign(secret: str, body: bytes) -> str:
    """The ``X-Aigw-Signature`` value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """Posts ``Alert.as_json()`` to ``url``, signed when ``secret`` is set.

    Same status mapping as Slack: 2xx delivered; 429, 5xx and connection errors
    transient; other answers permanent. ``timeout`` is in seconds. The URL (it
    may carry a token) and the secret never appear in errors or ``repr()``.
    """

    __slots__ = ("_secret", "_url", "name", "timeout")

    def __init__(self, name: str, url: str, secret: str | None, timeout: float = 10) -> None:
        self.name = name
        self._url = url
        self._secret = secret or None
        self.timeout = timeout

    def __repr__(self) -> str:
        return (
            f"WebhookChannel(name={self.name!r}, host={url_host(self._url)!r}, "
            f"signed={self._secret is not None})"
        )

    def send(self, alert: Alert) -> None:
        """Post ``alert``; raise ``DeliveryError`` unless the receiver answered 2xx."""
        body = json.dumps(alert.as_json(), separators=(",", ":"), sort_keys=True).encode()
        headers = {"X-Aigw-Alert-Id": alert.alert_id}
        if self._secret is not None:
            headers["X-Aigw-Signature"] = sign(self._secret, body)
        post_json(
            self.name,
            self._url,
            body,
            headers=headers,
            timeout=self.timeout,
            secrets=[self._secret],
        )
