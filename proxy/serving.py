"""Serving an ASGI app with uvicorn until SIGTERM or SIGINT: the gateway's ``aigw proxy``
and the simulated provider's ``aigw mock-provider`` (``sim.provider`` imports it).

The gateway is served with limits (``ServerSettings``, ``[server]`` in gateway.toml) so
that idle and slow clients cannot exhaust its open files: a connection must deliver its
request headers within ``header_timeout_s`` (else 408) and keep them under
``max_header_bytes`` (else 431), an idle keep-alive connection is closed after
``keepalive_timeout_s``, and past ``max_connections`` open connections uvicorn answers
503 (its ``limit_concurrency``) with a warning on stderr. The body timeout is enforced
where the body is read (``proxy.wire.read_request``).

Each of these answers is reported to ``on_refusal`` (the gateway logs it as one record),
as is a request the HTTP parser rejects (400). A connection that sent nothing before its
header timeout is closed with a 408 but not reported: no request was made. The 408, 431 and
400 answered here are JSON in the error shape of the path, as far as it arrived: Anthropic's
on ``/v1/messages`` paths (``proxy.wire.anthropic_path``), else OpenAI's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.wire import Request, anthropic_error_body, anthropic_path, error_body

if TYPE_CHECKING:
    import socket

__all__ = [
    "ConnectionHook",
    "RefusalHook",
    "ServerSettings",
    "gateway_server",
    "raise_open_file_limit",
    "serve_until_signal",
]

# Told of every answer the server gives on its own (status, reason, the request's head as
# far as it arrived); called on the event loop, it must not block.
RefusalHook = Callable[[int, str, Request], None]
# Told of each client connection opened (+1) and closed (-1); on the event loop, must not block.
ConnectionHook = Callable[[int], None]

_log = logging.getLogger("aigw.proxy")

# A refused connection is read (and discarded) this long after its answer before closing,
# so a client still sending gets the answer rather than a reset.
_LINGER_S: Final = 2.0
_FILES_PER_CONNECTION: Final = 2  # the client's socket and one to the provider
_SPARE_FILES: Final = 64  # log files, the cache, listening sockets


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """``[server]``'s limits on clients (seconds, bytes); every connection is an open file."""

    header_timeout_s: float = 10.0  # from connection (or a request's first byte) to its headers
    body_timeout_s: float = 60.0  # from the end of the headers to the whole body
    keepalive_timeout_s: float = 5.0  # an idle connection between requests
    max_connections: int = 1000  # open client connections; past it, requests get 503
    max_header_bytes: int = 32 * 1024  # request line and headers; past it, 431


