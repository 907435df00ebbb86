"""Requests the gateway refuses before a provider is tried, and bodies nested too deep: each
gets its answer in the API's error shape and exactly one log record (refusals without an
accepted key up to the configured limit). Real gateway, simulated providers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from ingest.records import normalize
from proxy.asgi import GatewayApp
from proxy.config import load_gateway_config
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    PROVIDER_KEY,
    Response,
    Running,
    edited_gateway,
    gateway,
    log_bytes,
    read_records,
    request,
    sha,
    write_config,
)
from tests.proxy.servers import serve_asgi

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
CHECKED_ANSWERS = '\n[routes.chat]\nmatch = ["*"]\ndlp = "redact"\ndlp_responses = true\n'


def tool_use_chat(levels: int, model: str = "claude-haiku-4-5") -> bytes:
    """An Anthropic messages body whose tool_use input nests ``levels`` deep (the body itself
    is that plus 5: body, messages, message, content, block), written out by hand: orjson writes at
    most 254 levels."""
    value = '{"k":' * (levels - 1) + '{"secret":"x"}' + "}" * (levels - 1)
    block = '{"type":"tool_use","id":"t1","name":"f","input":' + value + "}"
    messages = '[{"role":"assistant","content":[' + block + "]}]"
    return f'{{"model":"{model}","max_tokens":16,"messages":{messages}}}'.encode()


def post_raw(gw: Running, path: str, data: bytes, **headers: str) -> Response:
    """POST ``data`` as it is, with team-a's key."""
    auth = {"authorization": f"Bearer {GATEWAY_KEYS['team-a']}", **headers}
    return request(gw.url, "POST", path, data, auth)


def loadable(records: list[dict[str, Any]]) -> None:
    """Every record loads into the warehouse (``ingest.records.normalize`` takes it)."""
    for record in records:
        normalize(record, orjson.dumps(record))


def test_bodies_nested_past_the_limit_are_refused_with_400_and_logged(tmp_path: Path) -> None:
    """300 and 600 levels (also with a provider/model name) and 2000 levels (past the JSON
    parser's own bound): 400 in the error shape, one record each, nothing dropped."""
    bodies = [
        tool_use_chat(300),
        tool_use_chat(600),
        tool_use_chat(300, "anthropic/claude-haiku-4-5"),
        tool_use_chat(2000),
    ]
    with gateway(tmp_path, log_bodies=True) as gw:
        answers = [
            post_raw(gw, "/v1/messages", body, **{"cf-aig-event-id": f"deep-{n}"})
            for n, body in enumerate(bodies)
        ]
    too_deep = {
        "message": "the request body nests deeper than 64 levels",
        "type": "invalid_request_error",
        "code": "too_deep",
    }
    assert [a.status for a in answers] == [400, 400, 400, 400]
    assert [a.json()["error"] for a in answers[:3]] == [too_deep] * 3
    assert answers[3].json()["error"]["message"] == "the request body must be a JSON object"
    records = read_records(tmp_path / "logs")
    assert sorted(r["EventId"] for r in records) == ["deep-0", "deep-1", "deep-2", "deep-3"]
    assert {(r["StatusCode"], r["Endpoint"], r["ApiKeyId"], r["Provider"]) for r in records} == {
        (400, "messages", "team-a", None)
    }
    assert [r["RequestedModel"] for r in sorted(records, key=lambda r: r["EventId"])] == [
        "claude-haiku-4-5",
        "claude-haiku-4-5",
        "anthropic/claude-haiku-4-5",
        None,  # the body could not be read
    ]
    loadable(records)


def test_the_depth_limit_is_a_setting(tmp_path: Path) -> None:
    """``[server] max_json_depth = 8``: a body 8 deep is served, one 9 deep is refused."""
    with edited_gateway(tmp_path, {'gateway = "test"': "max_json_depth = 8"}) as gw:
        served = post_raw(gw, "/v1/messages", tool_use_chat(3))
        refused = post_raw(gw, "/v1/messages", tool_use_chat(4))
    assert (served.status, refused.status) == (200, 400)
    assert refused.json()["error"]["message"] == "the request body nests deeper than 8 levels"
    assert [r["StatusCode"] for r in read_records(gw.logs)] == [200, 400]


