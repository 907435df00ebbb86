"""Slack and webhook channels against a real HTTP receiver on 127.0.0.1: payloads, signatures,
status mapping and retries, and that no channel shows its secrets (repr, errors, retry logs)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alerts.channels import (
    Channel,
    EmailChannel,
    OutboxChannel,
    SlackChannel,
    WebhookChannel,
    deliver_with_retries,
)
from alerts.errors import DeliveryError
from alerts.message import Alert
from tests.alerts.channel_fixtures import SLACK_TOKEN, SMTP_PASSWORD, WEBHOOK_SECRET, no_sleep

# --- a real HTTP receiver ------------------------------------------------------------


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Records every POST and answers with the queued statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 that records requests and answers programmed statuses."""
    with Receiver() as running:
        yield running


# --- Slack ----------------------------------------------------------------------------


def test_slack_posts_block_kit_with_text_fallback(receiver: Receiver, alert: Alert) -> None:
    """Slack gets a header with the title, a section with the lines, a context with the id."""
    SlackChannel("slack", f"{receiver.url}/services/{SLACK_TOKEN}").send(alert)

    (request,) = receiver.requests
    assert request.path == f"/services/{SLACK_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    payload = json.loads(request.body)
    assert payload["text"] == alert.title
    header, section, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": alert.title, "emoji": False},
    }
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    text = section["text"]["text"]
    assert "Spent $812.50 of $1,000.00 (81%)" in text
    assert "Forecast for the period: $1,290.00" in text
    assert "Top contributors: gpt-4o $500.00, claude-sonnet $250.00, gpt-4o-mini $62.50" in text
    assert "Spend &lt;rising&gt; &amp; steady" in text  # mrkdwn control characters escaped
    assert context["type"] == "context"
    assert alert.alert_id in context["elements"][0]["text"]


# --- webhooks -------------------------------------------------------------------------


def test_webhook_posts_signed_json_with_alert_id(receiver: Receiver, alert: Alert) -> None:
    """The body is as_json(), with the id header and an HMAC-SHA256 of the exact body bytes."""
    WebhookChannel("hook", f"{receiver.url}/hook", WEBHOOK_SECRET).send(alert)

    (request,) = receiver.requests
    assert json.loads(request.body) == alert.as_json()
    assert request.headers["X-Aigw-Alert-Id"] == alert.alert_id
    expected = hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Aigw-Signature"], f"sha256={expected}")


def test_webhook_without_secret_sends_no_signature(receiver: Receiver, alert: Alert) -> None:
    """No secret, no signature header; the id header is still there."""
    WebhookChannel("hook", receiver.url, None).send(alert)

    (request,) = receiver.requests
    assert "X-Aigw-Signature" not in request.headers
    assert request.headers["X-Aigw-Alert-Id"] == alert.alert_id


# --- status mapping and retries -----------------------------------------------------


def test_500_then_200_delivers_once_after_a_retry(receiver: Receiver, alert: Alert) -> None:
    """A 500 is retried after the backoff; the 200 that follows ends delivery."""
    receiver.statuses = [500]
    delays, sleep = no_sleep()

    deliver_with_retries(WebhookChannel("hook", receiver.url, None), alert, sleep=sleep)

    assert len(receiver.requests) == 2
    assert delays == [0.5]


def test_retries_back_off_exponentially_then_raise(receiver: Receiver, alert: Alert) -> None:
    """Three 503s: waits 0.5 s then 1 s, then raises the last transient error."""
    receiver.statuses = [503, 503, 503, 200]
    delays, sleep = no_sleep()

    with pytest.raises(DeliveryError) as caught:
        deliver_with_retries(WebhookChannel("hook", receiver.url, None), alert, sleep=sleep)

    assert caught.value.transient
    assert caught.value.channel == "hook"
    assert "HTTP 503" in str(caught.value)
    assert len(receiver.requests) == 3
    assert delays == [0.5, 1.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 302])
