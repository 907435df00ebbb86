"""The simulated provider through real sockets: shapes, usage numbers, determinism, streams,
drawn errors, outages, keys, test hooks and the ``aigw mock-provider`` command."""

from __future__ import annotations

import asyncio
import base64
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from hashlib import blake2b
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from core.errors import ConfigError
from sim.provider import MockSettings
from tests.conftest import REPO, run_aigw
from tests.sim.conftest import StartMock

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
# 58 prompt characters: "\0system\0" (8) + 14 + "\0user\0" (6) + 30 -> ceil(58 / 4) = 15 tokens.
CHAT_BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
}
# 50 prompt characters: 14 (system) + "\0user\0" (6) + 30 -> ceil(50 / 4) = 13 tokens.
MESSAGES_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def call(
    base: str,
    path: str,
    body: Any = None,
    *,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request with urllib; HTTP errors are replies too."""
    data = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        base + path,
        data=data,
        method=method or ("GET" if data is None else "POST"),
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return Reply(response.status, _lower(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, _lower(error.headers.items()), error.read())


def _lower(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def chat(content: str, **extra: Any) -> dict[str, Any]:
    """A one-message chat request body."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}


def sse_data(body: bytes) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded (``[DONE]`` kept as text)."""
    payloads: list[Any] = []
    for line in body.decode().split("\n"):
        if line.startswith("data: "):
            text = line.removeprefix("data: ")
            payloads.append(text if text == "[DONE]" else orjson.loads(text))
    return payloads


def sse_events(body: bytes) -> list[tuple[str, Any]]:
    """(event name, decoded data) pairs of an Anthropic SSE body."""
    events = []
    for block in body.decode().strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        events.append((name_line.removeprefix("event: "), orjson.loads(data_line[6:])))
    return events


def http_chunks(base: str, path: str, body: Any) -> list[bytes]:
    """The HTTP/1.1 chunks of a response exactly as they arrive on the socket."""
    url = urlsplit(base)
    payload = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {url.netloc}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    )
    received = b""
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode() + payload)
        while data := sock.recv(65536):
            received += data
    headers, _, rest = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in headers.lower()
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        rest = rest[size + 2 :]


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


# --- shapes and usage -----------------------------------------------------------------


def test_chat_completion_has_openai_shape_and_hand_counted_usage(mock_provider: str) -> None:
    """A chat completion echoes the model and reports 15 prompt, 321 completion tokens."""
    before = int(time.time())
    reply = call(mock_provider, CHAT, CHAT_BODY)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert before <= body["created"] <= int(time.time())
    assert body["model"] == "gpt-4o-mini"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    text = choice["message"]["content"]
    assert len(text) == 4 * 321 - 1
    assert text.startswith("you any tag say say big")
    assert body["usage"]["prompt_tokens"] == 15
    assert body["usage"]["completion_tokens"] == 321
    assert body["usage"]["total_tokens"] == 336
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_completion_has_legacy_shape_and_usage(mock_provider: str) -> None:
    """A 22-character prompt is 6 tokens; the seed-0 answer is 91 tokens."""
    body = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "Say hello to the world",
        "max_tokens": 100,
    }
    reply = call(mock_provider, "/v1/completions", body).json()
    assert reply["id"].startswith("cmpl-")
    assert reply["object"] == "text_completion"
    assert reply["model"] == "gpt-3.5-turbo-instruct"
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert len(reply["choices"][0]["text"]) == 4 * 91 - 1
    usage = reply["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        6,
        91,
        97,
    )


def test_anthropic_message_has_its_shape_and_usage(mock_provider: str) -> None:
    """A message echoes the model and reports 13 input and 451 output tokens."""
    reply = call(mock_provider, MESSAGES, MESSAGES_BODY)
    assert reply.status == 200
    body = reply.json()
    assert body["id"].startswith("msg_")
    assert (body["type"], body["role"], body["model"]) == (
        "message",
        "assistant",
        "claude-sonnet-4-5",
    )
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert body["content"][0]["type"] == "text"
    assert len(body["content"][0]["text"]) == 4 * 451 - 1
    assert body["usage"] == {
        "input_tokens": 13,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 451,
    }


def test_embeddings_are_unit_vectors_that_depend_only_on_the_text(mock_provider: str) -> None:
    """1536 dimensions by default, 3 + 5 tokens, the same vector alone or in a batch."""
    body = {"model": "text-embedding-3-small", "input": ["first text", "second, longer text"]}
    reply = call(mock_provider, "/v1/embeddings", body).json()
    assert reply["object"] == "list"
    assert reply["model"] == "text-embedding-3-small"
    assert reply["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    first, second = (item["embedding"] for item in reply["data"])
    assert [item["index"] for item in reply["data"]] == [0, 1]
    assert len(first) == len(second) == 1536
    assert math.isclose(math.fsum(v * v for v in first), 1.0, rel_tol=1e-12)
    assert first != second
    alone = call(mock_provider, "/v1/embeddings", {**body, "input": "first text"}).json()
    assert alone["data"][0]["embedding"] == first
    assert alone["usage"]["prompt_tokens"] == 3


def test_embeddings_honour_dimensions_and_base64(mock_provider: str) -> None:
    """``dimensions`` sizes the vector; base64 packs the same values as float32."""
    body = {"model": "text-embedding-3-large", "input": "abc", "dimensions": 4}
    floats = call(mock_provider, "/v1/embeddings", body).json()["data"][0]["embedding"]
    packed = call(mock_provider, "/v1/embeddings", {**body, "encoding_format": "base64"}).json()
    decoded = struct.unpack("<4f", base64.b64decode(packed["data"][0]["embedding"]))
    assert len(floats) == 4
    assert decoded == pytest.approx(floats, abs=1e-7)


def test_models_lists_openai_and_anthropic_models(mock_provider: str) -> None:
    """``GET /v1/models`` is an OpenAI list naming both providers' models."""
    body = call(mock_provider, "/v1/models").json()
    assert body["object"] == "list"
    owners = {item["id"]: item["owned_by"] for item in body["data"]}
    assert owners["gpt-4o-mini"] == "openai"
    assert owners["claude-sonnet-4-5"] == "anthropic"
    assert all(item["object"] == "model" for item in body["data"])


def test_small_max_tokens_is_used_exactly_and_reported_as_a_cut(mock_provider: str) -> None:
    """Under 20 tokens the answer is exactly max_tokens long and stops for length."""
    openai = call(mock_provider, CHAT, {**CHAT_BODY, "max_completion_tokens": 5}).json()
    assert openai["usage"]["completion_tokens"] == 5
    assert openai["choices"][0]["finish_reason"] == "length"
    assert len(openai["choices"][0]["message"]["content"]) == 19
    anthropic = call(mock_provider, MESSAGES, {**MESSAGES_BODY, "max_tokens": 7}).json()
    assert anthropic["usage"]["output_tokens"] == 7
    assert anthropic["stop_reason"] == "max_tokens"


def test_output_tokens_follow_the_documented_digest_rule(mock_provider: str) -> None:
    """20 + first 8 digest bytes mod 581, digest = BLAKE2b-256(path, sorted body; key = seed)."""
    canonical = orjson.dumps(CHAT_BODY, option=orjson.OPT_SORT_KEYS)
    key = (0).to_bytes(8, "big", signed=True)
    digest = blake2b(CHAT.encode() + b"\n" + canonical, digest_size=32, key=key).digest()
    expected = 20 + int.from_bytes(digest[:8], "big") % 581
    assert expected == 321
    assert call(mock_provider, CHAT, CHAT_BODY).json()["usage"]["completion_tokens"] == expected


# --- determinism ----------------------------------------------------------------------


def test_same_body_and_seed_give_the_same_answer_in_two_apps(start_mock: StartMock) -> None:
    """Two fresh apps with one seed answer alike; key order in the body does not matter."""
    first, second = start_mock(seed=7), start_mock(seed=7)
    reordered = {"messages": CHAT_BODY["messages"], "model": "gpt-4o-mini"}
    one = call(first, CHAT, CHAT_BODY).json()
    two = call(second, CHAT, reordered).json()
    assert one["choices"] == two["choices"]
    assert one["usage"] == two["usage"]


def test_different_prompts_and_seeds_give_different_answers(start_mock: StartMock) -> None:
    """Another prompt or another seed changes the answer text and its length."""
    zero, one = start_mock(seed=0), start_mock(seed=1)
    base = call(zero, CHAT, CHAT_BODY).json()
    other_prompt = call(zero, CHAT, chat("What is the capital of Spain?")).json()
    other_seed = call(one, CHAT, CHAT_BODY).json()
    texts = {
        answer["choices"][0]["message"]["content"] for answer in (base, other_prompt, other_seed)
    }
    assert len(texts) == 3
    assert other_seed["usage"]["completion_tokens"] == 331


# --- streaming ------------------------------------------------------------------------


def test_openai_stream_sends_each_chunk_separately_with_the_same_usage(
    mock_provider: str,
) -> None:
    """Role chunk, 41 deltas of 8 tokens, finish, usage, [DONE]: one HTTP chunk per event."""
    plain = call(mock_provider, CHAT, CHAT_BODY).json()
    streamed = {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}}
    chunks = http_chunks(mock_provider, CHAT, streamed)
    assert len(chunks) == 1 + 41 + 1 + 1 + 1  # 321 tokens / 8 per delta -> 41 deltas
    assert all(chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") for chunk in chunks)
    events = [sse_data(chunk)[0] for chunk in chunks]
    assert events[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = "".join(event["choices"][0]["delta"].get("content", "") for event in events[:-2])
    assert deltas == plain["choices"][0]["message"]["content"]
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["choices"] == []
    assert events[-2]["usage"] == plain["usage"]
    assert {event["object"] for event in events[:-1]} == {"chat.completion.chunk"}
    assert len({event["id"] for event in events[:-1]}) == 1


def test_openai_stream_without_include_usage_has_no_usage_chunk(mock_provider: str) -> None:
    """Without stream_options the stream ends finish chunk, [DONE], and says nothing of usage."""
    reply = call(mock_provider, CHAT, {**CHAT_BODY, "stream": True})
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = sse_data(reply.body)
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in event for event in events[:-1])


def test_completion_stream_carries_text_and_usage(mock_provider: str) -> None:
    """A streamed completion joins to the plain text and ends with the same usage."""
    body = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "Say hello to the world",
        "max_tokens": 100,
    }
    plain = call(mock_provider, "/v1/completions", body).json()
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    events = sse_data(call(mock_provider, "/v1/completions", streamed).body)
    assert (
        "".join(event["choices"][0]["text"] for event in events[:-2])
        == (plain["choices"][0]["text"])
    )
    assert events[-2]["usage"] == plain["usage"]


