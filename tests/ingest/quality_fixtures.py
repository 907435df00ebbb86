"""For the data-quality gate's tests: clean records, a batch with rows that pass and
rows that fail the suite's expectations, and a probe that sees every Python process a
script starts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.warehouse import Warehouse, open_warehouse
from ingest import IngestSummary, QualityReport
from ingest.quality import Checker, check_batch
from tests.conftest import REPO, logpush_record

CHECKED_AT = datetime(2026, 4, 20, tzinfo=UTC)  # the check's "now"

BASE_NS = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z in unixnano
SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c"  # noqa: S105 - a fake key that must never reach quality_runs


def record(n: int, **overrides: Any) -> dict[str, Any]:
    """The ``n``-th distinct clean record (its own second)."""
    return logpush_record(Timestamp=BASE_NS + n * 1_000_000_000, **overrides)


def bad_records() -> list[dict[str, Any]]:
    """Two clean records and four that break one expectation each: negative input
    tokens, status 700, a USD 5,000 cost (critical) and an unknown provider (warning).
    Every record carries a secret in its metadata and body."""
    secret = {"Metadata": {"team": "search", "api_key": SECRET}, "RequestBody": SECRET}
    metrics = {"cost": 0.0015, "durationMs": 850, "tokensIn": 1000, "tokensOut": 200}
    return [
        record(0, **secret),
        record(1, **secret),
        record(2, Metrics={**metrics, "tokensIn": -5}, **secret),
        record(3, StatusCode=700, **secret),
        record(4, Metrics={**metrics, "cost": 5000.0}, **secret),
        record(5, Provider="acme-llm", **secret),
    ]


# Installed in every Python process a probe starts (through PYTHONPATH): each one notes
# its start, its first Great Expectations import and each connection it opens, in one file.
EVENTS_HOOK = """
import os
import sys

_LOG = os.environ["AIGW_TEST_EVENTS"]
_IMPORTED = []


def _note(line):
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{os.getpid()} {line}\\n".encode())
    finally:
        os.close(fd)


def _hook(event, args):
    if event == "socket.connect":
        _note(f"connects {args[1]!r}")
    elif event == "import" and str(args[0]).startswith("great_expectations") and not _IMPORTED:
        _IMPORTED.append(True)
        _note("imports great_expectations")


_note(f"starts under {os.getppid()}")
sys.addaudithook(_hook)
"""


def probe_events(tmp_path: Path, script: str, *args: str) -> tuple[str, list[tuple[str, str]]]:
    """Run ``script`` in a fresh Python with ``EVENTS_HOOK`` in it and in every Python
    process it starts: its output, and the (pid, event) pairs they noted."""
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(EVENTS_HOOK)
    events = tmp_path / "events.log"
    events.unlink(missing_ok=True)
    probe = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            **os.environ,
            "AIGW_TEST_EVENTS": str(events),
            "PYTHONPATH": os.pathsep.join([str(hooks), str(REPO)]),
        },
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    noted = [line.split(" ", 1) for line in events.read_text().splitlines()]
    return probe.stdout, [(pid, event) for pid, event in noted]


def check_loaded(
    db_path: Path,
    summary: IngestSummary,
    gate: Checker,
    meanwhile: Callable[[Warehouse], None] | None = None,
) -> QualityReport:
    """``check_batch`` (mode fail, at ``CHECKED_AT``) of the rows ``summary``'s run
    loaded into ``db_path``, by ``gate``; ``meanwhile`` gets the open warehouse."""
    with open_warehouse(db_path) as warehouse:
        report = check_batch(
            warehouse,
            source="logs",
            started_at=summary.started_at,
            object_keys=summary.loaded_keys,
            on_failure="fail",
            gate=gate,
            now=CHECKED_AT,
            meanwhile=(lambda: meanwhile(warehouse)) if meanwhile is not None else None,
        )
    assert report is not None
    return report
