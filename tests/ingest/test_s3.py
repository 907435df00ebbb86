"""Ingest from an S3-compatible bucket: moto's real S3 API server on 127.0.0.1, spoken
to over HTTP by boto3; real DuckDB files; the real ``aigw`` command in a subprocess."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest import IngestSettings, IngestSummary, run_ingest
from tests.conftest import logpush_record, run_aigw
from tests.ingest.conftest import CREDENTIALS, Bucket, S3Server

pytestmark = pytest.mark.usefixtures("aws_env")

Query = Callable[..., list[tuple[Any, ...]]]

_BASE_NS = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z in unixnano


def _record(n: int, **overrides: Any) -> dict[str, Any]:
    """The ``n``-th distinct Logpush record (its own second and user)."""
    fields: dict[str, Any] = {
        "Timestamp": _BASE_NS + n * 1_000_000_000,
        "Metadata": {"team": "search", "user": f"user-{n:05d}"},
    }
    fields.update(overrides)
    return logpush_record(**fields)


def _gz(lines: Iterable[dict[str, Any] | bytes]) -> bytes:
    """Gzipped NDJSON: dicts JSON-encoded, bytes written as they are, one per line."""
    encoded = [orjson.dumps(line) if isinstance(line, dict) else line for line in lines]
    return gzip.compress(b"\n".join(encoded) + b"\n", mtime=0)


def _logpush_key(prefix: str, n: int) -> str:
    """A key laid out the way Logpush writes objects: ``prefix/YYYYMMDD/start_end_rand.log.gz``."""
    start, end = divmod(n * 30, 3600), divmod(n * 30 + 30, 3600)
    first = f"20260418T{start[0]:02d}{start[1] // 60:02d}{start[1] % 60:02d}Z"
    last = f"20260418T{end[0]:02d}{end[1] // 60:02d}{end[1] % 60:02d}Z"
    return f"{prefix}/20260418/{first}_{last}_{n:08x}.log.gz"


def _ingest(uri: str, db_path: Path, endpoint: str) -> IngestSummary:
    return run_ingest(IngestSettings(source=uri, db_path=db_path, endpoint_url=endpoint))


def _counts(summary: IngestSummary) -> tuple[int, ...]:
    """(seen, loaded, unchanged, skipped, failed, records, rows, duplicates, rejected)."""
    return (
        summary.objects_seen,
        summary.loaded,
        summary.unchanged,
        summary.skipped,
        summary.failed,
        summary.records,
        summary.rows_loaded,
        summary.duplicates,
        summary.rejected,
    )


def _free_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_logpush_layout_under_a_prefix_loads_and_skips_the_challenge_file(
    bucket: Bucket, db_path: Path, query: Query
) -> None:
    """s3://bucket/prefix: its log objects load (ETag kept), the challenge file is skipped,
    keys outside the prefix are not seen, and rows point at s3://bucket/key."""
    sizes = {_logpush_key("logs", 0): 2, _logpush_key("logs", 1): 3, _logpush_key("logs", 2): 4}
    etags: dict[str, str] = {}
    n = 0
    for key, count in sizes.items():
        etags[key] = bucket.put(key, _gz(_record(n + i) for i in range(count)))
        n += count
    challenge = "logs/ownership-challenge.txt"
    etags[challenge] = bucket.put(challenge, b"8f7e6d5c4b3a2910\n")
    bucket.put(_logpush_key("elsewhere", 0), _gz([_record(100)]))

    summary = _ingest(f"s3://{bucket.name}/logs", db_path, bucket.endpoint)

    assert _counts(summary) == (4, 3, 0, 1, 0, 9, 9, 0, 0)
    assert query("SELECT count(*) FROM requests") == [(9,)]
    files = query(
        "SELECT object_key, source, status, etag, records, rows_loaded, rows_duplicate, "
        "rows_rejected, error, attempts FROM ingest_files ORDER BY object_key"
    )
    source = f"s3://{bucket.name}/logs"
    expected: list[tuple[Any, ...]] = [
        (bucket.uri(key), source, "loaded", etags[key], count, count, 0, 0, None, 1)
        for key, count in sizes.items()
    ]
    skipped = (bucket.uri(challenge), source, "skipped", etags[challenge], 0, 0, 0, 0)
    expected.append((*skipped, "not a log file", 1))
    assert files == sorted(expected)
    for key, etag in etags.items():
        assert etag == bucket.etag(key)
    assert query("SELECT source_file, count(*) FROM requests GROUP BY 1 ORDER BY 1") == [
        (bucket.uri(key), count) for key, count in sorted(sizes.items())
    ]
    assert query("SELECT min(source_line), max(source_line) FROM requests") == [(1, 4)]