def test_anthropic_stream_has_the_event_sequence_and_the_same_usage(mock_provider: str) -> None:
    """message_start, block start, 57 deltas, block stop, message_delta, message_stop."""
    plain = call(mock_provider, MESSAGES, MESSAGES_BODY).json()
    chunks = http_chunks(mock_provider, MESSAGES, {**MESSAGES_BODY, "stream": True})
    events = [sse_events(chunk)[0] for chunk in chunks]
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 57,  # 451 tokens / 8 per delta
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["model"] == "claude-sonnet-4-5"
    assert start["usage"]["input_tokens"] == plain["usage"]["input_tokens"]
    assert start["usage"]["cache_read_input_tokens"] == 0
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == plain["content"][0]["text"]
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == plain["usage"]["output_tokens"]


# --- prompt caching -------------------------------------------------------------------


def test_openai_reports_cached_tokens_in_1024_token_blocks(mock_provider: str) -> None:
    """A repeated prefix of >= 4096 characters reads whole 1024-token blocks, per model."""

    def cached(body: dict[str, Any]) -> tuple[int, int]:
        usage = call(mock_provider, CHAT, body).json()["usage"]
        return usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"]

    long = "x" * 5000  # with "\0user\0": 5006 characters, 1252 tokens, one whole block
    assert cached(chat(long)) == (1252, 0)
    assert cached(chat(long)) == (1252, 1024)
    assert cached(chat(long + "y")) == (1252, 1024)  # same first block, other tail
    assert cached({**chat(long), "model": "gpt-4o"}) == (1252, 0)
    longer = "x" * 9000  # 9006 characters, 2252 tokens: its first block was seen above
    assert cached(chat(longer)) == (2252, 1024)
    assert cached(chat(longer)) == (2252, 2048)
    assert cached(chat("x" * 4000)) == (1002, 0)  # under one block: never cached


