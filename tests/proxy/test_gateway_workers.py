"""`aigw proxy --workers N`: several processes on one port under a supervisor. Both serve,
a Redis rate limit is shared exactly, a SIGKILLed worker is restarted and loses no record,
SIGTERM drains every worker, and in-process limits are refused with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy import GatewayConfigError, load_gateway_config, worker_count
from tests.conftest import REPO, run_aigw
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    PROVIDER_KEY,
    providers,
    read_records,
    request,
    write_config,
)
from tests.proxy.redis_server import flush, run_redis_server
from tests.proxy.test_gateway_process import CHAT_BODY, free_port

LIMITED_ROUTE = """
[routes.limited]
match = ["*"]
rate_limits = [{ name = "per-key", per = "key", unit = "requests", limit = 30, window_s = 1e8 }]
"""
OPT_IN = "[server] per_worker_limits = true"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with run_redis_server() as url:
        yield url


def start_workers(config: Path, port: int, workers: int) -> subprocess.Popen[str]:
    """`aigw proxy --workers N` on ``port``; returns once /healthz answers and N workers run."""
    options = ["--workers", str(workers)]
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "proxy", "-c", str(config), "--port", str(port), *options],
        cwd=REPO,
        env={**os.environ, "TEST_PROVIDER_KEY": PROVIDER_KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60  # a loaded 2-core machine: each worker imports the gateway
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            health = request(f"http://127.0.0.1:{port}", "GET", "/healthz", None, {})
            children = workers if workers > 1 else 0  # one worker: no supervisor
            if health.status == 200 and len(worker_pids(process)) == children:
                time.sleep(1.0)  # the other workers finish starting too
                return process
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError("aigw proxy --workers did not start in 60 s")


def worker_pids(process: subprocess.Popen[str]) -> list[int]:
    """The supervisor's child processes (Linux /proc)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
    return [int(pid) for pid in children.split()]