def test_wrong_and_missing_keys_are_logged_by_fingerprint_only(tmp_path: Path) -> None:
    """401s are records: StatusCode 401, ApiKeyId the key's fingerprint (or null when none was
    sent), no Provider; the presented key appears nowhere in the logs."""
    wrong = "gw-key-stolen-or-typo-123456"
    with gateway(tmp_path) as gw:
        bad = gw.post("/v1/chat/completions", CHAT, key=wrong, headers={"cf-aig-event-id": "b"})
        none = gw.post("/v1/chat/completions", CHAT, key=None, headers={"cf-aig-event-id": "n"})
        listing = request(gw.url, "GET", "/v1/models", None, {"x-api-key": wrong})
    assert (bad.status, none.status, listing.status) == (401, 401, 401)
    assert bad.json()["error"]["type"] == "authentication_error"
    records = read_records(gw.logs)
    summary = [(r.get("EventId"), r["StatusCode"], r["ApiKeyId"], r["Endpoint"]) for r in records]
    assert summary == [
        ("b", 401, f"sha256:{sha(wrong)[:8]}", "chat/completions"),
        ("n", 401, None, "chat/completions"),
        (None, 401, f"sha256:{sha(wrong)[:8]}", None),
    ]
    assert records[0]["RoutingReason"] == (
        "invalid or missing gateway key: send Authorization: Bearer <gateway key>"
    )
    assert wrong.encode() not in log_bytes(gw.logs)
    loadable(records)


def test_a_flood_of_bad_keys_is_logged_up_to_the_per_ip_limit(tmp_path: Path) -> None:
    """``refusals_per_ip_per_min = 3``: of 5 bad-key requests from one IP in a minute, 3 are
    records; a request with a good key is still logged."""
    with edited_gateway(tmp_path, {"max_interval_s = 3600": "refusals_per_ip_per_min = 3"}) as gw:
        statuses = [gw.post("/v1/chat/completions", CHAT, key=f"bad-{n}").status for n in range(5)]
        good = gw.post("/v1/chat/completions", CHAT)
    assert (statuses, good.status) == ([401] * 5, 200)
    records = read_records(gw.logs)
    assert [r["StatusCode"] for r in records] == [401, 401, 401, 200]
    assert [r["ApiKeyId"] for r in records[:3]] == [
        f"sha256:{sha(f'bad-{n}')[:8]}" for n in range(3)
    ]


def test_unknown_paths_wrong_methods_and_unreadable_bodies_are_one_record_each(
    tmp_path: Path,
) -> None:
    """404, 405, a body that is not JSON, a body without a model, bad metadata: one record
    each with the status the client got."""
    auth = {"authorization": f"Bearer {GATEWAY_KEYS['team-a']}"}
    with gateway(tmp_path) as gw:
        answers = [
            gw.post("/v1/nothing", CHAT),
            request(gw.url, "PUT", "/v1/chat/completions", b"{}", auth),
            request(gw.url, "POST", "/v1/chat/completions", b"{oops", auth),
            gw.post("/v1/chat/completions", {"messages": []}),
            gw.post("/v1/chat/completions", CHAT, headers={"cf-aig-metadata": "[1]"}),
        ]
    assert [a.status for a in answers] == [404, 405, 400, 400, 400]
    records = read_records(gw.logs)
    assert [(r["StatusCode"], r["Endpoint"], r["ApiKeyId"]) for r in records] == [
        (404, None, None),
        (405, "chat/completions", "team-a"),
        (400, "chat/completions", "team-a"),
        (400, "chat/completions", "team-a"),
        (400, "chat/completions", "team-a"),
    ]
    assert records[0]["RoutingReason"] == "no such endpoint: /v1/nothing"
    assert records[2]["RequestSha256"] == sha("{oops")
    loadable(records)


class _DeepProvider:
    """A provider that answers every POST with one chat completion whose message content is
    nested ``levels`` deep (plain ASGI, served by uvicorn)."""

    def __init__(self, levels: int) -> None:
        content = "[" * (levels - 4) + '{"type":"text","text":"deep"}' + "]" * (levels - 4)
        self.body = (
            '{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
            f'"message":{{"role":"assistant","content":{content}}}}}],'
            '"usage":{"prompt_tokens":7,"completion_tokens":3}}'
        ).encode()
        self.content_type = b"application/json"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", self.content_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class _DeepStream(_DeepProvider):
    """A provider whose answer is an Anthropic stream whose tool_use block starts with an
    input nested ``levels`` deep."""

    def __init__(self, levels: int) -> None:
        value = '{"k":' * levels + "{}" + "}" * levels
        block = '{"type":"tool_use","id":"t1","name":"f","input":' + value + "}"
        start = '{"type":"content_block_start","index":0,"content_block":' + block + "}"
        self.body = f"event: content_block_start\ndata: {start}\n\n".encode()
        self.content_type = b"text/event-stream"


