"""Fields DLP once never read: Anthropic documents and search results, legacy OpenAI
``function_call`` arguments, ``prediction.content``, refusals, the end-user ``user`` and
``metadata.user_id`` -- found in requests, answers and streams, and redacted in place."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.policy.dlp import inspect_request, inspect_response
from proxy.policy.stream_dlp import StreamDlp
from proxy.policy.texts import request_texts, response_texts

MAIL = "jane.roe@example.com"
KEY = "AKIAIOSFODNN7EXAMPLE"
ARGS = '{"to": "jane.roe@example.com"}'

REQUESTS: list[dict[str, Any]] = [
    {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": MAIL},
                    }
                ],
            }
        ]
    },
    {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "content", "content": [{"type": "text", "text": MAIL}]},
                        "context": "from the CRM",
                    }
                ],
            }
        ]
    },
    {"messages": [{"role": "user", "content": [{"type": "document", "title": MAIL}]}]},
    {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "search_result",
                        "source": "https://example.com",
                        "title": "t",
                        "content": [{"type": "text", "text": MAIL}],
                    }
                ],
            }
        ]
    },
    {"messages": [{"role": "assistant", "function_call": {"name": "send", "arguments": ARGS}}]},
    {"messages": [{"role": "assistant", "content": None, "refusal": f"not {MAIL}"}]},
    {
        "messages": [
            {"role": "assistant", "content": [{"type": "refusal", "refusal": f"not {MAIL}"}]}
        ]
    },
    {"messages": [], "prediction": {"type": "content", "content": f"x = '{MAIL}'"}},
    {
        "messages": [],
        "prediction": {"type": "content", "content": [{"type": "text", "text": MAIL}]},
    },
    {"messages": [], "user": MAIL},
    {"messages": [], "metadata": {"user_id": MAIL}},
    {"prompt": "def f():", "suffix": f"# by {MAIL}"},
]

RESPONSES: list[dict[str, Any]] = [
    {"choices": [{"message": {"role": "assistant", "content": None, "refusal": MAIL}}]},
    {
        "choices": [
            {"message": {"role": "assistant", "function_call": {"name": "s", "arguments": ARGS}}}
        ]
    },
    {"choices": [{"message": {"role": "assistant", "audio": {"id": "a", "transcript": MAIL}}}]},
    {"choices": [{"index": 0, "delta": {"refusal": MAIL}}]},
    {"choices": [{"index": 0, "delta": {"function_call": {"arguments": MAIL}}}]},
    {"output": [{"type": "message", "content": [{"type": "refusal", "refusal": MAIL}]}]},
]


@pytest.mark.parametrize("body", REQUESTS)
def test_every_text_field_of_a_request_is_read_and_redacted(body: dict[str, Any]) -> None:
    assert any(MAIL in text for text in request_texts(body))
    result = inspect_request(body, "redact")
    assert result.categories == ("EMAIL",)
    assert MAIL not in orjson.dumps(result.body).decode()
    assert "[REDACTED:EMAIL]" in orjson.dumps(result.body).decode()


@pytest.mark.parametrize("body", RESPONSES)
def test_every_text_field_of_an_answer_is_read_and_redacted(body: dict[str, Any]) -> None:
    assert any(MAIL in text for text in response_texts(body))
    result = inspect_response(body, "redact")
    assert result.categories == ("EMAIL",)
    assert MAIL not in orjson.dumps(result.body).decode()


def test_legacy_function_call_arguments_stay_valid_json() -> None:
    body = REQUESTS[4]
    (message,) = inspect_request(body, "redact").body["messages"]
    assert orjson.loads(message["function_call"]["arguments"]) == {"to": "[REDACTED:EMAIL]"}


def _chunks(deltas: list[dict[str, Any]]) -> list[bytes]:
    events = [
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d}]} for d in deltas
    ]
    events.append(
        {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
    )
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def _joined(stream: bytes, field: str) -> str:
    out = ""
    for event in stream.split(b"\n\n"):
        if event.startswith(b"data: {"):
            delta = orjson.loads(event[6:])["choices"][0]["delta"]
            value = delta.get(field)
            out += value.get("arguments", "") if isinstance(value, dict) else value or ""
    return out


def test_a_streamed_refusal_is_redacted_in_one_character_deltas() -> None:
    text = f"I will not mail {MAIL} the key {KEY}."
    dlp = StreamDlp("redact")
    out = b"".join(dlp.process(e) for e in _chunks([{"refusal": c} for c in text]))
    out += dlp.finish()
    assert MAIL.encode() not in out and KEY.encode() not in out
    assert _joined(out, "refusal") == (
        "I will not mail [REDACTED:EMAIL] the key [REDACTED:AWS_ACCESS_KEY]."
    )
    assert dlp.categories == ("AWS_ACCESS_KEY", "EMAIL")


def test_streamed_legacy_function_call_arguments_are_held_and_redacted() -> None:
    deltas: list[dict[str, Any]] = [{"function_call": {"name": "send", "arguments": ""}}]
    deltas += [{"function_call": {"arguments": c}} for c in ARGS]
    dlp = StreamDlp("redact")
    out = b"".join(dlp.process(e) for e in _chunks(deltas))
    out += dlp.finish()
    assert MAIL.encode() not in out
    assert orjson.loads(_joined(out, "function_call")) == {"to": "[REDACTED:EMAIL]"}
