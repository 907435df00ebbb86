"""The simulated provider as a service through real sockets: drawn errors, outages, keys,
validation, latency, the ``/_mock`` test hooks and the ``aigw mock-provider`` command."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from core.errors import ConfigError
from sim.provider import MockSettings
from tests.conftest import REPO, run_aigw
from tests.sim.conftest import StartMock
from tests.sim.provider_calls import CHAT, CHAT_BODY, MESSAGES, MESSAGES_BODY, call, chat, sse_data


async def _statuses(base: str, bodies: list[dict[str, Any]]) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def one(body: dict[str, Any]) -> int:
            async with session.post(base + CHAT, json=body) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(body) for body in bodies)))


def statuses(base: str, bodies: list[dict[str, Any]]) -> list[int]:
    """The status of each request, sent concurrently over keep-alive connections."""
    return asyncio.run(_statuses(base, bodies))


# --- drawn errors ---------------------------------------------------------------------


def test_error_rate_429_fails_the_fraction_the_hash_draws(start_mock: StartMock) -> None:
    """1000 distinct requests at rate 0.1 give exactly 113 429s, with Retry-After."""
    base = start_mock(error_rate_429=0.1)
    counts = Counter(statuses(base, [chat(f"question {i}") for i in range(1000)]))
    assert counts == {200: 887, 429: 113}
    assert 80 <= counts[429] <= 120  # near the rate: the hash is not biased
    failed = call(base, CHAT, chat("question 4"))  # request 4 failed above; attempt 1 now
    assert failed.status == 200


def test_a_drawn_429_has_the_error_shape_and_retry_after(start_mock: StartMock) -> None:
    """Request 4 draws 429 on its first attempt in both APIs' shapes."""
    base = start_mock(error_rate_429=0.1)
    reply = call(base, CHAT, chat("question 4"))
    assert reply.status == 429
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["type"] == "requests"
    assert reply.json()["error"]["code"] == "rate_limit_exceeded"
    anthropic = call(start_mock(error_rate_500=1.0), MESSAGES, MESSAGES_BODY)
    assert anthropic.status == 500
    assert anthropic.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "Simulated 500"},
    }


def test_retries_of_one_request_draw_again_the_same_way_in_every_app(
    start_mock: StartMock,
) -> None:
    """Attempts 0, 1, 2... of one body give a fixed status sequence; 500s share the draw."""
    body = chat("question 4")
    runs = []
    for _ in range(2):
        base = start_mock(error_rate_429=0.3, error_rate_500=0.3)
        runs.append([call(base, CHAT, body).status for _ in range(8)])
    # Attempt 0 fails (its draw is under 0.1, as at rate 0.1 above); attempt 2 succeeds.
    assert runs[0] == runs[1] == [429, 500, 200, 429, 200, 429, 429, 500]


# --- outages --------------------------------------------------------------------------


def test_configured_outage_window_answers_503(start_mock: StartMock) -> None:
    """Inside a window: 503 in each API's shape with Retry-After; outside it: 200."""
    down = start_mock(outages=((0.0, 600.0),))
    reply = call(down, CHAT, CHAT_BODY)
    assert reply.status == 503
    assert reply.json()["error"]["code"] == "service_unavailable"
    assert 599 <= int(reply.headers["retry-after"]) <= 600
    anthropic = call(down, MESSAGES, MESSAGES_BODY)
    assert anthropic.json()["error"]["type"] == "overloaded_error"
    later = start_mock(outages=((600.0, 700.0),))
    assert call(later, CHAT, CHAT_BODY).status == 200