def test_the_prefix_is_a_folder_not_a_string_prefix(
    bucket: Bucket, db_path: Path, query: Query
) -> None:
    """s3://bucket/logs reads logs/… only, not logs-archive/…; a trailing slash changes nothing."""
    bucket.put(_logpush_key("logs", 0), _gz([_record(0)]))
    bucket.put(_logpush_key("logs-archive", 0), _gz([_record(1)]))
    first = _ingest(f"s3://{bucket.name}/logs", db_path, bucket.endpoint)
    again = _ingest(f"s3://{bucket.name}/logs/", db_path, bucket.endpoint)
    assert (first.objects_seen, first.loaded) == (1, 1)
    assert (again.objects_seen, again.unchanged, again.loaded) == (1, 1, 0)
    assert query("SELECT source_file FROM requests") == [(bucket.uri(_logpush_key("logs", 0)),)]


def test_more_than_one_listing_page_loads_every_object_once(
    bucket: Bucket, db_path: Path, query: Query
) -> None:
    """1,205 objects (two list_objects_v2 pages) all load: 1,205 objects, 1,205 rows; a
    second run finds all 1,205 unchanged and GETs none of them."""
    keys = [_logpush_key("gw", n) for n in range(1205)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: bucket.put(keys[n], _gz([_record(n)])), range(1205)))
    uri = f"s3://{bucket.name}/gw"

    first = _ingest(uri, db_path, bucket.endpoint)

    assert _counts(first) == (1205, 1205, 0, 0, 0, 1205, 1205, 0, 0)
    assert query("SELECT count(*), count(DISTINCT source_file) FROM requests") == [(1205, 1205)]
    assert query(
        "SELECT status, count(*), sum(records), sum(rows_loaded), max(attempts) "
        "FROM ingest_files GROUP BY status"
    ) == [("loaded", 1205, 1205, 1205, 1)]
    assert query("SELECT max(object_key) FROM ingest_files") == [(bucket.uri(max(keys)),)]
    assert len(bucket.listings()) == 2  # 1,000 keys, then 205 after the continuation token
    assert "continuation-token=" in bucket.listings()[1]
    gets_before = len(bucket.object_gets())
    assert gets_before == 1205

    second = _ingest(uri, db_path, bucket.endpoint)

    assert _counts(second) == (1205, 0, 1205, 0, 0, 0, 0, 0, 0)
    assert len(bucket.listings()) == 4
    assert len(bucket.object_gets()) == gets_before
    assert query("SELECT count(*) FROM requests") == [(1205,)]
    assert query("SELECT count(*), max(attempts) FROM ingest_files") == [(1205, 1)]


def test_rerun_reads_nothing_and_an_overwritten_object_is_read_again_alone(
    bucket: Bucket, db_path: Path, query: Query
) -> None:
    """Second run: 0 rows, 12 unchanged, no GET. Overwriting one object (new ETag) re-reads
    only it: its 5 old records count as duplicates, its 2 new ones load."""
    keys = [_logpush_key("gw", n) for n in range(12)]
    for n, key in enumerate(keys):
        bucket.put(key, _gz(_record(n * 10 + i) for i in range(5)))
    uri = f"s3://{bucket.name}/gw"

    first = _ingest(uri, db_path, bucket.endpoint)
    assert _counts(first) == (12, 12, 0, 0, 0, 60, 60, 0, 0)
    assert len(bucket.object_gets()) == 12

    second = _ingest(uri, db_path, bucket.endpoint)
    assert _counts(second) == (12, 0, 12, 0, 0, 0, 0, 0, 0)
    assert len(bucket.object_gets()) == 12
    assert query("SELECT count(*), max(attempts) FROM ingest_files") == [(12, 1)]
    assert query("SELECT count(*) FROM requests") == [(60,)]

    changed = keys[7]
    old_etag = bucket.etag(changed)
    old_records = [_record(70 + i) for i in range(5)]
    new_etag = bucket.put(changed, _gz([*old_records, _record(500), _record(501)]))
    assert new_etag != old_etag

    third = _ingest(uri, db_path, bucket.endpoint)

    assert _counts(third) == (12, 1, 11, 0, 0, 7, 2, 5, 0)
    assert bucket.object_gets()[12:] == [f"/{bucket.name}/{changed}"]
    assert query("SELECT count(*) FROM requests") == [(62,)]
    assert query(
        "SELECT object_key, etag, records, rows_loaded, rows_duplicate, rows_rejected, attempts "
        "FROM ingest_files WHERE attempts > 1"
    ) == [(bucket.uri(changed), new_etag, 7, 2, 5, 0, 2)]
    assert query(
        "SELECT source_file, count(*) FROM requests WHERE source_file = ? GROUP BY 1",
        [bucket.uri(changed)],
    ) == [(bucket.uri(changed), 7)]


