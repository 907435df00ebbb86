"""SIGHUP reloads gateway.toml without dropping connections, as one process (`aigw proxy`)
and under the supervisor (`--workers 2`): a changed rate limit and a new key apply to new
requests while a stream started before runs to its end; a broken file is refused with one
line and the running config stays."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from proxy import GatewayConfigError, create_gateway_app, load_gateway_config
from sim.provider import MockSettings, create_mock_app
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    PROVIDER_KEY,
    Response,
    read_records,
    request,
    sha,
    write_config,
)
from tests.proxy.redis_server import flush, run_redis_server
from tests.proxy.servers import serve_asgi
from tests.proxy.test_gateway_process import free_port
from tests.proxy.test_gateway_workers import start_workers, stop, worker_pids

NEW_KEY = "gw-key-team-c"
# A fixed window of 1e8 s (3 years): a 600 s one rolled over between two checks at 23:00:00 UTC
# (windows start at multiples of window_s since the epoch) and let a limited key through.
ROUTE = (
    '\n[routes.limited]\nmatch = ["*"]\nrate_limits = [{{ name = "{name}", per = "key", '
    'unit = "requests", limit = {limit}, window_s = 1e8 }}]\n'
)
TEAM_C = f'\n[[auth.keys]]\nid = "team-c"\nsha256 = "{sha(NEW_KEY)}"\n'


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with run_redis_server() as url:
        yield url


def chat(port: int, key: str, *, stream: bool = False) -> Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    data = orjson.dumps(body | {"stream": True} if stream else body)
    return request(f"http://127.0.0.1:{port}", "POST", "/v1/chat/completions", data, headers)


def kill_one_worker(process: subprocess.Popen[str], workers: int) -> list[int]:
    """SIGKILL a worker, wait for its replacement and 5 s more; the workers started since
    the replacement (none unless it died young)."""
    victim = worker_pids(process)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while victim in (pids := worker_pids(process)) or len(pids) < workers:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(5.0)  # started, or failed on the broken file and gone again
    return [pid for pid in worker_pids(process) if pid not in pids]


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_limits_and_keys_and_refuses_a_broken_file(
    tmp_path: Path, redis_url: str, workers: int
) -> None:
    flush(redis_url)
    port = free_port()
    slow = MockSettings(seed=3, api_key=PROVIDER_KEY, stream_chunk_delay_ms=150)
    with serve_asgi(create_mock_app(slow), lifespan="off") as provider:
        limits = f'[limits]\nurl = "{redis_url}"\n'
        config = write_config(
            tmp_path, (provider,) * 3, ROUTE.format(name="first", limit=2), limits
        )
        process = start_workers(config, port, workers)
        before = [chat(port, GATEWAY_KEYS["team-a"]).status for _ in range(3)]
        streamed: list[Response] = []
        ended: list[float] = []

        def stream() -> None:
            streamed.append(chat(port, GATEWAY_KEYS["team-b"], stream=True))
            ended.append(time.monotonic())

        streaming = threading.Thread(target=stream)
        streaming.start()
        time.sleep(0.5)  # the stream has begun (one chunk every 150 ms)
        config.write_text(
            config.read_text().replace(ROUTE.format(name="first", limit=2), "")
            + ROUTE.format(name="second", limit=3)
            + TEAM_C
        )
        process.send_signal(signal.SIGHUP)
        reloaded_at = time.monotonic()
        refused_new_key = 0
        deadline = time.monotonic() + 30
        while (status := chat(port, NEW_KEY).status) == 401 and time.monotonic() < deadline:
            refused_new_key += 1
            time.sleep(0.05)
        time.sleep(1.0)  # every worker has reloaded (they got SIGHUP at the same moment)
        after = [chat(port, GATEWAY_KEYS["team-a"]).status for _ in range(4)]
        streaming.join()
        config.write_text("[server\nthis is not TOML")
        process.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        still = [chat(port, NEW_KEY).status, chat(port, GATEWAY_KEYS["team-a"]).status]
        # a worker restarted now starts with the running config, not the broken file; the
        # kill waits until the answers above are journalled (sync_interval_s, 0.2 s): the
        # gateway keeps the records of requests answered before that (docs/gateway.md, Logs)
        time.sleep(1.0)
        replaced = kill_one_worker(process, workers) if workers > 1 else []
        stderr = stop(process)
    assert before == [200, 200, 429]
    assert status == 200
    assert after == [200, 200, 200, 429]  # the new limit, under its new name, from zero
    assert still == [200, 429]  # the running config stayed: team-c accepted, team-a limited
    (stream,) = streamed
    assert stream.status == 200
    assert stream.body.rstrip().endswith(b"data: [DONE]")  # not cut by the reload
    assert ended[0] > reloaded_at  # it was in flight when SIGHUP arrived
    assert replaced == []  # the new worker is still the one running
    assert "restarting it in" not in stderr  # it did not die young (on the broken file)
    refusals = [line for line in stderr.splitlines() if "config reload refused" in line]
    assert len(refusals) == 1, stderr
    assert f"{config}: " in refusals[0]
    records = read_records(tmp_path / "logs")
    assert len(records) == 3 + 1 + refused_new_key + 1 + 4 + 2  # every answer, once
    assert [r["StatusCode"] for r in records if r["ApiKeyId"] == "team-b"] == [200]


@pytest.mark.parametrize(
    ("old", "new", "tables"),
    [
        ("max_interval_s = 3600", "max_interval_s = 60", "[logs]"),
        ('gateway = "test"', 'gateway = "test"\nport = 9999', "[server]"),
        ("timeout_s = 2", "timeout_s = 3", "[providers]"),
    ],
)
def test_a_change_that_needs_a_restart_is_refused_and_changes_nothing(
    tmp_path: Path, old: str, new: str, tables: str
) -> None:
    urls = ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
    environ = {"TEST_PROVIDER_KEY": PROVIDER_KEY}
    path = write_config(tmp_path, urls, ROUTE.format(name="first", limit=2))
    app = create_gateway_app(load_gateway_config(path, environ))
    running = app.config
    path.write_text(path.read_text().replace(old, new, 1) + TEAM_C)
    with pytest.raises(GatewayConfigError) as refused:
        app.reload(load_gateway_config(path, environ))
    assert str(refused.value) == f"{path}: {tables} changed; restart the gateway to apply it"
    assert app.config is running
    path.write_text(path.read_text().replace(new, old, 1))  # only the new key: reloadable
    app.reload(load_gateway_config(path, environ))
    assert sorted(identity.id for identity in app.config.keys.values()) == [
        "team-a",
        "team-b",
        "team-c",
    ]
