"""A simulated LLM provider: OpenAI's and Anthropic's HTTP APIs, deterministic, on one port.

The gateway's demo, tests and benchmark use it instead of a real provider (no key, no
network). It is a raw ASGI app (no framework, orjson, no per-request logging) so that at
0 ms latency it costs the benchmark as little CPU as possible.

Endpoints: ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/responses`` (OpenAI's Responses API, :mod:`sim.responses_api`), ``/v1/messages`` and
``/v1/messages/count_tokens`` (Anthropic; ``{"input_tokens": N}``, the prompt's tokens as a
messages answer counts them) and ``GET /v1/models``. This module is the
HTTP side; request
checks and answers are in :mod:`sim.handlers`, usage numbers in
:mod:`sim.usage`, bodies and streams in :mod:`sim.shapes`, the test hooks'
records in :mod:`sim.hooks`.

**Determinism.** Each request gets a digest: BLAKE2b-256 keyed with the seed (8 bytes,
big-endian, signed) over ``path + "\\n" + body`` where the body is re-encoded with sorted
keys and without ``stream`` and ``stream_options`` (so a streamed and a plain request get
the same answer). The digest picks the answer text and output tokens; the same body and seed
give the same answer in any process. Ids are the digest's first 8 bytes in hex followed by
the app's response counter, so they differ between responses. Prompt caching remembers
prefixes per app, so a repeated long prompt reports cached tokens the second time.

**Errors.** The app counts how often it has seen each digest (attempt 0, 1, 2...). For
attempt ``k`` it draws ``u = int(BLAKE2b-64(digest + k as 8 bytes big-endian)) / 2**64``:
``u < error_rate_429`` answers 429 (``retry-after: 1``), else ``u < error_rate_429 +
error_rate_500`` answers 500. A retry of the same request is the next attempt, a fresh draw,
so it succeeds with probability ``1 - rates``; two fresh apps with the same seed give the
same sequence. The counter is only kept when a rate is above 0 and is cleared past 200,000
distinct bodies.

Order of checks for ``/v1`` paths: unknown path 404 (405 for a wrong method), then the
latency sleep (``latency_ms`` +- ``jitter_ms``, jitter drawn from BLAKE2b of the raw body
keyed with the seed), then the key (401), outage (``outages`` windows in seconds since the
server started, and ``POST /_mock/outage``), body validation (400), drawn errors, answer.

**Test hooks** (no key needed): ``GET /_mock/requests`` lists the last 1000 requests to
non-hook paths, oldest first (``method``, ``path``, lower-cased ``headers`` with
``authorization``, ``x-api-key``, ``api-key``, ``proxy-authorization`` and
``cf-aig-authorization`` values replaced by ``"<present>"``, and ``body``: the JSON value,
or the text when it is not JSON); ``DELETE`` clears it. ``POST /_mock/outage``
``{"status": 503, "seconds": 2.5}`` (503, 429 or 500) starts an outage now; ``DELETE`` ends
it. ``GET /_mock/stats`` gives ``{"total": N, "paths": {path: {status: count}}}``;
``DELETE`` clears it.

Thread-safety: an app instance belongs to one event loop (one uvicorn worker).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Final

import orjson

from core.errors import ConfigError, SimulationError
from sim.handlers import Handlers, InvalidSimRequest
from sim.hooks import Recorder, parse_outage
from sim.shapes import error_body

__all__ = ["ASGIApp", "MockSettings", "create_mock_app", "run_mock_provider"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_BODY: Final = 32 * 1024 * 1024
_ATTEMPTS_LIMIT: Final = 200_000
_ROUTES: Final = {
    "/v1/chat/completions": "POST",
    "/v1/completions": "POST",
    "/v1/embeddings": "POST",
    "/v1/messages": "POST",
    "/v1/messages/count_tokens": "POST",
    "/v1/responses": "POST",
    "/v1/models": "GET",
}
_JSON: Final = b"application/json"


@dataclass(frozen=True, slots=True)
class MockSettings:
    """How the simulated provider behaves; times in milliseconds, outages in seconds."""

    seed: int = 0
    latency_ms: float = 0.0  # fixed added latency per response (asyncio.sleep)
    jitter_ms: float = 0.0  # +- uniform, deterministic per request body and seed
    stream_chunk_delay_ms: float = 0.0  # between SSE chunks
    error_rate_429: float = 0.0  # fraction of requests answered 429 (with Retry-After)
    error_rate_500: float = 0.0
    outages: tuple[tuple[float, float], ...] = ()  # (start_s, end_s) since start: 503s
    api_key: str | None = None  # when set, other keys get 401 (Bearer or x-api-key)

    def __post_init__(self) -> None:
        if not -(2**63) <= self.seed < 2**63:
            raise ConfigError(f"mock provider: seed must fit in 64 bits (got {self.seed})")
        for name in ("latency_ms", "jitter_ms", "stream_chunk_delay_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"mock provider: {name} must be 0 or more (got {value})")
        for name in ("error_rate_429", "error_rate_500"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"mock provider: {name} must be between 0 and 1 (got {value})")
        if self.error_rate_429 + self.error_rate_500 > 1:
            raise ConfigError("mock provider: error_rate_429 + error_rate_500 must not pass 1")
        for start, end in self.outages:
            if not 0 <= start < end:
                raise ConfigError(
                    f"mock provider: outage {start}:{end} must have 0 <= start < end (seconds)"
                )
        if self.api_key == "":
            raise ConfigError("mock provider: api_key is empty; leave it unset to accept any key")


def create_mock_app(settings: MockSettings) -> ASGIApp:
    """A new simulated provider (its own counters, prompt cache and recordings)."""
    return _MockProvider(settings)


def run_mock_provider(
    settings: MockSettings,
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    on_started: Callable[[str], None] | None = None,
) -> None:
    """Serve the simulated provider with uvicorn (uvloop, httptools) until SIGINT or SIGTERM.

    Returns normally after either signal (a clean stop). ``port=0`` takes a free port;
    ``on_started`` gets the base URL (``http://HOST:PORT``) once the server accepts
    requests. :class:`SimulationError` when the address cannot be bound (port in use).
    """
    # Only this command needs the server (and the gateway's serving helper): keeps `aigw` quick.
    import uvicorn  # noqa: PLC0415

    from proxy import serve_until_signal  # noqa: PLC0415

    # Bind here rather than in uvicorn: a port in use becomes our one-line error, not a log.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as error:
        # create_server's own message repeats the address; the errno's text is enough.
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise SimulationError(
            f"cannot listen on {host}:{port}: {reason.lower()}; choose another --port"
        ) from None

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if on_started is not None and self.started and self.servers:
                address, bound_port = self.servers[0].sockets[0].getsockname()[:2]
                shown = f"[{address}]" if ":" in address else address
                on_started(f"http://{shown}:{bound_port}")

    config = uvicorn.Config(
        create_mock_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
    )
    with listener:
        serve_until_signal(_Server(config), sockets=[listener])


class _MockProvider:
    """The ASGI app behind :func:`create_mock_app`."""

    def __init__(self, settings: MockSettings) -> None:
        self._settings = settings
        self._salt = settings.seed.to_bytes(8, "big", signed=True)
        self._key = settings.api_key.encode() if settings.api_key is not None else None
        self._started = time.monotonic()
        self._outage: tuple[int, float] | None = None  # (status, monotonic end)
        self._draw_errors = settings.error_rate_429 + settings.error_rate_500 > 0
        self._attempts: dict[bytes, int] = {}
        self._recorder = Recorder()
        self._handlers = Handlers(self._salt, itertools.count())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/_mock/"):
                await self._hook(scope["method"], path, receive, send)
                return
            body = await _read_body(receive)
            self._recorder.record(scope["method"], path, scope["headers"], body)
            status = await self._api(scope["method"], path, scope["headers"], body, send)
            self._recorder.count(path, status)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._started = time.monotonic()  # outage windows count from here
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _api(
        self,
        method: str,
        path: str,
        headers: list[tuple[bytes, bytes]],
        raw: bytes | None,
        send: Send,
    ) -> int:
        """Answer one ``/v1`` request; returns the status sent."""
        anthropic = path.startswith("/v1/messages")
        expected = _ROUTES.get(path)
        if expected is None:
            return await _error(send, 404, f"Unknown path {path[:200]}", anthropic=False)
        if method != expected:
            return await _error(send, 405, f"Use {expected} for {path}", anthropic=anthropic)
        if raw is None:
            return await _error(send, 413, "Request body is over 32 MiB", anthropic=anthropic)
        settings = self._settings
        if settings.latency_ms or settings.jitter_ms:
            await asyncio.sleep(self._delay_s(raw))
        if self._key is not None and not self._authorized(headers):
            return await _error(send, 401, "Invalid API key", anthropic=anthropic)
        outage = self._outage_status()
        if outage is not None:
            status, retry_after = outage
            return await _error(
                send, status, "Simulated outage", anthropic=anthropic, retry_after=retry_after
            )
        if expected == "GET":
            return await _respond(send, 200, self._handlers.models(), _JSON)
        handlers = self._handlers
        try:
            body = handlers.parse(raw)
            request = handlers.check(path, body)
        except InvalidSimRequest as error:
            return await _error(send, 400, str(error), anthropic=anthropic)
        digest = handlers.digest(path, body)
        if self._draw_errors:
            drawn = self._draw_error(digest)
            if drawn:
                return await _error(
                    send, drawn, f"Simulated {drawn}", anthropic=anthropic, retry_after=1
                )
        payload = handlers.answer(request, digest)
        if isinstance(payload, bytes):
            return await _respond(send, 200, payload, _JSON)
        await _stream(send, payload, settings.stream_chunk_delay_ms / 1000)
        return 200

    def _delay_s(self, raw: bytes) -> float:
        settings = self._settings
        delay = settings.latency_ms
        if settings.jitter_ms:
            draw = int.from_bytes(blake2b(raw, digest_size=8, key=self._salt).digest(), "big")
            delay += settings.jitter_ms * (2 * draw / 2**64 - 1)
        return max(delay, 0.0) / 1000

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        if self._key is None:
            return True
        for name, value in headers:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                candidate = value[7:].strip()
            elif name == b"x-api-key":
                candidate = value.strip()
            else:
                continue
            if hmac.compare_digest(candidate, self._key):
                return True
        return False

    def _outage_status(self) -> tuple[int, int] | None:
        """(status, Retry-After seconds) while an outage is on, else None."""
        now = time.monotonic()
        if self._outage is not None:
            status, until = self._outage
            if now < until:
                return status, math.ceil(until - now)
            self._outage = None
        elapsed = now - self._started
        for start, end in self._settings.outages:
            if start <= elapsed < end:
                return 503, math.ceil(end - elapsed)
        return None

    def _draw_error(self, digest: bytes) -> int:
        """429, 500 or 0 (no error) for this attempt of the request; see the module doc."""
        attempt = self._attempts.get(digest, 0)
        if attempt == 0 and len(self._attempts) >= _ATTEMPTS_LIMIT:
            self._attempts.clear()
        self._attempts[digest] = attempt + 1
        draw = blake2b(digest + attempt.to_bytes(8, "big"), digest_size=8).digest()
        u = int.from_bytes(draw, "big") / 2**64
        if u < self._settings.error_rate_429:
            return 429
        if u < self._settings.error_rate_429 + self._settings.error_rate_500:
            return 500
        return 0

    async def _hook(self, method: str, path: str, receive: Receive, send: Send) -> None:
        """The ``/_mock/*`` test hooks (see the module doc)."""
        body = await _read_body(receive)
        recorder = self._recorder
        if path == "/_mock/requests" and method == "GET":
            await _respond(send, 200, recorder.requests_json(), _JSON)
        elif path == "/_mock/requests" and method == "DELETE":
            recorder.clear_requests()
            await _respond(send, 204, b"", _JSON)
        elif path == "/_mock/stats" and method == "GET":
            await _respond(send, 200, recorder.stats_json(), _JSON)
        elif path == "/_mock/stats" and method == "DELETE":
            recorder.clear_stats()
            await _respond(send, 204, b"", _JSON)
        elif path == "/_mock/outage" and method == "POST":
            try:
                status, seconds = parse_outage(body)
            except InvalidSimRequest as error:
                await _error(send, 400, str(error), anthropic=False)
                return
            self._outage = (status, time.monotonic() + seconds)
            await _respond(send, 200, orjson.dumps({"status": status, "seconds": seconds}), _JSON)
        elif path == "/_mock/outage" and method == "DELETE":
            self._outage = None
            await _respond(send, 204, b"", _JSON)
        else:
            await _error(send, 404, f"Unknown test hook {method} {path[:200]}", anthropic=False)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None past 32 MiB (the rest is read and dropped)."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size <= _MAX_BODY:
            parts.append(chunk)
    return b"".join(parts) if size <= _MAX_BODY else None


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> int:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status


async def _error(
    send: Send, status: int, message: str, *, anthropic: bool, retry_after: int | None = None
) -> int:
    headers = () if retry_after is None else ((b"retry-after", str(retry_after).encode()),)
    body = error_body(status, message, anthropic=anthropic)
    return await _respond(send, status, body, _JSON, headers)


async def _stream(send: Send, events: list[bytes], delay_s: float) -> None:
    """Send each SSE event as its own body message, ``delay_s`` apart."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
            ],
        }
    )
    for index, event in enumerate(events):
        if delay_s and index:
            await asyncio.sleep(delay_s)
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
