"""Slack incoming webhooks: one Block Kit message per alert.

The webhook URL is the credential (anyone holding it can post to the channel):
it is never shown in errors, logs or ``repr()``.
"""

from __future__ import annotations

import json
from typing import Any

from alerts.channels.base import post_json, url_host
from alerts.message import Alert

__all__ = ["SlackChannel", "slack_payload"]

# Block Kit limits (characters): a header's text, a section's text.
_HEADER_MAX = 150
_SECTION_MAX = 3000


def _escape(text: str) -> str:
    """Slack's mrkdwn treats ``&``, ``<`` and ``>`` as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The incoming-webhook body: a header, a section with the lines, a context with the id.

    ``text`` is the fallback shown in notifications and by clients without blocks.
    """
    title = " ".join(alert.title.split())  # a header is one line
    body = [line for line in alert.lines()[1:] if not line.startswith("Alert id: ")]
    return {
        "text": _escape(title),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _clip(title, _HEADER_MAX), "emoji": False},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(_escape("\n".join(body)), _SECTION_MAX)},
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Alert id: `{_escape(alert.alert_id)}`"}],
            },
        ],
    }


class SlackChannel:
    """Posts alerts to a Slack incoming webhook.

    2xx is delivered; 429, 5xx and connection errors are transient; other
    answers (a revoked webhook answers 403 or 404) are permanent. ``timeout`` is
    in seconds. Thread-safe: nothing is shared between calls.
    """

    __slots__ = ("_webhook_url", "name", "timeout")

    def __init__(self, name: str, webhook_url: str, timeout: float = 10) -> None:
        self.name = name
        self._webhook_url = webhook_url
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SlackChannel(name={self.name!r}, host={url_host(self._webhook_url)!r})"

    def send(self, alert: Alert) -> None:
        """Post one message for ``alert``; raise ``DeliveryError`` if Slack did not take it."""
        body = json.dumps(slack_payload(alert), ensure_ascii=False).encode()
        post_json(self.name, self._webhook_url, body, timeout=self.timeout)
