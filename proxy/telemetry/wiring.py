"""How the gateway's telemetry is put together from ``gateway.toml``: the Prometheus metrics,
the OTLP export when configured (and its extra installed), and the record sink that shows
each log record to them before the log writer takes it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.lake import require
from proxy.logs import RecordSink
from proxy.policy import DLP_CATEGORIES, GUARDRAIL_CATEGORIES
from proxy.settings import GatewayConfig
from proxy.telemetry.labels import LabelBounds, route_models
from proxy.telemetry.metrics import GatewayMetrics

if TYPE_CHECKING:
    from proxy.telemetry.otel import OtlpExport

__all__ = ["ObservedSink", "new_metrics", "open_otlp", "require_otel"]

_log = logging.getLogger("aigw.proxy")


def require_otel(config: GatewayConfig) -> None:
    """``MissingExtra`` (one line: ``pip install 'aigw[otel]'``) when ``[telemetry]
    otlp_endpoint`` is set and the ``otel`` extra is not installed; nothing is imported
    when it is not set."""
    if config.telemetry.otlp_endpoint is None:
        return
    feature = "[telemetry] otlp_endpoint"
    for module in ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http"):
        require(module, extra="otel", feature=feature)


def new_metrics(config: GatewayConfig) -> GatewayMetrics:
    """The gateway's Prometheus metrics, label values bounded by ``config``: its providers,
    the models its routes, fallbacks and reroutes name, and ``max_model_labels`` others."""
    named = [glob for route in config.routes for glob in route.match]
    for route in config.routes:
        named += [f.model for f in route.fallbacks if f.model]
        if route.budget is not None and route.budget.reroute:
            named.append(route.budget.reroute)
    labels = LabelBounds(config.providers, route_models(named), config.telemetry.max_model_labels)
    return GatewayMetrics(
        labels,
        dlp_categories=frozenset(DLP_CATEGORIES),
        guardrail_categories=frozenset(GUARDRAIL_CATEGORIES),
    )


def open_otlp(config: GatewayConfig, labels: LabelBounds) -> OtlpExport | None:
    """The OTLP export ``[telemetry]`` asks for, or None (then nothing is imported)."""
    telemetry = config.telemetry
    if telemetry.otlp_endpoint is None:
        return None
    require_otel(config)
    from proxy.telemetry.otel import OtlpExport  # noqa: PLC0415 - the otel extra, lazily

    return OtlpExport(
        telemetry.otlp_endpoint,
        service_name=telemetry.service_name,
        providers=config.providers,
        labels=labels,
    )


class ObservedSink:
    """A ``RecordSink`` that submits each record to ``sink``, then shows it to
    ``observers`` (they read it, never change it, never block). An observer that fails is
    logged and the request goes on: telemetry never costs a record or an answer."""

    __slots__ = ("_observers", "_sink")

    def __init__(self, sink: RecordSink, *observers: Callable[[dict[str, Any]], None]) -> None:
        self._sink = sink
        self._observers = observers

    def submit(self, record: dict[str, Any]) -> None:
        self._sink.submit(record)
        for observe in self._observers:
            try:
                observe(record)
            except Exception:  # noqa: BLE001 - a telemetry bug must not fail the request
                _log.exception("telemetry: a log record could not be observed")
