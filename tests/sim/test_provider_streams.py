"""The simulated provider's streams through real sockets: OpenAI and Anthropic SSE events,
one HTTP chunk per event, carrying the same text and usage as the plain answer."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import orjson

from tests.sim.provider_calls import CHAT, CHAT_BODY, MESSAGES, MESSAGES_BODY, call, sse_data


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
