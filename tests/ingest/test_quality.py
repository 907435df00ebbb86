"""The data-quality gate: Great Expectations over each batch's new rows, results in
``quality_runs``, real DuckDB files, the real ``aigw`` command for exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest import IngestSettings, run_ingest
from ingest.quality_suite import CHECKS
from tests.conftest import run_aigw, write_ndjson
from tests.ingest.quality_fixtures import SECRET, bad_records, probe_events, record

Query = Callable[..., list[tuple[Any, ...]]]


def _stored_runs(query: Query) -> list[tuple[Any, ...]]:
    return query(
        "SELECT source, object_keys, rows_checked, on_failure, success, critical_failures, "
        "warnings, results FROM quality_runs ORDER BY started_at"
    )


def test_a_clean_batch_passes_every_expectation_and_is_recorded(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """Clean rows: one quality_runs row, every expectation of the suite successful."""
    path = write_ndjson(tmp_path / "logs" / "a.log.gz", [record(n) for n in range(3)])

    summary = run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path))

    assert summary.quality is not None
    assert (summary.quality.critical_failures, summary.quality.warnings) == (0, 0)
    assert not summary.quality.gate_failed
    [(source, keys, rows, mode, success, critical, warnings, results)] = _stored_runs(query)
    assert (source, keys, rows, mode, success, critical, warnings) == (
        str(tmp_path / "logs"),
        [str(path)],
        3,
        "fail",
        True,
        0,
        0,
    )
    stored = orjson.loads(results)
    assert [item["name"] for item in stored] == [check.name for check in CHECKS]
    assert all(item["success"] and item["unexpected_count"] == 0 for item in stored)


def test_a_bad_batch_fails_its_critical_expectations_and_shows_ids_and_numbers_only(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """Three critical failures and one warning, each with the failing row's id and
    value; the rows stay loaded; no secret, body or metadata in the results."""
    path = write_ndjson(tmp_path / "logs" / "bad.log.gz", bad_records())

    summary = run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path))

    report = summary.quality
    assert report is not None
    assert (report.rows_checked, report.critical_failures, report.warnings) == (6, 3, 1)
    assert report.gate_failed
    assert summary.rows_loaded == 6
    assert query("SELECT count(*) FROM requests") == [(6,)]
    [(*_, success, critical, warnings, results)] = _stored_runs(query)
    assert (success, critical, warnings) == (False, 3, 1)
    assert SECRET not in results
    failed = {item["name"]: item for item in orjson.loads(results) if not item["success"]}
    assert sorted(failed) == [
        "cost 0-1000 USD",
        "provider known",
        "status_code 100-599",
        "tokens_in 0-10M",
    ]
    line = {2: "tokens_in", 3: "status_code", 4: "cost"}
    values = {"tokens_in": -5, "status_code": 700, "cost": 5000.0}
    for number, column in line.items():
        [example] = next(f["examples"] for f in failed.values() if column in f["name"])
        assert example["source_file"] == str(path)
        assert example["source_line"] == number + 1
        assert example[column] == values[column]
        assert isinstance(example["log_id"], str)
    [unknown] = failed["provider known"]["examples"]
    assert unknown["source_line"] == 6
    assert "provider" not in unknown  # free text from the log is never shown
    assert failed["provider known"]["severity"] == "warning"
    assert failed["cost 0-1000 USD"]["severity"] == "critical"


def test_warn_mode_records_the_failures_without_failing_the_gate(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """--quality warn: the same failures are stored, the batch does not fail."""
    write_ndjson(tmp_path / "logs" / "bad.log.gz", bad_records())

    summary = run_ingest(
        IngestSettings(source=str(tmp_path / "logs"), db_path=db_path, quality="warn")
    )

    assert summary.quality is not None
    assert summary.quality.critical_failures == 3
    assert not summary.quality.gate_failed
    assert query("SELECT on_failure, success FROM quality_runs") == [("warn", False)]


def test_off_mode_and_a_batch_without_new_rows_record_nothing(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """--quality off checks nothing; a second run that loads no rows checks nothing."""
    write_ndjson(tmp_path / "logs" / "a.log.gz", [record(0)])
    off = run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path, quality="off"))
    write_ndjson(tmp_path / "logs" / "b.log.gz", [record(0)])  # a duplicate: no new row
    again = run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path))

    assert (off.quality, again.quality, again.duplicates) == (None, None, 1)
    assert query("SELECT count(*) FROM quality_runs") == [(0,)]


def test_only_the_batch_new_rows_are_checked(tmp_path: Path, db_path: Path, query: Query) -> None:
    """A second batch is checked over its own rows, not the warehouse's older ones."""
    write_ndjson(tmp_path / "logs" / "bad.log.gz", bad_records())
    run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path, quality="warn"))
    good = write_ndjson(tmp_path / "logs" / "good.log.gz", [record(n) for n in range(10, 14)])

    summary = run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path))

    assert summary.quality is not None
    assert (summary.quality.rows_checked, summary.quality.success) == (4, True)
    assert query("SELECT object_keys, rows_checked, success FROM quality_runs ORDER BY started_at")[
        1
    ] == ([str(good)], 4, True)


