"""Ingest into an Iceberg warehouse (SQL catalog on SQLite, data files in a folder or on
moto's S3 server): the same rows, rejects and counts as the DuckDB warehouse, batched
commits, re-delivery, failed objects, and a driver killed between an Iceberg commit and
its manifest update."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from app.service import cost_report, export_focus, refresh
from core.lake import EngineSpec, LakeSpec
from core.lake.lake import Lake
from core.warehouse import lake as lake_reader
from core.warehouse import newest_ingest, open_warehouse
from ingest import IngestSettings, IngestSummary, run_ingest
from ingest.lake import ingest_lake
from ingest.sources import open_source
from models import ModelsSettings
from tests.conftest import REPO, logpush_record, run_aigw, write_ndjson
from tests.ingest.conftest import Bucket
from tests.lake_fixtures import ROW_QUERY, lake_config, lake_spec, read_all

SAMPLES = REPO / "sample_data" / "logs"
MANIFEST = (
    "SELECT status, count(*), sum(records), sum(rows_loaded), sum(rows_duplicate), "
    "sum(rows_rejected) FROM ingest_files GROUP BY ALL ORDER BY 1"
)


def _ingest(source: str, target: Path | LakeSpec) -> IngestSummary:
    settings = IngestSettings(source=source, db_path=target, quality="off")
    return run_ingest(settings)


def test_same_rows_rejects_and_counts_as_the_duckdb_warehouse(tmp_path: Path) -> None:
    spec = lake_spec(tmp_path, engine=EngineSpec(batch_objects=3))
    duck = tmp_path / "aigw.duckdb"
    lake_summary = _ingest(str(SAMPLES), spec)
    duck_summary = _ingest(str(SAMPLES), duck)

    for name in ("loaded", "skipped", "failed", "rows_loaded", "duplicates", "rejected"):
        assert getattr(lake_summary, name) == getattr(duck_summary, name), name
    assert (lake_summary.loaded, lake_summary.rows_loaded) == (8, 960)
    assert (lake_summary.duplicates, lake_summary.rejected) == (150, 1)
    assert read_all(spec, ROW_QUERY) == read_all(duck, ROW_QUERY)
    rejects = "SELECT source_file, line_number, raw_line, raw_truncated, reason FROM rejects"
    assert read_all(spec, rejects) == read_all(duck, rejects)
    assert (
        read_all(spec, MANIFEST)
        == read_all(duck, MANIFEST)
        == [
            ("loaded", 8, 1111, 960, 150, 1),
            ("skipped", 1, 0, 0, 0, 0),
        ]
    )
    # 8 objects in chunks of 3: three commits of rows, each naming its objects
    with Lake(spec) as lake:
        table = lake.table("requests")
        appends = [
            s for s in table.snapshots() if "aigw.objects" in s.summary.additional_properties
        ]
        assert len(appends) == 3


def test_a_second_run_reads_nothing_and_a_redelivered_record_is_stored_once(
    tmp_path: Path,
) -> None:
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    first = [
        logpush_record(Metadata={"n": i}, Timestamp=1_776_470_400_000_000_000 + i) for i in range(5)
    ]
    write_ndjson(logs / "20260418" / "a.log.gz", first)
    _ingest(str(logs), spec)
    again = _ingest(str(logs), spec)
    assert (again.unchanged, again.loaded, again.records) == (1, 0, 0)

    # a later object repeats two records (same id and time) and adds one
    write_ndjson(
        logs / "20260418" / "b.log.gz",
        [*first[:2], logpush_record(Timestamp=1_776_470_500_000_000_000)],
    )
    later = _ingest(str(logs), spec)
    assert (later.loaded, later.rows_loaded, later.duplicates) == (1, 1, 2)
    assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [(6, 6)]


def test_a_truncated_object_fails_alone_and_is_retried(tmp_path: Path) -> None:
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    write_ndjson(logs / "20260418" / "good.log.gz", [logpush_record()])
    bad = write_ndjson(
        logs / "20260418" / "bad.log.gz", [logpush_record(Timestamp=1_776_470_500_000_000_000)] * 50
    )
    bad.write_bytes(bad.read_bytes()[:-12])
    summary = _ingest(str(logs), spec)
    assert (summary.loaded, summary.failed, summary.rows_loaded) == (1, 1, 1)
    assert read_all(spec, "SELECT status, count(*) FROM ingest_files GROUP BY ALL ORDER BY 1") == [
        ("failed", 1),
        ("loaded", 1),
    ]
    retried = _ingest(str(logs), spec)
    assert (retried.unchanged, retried.failed) == (1, 1)


_KILL_AFTER_FIRST_COMMIT = """
import os, signal, sys
from core.lake.state import StateDB
import polars as pl

