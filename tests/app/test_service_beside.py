"""Work beside the caller on a second cursor of a DuckDB warehouse: in UTC whatever the
machine's zone, its errors the caller's one-line warehouse errors, stopped when the
caller fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.service.beside import beside
from core.errors import WarehouseError
from core.warehouse import open_warehouse
from tests.conftest import REPO


def test_the_work_reads_times_in_utc_on_a_machine_in_another_zone(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from app.service.beside import beside
        from core.warehouse import open_warehouse
        with open_warehouse({str(tmp_path / "w.duckdb")!r}) as warehouse:
            def zone(opened):
                return opened.con.execute("SELECT current_setting('TimeZone')").fetchone()[0]
            with beside(warehouse, zone) as seen:
                print(zone(warehouse), seen.result())
        """
    )
    env = {**os.environ, "TZ": "Asia/Kolkata", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["UTC", "UTC"]


def test_a_failed_query_beside_is_the_callers_warehouse_error(tmp_path: Path) -> None:
    failing = "SELECT * FROM nowhere"
    with (
        open_warehouse(tmp_path / "w.duckdb") as warehouse,
        pytest.raises(WarehouseError),
        warehouse.errors(),
        beside(warehouse, lambda w: w.con.execute(failing)) as work,
    ):
        work.result()


def test_a_caller_that_fails_stops_the_work_beside(tmp_path: Path) -> None:
    """A query of half a minute or more beside a caller that fails at once: it is
    interrupted, and the caller's error comes out within seconds."""
    endless = "SELECT count(*) FROM range(20000000000) AS a(x) WHERE x % 7 = 3"
    started = time.monotonic()
    with (
        open_warehouse(tmp_path / "w.duckdb") as warehouse,
        pytest.raises(KeyError),
        beside(warehouse, lambda w: w.con.execute(endless).fetchone()),
    ):
        time.sleep(0.2)
        raise KeyError("the caller failed")
    assert time.monotonic() - started < 10
