"""Fixtures for the ingest tests that need S3 or SQS: moto's real API server on
127.0.0.1 (an ephemeral port) with a log of the requests it answered, fresh buckets,
and fake credentials in the environment."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _RequestLog(logging.Handler):
    """Records the request lines ("GET /bucket/key HTTP/1.1") the werkzeug server logs.

    Werkzeug logs a request when it sends the status line, before the client can
    read the response, so a request the client saw answered is already here.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.args, tuple) and record.args:
            self.lines.append(_ANSI.sub("", str(record.args[0])))

    def gets(self, bucket: str) -> list[str]:
        """Paths of the GET requests on ``bucket`` so far, in order."""
        paths = []
        for line in list(self.lines):
            method, _, rest = line.partition(" ")
            path = rest.rsplit(" ", 1)[0]
            if method == "GET" and path.startswith((f"/{bucket}/", f"/{bucket}?")):
                paths.append(path)
        return paths

    def object_gets(self, bucket: str) -> list[str]:
        """Paths of GetObject requests (``GET /bucket/key``) on ``bucket`` so far."""
        return [path for path in self.gets(bucket) if "list-type=" not in path]

    def listings(self, bucket: str) -> list[str]:
        """Paths of ListObjectsV2 requests (``GET /bucket?list-type=2…``) on ``bucket``."""
        return [path for path in self.gets(bucket) if "list-type=2" in path]


@dataclass(frozen=True, slots=True)
class S3Server:
    """The running moto server: its endpoint URL and the requests it answered."""

    endpoint: str
    requests: _RequestLog


@dataclass(frozen=True, slots=True)
class Bucket:
    """A fresh bucket on the moto server, with a boto3 client to fill it."""

    name: str
    endpoint: str
    client: Any
    requests: _RequestLog

    def put(self, key: str, body: bytes) -> str:
        """Store ``body`` at ``key``; return the object's ETag without quotes."""
        response = self.client.put_object(Bucket=self.name, Key=key, Body=body)
        return str(response["ETag"]).strip('"')

    def etag(self, key: str) -> str:
        """The ETag S3 reports for ``key``, without quotes."""
        return str(self.client.head_object(Bucket=self.name, Key=key)["ETag"]).strip('"')

    def uri(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.name}/{key}"

    def object_gets(self) -> list[str]:
        """GetObject requests made on this bucket so far."""
        return self.requests.object_gets(self.name)

    def listings(self) -> list[str]:
        """ListObjectsV2 requests (one per page) made on this bucket so far."""
        return self.requests.listings(self.name)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 API server on 127.0.0.1 (an ephemeral port), with its request log."""
    recorder = _RequestLog()
    logger = logging.getLogger("werkzeug")
    saved_level, saved_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # keep werkzeug's per-request lines off the test output
    logger.addHandler(recorder)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint=f"http://{host}:{port}", requests=recorder)
    finally:
        server.stop()
        logger.removeHandler(recorder)
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment (ingest's own client reads them there), and
    none of the developer's AWS settings."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bucket(s3_server: S3Server) -> Bucket:
    """A new, empty bucket with a unique name."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        region_name="us-east-1",
    )
    name = f"aigw-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return Bucket(name, s3_server.endpoint, client, s3_server.requests)
