"""Where texts live in request and response bodies, for OpenAI and Anthropic shapes, and
that mapping them returns a new body with everything else untouched."""

from __future__ import annotations

import copy
from typing import Any

from proxy.policy.texts import (
    MAX_ARGUMENT_DEPTH,
    map_arguments,
    map_request_texts,
    map_response_texts,
    request_texts,
    response_texts,
)

OPENAI_CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"fruit": "apples", "n": 3}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Result: 42 apples"},
    ],
}

ANTHROPIC_MESSAGES: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 512,
    "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "Hello"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": ["seven"]}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "lookup says 7"}],
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ],
}


def test_openai_chat_texts_in_document_order_with_tool_arguments_skipping_images() -> None:
    assert request_texts(OPENAI_CHAT) == [
        "Be brief.",
        "What is in this image?",
        "fruit: apples",  # a value under a key comes with its key
        "n",  # a key over a non-string value, alone
        "Result: 42 apples",
    ]


def test_anthropic_system_blocks_messages_and_tool_results() -> None:
    assert request_texts(ANTHROPIC_MESSAGES) == [
        "You are terse.",
        "Hello",
        "q",
        "seven",
        "lookup says 7",
        "Thanks",
    ]


def test_completions_prompt_and_embeddings_input_strings_and_lists() -> None:
    assert request_texts({"model": "m", "prompt": "Once upon"}) == ["Once upon"]
    assert request_texts({"model": "m", "prompt": ["a", "b"]}) == ["a", "b"]
    assert request_texts({"model": "m", "input": "embed me"}) == ["embed me"]
    assert request_texts({"model": "m", "input": ["x", "y"]}) == ["x", "y"]
    assert request_texts({"model": "m", "input": [[101, 2023], [7]]}) == []  # token ids


def test_responses_api_instructions_and_input_items() -> None:
    body = {
        "model": "gpt-4.1",
        "instructions": "Be kind.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Hi there"}]},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
        ],
    }
    assert request_texts(body) == ["Be kind.", "Hi there", "done"]


def test_map_request_returns_new_body_and_leaves_input_and_other_fields_alone() -> None:
    before = copy.deepcopy(OPENAI_CHAT)
    mapped = map_request_texts(OPENAI_CHAT, str.upper)
    assert before == OPENAI_CHAT
    assert mapped is not OPENAI_CHAT
    assert request_texts(mapped) == [
        "BE BRIEF.",
        "WHAT IS IN THIS IMAGE?",
        "FRUIT: APPLES",
        "N",
        "RESULT: 42 APPLES",
    ]
    assert mapped["model"] == "gpt-4o-mini"
    assert mapped["tools"] == OPENAI_CHAT["tools"]
    assert mapped["messages"][1]["content"][1] == OPENAI_CHAT["messages"][1]["content"][1]
    call = mapped["messages"][2]["tool_calls"][0]
    assert call == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"FRUIT":"APPLES","N":3}'},
    }
    assert [m["role"] for m in mapped["messages"]] == ["system", "user", "assistant", "tool"]


def test_map_request_anthropic_keeps_cache_control_and_tool_ids() -> None:
    before = copy.deepcopy(ANTHROPIC_MESSAGES)
    mapped = map_request_texts(ANTHROPIC_MESSAGES, lambda t: f"<{t}>")
    assert before == ANTHROPIC_MESSAGES
    assert mapped["system"] == [
        {"type": "text", "text": "<You are terse.>", "cache_control": {"type": "ephemeral"}}
    ]
    assert mapped["messages"][2]["content"][0]["tool_use_id"] == "toolu_1"
    assert mapped["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "lookup",
        "input": {"<q>": ["<seven>"]},
    }
    assert request_texts(mapped) == [
        "<You are terse.>",
        "<Hello>",
        "<q>",
        "<seven>",
        "<lookup says 7>",
        "<Thanks>",
    ]


def test_response_texts_for_openai_chat_completions_and_anthropic() -> None:
    chat = {
        "id": "chatcmpl-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "first"}},
            {"index": 1, "message": {"role": "assistant", "content": "second"}},
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    completion = {"choices": [{"index": 0, "text": "legacy"}]}
    anthropic = {
        "id": "msg_1",
        "content": [
            {"type": "text", "text": "answer"},
            {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {"q": "model wrote"}},
        ],
    }
    assert response_texts(chat) == ["first", "second"]
    assert response_texts(completion) == ["legacy"]
    assert response_texts(anthropic) == ["answer", "q: model wrote"]


def test_stream_events_carry_their_delta_text() -> None:
    openai_chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}
    anthropic_delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "lo"},
    }
    anthropic_json = {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"q": 1'},
    }
    assert response_texts(openai_chunk) == ["Hel"]
    assert response_texts(anthropic_delta) == ["lo"]
    assert response_texts(anthropic_json) == ['{"q": 1']  # a fragment: one raw text
    mapped = map_response_texts(anthropic_delta, str.upper)
    assert mapped == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "LO"},
    }
    assert anthropic_delta["delta"]["text"] == "lo"


