"""OpenAI chat <-> Anthropic messages: tools, tool choice, tool history, tool calls in
answers and streams (the text cases are covered through the gateway in test_gateway)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.providers.translate import AnthropicToOpenAIStream, anthropic_request, openai_response

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_tools_and_a_tool_history_become_anthropic_blocks() -> None:
    """Definitions -> input_schema; assistant tool_calls -> tool_use; tool -> tool_result."""
    body = {
        "model": "x",
        "tools": [WEATHER, {"type": "function", "function": {"name": "now"}}],
        "tool_choice": "required",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "21 C"}],
            },
            {"role": "user", "content": "Which is warmer?"},
        ],
    }
    sent = anthropic_request(body, "claude-haiku-4-5")
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
            "description": "Weather for a city",
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",  # tool results first, then the user's text, in one message
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "21 C"},
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("auto", None, None),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ("none", False, {"type": "none"}),  # no tools: nothing to run in parallel
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: dict[str, Any] | None) -> None:
    """OpenAI tool_choice and parallel_tool_calls map to Anthropic's tool_choice."""
    body: dict[str, Any] = {"model": "x", "messages": [], "tools": [WEATHER]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert anthropic_request(body, "m").get("tool_choice") == expected


def test_arguments_that_are_not_json_are_kept() -> None:
    """A malformed arguments string from a client is passed on, not dropped."""
    call = {"id": "c", "function": {"name": "f", "arguments": "city=Paris"}}
    body = {"model": "x", "messages": [{"role": "assistant", "tool_calls": [call]}]}
    [message] = anthropic_request(body, "m")["messages"]
    assert message["content"] == [
        {"type": "tool_use", "id": "c", "name": "f", "input": {"arguments": "city=Paris"}}
    ]


def test_tool_use_in_an_answer_becomes_tool_calls() -> None:
    """Anthropic tool_use blocks -> OpenAI tool_calls with JSON-string arguments."""
    answer = {
        "id": "msg_1",
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
        "stop_reason": "tool_use",
    }
    [choice] = openai_response(answer, None, "claude")["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    only_tool = {**answer, "content": answer["content"][1:]}  # type: ignore[index]
    assert openai_response(only_tool, None, "c")["choices"][0]["message"]["content"] is None


def test_streamed_tool_use_becomes_tool_call_deltas() -> None:
    """content_block_start(tool_use) and input_json_delta -> OpenAI tool_calls deltas."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 9}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hm."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_9",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"Rome"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 7},
        },
        {"type": "message_stop"},
    ]
    stream = AnthropicToOpenAIStream("claude", include_usage=False)
    out = b"".join(stream.convert(orjson.dumps(e)) for e in events)
    chunks = [orjson.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"city": "Rome"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert out.endswith(b"data: [DONE]\n\n")


def test_arguments_given_as_an_object_are_used_as_the_input() -> None:
    """Some clients send arguments as a JSON object rather than a string."""
    call = {"id": "c", "function": {"name": "f", "arguments": {"city": "Oslo"}}}
    body = {"model": "x", "messages": [{"role": "assistant", "tool_calls": [call]}]}
    [message] = anthropic_request(body, "m")["messages"]
    assert message["content"] == [
        {"type": "tool_use", "id": "c", "name": "f", "input": {"city": "Oslo"}}
    ]


def test_malformed_tool_fields_do_not_break_translation() -> None:
    """A non-list tool_calls or tools, or non-object parameters, are ignored, not a 500."""
    body = {
        "model": "x",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": "oops"}}],
        "messages": [{"role": "assistant", "content": "hi", "tool_calls": "nope"}],
    }
    request = anthropic_request(body, "m")
    assert request["messages"] == [
        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}
    ]
    assert request["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert "tools" not in anthropic_request({"model": "x", "messages": [], "tools": 5}, "m")
    assert anthropic_request({"model": "x", "messages": 5}, "m")["messages"] == []


def test_a_streamed_tool_call_without_input_gets_empty_json_arguments() -> None:
    """A tool with no parameters streams no input_json_delta; OpenAI clients parse '{}'."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m2", "usage": {"input_tokens": 3}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_delta", "index": [1], "delta": "odd"},  # ignored, not a crash
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}},
        {"type": "message_stop"},
    ]
    stream = AnthropicToOpenAIStream("claude", include_usage=False)
    out = b"".join(stream.convert(orjson.dumps(e)) for e in events)
    chunks = [orjson.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert [c["index"] for c in calls] == [0, 0]
    assert "".join(c["function"]["arguments"] for c in calls) == "{}"


def test_a_tool_input_given_whole_at_block_start_is_kept() -> None:
    """Some servers put the whole input in content_block_start and send no deltas."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "m3", "usage": {"input_tokens": 3}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {"q": "x"}},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}},
        {"type": "message_stop"},
    ]
    stream = AnthropicToOpenAIStream("claude", include_usage=False)
    out = b"".join(stream.convert(orjson.dumps(e)) for e in events)
    chunks = [orjson.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    arguments = "".join(
        call["function"]["arguments"] for d in deltas for call in d.get("tool_calls", [])
    )
    assert orjson.loads(arguments) == {"q": "x"}


# what orjson, the gateway's parser, gives: integers within 64 bits (larger are floats)
INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
JSON = st.recursive(
    st.none() | st.booleans() | INTEGERS | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]) | JSON,
            "content": JSON,
            "tool_calls": JSON,
            "tool_call_id": JSON,
        },
    )
    | JSON,
    max_size=4,
)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "messages": MESSAGES | JSON,
        "stop": JSON,
        "tools": st.lists(st.fixed_dictionaries({}, optional={"function": JSON}) | JSON) | JSON,
        "tool_choice": JSON,
        "parallel_tool_calls": JSON,
        "max_tokens": JSON,
        "temperature": JSON,
    },
)


@settings(max_examples=300, deadline=None, database=None)
@given(BODIES)
def test_any_json_body_translates_without_an_exception(body: dict[str, Any]) -> None:
    """Whatever JSON types a client puts where OpenAI expects others (``"content": true``
    made the gateway answer 500), the translation gives a body the gateway can send:
    messages in alternating roles, each a list of blocks, stop sequences strings only."""
    result = anthropic_request(body, "claude-haiku-4-5")
    orjson.dumps(result)
    roles = [message["role"] for message in result["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert all(isinstance(message["content"], list) for message in result["messages"])
    assert all(isinstance(stop, str) for stop in result.get("stop_sequences", ["x"]))


def test_content_of_the_wrong_type_becomes_an_empty_text_block() -> None:
    body = {"messages": [{"role": "user", "content": True}], "stop": 5}
    assert anthropic_request(body, "m") == {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}],
        "max_tokens": 1024,
    }


def test_an_answer_whose_content_is_not_a_list_becomes_an_empty_message() -> None:
    """A provider's answer with ``"content": 5`` (not blocks) gives an empty assistant
    message, not an exception (it was iterated as it came)."""
    answer = openai_response({"content": 5, "stop_reason": "end_turn"}, None, "m")
    assert answer["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}
    ]