def test_mock_outage_hook_starts_and_ends_an_outage(mock_provider: str) -> None:
    """POST /_mock/outage makes every request fail with its status until DELETE or the end."""
    assert call(mock_provider, "/_mock/outage", {"status": 429, "seconds": 600}).status == 200
    reply = call(mock_provider, CHAT, CHAT_BODY)
    assert reply.status == 429
    assert reply.headers["retry-after"] == "600"
    assert call(mock_provider, "/_mock/outage", method="DELETE").status == 204
    assert call(mock_provider, CHAT, CHAT_BODY).status == 200
    assert call(mock_provider, "/_mock/outage", {"status": 500, "seconds": 0.2}).status == 200
    assert call(mock_provider, CHAT, CHAT_BODY).status == 500
    time.sleep(0.3)
    assert call(mock_provider, CHAT, CHAT_BODY).status == 200
    assert call(mock_provider, "/_mock/outage", {"status": 404, "seconds": 1}).status == 400


# --- keys, validation, latency --------------------------------------------------------


def test_api_key_accepts_bearer_or_x_api_key_and_refuses_others(start_mock: StartMock) -> None:
    """Only the configured key passes; a refusal never repeats the key it was given."""
    base = start_mock(api_key="sk-mock-right")
    assert (
        call(base, CHAT, CHAT_BODY, headers={"authorization": "Bearer sk-mock-right"}).status == 200
    )
    assert call(base, MESSAGES, MESSAGES_BODY, headers={"x-api-key": "sk-mock-right"}).status == 200
    wrong = call(base, CHAT, CHAT_BODY, headers={"authorization": "Bearer sk-mock-wrong"})
    assert wrong.status == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert b"sk-mock" not in wrong.body
    assert call(base, CHAT, CHAT_BODY).status == 401
    anthropic = call(base, MESSAGES, MESSAGES_BODY, headers={"x-api-key": "nope"})
    assert anthropic.json()["error"]["type"] == "authentication_error"


def test_bad_requests_get_400_404_405_in_the_api_shape(mock_provider: str) -> None:
    """Invalid JSON, missing fields, unknown paths and wrong methods are refused plainly."""
    assert call(mock_provider, CHAT, b"{not json").status == 400
    no_model = call(mock_provider, CHAT, {"messages": [{"role": "user", "content": "x"}]})
    assert no_model.json()["error"]["type"] == "invalid_request_error"
    no_max = {key: value for key, value in MESSAGES_BODY.items() if key != "max_tokens"}
    refused = call(mock_provider, MESSAGES, no_max)
    assert refused.status == 400
    assert refused.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert call(mock_provider, "/v1/nothing", CHAT_BODY).status == 404
    assert call(mock_provider, CHAT, method="GET").status == 405


def test_latency_delays_every_answer_by_at_least_its_setting(start_mock: StartMock) -> None:
    """With latency_ms=200 an answer takes no less than 0.2 s (asyncio.sleep's floor)."""
    base = start_mock(latency_ms=200.0)
    started = time.monotonic()
    assert call(base, CHAT, CHAT_BODY).status == 200
    assert time.monotonic() - started >= 0.2


