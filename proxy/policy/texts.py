"""Where user-visible text lives in LLM request and response bodies.

DLP and guardrails look only at text a person or a model wrote, never at ids, roles, model
names or tool schemas. This module knows the places, for these shapes:

Requests
  * OpenAI chat completions: ``messages[].content`` -- a string, or a list of parts whose
    ``type`` is ``"text"`` or ``"refusal"`` (images and audio parts are left alone);
    ``role: "tool"`` results are messages too; an assistant's ``refusal`` and the
    ``arguments`` of its ``tool_calls`` and legacy ``function_call``; ``prediction.content``
    (string or parts); ``user``, ``safety_identifier`` and the string values of
    ``metadata`` (e-mail addresses end up there).
  * OpenAI completions: ``prompt`` (string or list of strings; token-id lists are skipped)
    and ``suffix``.
  * OpenAI embeddings: ``input`` (string or list of strings); Responses API ``input`` items
    with ``content`` (as above) or ``output`` (function-call results) and ``instructions``.
  * Anthropic messages: ``system`` (string or text blocks) and ``messages[].content``
    (string or blocks: ``text`` blocks, ``tool_result`` blocks whose ``content`` is a
    string or text blocks, and the string values of ``tool_use`` blocks' ``input``);
    ``document`` blocks with a ``text`` source (``data``) or a ``content`` source (text
    blocks), ``search_result`` blocks, and their ``title`` and ``context``;
    ``metadata.user_id``.

Responses (whole bodies and single SSE events)
  * OpenAI: ``choices[].message.content`` and ``refusal``, ``choices[].text``, and in
    stream chunks ``choices[].delta.content`` and ``refusal``; tool-call
    ``function.arguments`` and legacy ``function_call.arguments`` in messages and deltas;
    an audio answer's ``transcript``; Responses API ``output[].content[]`` ``text`` and
    ``refusal``, and ``function_call`` ``arguments``; Responses API stream events: the
    ``delta`` of ``response.output_text.delta``, ``response.refusal.delta`` and
    ``response.function_call_arguments.delta``, the ``text`` of ``response.output_text.done``,
    the ``refusal`` of ``response.refusal.done``, the ``arguments`` of
    ``response.function_call_arguments.done``, and the ``item``, ``part`` and
    ``response.output`` that other events carry.
  * Anthropic: ``content[].text`` of text blocks and the string values of ``tool_use``
    ``input``; in stream events ``delta.text`` (``text_delta``), ``delta.partial_json``
    (``input_json_delta``) and ``content_block.text``.

Tool arguments are model-written too: a secret or a jailbreak can travel in them. A whole
``arguments`` string that parses as JSON has its string values mapped, each as
``"key: value"`` when it sits under a key (the JSON stays valid); a fragment (a stream
delta) or a non-JSON string is mapped as one text, and so is one nested deeper than
``MAX_ARGUMENT_DEPTH``. Nothing here recurses on the input: a body of any depth is walked
with an explicit stack.

Texts come out in document order. The ``map_*`` functions return a new body and never
mutate their input: containers on the path to a text are shallow-copied, everything else
(model, roles, ids, tool definitions, images) is shared with the input unchanged. Pure
functions; safe from any thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = [
    "MAX_ARGUMENT_DEPTH",
    "map_arguments",
    "map_request_texts",
    "map_response_texts",
    "request_texts",
    "response_texts",
]

TextFn = Callable[[str], str]

#: Tool ``arguments`` nested deeper than this are one text (their JSON is not rebuilt).
MAX_ARGUMENT_DEPTH: Final = 64

# Block types whose "text" field is prose: OpenAI chat parts, Anthropic blocks,
# Responses API input and output parts.
_TEXT_TYPES = frozenset({"text", "input_text", "output_text"})

# Top-level request strings: Responses API instructions, completions suffix, end-user ids.
_REQUEST_STRINGS = ("instructions", "suffix", "user", "safety_identifier")


def request_texts(body: dict[str, Any]) -> list[str]:
    """Every user-visible text in a request body, in document order."""
    found: list[str] = []
    map_request_texts(body, _collector(found))
    return found


def response_texts(body: dict[str, Any]) -> list[str]:
    """Every model-written text in a response body or one SSE event, in document order."""
    found: list[str] = []
    map_response_texts(body, _collector(found))
    return found


def map_request_texts(body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """A new request body with every text (see ``request_texts``) replaced by ``fn(text)``."""
    out = dict(body)
    if "system" in body:
        out["system"] = _map_content(body["system"], fn)
    for key in _REQUEST_STRINGS:
        if isinstance(body.get(key), str):
            out[key] = fn(body[key])
    metadata = body.get("metadata")
    if isinstance(metadata, dict):  # Anthropic user_id, OpenAI's free key-value pairs
        out["metadata"] = {k: fn(v) if isinstance(v, str) else v for k, v in metadata.items()}
    prediction = body.get("prediction")
    if isinstance(prediction, dict) and "content" in prediction:
        out["prediction"] = {**prediction, "content": _map_content(prediction["content"], fn)}
    messages = body.get("messages")
    if isinstance(messages, list):
        out["messages"] = [_map_item(message, fn) for message in messages]
    for key in ("prompt", "input"):
        if key in body:
            out[key] = _map_prompt(body[key], fn)
    return out


def map_response_texts(body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """A new response body (or SSE event) with every text replaced by ``fn(text)``."""
    out = dict(body)
    choices = body.get("choices")
    if isinstance(choices, list):
        out["choices"] = [_map_choice(choice, fn) for choice in choices]
    content = body.get("content")
    if isinstance(content, list):
        out["content"] = _map_content(content, fn)
    output = body.get("output")
    if isinstance(output, list):
        out["output"] = [_map_item(item, fn) for item in output]
    for key in ("delta", "content_block"):  # Anthropic stream events
        block = body.get(key)
        if isinstance(block, dict):
            out[key] = _map_block(block, fn)
    kind = body.get("type")
    if isinstance(kind, str) and kind.startswith("response."):
        _map_responses_event(kind, body, out, fn)
    return out


# Responses API stream events whose one string field is model-written text.
_EVENT_TEXTS: Final = {
    "response.output_text.delta": "delta",
    "response.refusal.delta": "delta",
    "response.function_call_arguments.delta": "delta",  # a fragment: one text
    "response.output_text.done": "text",
    "response.refusal.done": "refusal",
}


def _map_responses_event(kind: str, event: dict[str, Any], out: dict[str, Any], fn: TextFn) -> None:
    """Into ``out``: a Responses API stream event's texts (see the module doc)."""
    field = _EVENT_TEXTS.get(kind)
    if field is not None and isinstance(event.get(field), str):
        out[field] = fn(event[field])
    if kind == "response.function_call_arguments.done" and isinstance(event.get("arguments"), str):
        out["arguments"] = map_arguments(event["arguments"], fn)
    if "item" in event:
        out["item"] = _map_item(event["item"], fn)
    if "part" in event:
        out["part"] = _map_block(event["part"], fn)
    response = event.get("response")
    if isinstance(response, dict) and isinstance(response.get("output"), list):
        out["response"] = {**response, "output": [_map_item(i, fn) for i in response["output"]]}


