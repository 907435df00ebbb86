"""The simulated provider's answers through real sockets: each API's shape, hand-counted
usage numbers, determinism across apps and seeds, and prompt caching."""

from __future__ import annotations

import base64
import math
import struct
import time
from hashlib import blake2b
from typing import Any

import orjson
import pytest

from tests.sim.conftest import StartMock
from tests.sim.provider_calls import CHAT, CHAT_BODY, MESSAGES, MESSAGES_BODY, call, chat

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


def test_a_block_type_that_is_a_list_counts_as_the_blocks_json(mock_provider: str) -> None:
    """A content block whose ``type`` is a list (unhashable) is counted as its compact
    JSON, like any unknown block: "\\0user\\0" (6) + '{"type":["image"]}' (18) = 6 tokens."""
    messages = [{"role": "user", "content": [{"type": ["image"]}]}]
    openai = call(mock_provider, CHAT, {"model": "gpt-4o-mini", "messages": messages})
    assert (openai.status, openai.json()["usage"]["prompt_tokens"]) == (200, 6)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": messages}
    anthropic = call(mock_provider, MESSAGES, body)
    assert (anthropic.status, anthropic.json()["usage"]["input_tokens"]) == (200, 6)
