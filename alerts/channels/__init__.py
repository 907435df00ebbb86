"""Delivery channels: Slack, generic webhooks, email and a local outbox folder.

Every channel follows ``Channel``: ``send(alert)`` delivers once or raises
``DeliveryError`` (``transient`` says whether a retry can help);
``deliver_with_retries`` wraps it with exponential backoff. Secrets given to a
channel never appear in its errors, log lines or ``repr()``.
"""

from __future__ import annotations

from alerts.channels.base import Channel, deliver_with_retries
from alerts.channels.email import EmailChannel
from alerts.channels.outbox import OutboxChannel
from alerts.channels.slack import SlackChannel
from alerts.channels.webhook import WebhookChannel

__all__ = [
    "Channel",
    "EmailChannel",
    "OutboxChannel",
    "SlackChannel",
    "WebhookChannel",
    "deliver_with_retries",
]
