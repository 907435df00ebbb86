"""The dashboard stays usable while other processes write the warehouse: it follows
``aigw ingest`` runs, and while a writer holds the file it shows the last data and says so."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.dashboard_fixtures import ENTRY, DashboardWarehouse, write_traffic
from tests.conftest import REPO


@pytest.fixture
def own_warehouse(dashboard_warehouse: DashboardWarehouse, tmp_path: Path) -> Path:
    """A copy of the session's warehouse that this test may write."""
    db = tmp_path / "aigw.duckdb"
    shutil.copy(dashboard_warehouse.db, db)
    return db


@pytest.fixture
def app(own_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("AIGW_DB", str(own_warehouse))
    monkeypatch.setenv("AIGW_BUDGETS", str(own_warehouse.parent / "none.toml"))
    monkeypatch.delenv("AIGW_CONFIG", raising=False)
    monkeypatch.delenv("AIGW_NOW", raising=False)
    test = AppTest.from_file(ENTRY, default_timeout=60)
    yield test


def _requests_shown(app: AppTest) -> str:
    app.run()
    assert not app.exception, [error.message for error in app.exception]
    return next(metric.value for metric in app.metric if metric.label == "Requests")


def _requests_in(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM requests").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


_WRITER = textwrap.dedent(
    """
    import shutil, subprocess, sys, time
    from pathlib import Path
    objects, source, db = [Path(p) for p in sys.argv[1:4]]
    locked = 0
    for path in sorted(objects.rglob("*.log.gz")):
        target = source / path.relative_to(objects)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        while True:  # aigw ingest does not wait for a lock: retry as a scheduler would
            run = subprocess.run([sys.executable, "-m", "app", "ingest", str(source),
                                  "--db", str(db)], capture_output=True, text=True)
            if run.returncode == 0:
                break
            assert "in use" in run.stderr, run.stderr
            locked += 1
            time.sleep(0.2)
    print(f"locked {locked}")
    """
)


def test_pages_follow_aigw_ingest_running_in_another_process(
    app: AppTest, own_warehouse: Path, tmp_path: Path
) -> None:
    """Each run renders with data (never an exception); the numbers catch up with the writer."""
    before = _requests_shown(app)
    assert before == f"{_requests_in(own_warehouse):,}"
    objects = tmp_path / "new"
    write_traffic(objects, 4 * 1500, seed=9, start=datetime(2026, 11, 3, tzinfo=UTC))
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(objects), str(tmp_path / "source"), str(own_warehouse)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = {before}
    try:
        while writer.poll() is None:
            seen.add(_requests_shown(app))
            time.sleep(0.3)
    finally:
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    after = _requests_shown(app)
    assert after == f"{_requests_in(own_warehouse):,}" == f"{12_000 + 6_000:,}"
    assert len(seen | {after}) >= 3, (seen, out)  # it followed the loads, not only the end


_HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])  # read-write: no other process may open the file
    con.execute("CREATE TABLE IF NOT EXISTS scratch (x INTEGER)")
    con.execute("INSERT INTO scratch VALUES (1)")
    con.execute("CHECKPOINT")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def test_a_busy_warehouse_shows_the_last_data_and_says_it_is_stale(
    app: AppTest, own_warehouse: Path
) -> None:
    before = _requests_shown(app)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(own_warehouse), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert _requests_shown(app) == before  # the last good numbers, not an error
        warnings = [warning.value for warning in app.warning]
        assert any("The warehouse is busy" in text for text in warnings), warnings
    finally:
        holder.kill()
        holder.communicate()
    assert _requests_shown(app) == before
    assert not app.warning  # fresh again once the writer is gone
