"""[server]'s limits on real sockets: slow headers and bodies get 408, idle keep-alive
connections are closed, oversize headers get 431, past max_connections requests get 503,
and forwarded header values reach the provider byte for byte."""

from __future__ import annotations

import http.client
import io
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anthropic
import orjson
import pytest

from tests.proxy.gateway_fixtures import GATEWAY_KEYS, Running, gateway, mock_calls, read_records

AUTH = f"authorization: Bearer {GATEWAY_KEYS['team-a']}\r\n".encode()
MODELS = b"GET /v1/models HTTP/1.1\r\nhost: gw\r\n" + AUTH + b"\r\n"
CHAT = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
FAST = "header_timeout_s = 1\nbody_timeout_s = 1\nkeepalive_timeout_s = 1\n"


@contextmanager
def connect(url: str) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection (5 s at most per read)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One response (chunked or not); the connection stays open."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


def status_and_body(data: bytes) -> tuple[int, bytes]:
    """Status and body of one response given as the bytes received."""

    class Received:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(data)

    response = http.client.HTTPResponse(Received())  # type: ignore[arg-type]
    response.begin()
    return response.status, response.read()


def chat_head(length: int, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        + AUTH
        + extra
        + f"content-length: {length}\r\n\r\n".encode()
    )


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[Running]:
    """A gateway whose header, body and keep-alive timeouts are 1 s."""
    with gateway(tmp_path, server=FAST) as running:
        yield running


@pytest.mark.parametrize("trickle", [b"", b"GET /v1/models HTTP/1.1\r\nx: y"])
def test_headers_not_received_within_header_timeout_get_408_and_close(
    fast: Running, trickle: bytes
) -> None:
    """A silent connection, and one trickling its headers a byte every 0.2 s, are answered
    408 and closed after header_timeout_s (1 s), not held open."""
    with connect(fast.url) as sock:
        started = time.monotonic()
        for byte in trickle:
            sock.sendall(bytes([byte]))
            if select.select([sock], [], [], 0.2)[0]:
                break  # the gateway answered
        data = read_until_closed(sock)
        elapsed = time.monotonic() - started
    status, body = status_and_body(data)
    assert status == 408
    assert orjson.loads(body)["error"]["message"] == "request headers not received within 1 s"
    assert 0.9 < elapsed < 3


def test_slow_headers_leave_one_record_and_a_silent_connection_none(tmp_path: Path) -> None:
    """A request whose headers never end within header_timeout_s is logged once (408, no
    provider); a connection that sent nothing is answered 408 but made no request."""
    with gateway(tmp_path, server=FAST) as gw, connect(gw.url) as silent, connect(gw.url) as slow:
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\ncf-aig-event-id: slow-h\r\nhost: g")
        assert status_and_body(read_until_closed(slow))[0] == 408
        assert status_and_body(read_until_closed(silent))[0] == 408
    records = read_records(gw.logs)
    assert [(r.get("EventId"), r["StatusCode"], r["Provider"]) for r in records] == [
        ("slow-h", 408, None)
    ]
    assert records[0]["RoutingReason"] == "request headers not received within 1 s"


def test_oversize_headers_and_malformed_http_leave_one_record_each(tmp_path: Path) -> None:
    """431 (headers over max_header_bytes) and the parser's 400 for bytes that are not HTTP
    are each one record with the reason; the oversize header's value is not logged."""
    with gateway(tmp_path) as gw:
        with connect(gw.url) as sock:
            sock.sendall(chat_head(len(CHAT), b"x-big: " + b"p" * 40_000 + b"\r\n") + CHAT)
            assert status_and_body(read_until_closed(sock))[0] == 431
        with connect(gw.url) as sock:
            sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
            status, body = status_and_body(read_until_closed(sock))
        assert (status, orjson.loads(body)) == (
            400,
            {
                "error": {
                    "message": "malformed HTTP request: Invalid HTTP request received.",
                    "type": "invalid_request_error",
                    "code": None,
                }
            },
        )
    records = read_records(gw.logs)
    assert [(r["StatusCode"], r["RoutingReason"]) for r in records] == [
        (431, "request headers too large (32768 bytes max)"),
        (400, "malformed HTTP request: Invalid HTTP request received."),
    ]
    assert all(len(orjson.dumps(r)) < 2000 for r in records)


