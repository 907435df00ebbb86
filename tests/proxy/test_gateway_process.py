"""The gateway as users run it: `aigw proxy` as a process (SIGTERM flushes every record),
its logs loaded by `aigw ingest` with exact counts, `aigw simulate`, and config errors."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sim.traffic import plan_traffic
from tests.conftest import REPO, run_aigw
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    PROVIDER_KEY,
    log_bytes,
    providers,
    read_records,
    request,
    write_config,
)

CHAT_BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_proxy(config: Path, port: int, *, open_files: int | None = None) -> subprocess.Popen[str]:
    """`aigw proxy` on ``port``, started with a soft limit of ``open_files`` when given."""
    env = {**os.environ, "TEST_PROVIDER_KEY": PROVIDER_KEY}

    def limit_open_files() -> None:
        if open_files is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    process = subprocess.Popen(
        [sys.executable, "-m", "app", "proxy", "--config", str(config), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_open_files,  # noqa: PLW1509 - only setrlimit, before exec
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.05)
    process.kill()
    raise AssertionError("aigw proxy did not start in 30 s")


def test_sigterm_mid_batch_loses_no_record_and_ingest_counts_them(
    tmp_path: Path, db_path: Path
) -> None:
    """Requests are in flight when SIGTERM arrives: every answered request is in the flushed
    logs, and `aigw ingest` loads exactly that many rows."""
    port = free_port()
    with providers() as urls:
        config = write_config(tmp_path, urls, "")
        process = start_proxy(config, port)
        url = f"http://127.0.0.1:{port}"
        headers = {
            "authorization": f"Bearer {GATEWAY_KEYS['team-a']}",
            "content-type": "application/json",
        }
        answered: list[int] = []

        def client() -> None:
            for _ in range(30):
                try:
                    response = request(url, "POST", "/v1/chat/completions", CHAT_BODY, headers)
                except OSError:
                    return
                answered.append(response.status)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        while len(answered) < 20:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    records = read_records(tmp_path / "logs")
    ok = answered.count(200)
    assert ok >= 20
    assert len(records) == ok  # no answered request without its record, none twice
    assert {r["StatusCode"] for r in records} == {200}
    result = run_aigw("ingest", str(tmp_path / "logs"), "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    assert f"rows: {ok:,} loaded, 0 duplicates, 0 rejected of {ok:,} records" in result.stdout


def test_proxy_raises_its_open_file_soft_limit_to_the_hard_limit(tmp_path: Path) -> None:
    """Started with a soft limit of 256 open files (below the default max_connections'
    needs), `aigw proxy` raises it to the hard limit before serving."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open-file limit ({hard}) leaves nothing to raise")
    port = free_port()
    with providers() as urls:
        process = start_proxy(write_config(tmp_path, urls, ""), port, open_files=256)
        try:
            limits = Path(f"/proc/{process.pid}/limits").read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3:5] == [str(hard), str(hard)]
    assert process.returncode == 0


def test_invalid_config_stops_at_start_with_file_key_and_reason(tmp_path: Path) -> None:
    """A bad gateway.toml: one line naming the file, the key and the reason; exit code 2."""
    config = tmp_path / "gateway.toml"
    config.write_text('[providers.openai]\nkind = "openai"\nbase_url = "ftp://x"\n')
    result = run_aigw("proxy", "--config", str(config))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {config}: providers.openai.base_url: must be an http(s) URL"
    )


def test_simulate_writes_logs_that_ingest_loads_exactly(tmp_path: Path, db_path: Path) -> None:
    """`aigw simulate -n 300`: every call is logged (failover attempts too), nothing leaks,
    and `aigw ingest` loads every record with no reject."""
    out = tmp_path / "gateway-logs"
    result = run_aigw(
        "simulate", "--requests", "300", "--seed", "5", "--out", str(out), timeout=300
    )
    assert result.returncode == 0, result.stderr
    records = read_records(out)
    plan = plan_traffic(300, seed=5)
    assert len({(r["Timestamp"] // 10**9) for r in records}) > 200
    assert len([r for r in records if r["Step"] == 0]) == len(plan.calls)
    failed_over = [r for r in records if r["Step"] > 0]
    assert failed_over and all(r["Provider"] == "anthropic" for r in failed_over)
    assert any(r.get("DlpAction") == "redact" for r in records)
    assert any(r.get("GuardrailAction") for r in records)
    assert any(r["Cached"] for r in records)
    raw = log_bytes(out)
    for secret in (
        b"AKIAIOSFODNN7EXAMPLE",
        b"ghp_0123456789",
        b"4111 1111 1111 1111",
        b"123-45-6789",
    ):
        assert secret not in raw
    loaded = run_aigw("ingest", str(out), "--db", str(db_path))
    assert loaded.returncode == 0, loaded.stderr
    expected = (
        f"rows: {len(records):,} loaded, 0 duplicates, 0 rejected of {len(records):,} records"
    )
    assert expected in loaded.stdout


@pytest.mark.parametrize("signal_number", [signal.SIGINT])
def test_sigint_also_flushes(tmp_path: Path, signal_number: int) -> None:
    """Ctrl-C (SIGINT) flushes like SIGTERM."""
    port = free_port()
    with providers() as urls:
        process = start_proxy(write_config(tmp_path, urls, ""), port)
        headers = {
            "authorization": f"Bearer {GATEWAY_KEYS['team-a']}",
            "content-type": "application/json",
        }
        for _ in range(3):
            request(f"http://127.0.0.1:{port}", "POST", "/v1/chat/completions", CHAT_BODY, headers)
        process.send_signal(signal_number)
        process.communicate(timeout=60)
    assert process.returncode == 0
    assert len(read_records(tmp_path / "logs")) == 3


def test_committed_gateway_sample_loads_exactly(db_path: Path) -> None:
    """sample_data/gateway-logs (3,000 simulated calls and their failover attempts) loads
    every record, with the policy columns filled."""
    sample = REPO / "sample_data" / "gateway-logs"
    records = read_records(sample)
    assert len([r for r in records if r["Step"] == 0]) == 3000
    result = run_aigw("ingest", str(sample), "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    n = len(records)
    assert f"rows: {n:,} loaded, 0 duplicates, 0 rejected of {n:,} records" in result.stdout
