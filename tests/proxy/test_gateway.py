"""The gateway end to end over real sockets: endpoints, auth, translation, streaming,
cache, failover and its log records. Simulated providers on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from models.request_pricing import RequestPricer, Usage
from proxy.asgi import GatewayApp
from proxy.config import load_gateway_config
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    PROVIDER_KEY,
    gateway,
    mock_calls,
    providers,
    read_records,
    request,
    write_config,
)
from tests.proxy.redis_server import run_redis_server
from tests.proxy.servers import serve_asgi

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the team."}]}
CACHED_ROUTE = """
[routes.chat]
match = ["*"]
cache = true
cache_ttl_s = 600
"""
FAILOVER_ROUTE = """
[routes.chat]
match = ["*"]
fallbacks = [{ provider = "backup" }, { provider = "anthropic", model = "claude-haiku-4-5" }]
"""


def direct(url: str, path: str, body: dict[str, object]) -> dict[str, object]:
    """The simulated provider's own answer to ``body`` (same seed, same answer)."""
    headers = {"authorization": f"Bearer {PROVIDER_KEY}", "x-api-key": PROVIDER_KEY}
    return orjson.loads(request(url, "POST", path, orjson.dumps(body), headers).body)  # type: ignore[no-any-return]


def cost(provider: str, model: str, record: dict[str, object], usage: Usage) -> float | None:
    at = datetime.fromtimestamp(int(record["Timestamp"]) / 1e9, UTC)  # type: ignore[call-overload]
    return RequestPricer().cost(provider, model, at, usage)


def test_chat_completion_is_answered_and_logged_once(tmp_path: Path) -> None:
    """A plain chat call: the provider's answer comes back; one record with its usage and cost."""
    with gateway(tmp_path) as gw:
        response = gw.post("/v1/chat/completions", CHAT)
        expected = direct(gw.openai, "/v1/chat/completions", CHAT)
    assert response.status == 200
    answer = response.json()
    assert answer["choices"] == expected["choices"]
    assert answer["usage"] == expected["usage"]
    [record] = read_records(gw.logs)
    usage = expected["usage"]
    assert isinstance(usage, dict)
    tokens = Usage(usage["prompt_tokens"], usage["completion_tokens"])
    assert record["Metrics"]["tokensIn"] == usage["prompt_tokens"]
    assert record["Metrics"]["tokensOut"] == usage["completion_tokens"]
    assert record["Metrics"]["cost"] == pytest.approx(cost("openai", "gpt-4o-mini", record, tokens))
    assert {k: record[k] for k in ("Gateway", "Provider", "Model", "Endpoint", "StatusCode")} == {
        "Gateway": "test",
        "Provider": "openai",
        "Model": "gpt-4o-mini",
        "Endpoint": "chat/completions",
        "StatusCode": 200,
    }
    assert (record["Step"], record["ApiKeyId"], record["Route"], record["Cached"]) == (
        0,
        "team-a",
        "default",
        False,
    )
    assert record["LogId"] == response.headers["cf-aig-log-id"]
    assert "RequestBody" not in record and len(record["RequestSha256"]) == 64


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong-key"}, 401),
        ({"authorization": f"Bearer {GATEWAY_KEYS['team-b']}"}, 200),
        (
            {
                "cf-aig-authorization": f"Bearer {GATEWAY_KEYS['team-b']}",
                "authorization": "Bearer sk-x",
            },
            200,
        ),
    ],
)
def test_gateway_keys(tmp_path: Path, headers: dict[str, str], status: int) -> None:
    """Only configured gateway keys get through; cf-aig-authorization wins over Authorization."""
    with gateway(tmp_path) as gw:
        response = gw.post("/v1/chat/completions", CHAT, key=None, headers=headers)
        calls = mock_calls(gw.openai)
    assert response.status == status
    assert len(calls) == (1 if status == 200 else 0)
    if status == 401:
        assert response.json()["error"]["type"] == "authentication_error"
    else:
        assert "cf-aig-authorization" not in calls[0]["headers"]  # gateway keys stay here


