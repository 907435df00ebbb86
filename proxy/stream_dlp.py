"""Response DLP on a stream: generated text is redacted as it passes, event by event.

Works on whole SSE events in the client's format (OpenAI chunks or Anthropic events).
Text deltas go through ``dlp.StreamRedactor``, which holds back a short tail so that a
secret split across deltas is still caught; the held text is sent, redacted, in one
extra delta just before the stream's finish event. Tool-call argument fragments (OpenAI
``delta.tool_calls[].function.arguments``, Anthropic ``input_json_delta``) go through a
second redactor on their raw JSON text, flushed when the tool call ends; placeholders hold
no quote or backslash, so the arguments stay valid JSON. ``flag`` mode only notes the
categories and passes the bytes unchanged. A stream cannot be refused once it has
started, so ``block`` redacts (and is logged as ``redact``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.dlp import StreamRedactor
from proxy.usage import iter_sse_events

__all__ = ["StreamDlp"]


@dataclass(slots=True)
class _Choice:
    """What one OpenAI choice (by ``index``) holds back: its text and its tool call."""

    text: StreamRedactor = field(default_factory=StreamRedactor)
    tool: StreamRedactor = field(default_factory=StreamRedactor)
    tool_index: Any = None  # the tool call whose arguments ``tool`` holds
    finished: bool = False


class StreamDlp:
    """Redacts (or, in ``flag`` mode, only scans) the text of a streamed response.

    OpenAI choices (``n`` > 1) are redacted separately, each by its ``index``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._redactor = StreamRedactor()  # Anthropic text blocks
        self._tool = StreamRedactor()  # Anthropic tool_use input
        self._choices: dict[int, _Choice] = {}
        self._buffer = bytearray()

    @property
    def categories(self) -> tuple[str, ...]:
        found = self._redactor.categories | self._tool.categories
        for choice in self._choices.values():
            found |= choice.text.categories | choice.tool.categories
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
        """Held text not yet sent when the stream ended without a finish event."""
        return self._flush_openai(None)

    def _event(self, raw: bytes, payload: bytes | None) -> bytes:
        if payload is None:
            return raw
        if payload == b"[DONE]":
            return self._flush_openai(None) + raw
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
            delta = event.get("delta")
            if not isinstance(delta, dict):
                return raw
            for field, redactor in (("text", self._redactor), ("partial_json", self._tool)):
                if isinstance(delta.get(field), str):
                    safe = redactor.feed(delta[field])
                    if self.mode == "flag":
                        return raw
                    return _frame(raw, {**event, "delta": {**delta, field: safe}}) if safe else b""
        if kind == "content_block_stop":
            extra = b""
            for field, kind_name, redactor in (
                ("text", "text_delta", self._redactor),
                ("partial_json", "input_json_delta", self._tool),
            ):
                tail = redactor.flush()
                if tail and self.mode != "flag":
                    delta = {"type": kind_name, field: tail}
                    event_out = {"type": "content_block_delta", "index": event.get("index", 0)}
                    extra += _frame(b"event: content_block_delta\n", {**event_out, "delta": delta})
            return extra + raw
        return raw

    def _openai(self, raw: bytes, event: dict[str, Any]) -> bytes:
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices:
            return raw
        prefix = b""
        out: list[Any] = []
        emptied = 0  # choices whose only content was all held back
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                out.append(choice)
                continue
            index = choice.get("index", 0)
            state = self._choice(index if isinstance(index, int) else 0)
            if choice.get("finish_reason") is not None:
                prefix += self._flush_choice(event, index, state)
            new = dict(delta)
            text = delta.get("content")
            if isinstance(text, str) and text:
                new["content"] = state.text.feed(text)
                emptied += not new["content"] and set(delta) == {"content"}
            if isinstance(delta.get("tool_calls"), list):
                # Text the model wrote before calling a tool is due now, in this delta.
                new["content"] = str(new.get("content") or "") + state.text.flush()
                if not new["content"] and not isinstance(text, str):
                    del new["content"]
                new["tool_calls"] = self._tool_calls(state, delta["tool_calls"])
            out.append({**choice, "delta": new})
        if self.mode == "flag":
            return prefix + raw
        finished = any(isinstance(c, dict) and c.get("finish_reason") for c in choices)
        if emptied == len(choices) and not finished and "usage" not in event:
            return prefix  # nothing to send yet
        return prefix + _frame(raw, {**event, "choices": out})

    def _choice(self, index: int) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
        return state

    def _tool_calls(self, state: _Choice, calls: list[Any]) -> list[Any]:
        """Tool-call fragments with their arguments redacted, one tool call at a time;
        the held end of the previous call goes first, as its own entry."""
        out: list[Any] = []
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                out.append(call)
                continue
            index = call.get("index", 0)
            if index != state.tool_index:
                tail = state.tool.flush()
                if tail:
                    out.append({"index": state.tool_index, "function": {"arguments": tail}})
                state.tool_index = index
            safe = state.tool.feed(function["arguments"])
            out.append({**call, "function": {**function, "arguments": safe}})
        return out

    def _flush_choice(self, template: dict[str, Any] | None, index: Any, state: _Choice) -> bytes:
        """One extra chunk with everything ``state`` still holds (once per choice)."""
        if state.finished:
            return b""
        state.finished = True
        delta: dict[str, Any] = {}
        text = state.text.flush()
        if text:
            delta["content"] = text
        arguments = state.tool.flush()
        if arguments:
            delta["tool_calls"] = [
                {"index": state.tool_index, "function": {"arguments": arguments}}
            ]
        if not delta or self.mode == "flag":
            return b""
        return _chunk(template, index, delta)

    def _flush_openai(self, template: dict[str, Any] | None) -> bytes:
        """Every choice's held text, at ``[DONE]`` or the end of the stream."""
        return b"".join(
            self._flush_choice(template, index, state) for index, state in self._choices.items()
        )


def _chunk(template: dict[str, Any] | None, index: Any, delta: dict[str, Any]) -> bytes:
    """An extra OpenAI chunk carrying ``delta`` for choice ``index``, with the ids of
    ``template``."""
    base = {k: v for k, v in (template or {}).items() if k in ("id", "object", "created", "model")}
    chunk = {
        **base,
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _frame(raw: bytes, event: dict[str, Any]) -> bytes:
    """``event`` re-encoded with the non-data lines (``event: …``) of ``raw`` kept."""
    lines = [line for line in raw.splitlines() if line and not line.startswith(b"data:")]
    return b"".join(line + b"\n" for line in lines) + b"data: " + orjson.dumps(event) + b"\n\n"
