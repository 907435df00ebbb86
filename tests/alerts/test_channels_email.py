"""The email channel against a real aiosmtpd SMTP server on 127.0.0.1 (plain, and with
STARTTLS and AUTH): the message, TLS and login, and which failures are transient."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alerts.channels import EmailChannel, deliver_with_retries
from alerts.errors import DeliveryError
from alerts.message import Alert
from tests.alerts.channel_fixtures import SMTP_PASSWORD, no_sleep

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