def test_body_trickled_past_body_timeout_gets_408_and_close(fast: Running) -> None:
    """A body sent a byte every 0.1 s (a slowloris) is cut off after body_timeout_s (1 s):
    408 in the API's error shape, the connection closed, nothing sent to the provider. The
    client goes on sending for half a second after the answer, and still reads it whole:
    the server lingers (reads and drops) rather than resetting the connection."""
    with connect(fast.url) as sock:
        sock.sendall(chat_head(len(CHAT)))
        started = time.monotonic()
        for byte in CHAT[:15]:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
        data = read_until_closed(sock)
        elapsed = time.monotonic() - started
    status, body = status_and_body(data)
    assert status == 408
    assert orjson.loads(body)["error"] == {
        "message": "request body not received within 1 s",
        "type": "invalid_request_error",
        "code": "request_timeout",
    }
    assert b"connection: close" in data.lower()
    assert 0.9 < elapsed < 3
    assert mock_calls(fast.openai) == []


def test_idle_keepalive_connection_is_closed_after_keepalive_timeout(fast: Running) -> None:
    """After an answer, a connection that sends nothing more is closed after
    keepalive_timeout_s (1 s)."""
    with connect(fast.url) as sock:
        sock.sendall(MODELS)
        assert read_response(sock)[0] == 200
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        assert 0.9 < time.monotonic() - started < 3


def test_headers_over_max_header_bytes_get_431_and_are_not_forwarded(tmp_path: Path) -> None:
    """A 100 KB header is refused with 431 (over the 32 KiB default), also when its end never
    comes; a 4 KB one still reaches the provider."""
    with gateway(tmp_path) as running:
        big = b"openai-project: " + b"p" * 100_000 + b"\r\n"
        with connect(running.url) as sock:
            sock.sendall(chat_head(len(CHAT), big) + CHAT)
            status, body = status_and_body(read_until_closed(sock))
        assert status == 431
        message = orjson.loads(body)["error"]["message"]
        assert message == "request headers too large (32768 bytes max)"
        with connect(running.url) as sock:  # headers that never end: refused at the limit
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nx: " + b"y" * 40_000)
            assert status_and_body(read_until_closed(sock))[0] == 431
        assert mock_calls(running.openai) == []
        with connect(running.url) as sock:
            sock.sendall(chat_head(len(CHAT), b"openai-project: " + b"p" * 4000 + b"\r\n") + CHAT)
            assert read_response(sock)[0] == 200
        assert mock_calls(running.openai)[0]["headers"]["openai-project"] == "p" * 4000


def test_past_max_connections_requests_get_503_a_record_and_a_line_on_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """With max_connections = 5 held by half-sent requests, a sixth connection's request gets
    503, one record and a warning on stderr; once one closes, requests are served again."""
    with gateway(tmp_path, server="max_connections = 5\n") as running, ExitStack() as held:
        for _ in range(5):
            sock = held.enter_context(connect(running.url))
            sock.sendall(b"GET /v1/models HTTP/1.1\r\n")
        time.sleep(0.3)  # the gateway has accepted all five
        with connect(running.url) as sock:
            sock.sendall(MODELS)
            data = read_until_closed(sock)
        status, body = status_and_body(data)
        assert (status, orjson.loads(body)["error"]["message"]) == (
            503,
            "too many connections (5 max); retry shortly",
        )
        assert b"\r\nretry-after: 1\r\n" in data.lower()
        held.close()
        time.sleep(0.3)  # the gateway has seen them close
        with connect(running.url) as sock:
            sock.sendall(MODELS)
            assert read_response(sock)[0] == 200
    assert "Exceeded concurrency limit." in capfd.readouterr().err
    assert [(r["StatusCode"], r.get("RoutingReason")) for r in read_records(running.logs)] == [
        (503, "too many connections (5 max)")  # the model list's 200 is not logged
    ]


