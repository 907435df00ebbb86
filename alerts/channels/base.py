"""What every channel promises, the retry loop around it, and the HTTP boundary.

A channel turns one ``Alert`` into one delivery and reports failure only as
``DeliveryError`` (``transient`` says whether trying again can help). Delivery is
at least once: a retried alert may arrive twice, and receivers deduplicate on
the stable ``alert_id`` that every channel carries.

Secrets (webhook URLs with tokens, signing keys, passwords) never appear in an
error message, a log line or a ``repr()``: error text from drivers is passed
through ``redact`` and driver exceptions are not chained (their attributes may
hold the URL).
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from alerts.errors import DeliveryError
from alerts.message import Alert

__all__ = ["Channel", "deliver_with_retries", "post_json", "redact", "url_host"]

log = logging.getLogger(__name__)

USER_AGENT = "aigw-alerts/0.1"


@runtime_checkable
class Channel(Protocol):
    """Something that can deliver an alert.

    ``send`` returns once the receiver accepted the alert and raises
    ``DeliveryError`` otherwise. It blocks for at most about the channel's
    timeout (seconds) per network step. Channels hold no open connection between
    calls and may be used from several threads.
    """

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` once; raise ``DeliveryError`` if it was not accepted."""
        ...


def deliver_with_retries(
    channel: Channel,
    alert: Alert,
    *,
    attempts: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Send ``alert`` through ``channel``, retrying transient failures.

    Waits ``backoff * 2**n`` seconds before retry ``n + 1`` (0.5 s, 1 s, 2 s, ...
    by default). A permanent ``DeliveryError`` is raised at once; after
    ``attempts`` transient failures the last error is raised, and the caller
    records it to try again on its next run.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            channel.send(alert)
        except DeliveryError as err:
            if not err.transient or attempt == attempts:
                raise
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "channel %s: attempt %d of %d failed (%s); retrying in %.1f s",
                channel.name,
                attempt,
                attempts,
                err,
                delay,
            )
            sleep(delay)
        else:
            return


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def url_host(url: str) -> str:
    """The ``host[:port]`` of ``url``: safe to show (paths and queries may hold tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "?"
    return f"{host}:{port}" if port else host


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: urllib would turn our POST into a GET without the body."""

    def redirect_request(  # noqa: PLR0917 (urllib's signature)
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _transient_status(status: int) -> bool:
    """429 and 5xx may pass later; other 3xx and 4xx need someone to fix the channel."""
    return status == 429 or status >= 500


def post_json(
    channel: str,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    secrets: Iterable[str | None] = (),
) -> None:
    """POST ``body`` (JSON bytes) to ``url``; a 2xx answer is success.

    The one place that turns ``urllib`` and ``http.client`` errors into
    ``DeliveryError``: 429, 5xx, timeouts and connection errors are transient;
    other statuses (redirects, 400, 401, 403, 404, ...) and invalid URLs are
    permanent. Messages name the host only; ``url`` and ``secrets`` are redacted.
    """
    hidden = [url, *secrets]
    where = url_host(url)
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError(
            f"channel {channel}: the URL must start with http:// or https://",
            channel=channel,
            transient=False,
        )
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as err:
        status = err.code
        err.close()
    except (http.client.InvalidURL, ValueError) as err:
        # Not str(err): it quotes the URL's path, which may hold the token.
        raise DeliveryError(
            f"channel {channel}: the URL for {where} is invalid ({type(err).__name__}: "
            "control characters, spaces or a bad port)",
            channel=channel,
            transient=False,
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        why = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
        raise DeliveryError(
            f"channel {channel}: could not reach {where}: {redact(why, hidden)}",
            channel=channel,
            transient=True,
        ) from None
    if 200 <= status < 300:
        return
    raise DeliveryError(
        f"channel {channel}: {where} answered HTTP {status}",
        channel=channel,
        transient=_transient_status(status),
    )
