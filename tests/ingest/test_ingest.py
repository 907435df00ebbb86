"""The ingest guarantees over a local folder: idempotent, incremental, nothing lost,
atomic per object, clear errors. Real DuckDB files, real gzip objects."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.compute as pc
import pytest

from core.warehouse import SCHEMA_VERSION
from ingest import IngestSettings, SchemaTooNew, open_warehouse, run_ingest
from ingest.loader import _INSERT_ROWS, parse_object
from tests.conftest import REPO, logpush_record, run_aigw, write_ndjson

Query = Callable[..., list[tuple[Any, ...]]]


def _ingest(source: Path, db_path: Path) -> Any:
    return run_ingest(IngestSettings(source=str(source), db_path=db_path))


def test_three_timestamp_formats_load_as_the_same_utc_instant(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """unixnano, unix and RFC 3339 Timestamps all become the same TIMESTAMPTZ in UTC."""
    logs = tmp_path / "logs"
    write_ndjson(
        logs / "a.log.gz", [logpush_record(Timestamp=1_776_470_400_000_000_000, Gateway="a")]
    )
    write_ndjson(logs / "b.log.gz", [logpush_record(Timestamp=1_776_470_400, Gateway="b")])
    write_ndjson(logs / "c.log.gz", [logpush_record(Timestamp="2026-04-18T00:00:00Z", Gateway="c")])
    summary = _ingest(logs, db_path)
    assert (summary.loaded, summary.rows_loaded) == (3, 3)
    rows = query("SELECT gateway, ts FROM requests ORDER BY gateway")
    expected = datetime(2026, 4, 18, tzinfo=UTC)
    assert [(gateway, ts) for gateway, ts in rows] == [
        ("a", expected),
        ("b", expected),
        ("c", expected),
    ]


def test_gateway_policy_fields_are_queryable_lists(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """DLP and guardrail categories from aigw's gateway load as VARCHAR[] columns."""
    write_ndjson(
        tmp_path / "logs" / "a.log.gz",
        [
            logpush_record(LogId="g1", DlpAction="redact", DlpCategories=["EMAIL", "IBAN"]),
            logpush_record(LogId="g2", GuardrailAction="block", GuardrailCategories=["jailbreak"]),
            logpush_record(LogId="g3"),
        ],
    )
    assert _ingest(tmp_path / "logs", db_path).rows_loaded == 3
    rows = query(
        "SELECT log_id, dlp_action, dlp_categories, guardrail_action, guardrail_categories "
        "FROM requests ORDER BY log_id"
    )
    assert rows == [
        ("g1", "redact", ["EMAIL", "IBAN"], None, None),
        ("g2", None, None, "block", ["jailbreak"]),
        ("g3", None, None, None, None),
    ]
    assert query("SELECT count(*) FROM requests WHERE list_contains(dlp_categories, 'IBAN')") == [
        (1,)
    ]


def test_rows_carry_the_documented_columns(tmp_path: Path, db_path: Path, query: Query) -> None:
    """A Logpush record's fields land in their columns, with tokens, cost and metadata."""
    record = logpush_record(
        Metrics={
            "cost": 0.0042,
            "durationMs": 1234,
            "tokensIn": 1500,
            "tokensOut": 300,
            "cacheReadTokens": 1000,
        },
        Cached=True,
        NewField={"x": 1},
    )
    path = write_ndjson(tmp_path / "logs" / "20260418" / "x.log.gz", [record])
    _ingest(tmp_path / "logs", db_path)
    row = query(
        "SELECT gateway, provider, model, endpoint, status_code, success, cached, rate_limited, "
        "duration_ms, tokens_in, tokens_out, cache_read_tokens, cache_write_tokens, cost, "
        "metadata->>'team', extra, log_format, source_file, source_line FROM requests"
    )
    assert row == [
        (
            "prod",
            "openai",
            "gpt-4o-mini",
            "chat/completions",
            200,
            True,
            True,
            False,
            1234.0,
            1500,
            300,
            1000,
            None,
            0.0042,
            "search",
            '{"NewField":{"x":1}}',
            "logpush",
            str(path),
            1,
        ),
    ]


def test_second_run_loads_nothing_and_reads_no_object(
    synthetic_logs: Callable[..., list[Path]], tmp_path: Path, db_path: Path, query: Query
) -> None:
    """Re-running over the same folder loads 0 rows and does not re-read unchanged objects."""
    synthetic_logs(500, per_file=100)
    first = _ingest(tmp_path / "logs", db_path)
    second = _ingest(tmp_path / "logs", db_path)
    assert (first.loaded, first.rows_loaded) == (5, 500)
    assert (second.loaded, second.unchanged, second.rows_loaded, second.records) == (0, 5, 0, 0)
    assert query("SELECT sum(attempts), count(*) FROM ingest_files") == [(5, 5)]
    assert query("SELECT count(*), count(DISTINCT log_id) FROM requests") == [(500, 500)]


