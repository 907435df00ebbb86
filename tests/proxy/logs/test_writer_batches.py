"""The gateway's Logpush writer into real folders: file names, where batches are cut, flush
and close, many threads, and the real ingester reading back what was written."""

from __future__ import annotations

import gzip
import re
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from ingest import IngestSettings, run_ingest
from ingest.sources import is_log_object
from proxy.errors import ProxyError
from proxy.logs import LocalFolderSink, LogWriter, WriterStats, batch_key
from tests.conftest import logpush_record
from tests.proxy.logs.conftest import _BASE_NS, _record, _settings, _wait_for
from tests.proxy.logs.readback import _files, _lines, _user_numbers, _written

_NAME = re.compile(r"^(\d{8})T\d{6}Z_\d{8}T\d{6}Z_[0-9a-f]{8}\.log\.gz$")


# -- naming and batching ---------------------------------------------------------


def test_batch_key_uses_the_start_date_folder_and_compact_utc_times() -> None:
    """Keys are Logpush's: prefix/{start date}/{start}_{end}_{token}.log.gz, in UTC."""
    first = _BASE_NS - 10 * 1_000_000_000 + 999_999_999  # 2026-04-17T23:59:50.999Z
    last = _BASE_NS + 130 * 1_000_000_000  # 2026-04-18T00:02:10Z
    expected = "logs/gw/20260417/20260417T235950Z_20260418T000210Z_0a1b2c3d.log.gz"
    assert batch_key("/logs/gw/", first, last, "0a1b2c3d") == expected
    assert batch_key("", _BASE_NS, _BASE_NS, "ffffffff") == (
        "20260418/20260418T000000Z_20260418T000000Z_ffffffff.log.gz"
    )


def test_written_files_are_named_from_the_earliest_and_latest_record_times(
    tmp_path: Path,
) -> None:
    """The name spans the batch's record times (out of order too); the token is 8 hex."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path, prefix="gw"))
    for n in (5, 0, 130, 7):
        writer.submit(_record(n))
    writer.close()

    (path,) = _files(out)
    assert path.parent == out / "gw" / "20260418"
    assert path.name.startswith("20260418T000000Z_20260418T000210Z_")
    assert _NAME.match(path.name)
    assert _written(out) == [[5, 0, 130, 7]]


def test_records_without_a_timestamp_are_named_by_the_wall_clock(tmp_path: Path) -> None:
    """No Timestamp field: the file's start and end are the submit times (UTC)."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path))
    before = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    record = logpush_record()
    del record["Timestamp"]
    writer.submit(record)
    after = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    writer.close()

    (path,) = _files(out)
    start, end, _ = path.name.split("_")
    assert before <= start <= end <= after
    assert path.parent.name == start[:8]


