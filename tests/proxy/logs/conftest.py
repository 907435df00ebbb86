"""Fixtures and helpers for the Logpush writer's tests: fake AWS credentials for every test
(none of the developer's), distinct records, writer settings and a polling wait."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from proxy.logs import WriterSettings
from tests.conftest import logpush_record

_BASE_NS = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z in unixnano
_SECRET = "wJalrXUtnFEMI-not-a-real-secret-7f3a"  # noqa: S105 - fake; must never show in an error


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


def _wait_for(condition: Any, limit_s: float = 20.0) -> None:
    """Poll ``condition`` until it holds (a generous limit: this machine is shared)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "the writer did not get there"
        time.sleep(0.01)


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