def test_anthropic_model_on_the_openai_endpoint_is_translated(tmp_path: Path) -> None:
    """anthropic/claude-… on /v1/chat/completions: sent as /v1/messages, answered as OpenAI."""
    body = {
        "model": "anthropic/claude-haiku-4-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name three colours."},
        ],
        "max_tokens": 64,
    }
    with gateway(tmp_path) as gw:
        response = gw.post("/v1/chat/completions", body)
        [sent] = mock_calls(gw.anthropic)
        native = direct(gw.anthropic, "/v1/messages", sent["body"])
    assert sent["path"] == "/v1/messages"
    assert sent["body"] == {
        "model": "claude-haiku-4-5",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Name three colours."}]}
        ],
        "max_tokens": 64,
        "system": "Be brief.",
    }
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == native["content"][0]["text"]  # type: ignore[index]
    usage = native["usage"]
    assert isinstance(usage, dict)
    assert answer["usage"]["prompt_tokens"] == usage["input_tokens"]
    assert answer["usage"]["completion_tokens"] == usage["output_tokens"]
    [record] = read_records(gw.logs)
    assert (record["Provider"], record["Model"], record["RequestedModel"]) == (
        "anthropic",
        "claude-haiku-4-5",
        "anthropic/claude-haiku-4-5",
    )


def test_anthropic_messages_and_cloudflare_passthrough(tmp_path: Path) -> None:
    """/v1/messages goes to the Anthropic provider as is; /{gateway}/{provider}/… too."""
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with gateway(tmp_path) as gw:
        native = gw.post(
            "/v1/messages", body, key=None, headers={"x-api-key": GATEWAY_KEYS["team-a"]}
        )
        passthrough = gw.post("/ci/anthropic/v1/messages", body)
        openai = gw.post("/ci/openai/chat/completions", CHAT)
        embeddings = gw.post(
            "/v1/embeddings", {"model": "text-embedding-3-small", "input": "hello"}
        )
    assert (native.status, passthrough.status, openai.status, embeddings.status) == (
        200,
        200,
        200,
        200,
    )
    assert native.json()["type"] == "message"
    assert native.json()["content"] == passthrough.json()["content"]
    assert embeddings.json()["object"] == "list"
    records = read_records(gw.logs)
    assert [(r["Gateway"], r["Provider"], r["Endpoint"]) for r in records] == [
        ("test", "anthropic", "messages"),
        ("ci", "anthropic", "messages"),
        ("ci", "openai", "chat/completions"),
        ("test", "openai", "embeddings"),
    ]
    assert records[3]["Metrics"]["tokensIn"] == embeddings.json()["usage"]["prompt_tokens"]