from app.service import cost_report, export_focus, refresh
from ingest import IngestSettings, IngestSummary, run_ingest
from models import ModelsSettings
from core.lake import EngineSpec
from tests.lake_fixtures import lake_spec
from pathlib import Path

def die(self, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # after the Iceberg commit, before the manifest

StateDB.finish = die
root, source, kind, batch = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
engine = EngineSpec(kind=kind, num_cpus=1, batch_objects=batch)
run_ingest(IngestSettings(source=source, quality="off", db_path=lake_spec(root, engine=engine)))
"""


@pytest.mark.parametrize(
    ("kind", "batch", "claimed"),
    [("local", 5, 5), ("ray", 3, 6)],  # on Ray the next chunk is claimed before the commit
)
def test_sigkill_between_the_commit_and_the_manifest_loses_and_doubles_nothing(
    tmp_path: Path, kind: str, batch: int, claimed: int
) -> None:
    spec = lake_spec(tmp_path)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_KILL_AFTER_FIRST_COMMIT),
            str(tmp_path),
            str(SAMPLES),
            kind,
            str(batch),
        ],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    # the first chunk's rows are committed, the manifest does not know it yet: it holds
    # the claims of the chunks in hand
    committed = read_all(spec, "SELECT count(*) FROM requests")[0][0]
    assert committed > 0
    assert read_all(spec, "SELECT status, count(*) FROM ingest_files GROUP BY ALL") == [
        ("pending", claimed)
    ]

    rerun = _ingest(str(SAMPLES), spec)
    assert (rerun.loaded, rerun.rows_loaded, rerun.duplicates, rerun.rejected) == (8, 960, 150, 1)
    assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [(960, 960)]
    assert read_all(spec, MANIFEST) == [
        ("loaded", 8, 1111, 960, 150, 1),
        ("skipped", 1, 0, 0, 0, 0),
    ]
    assert read_all(spec, "SELECT count(*) FROM rejects") == [(1,)]


def test_a_reader_keeps_its_snapshot_while_a_writer_commits(tmp_path: Path) -> None:
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    write_ndjson(logs / "20260418" / "a.log.gz", [logpush_record()])
    _ingest(str(logs), spec)
    with open_warehouse(spec, read_only=True) as reader:
        write_ndjson(
            logs / "20260418" / "b.log.gz", [logpush_record(Timestamp=1_776_470_500_000_000_000)]
        )
        result = subprocess.run(
            [sys.executable, "-m", "app", "ingest", str(logs), "--quality", "off"],
            cwd=tmp_path,
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(REPO),
                "AIGW_CONFIG": str(lake_config(tmp_path)),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert reader.con.execute("SELECT count(*) FROM requests").fetchall() == [(1,)]
    assert read_all(spec, "SELECT count(*) FROM requests") == [(2,)]


@pytest.mark.usefixtures("aws_env")
def test_data_files_on_s3(tmp_path: Path, bucket: Bucket) -> None:
    spec = lake_spec(tmp_path, location=f"s3://{bucket.name}/aigw", endpoint=bucket.endpoint)
    with Lake(spec) as lake:
        summary = ingest_lake(open_source(str(SAMPLES)), lake)
    assert (summary.loaded, summary.rows_loaded, summary.duplicates) == (8, 960, 150)
    keys = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix="aigw/")["Contents"]
    assert any(item["Key"].endswith(".parquet") for item in keys)
    assert read_all(spec, "SELECT count(*), round(sum(cost), 6) FROM requests") == [(960, 1.900609)]


@pytest.mark.parametrize("timestamp_format", ["unix", "rfc3339"])
def test_parity_on_other_timestamp_formats_a_truncated_object_and_cost_by_model(
    timestamp_format: str, tmp_path: Path, synthetic_logs: Callable[..., list[Path]]
) -> None:
    paths = synthetic_logs(300, per_file=100, timestamp_format=timestamp_format)
    paths[1].write_bytes(paths[1].read_bytes()[:-20])  # a truncated object: failed
    spec = lake_spec(tmp_path)
    duck = tmp_path / "aigw.duckdb"
    source = str(paths[0].parent.parent)
    summaries = [_ingest(source, target) for target in (spec, duck)]
    assert [(s.loaded, s.failed, s.rows_loaded) for s in summaries] == [(2, 1, 200)] * 2
    assert read_all(spec, ROW_QUERY) == read_all(duck, ROW_QUERY)
    assert read_all(spec, MANIFEST) == read_all(duck, MANIFEST)
    settings = ModelsSettings()
    reports = []
    for target in (spec, duck):
        refresh(target, settings)
        rows = cost_report(target, settings, by=["provider", "model"]).table.rows()
        # sums in another order differ in the last bits of a float, never in a cent
        reports.append([tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows])
    assert reports[0] == reports[1]
    assert sum(row[2] for row in reports[0]) == 200  # requests
    focus = [
        pl.read_parquet(out)
        for target, out in ((spec, tmp_path / "a.parquet"), (duck, tmp_path / "b.parquet"))
        if export_focus(target, settings, out) > 0
    ]
    assert len(focus) == 2
    assert focus[0].height == focus[1].height
    assert round(focus[0]["BilledCost"].sum(), 9) == round(focus[1]["BilledCost"].sum(), 9)


def test_aigw_sql_and_a_report_succeed_while_an_ingest_is_committing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second chunk's commit is held open; meanwhile `aigw sql` (another process) and
    a dashboard's report read the first chunk's rows, without waiting or failing."""
    spec = lake_spec(tmp_path)
    config = lake_config(tmp_path)
    inside, release = threading.Event(), threading.Event()
    commits = {"requests": 0}
    original = Lake.commit

    def held_commit(self: Lake, name: str, change: Any) -> Any:
        if name == "requests":
            commits["requests"] += 1
            if commits["requests"] == 2:
                inside.set()
                assert release.wait(120)
        return original(self, name, change)

    monkeypatch.setattr(Lake, "commit", held_commit)
    settings = IngestSettings(
        source=str(SAMPLES),
        db_path=dataclasses.replace(spec, engine=EngineSpec(batch_objects=4)),
        quality="off",
    )
    loader = threading.Thread(target=run_ingest, args=(settings,))
    loader.start()
    try:
        assert inside.wait(120)
        sql = run_aigw(
            "sql", "--config", str(config), "SELECT count(*) AS n FROM requests", "--format", "csv"
        )
        assert sql.returncode == 0, sql.stderr
        first_chunk = int(sql.stdout.splitlines()[1])
        assert 0 < first_chunk < 960
        report = cost_report(spec, ModelsSettings(), by=[])
        assert (report.table.is_empty(), report.stale) == (True, True)  # rollups come after
    finally:
        release.set()
        loader.join(120)
    assert read_all(spec, "SELECT count(*) FROM requests") == [(960,)]


def test_a_requests_table_made_before_v7_gains_the_new_columns(tmp_path: Path) -> None:
    """An Iceberg ``requests`` table created without the v7 columns (as before them) gets
    them at the next ingest, which then stores a REST record's custom_cost."""
    from core.lake.tables import FACT_SCHEMAS  # noqa: PLC0415 - the lake extra

    spec = lake_spec(tmp_path)
    full = FACT_SCHEMAS["requests"]
    added = ["custom_cost", "model_type", "request_type", "request_content_type"]
    added += ["response_content_type", "duplicate_keys"]
    with Lake(spec) as lake:
        old = lake.create("requests", pa.schema([f for f in full if f.name not in added]))
        assert not set(added) & {field.name for field in old.schema().fields}
    rest = {"id": "new", "created_at": "2026-04-18T00:00:00Z", "model": "m", "custom_cost": True}
    write_ndjson(tmp_path / "b" / "b.log.gz", [rest])
    assert _ingest(str(tmp_path / "b"), spec).rows_loaded == 1
    assert read_all(spec, "SELECT log_id, custom_cost FROM requests") == [("new", True)]


def test_a_requests_table_made_before_v9_gains_the_1h_cache_write_count(tmp_path: Path) -> None:
    """An Iceberg ``requests`` table without ``cache_write_1h_tokens`` gets it at the next
    ingest: a row without a 1-hour count reads NULL (all 5-minute writes), the other its
    1,250."""
    from core.lake.tables import FACT_SCHEMAS  # noqa: PLC0415 - the lake extra

    spec = lake_spec(tmp_path)
    full = FACT_SCHEMAS["requests"]
    with Lake(spec) as lake:
        old = lake.create(
            "requests", pa.schema([f for f in full if f.name != "cache_write_1h_tokens"])
        )
        assert "cache_write_1h_tokens" not in {field.name for field in old.schema().fields}
    before = logpush_record(LogId="old", Metrics={"tokensIn": 3000, "cacheWriteTokens": 2000})
    write_ndjson(tmp_path / "a" / "a.log.gz", [before])
    assert _ingest(str(tmp_path / "a"), spec).rows_loaded == 1
    metrics = {"tokensIn": 3000, "cacheWriteTokens": 2250, "cacheWrite1hTokens": 1250}
    write_ndjson(tmp_path / "b" / "b.log.gz", [logpush_record(LogId="new", Metrics=metrics)])
    assert _ingest(str(tmp_path / "b"), spec).rows_loaded == 1
    query = "SELECT log_id, cache_write_tokens, cache_write_1h_tokens FROM requests ORDER BY 1"
    assert read_all(spec, query) == [("new", 2250, 1250), ("old", 2000, None)]


def test_a_requests_table_made_before_the_prompt_prefix_columns_gains_them(
    tmp_path: Path,
) -> None:
    """An Iceberg ``requests`` table without ``prompt_prefix_hash`` and
    ``prompt_prefix_tokens`` gets them at the next ingest, which stores a gateway record's
    ``PromptPrefixHash`` and ``PromptPrefixTokens``."""
    from core.lake.tables import FACT_SCHEMAS  # noqa: PLC0415 - the lake extra

    spec = lake_spec(tmp_path)
    added = ["prompt_prefix_hash", "prompt_prefix_tokens"]
    with Lake(spec) as lake:
        lake.create(
            "requests", pa.schema([f for f in FACT_SCHEMAS["requests"] if f.name not in added])
        )
    gateway = logpush_record(LogId="g1", PromptPrefixHash="5e1d", PromptPrefixTokens=5000)
    write_ndjson(tmp_path / "b" / "b.log.gz", [gateway])
    assert _ingest(str(tmp_path / "b"), spec).rows_loaded == 1
    query = "SELECT log_id, prompt_prefix_hash, prompt_prefix_tokens FROM requests"
    assert read_all(spec, query) == [("g1", "5e1d", 5000)]


def test_readers_copy_the_manifest_only_when_asked(tmp_path: Path) -> None:
    """A report opens the lake without copying the object manifest (a row per object,
    slow to copy at scale); the data-health page (``load_manifest``) and ``aigw sql``
    (which shows every table) see all of it."""
    spec = lake_spec(tmp_path)
    _ingest(str(SAMPLES), spec)
    count = "SELECT count(*) FROM ingest_files"
    with open_warehouse(spec, read_only=True) as warehouse:
        assert warehouse.con.execute(count).fetchall() == [(0,)]
        warehouse.load_manifest()
        assert warehouse.con.execute(count).fetchall() == [(9,)]
    (tmp_path / "cli").mkdir()
    config = lake_config(tmp_path / "cli")
    run_aigw("ingest", str(SAMPLES), "--quality", "off", env={"AIGW_CONFIG": str(config)})
    shown = run_aigw("sql", count, env={"AIGW_CONFIG": str(config)})
    assert shown.returncode == 0, shown.stderr
    assert "9" in shown.stdout.split()


def test_a_reader_opening_again_in_the_same_process_sees_new_commits(tmp_path: Path) -> None:
    """Readers keep each table snapshot's planned files for the process's next opens
    (keyed by the table's metadata file, which a commit replaces): a new commit is seen
    at the next open, and a table no commit changed is read from the kept plan."""
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    write_ndjson(logs / "20260418" / "a.log.gz", [logpush_record(), "{not json"])
    _ingest(str(logs), spec)
    assert read_all(spec, "SELECT count(*) FROM requests") == [(1,)]
    assert read_all(spec, "SELECT count(*) FROM rejects") == [(1,)]
    with Lake(spec) as lake:
        first, rejects = (lake.table(name).metadata_location for name in ("requests", "rejects"))
    assert {first, rejects} <= {location for location, _ in lake_reader._SNAPSHOTS}
    write_ndjson(
        logs / "20260418" / "b.log.gz", [logpush_record(Timestamp=1_776_470_500_000_000_000)]
    )
    _ingest(str(logs), spec)
    assert read_all(spec, "SELECT count(*) FROM requests") == [(2,)]
    assert read_all(spec, "SELECT count(*) FROM rejects") == [(1,)]
    with Lake(spec) as lake:
        second, still = (lake.table(name).metadata_location for name in ("requests", "rejects"))
    assert second != first
    assert still == rejects
    assert second in {location for location, _ in lake_reader._SNAPSHOTS}


def test_a_reader_knows_the_newest_load_time_from_the_files_statistics(tmp_path: Path) -> None:
    """Whether the rollups are stale compares the newest ``ingested_at`` with the refresh's
    watermark: a lake reader takes it from the data files' upper bounds, and it equals
    the column's maximum after each of two loads (two files, the newer in the second)."""
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    newest = []
    for name, ts in (("a", 1_776_470_400_000_000_000), ("b", 1_776_470_500_000_000_000)):
        write_ndjson(logs / "20260418" / f"{name}.log.gz", [logpush_record(Timestamp=ts)])
        _ingest(str(logs), spec)
        with open_warehouse(spec, read_only=True) as warehouse:
            con = warehouse.con
            known = con.execute("SELECT getvariable('aigw_newest_ingest')").fetchone()
            scanned = con.execute("SELECT max(ingested_at) FROM requests").fetchone()
            assert known is not None and scanned is not None
            assert known[0] == scanned[0] == newest_ingest(con)
            newest.append(known[0])
    assert newest[0] < newest[1]


def test_a_warehouse_folder_with_a_space_holds_its_own_files(tmp_path: Path) -> None:
    """The data and metadata files go under the folder as written (PyIceberg does not
    decode a URI's path: a percent-encoded location put them under ``my%20lake``)."""
    root = tmp_path / "my lake"
    root.mkdir()
    spec = lake_spec(root)
    with Lake(spec) as lake:
        assert ingest_lake(open_source(str(SAMPLES)), lake).rows_loaded == 960
    assert not (tmp_path / "my%20lake").exists()
    assert len(list((root / "lake").rglob("*.parquet"))) > 0
    assert read_all(spec, "SELECT count(*) FROM requests") == [(960,)]
