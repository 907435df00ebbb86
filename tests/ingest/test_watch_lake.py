"""Watch mode into an Iceberg warehouse (moto's S3 as the source): each batch commits,
its quality check reads the rows it committed, and a reader opened while the watcher
runs reads without waiting (the DuckDB file would refuse it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import IngestSettings, WatchSettings
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
