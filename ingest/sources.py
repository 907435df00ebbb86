"""Where log objects come from: a local folder or an S3-compatible bucket.

A source lists ``StoredObject``s (every object, log or not; the ingester decides
what to skip) and opens one as a binary stream that the caller closes. This
module reaches S3 through ``core.objectstore``, where ``botocore`` errors become ours.

S3 listing is paginated (``list_objects_v2``), so buckets of any size list
completely; objects are streamed from the response body, never read whole.

Logpush writes keys as ``<prefix>/{YYYYMMDD}/{start}_{end}_{random}.log.gz``.
``list_objects(from_day=…)`` uses that layout so that a watcher's listing does
not grow with history: S3 lists with ``StartAfter`` (only the day folders from
``from_day`` on, plus keys that sort after them), a folder skips day folders
older than ``from_day``. Keys outside the layout that sort before the day folders
are not listed again; the first, full listing finds them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from core.objectstore import make_client, read_errors, source_errors
from ingest.errors import (
    ConfigError,
    ObjectReadError,
    SourceError,
    SourceNotFound,
)
from ingest.reader import Readable

__all__ = [
    "LocalFolder",
    "ObjectStream",
    "S3Bucket",
    "Source",
    "StoredObject",
    "day_of",
    "is_log_object",
    "open_source",
]

# Names Logpush and users give to log files; anything else (ownership-challenge.txt,
# folder markers, notes) is recorded as skipped.
_LOG_SUFFIXES: Final = (
    ".log.gz",
    ".log",
    ".json",
    ".json.gz",
    ".ndjson",
    ".ndjson.gz",
    ".jsonl",
    ".jsonl.gz",
)

# A Logpush day folder name: YYYYMMDD.
_DAY: Final = re.compile(r"\d{8}")


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object of a source. ``key`` is its full URI, unique across sources."""

    key: str
    size: int
    etag: str
    mtime: datetime | None


class ObjectStream(Readable, Protocol):
    """An open object: what the reader reads, and ``close``."""

    def close(self) -> None: ...


class Source(Protocol):
    """A place holding log objects."""

    uri: str

    def list_objects(self, *, from_day: str | None = None) -> Iterator[StoredObject]:
        """Every object under the source, in key order; with ``from_day`` (``YYYYMMDD``)
        the day folders before it are not listed (see the module docstring)."""
        ...

    def open(self, obj: StoredObject) -> ObjectStream:
        """A binary stream of the object's bytes; the caller closes it."""
        ...


def is_log_object(key: str) -> bool:
    """Whether an object's name says it holds log records."""
    return key.lower().endswith(_LOG_SUFFIXES)


def day_of(source_uri: str, key: str) -> str | None:
    """The ``YYYYMMDD`` day folder right under the source that holds ``key``, if any."""
    relative = key.removeprefix(source_uri.rstrip("/") + "/")
    if relative == key:
        return None
    folder, sep, _ = relative.partition("/")
    return folder if sep and _DAY.fullmatch(folder) else None


class LocalFolder:
    """A folder on disk, walked recursively; ``etag`` is size and mtime."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = str(self.root)

    def list_objects(self, *, from_day: str | None = None) -> Iterator[StoredObject]:
        if not self.root.exists():
            raise SourceNotFound(f"folder {self.root} does not exist", source=self.uri)
        if not self.root.is_dir():
            raise SourceNotFound(f"{self.root} is not a folder", source=self.uri)
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise SourceNotFound(f"folder {self.root} is not readable", source=self.uri)
        for folder, dirs, files in os.walk(self.root, onerror=self._walk_error):
            dirs.sort()
            if from_day is not None and Path(folder) == self.root:
                # Prune in place: os.walk then never enters the older day folders.
                dirs[:] = [name for name in dirs if not _DAY.fullmatch(name) or name >= from_day]
            for name in sorted(files):
                path = Path(folder, name)
                try:
                    stat = path.stat()
                except OSError:  # a dangling link: listed, so that opening it fails visibly
                    yield StoredObject(key=str(path), size=0, etag="unreadable", mtime=None)
                    continue
                yield StoredObject(
                    key=str(path),
                    size=stat.st_size,
                    etag=f"{stat.st_size}-{stat.st_mtime_ns}",
                    mtime=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                )

    def open(self, obj: StoredObject) -> ObjectStream:
        try:
            return Path(obj.key).open("rb")
        except OSError as err:
            raise ObjectReadError(f"{obj.key}: cannot open ({err.strerror})", key=obj.key) from err

    def _walk_error(self, err: OSError) -> None:
        raise SourceNotFound(
            f"folder {err.filename} is not readable ({err.strerror})", source=self.uri
        ) from err


class S3Bucket:
    """``s3://bucket/prefix`` through a boto3 S3 client (made from ``endpoint_url`` if
    not given). The prefix is a folder: ``s3://b/logs`` lists ``logs/…``, not
    ``logs-archive/…``. boto3 clients are thread-safe; the parser thread shares it."""

    def __init__(self, uri: str, *, endpoint_url: str | None = None, client: Any = None) -> None:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"bad S3 location {uri!r}; expected s3://bucket/prefix")
        prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = client if client is not None else make_s3_client(endpoint_url)

    def list_objects(self, *, from_day: str | None = None) -> Iterator[StoredObject]:
        paginator = self._client.get_paginator("list_objects_v2")
        # StartAfter is exclusive and "prefix/20260417" sorts before "prefix/20260417/…",
        # so the listing starts at that day's first key.
        start = {"StartAfter": f"{self.prefix}{from_day}"} if from_day is not None else {}
        with source_errors(self.uri):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, **start):
                for item in page.get("Contents", ()):
                    yield StoredObject(
                        key=f"s3://{self.bucket}/{item['Key']}",
                        size=int(item["Size"]),
                        etag=str(item.get("ETag", "")).strip('"'),
                        mtime=item.get("LastModified"),
                    )

    def open(self, obj: StoredObject) -> ObjectStream:
        object_key = obj.key.removeprefix(f"s3://{self.bucket}/")
        try:
            with source_errors(self.uri):
                response = self._client.get_object(Bucket=self.bucket, Key=object_key)
        except SourceError as err:
            raise ObjectReadError(f"{obj.key}: {err}", key=obj.key, detail=err.detail) from err
        return _S3Stream(response["Body"], obj.key)


class _S3Stream:
    """A response body whose read errors become ``ObjectReadError``."""

    def __init__(self, body: Any, key: str) -> None:
        self._body = body
        self._key = key

    def read(self, size: int = -1) -> bytes:
        with read_errors(self._key):
            return self._body.read(size)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._body.close()


def open_source(location: str, *, endpoint_url: str | None = None) -> Source:
    """A ``Source`` for ``s3://…`` (boto3's credential chain) or a local folder path.

    ``endpoint_url`` selects an S3-compatible store (R2, MinIO); when omitted,
    boto3 still honours ``AWS_ENDPOINT_URL`` from the environment.
    """
    if location.startswith("s3://"):
        return S3Bucket(location, endpoint_url=endpoint_url)
    if "://" in location:
        raise ConfigError(
            f"unsupported source {location!r}; use a folder path or s3://bucket/prefix"
        )
    return LocalFolder(Path(location))


def make_s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client with short connect timeouts and a few retries."""
    return make_client("s3", endpoint_url=endpoint_url)
