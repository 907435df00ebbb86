"""`aigw alerts run` end to end: each crossing is delivered exactly once, across runs,
across two processes at once, and after a channel failed and recovered. A real HTTP
receiver on 127.0.0.1 plays the webhook endpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, logpush_record, run_aigw, write_ndjson

NOV_10 = 1_794_268_800  # 2026-11-10T00:00:00Z


class Receiver:
    """A webhook endpoint: records every request and answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with receiver.lock:
                    receiver.bodies.append(body)
                    status = receiver.status
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep test output clean
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def ids(self) -> list[str]:
        with self.lock:
            return [body["alert_id"] for body in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver, stopped after the test."""
    hook = Receiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


@pytest.fixture
def warehouse(tmp_path: Path, db_path: Path) -> Path:
    """$60 (agent bot) and $10 (agent ok) on Nov 10 2026, then $55 (bot) on Nov 11."""
    write_ndjson(
        tmp_path / "logs" / "a.log.gz",
        [
            logpush_record(
                Timestamp=NOV_10 + 3600,
                Provider="custom",
                Model="m",
                Metrics={"cost": 60.0, "tokensIn": 10, "tokensOut": 1},
                Metadata={"agent": "bot"},
            ),
            logpush_record(
                Timestamp=NOV_10 + 7200,
                Provider="custom",
                Model="n",
                Metrics={"cost": 10.0, "tokensIn": 10, "tokensOut": 1},
                Metadata={"agent": "ok"},
            ),
            logpush_record(
                Timestamp=NOV_10 + 86_400 + 3600,
                Provider="custom",
                Model="m",
                Metrics={"cost": 55.0, "tokensIn": 10, "tokensOut": 1},
                Metadata={"agent": "bot"},
            ),
        ],
    )
    # the gate is not what these tests check: off spares importing GX (about 6 s of CPU)
    ingest = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db_path), "--quality", "off")
    assert ingest.returncode == 0, ingest.stderr
    return db_path


def _budgets(tmp_path: Path, url: str, outbox: Path) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(
        f"""
[channels.hook]
type = "webhook"
url = "{url}"
[channels.outbox]
type = "outbox"
folder = "{outbox}"

[[budget]]
name = "monthly"
amount_usd = 100
thresholds = [0.5, 0.6, 0.9]
channels = ["hook", "outbox"]

[[budget]]
name = "per-agent"
amount_usd = 50
period = "daily"
split_by = "agent"
thresholds = [1.0]
channels = ["hook"]
"""
    )
    return path


def _command(budgets: Path, db: Path, now: str, *extra: str) -> list[str]:
    """The `aigw alerts run` command line, for tests that start it as a process."""
    return [
        sys.executable,
        "-m",
        "app",
        "alerts",
        "run",
        "--budgets",
        str(budgets),
        "--db",
        str(db),
        "--now",
        now,
        *extra,
    ]


def _run(budgets: Path, db: Path, now: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_aigw(
        "alerts", "run", "--budgets", str(budgets), "--db", str(db), "--now", now, *extra
    )


def test_each_crossing_is_delivered_once_across_runs(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """Two runs: thresholds 50% and 60% and the per-agent budget fire once, in order."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    first = _run(budgets, warehouse, "2026-11-10T12:00:00")
    second = _run(budgets, warehouse, "2026-11-10T13:00:00")
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    bodies = receiver.bodies
    assert [(b["rule"], b["scope"], b["threshold"]) for b in bodies] == [
        ("monthly", "everything", 0.5),
        ("monthly", "everything", 0.6),
        ("per-agent", "agent=bot", 1.0),
    ]
    assert bodies[0]["spent_usd"] == 70.0 and bodies[0]["budget_usd"] == 100.0
    assert [c["name"] for c in bodies[0]["top_contributors"]] == ["m", "n"]
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 2
    assert "0 new, 0 delivered" in second.stdout


def test_a_dry_run_sends_and_records_nothing(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """--dry-run prints what would fire; a later real run still sends it."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    dry = _run(budgets, warehouse, "2026-11-10T12:00:00", "--dry-run")
    assert dry.returncode == 0
    assert dry.stdout.count("would fire:") == 3
    assert receiver.bodies == []
    assert _run(budgets, warehouse, "2026-11-10T12:00:00").returncode == 0
    assert len(receiver.bodies) == 3


def test_a_failing_channel_is_retried_next_run_and_delivered_once(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """The hook answers 503: exit 1, the outbox still gets its alerts; once it recovers,
    the next run delivers each alert exactly once more, with the same ids."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    receiver.status = 503
    down = _run(budgets, warehouse, "2026-11-10T12:00:00")
    assert down.returncode == 1
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 2  # not held up by the hook
    failed_ids = set(receiver.ids())
    receiver.status = 200
    receiver.bodies.clear()
    up = _run(budgets, warehouse, "2026-11-10T13:00:00")
    assert up.returncode == 0, up.stderr
    assert sorted(receiver.ids()) == sorted(failed_ids)
    assert len(receiver.ids()) == 3
    assert _run(budgets, warehouse, "2026-11-10T14:00:00").returncode == 0
    assert len(receiver.ids()) == 3


def test_two_processes_at_once_deliver_each_alert_once(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """Two `aigw alerts run` started together: one waits for the other; 3 deliveries in all."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    command = _command(budgets, warehouse, "2026-11-10T12:00:00")
    processes = [
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert len(receiver.ids()) == 3
    assert len(set(receiver.ids())) == 3


def test_a_new_period_re_arms_the_thresholds(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """A new day re-arms the per-agent daily budget (new period, new id); the month goes on."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    assert _run(budgets, warehouse, "2026-11-10T12:00:00").returncode == 0
    first_day = list(receiver.bodies)
    assert _run(budgets, warehouse, "2026-11-11T12:00:00").returncode == 0
    later = receiver.bodies[len(first_day) :]
    assert [(b["rule"], b["scope"], b["threshold"], b["spent_usd"]) for b in later] == [
        ("monthly", "everything", 0.9, 125.0),
        ("per-agent", "agent=bot", 1.0, 55.0),
    ]
    assert later[1]["alert_id"] != first_day[2]["alert_id"]
    assert later[1]["period_start"] == "2026-11-11T00:00:00+00:00"


def test_an_invalid_budgets_file_sends_nothing(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """A config error is one line naming the file, the budget and the key; exit 2; no delivery."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    budgets.write_text(budgets.read_text().replace("amount_usd = 50", "amount_usd = -5"))
    result = _run(budgets, warehouse, "2026-11-10T12:00:00")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {budgets}: budget per-agent: `amount_usd` must be a positive number of USD"
    ]
    assert receiver.bodies == []


def test_a_missing_warehouse_is_refused_and_not_created(tmp_path: Path, receiver: Receiver) -> None:
    """--db naming no file: one line with the fix, exit 2, no file or folder created."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    missing = tmp_path / "none" / "aigw.duckdb"
    result = _run(budgets, missing, "2026-11-10T12:00:00")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: no warehouse at {missing}; run `aigw ingest` first or pass --db"
    ]
    assert not missing.parent.exists()
    assert receiver.bodies == []


def test_every_loops_until_sigterm_without_sending_twice(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """--every 1s evaluates repeatedly; SIGTERM stops it cleanly; each alert went out once."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    command = _command(budgets, warehouse, "2026-11-10T12:00:00", "--every", "1s")
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    summaries = []
    while len(summaries) < 3:  # three evaluations
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        if line.startswith("alerts:"):
            summaries.append(line.strip())
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0
    assert summaries[0].startswith("alerts: 3 hold, 3 new, 5 delivered")  # 2 channels x 2 + 1
    assert summaries[1].startswith("alerts: 3 hold, 0 new, 0 delivered")
    assert len(receiver.ids()) == 3


def test_stale_data_warns_exits_4_and_alerts_its_channel_once(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """Two days after the newest request (Nov 11 01:00): a warning line, exit 4, and one
    stale-data alert to `stale_channels`, not repeated by the next run; --stale-after 0
    turns the check off."""
    budgets = _budgets(tmp_path, receiver.url, tmp_path / "outbox")
    budgets.write_text('stale_channels = ["hook"]\n' + budgets.read_text())
    warning = (
        "warning: stale data: the newest request is from 2026-11-11 01:00 UTC, more than "
        "24 hours before 2026-11-13 12:00 UTC; is `aigw ingest` running? (exit 4)"
    )
    first = _run(budgets, warehouse, "2026-11-13T12:00:00")
    assert (first.returncode, first.stderr) == (4, warning + "\n")
    assert "sent to hook: stale-data: no new data since 2026-11-11 01:00 UTC\n" in first.stdout
    second = _run(budgets, warehouse, "2026-11-13T13:00:00")
    assert second.returncode == 4
    assert second.stdout.endswith("0 new, 0 delivered, 0 failed (retried next run)\n")
    stale = [body for body in receiver.bodies if body["kind"] == "stale"]
    assert [body["text"].splitlines()[:2] for body in stale] == [
        [
            "stale-data: no new data since 2026-11-11 01:00 UTC",
            "Stale data: the newest request is from 2026-11-11 01:00 UTC, more than 24 hours "
            "before 2026-11-13 12:00 UTC. Is `aigw ingest` (or Logpush) still running?",
        ]
    ]
    off = _run(budgets, warehouse, "2026-11-13T14:00:00", "--stale-after", "0")
    assert (off.returncode, off.stderr) == (0, "")
