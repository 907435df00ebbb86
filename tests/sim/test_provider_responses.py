"""The simulated provider's OpenAI Responses API (``POST /v1/responses``) through a real
socket: the response object with hand-counted usage, the stream's event names in order, a
forced function call, ``max_output_tokens`` as ``incomplete``, and 400 for a bad ``input``."""

from __future__ import annotations

from typing import Any

import orjson

from tests.sim.provider_calls import call

RESPONSES = "/v1/responses"
# "\0developer\0" (11) + 9 + "\0user\0" (6) + 20 = 46 characters -> ceil(46 / 4) = 12 tokens;
# the answer is "hello" (2 tokens), plus 32 reasoning tokens for effort "medium".
BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "instructions": "Be brief.",
    "input": "Say backwards: olleh",
    "reasoning": {"effort": "medium"},
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def events(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in data.splitlines() if line.startswith(b"data: ")]


def test_a_response_has_openai_shape_and_hand_counted_usage(mock_provider: str) -> None:
    body = call(mock_provider, RESPONSES, BODY).json()
    assert (body["object"], body["status"], body["model"]) == (
        "response",
        "completed",
        "gpt-4o-mini",
    )
    assert body["id"].startswith("resp_")
    [message] = body["output"]
    assert (message["type"], message["role"]) == ("message", "assistant")
    assert message["content"][0] == {
        "type": "output_text",
        "text": "hello",
        "annotations": [],
        "logprobs": [],
    }
    assert body["usage"] == {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 34,
        "output_tokens_details": {"reasoning_tokens": 32},
        "total_tokens": 46,
    }


def test_a_stream_sends_the_real_event_names_in_order(mock_provider: str) -> None:
    """A forced function call adds its item after the message; sequence numbers count up."""
    body = {**BODY, "stream": True, "tools": [WEATHER], "tool_choice": "required"}
    reply = call(mock_provider, RESPONSES, body)
    assert reply.headers["content-type"].startswith("text/event-stream")
    sent = events(reply.body)
    assert [e["type"] for e in sent] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in sent] == list(range(14))
    assert b"event: response.completed\ndata: " in reply.body
    final = sent[-1]["response"]
    call_item = final["output"][1]
    assert (call_item["type"], call_item["name"]) == ("function_call", "get_weather")
    assert orjson.loads(call_item["arguments"])["city"].startswith("city-")
    assert final["usage"]["output_tokens"] == 34


def test_max_output_tokens_ends_incomplete(mock_provider: str) -> None:
    body = {"model": "gpt-4o-mini", "input": "Say hello.", "max_output_tokens": 16}
    whole = call(mock_provider, RESPONSES, body).json()
    assert (whole["status"], whole["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )
    assert whole["usage"]["output_tokens"] == 16
    streamed = events(call(mock_provider, RESPONSES, {**body, "stream": True}).body)
    assert streamed[-1]["type"] == "response.incomplete"


def test_a_bad_input_is_a_400(mock_provider: str) -> None:
    for bad in ({"model": "gpt-4o-mini"}, {"model": "gpt-4o-mini", "input": []}):
        reply = call(mock_provider, RESPONSES, bad)
        assert reply.status == 400
        assert reply.json()["error"]["message"] == (
            "input: a string or a non-empty list of items is required"
        )
