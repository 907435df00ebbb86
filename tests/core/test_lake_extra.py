"""Light by default: without the `lake` extra (PyIceberg, SQLAlchemy, Ray blocked from
importing), every DuckDB command works, and one that needs the extra says in one line
which one to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.lake_fixtures import lake_config

# Run aigw with the lake extra's packages made unimportable.
_WITHOUT_LAKE = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"pyiceberg", "sqlalchemy", "ray", "psycopg"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Blocked())
from app.cli import main
sys.argv = ["aigw", *sys.argv[1:]]
main()
"""


def _aigw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_LAKE, *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_duckdb_warehouse_needs_no_extra(tmp_path: Path) -> None:
    logs = REPO / "sample_data" / "logs"
    db = tmp_path / "aigw.duckdb"
    loaded = _aigw("ingest", str(logs), "--db", str(db), "--quality", "off", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "960 loaded, 150 duplicates, 1 rejected" in loaded.stdout
    report = _aigw("sql", "--db", str(db), "SELECT count(*) AS n FROM requests", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "960" in report.stdout


def test_an_iceberg_warehouse_without_the_extra_names_it_in_one_line(tmp_path: Path) -> None:
    config = lake_config(tmp_path)
    result = _aigw(
        "ingest", str(REPO / "sample_data" / "logs"), "--config", str(config), cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: the iceberg warehouse needs the lake extra: pip install 'aigw[lake]'"
    ]
    assert not (tmp_path / "lake").exists()
