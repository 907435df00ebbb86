"""OpenAI chat completions <-> Anthropic messages, for ``anthropic/…`` models and for
fallbacks across the two APIs.

Covers chat: system prompts, text and image parts, stop sequences, sampling, tools
(definitions, ``tool_choice``, the assistant's calls and the tool results in the history,
calls in answers and in streams, as OpenAI's ``tool_calls``), streaming with usage.
Not translated: audio, ``n`` > 1, ``response_format``, logprobs.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson

from models.request_pricing import Usage
from proxy.providers.usage import anthropic_usage, flat_anthropic_usage

__all__ = [
    "AnthropicToOpenAIStream",
    "anthropic_request",
    "openai_error",
    "openai_response",
]

DEFAULT_MAX_TOKENS: Final = 1024  # Anthropic requires max_tokens; OpenAI does not
_FINISH: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def anthropic_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic ``/v1/messages`` body equivalent to an OpenAI chat ``body``. Total:
    a value of the wrong JSON type is dropped or passed on for the provider to refuse,
    never an exception (a client's body must not make the gateway fail)."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    listed_messages = body.get("messages")
    for message in listed_messages if isinstance(listed_messages, list) else ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(content if isinstance(content, str) else _joined_text(content))
            continue
        if role == "tool":
            blocks = [_tool_result(message)]
        elif role == "assistant" and isinstance(message.get("tool_calls"), list):
            blocks = [b for b in _blocks(content) if b.get("text") or b["type"] != "text"]
            blocks += [_tool_use(call) for call in message["tool_calls"] if isinstance(call, dict)]
        else:
            blocks = _blocks(content)
        anthropic_role = "assistant" if role == "assistant" else "user"
        if messages and messages[-1]["role"] == anthropic_role:
            messages[-1]["content"].extend(blocks)  # Anthropic wants alternating roles
        else:
            messages.append({"role": anthropic_role, "content": blocks})
    result: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        result["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            result[name] = body[name]
    stop = body.get("stop")
    if stop:
        listed_stops = stop if isinstance(stop, list) else [stop]
        stops = [item for item in listed_stops if isinstance(item, str)]
        if stops:
            result["stop_sequences"] = stops
    listed = body.get("tools")
    tools = [_tool(t) for t in listed if isinstance(t, dict)] if isinstance(listed, list) else []
    if tools:
        result["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            result["tool_choice"] = choice
    return result


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """OpenAI ``{"type": "function", "function": {...}}`` -> an Anthropic tool."""
    function: dict[str, Any] = tool["function"] if isinstance(tool.get("function"), dict) else tool
    parameters = function.get("parameters")
    result: dict[str, Any] = {
        "name": str(function.get("name", "")),
        "input_schema": parameters
        if isinstance(parameters, dict) and parameters
        else {"type": "object", "properties": {}},
    }
    if function.get("description"):
        result["description"] = str(function["description"])
    return result


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` (and ``parallel_tool_calls``) -> Anthropic ``tool_choice``."""
    result: dict[str, Any] | None = None
    if choice in (None, "auto"):
        result = {"type": "auto"} if parallel is False else None
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": str(choice["function"].get("name", ""))}
    if result is not None and parallel is False:
        result["disable_parallel_tool_use"] = True
    return result


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    """An assistant's OpenAI tool call -> an Anthropic ``tool_use`` block."""
    function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
    arguments: Any = function.get("arguments") or "{}"
    if isinstance(arguments, (str, bytes)):  # OpenAI sends a JSON string; some clients a dict
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            arguments = {"arguments": function.get("arguments")}  # kept, not lost
    return {
        "type": "tool_use",
        "id": str(call.get("id", "")),
        "name": str(function.get("name", "")),
        "input": arguments if isinstance(arguments, dict) else {"value": arguments},
    }


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``tool`` message -> an Anthropic ``tool_result`` block."""
    content = message.get("content")
    text = content if isinstance(content, str) else _joined_text(content)
    return {
        "type": "tool_result",
        "tool_use_id": str(message.get("tool_call_id", "")),
        "content": text,
    }


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():  # a number, true: no parts
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            url = part.get("image_url", {})
            url = url.get("url") if isinstance(url, dict) else url
            blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks or [{"type": "text", "text": ""}]


def _joined_text(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    texts = [str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p]
    return "\n".join(texts)


def _openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.tokens_in,
        "completion_tokens": usage.tokens_out,
        "total_tokens": usage.tokens_in + usage.tokens_out,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
    }


def openai_response(body: dict[str, Any], usage: Usage | None, model: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` from an Anthropic message response."""
    content = body.get("content")
    listed = content if isinstance(content, list) else ()
    blocks = [block for block in listed if isinstance(block, dict)]
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    calls = [
        {
            "id": str(b.get("id", "")),
            "type": "function",
            "function": {"name": str(b.get("name", "")), "arguments": _arguments(b.get("input"))},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    result: dict[str, Any] = {
        "id": f"chatcmpl-{body.get('id', '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _FINISH.get(str(body.get("stop_reason")), "stop"),
            }
        ],
    }
    if usage is not None:
        result["usage"] = _openai_usage(usage)
    return result


