"""The service layer composes the stages once: ``ingest_and_refresh`` loads, checks and
rolls up (the committed Cloudflare samples give the demo's exact counts); a second run
finds nothing new and refreshes nothing. The refresh overlaps the check in the gate's
second process, with the results and errors of a refresh after the check."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from app.service import ingest_and_refresh, refresh
from core.warehouse import open_warehouse
from ingest import IngestSettings, IngestSummary, ObjectResult, run_ingest
from models import ModelsSettings, PriceFileError
from tests.conftest import REPO, process_alive, run_aigw


def test_ingest_and_refresh_loads_checks_and_rolls_up_once(tmp_path: Path) -> None:
    settings = IngestSettings(
        source=str(REPO / "sample_data" / "logs"), db_path=tmp_path / "aigw.duckdb"
    )
    seen: list[tuple[int, bool]] = []

    def on_loaded(summary: IngestSummary) -> None:
        # called once the load, its quality check and the refresh are done
        seen.append((summary.rows_loaded, summary.quality is not None))

    first = ingest_and_refresh(settings, ModelsSettings(), on_loaded=on_loaded)
    summary = first.summary
    assert (summary.objects_seen, summary.loaded, summary.skipped, summary.failed) == (9, 8, 1, 0)
    assert (summary.records, summary.rows_loaded, summary.duplicates, summary.rejected) == (
        1111,
        960,
        150,
        1,
    )
    assert summary.quality is not None
    assert (summary.quality.rows_checked, summary.quality.critical_failures) == (960, 0)
    assert (first.refreshed.full, first.refreshed.rows) == (True, 551)
    assert seen == [(960, True)]

    again = ingest_and_refresh(settings, ModelsSettings())
    assert (again.summary.unchanged, again.summary.rows_loaded) == (9, 0)  # the skipped one too
    assert (again.refreshed.full, again.refreshed.hours, again.refreshed.rows) == (False, 0, 0)


_STORED = (  # the quality_runs rows but their ids and times
    "SELECT source, object_keys, rows_checked, on_failure, success, critical_failures, "
    "warnings, results FROM quality_runs ORDER BY started_at"
)
_ROLLUPS = (
    "rollup_hourly",
    "rollup_daily",
    "request_costs",
    "cacheable_requests",
    "replay_requests",
    "replay_profiles",
)


def _results(db_path: Path) -> list[list[tuple[Any, ...]]]:
    """The stored quality_runs rows, then every rollup table's rows, sorted."""
    with open_warehouse(db_path, read_only=True) as warehouse:
        return [
            warehouse.con.execute(_STORED).fetchall(),
            *(
                warehouse.con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()  # noqa: S608 - constant names
                for name in _ROLLUPS
            ),
        ]


def test_the_rollups_refresh_while_the_check_is_pending_with_the_same_results(
    tmp_path: Path,
) -> None:
    """The refresh's transaction starts after the check began and before it finished (its
    quality_runs row's times); the row and the rollups equal those of the load and check
    followed by a refresh, as ``aigw ingest`` ran them before."""
    logs = str(REPO / "sample_data" / "logs")
    overlapped = ingest_and_refresh(
        IngestSettings(source=logs, db_path=tmp_path / "aigw.duckdb"), ModelsSettings()
    )
    summary = run_ingest(IngestSettings(source=logs, db_path=tmp_path / "before.duckdb"))
    refreshed = refresh(tmp_path / "before.duckdb", ModelsSettings())

    with open_warehouse(tmp_path / "aigw.duckdb", read_only=True) as warehouse:
        [(started, built, finished)] = warehouse.con.execute(
            "SELECT started_at, refreshed_at, finished_at FROM quality_runs, rollup_state"
        ).fetchall()
    assert started < built < finished
    assert overlapped.summary.quality is not None and summary.quality is not None
    assert overlapped.summary.quality.outcomes == summary.quality.outcomes
    assert (overlapped.refreshed.rows, refreshed.rows) == (551, 551)
    results = _results(tmp_path / "aigw.duckdb")
    assert results == _results(tmp_path / "before.duckdb")
    assert [len(rows) for rows in results] == [1, 551, 551, 960, 0, 960, 450]


def test_a_refresh_that_fails_is_raised_once_the_check_is_stored(tmp_path: Path) -> None:
    """A refresh that raises (its price file is missing): the error comes after
    ``on_loaded`` saw the quality check, the check's row is stored, the new warehouse is
    kept with its rows (as when the refresh ran last), and the gate's child is gone."""
    db_path = tmp_path / "aigw.duckdb"
    settings = IngestSettings(source=str(REPO / "sample_data" / "logs"), db_path=db_path)
    children: set[int] = set()
    seen: list[tuple[int, int | None]] = []

    def on_object(result: ObjectResult) -> None:
        children.update(child.pid or 0 for child in multiprocessing.active_children())

    def on_loaded(summary: IngestSummary) -> None:
        checked = summary.quality.rows_checked if summary.quality is not None else None
        seen.append((summary.rows_loaded, checked))

    with pytest.raises(PriceFileError, match="cannot read price file"):
        ingest_and_refresh(
            settings,
            ModelsSettings(prices=tmp_path / "missing.toml"),
            on_object=on_object,
            on_loaded=on_loaded,
        )

    assert seen == [(960, 960)]
    assert len(children) == 1
    assert not process_alive(children.pop())
    with open_warehouse(db_path, read_only=True) as warehouse:
        counts = warehouse.con.execute(
            "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM quality_runs), "
            "(SELECT count(*) FROM rollup_state)"
        ).fetchall()
    assert counts == [(960, 1, 0)]


# Installed through PYTHONPATH in the aigw process and the gate's child: Great
# Expectations cannot be imported, as on an install without it.
_NO_GX = """
import sys


class _NoGX:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "great_expectations":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, _NoGX())
"""


def test_a_check_that_cannot_run_is_an_error_after_the_refresh_and_leaves_no_warehouse(
    tmp_path: Path,
) -> None:
    """Great Expectations missing: the child reports it, ``aigw ingest`` prints the one
    line of ``QualityGateError`` and exits 2, and the new warehouse is removed, as when
    the check ran before the refresh."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_NO_GX)
    db_path = tmp_path / "wh" / "aigw.duckdb"

    result = run_aigw(
        "ingest",
        str(REPO / "sample_data" / "logs"),
        "--db",
        str(db_path),
        env={"PYTHONPATH": os.pathsep.join([str(hooks), str(REPO)])},
    )

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: the data-quality gate needs great-expectations; install aigw's "
        "dependencies or pass --quality off"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hooks"]
