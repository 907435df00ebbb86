"""What the simulated provider's answers look like: OpenAI's and Anthropic's JSON bodies,
SSE streams and error shapes, as bytes ready to send. Pure functions, no state.

Streams split the answer text into deltas of 8 tokens (32 characters): fewer events than a
real provider's one token each, so that a 600-token stream stays cheap in the gateway
benchmark, yet still many separate body messages for a proxy's no-buffering tests.
"""

from __future__ import annotations

import base64
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import shake_128
from typing import Any, Final

import orjson

from sim.usage import CHARS_PER_TOKEN, Usage

__all__ = [
    "MODELS",
    "STREAM_TOKENS_PER_CHUNK",
    "Answer",
    "ToolCall",
    "anthropic_message",
    "anthropic_stream",
    "embedding",
    "error_body",
    "models_list",
    "openai_chat",
    "openai_chat_stream",
    "openai_completion",
    "openai_completion_stream",
    "openai_embeddings",
]

STREAM_TOKENS_PER_CHUNK: Final = 8
_CHUNK_CHARS: Final = STREAM_TOKENS_PER_CHUNK * CHARS_PER_TOKEN
_FINGERPRINT: Final = "fp_aigw_mock"

MODELS: Final = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-1",
)

# status -> (OpenAI error type, OpenAI code, Anthropic error type), as the real APIs answer.
_ERRORS: Final[dict[int, tuple[str, str | None, str]]] = {
    400: ("invalid_request_error", None, "invalid_request_error"),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error"),
    404: ("invalid_request_error", "unknown_url", "not_found_error"),
    405: ("invalid_request_error", "method_not_allowed", "invalid_request_error"),
    413: ("invalid_request_error", "request_too_large", "request_too_large"),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error"),
    500: ("server_error", "server_error", "api_error"),
    503: ("server_error", "service_unavailable", "overloaded_error"),
}


@dataclass(frozen=True, slots=True)
class Answer:
    """One generated answer: ``created`` in Unix seconds; ``truncated`` when it hit max_tokens."""

    id: str
    created: int
    model: str
    text: str
    usage: Usage
    truncated: bool
    tool_call: ToolCall | None = None  # Anthropic only: the answer calls this tool


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A ``tool_use`` block of an answer: its id, the tool's name and the input."""

    id: str
    name: str
    input: dict[str, Any]


def error_body(status: int, message: str, *, anthropic: bool) -> bytes:
    """An error in OpenAI's ``{"error": {...}}`` or Anthropic's ``{"type": "error", ...}`` shape."""
    openai_type, code, anthropic_type = _ERRORS.get(status, _ERRORS[500])
    if anthropic:
        return orjson.dumps(
            {"type": "error", "error": {"type": anthropic_type, "message": message}}
        )
    error = {"message": message, "type": openai_type, "param": None, "code": code}
    return orjson.dumps({"error": error})


def models_list(created: int) -> bytes:
    """``GET /v1/models``: every model the mock names (it answers for any model, though)."""
    data = [
        {"id": model, "object": "model", "created": created, "owned_by": _owner(model)}
        for model in MODELS
    ]
    return orjson.dumps({"object": "list", "data": data})


