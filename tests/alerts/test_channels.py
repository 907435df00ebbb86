"""Delivery channels against real receivers on 127.0.0.1: an HTTP server for Slack and
webhooks, an aiosmtpd SMTP server (with STARTTLS and AUTH), and a tmp outbox folder."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alerts.channels import (
    Channel,
    EmailChannel,
    OutboxChannel,
    SlackChannel,
    WebhookChannel,
    deliver_with_retries,
)
from alerts.errors import DeliveryError
from alerts.message import Alert, alert_id

SLACK_TOKEN = "T0SECRET/B0SECRET/XXslacktokenXX"  # noqa: S105 (a test value)
WEBHOOK_SECRET = "whsec-do-not-print"  # noqa: S105
SMTP_PASSWORD = "smtp-pass-do-not-print"  # noqa: S105


@pytest.fixture
def alert() -> Alert:
    """A budget alert with characters that need escaping in Slack and HTML."""
    return Alert(
        alert_id=alert_id("team-budget", "agent=summarizer", "2026-11", 0.8),
        kind="budget",
        rule="team-budget",
        scope="agent=summarizer",
        period_start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        period_end=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        threshold=0.8,
        spent_usd=812.5,
        budget_usd=1000.0,
        forecast_usd=1290.0,
        top_contributors=[("gpt-4o", 500.0), ("claude-sonnet", 250.0), ("gpt-4o-mini", 62.5)],
        dashboard_url="http://127.0.0.1:8501/budgets?name=team-budget&period=2026-11",
        detail="Spend <rising> & steady",
    )


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


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_sleep() -> tuple[list[float], Any]:
    delays: list[float] = []
    return delays, delays.append


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


# --- email ----------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps accepted messages and can answer DATA with an error."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.tls: list[bool] = []
        self.data_reply = "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply.startswith("250"):
            self.envelopes.append(envelope)
            self.tls.append(session.ssl is not None)
        return self.data_reply

    def messages(self) -> list[EmailMessage]:
        parsed = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)
            message = email.message_from_bytes(envelope.content, policy=default_policy)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


class LocalController(Controller):
    """A Controller that may bind port 0: it reads the bound port before its self-check."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A plain SMTP server (no STARTTLS, no AUTH) on 127.0.0.1."""
    inbox = Inbox()
    controller = LocalController(inbox, hostname="127.0.0.1", port=0, server_hostname="localhost")
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigw test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_smtp_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, int, list[bytes]]]:
    """An SMTP server requiring STARTTLS, then AUTH as alerts / SMTP_PASSWORD."""
    cert_file, key_file = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    logins: list[bytes] = []

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append(auth_data.login)
        ok = auth_data.login == b"alerts" and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535

    inbox = Inbox()
    controller = LocalController(
        inbox,
        hostname="127.0.0.1",
        port=0,
        server_hostname="localhost",
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield inbox, controller.port, logins
    finally:
        controller.stop()


def test_email_has_subject_recipients_text_and_escaped_html(
    smtp_server: tuple[Inbox, int], alert: Alert
) -> None:
    """One multipart/alternative mail: subject = title, plain lines, HTML escaped, stable id."""
    inbox, port = smtp_server
    recipients = ["finops@example.com", "oncall@example.com"]
    channel = EmailChannel(
        "mail", "127.0.0.1", port, "Aigw <alerts@example.com>", recipients, starttls=False
    )

    channel.send(alert)

    (envelope,) = inbox.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == recipients
    (message,) = inbox.messages()
    assert message["Subject"] == alert.title
    assert message["To"] == "finops@example.com, oncall@example.com"
    assert message["Message-ID"] == f"<{alert.alert_id}.alert@example.com>"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert isinstance(plain, EmailMessage)
    assert isinstance(html, EmailMessage)
    assert plain.get_content().splitlines() == alert.lines()
    html_text = html.get_content()
    assert "Spend &lt;rising&gt; &amp; steady" in html_text
    assert "<rising>" not in html_text
    assert 'href="http://127.0.0.1:8501/budgets?name=team-budget&amp;period=2026-11"' in html_text
    assert alert.alert_id in html_text


def test_email_starttls_and_login(
    tls_smtp_server: tuple[Inbox, int, list[bytes]],
    certificate: tuple[Path, Path],
    alert: Alert,
) -> None:
    """STARTTLS with a trusted certificate, then AUTH, then the mail goes over TLS."""
    inbox, port, logins = tls_smtp_server
    client_context = ssl.create_default_context(cafile=str(certificate[0]))
    channel = EmailChannel(
        "mail",
        "127.0.0.1",
        port,
        "alerts@example.com",
        ["finops@example.com"],
        username="alerts",
        password=SMTP_PASSWORD,
        ssl_context=client_context,
    )

    channel.send(alert)

    assert logins == [b"alerts"]
    assert inbox.tls == [True]
    (message,) = inbox.messages()
    assert message["Subject"] == alert.title


def test_email_wrong_password_is_permanent_and_not_shown(
    tls_smtp_server: tuple[Inbox, int, list[bytes]],
    certificate: tuple[Path, Path],
    alert: Alert,
) -> None:
    """A refused login fails at once, sends nothing, and the error hides the password."""
    inbox, port, _ = tls_smtp_server
    wrong = "wrong-" + SMTP_PASSWORD
    channel = EmailChannel(
        "mail",
        "127.0.0.1",
        port,
        "alerts@example.com",
        ["finops@example.com"],
        username="alerts",
        password=wrong,
        ssl_context=ssl.create_default_context(cafile=str(certificate[0])),
    )

    with pytest.raises(DeliveryError) as caught:
        deliver_with_retries(channel, alert, sleep=no_sleep()[1])

    assert not caught.value.transient
    assert "login refused (535" in str(caught.value)
    assert wrong not in str(caught.value)
    assert inbox.envelopes == []


def test_email_untrusted_certificate_is_permanent(
    tls_smtp_server: tuple[Inbox, int, list[bytes]], alert: Alert
) -> None:
    """With the default trust store the self-signed certificate is rejected before login."""
    inbox, port, logins = tls_smtp_server
    channel = EmailChannel(
        "mail", "127.0.0.1", port, "alerts@example.com", ["a@example.com"], username="alerts"
    )

    with pytest.raises(DeliveryError) as caught:
        channel.send(alert)

    assert not caught.value.transient
    assert "certificate" in str(caught.value)
    assert logins == []
    assert inbox.envelopes == []


def test_email_starttls_not_offered_fails_without_sending(
    smtp_server: tuple[Inbox, int], alert: Alert
) -> None:
    """starttls=True against a server without STARTTLS: permanent, nothing sent."""
    inbox, port = smtp_server
    channel = EmailChannel(
        "mail",
        "127.0.0.1",
        port,
        "alerts@example.com",
        ["a@example.com"],
        username="alerts",
        password=SMTP_PASSWORD,
    )

    with pytest.raises(DeliveryError) as caught:
        channel.send(alert)

    assert not caught.value.transient
    assert "STARTTLS" in str(caught.value)
    assert inbox.envelopes == []


def test_email_login_without_starttls_is_refused(closed_port: int, alert: Alert) -> None:
    """A username with starttls=False is refused before any connection."""
    channel = EmailChannel(
        "mail",
        "127.0.0.1",
        closed_port,
        "alerts@example.com",
        ["a@example.com"],
        username="alerts",
        password=SMTP_PASSWORD,
        starttls=False,
    )

    with pytest.raises(DeliveryError) as caught:
        channel.send(alert)

    assert not caught.value.transient
    assert SMTP_PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "transient"),
    [("451 4.3.0 try again later", True), ("554 5.7.1 rejected as spam", False)],
)
def test_email_reply_codes_decide_transience(
    smtp_server: tuple[Inbox, int], alert: Alert, reply: str, transient: bool
) -> None:
    """A 4xx answer to DATA is transient, a 5xx permanent; the reply is in the message."""
    inbox, port = smtp_server
    inbox.data_reply = reply
    channel = EmailChannel(
        "mail", "127.0.0.1", port, "alerts@example.com", ["a@example.com"], starttls=False
    )

    with pytest.raises(DeliveryError) as caught:
        channel.send(alert)

    assert caught.value.transient is transient
    assert reply.split(maxsplit=1)[0] in str(caught.value)


