"""Response DLP on a stream: generated text is redacted as it passes, event by event.

Works on whole SSE events in the client's format (OpenAI chunks or Anthropic events).
Text deltas (OpenAI ``content`` and ``refusal``, Anthropic ``text_delta``) go through
``dlp.StreamRedactor``, which holds back a short tail so that a
secret split across deltas is still caught; the held text is sent, redacted, in one
extra delta just before the stream's finish event. Tool-call arguments (OpenAI
``delta.tool_calls[].function.arguments``, Anthropic ``input_json_delta``) are held, then
sent whole in one fragment per call (OpenAI's legacy ``delta.function_call.arguments``
too), redacted in their decoded JSON values
(``texts.map_arguments``): JSON escapes cannot hide a secret, and the arguments stay
valid JSON. Anthropic input goes at its block's end; OpenAI calls, which may interleave,
with their choice's finish. So tool arguments are not streamed when response DLP is on.
``flag`` mode only notes the categories and passes the bytes unchanged. A stream cannot
be refused once it has started, so ``block`` redacts (and is logged as ``redact``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from proxy.policy.dlp import StreamRedactor, redactor_into
from proxy.policy.texts import map_arguments
from proxy.providers import iter_sse_events

__all__ = ["StreamDlp"]


@dataclass(slots=True)
class _Choice:
    """What one OpenAI choice (by ``index``) holds back: its text, its refusal, its tool
    calls and its legacy ``function_call``."""

    text: StreamRedactor = field(default_factory=StreamRedactor)
    refusal: StreamRedactor = field(default_factory=StreamRedactor)
    arguments: dict[int, list[str]] = field(default_factory=dict)  # by tool-call index
    function_arguments: list[str] = field(default_factory=list)
    finished: bool = False


class StreamDlp:
    """Redacts (or, in ``flag`` mode, only scans) the text of a streamed response.

    OpenAI choices (``n`` > 1) are redacted separately, each by its ``index``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._redactor = StreamRedactor()  # Anthropic text blocks
        self._arguments: list[str] = []  # Anthropic: the tool_use input in progress
        self._block: Any = 0  # Anthropic: index of the block in progress
        self._block_open = False
        self._tool_categories: set[str] = set()
        self._choices: dict[int, _Choice] = {}
        self._template: dict[str, Any] = {}  # OpenAI: id, created, model of the stream
        self._buffer = bytearray()

    @property
    def categories(self) -> tuple[str, ...]:
        found = self._redactor.categories | self._tool_categories
        for choice in self._choices.values():
            found |= choice.text.categories | choice.refusal.categories
        return tuple(sorted(found))

    @property
    def action(self) -> str | None:
        if not self.categories:
            return None
        return "flag" if self.mode == "flag" else "redact"

    def process(self, data: bytes) -> bytes:
        """The client's bytes for ``data`` (whole or partial SSE events)."""
        self._buffer += data
        parts = []
        for raw, payload in iter_sse_events(self._buffer):
            parts.append(self._event(raw, payload))
        return b"".join(parts)

    def finish(self) -> bytes:
        """What is still held when the stream ends (cut off, or without a finish event):
        a last unterminated event, then held text and tool arguments. A last event that
        does not parse is dropped in redact mode (it could carry a secret unchecked)."""
        out = b""
        if self._buffer.strip():
            self._buffer += b"\n\n"
            for raw, payload in iter_sse_events(self._buffer):
                if payload not in (None, b"[DONE]") and not _parses(payload):
                    out += raw if self.mode == "flag" else b""
                    continue
                out += self._event(raw, payload)
        self._buffer.clear()
        if self._block_open or self._arguments:
            out += self._anthropic_stop({"index": self._block})
        return out + self._flush_openai()

    def _event(self, raw: bytes, payload: bytes | None) -> bytes:
        if payload is None:
            return raw
        if payload == b"[DONE]":
            return self._flush_openai() + raw
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return raw
        if not isinstance(event, dict):
            return raw
        if event.get("object") == "chat.completion.chunk":
            return self._openai(raw, event)
        kind = event.get("type")
        if kind == "content_block_delta":
            self._block = event.get("index", 0)
            self._block_open = True
            return self._anthropic_delta(raw, event)
        if kind == "content_block_stop":
            self._block_open = False
            return self._anthropic_stop(event) + raw
        return raw

    def _anthropic_delta(self, raw: bytes, event: dict[str, Any]) -> bytes:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return raw
        if isinstance(delta.get("partial_json"), str):
            self._arguments.append(delta["partial_json"])  # sent whole at the block's end
            return raw if self.mode == "flag" else b""
        if isinstance(delta.get("text"), str):
            safe = self._redactor.feed(delta["text"])
            if self.mode == "flag":
                return raw
            return reframe(raw, {**event, "delta": {**delta, "text": safe}}) if safe else b""
        return raw

    def _anthropic_stop(self, event: dict[str, Any]) -> bytes:
        """What the block still holds, as one more delta before its ``content_block_stop``."""
        deltas = []
        text = self._redactor.flush()
        if text:
            deltas.append({"type": "text_delta", "text": text})
        if self._arguments:
            arguments = self._redacted_arguments(self._arguments)
            deltas.append({"type": "input_json_delta", "partial_json": arguments})
        if self.mode == "flag":
            return b""
        index = event.get("index", 0)
        return b"".join(
            reframe(_DELTA_LINE, {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        )

    def _redacted_arguments(self, parts: list[str]) -> str:
        """A tool call's whole arguments (``parts`` joined, then emptied), redacted in its
        decoded JSON values so that the JSON stays valid."""
        whole = "".join(parts)
        parts.clear()
        return map_arguments(whole, redactor_into(self._tool_categories))

    def _openai(self, raw: bytes, event: dict[str, Any]) -> bytes:
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices:
            return raw
        self._template = {k: event[k] for k in ("id", "created", "model") if k in event}
        out: list[Any] = []
        emptied = 0  # choices whose only content was all held back
        for choice in choices:
            delta = choice.get("delta", {}) if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                out.append(choice)
                continue
            index = choice.get("index", 0)
            state = self._choice(index if isinstance(index, int) else 0)
            new = dict(delta)
            text = delta.get("content")
            if isinstance(text, str) and text:
                new["content"] = state.text.feed(text)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                new["refusal"] = state.refusal.feed(refusal)
            held = [k for k in ("content", "refusal") if delta.get(k) and not new[k]]
            emptied += bool(held) and set(delta) == set(held)
            call = delta.get("function_call")
            if isinstance(call, dict) and isinstance(call.get("arguments"), str):
                state.function_arguments.append(call["arguments"])  # sent with the finish
                new["function_call"] = {**call, "arguments": ""}
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                # Text the model wrote before calling a tool is due now, in this delta
                # (its end stays as context for text after the call).
                _extend(new, {"content": state.text.release()})
                new["tool_calls"] = self._tool_calls(state, calls)
            if choice.get("finish_reason") is not None:
                _extend(new, self._drain(state))  # everything held goes out with the finish
            out.append({**choice, "delta": new})
        if self.mode == "flag":
            return raw
        finished = any(isinstance(c, dict) and c.get("finish_reason") for c in choices)
        if emptied == len(choices) and not finished and "usage" not in event:
            return b""  # nothing to send yet
        return reframe(raw, {**event, "choices": out})

    def _choice(self, index: int) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
        return state

    def _tool_calls(self, state: _Choice, calls: list[Any]) -> list[Any]:
        """Tool-call fragments with their arguments held back (sent empty); each call's
        whole arguments, redacted, go out with the choice's finish (calls may interleave,
        so none is known to be complete before)."""
        out: list[Any] = []
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                out.append(call)
                continue
            index = call.get("index", 0)
            state.arguments.setdefault(index if isinstance(index, int) else 0, []).append(
                function["arguments"]
            )
            out.append({**call, "function": {**function, "arguments": ""}})
        return out

    def _drain(self, state: _Choice) -> dict[str, Any]:
        """A finishing choice's held text and tool calls (whole, redacted, in index order)
        as delta fields, each only when not empty; nothing once the choice has finished."""
        if state.finished:
            return {}
        state.finished = True
        whole = [
            (i, self._redacted_arguments(parts)) for i, parts in sorted(state.arguments.items())
        ]
        state.arguments.clear()
        held = [{"index": i, "function": {"arguments": a}} for i, a in whole if a]
        out: dict[str, Any] = {
            "content": state.text.flush(),
            "refusal": state.refusal.flush(),
            "tool_calls": held,
        }
        if state.function_arguments:
            arguments = self._redacted_arguments(state.function_arguments)
            out["function_call"] = {"arguments": arguments}
        return out

    def _flush_openai(self) -> bytes:
        """Every unfinished choice's held text and arguments, at ``[DONE]`` or the end."""
        out = b""
        for index, state in self._choices.items():
            delta: dict[str, Any] = {}
            _extend(delta, self._drain(state))
            if delta and self.mode != "flag":
                out += _chunk(self._template, index, delta)
        return out


_DELTA_LINE: Final = b"event: content_block_delta\n"


def _parses(payload: bytes) -> bool:
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return True


def _extend(delta: dict[str, Any], held: dict[str, Any]) -> None:
    """Add ``held`` text (``content``, ``refusal``), ``tool_calls`` and ``function_call``
    arguments to an OpenAI ``delta``, after what it carries; empty ones are left out."""
    for key in ("content", "refusal"):
        if held.get(key):
            delta[key] = str(delta.get(key) or "") + held[key]
    call = held.get("function_call")
    if call and call["arguments"]:
        listed = delta.get("function_call")
        before = listed if isinstance(listed, dict) else {}
        delta["function_call"] = {
            **before,
            "arguments": before.get("arguments", "") + call["arguments"],
        }
    if held.get("tool_calls"):
        listed = delta.get("tool_calls")
        delta["tool_calls"] = [*(listed if isinstance(listed, list) else ()), *held["tool_calls"]]


def _chunk(template: dict[str, Any], index: int, delta: dict[str, Any]) -> bytes:
    """An extra OpenAI chunk carrying ``delta`` for choice ``index``, with the stream's
    ``id``, ``created`` and ``model`` (``template``)."""
    chunk = {
        **template,
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def reframe(raw: bytes, event: dict[str, Any]) -> bytes:
    """``event`` re-encoded with the non-data lines (``event: …``) of ``raw`` kept."""
    lines = [line for line in raw.splitlines() if line and not line.startswith(b"data:")]
    return b"".join(line + b"\n" for line in lines) + b"data: " + orjson.dumps(event) + b"\n\n"