def test_openai_stream_passes_chunk_by_chunk_with_usage_logged(tmp_path: Path) -> None:
    """A stream arrives in several chunks; the gateway asks for usage and logs it, and the
    client, who did not ask, gets no usage chunk."""
    with gateway(tmp_path) as gw:
        streamed = gw.post("/v1/chat/completions", {**CHAT, "stream": True})
        [sent] = mock_calls(gw.openai)
        plain = direct(gw.openai, "/v1/chat/completions", CHAT)
    assert streamed.status == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert len(streamed.chunks) > 2
    events = [line for line in streamed.body.split(b"\n\n") if line]
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    assert all(chunk.get("usage") is None and chunk["choices"] for chunk in chunks)
    assert sent["body"]["stream_options"] == {"include_usage": True}
    [record] = read_records(gw.logs)
    usage = plain["usage"]
    assert isinstance(usage, dict)
    assert (record["Metrics"]["tokensIn"], record["Metrics"]["tokensOut"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )


def test_anthropic_stream_is_translated_to_openai_chunks(tmp_path: Path) -> None:
    """anthropic/… with stream: OpenAI chunks, text intact, usage when asked, then [DONE]."""
    body = {
        "model": "anthropic/claude-haiku-4-5",
        "messages": [{"role": "user", "content": "Count to five."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with gateway(tmp_path) as gw:
        response = gw.post("/v1/chat/completions", body)
        [sent] = mock_calls(gw.anthropic)
        native = direct(gw.anthropic, "/v1/messages", {**sent["body"], "stream": False})
    payloads = [e.removeprefix(b"data: ") for e in response.body.split(b"\n\n") if e]
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == native["content"][0]["text"]  # type: ignore[index]
    usage = native["usage"]
    assert isinstance(usage, dict)
    assert chunks[-1]["usage"]["completion_tokens"] == usage["output_tokens"]
    [record] = read_records(gw.logs)
    assert record["Metrics"]["tokensOut"] == usage["output_tokens"]


def test_cache_hit_miss_skip_and_stream_replay(tmp_path: Path) -> None:
    """Same request twice with one key: MISS then HIT (provider called once); skip-cache
    bypasses; a cached stream is replayed as a stream with the same bytes. (Other keys do
    not read these entries: tests/proxy/test_gateway_cache.py.)"""
    stream = {**CHAT, "stream": True}
    with gateway(tmp_path, CACHED_ROUTE) as gw:
        first = gw.post("/v1/chat/completions", CHAT)
        second = gw.post("/v1/chat/completions", CHAT)
        skipped = gw.post("/v1/chat/completions", CHAT, headers={"cf-aig-skip-cache": "true"})
        stream_first = gw.post("/v1/chat/completions", stream)
        stream_second = gw.post("/v1/chat/completions", stream)
        calls = mock_calls(gw.openai)
    statuses = [
        r.headers["cf-aig-cache-status"]
        for r in (first, second, skipped, stream_first, stream_second)
    ]
    assert statuses == ["MISS", "HIT", "MISS", "MISS", "HIT"]
    assert len(calls) == 3
    assert second.body == first.body
    assert stream_second.body == stream_first.body and len(stream_second.chunks) > 1
    records = read_records(gw.logs)
    assert [r["Cached"] for r in records] == [False, True, False, False, True]
    assert records[1]["Metrics"]["tokensIn"] == records[0]["Metrics"]["tokensIn"]
    assert records[1]["Metrics"]["cost"] == 0.0
    assert records[0]["CacheKeyHash"] == records[1]["CacheKeyHash"] == records[2]["CacheKeyHash"]
    # the skipped request says so (what-ifs must not replay it as cacheable); no other does
    assert [r.get("CacheSkipped") for r in records] == [None, None, True, None, None]


def test_failover_on_outage_logs_every_attempt(tmp_path: Path) -> None:
    """OpenAI down (503): the backup serves; with both down, Anthropic (translated) serves.
    Every attempt is a record with its Step; the client sees one answer."""
    with gateway(tmp_path, FAILOVER_ROUTE) as gw:
        outage = orjson.dumps({"status": 503, "seconds": 60})
        request(gw.openai, "POST", "/_mock/outage", outage, {"content-type": "application/json"})
        by_backup = gw.post("/v1/chat/completions", CHAT)
        request(gw.backup, "POST", "/_mock/outage", outage, {"content-type": "application/json"})
        by_anthropic = gw.post("/v1/chat/completions", CHAT)
    assert (by_backup.status, by_backup.headers["cf-aig-step"]) == (200, "1")
    assert (by_anthropic.status, by_anthropic.headers["cf-aig-step"]) == (200, "2")
    assert by_anthropic.json()["object"] == "chat.completion"
    records = read_records(gw.logs)
    assert [(r["Step"], r["Provider"], r["StatusCode"]) for r in records] == [
        (0, "openai", 503),
        (1, "backup", 200),
        (0, "openai", 503),
        (1, "backup", 503),
        (2, "anthropic", 200),
    ]
    assert records[1]["Metrics"]["cost"] > 0  # the backup is priced as openai (catalog_name)


def test_last_provider_error_reaches_the_client(tmp_path: Path) -> None:
    """With every provider down the client gets the last status, once."""
    with gateway(tmp_path) as gw:
        outage = orjson.dumps({"status": 429, "seconds": 60})
        request(gw.openai, "POST", "/_mock/outage", outage, {"content-type": "application/json"})
        response = gw.post("/v1/chat/completions", CHAT)
    assert response.status == 429
    assert [r["StatusCode"] for r in read_records(gw.logs)] == [429]


def test_metadata_and_event_id_travel_into_the_log(tmp_path: Path) -> None:
    """cf-aig-metadata (first five entries) and cf-aig-event-id are logged; bad metadata: 400,
    logged without it."""
    metadata = {"team": "a", "user": "ana", "agent": "bot", "n": 3, "ok": True, "sixth": "dropped"}
    with gateway(tmp_path) as gw:
        good = gw.post(
            "/v1/chat/completions",
            CHAT,
            headers={"cf-aig-metadata": orjson.dumps(metadata).decode(), "cf-aig-event-id": "e-1"},
        )
        bad = gw.post("/v1/chat/completions", CHAT, headers={"cf-aig-metadata": '{"a": {"b": 1}}'})
    assert (good.status, bad.status) == (200, 400)
    assert "cf-aig-metadata entry 'a'" in bad.json()["error"]["message"]
    record, refused = read_records(gw.logs)
    assert (refused["StatusCode"], refused["Metadata"], refused["ApiKeyId"]) == (
        400,
        None,
        "team-a",
    )
    assert record["Metadata"] == {"team": "a", "user": "ana", "agent": "bot", "n": 3, "ok": True}
    assert record["EventId"] == "e-1"


def test_models_list_and_unknown_paths(tmp_path: Path) -> None:
    """GET /v1/models answers in OpenAI's shape; unknown paths are 404 in the same shape."""
    with gateway(tmp_path) as gw:
        models = request(
            gw.url, "GET", "/v1/models", None, {"authorization": f"Bearer {GATEWAY_KEYS['team-a']}"}
        )
        missing = gw.post("/v1/nothing", CHAT)
        bad_json = request(
            gw.url,
            "POST",
            "/v1/chat/completions",
            b"{oops",
            {"authorization": f"Bearer {GATEWAY_KEYS['team-a']}"},
        )
    assert models.status == 200 and orjson.loads(models.body)["object"] == "list"
    assert (
        missing.status == 404
        and missing.json()["error"]["message"] == "no such endpoint: /v1/nothing"
    )
    assert bad_json.status == 400


def test_two_gateways_share_cache_and_limits_through_redis(tmp_path: Path) -> None:
    """With cache and limits on Redis, a second gateway instance answers from the first
    one's cache and counts against the same rate limit."""
    routes = (
        '\n[routes.chat]\nmatch = ["*"]\ncache = true\n'
        'rate_limits = [{ name = "per-key", per = "key", unit = "requests", limit = 3, '
        "window_s = 1e8 }]\n"
    )
    with run_redis_server() as redis_url, providers() as urls:
        path = write_config(tmp_path, urls, routes)
        text = path.read_text().replace(
            "[cache]\n", f'[limits]\nurl = "{redis_url}"\n[cache]\nurl = "{redis_url}"\n'
        )
        path.write_text(text)
        config = load_gateway_config(path, {"TEST_PROVIDER_KEY": PROVIDER_KEY})
        with serve_asgi(GatewayApp(config)) as first, serve_asgi(GatewayApp(config)) as second:
            headers = {
                "authorization": f"Bearer {GATEWAY_KEYS['team-a']}",
                "content-type": "application/json",
            }
            body = orjson.dumps(CHAT)
            answers = [
                request(url, "POST", "/v1/chat/completions", body, headers)
                for url in (first, second, first, second)
            ]
        calls = mock_calls(urls[0])
    assert [a.headers.get("cf-aig-cache-status") for a in answers[:3]] == ["MISS", "HIT", "HIT"]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert len(calls) == 1


def test_tool_calls_are_translated_both_ways_whole_and_streamed(tmp_path: Path) -> None:
    """An OpenAI client with tools on anthropic/…: the provider gets Anthropic tools and a
    tool_choice; its tool_use comes back as OpenAI tool_calls, whole and streamed."""
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    body = {
        "model": "anthropic/claude-haiku-4-5",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [weather],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 64,
    }
    with gateway(tmp_path) as gw:
        whole = gw.post("/v1/chat/completions", body)
        streamed = gw.post("/v1/chat/completions", {**body, "stream": True})
        sent = mock_calls(gw.anthropic)
        native = direct(gw.anthropic, "/v1/messages", sent[0]["body"])
    assert sent[0]["body"]["tools"] == [
        {"name": "get_weather", "input_schema": weather["function"]["parameters"]}  # type: ignore[index]
    ]
    assert sent[0]["body"]["tool_choice"] == {"type": "tool", "name": "get_weather"}
    tool_use = native["content"][1]  # type: ignore[index]
    assert tool_use["type"] == "tool_use"
    [choice] = whole.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": tool_use["id"],
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": orjson.dumps(tool_use["input"]).decode(),
            },
        }
    ]
    chunks = [orjson.loads(e[6:]) for e in streamed.body.split(b"\n\n") if e.startswith(b"data: {")]
    calls = [
        call
        for c in chunks
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert calls[0]["id"] == tool_use["id"]
    assert calls[0]["function"]["name"] == "get_weather"
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == tool_use["input"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