def test_map_response_leaves_usage_ids_and_tool_names_unchanged() -> None:
    body = {
        "id": "msg_1",
        "usage": {"input_tokens": 5},
        "content": [
            {"type": "text", "text": "abc"},
            {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {"q": "x"}},
        ],
    }
    before = copy.deepcopy(body)
    mapped = map_response_texts(body, str.upper)
    assert body == before
    assert mapped == {
        "id": "msg_1",
        "usage": {"input_tokens": 5},
        "content": [
            {"type": "text", "text": "ABC"},
            {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {"Q": "X"}},
        ],
    }


def test_openai_tool_call_arguments_whole_and_streamed() -> None:
    whole = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "f", "arguments": '{"to": "a@b.io"}'}},
                        {"id": "c2", "function": {"name": "g", "arguments": "not json"}},
                        {"id": "c3", "function": {"name": "h", "arguments": "{}"}},
                    ],
                },
            }
        ]
    }
    assert response_texts(whole) == ["to: a@b.io", "not json"]
    mapped = map_response_texts(whole, str.upper)
    calls = mapped["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"TO":"A@B.IO"}', "NOT JSON", "{}"]
    assert [c["id"] for c in calls] == ["c1", "c2", "c3"]
    unchanged = map_response_texts(whole, lambda t: t)
    assert unchanged["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == (
        '{"to": "a@b.io"}'  # untouched text keeps its bytes
    )
    chunk = {
        "choices": [
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"to'}}]}}
        ]
    }
    assert response_texts(chunk) == ['{"to']  # a fragment is not parsed


def test_responses_api_function_call_arguments() -> None:
    body = {
        "output": [
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"q": "hi"}'}
        ]
    }
    assert response_texts(body) == ["q: hi"]
    assert map_response_texts(body, str.upper)["output"][0]["arguments"] == '{"Q":"HI"}'


def test_malformed_tool_shapes_are_left_alone() -> None:
    odd = {"choices": [{"message": {"content": "x", "tool_calls": {"not": "a list"}}}]}
    assert response_texts(odd) == ["x"]
    assert map_response_texts(odd, str.upper)["choices"][0]["message"]["tool_calls"] == {
        "not": "a list"
    }


def test_a_block_type_of_any_json_type_is_not_a_text_type() -> None:
    """A ``type`` that is a list or an object (unhashable) leaves the block alone."""
    body = {
        "messages": [{"role": "user", "content": [{"type": [], "text": "a"}, {"type": {}}]}],
        "system": [{"type": ["text"], "text": "b"}, {"type": "text", "text": "c"}],
    }
    assert request_texts(body) == ["c"]
    assert map_request_texts(body, str.upper)["messages"] == body["messages"]


def test_tool_input_of_any_depth_is_walked_without_recursion() -> None:
    """A tool_use input 5000 levels deep: its texts come out (the walk keeps its own stack)."""
    value: dict[str, Any] = {"password": "hunter2"}
    for _ in range(4999):
        value = {"k": value}
    body = {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "input": value}]}]}
    assert request_texts(body) == ["k"] * 4999 + ["password: hunter2"]
    mapped = map_request_texts(body, str.upper)["messages"][0]["content"][0]["input"]
    for _ in range(4999):
        mapped = mapped["K"]
    assert mapped == {"PASSWORD": "HUNTER2"}


def test_arguments_nested_past_the_bound_are_one_text() -> None:
    """Tool arguments deeper than MAX_ARGUMENT_DEPTH (and past the parser's own bound) are
    mapped as one string, not rebuilt."""
    arguments = "[" * (MAX_ARGUMENT_DEPTH + 1) + '"a@b.io"' + "]" * (MAX_ARGUMENT_DEPTH + 1)
    assert map_arguments(arguments, str.upper) == arguments.upper()
    within = "[" * MAX_ARGUMENT_DEPTH + '"a@b.io"' + "]" * MAX_ARGUMENT_DEPTH
    assert map_arguments(within, str.upper) == within.upper()
    very = "[" * 5000 + "]" * 5000
    assert map_arguments(very, lambda t: t[:3]) == "[[["
