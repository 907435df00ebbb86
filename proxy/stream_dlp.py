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

from typing import Any

import orjson

from proxy.dlp import StreamRedactor
from proxy.usage import iter_sse_events

__all__ = ["StreamDlp"]


class StreamDlp:
    """Redacts (or, in ``flag`` mode, only scans) the text of a streamed response."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._redactor = StreamRedactor()
        self._tool = StreamRedactor()  # the tool call being streamed, one at a time
        self._tool_index: Any = None  # OpenAI: index of that tool call
        self._buffer = bytearray()
        self._flushed = False

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(self._redactor.categories | self._tool.categories))

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
        return self._flush_openai()

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
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return raw
        choice = choices[0]
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            return raw
        prefix = b""
        if choice.get("finish_reason") is not None:
            prefix = self._flush_openai(event)
        if isinstance(delta.get("tool_calls"), list):
            return prefix + self._openai_tools(raw, event, choice, delta)
        text = delta.get("content")
        if not isinstance(text, str) or not text:
            return prefix + raw
        safe = self._redactor.feed(text)
        if self.mode == "flag":
            return prefix + raw
        if not safe and choice.get("finish_reason") is None:
            return prefix
        changed = {
            **event,
            "choices": [{**choice, "delta": {**delta, "content": safe}}, *choices[1:]],
        }
        return prefix + _frame(raw, changed)

    def _openai_tools(
        self, raw: bytes, event: dict[str, Any], choice: dict[str, Any], delta: dict[str, Any]
    ) -> bytes:
        """A chunk of tool-call fragments: arguments redacted, one tool call at a time."""
        text_tail = self._redactor.flush()  # text the model wrote before calling tools
        prefix = _chunk(event, {"content": text_tail}) if text_tail and self.mode != "flag" else b""
        calls = []
        for call in delta["tool_calls"]:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                calls.append(call)
                continue
            index = call.get("index", 0)
            if index != self._tool_index:
                prefix += self._flush_tool(event)
                self._tool_index = index
            safe = self._tool.feed(function["arguments"])
            calls.append({**call, "function": {**function, "arguments": safe}})
        if self.mode == "flag":
            return prefix + raw
        choices = [{**choice, "delta": {**delta, "tool_calls": calls}}, *event["choices"][1:]]
        return prefix + _frame(raw, {**event, "choices": choices})

    def _flush_tool(self, template: dict[str, Any] | None) -> bytes:
        """The held arguments of the OpenAI tool call in progress, as one extra chunk."""
        tail = self._tool.flush()
        if not tail or self.mode == "flag":
            return b""
        call = {"index": self._tool_index, "function": {"arguments": tail}}
        return _chunk(template, {"tool_calls": [call]})

    def _flush_openai(self, template: dict[str, Any] | None = None) -> bytes:
        if self._flushed:
            return b""
        self._flushed = True
        tools = self._flush_tool(template)
        tail = self._redactor.flush()
        if not tail or self.mode == "flag":
            return tools
        return _chunk(template, {"content": tail}) + tools


def _chunk(template: dict[str, Any] | None, delta: dict[str, Any]) -> bytes:
    """An extra OpenAI chunk carrying ``delta``, with the ids of ``template``."""
    base = {k: v for k, v in (template or {}).items() if k in ("id", "object", "created", "model")}
    chunk = {
        **base,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _frame(raw: bytes, event: dict[str, Any]) -> bytes:
    """``event`` re-encoded with the non-data lines (``event: …``) of ``raw`` kept."""
    lines = [line for line in raw.splitlines() if line and not line.startswith(b"data:")]
    return b"".join(line + b"\n" for line in lines) + b"data: " + orjson.dumps(event) + b"\n\n"
