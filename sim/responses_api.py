"""The simulated provider's OpenAI Responses API answers (``POST /v1/responses``): the
``response`` object, and its SSE stream with the real event names, in the order OpenAI sends
them:

``response.created``, ``response.in_progress``; per output item ``response.output_item.added``,
then for a message ``response.content_part.added``, ``response.output_text.delta`` (32
characters each), ``response.output_text.done``, ``response.content_part.done``, and for a
function call ``response.function_call_arguments.delta`` (the arguments in two halves),
``response.function_call_arguments.done``; then ``response.output_item.done``; last
``response.completed`` (``response.incomplete`` when the answer hit ``max_output_tokens``),
whose ``response`` carries the whole output and the ``usage``. Every event has ``type`` and a
``sequence_number`` counting from 0, and is framed ``event: <type>`` + ``data: <json>``.

``usage``: ``input_tokens`` (the whole prompt, cached part included),
``input_tokens_details.cached_tokens``, ``output_tokens`` (the text's tokens plus the
reasoning tokens), ``output_tokens_details.reasoning_tokens`` and ``total_tokens``. Pure
functions, no state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import orjson

from sim.shapes import STREAM_TOKENS_PER_CHUNK, Answer
from sim.usage import CHARS_PER_TOKEN

__all__ = ["REASONING_TOKENS", "openai_response", "openai_response_stream"]

#: Reasoning tokens reported for a request's ``reasoning.effort`` (none without one).
REASONING_TOKENS: Final = {"minimal": 8, "low": 16, "medium": 32, "high": 64}
_CHUNK_CHARS: Final = STREAM_TOKENS_PER_CHUNK * CHARS_PER_TOKEN


def openai_response(answer: Answer, reasoning: int) -> bytes:
    """A ``response`` object: one ``message`` item with one ``output_text`` part, then a
    ``function_call`` item when the answer calls a tool."""
    return orjson.dumps(_response(answer, reasoning, _output(answer), done=True))


def openai_response_stream(answer: Answer, reasoning: int) -> list[bytes]:
    """The SSE events of the same answer streamed (see the module doc)."""
    events: list[dict[str, Any]] = []
    opening = _response(answer, reasoning, [], done=False)
    events.append({"type": "response.created", "response": opening})
    events.append({"type": "response.in_progress", "response": opening})
    for index, item in enumerate(_output(answer)):
        events.append(
            {"type": "response.output_item.added", "output_index": index, "item": _opened(item)}
        )
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            events.extend(_message_events(where, item["content"][0]))
        else:
            arguments = item["arguments"]
            half = len(arguments) // 2
            events.extend(
                {"type": "response.function_call_arguments.delta", **where, "delta": piece}
                for piece in (arguments[:half], arguments[half:])
            )
            events.append(
                {"type": "response.function_call_arguments.done", **where, "arguments": arguments}
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    final = _response(answer, reasoning, _output(answer), done=True)
    last = "response.incomplete" if answer.truncated else "response.completed"
    events.append({"type": last, "response": final})
    return [_frame(number, event) for number, event in enumerate(events)]


def _message_events(where: dict[str, Any], part: dict[str, Any]) -> list[dict[str, Any]]:
    text = part["text"]
    at = {**where, "content_index": 0}
    empty = {**part, "text": ""}
    events: list[dict[str, Any]] = [{"type": "response.content_part.added", **at, "part": empty}]
    events.extend(
        {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
        for piece in _pieces(text)
    )
    events.append({"type": "response.output_text.done", **at, "text": text, "logprobs": []})
    events.append({"type": "response.content_part.done", **at, "part": part})
    return events


def _opened(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as ``response.output_item.added`` shows it: nothing generated yet."""
    if item["type"] == "message":
        return {**item, "content": [], "status": "in_progress"}
    return {**item, "arguments": "", "status": "in_progress"}


def _output(answer: Answer) -> list[dict[str, Any]]:
    status = "incomplete" if answer.truncated else "completed"
    part = {"type": "output_text", "text": answer.text, "annotations": [], "logprobs": []}
    items: list[dict[str, Any]] = [
        {
            "id": f"msg_{answer.id.removeprefix('resp_')}",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [part],
        }
    ]
    call = answer.tool_call
    if call is not None:
        items.append(
            {
                "id": f"fc_{call.id.removeprefix('toolu_')}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_{call.id.removeprefix('toolu_')}",
                "name": call.name,
                "arguments": orjson.dumps(call.input).decode(),
            }
        )
    return items


def _response(
    answer: Answer, reasoning: int, output: list[dict[str, Any]], *, done: bool
) -> dict[str, Any]:
    status = ("incomplete" if answer.truncated else "completed") if done else "in_progress"
    details = {"reason": "max_output_tokens"} if done and answer.truncated else None
    return {
        "id": answer.id,
        "object": "response",
        "created_at": answer.created,
        "status": status,
        "error": None,
        "incomplete_details": details,
        "instructions": None,
        "model": answer.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage(answer, reasoning) if done else None,
    }


def _usage(answer: Answer, reasoning: int) -> dict[str, Any]:
    usage = answer.usage
    output = usage.output_tokens + reasoning
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.input_tokens + output,
    }


def _pieces(text: str) -> Iterable[str]:
    return (text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS))


def _frame(number: int, event: dict[str, Any]) -> bytes:
    data = orjson.dumps({**event, "sequence_number": number})
    name = str(event["type"]).encode()
    return b"event: " + name + b"\ndata: " + data + b"\n\n"
