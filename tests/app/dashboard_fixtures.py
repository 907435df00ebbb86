"""A dashboard test warehouse: nine days of synthetic gateway traffic (policy events,
failover steps, cache key hashes) with a runaway agent, one rejected record, one failed
object, and the alerts of ``aigw alerts run``; built once per test session with the
real CLI. Import the fixtures into a test module to use them."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sim.synthetic import RunawayAgent, TrafficShape, synthetic_records, write_logpush_files
from tests.conftest import REPO, run_aigw

START = datetime(2026, 11, 1, tzinfo=UTC)
RECORDS = 12_000  # about 8.3 days at 1 request a minute
RUNAWAY_AT = datetime(2026, 11, 9, 3, tzinfo=UTC)
ENTRY = Path(__file__).resolve().parents[2] / "app" / "dashboard" / "main.py"

BUDGETS = """
timezone = "UTC"
[channels.outbox]
type = "outbox"
folder = "{outbox}"

[[budget]]
name = "monthly-total"
amount_usd = 40.0
period = "monthly"
thresholds = [0.5, 0.8, 1.0]
forecast = true
channels = ["outbox"]

[[budget]]
name = "daily-per-agent"
amount_usd = 0.5
period = "daily"
split_by = "agent"
thresholds = [1.0]
channels = ["outbox"]
"""


@dataclass(frozen=True)
class DashboardWarehouse:
    db: Path
    budgets: Path
    logs: Path


def write_traffic(root: Path, count: int, *, seed: int = 5, start: datetime = START) -> list[Path]:
    """``count`` records of gateway traffic from ``start`` as Logpush objects under ``root``
    (the runaway agent only in the traffic that starts at ``START``)."""
    shape = TrafficShape(
        start=start,
        requests_per_minute=1.0,
        encrypted_bodies=False,
        gateway_fields=True,
        runaway=RunawayAgent("summarizer", RUNAWAY_AT, multiplier=30.0) if start == START else None,
    )
    return write_logpush_files(
        root, synthetic_records(count, seed=seed, shape=shape), per_file=1500, seed=seed
    )


@pytest.fixture(scope="session")
def dashboard_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DashboardWarehouse:
    """Built once: ingest (with a reject and a failed object) then ``aigw alerts run``."""
    root = tmp_path_factory.mktemp("dashboard")
    logs = root / "logs"
    paths = write_traffic(logs, RECORDS)
    last = paths[-1]
    lines = gzip.decompress(last.read_bytes()).splitlines()
    lines.insert(3, lines[3][:40])  # a truncated record: one reject
    last.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    (last.parent / "20261109T235959Z_20261109T235959Z_broken.log.gz").write_bytes(
        gzip.compress(b'{"Timestamp": 1}\n')[:20]  # truncated gzip: a failed object
    )
    db = root / "aigw.duckdb"
    ingest = run_aigw("ingest", str(logs), "--db", str(db))
    assert ingest.returncode == 1, ingest.stderr  # the broken object fails, the rest loads
    budgets = root / "budgets.toml"
    budgets.write_text(BUDGETS.format(outbox=root / "outbox"))
    alerts = run_aigw(
        "alerts",
        "run",
        "--budgets",
        str(budgets),
        "--db",
        str(db),
        "--now",
        (RUNAWAY_AT + timedelta(hours=20)).isoformat(),
    )
    assert alerts.returncode == 0, alerts.stderr
    return DashboardWarehouse(db=db, budgets=budgets, logs=logs)


@dataclass(frozen=True)
class SampleWarehouse:
    db: Path
    budgets: Path


@pytest.fixture(scope="session")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory) -> SampleWarehouse:
    """The demo's story from the committed samples: the Cloudflare sample (an hour of
    traffic on 2026-11-20 09:00) and the gateway's simulated logs (the runaway agent
    ``summarizer`` at 2026-11-19 10:00), with ``sample_data/budgets.toml``."""
    db = tmp_path_factory.mktemp("sample") / "aigw.duckdb"
    for logs in ("logs", "gateway-logs"):
        ingest = run_aigw("ingest", str(REPO / "sample_data" / logs), "--db", str(db))
        assert ingest.returncode == 0, ingest.stderr
    return SampleWarehouse(db=db, budgets=REPO / "sample_data" / "budgets.toml")
