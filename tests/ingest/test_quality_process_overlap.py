"""The check in the second process overlapped with the rollups' refresh (``check_batch``'s
``meanwhile``, as ``aigw ingest`` runs it): real spawned processes, DuckDB files and the
real refresh. The refresh runs while the child holds the rows and no result is stored;
the outcomes, the quality_runs row and the rollups are those of the check then the
refresh; a child killed meanwhile leaves the check to this process, with the same
results; an error meanwhile abandons the check and leaves nothing behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from core.warehouse import Warehouse, open_warehouse
from ingest import IngestSettings, IngestSummary, QualityReport, run_ingest
from ingest.quality import QualityGate
from ingest.quality_process import GateProcess
from ingest.quality_suite import CHECKED_COLUMNS, DERIVED_COLUMNS
from models import ModelsSettings, PriceFileError, refresh_rollups
from tests.conftest import process_alive, write_ndjson
from tests.ingest.quality_fixtures import CHECKED_AT, bad_records, check_loaded

_STORED = (  # the quality_runs rows but their ids and times
    "SELECT source, object_keys, rows_checked, on_failure, success, critical_failures, "
    "warnings, results FROM quality_runs ORDER BY started_at"
)
_ROLLUPS = ("rollup_hourly", "rollup_daily", "request_costs", "cacheable_requests")


def _load(logs: Path, db_path: Path) -> IngestSummary:
    """Six new rows (two clean, three that fail a critical expectation, one a warning)
    loaded with the gate off, so that the test runs the check."""
    return run_ingest(IngestSettings(source=str(logs), db_path=db_path, quality="off"))


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    write_ndjson(tmp_path / "logs" / "bad.log.gz", bad_records())
    return tmp_path / "logs"


def _sequential(logs: Path, db_path: Path) -> tuple[QualityReport, dict[str, Any]]:
    """The same rows loaded into another warehouse, checked in this process, then
    refreshed: what the overlapped run must equal."""
    summary = _load(logs, db_path)
    report = check_loaded(db_path, summary, QualityGate())
    with open_warehouse(db_path) as warehouse:
        refresh_rollups(warehouse, ModelsSettings())
    return report, _results(db_path)


def _results(db_path: Path) -> dict[str, Any]:
    """The stored quality_runs rows and every rollup table's rows, sorted."""
    with open_warehouse(db_path, read_only=True) as warehouse:
        tables = {
            name: warehouse.con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()  # noqa: S608 - constant names
            for name in _ROLLUPS
        }
        return {"quality_runs": warehouse.con.execute(_STORED).fetchall(), **tables}


def test_the_rollups_refresh_while_the_child_holds_the_rows(
    tmp_path: Path, logs: Path, db_path: Path
) -> None:
    """While the refresh runs, the rows are handed over, the child is alive and nothing
    is stored yet; then the child answers, and the quality_runs row and the rollups equal
    those of the check in this process followed by the refresh."""
    summary = _load(logs, db_path)
    handover = tmp_path / "handover"
    handover.mkdir()
    seen: list[tuple[Any, ...]] = []
    with GateProcess(folder=str(handover)) as gate:
        gate.start()
        pid = gate.pid
        assert pid is not None

        def refresh(warehouse: Warehouse) -> None:
            handed = [path.name for path in handover.rglob("*") if path.is_file()]
            stored = warehouse.con.execute("SELECT count(*) FROM quality_runs").fetchall()
            refreshed = refresh_rollups(warehouse, ModelsSettings())
            seen.append((handed, stored, process_alive(pid), refreshed.full, refreshed.rows))

        report = check_loaded(db_path, summary, gate, refresh)
        assert (gate.fallback, gate.pid) == (None, pid)  # the child answered
        assert list(handover.iterdir()) == []  # the rows' folder is gone once answered
    before, before_results = _sequential(logs, tmp_path / "before.duckdb")

    assert seen == [(["rows.arrow"], [(0,)], True, True, 2)]
    assert report.outcomes == before.outcomes
    assert (report.rows_checked, report.critical_failures, report.warnings) == (6, 3, 1)
    results = _results(db_path)
    assert results == before_results
    assert [len(rows) for rows in results.values()] == [1, 2, 2, 6, 5]


def test_a_child_killed_during_the_refresh_leaves_the_check_to_this_process(
    tmp_path: Path, logs: Path, db_path: Path
) -> None:
    """The child killed while the refresh runs (it holds the rows, not yet checked): the
    rows are checked here once the refresh is done, it says why, and the quality_runs
    row and the rollups are those of the check then the refresh."""
    summary = _load(logs, db_path)
    with GateProcess() as gate:
        gate.start()
        pid = gate.pid
        assert pid is not None

        def kill_then_refresh(warehouse: Warehouse) -> None:
            os.kill(pid, signal.SIGKILL)
            refresh_rollups(warehouse, ModelsSettings())

        report = check_loaded(db_path, summary, gate, kill_then_refresh)
        assert gate.fallback == "the quality check's process ended (exit code -9)"
        assert gate.pid is None
    before, before_results = _sequential(logs, tmp_path / "before.duckdb")

    assert not process_alive(pid)
    assert report.outcomes == before.outcomes
    assert (report.rows_checked, report.critical_failures, report.warnings) == (6, 3, 1)
    assert _results(db_path) == before_results


def test_a_refresh_that_fails_abandons_the_check(tmp_path: Path, logs: Path, db_path: Path) -> None:
    """A refresh that raises (its price file is missing): the error propagates, no
    quality_runs row is stored, and closing the gate ends the child and removes the rows
    it was handed."""
    summary = _load(logs, db_path)
    handover = tmp_path / "handover"
    handover.mkdir()
    missing = ModelsSettings(prices=tmp_path / "missing.toml")
    with GateProcess(folder=str(handover)) as gate:
        gate.start()
        pid = gate.pid
        assert pid is not None
        with pytest.raises(PriceFileError, match="cannot read price file"):
            check_loaded(
                db_path, summary, gate, lambda warehouse: refresh_rollups(warehouse, missing)
            )
        assert [path.name for path in handover.rglob("*") if path.is_file()] == ["rows.arrow"]

    assert not process_alive(pid)
    assert list(handover.iterdir()) == []
    with open_warehouse(db_path, read_only=True) as warehouse:
        assert warehouse.con.execute(_STORED).fetchall() == []


def test_a_check_handed_over_twice_without_collecting_runs_here(logs: Path, db_path: Path) -> None:
    """A second ``submit`` before the first one's outcomes are collected: the child's
    answer to the first would be read as the second's, so the child is stopped and both
    are checked in this process, with the outcomes of the check in process."""
    _load(logs, db_path)
    columns = ", ".join(
        f"{DERIVED_COLUMNS[name]} AS {name}" if name in DERIVED_COLUMNS else name
        for name in CHECKED_COLUMNS
    )
    with open_warehouse(db_path, read_only=True) as warehouse:
        table = warehouse.con.execute(f"SELECT {columns} FROM requests").arrow().read_all()  # noqa: S608 - constant names
    expected = QualityGate().check_table(table, now=CHECKED_AT)
    with GateProcess() as gate:
        gate.start()
        pid = gate.pid
        assert pid is not None
        first = gate.submit(table, now=CHECKED_AT)
        second = gate.submit(table, now=CHECKED_AT)
        assert gate.fallback == "a check handed to the quality check's process was not collected"
        assert gate.pid is None
        assert not process_alive(pid)
        assert (second(), first()) == (expected, expected)
    assert sum(1 for outcome in expected if not outcome.success) == 4
