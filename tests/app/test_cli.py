"""The `aigw` command line as a user runs it: output formats, summaries, one-line errors."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import REPO, logpush_record, run_aigw, write_ndjson


@pytest.fixture
def loaded_db(tmp_path: Path, db_path: Path) -> Path:
    """A warehouse holding three requests: two openai, one anthropic."""
    write_ndjson(
        tmp_path / "logs" / "a.log.gz",
        [
            logpush_record(Timestamp=1_776_470_400),
            logpush_record(Timestamp=1_776_470_401),
            logpush_record(
                Timestamp=1_776_470_402,
                Provider="anthropic",
                Model="claude-sonnet-4",
                Metrics={"cost": 0.01, "tokensIn": 2000, "tokensOut": 100},
            ),
        ],
    )
    # the gate is not what these tests check: off spares importing GX (about 6 s of CPU)
    result = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db_path), "--quality", "off")
    assert result.returncode == 0, result.stderr
    return db_path


SPEND = (
    "SELECT provider, count(*) AS requests, sum(cost) AS cost FROM requests GROUP BY 1 ORDER BY 1"
)


def test_ingest_prints_the_final_summary(tmp_path: Path, db_path: Path) -> None:
    """`aigw ingest` always ends with the objects and rows summary, rows per second included."""
    write_ndjson(tmp_path / "logs" / "a.log.gz", [logpush_record(), logpush_record(), "{bad"])
    (tmp_path / "logs" / "ownership-challenge.txt").write_text("x")
    result = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "objects: 2 seen, 1 loaded, 0 unchanged, 1 skipped, 0 failed"
    assert lines[1].startswith("rows: 1 loaded, 1 duplicates, 1 rejected of 3 records in ")
    assert lines[1].endswith(" rows/s)")


def test_ingest_prints_the_load_the_quality_check_then_the_rollups(db_path: Path) -> None:
    """The refresh overlaps the quality check; the lines keep their order: what was
    loaded, what the check found, what the refresh did."""
    result = run_aigw("ingest", str(REPO / "sample_data" / "logs"), "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "objects: 9 seen, 8 loaded, 0 unchanged, 1 skipped, 0 failed"
    assert lines[1].startswith("rows: 960 loaded, 150 duplicates, 1 rejected of 1,111 records")
    assert lines[2:] == [
        "quality: 960 rows checked, 0 critical failures, 0 warnings",
        "rollups: rebuilt (551 rows)",
    ]


def test_sql_csv_output(loaded_db: Path) -> None:
    """--format csv prints a header and one line per row."""
    result = run_aigw("sql", SPEND, "--db", str(loaded_db), "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "provider,requests,cost\nanthropic,1,0.01\nopenai,2,0.003\n"


def test_sql_json_output(loaded_db: Path) -> None:
    """--format json prints an array of objects keyed by column name."""
    result = run_aigw("sql", SPEND, "--db", str(loaded_db), "--format", "json")
    assert orjson.loads(result.stdout) == [
        {"provider": "anthropic", "requests": 1, "cost": 0.01},
        {"provider": "openai", "requests": 2, "cost": 0.003},
    ]


def test_sql_table_output_is_not_truncated_when_piped(loaded_db: Path) -> None:
    """The table format keeps full values even when stdout is not a terminal."""
    result = run_aigw("sql", "SELECT 'x' || repeat('y', 150) AS long_value", "--db", str(loaded_db))
    assert "x" + "y" * 150 in result.stdout


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("DELETE FROM requests", "read-only"),
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM no_such_table", "no_such_table"),
    ],
)
def test_sql_errors_are_one_line(loaded_db: Path, sql: str, fragment: str) -> None:
    """Writes are refused (read-only connection) and bad SQL is one line on stderr, exit 2."""
    result = run_aigw("sql", sql, "--db", str(loaded_db))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert (
        run_aigw(
            "sql", "SELECT count(*) FROM requests", "--db", str(loaded_db), "--format", "csv"
        ).stdout
        == "count_star()\n3\n"
    )


def test_sql_on_a_missing_warehouse_says_what_to_do(tmp_path: Path) -> None:
    """Querying a warehouse that does not exist names the file and the fix, and creates nothing."""
    missing = tmp_path / "none.duckdb"
    result = run_aigw("sql", "SELECT 1", "--db", str(missing))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: no warehouse at {missing}; run `aigw ingest` first or pass --db"
    ]
    assert not missing.exists()


def test_rollup_on_a_missing_warehouse_creates_nothing(tmp_path: Path) -> None:
    """`aigw rollup` refuses a warehouse that does not exist like the read commands do."""
    missing = tmp_path / "none" / "aigw.duckdb"
    result = run_aigw("rollup", "--db", str(missing))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: no warehouse at {missing}; run `aigw ingest` first or pass --db"
    ]
    assert not missing.parent.exists()


def test_unknown_format_is_refused(loaded_db: Path) -> None:
    """An unknown --format is a one-line error, exit 2."""
    result = run_aigw("sql", "SELECT 1", "--db", str(loaded_db), "--format", "xml")
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "error: unknown --format 'xml'; use table, csv or json",
    )


def test_verbose_adds_details_to_errors(loaded_db: Path) -> None:
    """--verbose keeps the one-line error first and adds the driver's details after it."""
    quiet = run_aigw("sql", "SELEC 1", "--db", str(loaded_db))
    loud = run_aigw("sql", "SELEC 1", "--db", str(loaded_db), "--verbose")
    assert loud.stderr.splitlines()[0] == quiet.stderr.splitlines()[0]
    assert len(loud.stderr.splitlines()) > 1


def test_ingest_draws_a_progress_bar_on_a_terminal(tmp_path: Path, db_path: Path) -> None:
    """On a terminal, stderr shows a progress bar over the objects; stdout keeps the summary."""
    for index in range(3):
        write_ndjson(
            tmp_path / "logs" / f"{index}.log.gz", [logpush_record(Timestamp=1_776_470_400 + index)]
        )
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "ingest", str(tmp_path / "logs"), "--db", str(db_path)],
        stdout=subprocess.PIPE,
        stderr=terminal,
        cwd=REPO,
        text=True,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    os.close(terminal)
    drawn = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 10)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is done with it
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    screen = drawn.decode(errors="replace")
    assert "ingest" in screen and "3/3" in screen and "objects" in screen
    assert stdout.splitlines()[0] == "objects: 3 seen, 3 loaded, 0 unchanged, 0 skipped, 0 failed"