def _owner(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


def _openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _anthropic_usage(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage object; ``cache_creation`` (the writes by TTL) when it wrote any."""
    shape: dict[str, Any] = {
        "input_tokens": usage.uncached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }
    if usage.cache_write_tokens:
        shape["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens - usage.cache_write_1h_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        }
    return shape


def _pieces(text: str) -> Iterable[str]:
    return (text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS))


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_DONE: Final = b"data: [DONE]\n\n"


def openai_chat(answer: Answer) -> bytes:
    """A ``chat.completion`` object with one choice."""
    return orjson.dumps(
        {
            "id": answer.id,
            "object": "chat.completion",
            "created": answer.created,
            "model": answer.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": answer.text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "length" if answer.truncated else "stop",
                }
            ],
            "usage": _openai_usage(answer.usage),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    )


def openai_chat_stream(answer: Answer, *, include_usage: bool) -> list[bytes]:
    """SSE events: a role chunk, content deltas, a finish chunk, [a usage chunk], ``[DONE]``.

    With ``include_usage`` every chunk carries ``"usage": null`` and an extra last chunk
    has empty ``choices`` and the usage, as OpenAI sends them.
    """
    head: dict[str, Any] = {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }
    if include_usage:
        head["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**head, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events.extend(chunk({"content": piece}) for piece in _pieces(answer.text))
    events.append(chunk({}, "length" if answer.truncated else "stop"))
    if include_usage:
        events.append(_sse({**head, "choices": [], "usage": _openai_usage(answer.usage)}))
    events.append(_DONE)
    return events


def openai_completion(answer: Answer) -> bytes:
    """A legacy ``text_completion`` object with one choice."""
    return orjson.dumps(
        {
            "id": answer.id,
            "object": "text_completion",
            "created": answer.created,
            "model": answer.model,
            "choices": [
                {
                    "text": answer.text,
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": "length" if answer.truncated else "stop",
                }
            ],
            "usage": _openai_usage(answer.usage),
            "system_fingerprint": _FINGERPRINT,
        }
    )


def openai_completion_stream(answer: Answer, *, include_usage: bool) -> list[bytes]:
    """SSE events: text chunks, a finish chunk, [a usage chunk], ``[DONE]``."""
    head: dict[str, Any] = {
        "id": answer.id,
        "object": "text_completion",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": _FINGERPRINT,
    }
    if include_usage:
        head["usage"] = None

    def chunk(text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return _sse({**head, "choices": [choice]})

    events = [chunk(piece) for piece in _pieces(answer.text)]
    events.append(chunk("", "length" if answer.truncated else "stop"))
    if include_usage:
        events.append(_sse({**head, "choices": [], "usage": _openai_usage(answer.usage)}))
    events.append(_DONE)
    return events


def embedding(salt: bytes, model: str, text: str, dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` floats that depends only on (seed, model, text)."""
    seed = salt + model.encode() + b"\x00" + text.encode("utf-8", "surrogatepass")
    raw = array("h", shake_128(seed).digest(2 * dimensions))
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [value / norm for value in raw]


def openai_embeddings(
    model: str, vectors: list[list[float]], tokens: int, *, as_base64: bool
) -> bytes:
    """An embeddings ``list``; ``as_base64`` packs each vector as little-endian float32."""
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(vectors):
        value: list[float] | str = vector
        if as_base64:
            packed = array("f", vector)
            if packed.itemsize != 4:  # pragma: no cover - every CPython platform has 4-byte floats
                raise ValueError("float32 arrays are required")
            value = base64.b64encode(packed.tobytes()).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def anthropic_message(answer: Answer) -> bytes:
    """A ``message`` object with one text block."""
    return orjson.dumps(
        {
            "id": answer.id,
            "type": "message",
            "role": "assistant",
            "model": answer.model,
            "content": _anthropic_content(answer),
            "stop_reason": _anthropic_stop(answer),
            "stop_sequence": None,
            "usage": _anthropic_usage(answer.usage),
        }
    )


def anthropic_stream(answer: Answer) -> list[bytes]:
    """SSE events: message_start, content_block_start, text deltas, content_block_stop,
    message_delta, message_stop.

    As Anthropic does, ``message_start`` carries the input usage with ``output_tokens: 1``;
    ``message_delta`` carries the final (cumulative) ``output_tokens``.
    """
    start_usage = {**_anthropic_usage(answer.usage), "output_tokens": 1}
    message: dict[str, Any] = {
        "id": answer.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [
        _event(b"message_start", {"type": "message_start", "message": message}),
        _event(
            b"content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events.extend(
        _event(
            b"content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
        )
        for piece in _pieces(answer.text)
    )
    stop = _anthropic_stop(answer)
    events.append(_event(b"content_block_stop", {"type": "content_block_stop", "index": 0}))
    if answer.tool_call is not None:
        events += _tool_use_events(answer.tool_call, index=1)
    events += [
        _event(
            b"message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": answer.usage.output_tokens},
            },
        ),
        _event(b"message_stop", {"type": "message_stop"}),
    ]
    return events


def _anthropic_content(answer: Answer) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "text", "text": answer.text}]
    call = answer.tool_call
    if call is not None:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
    return content


def _anthropic_stop(answer: Answer) -> str:
    if answer.tool_call is not None:
        return "tool_use"
    return "max_tokens" if answer.truncated else "end_turn"


def _tool_use_events(call: ToolCall, *, index: int) -> list[bytes]:
    """A ``tool_use`` block streamed: start (empty input), the input JSON in two
    ``input_json_delta`` pieces, stop."""
    arguments = orjson.dumps(call.input).decode()
    half = len(arguments) // 2
    block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
    events = [
        _event(
            b"content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
    ]
    events.extend(
        _event(
            b"content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            },
        )
        for piece in (arguments[:half], arguments[half:])
    )
    events.append(_event(b"content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _text_delta(text: str) -> dict[str, str]:
    return {"type": "text_delta", "text": text}