def gateway_server(
    app: Any,
    limits: ServerSettings,
    host: str,
    port: int,
    *,
    on_refusal: RefusalHook | None = None,
    on_connection: ConnectionHook | None = None,
) -> uvicorn.Server:
    """A uvicorn server (uvloop, httptools) for ``app`` that enforces ``limits``, tells
    ``on_refusal`` of each answer it gives on its own (408, 431, 503, 400) and
    ``on_connection`` of each client connection opened and closed.

    Port 0 picks a free port. Run it with :func:`serve_until_signal`, or ``serve()`` it.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=_guarded_protocol(limits, on_refusal, on_connection),
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=30,
        # max_connections is the count served: uvicorn refuses when the requesting
        # connection brings the count to its limit
        limit_concurrency=limits.max_connections + 1,
        timeout_keep_alive=limits.keepalive_timeout_s,  # type: ignore[arg-type] # call_later takes float seconds
    )
    return uvicorn.Server(config)


def raise_open_file_limit(max_connections: int) -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new soft limit.

    Warns (stderr) when even that is too low for ``max_connections`` (each may hold two
    files: the client's socket and one to a provider).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as err:
            _log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, err)
    needed = max_connections * _FILES_PER_CONNECTION + _SPARE_FILES
    if soft < needed:
        _log.warning(
            "the open-file limit (%d) is below what max_connections = %d may need (%d); "
            "lower [server] max_connections or raise the limit (ulimit -n)",
            soft,
            max_connections,
            needed,
        )
    return soft


class _GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a header size limit.

    The header timer runs from the connection (and from each later request's first byte)
    to the end of that request's headers; uvicorn's own keep-alive timer covers the idle
    time between requests. Written against uvicorn 0.55's ``HttpToolsProtocol``.
    """

    limits: ClassVar[ServerSettings]
    refusal_hooks: ClassVar[tuple[RefusalHook, ...]]  # gateway_server's on_refusal, if any
    connection_hooks: ClassVar[tuple[ConnectionHook, ...]]  # its on_connection, if any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn closes through self.transport (after a "connection: close" answer, an
        # idle keep-alive, a shutdown): see _LingeringTransport
        self.transport = _LingeringTransport(transport, self._close_gently)
        for hook in self.connection_hooks:
            hook(1)
        self._refused = False
        self._header_bytes = 0
        self._awaiting_headers = True
        self._header_timer: asyncio.TimerHandle | None = None
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)
        for hook in self.connection_hooks:
            hook(-1)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: read and drop
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._header_bytes > self.limits.max_header_bytes:
            self._refuse_too_large()

    # After a refusal the parser still runs over what is left of the data it was fed;
    # these callbacks then do nothing (no request is started).

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._awaiting_headers = True
        if self._header_timer is None:
            self._start_header_timer()

    def on_url(self, url: bytes) -> None:
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._stop_header_timer()
        self._awaiting_headers = False
        self._header_bytes = 0
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._refuse_too_large()
            return
        if self._over_concurrency():  # uvicorn answers it 503 (and warns)
            self._report(503, f"too many connections ({self.limits.max_connections} max)")
        super().on_headers_complete()

    def _over_concurrency(self) -> bool:
        """uvicorn's own test for answering 503 in ``on_headers_complete``."""
        limit = self.limit_concurrency
        return limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._awaiting_headers = True

    def send_400_response(self, msg: str) -> None:
        """The parser's 400, as JSON in the path's shape (after a refusal: nothing, the
        connection was answered already)."""
        self._refuse(400, f"malformed HTTP request: {msg}")

    def _path(self) -> str:
        """The request's path as far as it arrived ("" before its request line)."""
        url: bytes = getattr(self, "url", b"")
        return url.split(b"?", 1)[0][:2048].decode("latin-1")

    def _report(self, status: int, reason: str) -> None:
        """Tell ``on_refusal`` of an answer given here, with the request's head so far."""
        if not self.refusal_hooks:
            return
        try:
            method = self.parser.get_method().decode("latin-1")
        except Exception:  # noqa: BLE001 - httptools: the request line did not arrive
            method = ""
        raw_headers: list[tuple[bytes, bytes]] = getattr(self, "headers", [])
        client = self.client
        request = Request(
            method=method,
            path=self._path(),
            headers={
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in raw_headers
            },
            body=b"",
            client_ip=client[0] if client else None,
        )
        for hook in self.refusal_hooks:
            hook(status, reason, request)

    def _refuse_too_large(self) -> None:
        self._refuse(431, f"request headers too large ({self.limits.max_header_bytes} bytes max)")

    def _start_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout_s, self._headers_too_slow
        )

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self._start_header_timer()  # a pipelined request waits for the answer before it
            return
        message = f"request headers not received within {self.limits.header_timeout_s:g} s"
        self._refuse(408, message, report=self._header_bytes > 0)  # a request had begun

    def _refuse(self, status: int, message: str, *, report: bool = True) -> None:
        """Answer ``status`` and close; what the client still sends is read and dropped.
        ``report``: tell ``on_refusal`` (once, when the answer is sent)."""
        if self._refused or self.transport.is_closing():
            return
        if report:
            self._report(status, message)
        self._refused = True
        self._stop_header_timer()
        self._unset_keepalive_if_required()
        shaped = (
            anthropic_error_body(status, message)
            if anthropic_path(self._path())
            else error_body(message, "invalid_request_error")
        )
        body = orjson.dumps(shaped)
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.transport.close()  # lingers

    def _close_gently(self, transport: asyncio.Transport) -> None:
        """Close ``transport``; when the client may still be sending (a refusal, a request
        whose body has not all arrived), linger: what is written goes out, the write side
        shuts, and what the client still sends is read and dropped until it closes its
        side (the transport then closes itself) or ``_LINGER_S`` pass. An idle connection
        closes at once."""
        if not (self._refused or (self.cycle is not None and self.cycle.more_body)):
            transport.close()
            return
        self._refused = True
        self._stop_header_timer()
        if transport.can_write_eof():
            transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(_LINGER_S, transport.close)