def _collector(found: list[str]) -> TextFn:
    def collect(text: str) -> str:
        found.append(text)
        return text

    return collect


def _map_content(content: Any, fn: TextFn) -> Any:
    """A message's content: a string, or a list of parts/blocks."""
    if isinstance(content, str):
        return fn(content)
    if isinstance(content, list):
        return [_map_block(block, fn) for block in content]
    return content


def _map_block(block: Any, fn: TextFn) -> Any:
    if isinstance(block, str):
        return fn(block)
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "tool_result" and "content" in block:
        return {**block, "content": _map_content(block["content"], fn)}
    if kind == "tool_use" and "input" in block:
        return {**block, "input": _map_json(block["input"], fn)}
    if kind == "input_json_delta" and isinstance(block.get("partial_json"), str):
        return {**block, "partial_json": fn(block["partial_json"])}
    if kind == "refusal" and isinstance(block.get("refusal"), str):
        return {**block, "refusal": fn(block["refusal"])}
    if kind in ("document", "search_result"):
        return _map_document(block, fn)
    # A missing type appears in stream deltas ({"text": ...} under "delta").
    textual = kind is None or (
        isinstance(kind, str) and (kind in _TEXT_TYPES or kind == "text_delta")
    )
    if textual and isinstance(block.get("text"), str):  # a list or dict type is unhashable
        return {**block, "text": fn(block["text"])}
    return block


