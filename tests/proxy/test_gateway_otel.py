"""OpenTelemetry over OTLP/HTTP: spans and GenAI metrics reach a collector on 127.0.0.1 (a
small server here decoding the protobuf the collector protocol carries) with the
``gen_ai.*`` attributes and exact token counts; nothing is sent when no endpoint is set;
without the ``otel`` extra, `aigw proxy` says so in one line."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tests.conftest import REPO
from tests.proxy.gateway_fixtures import gateway, read_records

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the team."}]}
MESSAGES = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello to the team."}],
}


class Collector:
    """What an OTLP/HTTP receiver got: decoded trace and metric export requests."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.paths: list[str] = []

    def spans(self) -> list[Any]:
        return [
            span
            for export in self.traces
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP key-values as a dict of Python values."""

    def value(kv: KeyValue) -> Any:
        kind = kv.value.WhichOneof("value")
        return getattr(kv.value, kind) if kind else None

    return {kv.key: value(kv) for kv in pairs}


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Collector]]:
    """An OTLP/HTTP receiver on 127.0.0.1 (protobuf bodies on /v1/traces, /v1/metrics)."""
    got = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            got.paths.append(self.path)
            if self.path == "/v1/traces":
                got.traces.append(ExportTraceServiceRequest.FromString(body))
            elif self.path == "/v1/metrics":
                got.metrics.append(ExportMetricsServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def test_spans_and_genai_metrics_reach_the_collector(tmp_path: Path) -> None:
    """An OpenAI chat call, an Anthropic message and a refused request (no key): three
    spans with the GenAI attributes and the providers' exact token counts; the token-usage
    histogram sums to them."""
    with otlp_receiver() as (url, got):
        extra = f'[telemetry]\notlp_endpoint = "{url}"\nservice_name = "gw-test"\n'
        with gateway(tmp_path, extra=extra) as gw:
            chat = gw.post("/v1/chat/completions", CHAT)
            message = gw.post("/v1/messages", MESSAGES)
            refused = gw.post("/v1/chat/completions", CHAT, key=None)
    assert (chat.status, message.status, refused.status) == (200, 200, 401)
    records = read_records(gw.logs)
    spans = sorted(got.spans(), key=lambda span: span.start_time_unix_nano)
    assert [span.name for span in spans] == [
        "chat gpt-4o-mini",
        "chat claude-haiku-4-5",
        "chat",  # refused before its model was read
    ]
    assert [span.start_time_unix_nano for span in spans] == [r["Timestamp"] for r in records]
    usage = chat.json()["usage"]
    anthropic = message.json()["usage"]
    anthropic_in = (
        anthropic["input_tokens"]
        + anthropic.get("cache_read_input_tokens", 0)
        + anthropic.get("cache_creation_input_tokens", 0)
    )
    first, second, third = (attributes(span.attributes) for span in spans)
    assert {k: v for k, v in first.items() if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": usage["completion_tokens"],
    }
    assert (first["http.response.status_code"], first["aigw.route"]) == (200, "default")
    assert first["aigw.log_id"] == chat.headers["cf-aig-log-id"]
    assert second["gen_ai.system"] == "anthropic"
    assert second["gen_ai.usage.input_tokens"] == anthropic_in
    assert second["gen_ai.usage.output_tokens"] == anthropic["output_tokens"]
    assert third == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "none",
        "gen_ai.provider.name": "none",
        "http.response.status_code": 401,
        "aigw.route": "none",
        "aigw.provider": "none",
        "aigw.step": 0,
        "aigw.cached": False,
        "aigw.log_id": records[2]["LogId"],
        "error.type": "401",
    }
    assert spans[2].status.code == 2  # STATUS_CODE_ERROR
    [resource] = {
        tuple(sorted(attributes(r.resource.attributes).items()))
        for export in got.traces
        for r in export.resource_spans
    }
    assert ("service.name", "gw-test") in resource
    tokens: dict[tuple[str, str], int] = {}
    for export in got.metrics:
        for resource_metrics in export.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "gen_ai.client.token.usage":
                        continue
                    for point in metric.histogram.data_points:
                        labels = attributes(point.attributes)
                        key = (labels["gen_ai.system"], labels["gen_ai.token.type"])
                        tokens[key] = tokens.get(key, 0) + round(point.sum)
    assert tokens == {
        ("openai", "input"): usage["prompt_tokens"],
        ("openai", "output"): usage["completion_tokens"],
        ("anthropic", "input"): anthropic_in,
        ("anthropic", "output"): anthropic["output_tokens"],
    }


def test_nothing_is_sent_without_an_endpoint(tmp_path: Path) -> None:
    """No ``otlp_endpoint``: a collector listening on 127.0.0.1 receives nothing."""
    with otlp_receiver() as (_, got), gateway(tmp_path) as gw:
        assert gw.post("/v1/chat/completions", CHAT).status == 200
    assert got.paths == []


_WITHOUT_OTEL = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Blocked())
from app.cli import main
sys.argv = ["aigw", *sys.argv[1:]]
main()
"""


def test_an_endpoint_without_the_extra_stops_the_gateway_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[auth]\nrequired = false\n[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[telemetry]\notlp_endpoint = "http://127.0.0.1:4318"\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OTEL, "proxy", "--config", str(config)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: [telemetry] otlp_endpoint needs the otel extra: pip install 'aigw[otel]'"
    ]
