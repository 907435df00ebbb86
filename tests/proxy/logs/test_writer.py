"""The gateway's Logpush writer: real folders, moto's real S3 API server on 127.0.0.1 spoken
to over HTTP by boto3, and the real ingester reading back what was written."""

from __future__ import annotations

import gzip
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from ingest import IngestSettings, run_ingest
from ingest.sources import is_log_object
from proxy.errors import GatewayConfigError, LogSinkError, ProxyError
from proxy.logs import (
    LocalFolderSink,
    LogWriter,
    S3Sink,
    WriterSettings,
    WriterStats,
    batch_key,
    open_sink,
)
from tests.conftest import logpush_record

_BASE_NS = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z in unixnano
_SECRET = "wJalrXUtnFEMI-not-a-real-secret-7f3a"  # noqa: S105 - fake; must never show in an error
_NAME = re.compile(r"^(\d{8})T\d{6}Z_\d{8}T\d{6}Z_[0-9a-f]{8}\.log\.gz$")


def _record(n: int) -> dict[str, Any]:
    """The ``n``-th distinct record: its own second and user (the same length for n < 10^5)."""
    return logpush_record(
        Timestamp=_BASE_NS + n * 1_000_000_000,
        Metadata={"team": "search", "user": f"user-{n:05d}"},
    )


def _settings(tmp_path: Path, **overrides: Any) -> WriterSettings:
    """Settings with a spool under ``tmp_path`` and no waiting between attempts."""
    fields: dict[str, Any] = {
        "spool_dir": tmp_path / "spool",
        "upload_attempts": 2,
        "retry_backoff_s": (0.0,),
    }
    fields.update(overrides)
    return WriterSettings(**fields)


def _files(root: Path) -> list[Path]:
    """Every file under ``root`` (hidden temporaries included), sorted."""
    return sorted(path for path in root.rglob("*") if path.is_file())


def _lines(data: bytes) -> list[dict[str, Any]]:
    """The records of one gzip NDJSON object."""
    return [orjson.loads(line) for line in gzip.decompress(data).splitlines()]


def _user_numbers(records: list[dict[str, Any]]) -> list[int]:
    return [int(record["Metadata"]["user"].removeprefix("user-")) for record in records]


def _written(root: Path) -> list[list[int]]:
    """Per file under ``root`` in key order, the numbers of the records it holds."""
    return [_user_numbers(_lines(path.read_bytes())) for path in _files(root)]


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


def _wait_for(condition: Any, limit_s: float = 20.0) -> None:
    """Poll ``condition`` until it holds (a generous limit: this machine is shared)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "the writer did not get there"
        time.sleep(0.01)


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


# -- sinks -----------------------------------------------------------------------


def test_open_sink_picks_the_sink_from_the_destination(tmp_path: Path) -> None:
    """s3:// gives an S3 sink, a path a folder sink; other schemes are refused in one line."""
    s3 = open_sink("s3://bucket/logs/gw/", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Sink)
    assert s3.describe() == "s3://bucket/logs/gw"
    folder = open_sink(str(tmp_path / "logs"))
    assert isinstance(folder, LocalFolderSink)
    assert folder.describe() == str(tmp_path / "logs")
    with pytest.raises(GatewayConfigError, match=r"^unsupported log destination 'gs://b/p'"):
        open_sink("gs://b/p")


def test_a_folder_sink_refuses_keys_that_leave_its_folder(tmp_path: Path) -> None:
    """Keys are relative names inside the folder."""
    sink = LocalFolderSink(tmp_path / "out")
    for key in ("../escape.log.gz", "/etc/x.log.gz"):
        with pytest.raises(LogSinkError, match="keys are relative"):
            sink.put(key, b"x")
    assert not (tmp_path / "escape.log.gz").exists()


def test_a_folder_that_cannot_be_written_spools_and_a_new_writer_sends_it(
    tmp_path: Path,
) -> None:
    """The sink's folder is a file: the batch is spooled with its exact records; a writer
    started later with a working folder sends it and empties the spool."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    first = LogWriter(LocalFolderSink(blocked), _settings(tmp_path, prefix="gw"))
    first.start()
    for n in range(4):
        first.submit(_record(n))
    first.close()

    assert first.stats == WriterStats(
        records_submitted=4, files_spooled=1, upload_failures=2, spooled_pending=1
    )
    (spooled,) = _files(tmp_path / "spool")
    key = spooled.relative_to(tmp_path / "spool").as_posix()
    assert key.startswith("gw/20260418/20260418T000000Z_20260418T000003Z_")
    assert _user_numbers(_lines(spooled.read_bytes())) == [0, 1, 2, 3]

    out = tmp_path / "out"
    second = LogWriter(LocalFolderSink(out), _settings(tmp_path, prefix="gw"))
    second.start()
    second.flush()
    second.close()

    assert _files(out) == [out / key]
    assert _written(out) == [[0, 1, 2, 3]]
    assert _files(tmp_path / "spool") == []
    assert second.stats == WriterStats(files_written=1)


def test_the_thread_retries_the_spool_every_interval_until_the_folder_works(
    tmp_path: Path,
) -> None:
    """Without any flush: the batch is spooled when the folder is blocked, then sent by the
    thread's own retry once the folder can be written."""
    out = tmp_path / "out"
    out.write_text("in the way")
    writer = LogWriter(LocalFolderSink(out), _settings(tmp_path, max_interval_s=0.2))
    writer.start()
    try:
        writer.submit(_record(0))
        _wait_for(lambda: writer.stats.spooled_pending == 1)
        out.unlink()
        _wait_for(lambda: writer.stats.spooled_pending == 0)
        assert _written(out) == [[0]]
        assert _files(tmp_path / "spool") == []
        stats = writer.stats
        assert (stats.records_written, stats.files_written, stats.files_spooled) == (1, 1, 1)
    finally:
        writer.close()


