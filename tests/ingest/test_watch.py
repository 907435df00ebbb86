"""Watch mode in-process: ``ingest.watch`` in a thread against moto's S3 and SQS API
server on 127.0.0.1 and real DuckDB files. (The CLI, SIGTERM and a second process
reading the warehouse are in tests/app/test_watch_cli.py.)

The warehouse is read only after the watcher stops: within one process DuckDB
refuses a read-only connection next to a writing one."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

from ingest import IngestSettings, IngestSummary, PollReport, Warehouse, WatchSettings, watch
from ingest.notifications import SqsQueue, objects_in_message
from ingest.sources import S3Bucket, StoredObject
from tests.conftest import logpush_record, write_ndjson
from tests.ingest.conftest import Bucket, S3Server

pytestmark = pytest.mark.usefixtures("aws_env")

Query = Callable[..., list[tuple[Any, ...]]]

_BASE_NS = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z in unixnano
_WAIT = 30.0  # seconds a test waits for the watcher before failing


def _gz(records: Iterable[dict[str, Any]]) -> bytes:
    return gzip.compress(b"\n".join(orjson.dumps(r) for r in records) + b"\n", mtime=0)


def _records(first: int, count: int) -> list[dict[str, Any]]:
    """``count`` distinct clean records (one second apart from record ``first``)."""
    return [
        logpush_record(Timestamp=_BASE_NS + n * 1_000_000_000) for n in range(first, first + count)
    ]


def _key(day: str, n: int, prefix: str = "logs") -> str:
    """A Logpush-style key in ``day``; ``n`` orders keys inside the day."""
    return f"{prefix}/{day}/{day}T{n:06d}Z_{day}T{n:06d}Z_{n:08x}.log.gz"


@dataclass
class Watcher:
    """A running ``watch`` in a thread, with what its callbacks reported."""

    stop: threading.Event
    thread: threading.Thread
    polls: list[PollReport] = field(default_factory=list)
    batches: list[IngestSummary] = field(default_factory=list)
    after: list[list[str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + _WAIT
        while not condition():
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=_WAIT)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


def _start(settings: IngestSettings, options: WatchSettings, **kwargs: Any) -> Watcher:
    stop = threading.Event()
    state = Watcher(stop, threading.Thread())

    def after_batch(_warehouse: Warehouse, summary: IngestSummary) -> None:
        state.after.append(list(summary.loaded_keys))

    def run() -> None:
        try:
            watch(
                settings,
                options,
                stop=stop,
                after_batch=after_batch,
                on_batch=state.batches.append,
                on_poll=state.polls.append,
                on_notice=state.notices.append,
                **kwargs,
            )
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            state.errors.append(err)

    state.thread = threading.Thread(target=run, daemon=True)
    state.thread.start()
    return state


def _s3_settings(bucket: Bucket, db_path: Path, prefix: str = "logs") -> IngestSettings:
    return IngestSettings(
        source=f"s3://{bucket.name}/{prefix}", db_path=db_path, endpoint_url=bucket.endpoint
    )


def test_watch_loads_the_backlog_then_each_object_written_while_it_runs(
    bucket: Bucket, db_path: Path, query: Query
) -> None:
    """The object already there loads in the first batch; objects written later load in
    later batches, one each, never before they exist; a late object of the previous
    day (a key smaller than the newest) is found too."""
    bucket.put(_key("20260418", 10), _gz(_records(0, 2)))
    watcher = _start(_s3_settings(bucket, db_path), WatchSettings(interval=0.2))
    watcher.wait_until(lambda: len(watcher.batches) == 1, "the backlog batch")
    watcher.wait_until(lambda: len(watcher.polls) >= 3, "two polls after the backlog")
    assert len(watcher.batches) == 1  # nothing new, nothing loaded

    bucket.put(_key("20260418", 20), _gz(_records(2, 3)))
    watcher.wait_until(lambda: len(watcher.batches) == 2, "the second object")
    bucket.put(_key("20260417", 5), _gz(_records(5, 4)))  # late, into the previous day
    watcher.wait_until(lambda: len(watcher.batches) == 3, "the late object")
    watcher.finish()

    assert [(b.loaded, b.rows_loaded) for b in watcher.batches] == [(1, 2), (1, 3), (1, 4)]
    assert watcher.after == [
        [bucket.uri(_key("20260418", 10))],
        [bucket.uri(_key("20260418", 20))],
        [bucket.uri(_key("20260417", 5))],
    ]
    assert query("SELECT count(*), count(DISTINCT log_id) FROM requests") == [(9, 9)]
    assert query("SELECT count(*), sum(rows_checked) FROM quality_runs WHERE success") == [(3, 9)]


def _fill(bucket: Bucket, days: list[str], per_day: int) -> None:
    for day in days:
        for n in range(per_day):
            bucket.put(_key(day, n), _gz(_records(0, 1)))


@pytest.mark.parametrize("old_days", [2, 30])
def test_keys_listed_per_poll_do_not_grow_with_old_days(
    s3_server: S3Server, bucket: Bucket, db_path: Path, old_days: int
) -> None:
    """After the first (full) listing, each poll lists only the previous and current day
    (3 + 2 keys), with one ListObjectsV2 request starting after the previous day,
    whether 2 or 30 older days hold objects."""
    _fill(bucket, [f"202603{d:02d}" for d in range(1, old_days + 1)], 3)
    _fill(bucket, ["20260417"], 3)
    _fill(bucket, ["20260418"], 2)
    before = len(bucket.listings())
    watcher = _start(_s3_settings(bucket, db_path), WatchSettings(interval=0.2))
    watcher.wait_until(lambda: len(watcher.polls) >= 5, "five polls")
    watcher.finish()

    first, *steady = watcher.polls
    assert (first.listed, first.from_day) == (3 * old_days + 5, None)
    assert {(poll.listed, poll.from_day) for poll in steady} == {(5, "20260417")}
    listings = bucket.listings()[before:]
    assert len(listings) == len(watcher.polls)  # one page per poll
    assert all("start-after=logs/20260417&" in path for path in listings[1:])


def test_a_sweep_finds_an_object_delivered_days_late(
    s3_server: S3Server, bucket: Bucket, db_path: Path
) -> None:
    """An object landing in a day folder 4 days old (a spooled upload retried late) is
    missed by the two-day polls but loaded by the next sweep, which lists 7 days back;
    objects already loaded are not loaded again, and the sweep does not list older days."""
    _fill(bucket, ["20260301"], 2)  # older than any sweep window
    _fill(bucket, ["20260418"], 2)
    watcher = _start(
        _s3_settings(bucket, db_path),
        WatchSettings(interval=0.1, late_days=7, sweep_seconds=2.0),
    )
    # The first poll (a full listing) is reported once its batch is done.
    watcher.wait_until(lambda: len(watcher.polls) >= 1, "the first poll")
    assert watcher.polls[0].from_day is None and len(watcher.batches) == 1
    polls_before = len(watcher.polls)
    bucket.put(_key("20260414", 7), _gz(_records(100, 3)))
    watcher.wait_until(lambda: len(watcher.batches) == 2, "the late object")
    # a poll that takes longer than sweep_seconds (a busy machine) is followed by a sweep:
    # wait for both kinds rather than assume the timing
    watcher.wait_until(
        lambda: (
            sum(poll.from_day == "20260411" for poll in watcher.polls[polls_before:]) >= 2
            and any(poll.from_day == "20260417" for poll in watcher.polls[polls_before:])
        ),
        "a second sweep and a two-day poll",
    )
    watcher.finish()

    # _fill writes one and the same record into each object: 4 objects, 1 row.
    assert [(b.loaded, b.rows_loaded) for b in watcher.batches] == [(4, 1), (1, 3)]
    sweeps = [p for p in watcher.polls[polls_before:] if p.from_day == "20260411"]
    # 20260418's 2 keys, and 20260414's once it is there; never 20260301's.
    assert {p.listed for p in sweeps} <= {2, 3} and sweeps[-1].listed == 3
    assert {p.from_day for p in watcher.polls[polls_before:]} == {"20260411", "20260417"}
    assert watcher.after == [
        [
            bucket.uri(_key(d, n))
            for d, n in [("20260301", 0), ("20260301", 1), ("20260418", 0), ("20260418", 1)]
        ],
        [bucket.uri(_key("20260414", 7))],
    ]


def test_a_held_warehouse_is_waited_for_and_said_once(tmp_path: Path, db_path: Path) -> None:
    """While another process holds the warehouse the watcher waits (one notice), then loads."""
    write_ndjson(tmp_path / "logs" / "20260418" / "a.log.gz", _records(0, 2))
    db_path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db_path)!r}); "
            "print('held', flush=True); time.sleep(1.5)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    watcher = _start(
        IngestSettings(source=str(tmp_path / "logs"), db_path=db_path),
        WatchSettings(interval=0.2, lock_backoff_max=0.2),
    )
    watcher.wait_until(lambda: len(watcher.batches) == 1, "the batch after the lock is gone")
    watcher.finish()
    holder.wait()
    holder.stdout.close()

    assert len(watcher.notices) == 1
    assert watcher.notices[0].startswith(f"warehouse {db_path} is in use by another program")
    assert watcher.notices[0].endswith("; waiting for it")
    assert watcher.batches[0].rows_loaded == 2


def test_a_folder_watch_skips_day_folders_before_the_previous_day(
    tmp_path: Path, db_path: Path
) -> None:
    """Folders: after the first poll, older day folders are not walked again."""
    logs = tmp_path / "logs"
    for day in ("20260301", "20260302", "20260417", "20260418"):
        write_ndjson(logs / day / "a.log.gz", _records(int(day[-2:]) * 10, 1))
    watcher = _start(IngestSettings(source=str(logs), db_path=db_path), WatchSettings(interval=0.2))
    watcher.wait_until(lambda: len(watcher.polls) >= 3, "three polls")
    write_ndjson(logs / "20260418" / "b.log.gz", _records(500, 3))
    watcher.wait_until(lambda: len(watcher.batches) == 2, "the new file")
    watcher.finish()

    assert [poll.listed for poll in watcher.polls[:3]] == [4, 2, 2]
    assert [b.rows_loaded for b in watcher.batches] == [4, 3]


# ---- SQS notifications ----------------------------------------------------------------


@pytest.fixture
def sqs(s3_server: S3Server) -> Any:
    """A boto3 SQS client on the moto server."""
    return boto3.client(
        "sqs",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        region_name="us-east-1",
    )


def _queue_for(bucket: Bucket, sqs: Any, prefix: str) -> str:
    """A new queue receiving the bucket's ObjectCreated events for keys under ``prefix``."""
    url = str(sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bucket.client.put_bucket_notification_configuration(
        Bucket=bucket.name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
            ]
        },
    )
    return url


