"""`aigw alerts run` on an Iceberg warehouse: the ledger lives in the state database
(SQLite here), and each crossing is still delivered exactly once, across runs, after a
channel failed and recovered, and with two processes at once (which, unlike on the
DuckDB file, run side by side)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.alerts.test_run import NOV_10, Receiver, _budgets, receiver
from tests.conftest import REPO, logpush_record, run_aigw, write_ndjson
from tests.lake_fixtures import lake_config, lake_spec, read_all

__all__ = ["receiver"]  # the fixture, for pytest


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """An Iceberg warehouse holding $60 (agent bot) and $10 (agent ok) on Nov 10 2026,
    then $55 (bot) on Nov 11; the aigw.toml that names it."""
    path = lake_config(tmp_path)
    records = [
        logpush_record(
            Timestamp=NOV_10 + offset,
            Provider="custom",
            Model=model,
            Metrics={"cost": cost, "tokensIn": 10, "tokensOut": 1},
            Metadata={"agent": agent},
        )
        for offset, model, cost, agent in (
            (3600, "m", 60.0, "bot"),
            (7200, "n", 10.0, "ok"),
            (86_400 + 3600, "m", 55.0, "bot"),
        )
    ]
    write_ndjson(tmp_path / "logs" / "a.log.gz", records)
    loaded = run_aigw(
        "ingest", str(tmp_path / "logs"), "--quality", "off", env={"AIGW_CONFIG": str(path)}
    )
    assert loaded.returncode == 0, loaded.stderr
    return path


def _run(config: Path, budgets: Path, now: str) -> subprocess.CompletedProcess[str]:
    return run_aigw(
        "alerts", "run", "--budgets", str(budgets), "--now", now, env={"AIGW_CONFIG": str(config)}
    )


def test_each_crossing_is_delivered_once_across_runs(
    tmp_path: Path, config: Path, receiver: Receiver
) -> None:
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    first = _run(config, budgets, "2026-11-10T12:00:00")
    second = _run(config, budgets, "2026-11-10T13:00:00")
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert [(b["rule"], b["scope"], b["threshold"]) for b in receiver.bodies] == [
        ("monthly", "everything", 0.5),
        ("monthly", "everything", 0.6),
        ("per-agent", "agent=bot", 1.0),
    ]
    assert receiver.bodies[0]["spent_usd"] == 70.0
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 2
    assert "0 new, 0 delivered" in second.stdout
    ledger = "SELECT status, count(*) FROM alert_deliveries GROUP BY ALL"
    assert read_all(lake_spec(tmp_path), ledger) == [("delivered", 5)]


def test_a_failing_channel_is_retried_next_run_and_delivered_once(
    tmp_path: Path, config: Path, receiver: Receiver
) -> None:
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    receiver.status = 503
    assert _run(config, budgets, "2026-11-10T12:00:00").returncode == 1
    failed_ids = set(receiver.ids())
    receiver.status = 200
    receiver.bodies.clear()
    assert _run(config, budgets, "2026-11-10T13:00:00").returncode == 0
    assert sorted(receiver.ids()) == sorted(failed_ids)
    assert len(receiver.ids()) == 3
    assert _run(config, budgets, "2026-11-10T14:00:00").returncode == 0
    assert len(receiver.ids()) == 3


def test_two_processes_at_once_deliver_each_alert_once(
    tmp_path: Path, config: Path, receiver: Receiver
) -> None:
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    command = [sys.executable, "-m", "app", "alerts", "run", "--budgets", str(budgets)]
    command += ["--now", "2026-11-10T12:00:00"]
    env = {"PATH": "/usr/bin:/bin", "AIGW_CONFIG": str(config)}
    processes = [
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sorted(receiver.ids()) == sorted(set(receiver.ids()))
    assert len(receiver.ids()) == 3
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 2