def test_client_errors_fail_at_once(receiver: Receiver, alert: Alert, status: int) -> None:
    """4xx (but 429) and redirects are permanent: one request, no retry."""
    receiver.statuses = [status]
    delays, sleep = no_sleep()

    with pytest.raises(DeliveryError) as caught:
        deliver_with_retries(SlackChannel("slack", receiver.url), alert, sleep=sleep)

    assert not caught.value.transient
    assert len(receiver.requests) == 1
    assert delays == []


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_429_and_5xx_are_transient(receiver: Receiver, alert: Alert, status: int) -> None:
    """429 and 5xx raise a transient DeliveryError from a single send."""
    receiver.statuses = [status]

    with pytest.raises(DeliveryError) as caught:
        SlackChannel("slack", receiver.url).send(alert)

    assert caught.value.transient


def test_connection_refused_is_transient(closed_port: int, alert: Alert) -> None:
    """Nothing listening is transient, and the error does not show the URL's token."""
    channel = SlackChannel("slack", f"http://127.0.0.1:{closed_port}/services/{SLACK_TOKEN}")

    with pytest.raises(DeliveryError) as caught:
        channel.send(alert)

    assert caught.value.transient
    assert f"127.0.0.1:{closed_port}" in str(caught.value)
    assert SLACK_TOKEN not in str(caught.value)


# --- secrets --------------------------------------------------------------------------


def test_channels_follow_the_protocol_and_hide_secrets_in_repr(tmp_path: Path) -> None:
    """Every channel is a Channel; no repr() shows a token, signing secret or password."""
    channels = [
        SlackChannel("slack", f"https://hooks.slack.com/services/{SLACK_TOKEN}"),
        WebhookChannel("hook", "https://example.com/in?token=abc123tok", WEBHOOK_SECRET),
        EmailChannel(
            "mail",
            "smtp.example.com",
            587,
            "a@example.com",
            ["b@example.com"],
            username="alerts",
            password=SMTP_PASSWORD,
        ),
        OutboxChannel("outbox", tmp_path),
    ]
    for channel in channels:
        assert isinstance(channel, Channel)
        text = repr(channel)
        for secret in (SLACK_TOKEN, "abc123tok", WEBHOOK_SECRET, SMTP_PASSWORD):
            assert secret not in text
    assert repr(channels[0]) == "SlackChannel(name='slack', host='hooks.slack.com')"


def test_errors_and_retry_logs_hide_secrets(
    receiver: Receiver, alert: Alert, caplog: pytest.LogCaptureFixture
) -> None:
    """Failed deliveries and their retry log lines name the host, never the token or secret."""
    receiver.statuses = [503, 503, 403, 503, 503, 503]
    slack = SlackChannel("slack", f"{receiver.url}/services/{SLACK_TOKEN}")
    hook = WebhookChannel("hook", f"{receiver.url}/in?token=abc123tok", WEBHOOK_SECRET)
    errors = []
    with caplog.at_level(logging.WARNING):
        for channel in (slack, hook):
            with pytest.raises(DeliveryError) as caught:
                deliver_with_retries(channel, alert, attempts=3, sleep=no_sleep()[1])
            errors.append(str(caught.value))

    assert len(caplog.records) == 4
    shown = "\n".join([*errors, caplog.text])
    assert receiver.url.removeprefix("http://") in shown
    for secret in (SLACK_TOKEN, "abc123tok", WEBHOOK_SECRET):
        assert secret not in shown


def test_invalid_url_is_permanent_and_hidden(alert: Alert) -> None:
    """A URL that cannot be sent (a space in its path) is permanent; its token stays hidden."""
    channel = SlackChannel("slack", f"http://127.0.0.1:9/services/{SLACK_TOKEN} x")

    with pytest.raises(DeliveryError) as caught:
        channel.send(alert)

    assert not caught.value.transient
    assert SLACK_TOKEN not in str(caught.value)
