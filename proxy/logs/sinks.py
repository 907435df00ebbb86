"""Where the gateway's log batches go: a local folder or an S3-compatible bucket (S3, R2).

A sink stores one finished object (a gzip NDJSON batch) under a key such as
``logs/20260418/20260418T000210Z_20260418T000240Z_1a2b3c4d.log.gz``. Sinks are
used by one thread at a time (the log writer's); they do not retry -- the writer
does, then spools. Failed uploads become ``LogSinkError`` in ``core.objectstore``
(botocore's one translator) and failed file writes here, with messages that never carry
credentials.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from core.files import write_atomic
from core.objectstore import make_client, upload_errors
from proxy.errors import GatewayConfigError, LogSinkError

__all__ = ["LocalFolderSink", "LogSink", "S3Sink", "open_sink"]


class LogSink(Protocol):
    """A place that stores finished log objects."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (a relative, ``/``-separated name), replacing any
        object of that name. Raises ``LogSinkError`` (one line) when it cannot."""
        ...

    def describe(self) -> str:
        """Where objects go, for messages: a folder path or ``s3://bucket/prefix``."""
        ...


def _checked_key(key: str) -> PurePosixPath:
    """``key`` as a relative path that cannot leave the sink's root."""
    parts = PurePosixPath(key)
    if parts.is_absolute() or not parts.parts or ".." in parts.parts:
        raise LogSinkError(f"refusing log object key {key!r}; keys are relative names")
    return parts


class LocalFolderSink:
    """Objects as files under ``root`` (created when missing), written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = self.root.joinpath(*_checked_key(key).parts)
        try:
            write_atomic(path, data)
        except OSError as err:
            raise LogSinkError(
                f"cannot write log file {path} ({err.strerror or err}); check the folder",
                detail=repr(err),
            ) from err

    def describe(self) -> str:
        return str(self.root)


class S3Sink:
    """Objects in ``s3://bucket/prefix`` through an injected boto3 S3 client.

    The prefix is a folder: key ``k`` lands at ``prefix/k``. boto3 clients are
    thread-safe, so the client may be shared; this sink never closes it.
    """

    def __init__(self, uri: str, *, client: Any) -> None:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not uri.startswith("s3://") or not bucket:
            raise GatewayConfigError(f"bad S3 log destination {uri!r}; expected s3://bucket/prefix")
        prefix = prefix.strip("/")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._client = client

    def put(self, key: str, data: bytes) -> None:
        object_key = self.prefix + str(_checked_key(key))
        where = f"s3://{self.bucket}/{object_key}"
        with upload_errors(where):
            self._client.put_object(
                Bucket=self.bucket, Key=object_key, Body=data, ContentType="application/gzip"
            )

    def describe(self) -> str:
        return self.uri


def open_sink(destination: str, *, endpoint_url: str | None = None) -> LogSink:
    """A sink for ``s3://bucket/prefix`` (boto3's credential chain; ``endpoint_url``
    selects R2 or MinIO) or for a local folder path."""
    if destination.startswith("s3://"):
        # Short timeouts and one botocore retry: the writer retries and spools itself.
        client = make_client("s3", endpoint_url=endpoint_url, read_timeout=30, max_attempts=2)
        return S3Sink(destination, client=client)
    if "://" in destination:
        raise GatewayConfigError(
            f"unsupported log destination {destination!r}; use a folder path or s3://bucket/prefix"
        )
    return LocalFolderSink(Path(destination))