def _map_document(block: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """An Anthropic ``document`` (a ``text`` source's ``data``, a ``content`` source's
    blocks) or ``search_result`` (its ``content`` blocks), with their ``title`` and
    ``context``. Base64 and URL sources (PDFs, images) are left alone."""
    out = dict(block)
    for key in ("title", "context"):
        if isinstance(block.get(key), str):
            out[key] = fn(block[key])
    if "content" in block:
        out["content"] = _map_content(block["content"], fn)
    source = block.get("source")
    if isinstance(source, dict):
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            out["source"] = {**source, "data": fn(source["data"])}
        elif source.get("type") == "content" and "content" in source:
            out["source"] = {**source, "content": _map_content(source["content"], fn)}
    return out


def _map_message(message: dict[str, Any], fn: TextFn, *, whole: bool) -> dict[str, Any]:
    """An OpenAI chat message (or stream ``delta``, or Responses API item): ``content``,
    ``refusal``, ``tool_calls`` and legacy ``function_call`` arguments (whole JSON, or
    fragments in a delta), and an audio answer's ``transcript``."""
    out = dict(message)
    if "content" in message:
        out["content"] = _map_content(message["content"], fn)
    if isinstance(message.get("refusal"), str):
        out["refusal"] = fn(message["refusal"])
    if "tool_calls" in message:
        out["tool_calls"] = _map_tool_calls(message["tool_calls"], fn, whole=whole)
    call = message.get("function_call")
    if isinstance(call, dict) and isinstance(call.get("arguments"), str):
        arguments = call["arguments"]
        mapped = map_arguments(arguments, fn) if whole else fn(arguments)
        out["function_call"] = {**call, "arguments": mapped}
    audio = message.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("transcript"), str):
        out["audio"] = {**audio, "transcript": fn(audio["transcript"])}
    return out


def _map_item(item: Any, fn: TextFn) -> Any:
    """A chat message, or a Responses API input/output item."""
    if not isinstance(item, dict):
        return item
    out = _map_message(item, fn, whole=True)
    if item.get("type") == "function_call_output" and isinstance(item.get("output"), str):
        out["output"] = fn(item["output"])
    if item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
        out["arguments"] = map_arguments(item["arguments"], fn)
    return out


