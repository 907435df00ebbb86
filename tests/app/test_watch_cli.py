"""``aigw ingest --watch`` as a user runs it: a real subprocess watching a folder or
moto's S3 server on 127.0.0.1, stopped with SIGTERM, while this process reads the
warehouse the way the dashboard does (read-only, between the watcher's batches)."""

from __future__ import annotations

import gzip
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import orjson
import pytest

from ingest import IngestSettings, run_ingest
from tests.conftest import REPO, logpush_record, run_aigw
from tests.ingest.conftest import Bucket

Query = Callable[..., list[tuple[Any, ...]]]


class Lines:
    """The lines a subprocess writes to one stream, read by a thread as they come."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, prefix: str, timeout: float = 90.0) -> str:
        """The next line starting with ``prefix`` (earlier lines are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line starting {prefix!r} within {timeout}s; saw {self.seen}")
            if line is None:
                pytest.fail(f"stream ended before a line starting {prefix!r}; saw {self.seen}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def rest(self) -> list[str]:
        """Every remaining line, once the stream has ended."""
        self._thread.join(timeout=60)
        while (line := self._queue.get_nowait() if not self._queue.empty() else None) is not None:
            self.seen.append(line)
        return self.seen


def _watch(*args: str) -> tuple[subprocess.Popen[str], Lines, Lines]:
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "ingest", *args, "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None and process.stderr is not None
    return process, Lines(process.stdout), Lines(process.stderr)


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def _read(db_path: Path, sql: str, deadline: float) -> list[tuple[Any, ...]]:
    """Query read-only, retrying while the watcher holds the file (as a dashboard must)."""
    while True:
        try:
            con = duckdb.connect(str(db_path), read_only=True)
        except duckdb.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def test_sigterm_mid_batch_finishes_the_object_in_hand_and_exits_0(
    synthetic_logs: Callable[..., list[Path]], tmp_path: Path, db_path: Path, query: Query
) -> None:
    """SIGTERM while a batch loads: the object in hand commits, the process exits 0 with
    the totals, every object is wholly loaded or absent, and a rerun loads the rest."""
    paths = synthetic_logs(60_000, per_file=15_000)
    process, out, err = _watch(str(tmp_path / "logs"), "--db", str(db_path), "-v")
    err.wait_for("loaded ")  # the first object committed; the next is in hand
    code = _stop(process)
    lines = out.rest()
    err.rest()

    assert code == 0, err.seen
    per_object = dict(query("SELECT source_file, count(*) FROM requests GROUP BY source_file"))
    files = dict(query("SELECT object_key, rows_loaded FROM ingest_files"))
    assert 1 <= len(per_object) < len(paths)
    assert per_object == files
    assert set(per_object.values()) == {15_000}
    loaded = len(per_object)
    assert lines[-1] == (
        f"stopped after 1 polls, 1 batches: {loaded} objects loaded, 0 failed; "
        f"{15_000 * loaded:,} rows, 0 duplicates, 0 rejected"
    )
    assert query("SELECT rows_checked, success FROM quality_runs") == [(15_000 * loaded, True)]
    rest = run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path))
    assert rest.rows_loaded == 60_000 - 15_000 * loaded
    assert query("SELECT count(*), count(DISTINCT log_id) FROM requests") == [(60_000, 60_000)]


def _now_records(first: int, count: int) -> bytes:
    now_ns = time.time_ns()
    records = [logpush_record(Timestamp=now_ns - (first + n) * 1_000_000_000) for n in range(count)]
    return gzip.compress(b"\n".join(orjson.dumps(r) for r in records) + b"\n", mtime=0)


@pytest.mark.usefixtures("aws_env")
def test_an_object_written_to_the_bucket_is_visible_within_the_interval_plus_5_s(
    bucket: Bucket, tmp_path: Path, db_path: Path
) -> None:
    """While `aigw ingest --watch --interval 1s` runs, a reader sees a new object's rows
    (and its rollups and quality check) within 1 s + 5 s of the write; the budget
    given with --budgets alerts once, after the batch that crossed it."""
    day = datetime.now(tz=UTC).strftime("%Y%m%d")
    bucket.put(f"logs/{day}/a_a_1.log.gz", _now_records(0, 10))
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(
        f'[channels.outbox]\ntype = "outbox"\nfolder = "{tmp_path / "outbox"}"\n\n'
        '[[budget]]\nname = "tiny-daily"\namount_usd = 0.0001\nperiod = "daily"\n'
        'thresholds = [1.0]\nchannels = ["outbox"]\n'
    )
    process, out, err = _watch(
        f"s3://{bucket.name}/logs",
        *("--endpoint-url", bucket.endpoint, "--db", str(db_path)),
        *("--interval", "1s", "--budgets", str(budgets)),
    )
    try:
        assert out.wait_for("batch: ") == (
            "batch: 1 loaded, 0 skipped, 0 failed; 10 rows, 0 duplicates, 0 rejected"
        )
        out.wait_for("sent to outbox: ")
        bucket.put(f"logs/{day}/b_b_2.log.gz", _now_records(10, 5))
        written = time.monotonic()
        deadline = written + 1 + 5
        while _read(db_path, "SELECT count(*) FROM requests", deadline) != [(15,)]:
            assert time.monotonic() < deadline, "not visible within interval + 5 s"
            time.sleep(0.2)
        out.wait_for("batch: ")
    finally:
        code = _stop(process)
    out.rest()
    err.rest()

    assert code == 0, err.seen
    final = time.monotonic() + 10
    assert _read(db_path, "SELECT sum(requests) FROM rollup_hourly", final) == [(15,)]
    assert _read(db_path, "SELECT rows_checked FROM quality_runs ORDER BY 1", final) == [
        (5,),
        (10,),
    ]
    assert len(list((tmp_path / "outbox").iterdir())) == 1  # sent once, not per batch


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--interval", "5s"), "error: --interval and --sqs-queue-url need --watch"),
        (
            ("--watch", "--interval", "soon"),
            "error: --interval 'soon' must look like 30s, 1m or 0.5s",
        ),
        (
            ("--watch", "--sqs-queue-url", "https://sqs.us-east-1.amazonaws.com/1/q"),
            "error: --sqs-queue-url needs an s3:// source",
        ),
    ],
)
def test_watch_options_misused_are_one_line_errors(
    tmp_path: Path, db_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Watch options without --watch, a bad interval, or a queue for a folder: exit 2."""
    (tmp_path / "logs").mkdir()
    result = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db_path), *args)
    assert (result.returncode, result.stderr.splitlines()) == (2, [message])