def test_email_connection_refused_is_transient(closed_port: int, alert: Alert) -> None:
    """No SMTP server listening is a transient error."""
    channel = EmailChannel("mail", "127.0.0.1", closed_port, "alerts@example.com", ["a@x.org"])

    with pytest.raises(DeliveryError) as caught:
        channel.send(alert)

    assert caught.value.transient


# --- outbox ---------------------------------------------------------------------------


def test_outbox_writes_one_json_file_per_alert(tmp_path: Path, alert: Alert) -> None:
    """``<created>-<alert_id>.json`` holds as_json(), and no temporary file is left."""
    folder = tmp_path / "outbox"

    OutboxChannel("outbox", folder).send(alert)

    (written,) = folder.iterdir()
    assert re.fullmatch(rf"\d{{8}}T\d{{12}}Z-{alert.alert_id}\.json", written.name)
    assert json.loads(written.read_text()) == alert.as_json()


def test_outbox_redelivery_rewrites_the_same_file(tmp_path: Path, alert: Alert) -> None:
    """The same alert id delivered again rewrites its file and adds none; other ids add one."""
    channel = OutboxChannel("outbox", tmp_path)
    channel.send(alert)
    first = channel.path_for(alert.alert_id)

    channel.send(dataclasses.replace(alert, spent_usd=900.0))
    channel.send(alert)
    assert sorted(tmp_path.iterdir()) == [first]
    assert first is not None
    assert json.loads(first.read_text()) == alert.as_json()

    other = dataclasses.replace(alert, alert_id=alert_id("other"))
    channel.send(other)
    assert len(list(tmp_path.iterdir())) == 2


def test_outbox_converges_on_one_file_per_id(tmp_path: Path, alert: Alert) -> None:
    """Files left by two racing writers collapse to the one whose name sorts first."""
    first = tmp_path / f"20261101T000000000000Z-{alert.alert_id}.json"
    second = tmp_path / f"20261101T000000000001Z-{alert.alert_id}.json"
    first.write_text("{}")
    second.write_text("{}")

    OutboxChannel("outbox", tmp_path).send(alert)

    assert list(tmp_path.iterdir()) == [first]
    assert json.loads(first.read_text()) == alert.as_json()


def test_outbox_rejects_ids_that_are_not_file_names(tmp_path: Path, alert: Alert) -> None:
    """An id with a path separator is a permanent error and writes nothing."""
    with pytest.raises(DeliveryError) as caught:
        OutboxChannel("outbox", tmp_path / "box").send(
            dataclasses.replace(alert, alert_id="../escape")
        )

    assert not caught.value.transient
    assert list(tmp_path.iterdir()) == []


def test_outbox_unwritable_folder_is_transient(tmp_path: Path, alert: Alert) -> None:
    """A folder that cannot be created (a file is in the way) is a transient error."""
    blocker = tmp_path / "outbox"
    blocker.write_text("not a folder")

    with pytest.raises(DeliveryError) as caught:
        OutboxChannel("outbox", blocker).send(alert)

    assert caught.value.transient
    assert blocker.read_text() == "not a folder"


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