def test_a_record_delivered_twice_is_stored_once(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """At-least-once delivery: the same record in two objects (and twice in one) is one row."""
    logs = tmp_path / "logs"
    records = [logpush_record(Timestamp=1_776_470_400 + i) for i in range(10)]
    fresh = logpush_record(Timestamp=1_776_480_000)
    write_ndjson(logs / "1.log.gz", records)
    write_ndjson(logs / "2.log.gz", [*records[5:], fresh, records[0], fresh])
    summary = _ingest(logs, db_path)
    assert (summary.rows_loaded, summary.duplicates, summary.records) == (11, 7, 18)
    assert query("SELECT count(*), count(DISTINCT log_id) FROM requests") == [(11, 11)]
    assert query(
        "SELECT records, rows_loaded, rows_duplicate, rows_rejected FROM ingest_files "
        "ORDER BY object_key"
    ) == [(10, 10, 0, 0), (8, 1, 7, 0)]


def test_counts_add_up_for_every_object_with_rejects(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """loaded + duplicates + rejected = non-empty lines; each bad line is kept with its reason."""
    logs = tmp_path / "logs"
    good = logpush_record()
    lines: list[Any] = [
        good,
        good,
        b'{"Timestamp": 1776470400, "Gateway": "prod"',
        "",
        logpush_record(StatusCode="abc"),
        logpush_record(Timestamp=None),
        b"[1, 2]",
        "   ",
        logpush_record(Timestamp=1_776_470_401),
    ]
    write_ndjson(logs / "mixed.log.gz", lines)
    summary = _ingest(logs, db_path)
    assert (summary.records, summary.rows_loaded, summary.duplicates, summary.rejected) == (
        7,
        2,
        1,
        4,
    )
    assert query(
        "SELECT records, rows_loaded, rows_duplicate, rows_rejected, status FROM ingest_files"
    ) == [(7, 2, 1, 4, "loaded")]
    rejects = query("SELECT line_number, reason FROM rejects ORDER BY line_number")
    assert [number for number, _ in rejects] == [3, 5, 6, 7]
    assert rejects[0][1].startswith("bad JSON")
    assert rejects[1][1] == "status code is not an integer: 'abc'"
    assert rejects[2][1] == "missing Timestamp"
    assert rejects[3][1] == "not a JSON object but an array"
    assert query("SELECT raw_line FROM rejects WHERE line_number = 3") == [
        ('{"Timestamp": 1776470400, "Gateway": "prod"',)
    ]


def test_a_huge_bad_line_is_kept_truncated_at_64_kib(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """A rejected line is stored up to 64 KiB, flagged as truncated."""
    write_ndjson(tmp_path / "logs" / "big.log.gz", [b"{" + b"x" * 100_000])
    _ingest(tmp_path / "logs", db_path)
    assert query("SELECT length(raw_line), raw_truncated FROM rejects") == [(65536, True)]


def test_corrupt_gzip_fails_alone_and_is_retried(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """A truncated gzip object is marked failed, the others load, and the next run retries it."""
    logs = tmp_path / "logs"
    write_ndjson(
        logs / "good.log.gz", [logpush_record(Timestamp=1_776_470_400 + i) for i in range(20)]
    )
    bad = write_ndjson(
        logs / "bad.log.gz", [logpush_record(Timestamp=1_776_480_000 + i) for i in range(20)]
    )
    complete = bad.read_bytes()
    bad.write_bytes(complete[: len(complete) // 2])
    first = _ingest(logs, db_path)
    assert (first.loaded, first.failed, first.rows_loaded) == (1, 1, 20)
    assert first.failures[0].key == str(bad)
    assert "truncated" in (first.failures[0].error or "")
    assert query(
        "SELECT status, rows_loaded FROM ingest_files WHERE object_key = ?", [str(bad)]
    ) == [("failed", 0)]
    assert query("SELECT count(*) FROM requests WHERE source_file = ?", [str(bad)]) == [(0,)]
    bad.write_bytes(complete)
    second = _ingest(logs, db_path)
    assert (second.loaded, second.unchanged, second.failed, second.rows_loaded) == (1, 1, 0, 20)
    assert query("SELECT status, attempts FROM ingest_files WHERE object_key = ?", [str(bad)]) == [
        ("loaded", 2)
    ]


def test_cli_exits_1_with_one_line_per_failed_object(tmp_path: Path, db_path: Path) -> None:
    """`aigw ingest` exits 1 and prints one `failed:` line per failed object, no traceback."""
    logs = tmp_path / "logs"
    write_ndjson(logs / "ok.log.gz", [logpush_record()])
    for name in ("bad1.log.gz", "bad2.log.gz"):
        (logs / name).write_bytes(b"\x1f\x8b\x08\x00" + b"not deflate data" * 4)
    result = run_aigw("ingest", str(logs), "--db", str(db_path))
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2
    assert "Traceback" not in result.stderr
    assert "objects: 3 seen, 1 loaded, 0 unchanged, 0 skipped, 2 failed" in result.stdout


def test_non_log_objects_are_recorded_as_skipped(
    tmp_path: Path, db_path: Path, query: Query
) -> None:
    """ownership-challenge.txt and other non-log files are skipped and recorded, not errors."""
    logs = tmp_path / "logs"
    write_ndjson(logs / "20260418" / "a.log.gz", [logpush_record()])
    (logs / "ownership-challenge.txt").write_text("token")
    (logs / "notes.md").write_text("# notes")
    summary = _ingest(logs, db_path)
    assert (summary.loaded, summary.skipped, summary.failed) == (1, 2, 0)
    assert query(
        "SELECT status, error FROM ingest_files WHERE status = 'skipped' ORDER BY object_key"
    ) == [
        ("skipped", "not a log file"),
        ("skipped", "not a log file"),
    ]


def test_a_changed_object_is_read_again(tmp_path: Path, db_path: Path, query: Query) -> None:
    """A rewritten object is re-read: its old records count as duplicates, new ones load."""
    logs = tmp_path / "logs"
    path = write_ndjson(
        logs / "a.log.gz", [logpush_record(Timestamp=1_776_470_400 + i) for i in range(3)]
    )
    _ingest(logs, db_path)
    write_ndjson(path, [logpush_record(Timestamp=1_776_470_400 + i) for i in range(5)])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    summary = _ingest(logs, db_path)
    assert (summary.loaded, summary.rows_loaded, summary.duplicates) == (1, 2, 3)
    assert query("SELECT count(*) FROM requests") == [(5,)]


def test_kill_9_mid_run_leaves_no_half_loaded_object(
    synthetic_logs: Callable[..., list[Path]], tmp_path: Path, db_path: Path, query: Query
) -> None:
    """After kill -9 mid-run each object is wholly loaded or absent; a rerun is exact."""
    paths = synthetic_logs(60_000, per_file=15_000)
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "ingest", str(tmp_path / "logs"), "--db", str(db_path), "-v"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # the first object committed: the second is in flight
    assert line.startswith("loaded "), line
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    per_object = dict(query("SELECT source_file, count(*) FROM requests GROUP BY source_file"))
    files = dict(query("SELECT object_key, rows_loaded FROM ingest_files"))
    assert 1 <= len(per_object) < len(paths)
    assert per_object == files
    assert all(count == 15_000 for count in per_object.values())
    summary = _ingest(tmp_path / "logs", db_path)
    assert summary.rows_loaded == 60_000 - 15_000 * len(per_object)
    assert query("SELECT count(*), count(DISTINCT log_id) FROM requests") == [(60_000, 60_000)]


def test_a_locked_warehouse_is_a_one_line_error(tmp_path: Path, db_path: Path) -> None:
    """While another process writes the warehouse, `aigw ingest` says so in one line and exits 2."""
    write_ndjson(tmp_path / "logs" / "a.log.gz", [logpush_record()])
    db_path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db_path)!r}); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db_path))
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: warehouse {db_path} is in use by another program "
        f"({Path(sys.executable).name}, pid {holder.pid}); "
        "wait for it to finish, stop it, or pass another --db"
    ]


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda tmp: tmp / "missing", "error: folder {path} does not exist"),
        (
            lambda tmp: write_ndjson(tmp / "file.log.gz", [logpush_record()]),
            "error: {path} is not a folder",
        ),
    ],
)
def test_an_unusable_folder_is_a_one_line_error(
    tmp_path: Path, db_path: Path, make_source: Callable[[Path], Path], message: str
) -> None:
    """A missing folder, or a file given as the folder, is one line on stderr and exit 2."""
    source = make_source(tmp_path)
    result = run_aigw("ingest", str(source), "--db", str(db_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [message.format(path=source)]


def test_aigw_db_environment_variable_selects_the_warehouse(tmp_path: Path) -> None:
    """AIGW_DB names the warehouse when --db is not given."""
    write_ndjson(tmp_path / "logs" / "a.log.gz", [logpush_record()])
    target = tmp_path / "elsewhere.duckdb"
    result = run_aigw("ingest", str(tmp_path / "logs"), env={"AIGW_DB": str(target)})
    assert result.returncode == 0, result.stderr
    assert (
        run_aigw(
            "sql",
            "SELECT count(*) AS n FROM requests",
            "--format",
            "csv",
            env={"AIGW_DB": str(target)},
        ).stdout
        == "n\n1\n"
    )


def test_schema_version_is_recorded_and_a_newer_one_refused(db_path: Path) -> None:
    """A new warehouse records its schema version; one from a newer aigw is refused clearly."""
    with open_warehouse(db_path) as warehouse:
        assert warehouse.con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            SCHEMA_VERSION,
        )
        warehouse.con.execute(
            "INSERT INTO schema_migrations VALUES (?, now())", [SCHEMA_VERSION + 1]
        )
    with pytest.raises(SchemaTooNew, match="newer than this aigw"):
        open_warehouse(db_path)


def test_dedupe_probes_only_the_batch_time_range(
    synthetic_logs: Callable[..., list[Path]], tmp_path: Path, db_path: Path
) -> None:
    """Checking an object for duplicates reads its time range only, not the whole history."""
    with open_warehouse(db_path) as warehouse:  # 1,000,000 rows of history, a week earlier
        warehouse.con.execute(
            """INSERT INTO requests (log_id, ts, log_format, source_file, source_line, ingested_at)
               SELECT 'h' || i, TIMESTAMPTZ '2026-04-10 00:00:00+00' + to_microseconds(i * 1000),
                      'logpush', 'history', i, now() FROM range(1000000) t(i)"""
        )
    paths = synthetic_logs(1000, per_file=1000, start=datetime(2026, 4, 18, tzinfo=UTC))
    assert _ingest(tmp_path / "logs", db_path).rows_loaded == 1000
    with paths[0].open("rb") as stream:  # the same object again: every row is a duplicate
        batch = next(parse_object(stream, str(paths[0])))
    assert batch.rows is not None
    span = pc.min_max(batch.rows["ts_us"])
    profile = tmp_path / "profile.json"
    con = duckdb.connect(str(db_path))
    try:
        con.register("_aigw_batch", batch.rows)
        con.execute("BEGIN TRANSACTION")
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{profile}'")
        inserted = con.execute(
            _INSERT_ROWS,
            {
                "source_file": "again",
                "ingested_at": datetime.now(UTC),
                "low": span["min"].as_py(),
                "high": span["max"].as_py(),
            },
        ).fetchone()
        con.execute("PRAGMA disable_profiling")
        con.execute("ROLLBACK")
    finally:
        con.close()
    assert inserted == (0,)
    scanned = _requests_rows_scanned(orjson.loads(profile.read_bytes()))
    assert 1000 <= scanned <= 2 * 122_880, scanned  # at most two row groups of 1,001,000 rows


def _requests_rows_scanned(node: dict[str, Any]) -> int:
    """Rows read from the `requests` table anywhere in a DuckDB JSON profile."""
    own = 0
    table = str(node.get("extra_info", {}).get("Table", ""))
    if node.get("operator_type") == "TABLE_SCAN" and table.endswith("requests"):
        own = int(node.get("operator_rows_scanned", 0))
    return own + sum(_requests_rows_scanned(child) for child in node.get("children", []))


def test_an_unreadable_folder_is_a_one_line_error(tmp_path: Path) -> None:
    """A folder the user may not read is one line on stderr and exit 2 (run as nobody when root)."""
    shared = Path(tempfile.mkdtemp(prefix="aigw-perm-"))
    try:
        shared.chmod(0o777)
        logs = shared / "logs"
        write_ndjson(logs / "a.log.gz", [logpush_record()])
        logs.chmod(0o000)
        command = [
            sys.executable,
            "-m",
            "app",
            "ingest",
            str(logs),
            "--db",
            str(shared / "w.duckdb"),
        ]
        if os.geteuid() == 0:  # root reads everything: drop to nobody for this run
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: cannot run as an unprivileged user")
            drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            probe = subprocess.run(
                [*drop, sys.executable, "-c", "import app.cli"], cwd=REPO, check=False
            )
            if probe.returncode != 0:
                pytest.skip("user nobody cannot read this checkout, so cannot run aigw")
            command = [*drop, *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [f"error: folder {logs} is not readable"]
    finally:
        (shared / "logs").chmod(0o755)
        shutil.rmtree(shared)