_REASONS: Final = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
}


class _LingeringTransport(asyncio.Transport):
    """A connection's transport whose ``close()`` is the protocol's gentle close, which
    lingers while the client may still be sending (nginx's lingering close): a client
    still sending when the server closes (a body cut off by the body timeout, a refused
    request) would otherwise get a TCP reset that can discard the answer it has not read
    yet. ``abort()`` still closes at once. Everything else is the transport's."""

    def __init__(self, transport: asyncio.Transport, close: Callable[[asyncio.Transport], None]):
        super().__init__()
        self._transport = transport
        self._close = close
        self._closing = False

    def close(self) -> None:
        if not self._closing and not self._transport.is_closing():
            self._closing = True
            self._close(self._transport)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def abort(self) -> None:
        self._closing = True
        self._transport.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


def _guarded_protocol(
    limits: ServerSettings, on_refusal: RefusalHook | None, on_connection: ConnectionHook | None
) -> type[HttpToolsProtocol]:
    namespace = {
        "limits": limits,
        "refusal_hooks": (on_refusal,) if on_refusal else (),
        "connection_hooks": (on_connection,) if on_connection else (),
    }
    return type("GuardedHttpToolsProtocol", (_GuardedProtocol,), namespace)


def serve_until_signal(
    server: uvicorn.Server,
    *,
    sockets: list[socket.socket] | None = None,
    on_reload: Callable[[], None] | None = None,
) -> None:
    """Run ``server`` (on ``sockets`` when given) until SIGTERM or SIGINT, then return.
    SIGHUP calls ``on_reload`` on the event loop, when given.

    The first signal starts uvicorn's graceful shutdown (in-flight requests finish, then the
    app's lifespan shutdown runs); a second one forces it. The signal is not raised again
    once the server has stopped, as uvicorn's own handler does, so the process exits 0: a
    supervisor reads a re-raised SIGTERM as a crash. Signals are caught only when called
    from the main thread; elsewhere, stop the server with ``server.should_exit = True``.
    """
    server.capture_signals = lambda: _stop_on_signals(server, on_reload)  # type: ignore[method-assign]
    server.run(sockets=sockets)


@contextlib.contextmanager
def _stop_on_signals(
    server: uvicorn.Server, on_reload: Callable[[], None] | None
) -> Iterator[None]:
    """SIGTERM and SIGINT ask ``server`` to stop (a second one forces it) while it runs;
    SIGHUP schedules ``on_reload`` on the running loop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    handlers: dict[int, Callable[[int, FrameType | None], None]] = {
        signal.SIGTERM: stop,
        signal.SIGINT: stop,
    }
    if on_reload is not None:
        loop = asyncio.get_running_loop()  # uvicorn captures signals inside serve()

        def reload(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(on_reload)

        handlers[signal.SIGHUP] = reload
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    # a worker of proxy.workers starts with them blocked: one sent while it started is
    # delivered now, to its handler
    signal.pthread_sigmask(signal.SIG_UNBLOCK, tuple(handlers))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