def test_a_batch_is_cut_at_max_records(tmp_path: Path) -> None:
    """max_records=3 and 7 records: files of 3, 3 and 1 record, in submit order."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path, max_records=3))
    for n in range(7):
        writer.submit(_record(n))
    writer.close()

    assert _written(out) == [[0, 1, 2], [3, 4, 5], [6]]
    assert writer.stats == WriterStats(
        records_submitted=7, records_written=7, files_written=3, spooled_pending=0
    )


@pytest.mark.parametrize(
    ("extra", "per_file"),
    [(0, 3), (1, 3), (-1, 2)],
    ids=["exactly-3-lines", "3-lines-and-a-byte", "a-byte-short-of-3-lines"],
)
def test_a_batch_is_cut_before_it_passes_max_bytes_of_ndjson(
    tmp_path: Path, extra: int, per_file: int
) -> None:
    """A file's uncompressed NDJSON never exceeds max_bytes; it is cut as soon as it is full."""
    size = len(orjson.dumps(_record(0))) + 1  # every record's line has this length
    out = tmp_path / "out"
    settings = _settings(tmp_path, max_bytes=3 * size + extra)
    writer = LogWriter(LocalFolderSink(out), settings)
    for n in range(7):
        writer.submit(_record(n))
    writer.close()

    counts = [len(numbers) for numbers in _written(out)]
    assert counts == [per_file] * (7 // per_file) + ([7 % per_file] if 7 % per_file else [])
    assert all(len(gzip.decompress(p.read_bytes())) <= settings.max_bytes for p in _files(out))


def test_a_record_larger_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    """An oversized record is still written (alone), never dropped."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path, max_bytes=100))
    for n in range(3):
        writer.submit(_record(n))
    writer.close()

    assert _written(out) == [[0], [1], [2]]


def test_a_batch_is_cut_when_its_first_record_is_max_interval_old(tmp_path: Path) -> None:
    """With no flush and far-off size limits, the thread writes the batch once its interval
    ends, then the next batch after its own interval."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path, max_interval_s=0.2))
    writer.start()
    try:
        writer.submit(_record(0))
        writer.submit(_record(1))
        _wait_for(lambda: writer.stats.files_written == 1)
        assert _written(out) == [[0, 1]]
        writer.submit(_record(2))
        _wait_for(lambda: writer.stats.files_written == 2)
        assert sorted(_written(out)) == [[0, 1], [2]]
    finally:
        writer.close()


def test_values_json_lacks_are_written_as_text_and_unencodable_records_are_counted(
    tmp_path: Path,
) -> None:
    """A Decimal is written as its text; a record JSON cannot hold (an integer past 64 bits)
    is left out and counted, and the records around it are written."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path))
    writer.submit(_record(0) | {"Metrics": {"cost": Decimal("0.0042")}})
    writer.submit(_record(1) | {"Metrics": {"tokensIn": 2**70}})
    writer.submit(_record(2))
    writer.close()

    (path,) = _files(out)
    records = _lines(path.read_bytes())
    assert _user_numbers(records) == [0, 2]
    assert records[0]["Metrics"] == {"cost": "0.0042"}
    assert writer.stats == WriterStats(
        records_submitted=3, records_rejected=1, records_written=2, files_written=1
    )


# -- flush, close, threads -------------------------------------------------------


def test_close_writes_the_partial_batch_and_then_refuses_records(tmp_path: Path) -> None:
    """close() flushes what is buffered; a second close is harmless; submit then raises."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path))
    writer.start()
    for n in range(5):
        writer.submit(_record(n))
    writer.close()
    writer.close()

    assert _written(out) == [[0, 1, 2, 3, 4]]
    assert writer.stats.records_written == 5
    with pytest.raises(ProxyError, match="closed"):
        writer.submit(_record(5))


def test_flush_writes_what_is_buffered_with_or_without_the_thread(tmp_path: Path) -> None:
    """flush() returns once the buffered records are in the sink, before start() too."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path))
    writer.submit(_record(0))
    writer.flush()
    assert _written(out) == [[0]]
    writer.start()
    writer.submit(_record(1))
    writer.submit(_record(2))
    writer.flush()
    assert sorted(_written(out)) == [[0], [1, 2]]
    writer.close()
    assert writer.stats.files_written == 2


def test_records_from_many_threads_are_all_written_exactly_once(tmp_path: Path) -> None:
    """8 threads submit 2,500 records each while the writer runs: 20 files of 1,000, every
    record once."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path, max_records=1000))
    writer.start()

    def submit_range(first: int) -> None:
        for n in range(first, first + 2500):
            writer.submit(_record(n))

    threads = [threading.Thread(target=submit_range, args=(t * 2500,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()

    per_file = _written(out)
    assert [len(numbers) for numbers in per_file] == [1000] * 20
    assert sorted(n for numbers in per_file for n in numbers) == list(range(20_000))
    assert writer.stats == WriterStats(
        records_submitted=20_000, records_written=20_000, files_written=20
    )


# -- the ingester reads what the writer wrote ------------------------------------


def test_the_ingester_loads_every_written_record_and_ignores_temporaries(
    tmp_path: Path, db_path: Path
) -> None:
    """250 records in files of 100: the ingester loads 3 objects and 250 rows; a temporary
    left by a crash mid-write is skipped, not loaded."""
    out = tmp_path / "out"
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path, prefix="gw", max_records=100))
    writer.start()
    for n in range(250):
        writer.submit(_record(n))
    writer.close()
    day = out / "gw" / "20260418"
    (day / ".20260418T000000Z_20260418T000001Z_00000000.log.gz.tmp").write_bytes(b"\x1f\x8b")

    summary = run_ingest(IngestSettings(source=str(out), db_path=db_path))

    assert (summary.objects_seen, summary.loaded, summary.skipped, summary.failed) == (4, 3, 1, 0)
    assert (summary.records, summary.rows_loaded, summary.duplicates) == (250, 250, 0)
    assert not is_log_object(".20260418T000000Z_20260418T000001Z_00000000.log.gz.tmp")