def test_stream_chunk_delay_spaces_the_events(start_mock: StartMock) -> None:
    """Six events (20 tokens: 3 deltas) 100 ms apart take no less than 0.5 s in all."""
    base = start_mock(stream_chunk_delay_ms=100.0)
    started = time.monotonic()
    reply = call(base, CHAT, {**CHAT_BODY, "max_tokens": 20, "stream": True})
    assert len(sse_data(reply.body)) == 6
    assert time.monotonic() - started >= 0.5


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"error_rate_429": 1.5}, "error_rate_429 must be between 0 and 1"),
        ({"error_rate_429": 0.6, "error_rate_500": 0.6}, "must not pass 1"),
        ({"latency_ms": -1.0}, "latency_ms must be 0 or more"),
        ({"outages": ((5.0, 2.0),)}, "outage 5.0:2.0"),
    ],
)
def test_invalid_settings_are_refused_with_one_line(settings: dict[str, Any], message: str) -> None:
    """Settings out of range raise ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=message):
        MockSettings(**settings)


# --- test hooks -----------------------------------------------------------------------


def test_recorded_requests_hide_credentials_and_keep_the_last_1000(mock_provider: str) -> None:
    """GET /_mock/requests shows method, path, headers (keys as <present>) and body."""
    secret = {"authorization": "Bearer sk-live-secret", "x-api-key": "sk-ant-secret"}
    call(mock_provider, CHAT, CHAT_BODY, headers={**secret, "x-team": "search"})
    reply = call(mock_provider, "/_mock/requests")
    assert b"secret" not in reply.body
    (recorded,) = reply.json()
    assert (recorded["method"], recorded["path"], recorded["body"]) == ("POST", CHAT, CHAT_BODY)
    assert recorded["headers"]["authorization"] == "<present>"
    assert recorded["headers"]["x-api-key"] == "<present>"
    assert recorded["headers"]["x-team"] == "search"
    assert call(mock_provider, "/_mock/requests", method="DELETE").status == 204
    assert call(mock_provider, "/_mock/requests").json() == []

    async def send_in_order() -> None:
        async with aiohttp.ClientSession() as session:
            for i in range(1005):
                async with session.post(mock_provider + CHAT, json=chat(str(i))) as response:
                    await response.read()

    asyncio.run(send_in_order())
    kept = call(mock_provider, "/_mock/requests").json()
    assert len(kept) == 1000
    assert kept[0]["body"]["messages"][0]["content"] == "5"


def test_stats_count_responses_per_path_and_status(start_mock: StartMock) -> None:
    """GET /_mock/stats counts answers by path and status; DELETE resets them."""
    base = start_mock(api_key="k")
    call(base, CHAT, CHAT_BODY, headers={"authorization": "Bearer k"})
    call(base, CHAT, CHAT_BODY, headers={"authorization": "Bearer k"})
    call(base, CHAT, CHAT_BODY)
    call(base, "/v1/nowhere")
    assert call(base, "/_mock/stats").json() == {
        "total": 4,
        "paths": {CHAT: {"200": 2, "401": 1}, "/v1/nowhere": {"404": 1}},
    }
    assert call(base, "/_mock/stats", method="DELETE").status == 204
    assert call(base, "/_mock/stats").json() == {"total": 0, "paths": {}}


# --- the command ----------------------------------------------------------------------


def test_cli_serves_on_a_free_port_and_stops_cleanly_on_sigterm(mock_provider: str) -> None:
    """`aigw mock-provider --port 0` prints its URL, answers like the library, exits 0."""
    env = {**os.environ, "MOCK_KEY_FOR_TEST": "sk-cli-key"}
    command = [sys.executable, "-m", "app", "mock-provider", "--port", "0"]
    with subprocess.Popen(
        [*command, "--api-key-env", "MOCK_KEY_FOR_TEST"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stderr is not None
        try:
            line = b""
            deadline = time.monotonic() + 30
            while b"\n" not in line and time.monotonic() < deadline:
                ready, _, _ = select.select([process.stderr], [], [], 0.5)
                if ready:
                    line += os.read(process.stderr.fileno(), 4096)
            assert line.startswith(b"mock provider listening on http://127.0.0.1:"), line
            base = line.split()[4].decode()
            key = {"authorization": "Bearer sk-cli-key"}
            answered = call(base, CHAT, CHAT_BODY, headers=key).json()
            assert answered["choices"] == call(mock_provider, CHAT, CHAT_BODY).json()["choices"]
            assert call(base, CHAT, CHAT_BODY).status == 401
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
            rest = process.stderr.read()
            assert rest == b"mock provider stopped\n"
            assert b"sk-cli-key" not in line
        finally:
            if process.poll() is None:
                process.kill()


def test_cli_refuses_a_malformed_outage_with_one_line() -> None:
    """A bad --outage exits 2 with a message naming the option."""
    result = run_aigw("mock-provider", "--outage", "10")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --outage '10': use START:END in seconds, e.g. 10:12.5"


def test_cli_says_in_one_line_when_the_port_is_taken() -> None:
    """A port already in use exits 2 naming the address, without a traceback."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_aigw("mock-provider", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use; choose another --port\n"
    )
