"""docs/grafana-dashboard.json queries only what the gateway exports: every metric name in
its PromQL is in a real scrape of a fresh gateway (histograms by their _bucket, _sum and
_count series), and every exported metric has a panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from proxy.telemetry import METRIC_NAMES
from tests.conftest import REPO
from tests.proxy.gateway_fixtures import gateway, request

DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def queried() -> set[str]:
    """The metric names the dashboard's PromQL expressions read."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    assert len(exprs) >= len(METRIC_NAMES)
    return {name for expr in exprs for name in re.findall(r"\baigw_[a-z0-9_]+", expr)}


def test_every_metric_the_dashboard_queries_is_exported(tmp_path: Path) -> None:
    with gateway(tmp_path, extra='[telemetry]\nmetrics = "open"\n') as gw:
        text = request(gw.url, "GET", "/metrics", None, {}).body.decode()
    families = list(text_string_to_metric_families(text))
    exported = {f.name + suffix for f in families for suffix in _SUFFIXES[f.type]}
    assert queried() <= exported, sorted(queried() - exported)
    # METRIC_NAMES (documented in docs/gateway.md) lists what a scrape holds
    names = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    assert names == set(METRIC_NAMES)
    # and each of them is on the dashboard
    read = {re.sub(r"_(bucket|sum|count)$", "", name) for name in queried()}
    assert set(METRIC_NAMES) <= read