def test_utf8_header_value_reaches_the_provider_byte_for_byte(tmp_path: Path) -> None:
    """`openai-project: café` (UTF-8) is forwarded as the same bytes, not re-encoded."""
    with gateway(tmp_path) as running, connect(running.url) as sock:
        sock.sendall(chat_head(len(CHAT), "openai-project: café\r\n".encode()) + CHAT)
        assert read_response(sock)[0] == 200
        sent = mock_calls(running.openai)[0]["headers"]["openai-project"]
    assert sent.encode("latin-1") == "café".encode()


def test_header_value_that_is_not_utf8_is_refused_with_400(tmp_path: Path) -> None:
    """A forwarded header whose bytes are not UTF-8 (latin-1 `caf\\xe9`) cannot be sent as is:
    400 naming the header, and no provider call."""
    with gateway(tmp_path) as running:
        with connect(running.url) as sock:
            sock.sendall(chat_head(len(CHAT), b"openai-project: caf\xe9\r\n") + CHAT)
            status, body = read_response(sock)
        assert status == 400
        assert orjson.loads(body)["error"] == {
            "message": "header openai-project: value is not valid UTF-8 (send ASCII or UTF-8)",
            "type": "invalid_request_error",
            "code": "invalid_header",
        }
        assert mock_calls(running.openai) == []


def test_a_body_that_timed_out_leaves_one_record(tmp_path: Path) -> None:
    """The 408 of a trickled body is logged like every other refusal: one record with the
    status the client got and the reason, no provider."""
    with gateway(tmp_path, server=FAST) as gw, connect(gw.url) as sock:
        sock.sendall(chat_head(len(CHAT), b"cf-aig-event-id: slow-1\r\n") + CHAT[:5])
        status, _ = status_and_body(read_until_closed(sock))
    assert status == 408
    records = read_records(gw.logs)
    assert [(r.get("EventId"), r["StatusCode"], r["Provider"]) for r in records] == [
        ("slow-1", 408, None)
    ]
    assert records[0]["RoutingReason"] == "request body not received within 1 s"


def test_server_refusals_on_messages_paths_take_anthropics_shape(tmp_path: Path) -> None:
    """408 (slow headers), 431 (oversize headers, through the anthropic SDK too) and the
    parser's 400 on /v1/messages: Anthropic's ``{"type": "error", ...}`` with its error
    types; the same 431 on /v1/chat/completions keeps OpenAI's shape."""
    big = b"x-big: " + b"p" * 40_000 + b"\r\n"
    messages = b"POST /v1/messages HTTP/1.1\r\nhost: gw\r\n"
    with gateway(tmp_path, server=FAST) as gw:
        answers = []
        for sent in (
            messages + b"x-slow: y",  # headers never end
            messages + big + b"\r\n",
            messages + b"bad header line without a colon\r\n\r\n",
            chat_head(0, big),
        ):
            with connect(gw.url) as sock:
                sock.sendall(sent)
                answers.append(status_and_body(read_until_closed(sock)))
        client = anthropic.Anthropic(
            base_url=gw.url, api_key=GATEWAY_KEYS["team-a"], max_retries=0, timeout=10
        )
        with pytest.raises(anthropic.APIStatusError) as refused:
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=16,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-big": "p" * 40_000},
            )
    shapes = [(status, orjson.loads(body)) for status, body in answers]
    assert [(s, b["type"], b["error"]["type"]) for s, b in shapes[:3]] == [
        (408, "error", "timeout_error"),
        (431, "error", "invalid_request_error"),
        (400, "error", "invalid_request_error"),
    ]
    assert shapes[2][1]["error"]["message"] == (
        "malformed HTTP request: Invalid HTTP request received."
    )
    assert shapes[3] == (
        431,
        {
            "error": {
                "message": "request headers too large (32768 bytes max)",
                "type": "invalid_request_error",
                "code": None,
            }
        },
    )
    assert refused.value.status_code == 431
    assert refused.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "request headers too large (32768 bytes max)",
            "code": None,
        },
    }