def test_anthropic_writes_then_reads_cache_control_prefixes(mock_provider: str) -> None:
    """A marked 1250-token system block is written once, then read; the rest is input."""
    system = [{"type": "text", "text": "s" * 5000, "cache_control": {"type": "ephemeral"}}]
    body = {**MESSAGES_BODY, "system": system, "messages": [{"role": "user", "content": "Hi"}]}

    def usage(request: dict[str, Any]) -> tuple[int, int, int]:
        got = call(mock_provider, MESSAGES, request).json()["usage"]
        return (
            got["input_tokens"],
            got["cache_creation_input_tokens"],
            got["cache_read_input_tokens"],
        )

    assert usage(body) == (2, 1250, 0)  # 5008 characters: 1250 marked + 2 after
    assert usage(body) == (2, 0, 1250)
    marked_turn = [
        {"type": "text", "text": "u" * 4000, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "tail"},
    ]
    second = {**body, "messages": [{"role": "user", "content": marked_turn}]}
    # 5000 + 6 + 4000 = 9006 marked (2252 tokens) + 4: reads 1250, writes 1002, 1 input.
    assert usage(second) == (1, 1002, 1250)
    assert usage(second) == (1, 0, 2252)
    small = [{"type": "text", "text": "s" * 400, "cache_control": {"type": "ephemeral"}}]
    assert usage({**body, "system": small}) == (102, 0, 0)  # under 1024 tokens: not cached
    assert usage({**body, "system": small}) == (102, 0, 0)


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
