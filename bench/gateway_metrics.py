"""Gateway telemetry benchmark: CPU the metrics add to one request, on the event loop's thread.

    python bench/gateway_metrics.py [--requests 20000] [--otlp]

Replays what one served request (cache miss, one provider attempt, a stream) costs the
telemetry hooks: the record through ``ObservedSink`` into ``GatewayMetrics.record`` (the
sink behind it a no-op), ``upstream_answered``, ``request_done`` with a DLP category, a
connection opened and closed, then one flush of the gathered counts per run; records are
shaped as the gateway writes them. Prints
microseconds of CPU per request (best of 5 runs) on the event loop's thread and in all
threads, and the scrape's size and time. With ``--otlp``, also one span and its GenAI
metric points per record (made on the export's thread), sent to a closed port on 127.0.0.1
(the SDK's sends fail and back off). Keep ``--requests`` under the export's queue (10,000).
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import prometheus_client

from core import logpush
from proxy.config import load_gateway_config
from proxy.logs import RequestLog
from proxy.telemetry import ObservedSink, new_metrics, open_otlp

CONFIG = """
[auth]
required = false
[providers.openai]
base_url = "http://127.0.0.1:9/v1"
[routes.chat]
match = ["gpt-4o-mini", "gpt-4o"]
provider = "openai"
cache = true
dlp = "redact"
[telemetry]
metrics = "open"
"""


class _Null:
    def submit(self, record: dict[str, Any]) -> None:
        """Drop the record."""


class _Response:
    """What ``upstream_answered`` reads of an ``UpstreamResponse``."""

    def __init__(self, *, stream: bool) -> None:
        now = time.perf_counter_ns()
        self.status = 200
        self.sent_ns = now - 40_000_000
        self.first_chunk_ns = now - 30_000_000 if stream else 0
        self.done_ns = now


def _record(n: int) -> dict[str, Any]:
    return {
        logpush.TIMESTAMP: time.time_ns(),
        logpush.LOG_ID: f"{n:032x}",
        logpush.GATEWAY: "bench",
        logpush.PROVIDER: "openai",
        logpush.MODEL: "gpt-4o-mini" if n % 2 else "gpt-4o",
        logpush.REQUESTED_MODEL: "gpt-4o-mini",
        logpush.ENDPOINT: "chat/completions",
        logpush.STATUS_CODE: 200,
        logpush.CACHED: False,
        logpush.RATE_LIMITED: False,
        logpush.METRICS: {
            logpush.METRIC_DURATION_MS: 41.5,
            logpush.METRIC_COST: 0.000123,
            logpush.METRIC_TOKENS_IN: 120,
            logpush.METRIC_TOKENS_OUT: 80,
            logpush.METRIC_CACHE_READ_TOKENS: 0,
            logpush.METRIC_CACHE_WRITE_TOKENS: 0,
        },
        logpush.METADATA: None,
        logpush.STEP: 0,
        logpush.ROUTE: "chat",
        logpush.API_KEY_ID: "bench",
        logpush.CACHE_KEY_HASH: "ab" * 16,
        logpush.DLP_ACTION: "redact",
        logpush.DLP_CATEGORIES: ["EMAIL"],
    }


def _log() -> RequestLog:
    log = RequestLog(
        sink=_Null(),
        gateway="bench",
        endpoint="chat/completions",
        requested_model="gpt-4o-mini",
        route="chat",
        api_key_id="bench",
        metadata=None,
        event_id=None,
        log_bodies=False,
    )
    log.dlp_action, log.dlp_categories = "redact", ("EMAIL",)
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--otlp", action="store_true", help="also time the OTLP export")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="aigw-bench-metrics-"))
    text = CONFIG
    if args.otlp:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        text += f'otlp_endpoint = "http://127.0.0.1:{port}"\n'
    (folder / "gateway.toml").write_text(text)
    config = load_gateway_config(folder / "gateway.toml", {})
    metrics = new_metrics(config)
    otlp = open_otlp(config, metrics.labels)
    observers = [metrics.record] + ([otlp.record] if otlp else [])
    sink = ObservedSink(_Null(), *observers)
    records = [_record(n) for n in range(args.requests)]
    for stream in (False, True):
        logs = [_log() for _ in range(args.requests)]
        responses = [_Response(stream=stream) for _ in range(args.requests)]
        best = best_all = float("inf")
        for _ in range(5):
            start, start_all = time.thread_time_ns(), time.process_time_ns()
            for record, log, response in zip(records, logs, responses, strict=True):
                if stream:  # and a connection of its own
                    metrics.connection_changed(1)
                sink.submit(record)
                metrics.upstream_answered(log, "openai", response)  # type: ignore[arg-type]
                metrics.request_done(log)
                if stream:
                    metrics.connection_changed(-1)
            metrics.flush(None)  # as every 5 s and at each scrape
            best = min(best, (time.thread_time_ns() - start) / args.requests / 1000)
            while otlp is not None and not otlp._queue.empty():
                time.sleep(0.01)
            best_all = min(best_all, (time.process_time_ns() - start_all) / args.requests / 1000)
        shape = "streamed, own connection" if stream else "whole answer, kept-alive connection"
        print(
            f"telemetry per request ({shape}): {best:.2f} µs of CPU on the event loop's "
            f"thread, {best_all:.2f} µs in all threads (best of 5)"
        )
    start = time.perf_counter_ns()
    body = prometheus_client.generate_latest(metrics.registry)
    took_ms = (time.perf_counter_ns() - start) / 1e6
    print(f"scrape: {len(body):,} bytes in {took_ms:.2f} ms")
    if otlp is not None:
        otlp.close()


if __name__ == "__main__":
    main()
