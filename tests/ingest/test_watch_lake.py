"""Watch mode into an Iceberg warehouse (moto's S3 as the source): each batch commits,
its quality check reads the rows it committed, and a reader opened while the watcher
runs reads without waiting (the DuckDB file would refuse it)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
import ray

from core.lake import EngineSpec
from ingest import IngestSettings, IngestSummary, WatchSettings, watch
from tests.conftest import logpush_record, write_ndjson
from tests.ingest.conftest import Bucket
from tests.ingest.test_watch import _gz, _key, _records, _start
from tests.lake_fixtures import lake_spec, read_all

pytestmark = pytest.mark.usefixtures("aws_env")


def test_watch_commits_each_batch_and_readers_read_while_it_runs(
    bucket: Bucket, tmp_path: Path
) -> None:
    spec = lake_spec(tmp_path)
    settings = IngestSettings(
        source=f"s3://{bucket.name}/logs", db_path=spec, endpoint_url=bucket.endpoint
    )
    bucket.put(_key("20260418", 10), _gz(_records(0, 2)))
    watcher = _start(settings, WatchSettings(interval=0.2))
    watcher.wait_until(lambda: len(watcher.batches) == 1, "the backlog batch")
    # the watcher holds no lock: a reader opens while it runs
    assert read_all(spec, "SELECT count(*) FROM requests") == [(2,)]

    bucket.put(_key("20260418", 20), _gz([*_records(1, 1), *_records(2, 3)]))  # one repeat
    watcher.wait_until(lambda: len(watcher.batches) == 2, "the second object")
    watcher.finish()

    assert [(b.loaded, b.rows_loaded, b.duplicates) for b in watcher.batches] == [
        (1, 2, 0),
        (1, 3, 1),
    ]
    assert [b.quality.rows_checked for b in watcher.batches if b.quality] == [2, 3]
    assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [(5, 5)]
    assert read_all(spec, "SELECT count(*), sum(rows_checked) FROM quality_runs WHERE success") == [
        (2, 5)
    ]


def test_watch_on_ray_keeps_one_ray_session_for_every_batch(tmp_path: Path) -> None:
    """With ``[engine] kind = "ray"`` the watcher starts Ray once: it is still running
    when each batch is reported (a batch no longer starts and stops its own, 7-9 s
    each), and stopped when the watch returns, as it was not running before."""
    assert not ray.is_initialized()
    logs = tmp_path / "logs"
    spec = dataclasses.replace(lake_spec(tmp_path), engine=EngineSpec(kind="ray", num_cpus=1))
    write_ndjson(logs / "20260418" / "a.log.gz", [logpush_record(Timestamp=1_776_470_400 * 10**9)])
    stop = threading.Event()
    running: list[tuple[int, bool]] = []

    def on_batch(summary: IngestSummary) -> None:
        running.append((summary.rows_loaded, ray.is_initialized()))
        if len(running) == 1:
            write_ndjson(
                logs / "20260418" / "b.log.gz",
                [
                    logpush_record(Timestamp=1_776_470_500 * 10**9),
                    logpush_record(Timestamp=1_776_470_600 * 10**9),
                ],
            )
        else:
            stop.set()

    settings = IngestSettings(source=str(logs), db_path=spec, quality="off")
    watch(settings, WatchSettings(interval=0.2), stop=stop, on_batch=on_batch)

    assert running == [(1, True), (2, True)]
    assert not ray.is_initialized()
    assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [(3, 3)]
