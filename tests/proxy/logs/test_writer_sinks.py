"""The Logpush writer's sinks: folders that refuse keys or cannot be written (the spool),
and moto's real S3 API server on 127.0.0.1 spoken to over HTTP by boto3, with the real
ingester reading back what was uploaded."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from ingest import IngestSettings, run_ingest
from proxy.errors import GatewayConfigError, LogSinkError
from proxy.logs import LocalFolderSink, LogWriter, S3Sink, WriterStats, open_sink
from tests.proxy.logs.conftest import _SECRET, _record, _settings, _wait_for
from tests.proxy.logs.readback import _files, _lines, _user_numbers, _written

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