def _map_prompt(value: Any, fn: TextFn) -> Any:
    """``prompt`` or ``input``: a string, or a list of strings, token ids or items."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [
            fn(v) if isinstance(v, str) else _map_item(v, fn) if isinstance(v, dict) else v
            for v in value
        ]
    return value


def _map_choice(choice: Any, fn: TextFn) -> Any:
    if not isinstance(choice, dict):
        return choice
    out = dict(choice)
    if isinstance(choice.get("text"), str):
        out["text"] = fn(choice["text"])
    for key in ("message", "delta"):
        message = choice.get(key)
        if not isinstance(message, dict):
            continue
        # A delta carries argument fragments, not whole JSON.
        out[key] = _map_message(message, fn, whole=key == "message")
    return out


def _map_tool_calls(calls: Any, fn: TextFn, *, whole: bool) -> Any:
    """OpenAI ``tool_calls``: each ``function.arguments`` mapped (whole JSON or fragment)."""
    if not isinstance(calls, list):
        return calls
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            arguments = function["arguments"]
            mapped = map_arguments(arguments, fn) if whole else fn(arguments)
            out.append({**call, "function": {**function, "arguments": mapped}})
        else:
            out.append(call)
    return out


def map_arguments(arguments: str, fn: TextFn) -> str:
    """A JSON ``arguments`` string with its strings (values, and keys) mapped; else mapped
    as one text.

    Decoded with the standard library so that nothing is lost on the way back: duplicate
    keys stay, numbers keep their exact text. Unchanged arguments come back as they were.
    """
    try:
        parsed = json.loads(
            arguments,
            object_pairs_hook=_Pairs,
            parse_float=_Number,
            parse_int=_Number,
            parse_constant=_Number,
        )
    except (ValueError, RecursionError):
        return fn(arguments)
    try:
        mapped = _map_json(parsed, fn, max_depth=MAX_ARGUMENT_DEPTH)
    except _TooDeep:
        return fn(arguments)
    return arguments if mapped == parsed else _dump(mapped)


class _Pairs(list[tuple[str, Any]]):
    """A decoded JSON object: its (key, value) pairs in order, duplicates kept."""


class _Number(str):
    """A decoded JSON number (or NaN/Infinity), kept as its source text."""


def _dump(value: Any) -> str:
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, _Pairs):
        return "{" + ",".join(f"{_dump(k)}:{_dump(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # str, bool, None


def _map_json(value: Any, fn: TextFn, max_depth: int | None = None) -> Any:
    """Every string (values, and keys) in a decoded JSON value (``json.loads``, or
    ``map_arguments``'s decoding) mapped, in document order.

    A string under a key is mapped as ``"key: value"`` so that what the key says counts
    (``{"password": "…"}`` is a password assignment). Keys are mapped too: only when the
    text of a pair changed there, or alone when their value is not a string.

    Walks with its own stack, not by recursion, so any depth is safe; ``_TooDeep`` when the
    value nests deeper than ``max_depth`` containers (when given)."""
    if not isinstance(value, dict | list):
        return _map_scalar(value, fn)
    root, entries = _open(value)
    stack = [(root, entries)]
    while stack:
        out, entries = stack[-1]
        for entry in entries:
            child = _put(out, entry, fn)
            if child is not None:
                if max_depth is not None and len(stack) >= max_depth:
                    raise _TooDeep
                stack.append(child)
                break  # the child first: texts come out in document order
        else:
            stack.pop()
    return root


class _TooDeep(Exception):
    """A JSON value nests deeper than the walk allows."""


_Frame = tuple[Any, Iterator[Any]]


def _open(value: dict[str, Any] | list[Any]) -> _Frame:
    """An empty copy of a container, and its entries to map into it."""
    if isinstance(value, _Pairs):
        return _Pairs(), iter(value)
    if isinstance(value, dict):
        return {}, iter(value.items())
    return [], iter(value)


def _put(out: Any, entry: Any, fn: TextFn) -> _Frame | None:
    """Map one entry (an item, or a key and value) into ``out``; a container is added empty
    and returned as the next frame to fill."""
    if isinstance(out, list) and not isinstance(out, _Pairs):
        if isinstance(entry, dict | list):
            opened = _open(entry)
            out.append(opened[0])
            return opened
        out.append(_map_scalar(entry, fn))
        return None
    key, item = entry
    frame: _Frame | None = None
    if isinstance(item, str) and not isinstance(item, _Number):
        key, item = _map_pair(str(key), item, fn)
    else:
        key = fn(str(key))
        if isinstance(item, dict | list):
            frame = _open(item)
            item = frame[0]
    if isinstance(out, _Pairs):
        out.append((key, item))
    else:
        out[key] = item
    return frame


def _map_scalar(value: Any, fn: TextFn) -> Any:
    if isinstance(value, str) and not isinstance(value, _Number):
        return fn(value)
    return value


def _map_pair(key: str, value: str, fn: TextFn) -> tuple[str, str]:
    prefix = f"{key}: "
    mapped = fn(prefix + value)
    if mapped.startswith(prefix):
        return key, mapped[len(prefix) :]
    new_key = fn(key)
    if mapped.startswith(new_key + ": "):
        return new_key, mapped[len(new_key) + 2 :]
    return new_key, mapped  # a finding spans key and value: the value keeps what is left