def test_cli_exits_3_when_a_critical_expectation_fails_and_0_with_warn(
    tmp_path: Path, db_path: Path
) -> None:
    """aigw ingest: exit 3 and one line per failed expectation (critical first, in suite
    order), the rollups refreshed all the same (their line after the quality line);
    --quality warn exits 0."""
    write_ndjson(tmp_path / "logs" / "bad.log.gz", bad_records())

    failed = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db_path))
    warned = run_aigw(
        "ingest", str(tmp_path / "logs"), "--db", str(tmp_path / "w.duckdb"), "--quality", "warn"
    )

    assert failed.returncode == 3, failed.stderr
    assert warned.returncode == 0, warned.stderr
    assert failed.stdout.splitlines()[2:] == [
        "quality: 6 rows checked, 3 critical failures, 1 warning",
        "rollups: rebuilt (2 rows)",
    ]
    assert failed.stderr.splitlines() == [
        "quality failed: status_code 100-599 (1 row)",
        "quality failed: tokens_in 0-10M (1 row)",
        "quality failed: cost 0-1000 USD (1 row)",
        "quality warning: provider known (1 row)",
    ]
    assert SECRET not in failed.stdout + failed.stderr


def test_the_config_file_sets_the_mode_and_the_option_wins(tmp_path: Path) -> None:
    """[ingest] quality = "warn" in aigw.toml applies; --quality fail overrides it."""
    write_ndjson(tmp_path / "logs" / "bad.log.gz", bad_records())
    config = tmp_path / "aigw.toml"
    config.write_text('[ingest]\nquality = "warn"\n')

    logs, config_option = str(tmp_path / "logs"), str(config)
    from_file = run_aigw(
        "ingest", logs, "--db", str(tmp_path / "a.duckdb"), "--config", config_option
    )
    overridden = run_aigw(
        "ingest",
        str(tmp_path / "logs"),
        "--db",
        str(tmp_path / "b.duckdb"),
        "--config",
        str(config),
        "--quality",
        "fail",
    )

    assert (from_file.returncode, overridden.returncode) == (0, 3)


def test_a_bad_quality_mode_is_a_one_line_error(tmp_path: Path, db_path: Path) -> None:
    """--quality strict: exit 2 with one line saying what is allowed."""
    result = run_aigw("ingest", str(tmp_path), "--db", str(db_path), "--quality", "strict")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: quality mode 'strict' must be fail, warn or off"]


_PROBE = """
import os, sys
from ingest import IngestSettings, run_ingest
summary = run_ingest(IngestSettings(source=sys.argv[1], db_path=sys.argv[2]))
print(os.getpid(), summary.quality is not None and summary.quality.success)
"""


@pytest.mark.parametrize("new_rows", [True, False])
def test_the_gate_opens_no_connection_and_imports_gx_only_for_new_rows(
    tmp_path: Path, db_path: Path, new_rows: bool
) -> None:
    """Checking a batch makes no network connection in any process (analytics off); Great
    Expectations is imported by the check's child process, never by the loading one; a
    run without new rows starts no process and imports nothing (it costs seconds)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    if new_rows:
        write_ndjson(logs / "a.log.gz", [record(0)])

    output, events = probe_events(tmp_path, _PROBE, str(logs), str(db_path))

    pid, success = output.split()
    children = [who for who, event in events if event == f"starts under {pid}"]
    importers = [who for who, event in events if event == "imports great_expectations"]
    assert [event for _, event in events if event.startswith("connects")] == []
    assert success == str(new_rows)
    if new_rows:
        assert len(importers) == 1
        assert importers[0] in children  # the gate's child, not the loading process
    else:
        assert (children, importers) == ([], [])


def test_more_1_hour_writes_than_writes_is_a_warning(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """150 1-hour writes of 100 writes: one warning naming the row, the row still loaded."""
    metrics = {"tokensIn": 1000, "cacheWriteTokens": 100, "cacheWrite1hTokens": 150}
    write_ndjson(tmp_path / "logs" / "a.log.gz", [record(0), record(1, Metrics=metrics)])

    summary = run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path))

    assert summary.quality is not None
    assert (summary.quality.critical_failures, summary.quality.warnings) == (0, 1)
    assert summary.rows_loaded == 2
    [(*_, results)] = _stored_runs(query)
    [failed] = [item for item in orjson.loads(results) if not item["success"]]
    assert failed["name"] == "1-hour cache writes within the writes"
    assert [example["source_line"] for example in failed["examples"]] == [2]
