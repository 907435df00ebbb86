"""The ASGI edge: an incoming request, and a responder that writes JSON or a stream.

Raw ASGI (no framework) keeps the gateway's own cost per request small. The
responder notices a client that went away mid-stream: ``chunk`` returns False.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from proxy.errors import BodyTimeout, BodyTooLarge

__all__ = [
    "Receive",
    "Request",
    "Responder",
    "Scope",
    "Send",
    "anthropic_error_body",
    "anthropic_path",
    "error_body",
    "read_request",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY_BYTES: Final = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes
    client_ip: str | None


async def read_request(scope: Scope, receive: Receive, *, timeout_s: float) -> Request:
    """Read the whole request body, bounded in size and time.

    Raises ``BodyTooLarge`` past ``MAX_BODY_BYTES`` and ``BodyTimeout`` when the body has
    not arrived within ``timeout_s`` seconds (a client trickling it, or stalled). Header
    values are decoded as latin-1, one character per byte, so their bytes round-trip.
    """
    try:
        async with asyncio.timeout(timeout_s):
            body = await _read_body(receive)
    except TimeoutError:
        raise BodyTimeout(timeout_s) from None
    return dataclasses.replace(request_head(scope), body=body)


def request_head(scope: Scope) -> Request:
    """The request as its head describes it, with an empty body (for a refusal that
    happened before the body was read whole)."""
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
    }
    client = scope.get("client")
    return Request(
        method=scope["method"],
        path=scope["path"],
        headers=headers,
        body=b"",
        client_ip=client[0] if client else None,
    )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def error_body(message: str, kind: str, code: str | int | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind, "code": code}}


# Anthropic's error type for each status the gateway answers (its documented table; 408,
# 502 and 503 are the gateway's own and take the nearest)
_ANTHROPIC_KINDS: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_body(
    status: int, message: str, code: str | int | None = None
) -> dict[str, Any]:
    """Anthropic's error shape for ``status``; ``code`` (the gateway's own reason, as in
    the OpenAI shape) rides along in ``error``, where Anthropic's SDKs ignore it."""
    kind = _ANTHROPIC_KINDS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message, "code": code}}


def anthropic_path(path: str) -> bool:
    """Whether ``path`` is an Anthropic-shaped endpoint (``/v1/messages`` and anything
    under it, or a provider path ending in ``/messages`` or ``/messages/count_tokens``): its
    errors take Anthropic's shape."""
    path = path.rstrip("/")
    return path.startswith("/v1/messages") or path.endswith(("/messages", "/messages/count_tokens"))


class Responder:
    """Writes one response; watches for the client going away once a stream starts.
    ``anthropic``: the request came to an Anthropic-shaped path (see :meth:`error`)."""

    def __init__(self, send: Send, receive: Receive, *, anthropic: bool = False) -> None:
        self._send = send
        self._receive = receive
        self.anthropic = anthropic
        self._watcher: asyncio.Task[None] | None = None
        self.disconnected = False
        self.started = False

    async def json(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> bytes:
        """Send ``body`` as JSON; returns the bytes sent."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        await self.raw(status, data, "application/json", headers)
        return data

    async def error(
        self,
        status: int,
        message: str,
        kind: str,
        code: str | int | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> bytes:
        """Send the gateway's own error: OpenAI's shape (``kind`` is its ``type``), or on an
        Anthropic path Anthropic's (its type from ``status``); returns the bytes sent."""
        body = (
            anthropic_error_body(status, message, code)
            if self.anthropic
            else error_body(message, kind, code)
        )
        return await self.json(status, body, headers)

    async def raw(
        self, status: int, data: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _encode([("content-type", content_type), *headers]),
            }
        )
        await self._send({"type": "http.response.body", "body": data})

    async def start_stream(
        self, status: int, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.started = True
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": _encode(
                    [("content-type", content_type), ("cache-control", "no-cache"), *headers]
                ),
            }
        )
        self._watcher = asyncio.create_task(self._watch())

    async def chunk(self, data: bytes) -> bool:
        """Send part of a stream; False once the client has gone away."""
        if self.disconnected:
            return False
        if data:
            try:
                await self._send({"type": "http.response.body", "body": data, "more_body": True})
            except OSError:
                self.disconnected = True
        return not self.disconnected

    async def end_stream(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if not self.disconnected:
            try:
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                self.disconnected = True

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
