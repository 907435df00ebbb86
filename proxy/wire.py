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

__all__ = ["Receive", "Request", "Responder", "Scope", "Send", "error_body", "read_request"]

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


class Responder:
    """Writes one response; watches for the client going away once a stream starts."""

    def __init__(self, send: Send, receive: Receive) -> None:
        self._send = send
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        self.disconnected = False
        self.started = False

    async def json(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> bytes:
        """Send ``body`` as JSON; returns the bytes sent."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        await self.raw(status, data, "application/json", headers)
        return data

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
