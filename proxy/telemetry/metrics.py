"""The gateway's Prometheus metrics (``GET /metrics``, text format).

What is counted where: every log record (one per provider attempt, and one per refusal)
through :meth:`GatewayMetrics.record`, so that the counters agree with the warehouse's
rows; each client request once, when it is answered, through :meth:`request_done`
(gateway-added latency, DLP and guardrail actions); provider calls as they end
(upstream latency, time to first token, upstream errors, failovers); refusals and
reroutes by the controls; open connections by the server; the log writer's spool and
upload failures from its stats. Counters are summed in dicts on the request path and
added to the exported counters by :meth:`GatewayMetrics.flush` (at each scrape, every 5 s
and at shutdown: ``proxy.asgi``); histograms are observed as they happen.

Label values are bounded (:mod:`proxy.telemetry.labels`): route, provider, model, status,
cache status, DLP and guardrail categories; never a key, a user or a prompt.

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set in the environment before the gateway
starts (an empty folder; prometheus-client reads it when first imported), every process
writes its values to files there and a scrape of any process reads them all
(:func:`exposition_registry`); another process's counts are then at most one flush late.
Otherwise values live in this object's registry. Units: seconds, tokens, USD. Not
thread-safe: called on the gateway's event loop (the server's protocol callbacks included);
only the rendering of a scrape may run on another thread.
"""

from __future__ import annotations

import time
from typing import Any, Final

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

from core import logpush
from proxy.logs import RequestLog, WriterStats
from proxy.providers import UpstreamResponse
from proxy.telemetry.labels import NONE, OTHER, LabelBounds

__all__ = ["CONTENT_TYPE", "METRIC_NAMES", "GatewayMetrics", "exposition_registry"]

CONTENT_TYPE: Final = prometheus_client.CONTENT_TYPE_PLAIN_0_0_4

# Seconds. Gateway-added time is sub-millisecond when all is well; providers take seconds.
_GATEWAY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_UPSTREAM_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_TTFT_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_REFUSALS: Final = {  # RequestRefused.kind -> reason label
    "rate_limit_exceeded": "rate_limit",
    "budget_exceeded": "budget",
    "guardrail_blocked": "guardrail",
    "dlp_blocked": "dlp",
}
_STATUS: Final = {code: str(code) for code in range(100, 600)}

# Every series name the gateway exports (the Grafana dashboard's test reads this).
METRIC_NAMES: Final = (
    "aigw_requests_total",
    "aigw_tokens_total",
    "aigw_cost_usd_total",
    "aigw_refusals_total",
    "aigw_budget_reroutes_total",
    "aigw_dlp_actions_total",
    "aigw_guardrail_actions_total",
    "aigw_upstream_errors_total",
    "aigw_failovers_total",
    "aigw_gateway_latency_seconds",
    "aigw_upstream_latency_seconds",
    "aigw_time_to_first_token_seconds",
    "aigw_log_spool_batches",
    "aigw_log_upload_failures_total",
    "aigw_open_connections",
)


def exposition_registry(metrics: GatewayMetrics, multiprocess_dir: str | None) -> Any:
    """What a scrape reads: every process's values from ``multiprocess_dir`` when set,
    else ``metrics``'s own registry (the seam for ``--workers``)."""
    if multiprocess_dir is None:
        return metrics.registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    return registry


