"""The quality gate in a second process (``ingest.quality_process``): real spawned
processes and DuckDB files. Its outcomes are the in-process gate's; a child that dies
leaves the check to the loading process, with the same results; the child never
outlives the run or its parent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.warehouse import open_warehouse
from ingest import IngestSettings, IngestSummary, ObjectResult, run_ingest
from ingest.quality import QualityGate
from ingest.quality_process import GateProcess
from tests.conftest import REPO, process_alive, write_ndjson
from tests.ingest.quality_fixtures import (
    bad_records,
    check_loaded,
    probe_events,
    record,
)

Query = Callable[..., list[tuple[Any, ...]]]

_STORED = (  # a quality_runs row but its id and times
    "SELECT source, object_keys, rows_checked, on_failure, success, critical_failures, "
    "warnings, results FROM quality_runs ORDER BY started_at"
)


@pytest.fixture
def loaded(tmp_path: Path, db_path: Path) -> IngestSummary:
    """A warehouse holding six new rows (two clean, three that fail a critical
    expectation, one a warning), loaded with the gate off."""
    write_ndjson(tmp_path / "logs" / "bad.log.gz", bad_records())
    return run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path, quality="off"))


def test_the_child_checks_the_rows_as_this_process_does(
    db_path: Path, loaded: IngestSummary, query: Query
) -> None:
    """The same outcomes and the same quality_runs row (but its id and times) from the
    child as from the check in this process; the child is gone once the gate is closed."""
    with GateProcess() as gate:
        gate.start()
        pid = gate.pid
        assert pid is not None
        through_child = check_loaded(db_path, loaded, gate)
        assert (gate.fallback, gate.pid) == (None, pid)  # the child answered
    in_process = check_loaded(db_path, loaded, QualityGate())

    assert not process_alive(pid)
    assert through_child.outcomes == in_process.outcomes
    assert (through_child.rows_checked, through_child.critical_failures) == (6, 3)
    assert (through_child.warnings, through_child.gate_failed) == (1, True)
    assert [outcome.name for outcome in through_child.failed()] == [
        "status_code 100-599",
        "tokens_in 0-10M",
        "cost 0-1000 USD",
        "provider known",
    ]
    [child_row, own_row] = query(_STORED)
    assert child_row == own_row


def test_a_child_killed_before_the_check_falls_back_to_this_process(
    db_path: Path, loaded: IngestSummary
) -> None:
    """A child killed while it imports: the check runs here, says why, same outcomes."""
    with GateProcess() as gate:
        gate.start()
        assert gate.pid is not None
        os.kill(gate.pid, signal.SIGKILL)
        report = check_loaded(db_path, loaded, gate)
        assert gate.fallback == "the quality check's process ended (exit code -9)"
        assert gate.pid is None
    assert report.outcomes == check_loaded(db_path, loaded, QualityGate()).outcomes
    assert (report.rows_checked, report.critical_failures, report.warnings) == (6, 3, 1)


def test_rows_that_cannot_be_handed_over_are_checked_in_this_process(
    db_path: Path, loaded: IngestSummary, tmp_path: Path
) -> None:
    """No folder to hand the rows over in (a missing or full temporary disk): the check
    runs here, says why, same outcomes; the child is stopped."""
    with GateProcess(folder=str(tmp_path / "missing")) as gate:
        gate.start()
        pid = gate.pid
        assert pid is not None
        report = check_loaded(db_path, loaded, gate)
        assert gate.fallback == (
            "the rows could not be handed to the quality check's process (FileNotFoundError)"
        )
        assert gate.pid is None
        assert not process_alive(pid)
    assert report.outcomes == check_loaded(db_path, loaded, QualityGate()).outcomes
    assert (report.rows_checked, report.critical_failures, report.warnings) == (6, 3, 1)


_RUN = """
import multiprocessing, os, signal, sys
from ingest import IngestSettings, run_ingest

def kill_children(result):
    for child in multiprocessing.active_children():
        os.kill(child.pid, signal.SIGKILL)

on_object = kill_children if sys.argv[3] == "kill" else None
summary = run_ingest(IngestSettings(source=sys.argv[1], db_path=sys.argv[2]), on_object=on_object)
report = summary.quality
print(os.getpid(), report.rows_checked, report.critical_failures, report.warnings)
"""


def test_a_run_whose_child_is_killed_mid_load_stores_the_same_results(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """aigw ingest's run with its child killed as the first object is stored: the loading
    process imports GX and checks the rows itself, and quality_runs holds what a run
    whose child answered holds."""
    write_ndjson(tmp_path / "logs" / "a.log.gz", bad_records())
    write_ndjson(tmp_path / "logs" / "b.log.gz", [record(n) for n in range(10, 14)])
    logs, answered_db = str(tmp_path / "logs"), str(tmp_path / "answered.duckdb")

    answered, answered_events = probe_events(tmp_path, _RUN, logs, answered_db, "keep")
    killed, killed_events = probe_events(tmp_path, _RUN, logs, str(db_path), "kill")

    answered_pid, *answered_counts = answered.split()
    killed_pid, *killed_counts = killed.split()
    assert answered_counts == killed_counts == ["10", "3", "1"]
    importers = {who for who, event in answered_events if event == "imports great_expectations"}
    assert answered_pid not in importers
    assert (killed_pid, "imports great_expectations") in killed_events
    with open_warehouse(Path(answered_db)) as warehouse:
        answered_rows = warehouse.con.execute(_STORED).fetchall()
    assert query(_STORED) == answered_rows
    assert len(answered_rows) == 1


def test_a_run_that_raises_leaves_no_child(tmp_path: Path, db_path: Path) -> None:
    """A run that fails after the child started (here, its on_object callback) kills it."""
    write_ndjson(tmp_path / "logs" / "a.log.gz", [record(0)])
    children: list[int] = []

    def fail(result: ObjectResult) -> None:
        children.extend(child.pid or 0 for child in multiprocessing.active_children())
        raise RuntimeError("stopped by the test")

    with pytest.raises(RuntimeError, match="stopped by the test"):
        run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path), on_object=fail)

    assert len(children) == 1
    assert not process_alive(children[0])


_ORPHAN = """
import time
from ingest.quality_process import GateProcess

gate = GateProcess()
gate.start()
print(gate.pid, flush=True)
time.sleep(300)
"""


def test_the_child_ends_when_its_parent_is_killed() -> None:
    """A parent killed with SIGKILL (no exit path runs): its child ends on its own."""
    with subprocess.Popen(
        [sys.executable, "-c", _ORPHAN], stdout=subprocess.PIPE, text=True, cwd=REPO
    ) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert process_alive(child)
        finally:
            parent.kill()
    deadline = time.monotonic() + 60  # a bound on the wait, not a timing assertion
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(child)
