"""``aigw ingest`` stopped by SIGTERM (a supervisor, a container's stop) while the rollups
refresh and the quality gate's process holds the new rows: it stops as Ctrl-C does and
leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO, process_alive


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started that still run."""
    listed = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in listed.read_text().split()] if listed.exists() else []


def test_sigterm_after_the_hand_over_removes_the_rows_the_process_and_the_new_warehouse(
    tmp_path: Path, synthetic_logs: Callable[..., list[Path]]
) -> None:
    synthetic_logs(200_000, per_file=10_000)
    scratch = tmp_path / "scratch"  # the run's TMPDIR: where the rows are handed over
    scratch.mkdir()
    db = tmp_path / "new" / "aigw.duckdb"
    run = subprocess.Popen(
        [sys.executable, "-m", "app", "ingest", str(tmp_path / "logs"), "--db", str(db)],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(scratch), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    handed: list[Path] = []
    while not handed and run.poll() is None and time.monotonic() < deadline:
        handed = list(scratch.glob("aigw-quality-*/rows.arrow"))
        time.sleep(0.01)
    assert handed, "the run ended before its rows were handed to the gate's process"
    children = _children(run.pid)
    assert children  # the gate's process (and multiprocessing's resource tracker)
    run.send_signal(signal.SIGTERM)
    _, errors = run.communicate(timeout=120)
    assert run.returncode == 130
    assert errors.splitlines()[-1] == "interrupted"
    assert not db.parent.exists()  # the warehouse this run created, and its folder
    assert list(scratch.glob("aigw-quality-*")) == []
    settle = time.monotonic() + 10
    while any(process_alive(child) for child in children) and time.monotonic() < settle:
        time.sleep(0.05)
    assert not any(process_alive(child) for child in children)
