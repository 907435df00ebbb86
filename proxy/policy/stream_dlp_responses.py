"""Response DLP on an OpenAI Responses API stream, event by event (the chat and Anthropic
streams are :mod:`proxy.policy.stream_dlp`'s).

Text deltas (``response.output_text.delta``, ``response.refusal.delta``) go through
``dlp.StreamRedactor``, one per output item and content part, which holds back a short tail
so that a secret split across deltas is still caught; what it holds is sent, redacted, in one
extra delta just before the part's ``.done`` event. Function-call argument deltas are held
and sent whole, redacted in their decoded JSON values (``texts.map_arguments``), in one
delta just before ``response.function_call_arguments.done``. The events that repeat the
whole text (``output_text.done``, ``content_part.done``, ``output_item.done``,
``function_call_arguments.done``, and ``response.completed`` with its ``output``) are
redacted whole, so the client's final response holds no more than its deltas did.
``flag`` mode only notes the categories and passes the bytes unchanged. A stream cannot be
refused once it has started, so ``block`` redacts (and is logged as ``redact``).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from proxy.policy.dlp import StreamRedactor, redactor_into
from proxy.policy.stream_dlp import reframe
from proxy.policy.texts import map_arguments, map_response_texts
from proxy.providers import iter_sse_events

__all__ = ["ResponsesStreamDlp"]

_TEXT_DELTAS: Final = {
    "response.output_text.delta": "response.output_text.done",
    "response.refusal.delta": "response.refusal.done",
}
_TEXT_DONES: Final = {done: delta for delta, done in _TEXT_DELTAS.items()}
_ARGUMENTS_DELTA: Final = "response.function_call_arguments.delta"
_ARGUMENTS_DONE: Final = "response.function_call_arguments.done"

_Part = tuple[str, Any, Any]  # (delta event type, output_index, content_index)


class ResponsesStreamDlp:
    """Redacts (or, in ``flag`` mode, only scans) the text of a streamed Responses API
    answer; the same interface as ``StreamDlp``. One instance per stream."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._texts: dict[_Part, StreamRedactor] = {}
        self._arguments: dict[Any, list[str]] = {}  # by output_index
        self._last: dict[Any, dict[str, Any]] = {}  # by part or output_index: its last delta
        self._found: set[str] = set()  # categories of whole texts and arguments
        self._redact = redactor_into(self._found)
        self._buffer = bytearray()

    @property
    def categories(self) -> tuple[str, ...]:
        found = set(self._found)
        for redactor in self._texts.values():
            found |= redactor.categories
        return tuple(sorted(found))

    @property
    def action(self) -> str | None:
        if not self.categories:
            return None
        return "flag" if self.mode == "flag" else "redact"

    def process(self, data: bytes) -> bytes:
        """The client's bytes for ``data`` (whole or partial SSE events)."""
        self._buffer += data
        return b"".join(self._event(raw, payload) for raw, payload in iter_sse_events(self._buffer))

    def finish(self) -> bytes:
        """What is still held when the stream ends (cut off before its ``.done`` events): a
        last unterminated event (dropped in redact mode when it does not parse), then each
        part's held text and each call's held arguments as one more delta."""
        out = b""
        if self._buffer.strip():
            self._buffer += b"\n\n"
            for raw, payload in iter_sse_events(self._buffer):
                if payload is not None and not _decodes(payload):
                    out += raw if self.mode == "flag" else b""
                else:
                    out += self._event(raw, payload)
        self._buffer.clear()
        for part in list(self._texts):
            out += self._held_text(part, self._last.get(part, {}))
        for index in list(self._arguments):
            out += self._held_arguments(index, self._last.get(index, {}))[0]
        return out

    def _event(self, raw: bytes, payload: bytes | None) -> bytes:
        try:
            event = orjson.loads(payload) if payload is not None else None
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return raw
        kind: str = event["type"]
        flag = self.mode == "flag"
        if kind in _TEXT_DELTAS and isinstance(event.get("delta"), str):
            part = (kind, event.get("output_index"), event.get("content_index"))
            self._last[part] = event
            redactor = self._texts.setdefault(part, StreamRedactor())
            safe = redactor.feed(event["delta"])
            if flag:
                return raw
            return reframe(raw, {**event, "delta": safe}) if safe else b""
        if kind == _ARGUMENTS_DELTA and isinstance(event.get("delta"), str):
            index = event.get("output_index")
            self._last[index] = event
            self._arguments.setdefault(index, []).append(event["delta"])
            return raw if flag else b""
        held, original = b"", event
        if kind in _TEXT_DONES:
            part = (_TEXT_DONES[kind], event.get("output_index"), event.get("content_index"))
            held = self._held_text(part, event)
        elif kind == _ARGUMENTS_DONE:
            held, event = self._held_arguments(event.get("output_index"), event)
        redacted = map_response_texts(event, self._redact)
        if flag:
            return raw
        return held + (raw if redacted == original else reframe(raw, redacted))

    def _held_text(self, part: _Part, template: dict[str, Any]) -> bytes:
        """The text ``part`` still holds, redacted, as one more delta (empty when none)."""
        redactor = self._texts.pop(part, None)
        text = redactor.flush() if redactor is not None else ""
        if redactor is not None:
            self._found |= redactor.categories
        self._last.pop(part, None)
        if not text or self.mode == "flag":
            return b""
        return _delta(part[0], template, text)

    def _held_arguments(self, index: Any, event: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """A call's whole arguments (the ``.done`` event's, else its held fragments),
        redacted, as one delta; and ``event`` with them (so that it is not redacted again)."""
        fragments = self._arguments.pop(index, [])
        self._last.pop(index, None)
        whole = event.get("arguments")
        if not isinstance(whole, str):
            whole = "".join(fragments)
        arguments = map_arguments(whole, self._redact)
        done = {**event, "arguments": arguments} if "arguments" in event else event
        if not arguments or self.mode == "flag":
            return b"", done
        return _delta(_ARGUMENTS_DELTA, event, arguments), done


def _delta(kind: str, template: dict[str, Any], text: str) -> bytes:
    """An extra ``kind`` delta event for the item and part ``template`` names."""
    event: dict[str, Any] = {"type": kind}
    for key in ("item_id", "output_index", "content_index", "sequence_number"):
        if key in template:
            event[key] = template[key]
    if kind != _ARGUMENTS_DELTA:
        event["logprobs"] = []
    event["delta"] = text
    return reframe(b"event: " + kind.encode() + b"\n", event)


def _decodes(payload: bytes) -> bool:
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return True
