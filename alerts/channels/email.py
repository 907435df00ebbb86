"""Email over SMTP: STARTTLS, optional login, a plain-text and an HTML part.

Credentials are never sent in clear text: with ``starttls=True`` a server that
does not offer STARTTLS is a permanent failure (nothing is sent), and a
``username`` without ``starttls`` is refused. The ``Message-ID`` is derived
from the alert id, so a re-delivered alert carries the same id and mail
clients can fold the copies. The password never appears in errors, logs or
``repr()``.
"""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from alerts.channels.base import redact
from alerts.errors import DeliveryError
from alerts.message import Alert

__all__ = ["EmailChannel", "email_message"]

log = logging.getLogger(__name__)


def _html(alert: Alert) -> str:
    """The HTML part: every value escaped; the dashboard link only for http(s) URLs."""
    body = [
        line for line in alert.lines()[1:] if not line.startswith(("Alert id: ", "Dashboard: "))
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family: sans-serif">',
        f"<h2>{html.escape(alert.title)}</h2>",
        "<p>" + "<br>\n".join(html.escape(line) for line in body) + "</p>",
    ]
    if alert.dashboard_url.startswith(("https://", "http://")):
        href = html.escape(alert.dashboard_url, quote=True)
        parts.append(f'<p><a href="{href}">Open the dashboard</a></p>')
    parts.append(f'<p style="color: #666">Alert id: <code>{html.escape(alert.alert_id)}</code></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def email_message(alert: Alert, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The message for ``alert``: multipart/alternative, plain text first, then HTML.

    Raises ``ValueError`` if a header would be invalid (line breaks in addresses).
    """
    domain = parseaddr(sender)[1].rpartition("@")[2] or "aigw.invalid"
    message = EmailMessage()
    message["Subject"] = " ".join(alert.title.split())
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{alert.alert_id}.alert@{domain}>"
    message["X-Aigw-Alert-Id"] = alert.alert_id
    message.set_content("\n".join(alert.lines()) + "\n")
    message.add_alternative(_html(alert), subtype="html")
    return message


def _reply(err: smtplib.SMTPResponseException) -> str:
    text = err.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{err.smtp_code} {' '.join(str(text).split())}"


class EmailChannel:
    """Sends alerts through an SMTP server (``timeout`` in seconds, per network step).

    Connection errors and 4xx replies are transient; 5xx replies, refused logins,
    a missing STARTTLS and certificate errors are permanent. ``ssl_context``
    defaults to the system's trusted CAs with host-name checks. Opens one
    connection per ``send``; thread-safe.
    """

    __slots__ = (
        "_password",
        "host",
        "name",
        "port",
        "recipients",
        "sender",
        "ssl_context",
        "starttls",
        "timeout",
        "username",
    )

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout: float = 10,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = (recipients,) if isinstance(recipients, str) else tuple(recipients)
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        return (
            f"EmailChannel(name={self.name!r}, host={self.host!r}, port={self.port}, "
            f"sender={self.sender!r}, recipients={list(self.recipients)!r}, "
            f"username={self.username!r}, starttls={self.starttls})"
        )

    def _error(self, what: str, *, transient: bool) -> DeliveryError:
        message = f"channel {self.name}: {self.host}:{self.port}: {what}"
        return DeliveryError(
            redact(message, [self._password]), channel=self.name, transient=transient
        )

    def send(self, alert: Alert) -> None:
        """Send one email for ``alert``; raise ``DeliveryError`` if the server did not take it."""
        if not self.recipients:
            raise self._error("no recipients", transient=False)
        if self.username and not self.starttls:
            raise self._error(
                "refusing to log in without STARTTLS (the password would travel in clear)",
                transient=False,
            )
        try:
            message = email_message(alert, self.sender, self.recipients)
        except ValueError as err:
            raise self._error(f"invalid message header: {err}", transient=False) from None
        try:
            refused = self._deliver(message)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as err:
            raise self._error(f"login refused ({_reply(err)})", transient=False) from None
        except smtplib.SMTPRecipientsRefused as err:
            codes = [code for code, _ in err.recipients.values()]
            raise self._error(
                f"every recipient was refused ({', '.join(sorted(err.recipients))}: "
                f"{', '.join(map(str, codes))})",
                transient=all(400 <= code < 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as err:
            raise self._error(
                f"the server answered {_reply(err)}", transient=400 <= err.smtp_code < 500
            ) from None
        except smtplib.SMTPServerDisconnected as err:
            raise self._error(f"connection lost: {err}", transient=True) from None
        except smtplib.SMTPException as err:  # AUTH not offered, no usable mechanism
            raise self._error(f"{type(err).__name__}: {err}", transient=False) from None
        except ssl.SSLCertVerificationError as err:
            raise self._error(
                f"TLS certificate rejected: {err.verify_message}", transient=False
            ) from None
        except OSError as err:  # refused, unreachable, DNS, timeout, TLS handshake
            raise self._error(
                f"could not reach the server: {type(err).__name__}: {err}", transient=True
            ) from None
        if refused:
            # Some recipients have it: failing would send it to them again on retry.
            log.warning(
                "channel %s: alert %s not accepted for %s",
                self.name,
                alert.alert_id,
                ", ".join(sorted(refused)),
            )

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                if not smtp.has_extn("starttls"):
                    raise self._error(
                        "the server does not offer STARTTLS; nothing was sent", transient=False
                    )
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password or "")
            return smtp.send_message(message, from_addr=self.sender, to_addrs=self.recipients)