def test_close_spools_at_once_rather_than_wait_past_its_timeout(tmp_path: Path) -> None:
    """A backoff longer than close's timeout is not waited out: the batch is spooled."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    settings = _settings(tmp_path, upload_attempts=3, retry_backoff_s=(3600.0,))
    writer = LogWriter(LocalFolderSink(blocked), settings)
    writer.start()
    writer.submit(_record(0))
    writer.close(timeout_s=5.0)

    assert writer.stats == WriterStats(
        records_submitted=1, files_spooled=1, upload_failures=1, spooled_pending=1
    )
    (spooled,) = _files(tmp_path / "spool")
    assert _user_numbers(_lines(spooled.read_bytes())) == [0]


# -- S3 through moto's server ----------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 API server on 127.0.0.1, an ephemeral port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials (the ingester's own client reads them) and none of the developer's."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", _SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _client(endpoint: str) -> Any:
    """A boto3 client for ``endpoint`` that tries each call once (the writer retries)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key=_SECRET,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def _objects(client: Any, bucket: str) -> dict[str, bytes]:
    """Every object of ``bucket``: key -> bytes."""
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listing
    }


def test_batches_upload_to_s3_under_both_prefixes_and_ingest_exactly(
    s3_endpoint: str, tmp_path: Path, db_path: Path
) -> None:
    """s3://bucket/tenant with prefix gw: objects at tenant/gw/20260418/…; the ingester
    loads all 150 records from them."""
    client = _client(s3_endpoint)
    bucket = f"aigw-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    sink = S3Sink(f"s3://{bucket}/tenant", client=client)
    writer = LogWriter(sink, _settings(tmp_path, prefix="gw", max_records=100))
    writer.start()
    for n in range(150):
        writer.submit(_record(n))
    writer.close()

    objects = _objects(client, bucket)
    assert [key.rsplit("_", 1)[0] for key in sorted(objects)] == [
        "tenant/gw/20260418/20260418T000000Z_20260418T000139Z",
        "tenant/gw/20260418/20260418T000140Z_20260418T000229Z",
    ]
    assert [_user_numbers(_lines(objects[key])) for key in sorted(objects)] == [
        list(range(100)),
        list(range(100, 150)),
    ]
    summary = run_ingest(
        IngestSettings(source=f"s3://{bucket}/tenant", db_path=db_path, endpoint_url=s3_endpoint)
    )
    assert (summary.loaded, summary.records, summary.rows_loaded) == (2, 150, 150)


def test_an_s3_failure_spools_and_the_spool_drains_when_the_bucket_appears(
    s3_endpoint: str, tmp_path: Path, db_path: Path
) -> None:
    """No bucket: the batch goes to the spool with its exact records; once the bucket exists
    the next flush uploads it under the same key, and nothing is lost or doubled."""
    client = _client(s3_endpoint)
    bucket = f"aigw-{uuid.uuid4().hex[:16]}"
    writer = LogWriter(S3Sink(f"s3://{bucket}/logs", client=client), _settings(tmp_path))
    writer.start()
    for n in range(5):
        writer.submit(_record(n))
    writer.flush()

    assert writer.stats == WriterStats(
        records_submitted=5, files_spooled=1, upload_failures=2, spooled_pending=1
    )
    (spooled,) = _files(tmp_path / "spool")
    spooled_bytes = spooled.read_bytes()
    assert _user_numbers(_lines(spooled_bytes)) == [0, 1, 2, 3, 4]

    client.create_bucket(Bucket=bucket)
    writer.submit(_record(5))
    writer.flush()
    writer.submit(_record(6))
    writer.close()

    assert _files(tmp_path / "spool") == []
    objects = _objects(client, bucket)
    spooled_key = "logs/" + spooled.relative_to(tmp_path / "spool").as_posix()
    assert objects[spooled_key] == spooled_bytes
    assert sorted(n for data in objects.values() for n in _user_numbers(_lines(data))) == list(
        range(7)
    )
    assert writer.stats == WriterStats(
        records_submitted=7,
        records_written=7,
        files_written=3,
        files_spooled=1,
        upload_failures=2,
        spooled_pending=0,
    )
    summary = run_ingest(
        IngestSettings(source=f"s3://{bucket}/logs", db_path=db_path, endpoint_url=s3_endpoint)
    )
    assert (summary.loaded, summary.rows_loaded, summary.duplicates) == (3, 7, 0)


def test_open_sink_uploads_through_boto3s_own_client(s3_endpoint: str) -> None:
    """The sink open_sink makes (credentials from the environment) stores the exact bytes."""
    client = _client(s3_endpoint)
    bucket = f"aigw-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)

    open_sink(f"s3://{bucket}/gw", endpoint_url=s3_endpoint).put("20260418/a.log.gz", b"abc")

    assert _objects(client, bucket) == {"gw/20260418/a.log.gz": b"abc"}


def test_an_unreachable_endpoint_is_one_line_without_the_secret(tmp_path: Path) -> None:
    """Nothing listens: LogSinkError names the object and the reason, never the credentials."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = S3Sink("s3://bucket/logs", client=_client(f"http://127.0.0.1:{port}"))

    with pytest.raises(LogSinkError) as caught:
        sink.put("20260418/a.log.gz", b"x")

    message = str(caught.value)
    assert message == (
        "upload of s3://bucket/logs/20260418/a.log.gz failed (EndpointConnectionError)"
    )
    assert _SECRET not in message + str(caught.value.detail)