def _arguments(value: Any) -> str:
    """A tool call's input as OpenAI's ``arguments``: a JSON string."""
    return orjson.dumps(value if value is not None else {}).decode()


def openai_error(status: int, body: Any) -> dict[str, Any]:
    """An OpenAI-shaped error from any provider's error body."""
    message = f"upstream returned HTTP {status}"
    kind = "upstream_error"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message") or message)
        kind = str(body["error"].get("type") or kind)
    return {"error": {"message": message, "type": kind, "code": status}}


class AnthropicToOpenAIStream:
    """Turns Anthropic SSE event payloads into OpenAI ``chat.completion.chunk`` SSE bytes."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-stream"
        self.created = int(time.time())
        self._usage: dict[str, int] = {}
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index
        self._tool_has_input: set[int] = set()  # OpenAI tool indexes that got arguments

    def convert(self, payload: bytes) -> bytes:
        """SSE bytes (possibly empty) for one Anthropic event's data payload."""
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(event, dict):
            return b""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = f"chatcmpl-{message.get('id', '')}"
            self._take_usage(message.get("usage"))
            return self._chunk({"role": "assistant", "content": ""}, None)
        if kind == "content_block_start":
            return self._tool_start(event)
        if kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, dict):
                return b""
            if delta.get("type") == "text_delta":
                return self._chunk({"content": str(delta.get("text", ""))}, None)
            tool = self._tool_of(event)
            if delta.get("type") == "input_json_delta" and tool is not None:
                partial = str(delta.get("partial_json", ""))
                if partial:
                    self._tool_has_input.add(tool)
                arguments = {"arguments": partial}
                return self._chunk({"tool_calls": [{"index": tool, "function": arguments}]}, None)
            return b""
        if kind == "content_block_stop":
            tool = self._tool_of(event)
            if tool is None or tool in self._tool_has_input:
                return b""
            # A tool called with no input streams no JSON: the arguments must still parse.
            empty = {"index": tool, "function": {"arguments": "{}"}}
            return self._chunk({"tool_calls": [empty]}, None)
        if kind == "message_delta":
            self._take_usage(event.get("usage"))
            reason = (event.get("delta") or {}).get("stop_reason")
            return self._chunk({}, _FINISH.get(str(reason), "stop"))
        if kind == "message_stop":
            tail = b""
            if self.include_usage:
                tail = self._frame({"choices": [], "usage": _openai_usage(self.usage())})
            return tail + b"data: [DONE]\n\n"
        if kind == "error":
            return self._frame(openai_error(500, event))
        return b""

    def _tool_start(self, event: dict[str, Any]) -> bytes:
        """A ``tool_use`` block opens: OpenAI's first ``tool_calls`` delta (id, name)."""
        block = event.get("content_block") or {}
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            return b""
        tool = len(self._tool_index)
        index = event.get("index", tool)
        self._tool_index[index if isinstance(index, int) else -1 - tool] = tool
        given = block.get("input")  # normally {}, the input following as input_json_delta
        arguments = _arguments(given) if given else ""
        if arguments:
            self._tool_has_input.add(tool)
        call = {
            "index": tool,
            "id": str(block.get("id", "")),
            "type": "function",
            "function": {"name": str(block.get("name", "")), "arguments": arguments},
        }
        return self._chunk({"tool_calls": [call]}, None)

    def _tool_of(self, event: dict[str, Any]) -> int | None:
        """The OpenAI tool index of the Anthropic block an event belongs to (None: not a tool)."""
        index = event.get("index")
        return self._tool_index.get(index) if isinstance(index, int) else None

    def _take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self._usage.update(flat_anthropic_usage(usage))

    def usage(self) -> Usage:
        return anthropic_usage(self._usage)

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        return self._frame({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def _frame(self, fields: dict[str, Any]) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            **fields,
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