def test_a_record_delivered_in_two_objects_is_stored_once(
    bucket: Bucket, db_path: Path, query: Query
) -> None:
    """At-least-once delivery: a record in two objects is one row; for every object
    loaded + duplicates + rejected == records."""
    shared = _record(3)
    first_key, second_key = _logpush_key("gw", 0), _logpush_key("gw", 1)
    bucket.put(first_key, _gz([_record(1), _record(2), shared]))
    bucket.put(second_key, _gz([shared, _record(4), b"{not json", shared]))

    summary = _ingest(f"s3://{bucket.name}/gw", db_path, bucket.endpoint)

    assert _counts(summary) == (2, 2, 0, 0, 0, 7, 4, 2, 1)
    assert query("SELECT count(*), count(DISTINCT log_id) FROM requests") == [(4, 4)]
    assert query(
        "SELECT source_file, source_line FROM requests WHERE metadata->>'user' = 'user-00003'"
    ) == [(bucket.uri(first_key), 3)]
    files = query(
        "SELECT object_key, records, rows_loaded, rows_duplicate, rows_rejected "
        "FROM ingest_files ORDER BY object_key"
    )
    assert files == [(bucket.uri(first_key), 3, 3, 0, 0), (bucket.uri(second_key), 4, 1, 2, 1)]
    for _key, records, loaded, duplicates, rejected in files:
        assert loaded + duplicates + rejected == records
    assert query("SELECT source_file, line_number FROM rejects") == [(bucket.uri(second_key), 3)]


