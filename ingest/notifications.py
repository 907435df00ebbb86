"""S3 event notifications through an SQS queue: which objects were just written.

The bucket sends ``s3:ObjectCreated:*`` events to the queue (directly, or through an
SNS topic, whose envelope is unwrapped). A message names its objects; the watcher
loads them and only then deletes the message (``SqsQueue.delete``), so a crash
before an object is recorded in ``ingest_files`` leaves its message to come back
after the queue's visibility timeout. ``s3:TestEvent`` messages (sent when the
notification is configured), other event types and messages that are not S3
events carry no object and are deleted at once.

The SQS endpoint is the queue URL's own host, so ``--endpoint-url`` (an S3-compatible
store) and the queue never get mixed up. botocore errors become ``SourceError``s in
``core.objectstore``, as for ``ingest.sources``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote_plus, urlsplit

import orjson

from core.objectstore import make_client, source_errors
from ingest.errors import ConfigError
from ingest.sources import S3Bucket, StoredObject

__all__ = ["Notification", "SqsQueue", "objects_in_message"]

_REGION: Final = re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com", re.IGNORECASE)
MAX_WAIT_SECONDS: Final = 20  # SQS's longest long poll


@dataclass(frozen=True, slots=True)
class Notification:
    """One received message: its receipt handle and the source's objects it names."""

    receipt_handle: str
    objects: tuple[StoredObject, ...]


def objects_in_message(body: str, source: S3Bucket) -> tuple[StoredObject, ...]:
    """The objects under ``source`` that an S3 event message (maybe SNS-wrapped) says
    were created; empty for test events, other events, other buckets or prefixes and
    anything that is not an S3 event."""
    try:
        document = orjson.loads(body)
        if isinstance(document, dict) and document.get("Type") == "Notification":
            document = orjson.loads(document.get("Message", ""))  # SNS envelope
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(document, dict):
        return ()
    found = []
    for record in document.get("Records") or ():
        if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith(
            "ObjectCreated:"
        ):
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        item = s3.get("object") or {}
        if bucket != source.bucket or "key" not in item:
            continue
        key = unquote_plus(str(item["key"]))  # event keys are URL-encoded, spaces as "+"
        if not key.startswith(source.prefix):
            continue
        found.append(
            StoredObject(
                key=f"s3://{bucket}/{key}",
                size=int(item.get("size") or 0),
                etag=str(item.get("eTag", "")).strip('"'),
                mtime=_event_time(record.get("eventTime")),
            )
        )
    return tuple(found)


class SqsQueue:
    """An SQS queue of S3 notifications for ``source``. boto3 clients are thread-safe,
    but one watcher thread uses this object."""

    def __init__(self, queue_url: str, source: S3Bucket, *, client: Any = None) -> None:
        parts = urlsplit(queue_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ConfigError(f"bad SQS queue URL {queue_url!r}; expected https://sqs.…/…/name")
        self.url = queue_url
        self._source = source
        if client is None:
            region = _REGION.match(parts.netloc)
            client = make_client(
                "sqs",
                endpoint_url=f"{parts.scheme}://{parts.netloc}",
                region=region.group(1) if region else None,
                read_timeout=MAX_WAIT_SECONDS + 10,
            )
        self._client = client

    def receive(self, wait_seconds: float) -> list[Notification]:
        """Up to 10 messages, waiting at most ``wait_seconds`` (long poll) for the first."""
        wait = max(0, min(MAX_WAIT_SECONDS, round(wait_seconds)))
        with source_errors(self.url):
            response = self._client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
            )
        return [
            Notification(
                str(message["ReceiptHandle"]),
                objects_in_message(str(message.get("Body", "")), self._source),
            )
            for message in response.get("Messages", ())
        ]

    def delete(self, notifications: Sequence[Notification]) -> None:
        """Delete handled messages (in batches of 10, SQS's limit)."""
        for start in range(0, len(notifications), 10):
            entries = [
                {"Id": str(number), "ReceiptHandle": note.receipt_handle}
                for number, note in enumerate(notifications[start : start + 10])
            ]
            with source_errors(self.url):
                self._client.delete_message_batch(QueueUrl=self.url, Entries=entries)


def _event_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