def _messages_left(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_sqs_notifications_load_new_objects_without_listing_and_are_deleted(
    bucket: Bucket, sqs: Any, db_path: Path, query: Query
) -> None:
    """With a queue, objects load from their S3 events (the test event, an SNS-wrapped
    event and a key with a space included) with no listing after the first; every
    message is deleted once its objects are recorded."""
    url = _queue_for(bucket, sqs, "logs/2026")  # moto sends s3:TestEvent right away
    settings = _s3_settings(bucket, db_path)
    options = WatchSettings(interval=60.0, sqs_queue_url=url)
    watcher = _start(settings, options)
    watcher.wait_until(lambda: len(watcher.polls) >= 2, "the first listing and a receive")
    listings = len(bucket.listings())

    bucket.put(_key("20260418", 1), _gz(_records(0, 2)))
    watcher.wait_until(lambda: len(watcher.batches) == 1, "the notified object")
    spaced = "logs/20260418/with space+plus.log.gz"
    bucket.put(spaced, _gz(_records(2, 1)))
    watcher.wait_until(lambda: len(watcher.batches) == 2, "the key with a space")
    manual = "logs/manual/x.log.gz"  # outside the notification filter: no event of its own
    etag = bucket.put(manual, _gz(_records(3, 3)))
    envelope = {
        "Type": "Notification",
        "Message": orjson.dumps(_event(bucket, manual, etag)).decode(),
    }
    sqs.send_message(QueueUrl=url, MessageBody=orjson.dumps(envelope).decode())
    watcher.wait_until(lambda: len(watcher.batches) == 3, "the SNS-wrapped event")
    watcher.wait_until(lambda: _messages_left(sqs, url) == (0, 0), "the deletes")
    watcher.finish()

    assert len(bucket.listings()) == listings  # notifications only, no listing
    assert [b.rows_loaded for b in watcher.batches] == [2, 1, 3]
    assert sum(poll.notified for poll in watcher.polls) == 3
    assert query("SELECT object_key FROM ingest_files ORDER BY object_key") == [
        (bucket.uri(_key("20260418", 1)),),
        (bucket.uri(spaced),),
        (bucket.uri(manual),),
    ]


def _event(bucket: Bucket, key: str, etag: str) -> dict[str, Any]:
    """An S3 ObjectCreated event as AWS writes it (key URL-encoded)."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-04-18T00:00:05.000Z",
                "s3": {
                    "bucket": {"name": bucket.name},
                    "object": {"key": key.replace(" ", "+"), "size": 10, "eTag": etag},
                },
            }
        ]
    }


def test_message_parsing_keeps_only_created_objects_under_the_source(bucket: Bucket) -> None:
    """Test events, other buckets, other prefixes, other events and junk name nothing."""
    source = S3Bucket(f"s3://{bucket.name}/logs", client=bucket.client)
    event = _event(bucket, "logs/20260418/a b.log.gz", "abc")
    other_bucket = {"Records": [{**event["Records"][0], "s3": {"bucket": {"name": "x"}}}]}
    removed = {"Records": [{**event["Records"][0], "eventName": "ObjectRemoved:Delete"}]}
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket.name}
    outside = _event(bucket, "elsewhere/a.log.gz", "abc")

    assert objects_in_message(orjson.dumps(event).decode(), source) == (
        StoredObject(
            key=f"s3://{bucket.name}/logs/20260418/a b.log.gz",
            size=10,
            etag="abc",
            mtime=datetime(2026, 4, 18, 0, 0, 5, tzinfo=UTC),
        ),
    )
    for body in (other_bucket, removed, test_event, outside):
        assert objects_in_message(orjson.dumps(body).decode(), source) == ()
    assert objects_in_message("not json", source) == ()


def test_a_missing_queue_is_a_one_line_error(
    s3_server: S3Server, bucket: Bucket, db_path: Path
) -> None:
    """--sqs-queue-url naming no queue stops the watcher with SourceNotFound."""
    url = f"{s3_server.endpoint}/123456789012/no-such-queue"
    source = S3Bucket(f"s3://{bucket.name}/logs", client=bucket.client)
    queue = SqsQueue(url, source)
    watcher = _start(
        _s3_settings(bucket, db_path),
        WatchSettings(interval=60.0, sqs_queue_url=url),
        source=source,
        queue=queue,
    )
    watcher.thread.join(timeout=_WAIT)
    assert [str(err) for err in watcher.errors] == [f"queue {url} does not exist"]