def test_corrupt_gzip_objects_fail_alone_and_load_once_replaced(
    bucket: Bucket, db_path: Path, query: Query
) -> None:
    """Truncated and garbled gzip objects are marked failed with their error, the rest
    load, the CLI exits 1 with one ``failed:`` line each; replaced, they load next run."""
    good = [_logpush_key("gw", 0), _logpush_key("gw", 1)]
    truncated, garbled = _logpush_key("gw", 2), _logpush_key("gw", 3)
    bucket.put(good[0], _gz(_record(i) for i in range(3)))
    bucket.put(good[1], _gz(_record(10 + i) for i in range(4)))
    whole = _gz(_record(20 + i) for i in range(50))
    bucket.put(truncated, whole[: len(whole) // 2])
    bucket.put(garbled, b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    uri = f"s3://{bucket.name}/gw"
    cli = ("ingest", uri, "--db", str(db_path), "--endpoint-url", bucket.endpoint)

    result = run_aigw(*cli)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == (
        "objects: 4 seen, 2 loaded, 0 unchanged, 0 skipped, 2 failed"
    )
    failed_lines = result.stderr.splitlines()
    assert len(failed_lines) == 2, result.stderr
    assert all(line.startswith("failed: ") for line in failed_lines)
    failures = query(
        "SELECT object_key, error, records, attempts FROM ingest_files "
        "WHERE status = 'failed' ORDER BY object_key"
    )
    assert [(key, records, attempts) for key, _error, records, attempts in failures] == [
        (bucket.uri(truncated), 0, 1),
        (bucket.uri(garbled), 0, 1),
    ]
    errors = {key: error for key, error, _records, _attempts in failures}
    assert errors[bucket.uri(truncated)] == (
        f"{bucket.uri(truncated)}: gzip stream ends early (truncated object)"
    )
    assert errors[bucket.uri(garbled)].startswith(f"{bucket.uri(garbled)}: corrupt gzip data (")
    assert sorted(failed_lines) == sorted(f"failed: {error}" for error in errors.values())
    assert query("SELECT status, count(*) FROM ingest_files GROUP BY 1 ORDER BY 1") == [
        ("failed", 2),
        ("loaded", 2),
    ]
    assert query("SELECT source_file, count(*) FROM requests GROUP BY 1 ORDER BY 1") == [
        (bucket.uri(good[0]), 3),
        (bucket.uri(good[1]), 4),
    ]

    bucket.put(truncated, whole)
    bucket.put(garbled, _gz(_record(90 + i) for i in range(6)))
    again = run_aigw(*cli)

    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert again.stdout.splitlines()[0] == (
        "objects: 4 seen, 2 loaded, 2 unchanged, 0 skipped, 0 failed"
    )
    assert query(
        "SELECT object_key, status, error, records, rows_loaded, attempts FROM ingest_files "
        "WHERE attempts > 1 ORDER BY object_key"
    ) == [
        (bucket.uri(truncated), "loaded", None, 50, 50, 2),
        (bucket.uri(garbled), "loaded", None, 6, 6, 2),
    ]
    assert query("SELECT count(*) FROM requests") == [(63,)]


def test_unreachable_endpoint_is_one_error_line(db_path: Path) -> None:
    """A 127.0.0.1 port with nothing listening: exit 2, one ``error:`` line, no traceback."""
    endpoint = f"http://127.0.0.1:{_free_port()}"
    result = run_aigw(
        "ingest", "s3://aigw-nowhere/logs", "--db", str(db_path), "--endpoint-url", endpoint
    )
    line = _assert_one_error_line(result)
    assert "cannot reach" in line
    assert "s3://aigw-nowhere/logs" in line


def test_missing_bucket_is_one_error_line(s3_server: S3Server, db_path: Path) -> None:
    """A bucket that does not exist: exit 2, one ``error:`` line naming it, no traceback."""
    name = f"aigw-missing-{uuid.uuid4().hex[:12]}"
    result = run_aigw(
        "ingest", f"s3://{name}/logs", "--db", str(db_path), "--endpoint-url", s3_server.endpoint
    )
    line = _assert_one_error_line(result)
    assert line == f"error: bucket for s3://{name}/logs does not exist"


@pytest.fixture(scope="module")
def auth_endpoint() -> Iterator[str]:
    """A second moto server, in its own process, that checks credentials on every request
    (``INITIAL_NO_AUTH_ACTION_COUNT=0``)."""
    port = _free_port()
    env = {**os.environ, **CREDENTIALS, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, "the moto server process exited"
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                connection.request("GET", "/moto-api/")
                connection.getresponse().read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the moto server did not answer in 30 s"
                time.sleep(0.1)
            finally:
                connection.close()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_unknown_credentials_are_one_error_line(auth_endpoint: str, db_path: Path) -> None:
    """Access keys the store does not know: exit 2, one ``error:`` line saying access was
    denied and to check the credentials, no traceback."""
    result = run_aigw(
        "ingest",
        "s3://aigw-private/logs",
        "--db",
        str(db_path),
        "--endpoint-url",
        auth_endpoint,
        env={
            "AWS_ACCESS_KEY_ID": "AKIAAIGWUNKNOWNKEY00",
            "AWS_SECRET_ACCESS_KEY": "not-a-secret-the-server-knows",
        },
    )
    line = _assert_one_error_line(result)
    assert line == (
        "error: access to s3://aigw-private/logs denied (InvalidAccessKeyId); check the credentials"
    )


def test_aws_endpoint_url_is_honoured_without_the_option(
    bucket: Bucket, db_path: Path, query: Query
) -> None:
    """With no --endpoint-url, the CLI reaches the store named by AWS_ENDPOINT_URL."""
    key = _logpush_key("gw", 0)
    bucket.put(key, _gz(_record(i) for i in range(3)))

    result = run_aigw(
        "ingest",
        f"s3://{bucket.name}/gw",
        "--db",
        str(db_path),
        env={"AWS_ENDPOINT_URL": bucket.endpoint},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "objects: 1 seen, 1 loaded, 0 unchanged, 0 skipped, 0 failed"
    )
    assert query("SELECT source_file, count(*) FROM requests GROUP BY 1") == [(bucket.uri(key), 3)]
    assert bucket.object_gets() == [f"/{bucket.name}/{key}"]


def test_a_large_object_loads_completely(
    bucket: Bucket,
    db_path: Path,
    query: Query,
    synthetic_logs: Callable[..., list[Path]],
    tmp_path: Path,
) -> None:
    """One object of 40,000 synthetic records (two insert batches) loads every record."""
    (path,) = synthetic_logs(40_000, per_file=40_000, root=tmp_path / "big")
    key = f"gw/{path.parent.name}/{path.name}"
    etag = bucket.put(key, path.read_bytes())

    summary = _ingest(f"s3://{bucket.name}/gw", db_path, bucket.endpoint)

    assert _counts(summary) == (1, 1, 0, 0, 0, 40_000, 40_000, 0, 0)
    assert query("SELECT count(*), count(DISTINCT log_id), max(source_line) FROM requests") == [
        (40_000, 40_000, 40_000)
    ]
    assert query(
        "SELECT object_key, etag, size, records, rows_loaded, rows_duplicate, rows_rejected "
        "FROM ingest_files"
    ) == [(bucket.uri(key), etag, path.stat().st_size, 40_000, 40_000, 0, 0)]
