"""Shared fixtures: real DuckDB files in tmp_path, Logpush objects written to disk,
and the real ``aigw`` command run as a subprocess."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from sim.synthetic import TrafficShape, synthetic_records, write_logpush_files

REPO = Path(__file__).resolve().parent.parent


def logpush_record(**overrides: Any) -> dict[str, Any]:
    """One plain Logpush record with round numbers; override any field."""
    record: dict[str, Any] = {
        "Timestamp": 1_776_470_400_000_000_000,  # 2026-04-18T00:00:00Z in unixnano
        "Gateway": "prod",
        "Provider": "openai",
        "Model": "gpt-4o-mini",
        "RequestedModel": "gpt-4o-mini",
        "Endpoint": "chat/completions",
        "StatusCode": 200,
        "Cached": False,
        "RateLimited": False,
        "Metrics": {"cost": 0.0015, "durationMs": 850, "tokensIn": 1000, "tokensOut": 200},
        "Metadata": {"team": "search", "user": "ana"},
        "RoutingDecisionID": "",
        "RoutingReason": "",
    }
    record.update(overrides)
    return record


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def write_ndjson(
    path: Path, lines: Iterable[dict[str, Any] | bytes | str], *, gz: bool = True
) -> Path:
    """Write records (dicts are JSON-encoded, bytes/str written as they are), one per line."""
    encoded = []
    for line in lines:
        if isinstance(line, dict):
            encoded.append(orjson.dumps(line))
        elif isinstance(line, str):
            encoded.append(line.encode())
        else:
            encoded.append(line)
    data = b"\n".join(encoded) + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's warehouse lives (not created yet)."""
    return tmp_path / "wh" / "aigw.duckdb"


@pytest.fixture
def query(db_path: Path) -> Callable[..., list[tuple[Any, ...]]]:
    """Run SQL on the test warehouse through a short-lived read-only connection."""

    def run(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(db_path), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    return run


@pytest.fixture
def synthetic_logs(tmp_path: Path) -> Callable[..., list[Path]]:
    """Write ``count`` synthetic Logpush records as objects of ``per_file`` records."""

    def make(
        count: int,
        *,
        per_file: int = 100,
        root: Path | None = None,
        seed: int = 7,
        timestamp_format: str = "unixnano",
        start: datetime = datetime(2026, 4, 18, tzinfo=UTC),
    ) -> list[Path]:
        shape = TrafficShape(start=start, encrypted_bodies=False)
        return write_logpush_files(
            root or tmp_path / "logs",
            synthetic_records(count, seed=seed, shape=shape),
            per_file=per_file,
            timestamp_format=timestamp_format,
            seed=seed,
        )

    return make


def run_aigw(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real ``aigw`` command line (``python -m app``) and capture its output."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    if env is None or "AIGW_DB" not in env:
        full_env.pop("AIGW_DB", None)  # the developer's own setting must not leak into tests
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
