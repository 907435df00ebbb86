"""Where user-visible text lives in LLM request and response bodies.

DLP and guardrails look only at text a person or a model wrote, never at ids, roles, model
names or tool schemas. This module knows the places, for these shapes:

Requests
  * OpenAI chat completions: ``messages[].content`` -- a string, or a list of parts whose
    ``type`` is ``"text"`` (images and audio parts are left alone); ``role: "tool"`` results
    are messages too.
  * OpenAI completions: ``prompt`` (string or list of strings; token-id lists are skipped).
  * OpenAI embeddings: ``input`` (string or list of strings); Responses API ``input`` items
    with ``content`` (as above) or ``output`` (function-call results) and ``instructions``.
  * Anthropic messages: ``system`` (string or text blocks) and ``messages[].content``
    (string or blocks: ``text`` blocks, and ``tool_result`` blocks whose ``content`` is a
    string or text blocks).

Responses (whole bodies and single SSE events)
  * OpenAI: ``choices[].message.content``, ``choices[].text``, and in stream chunks
    ``choices[].delta.content``; Responses API ``output[].content[].text``.
  * Anthropic: ``content[].text`` of text blocks; in stream events ``delta.text``
    (``text_delta``) and ``content_block.text``.

Texts come out in document order. The ``map_*`` functions return a new body and never
mutate their input: containers on the path to a text are shallow-copied, everything else
(model, roles, ids, tool definitions, images) is shared with the input unchanged. Pure
functions; safe from any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["map_request_texts", "map_response_texts", "request_texts", "response_texts"]

TextFn = Callable[[str], str]

# Block types whose "text" field is prose: OpenAI chat parts, Anthropic blocks,
# Responses API input and output parts.
_TEXT_TYPES = frozenset({"text", "input_text", "output_text"})


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
    if "instructions" in body and isinstance(body["instructions"], str):
        out["instructions"] = fn(body["instructions"])
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
    return out


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
    # A missing type appears in stream deltas ({"text": ...} under "delta").
    if (kind in _TEXT_TYPES or kind == "text_delta" or kind is None) and isinstance(
        block.get("text"), str
    ):
        return {**block, "text": fn(block["text"])}
    return block


def _map_item(item: Any, fn: TextFn) -> Any:
    """A chat message, or a Responses API input/output item."""
    if not isinstance(item, dict):
        return item
    out = dict(item)
    if "content" in item:
        out["content"] = _map_content(item["content"], fn)
    if item.get("type") == "function_call_output" and isinstance(item.get("output"), str):
        out["output"] = fn(item["output"])
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
        if isinstance(message, dict) and "content" in message:
            out[key] = {**message, "content": _map_content(message["content"], fn)}
    return out