class _Family:
    """A labelled metric with its children cached by label values (``labels()`` takes a
    lock and builds a key on every call; this is one dict lookup)."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


class _Counts(_Family):
    """A labelled counter whose increments are summed in a dict on the request path (a
    tenth of ``inc``'s cost: no lock, no file write in multi-process mode) and added to the
    counter by :meth:`flush`."""

    __slots__ = ("pending",)

    def __init__(self, metric: Any) -> None:
        super().__init__(metric)
        self.pending: dict[tuple[str, ...], float] = {}

    def add(self, values: tuple[str, ...], amount: float = 1) -> None:
        pending = self.pending
        pending[values] = pending.get(values, 0) + amount

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for values, amount in pending.items():
            self(*values).inc(amount)


class GatewayMetrics:
    """The gateway's metrics, in ``registry`` (a new one by default: two gateways in one
    process keep their own). See the module docstring for what is counted where."""

    def __init__(
        self,
        labels: LabelBounds,
        *,
        dlp_categories: frozenset[str] = frozenset(),
        guardrail_categories: frozenset[str] = frozenset(),
        registry: CollectorRegistry | None = None,
    ) -> None:
        # no *_created series (they double the output); untyped in prometheus-client 0.26
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.labels = labels
        self.registry = registry or CollectorRegistry(auto_describe=False)
        self._dlp_categories = dlp_categories
        self._guardrail_categories = guardrail_categories
        r = self.registry
        self._counts: list[_Counts] = []
        self._open = 0  # client connections open now

        def counter(name: str, doc: str, *labelnames: str) -> _Counts:
            counts = _Counts(Counter(name, doc, labelnames, registry=r))
            self._counts.append(counts)
            return counts

        def histogram(name: str, doc: str, label: str, buckets: tuple[float, ...]) -> _Family:
            return _Family(Histogram(name, doc, (label,), registry=r, buckets=buckets))

        self.requests = counter(
            "aigw_requests",
            "Log records: provider attempts and refusals.",
            *("route", "provider", "model", "status", "cache"),
        )
        self.tokens = counter(
            "aigw_tokens",
            "Tokens providers processed (cache hits not included).",
            *("provider", "model", "direction"),
        )
        self.cost = counter("aigw_cost_usd", "USD of provider answers.", "provider", "model")
        self.refusals = counter(
            "aigw_refusals", "Requests refused by the controls.", "route", "reason"
        )
        self.reroutes = counter(
            "aigw_budget_reroutes", "Requests rerouted by a spent budget.", "route"
        )
        self.dlp = counter("aigw_dlp_actions", "DLP actions per category.", "action", "category")
        self.guardrails = counter(
            "aigw_guardrail_actions", "Guardrail verdicts per category.", "action", "category"
        )
        self.upstream_errors = counter(
            "aigw_upstream_errors",
            "Provider calls answered 408/429/5xx (status) or not at all (status none).",
            *("provider", "status"),
        )
        self.failovers = counter(
            "aigw_failovers", "Requests passed on from a provider to the next.", "provider"
        )
        self.gateway_latency = histogram(
            "aigw_gateway_latency_seconds",
            "Time a request spent in the gateway, provider calls excluded.",
            "route",
            _GATEWAY_BUCKETS,
        )
        self.upstream_latency = histogram(
            "aigw_upstream_latency_seconds",
            "Provider calls, request sent to answer read (a stream: to its end).",
            "provider",
            _UPSTREAM_BUCKETS,
        )
        self.ttft = histogram(
            "aigw_time_to_first_token_seconds",
            "Streamed answers: request sent to first bytes of the stream.",
            "provider",
            _TTFT_BUCKETS,
        )
        self.spool = Gauge(
            "aigw_log_spool_batches",
            "Log batches waiting in the spool folder for another upload.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.upload_failures = Counter(
            "aigw_log_upload_failures", "Failed log batch uploads.", registry=r
        )
        self.connections = Gauge(
            "aigw_open_connections",
            "Open client connections.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self._uploads_failed = 0  # the writer's count at the last refresh

    def record(self, record: dict[str, Any]) -> None:
        """Count one log record (a ``RecordSink``'s view: called as it is submitted)."""
        provider = self.labels.provider(record[logpush.PROVIDER])
        cached = record[logpush.CACHED]
        measures = record[logpush.METRICS]
        cost = measures.get(logpush.METRIC_COST)
        model = self.labels.model(record[logpush.MODEL], priced=cost is not None and not cached)
        cache = "hit" if cached else "miss" if logpush.CACHE_KEY_HASH in record else NONE
        status = _STATUS.get(record[logpush.STATUS_CODE], OTHER)
        self.requests.add((record[logpush.ROUTE] or NONE, provider, model, status, cache))
        if cached:
            return
        tokens_in = measures.get(logpush.METRIC_TOKENS_IN)
        if tokens_in is not None:
            self.tokens.add((provider, model, "in"), tokens_in)
            self.tokens.add((provider, model, "out"), measures[logpush.METRIC_TOKENS_OUT])
        if cost:
            self.cost.add((provider, model), cost)

    def request_done(self, log: RequestLog) -> None:
        """Count a client request once, as it is answered: the time the gateway added
        (since it arrived, minus ``log.upstream_ns``), its DLP and guardrail actions."""
        spent_ns = time.perf_counter_ns() - log.t0 - log.upstream_ns
        self.gateway_latency(log.route or NONE).observe(max(spent_ns, 0) / 1e9)
        if log.dlp_action is not None:
            for category in log.dlp_categories:
                known = category if category in self._dlp_categories else OTHER
                self.dlp.add((log.dlp_action, known))
        if log.guardrail_action is not None:
            for category in log.guardrail_categories:
                known = category if category in self._guardrail_categories else OTHER
                self.guardrails.add((log.guardrail_action, known))

    def refused(self, route: str, kind: str) -> None:
        """A refusal by the controls (``RequestRefused.kind``); other kinds are not counted."""
        reason = _REFUSALS.get(kind)
        if reason is not None:
            self.refusals.add((route, reason))

    def rerouted(self, route: str) -> None:
        self.reroutes.add((route,))

    def upstream_answered(self, log: RequestLog, provider: str, response: UpstreamResponse) -> None:
        """A provider call that got an answer (read, streamed, or cut off by the client):
        its latency (and a stream's time to first token) and its share of ``log``'s
        upstream time."""
        end = response.done_ns or time.perf_counter_ns()
        elapsed = end - response.sent_ns
        log.upstream_ns += elapsed
        label = self.labels.provider(provider)
        self.upstream_latency(label).observe(elapsed / 1e9)
        if response.first_chunk_ns:
            self.ttft(label).observe((response.first_chunk_ns - response.sent_ns) / 1e9)
        if response.status in (408, 429) or response.status >= 500:
            self.upstream_errors.add((label, _STATUS.get(response.status, OTHER)))

    def upstream_unanswered(self, log: RequestLog, provider: str, started_ns: int) -> None:
        """A provider call that got no answer (refused connection, timeout) since
        ``started_ns`` (``time.perf_counter_ns``)."""
        log.upstream_ns += time.perf_counter_ns() - started_ns
        self.upstream_errors.add((self.labels.provider(provider), NONE))

    def failover(self, provider: str) -> None:
        """A request passed on from ``provider`` to the next target."""
        self.failovers.add((self.labels.provider(provider),))

    def connection_changed(self, delta: int) -> None:
        """A client connection opened (+1) or closed (-1)."""
        self._open += delta

    def flush(self, stats: WriterStats | None) -> None:
        """Bring the exported values up to date: the counts gathered since the last flush,
        the open connections, and the log writer's spool depth and upload failures from
        ``stats`` (None: no writer yet). Called before each scrape and every few seconds."""
        for counts in self._counts:
            counts.flush()
        self.connections.set(self._open)
        if stats is None:
            return
        self.spool.set(stats.spooled_pending)
        if stats.upload_failures > self._uploads_failed:
            self.upload_failures.inc(stats.upload_failures - self._uploads_failed)
            self._uploads_failed = stats.upload_failures
