"""The gateway as an ASGI application, and how it is served.

``create_gateway_app(config)`` builds the app; its lifespan opens the provider
sessions, the cache, the limit stores and the log writer at start-up and closes
them at shutdown, where the writer flushes every buffered record. Besides the API it
answers ``GET /healthz`` (the process is up), ``GET /readyz`` (ready for traffic, see
:mod:`proxy.telemetry.health`) and ``GET /metrics`` (Prometheus; ``[telemetry] metrics``
says who may read it); none of the three leaves a log record. ``run_gateway``
serves it with :func:`proxy.serving.serve_until_signal` under ``[server]``'s limits
(:func:`proxy.serving.gateway_server`), the open-file limit raised first: SIGTERM and
SIGINT start that shutdown once in-flight requests finish, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

import prometheus_client

from models.pricing import load_price_file
from models.request_pricing import RequestPricer
from proxy.config import GatewayConfig, load_gateway_config
from proxy.errors import BodyTimeout, BodyTooLarge, GatewayConfigError, ProxyError, RequestRefused
from proxy.inbound import authenticate
from proxy.logs import LogSink, LogWriter, WriterSettings, open_sink
from proxy.pipeline import Gateway
from proxy.providers import Upstream, forwarded_headers
from proxy.services import CacheClock, Services
from proxy.serving import gateway_server, raise_open_file_limit, serve_until_signal
from proxy.stores import open_cache, open_counter, open_rate_limiter
from proxy.telemetry import (
    CONTENT_TYPE,
    ObservedSink,
    exposition_registry,
    new_metrics,
    not_ready,
    open_otlp,
    require_otel,
)
from proxy.wire import (
    Receive,
    Request,
    Responder,
    Scope,
    Send,
    anthropic_path,
    read_request,
    request_head,
)

if TYPE_CHECKING:
    import socket

    from proxy.telemetry.otel import OtlpExport

__all__ = ["GatewayApp", "create_gateway_app", "run_gateway"]

_log = logging.getLogger("aigw.proxy")
_OPS_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
_FLUSH_S: Final = 5.0  # how often gathered counts and the writer's stats reach the metrics


class GatewayApp:
    """ASGI app: ``lifespan`` starts and stops the services; ``http`` runs the pipeline."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        upstream: Upstream | None = None,
        simulated_time: bool = False,
    ) -> None:
        require_otel(config)  # before anything starts: one line if the otel extra is missing
        self.config = config
        self._simulated_time = simulated_time
        self._upstream = upstream
        self.gateway: Gateway | None = None
        self.writer: LogWriter | None = None
        self.metrics = new_metrics(config)
        self._services: Services | None = None
        self._sink: LogSink | None = None
        self._otlp: OtlpExport | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.quiet_reload = False  # a successful reload_file is logged at info, not warning

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    def connection_changed(self, delta: int) -> None:
        """``proxy.serving``'s ``on_connection``: a client connection opened or closed."""
        self.metrics.connection_changed(delta)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        out = Responder(send, receive, anthropic=anthropic_path(scope["path"]))
        if scope["path"] in _OPS_PATHS and scope["method"] in ("GET", "HEAD"):
            await self._ops(scope, out)
            return
        if self.gateway is None:
            await out.error(503, "the gateway is starting", "unavailable")
            return
        try:
            request = await read_request(
                scope, receive, timeout_s=self.config.server.body_timeout_s
            )
            forwarded_headers(request.headers)  # refuse before any provider is called
        except BodyTooLarge:
            message = "request body too large (32 MiB max)"
            self.gateway.log_early_refusal(request_head(scope), 413, message)
            await out.error(413, message, "invalid_request_error")
            return
        except RequestRefused as err:
            self.gateway.log_early_refusal(request_head(scope), err.status, str(err))
            # the rest of a body that timed out is never read: the connection cannot be reused
            close = [("connection", "close")] if isinstance(err, BodyTimeout) else []
            await out.error(err.status, str(err), err.kind, err.code, close)
            return
        await self.gateway.handle(request, out)

    async def _ops(self, scope: Scope, out: Responder) -> None:
        """``/healthz``, ``/readyz`` and ``/metrics`` (GET, or HEAD: uvicorn drops the
        body): no request body read, no log record."""
        path = scope["path"]
        plain = "text/plain; charset=utf-8"
        if path == "/healthz":
            await out.raw(200, b"ok\n", plain)
            return
        if path == "/readyz":
            reason = "starting" if self._services is None else await self._not_ready()
            status = 200 if reason is None else 503
            await out.raw(status, f"{reason or 'ready'}\n".encode(), plain)
            return
        access = self.config.telemetry.metrics
        if access == "off":
            await out.error(404, "metrics are off ([telemetry] metrics)", "not_found")
            return
        if access == "key":
            try:
                authenticate(request_head(scope).headers, self.config)
            except RequestRefused as err:
                await out.error(err.status, str(err), err.kind, err.code)
                return
        self._flush_metrics()
        registry = exposition_registry(self.metrics, self.config.telemetry.multiprocess_dir)
        # off the event loop: a few ms for a few hundred series (metric values are locked)
        body = await asyncio.to_thread(lambda: prometheus_client.generate_latest(registry))
        await out.raw(200, body, CONTENT_TYPE)

    async def _not_ready(self) -> str | None:
        services = self._services
        if services is None or self._sink is None:
            return "starting"
        spool = Path(self.config.logs.spool_dir)
        return await not_ready(self._sink, spool, services.cache, services.spend)

    def _flush_metrics(self) -> None:
        self.metrics.flush(None if self.writer is None else self.writer.stats)

    async def _refresh_every(self, interval_s: float) -> None:
        """Flush the metrics every ``interval_s`` (so that, with several processes, a
        scrape of any one sees every process's counts, at most this late)."""
        while True:
            await asyncio.sleep(interval_s)
            self._flush_metrics()

    def log_server_refusal(self, status: int, reason: str, request: Request) -> None:
        """The one record of a request the server answered on its own (408 or 431 before
        its headers were whole, 503 past ``max_connections``, 400 for malformed HTTP):
        ``proxy.serving``'s ``on_refusal``. Nothing while the gateway is not running."""
        if self.gateway is not None:
            self.gateway.log_early_refusal(request, status, reason)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as err:  # noqa: BLE001 - reported to uvicorn, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(err)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        config = self.config
        logs = config.logs
        sink = open_sink(logs.destination, endpoint_url=logs.endpoint_url)
        writer = LogWriter(
            sink,
            WriterSettings(
                max_records=logs.max_records,
                max_bytes=logs.max_bytes,
                max_interval_s=logs.max_interval_s,
                sync_interval_s=logs.sync_interval_s,
                spool_dir=Path(logs.spool_dir),
            ),
        )
        upstream = self._upstream or Upstream(config.providers)
        await upstream.start()
        overrides = load_price_file(Path(config.price_file)) if config.price_file else None
        otlp = open_otlp(config, self.metrics.labels)
        observers = [self.metrics.record] + ([otlp.record] if otlp is not None else [])
        cache_clock = CacheClock()
        services = Services(
            config=config,
            upstream=upstream,
            logs=ObservedSink(writer, *observers),
            cache=open_cache(
                config.cache_url, default_path=Path(config.cache_path), clock=cache_clock
            ),
            limiter=open_rate_limiter(config.state_url),
            spend=open_counter(config.state_url),
            pricer=RequestPricer(overrides),
            metrics=self.metrics,
            simulated_time=self._simulated_time,
            cache_clock=cache_clock,
        )
        writer.start()
        self.writer = writer
        self._sink = sink
        self._otlp = otlp
        self._services = services
        self.gateway = Gateway(services)
        self._refresher = asyncio.create_task(self._refresh_every(_FLUSH_S))

    def reload(self, config: GatewayConfig) -> None:
        """Serve new requests with ``config`` (routes, their limits, budgets, DLP and
        guardrail modes, keys, gateway names); requests in flight finish with the old one.
        A change that needs a restart (``GatewayConfig.needs_restart``) raises
        ``GatewayConfigError`` and changes nothing. On the event loop."""
        tables = self.config.needs_restart(config)
        if tables:
            raise GatewayConfigError(
                f"{config.path}: {', '.join(tables)} changed; restart the gateway to apply it"
            )
        self.config = config
        if self._services is not None and self.gateway is not None:
            refusals = self.gateway.refusals  # the per-minute refusal quota carries over
            self._services = dataclasses.replace(self._services, config=config)
            self.gateway = Gateway(self._services)
            self.gateway.refusals = refusals

    def reload_file(self) -> None:
        """SIGHUP: load the config file again and :meth:`reload` it; a file that does not
        load, or a change that needs a restart, is refused with one line on stderr and the
        running config stays."""
        try:
            config = load_gateway_config(self.config.path, os.environ)
            self.reload(config)
        except ProxyError as err:
            _log.error("config reload refused, the running config stays: %s", err)
            return
        _log.log(
            logging.INFO if self.quiet_reload else logging.WARNING,
            "config reloaded from %s (%d routes, %d keys)",
            config.path,
            len(config.routes),
            len(config.keys),
        )

    async def stop(self) -> None:
        services, self._services, self.gateway = self._services, None, None
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if services is not None:
            await services.upstream.close()
            await services.cache.close()
            await services.limiter.close()
            await services.spend.close()
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)
            stats = self.writer.stats
            if stats.spooled_pending:
                _log.warning(
                    "%d log batches could not be uploaded and wait in %s",
                    stats.spooled_pending,
                    self.config.logs.spool_dir,
                )
        self._flush_metrics()  # with several processes, the last counts reach the files
        if self._otlp is not None:
            await asyncio.to_thread(self._otlp.close)


def create_gateway_app(config: GatewayConfig, *, upstream: Upstream | None = None) -> GatewayApp:
    """The gateway for real traffic (the request time is always the gateway's clock)."""
    return GatewayApp(config, upstream=upstream)


def run_gateway(
    config: GatewayConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    sockets: list[socket.socket] | None = None,
    quiet_reload: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT; then finish in-flight requests and flush the logs.
    SIGHUP reloads the config file (``GatewayApp.reload_file``).

    ``sockets``: listening sockets to accept on (a worker's, inherited from the supervisor
    in ``proxy.workers``) instead of binding ``host:port``; ``quiet_reload``: a successful
    reload is not announced on stderr (a worker's supervisor announces it)."""
    raise_open_file_limit(config.server.max_connections)
    app = create_gateway_app(config)
    app.quiet_reload = quiet_reload
    server = gateway_server(
        app,
        config.server,
        host or config.host,
        config.port if port is None else port,
        on_refusal=app.log_server_refusal,
        on_connection=app.connection_changed,
    )
    serve_until_signal(server, sockets=sockets, on_reload=app.reload_file)
