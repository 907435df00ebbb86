"""The gateway's telemetry: Prometheus metrics (``metrics``, bounded ``labels``), the
OpenTelemetry export over OTLP when configured (``otel``, imported only then), readiness
(``health``) and how they are wired to the log records (``wiring``). See docs/gateway.md
(Metrics, traces and health)."""

from proxy.telemetry.health import not_ready
from proxy.telemetry.labels import LabelBounds
from proxy.telemetry.metrics import CONTENT_TYPE, METRIC_NAMES, GatewayMetrics, exposition_registry
from proxy.telemetry.wiring import ObservedSink, new_metrics, open_otlp, require_otel

__all__ = [
    "CONTENT_TYPE",
    "METRIC_NAMES",
    "GatewayMetrics",
    "LabelBounds",
    "ObservedSink",
    "exposition_registry",
    "new_metrics",
    "not_ready",
    "open_otlp",
    "require_otel",
]