def metrics_folder(pid: int) -> Path:
    """The PROMETHEUS_MULTIPROC_DIR the supervisor gave worker ``pid``."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    name = b"PROMETHEUS_MULTIPROC_DIR="
    return Path(next(v for v in environ if v.startswith(name))[len(name) :].decode())


def chat(port: int, statuses: list[int], n: int, tag: str) -> None:
    """``n`` chat requests, each on a new connection, tagged ``tag-<i>`` as cf-aig-event-id."""
    for i in range(n):
        headers = {
            "authorization": f"Bearer {GATEWAY_KEYS['team-a']}",
            "content-type": "application/json",
            "cf-aig-event-id": f"{tag}-{i:03d}",
        }
        response = request(
            f"http://127.0.0.1:{port}", "POST", "/v1/chat/completions", CHAT_BODY, headers
        )
        statuses.append(response.status)


def in_threads(port: int, threads: int, each: int, tag: str) -> list[int]:
    statuses: list[int] = []
    running = [
        threading.Thread(target=chat, args=(port, statuses, each, f"{tag}{t}"))
        for t in range(threads)
    ]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return statuses


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 0, stderr
    return stderr


def test_two_workers_share_a_redis_rate_limit_exactly(tmp_path: Path, redis_url: str) -> None:
    """A limit of 30 requests per key across both workers: 40 requests from 8 clients get
    exactly 30 answers and 10 refusals, and each worker wrote records (one file each)."""
    flush(redis_url)
    port = free_port()
    with providers() as urls:
        config = write_config(tmp_path, urls, LIMITED_ROUTE, f'[limits]\nurl = "{redis_url}"\n')
        process = start_workers(config, port, 2)
        pids = worker_pids(process)
        statuses = in_threads(port, 8, 5, "shared")
        stderr = stop(process)
    assert sorted(statuses) == [200] * 30 + [429] * 10
    assert "2 workers" in stderr
    assert len(set(pids)) == 2
    records = read_records(tmp_path / "logs")
    assert len(records) == 40
    assert sum(r["RateLimited"] is True for r in records) == 10
    # each worker flushes its own batch at SIGTERM: two files, so both answered
    assert len(list((tmp_path / "logs").rglob("*.log.gz"))) == 2
    assert list((tmp_path / "spool" / "journal").glob("*.ndjson")) == []


def test_a_killed_worker_is_restarted_and_loses_no_record(tmp_path: Path) -> None:
    """SIGKILL one of two workers between requests: the supervisor starts a new one, the
    other keeps serving, and every answered request has exactly one record (the dead
    worker's journal is recovered by its successor)."""
    port = free_port()
    with providers() as urls:
        config = write_config(tmp_path, urls, "", server="per_worker_limits = true")
        process = start_workers(config, port, 2)
        before = in_threads(port, 4, 5, "before")
        time.sleep(0.5)  # the journal is synced within 0.2 s of each record
        victim = worker_pids(process)[0]
        live_gauges = metrics_folder(victim) / f"gauge_livesum_{victim}.db"
        assert live_gauges.exists()  # aigw_open_connections, summed over the live workers
        os.kill(victim, signal.SIGKILL)
        during = in_threads(port, 4, 5, "during")  # served by the other worker meanwhile
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = worker_pids(process)
            if len(pids) == 2 and victim not in pids:
                break
            time.sleep(0.05)
        pids = worker_pids(process)
        dead_gauges_left = live_gauges.exists()
        time.sleep(3.0)  # the new worker starts and recovers the dead one's journal
        after = in_threads(port, 4, 5, "after")
        stderr = stop(process)
    assert before + during + after == [200] * 60
    assert len(pids) == 2
    assert victim not in pids
    assert f"(pid {victim}) killed by SIGKILL; restarting it" in stderr
    assert not dead_gauges_left  # the supervisor marked the dead worker dead
    records = read_records(tmp_path / "logs")
    expected = sorted(
        f"{tag}{t}-{i:03d}"
        for tag in ("before", "during", "after")
        for t in range(4)
        for i in range(5)
    )
    assert sorted(r["EventId"] for r in records) == expected  # none lost, none twice
    assert list((tmp_path / "spool" / "journal").glob("*.ndjson")) == []


def test_workers_with_in_process_limits_are_refused_with_one_line(tmp_path: Path) -> None:
    with providers() as urls:
        config = write_config(tmp_path, urls, LIMITED_ROUTE)
    env = {"TEST_PROVIDER_KEY": PROVIDER_KEY}
    result = run_aigw("proxy", "--config", str(config), "--workers", "2", env=env)
    assert result.returncode == 2  # a configuration error, as for a bad gateway.toml
    assert result.stderr.strip().splitlines() == [
        "error: --workers 2: rate limits and budgets are kept in process, so each worker "
        'would count only its own requests; set [limits] url = "redis://…" to share them, '
        f"or {OPT_IN} to accept per-worker limits"
    ]


@pytest.mark.parametrize(
    ("extra", "server", "requested", "expected"),
    [
        ("", "", None, 1),  # in-process limits, no --workers: one, and the note says why
        ("", "", 1, 1),
        ("", "per_worker_limits = true", None, 4),
        ("", "per_worker_limits = true", 3, 3),
        ('[limits]\nurl = "redis://127.0.0.1:1/0"\n', "", None, 4),
        ('[limits]\nurl = "redis://127.0.0.1:1/0"\n', "", 2, 2),
    ],
)
def test_worker_count_rules(
    tmp_path: Path, extra: str, server: str, requested: int | None, expected: int
) -> None:
    urls = ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
    config = load_gateway_config(
        write_config(tmp_path, urls, "", extra, server=server), {"TEST_PROVIDER_KEY": "x"}
    )
    count, note = worker_count(config, requested, cores=4)
    assert count == expected
    if requested is None and not extra and not server:
        assert note == (
            '1 worker: rate limits and budgets are kept in process; set [limits] url = "redis://…" '
            f"to share them or {OPT_IN} to run one worker per core (4)"
        )
    if server and expected > 1:
        assert note.endswith(f"a limit of N lets up to {expected} x N through")


def test_zero_workers_is_refused(tmp_path: Path) -> None:
    urls = ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
    config = load_gateway_config(write_config(tmp_path, urls, ""), {"TEST_PROVIDER_KEY": "x"})
    with pytest.raises(GatewayConfigError, match=r"^--workers must be at least 1 \(got 0\)$"):
        worker_count(config, 0, cores=2)


def test_sigterm_drains_every_worker_and_removes_the_metrics_folder(tmp_path: Path) -> None:
    """SIGTERM to the supervisor while 4 clients send: every answered request has its
    record, both workers exit, the supervisor exits 0 and removes the metrics folder it
    made for its workers."""
    port = free_port()
    with providers() as urls:
        config = write_config(tmp_path, urls, "", server="per_worker_limits = true")
        process = start_workers(config, port, 2)
        pids = worker_pids(process)
        metrics = metrics_folder(pids[0])
        assert metrics.is_dir()
        answered: list[int] = []

        def client(n: int) -> None:
            for i in range(40):
                try:
                    chat(port, answered, 1, f"drain{n}-{i}")
                except OSError:
                    return

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        while len(answered) < 20:
            time.sleep(0.01)
        stop(process)
        for thread in threads:
            thread.join()
    ok = answered.count(200)
    assert ok >= 20
    assert len(read_records(tmp_path / "logs")) == ok  # no answered request without its record
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not metrics.exists()


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the supervisor: its workers notice (within a second), drain
    and flush every record rather than keep the port."""
    port = free_port()
    with providers() as urls:
        config = write_config(tmp_path, urls, "", server="per_worker_limits = true")
        process = start_workers(config, port, 2)
        pids = worker_pids(process)
        statuses = in_threads(port, 2, 5, "orphan")
        process.kill()
        process.communicate(timeout=30)
        deadline = time.monotonic() + 60
        while any(Path(f"/proc/{pid}").exists() for pid in pids):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.05)
    assert statuses == [200] * 10
    assert len(read_records(tmp_path / "logs")) == 10
    assert list((tmp_path / "spool" / "journal").glob("*.ndjson")) == []
