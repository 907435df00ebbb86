"""OpenTelemetry export over OTLP/HTTP: one span per log record and the GenAI client
metrics, following the GenAI semantic conventions (``gen_ai.*`` attributes).

Only when ``[telemetry] otlp_endpoint`` is set: nothing is imported, started or sent
otherwise. Needs the ``otel`` extra (``pip install 'aigw[otel]'``); this module imports it
and is itself imported only then (``proxy.telemetry.wiring``). The event loop only queues
each record (the SDK's span and metric calls cost a few hundred µs and take the SDK's
locks, which its export threads hold at times); a thread of this export turns records into
spans and metric points, which the SDK's threads send (batched spans; metrics every
``interval_s``). Past ``max_queued`` waiting records, new ones are dropped from telemetry
and counted (``dropped``). :meth:`OtlpExport.close` drains the queue and flushes. An
unreachable collector loses telemetry, never a request or a log record.

Each record (a provider attempt, a cache hit or a refusal) becomes a CLIENT span named
``"{gen_ai.operation.name} {gen_ai.request.model}"`` from its ``Timestamp`` for its
``durationMs``, with ``gen_ai.operation.name``, ``gen_ai.system`` and
``gen_ai.provider.name`` (the provider's API: ``openai``, ``anthropic``),
``gen_ai.request.model`` (what the client asked for), ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``, the HTTP status and
``aigw.*`` attributes (route, provider, step, cache, log id). Metrics:
``gen_ai.client.token.usage`` ({token}) and ``gen_ai.client.operation.duration`` (s), with
the bounded model and provider values of the Prometheus metrics.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from core import logpush
from proxy.settings import ProviderSettings
from proxy.telemetry.labels import NONE, LabelBounds

__all__ = ["OtlpExport"]

_log = logging.getLogger("aigw.proxy")

_OPERATIONS: Final = {  # endpoint -> gen_ai.operation.name
    "chat/completions": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",  # the Responses API generates like chat
}
_ROOT: Final = Context()  # records are root spans, whatever context is current


class OtlpExport:
    """Spans and GenAI metrics for ``endpoint`` (an OTLP/HTTP base URL: ``/v1/traces`` and
    ``/v1/metrics`` are added). ``record`` is called on the event loop and never blocks;
    ``close`` blocks (drains and flushes)."""

    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str,
        providers: Mapping[str, ProviderSettings],
        labels: LabelBounds,
        interval_s: float = 10.0,
        max_queued: int = 10_000,
    ) -> None:
        resource = Resource.create({"service.name": service_name})
        self._tracing = TracerProvider(resource=resource)
        self._tracing.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"),
            export_interval_millis=interval_s * 1000,
        )
        self._metering = MeterProvider(resource=resource, metric_readers=[reader])
        self._tracer = self._tracing.get_tracer("aigw.proxy")
        meter = self._metering.get_meter("aigw.proxy")
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per call."
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Duration of a call."
        )
        self._kinds = {name: p.kind for name, p in providers.items()}
        self._labels = labels
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queued)
        self.dropped = 0  # records left out of telemetry: the queue was full
        self._thread = threading.Thread(target=self._run, name="aigw-otlp", daemon=True)
        self._thread.start()

    def record(self, record: dict[str, Any]) -> None:
        """Queue one log record for export (dropped and counted when the queue is full)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                self._export(record)
            except Exception:  # noqa: BLE001 - one bad record must not stop the export
                _log.exception("telemetry: a log record could not be exported")

    def _export(self, record: dict[str, Any]) -> None:
        """One span (and metric points) for one log record."""
        provider = record[logpush.PROVIDER]
        operation = _OPERATIONS.get(record[logpush.ENDPOINT] or "", "gateway")
        requested = record[logpush.REQUESTED_MODEL]
        served = record[logpush.MODEL]
        status = record[logpush.STATUS_CODE]
        measures = record[logpush.METRICS]
        system = self._kinds.get(provider or "", NONE)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": system,
            "gen_ai.provider.name": system,
            "http.response.status_code": status,
            "aigw.route": record[logpush.ROUTE] or NONE,
            "aigw.provider": provider or NONE,
            "aigw.step": record[logpush.STEP],
            "aigw.cached": record[logpush.CACHED],
            "aigw.log_id": record[logpush.LOG_ID],
        }
        if requested is not None:
            attributes["gen_ai.request.model"] = requested
        if served is not None:
            attributes["gen_ai.response.model"] = served
        tokens_in = measures.get(logpush.METRIC_TOKENS_IN)
        if tokens_in is not None:
            attributes["gen_ai.usage.input_tokens"] = tokens_in
            attributes["gen_ai.usage.output_tokens"] = measures[logpush.METRIC_TOKENS_OUT]
        if status >= 400:
            attributes["error.type"] = str(status)
        start = record[logpush.TIMESTAMP]
        duration_s = measures[logpush.METRIC_DURATION_MS] / 1000
        name = f"{operation} {requested}" if requested else operation
        span = self._tracer.start_span(name, _ROOT, SpanKind.CLIENT, attributes, start_time=start)
        if status >= 400:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start + round(duration_s * 1e9))
        point = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": system,
            "gen_ai.response.model": self._labels.model(served),
        }
        self._duration.record(duration_s, point)
        if tokens_in is not None and not record[logpush.CACHED]:
            self._tokens.record(tokens_in, {**point, "gen_ai.token.type": "input"})
            tokens_out = measures[logpush.METRIC_TOKENS_OUT]
            self._tokens.record(tokens_out, {**point, "gen_ai.token.type": "output"})

    def close(self) -> None:
        """Export what is queued, then stop the threads (blocks up to ~30 s)."""
        self._queue.put(None)
        self._thread.join()
        if self.dropped:
            _log.warning("telemetry: %d log records were left out of the OTLP export", self.dropped)
        self._tracing.shutdown()
        self._metering.shutdown()
