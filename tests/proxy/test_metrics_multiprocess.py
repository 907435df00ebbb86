"""Several gateway processes, one scrape: with PROMETHEUS_MULTIPROC_DIR set, each process
writes its metrics to files there and any process's scrape sums them all; the connection
gauge of a process marked dead (the supervisor's job) leaves the sum."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import prometheus_client
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import load_gateway_config
from proxy.telemetry import exposition_registry, new_metrics
from tests.conftest import REPO

CONFIG = """
[auth]
required = false
[providers.openai]
base_url = "http://127.0.0.1:9/v1"
[routes.chat]
match = ["gpt-4o-mini"]
provider = "openai"
"""

# One gateway process's metrics: N served records (120 tokens in, 80 out) and N connections.
_WORKER = """
import os, sys
from pathlib import Path
from core import logpush
from proxy.config import load_gateway_config
from proxy.telemetry import new_metrics

metrics = new_metrics(load_gateway_config(Path(sys.argv[1]), os.environ))
for _ in range(int(sys.argv[2])):
    metrics.record({
        logpush.PROVIDER: "openai", logpush.MODEL: "gpt-4o-mini", logpush.ROUTE: "chat",
        logpush.STATUS_CODE: 200, logpush.CACHED: False,
        logpush.METRICS: {logpush.METRIC_TOKENS_IN: 120, logpush.METRIC_TOKENS_OUT: 80},
    })
    metrics.connection_changed(1)
metrics.flush(None)
print(os.getpid())
"""


def test_a_scrape_sums_every_process(tmp_path: Path) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": str(REPO)}
    pids = []
    for records in (3, 4):
        worker = subprocess.run(
            [sys.executable, "-c", _WORKER, str(config), str(records)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        pids.append(int(worker.stdout))
    settings = load_gateway_config(config, {"PROMETHEUS_MULTIPROC_DIR": str(folder)})
    assert settings.telemetry.multiprocess_dir == str(folder)

    def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        registry = exposition_registry(new_metrics(settings), settings.telemetry.multiprocess_dir)
        text = prometheus_client.generate_latest(registry).decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    served = frozenset(
        {"route": "chat", "provider": "openai", "model": "gpt-4o-mini"}.items()
        | {("status", "200"), ("cache", "none")}
    )
    tokens_in = frozenset({("provider", "openai"), ("model", "gpt-4o-mini"), ("direction", "in")})
    series = scrape()
    assert series[("aigw_requests_total", served)] == 7
    assert series[("aigw_tokens_total", tokens_in)] == 7 * 120
    assert series[("aigw_open_connections", frozenset())] == 7
    multiprocess.mark_process_dead(pids[0], str(folder))
    series = scrape()
    assert series[("aigw_open_connections", frozenset())] == 4  # the live process's
    assert series[("aigw_requests_total", served)] == 7  # counts stay