@contextmanager
def deep_gateway(
    tmp_path: Path, levels: int, routes: str = "", provider: _DeepProvider | None = None
) -> Iterator[Running]:
    """A gateway (bodies logged) whose every provider answers ``levels`` deep."""
    provider = provider or _DeepProvider(levels)
    with serve_asgi(provider, lifespan="off") as url:
        path = write_config(tmp_path, (url, url, url), routes, log_bodies=True)
        config = load_gateway_config(path, {"TEST_PROVIDER_KEY": PROVIDER_KEY})
        with serve_asgi(GatewayApp(config), lifespan="on") as gw:
            yield Running(gw, url, url, url, logs=tmp_path / "logs")


def test_answers_nested_too_deep_pass_unread_and_are_logged_by_hash(tmp_path: Path) -> None:
    """A 300-level answer reaches the client byte for byte; its record (bodies logged) holds
    a marker with the answer's SHA-256 instead of the body, and is written."""
    with deep_gateway(tmp_path, 300) as gw:
        answer = gw.post("/v1/chat/completions", CHAT)
    assert (answer.status, answer.body) == (200, _DeepProvider(300).body)
    [record] = read_records(gw.logs)
    assert (record["StatusCode"], record["Metrics"]["tokensIn"]) == (200, 7)
    assert record["ResponseBody"] == {
        "omitted": "nested deeper than 64 levels",
        "sha256": sha(_DeepProvider(300).body.decode()),
    }
    loadable([record])


def test_answers_too_deep_to_check_are_refused_with_502_and_logged(tmp_path: Path) -> None:
    """With response DLP on, a 600-level answer cannot be checked: 502, one record."""
    with deep_gateway(tmp_path, 600, CHECKED_ANSWERS) as gw:
        answer = gw.post("/v1/chat/completions", CHAT)
    message = "the provider's answer nests deeper than 64 levels: it cannot be checked"
    assert (answer.status, answer.json()["error"]["message"]) == (502, message)
    [record] = read_records(gw.logs)
    assert (record["StatusCode"], record["RoutingReason"]) == (502, message)


def test_a_stream_event_too_deep_to_translate_ends_the_stream_and_is_logged(
    tmp_path: Path,
) -> None:
    """An Anthropic stream translated for an OpenAI client, whose tool input is 300 levels
    deep, cannot be written as OpenAI JSON: the stream (already 200) ends, and its record
    says 502 and why."""
    with deep_gateway(tmp_path, 300, provider=_DeepStream(300)) as gw:
        body = {**CHAT, "model": "anthropic/claude-haiku-4-5", "stream": True}
        answer = gw.post("/v1/chat/completions", body)
    assert (answer.status, answer.body) == (200, b"")
    [record] = read_records(gw.logs)
    assert (record["StatusCode"], record["Provider"], record["RoutingReason"]) == (
        502,
        "anthropic",
        "the provider's stream could not be passed on: Recursion limit reached; usage estimated",
    )


def _oversized_post(url: str, size: int, event_id: str) -> bytes:
    """POST ``size`` bytes of body on a raw socket (the gateway may answer before it has
    read them all) and return the status line."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {GATEWAY_KEYS['team-a']}\r\ncf-aig-event-id: {event_id}\r\n"
        f"content-type: application/json\r\ncontent-length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        chunk = b" " * (1 << 20)
        sent = 0
        with contextlib.suppress(OSError):  # the gateway may close once it has answered
            while sent < size:
                sock.sendall(chunk[: size - sent])
                sent += len(chunk)
        return sock.recv(65536).split(b"\r\n", 1)[0]


def test_a_body_over_the_size_limit_is_refused_with_413_and_logged(tmp_path: Path) -> None:
    """A body past 32 MiB gets 413 and one record (StatusCode 413, the reason, no provider)."""
    with gateway(tmp_path) as gw:
        status_line = _oversized_post(gw.url, 32 * 1024 * 1024 + 1, "big-1")
        served = gw.post("/v1/chat/completions", CHAT, headers={"cf-aig-event-id": "ok-1"})
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert served.status == 200
    records = read_records(gw.logs)
    summary = [(r.get("EventId"), r["StatusCode"], r["Provider"]) for r in records]
    assert summary == [("big-1", 413, None), ("ok-1", 200, "openai")]
    assert records[0]["RoutingReason"] == "request body too large (32 MiB max)"
    loadable(records)
