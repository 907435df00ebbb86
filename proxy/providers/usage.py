"""Token usage from provider responses, whole or streamed (SSE).

Counts follow the warehouse convention: ``tokens_in`` includes prompt-cache reads
and writes. OpenAI's ``prompt_tokens`` (Responses API: ``input_tokens``) already does;
Anthropic's ``input_tokens`` does not, so its cache counts are added; its cache writes by
TTL (``cache_creation.ephemeral_1h_input_tokens``) give ``Usage.cache_write_1h``. OpenAI's
output counts (``completion_tokens``, ``output_tokens``) include reasoning tokens: priced
as output.
"""

from __future__ import annotations

from typing import Any

import orjson

from models.request_pricing import Usage

__all__ = [
    "SseUsage",
    "anthropic_usage",
    "flat_anthropic_usage",
    "iter_sse_data",
    "iter_sse_events",
    "usage_from_body",
]


def usage_from_body(kind: str, body: Any) -> Usage | None:
    """Usage of a non-streamed response of a provider of ``kind``; None when absent."""
    if not isinstance(body, dict):
        return None
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    return anthropic_usage(usage) if kind == "anthropic" else _openai(usage)


def _openai(usage: dict[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details", usage.get("input_tokens_details"))
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    tokens_in = usage.get("prompt_tokens", usage.get("input_tokens")) or 0
    return Usage(
        tokens_in=int(tokens_in),
        tokens_out=int(usage.get("completion_tokens", usage.get("output_tokens")) or 0),
        cache_read=int(cached or 0),
    )


def anthropic_usage(usage: dict[str, Any]) -> Usage:
    """``Usage`` of an Anthropic ``usage`` object, nested (``cache_creation``) or as
    ``flat_anthropic_usage`` keeps it."""
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    one_hour = flat_anthropic_usage(usage).get("ephemeral_1h_input_tokens", 0)
    return Usage(
        tokens_in=int(usage.get("input_tokens") or 0) + read + write,
        tokens_out=int(usage.get("output_tokens") or 0),
        cache_read=read,
        cache_write=write,
        cache_write_1h=min(one_hour, write),
    )


def flat_anthropic_usage(usage: dict[str, Any]) -> dict[str, int]:
    """The integer counts of an Anthropic ``usage`` object, those of its ``cache_creation``
    object (the writes by TTL) included: what a stream keeps between its events."""
    creation = usage.get("cache_creation")
    nested = creation.items() if isinstance(creation, dict) else ()
    return {k: v for k, v in (*usage.items(), *nested) if type(v) is int}


def iter_sse_data(buffer: bytearray) -> list[bytes]:
    """Remove every complete SSE event from ``buffer``; return their ``data:`` payloads."""
    return [payload for _, payload in iter_sse_events(buffer) if payload is not None]


def iter_sse_events(buffer: bytearray) -> list[tuple[bytes, bytes | None]]:
    """Remove every complete SSE event from ``buffer``: (raw bytes with their blank-line
    terminator, ``data:`` payload or None).

    Events end with a blank line; an incomplete tail stays in ``buffer`` for the next
    chunk. Multi-line data is joined with newlines, as the SSE spec says.
    """
    events: list[tuple[bytes, bytes | None]] = []
    while True:
        end, size = _event_end(buffer)
        if end < 0:
            return events
        raw = bytes(buffer[: end + size])
        del buffer[: end + size]
        lines = [line[5:].lstrip(b" ") for line in raw.splitlines() if line.startswith(b"data:")]
        events.append((raw, b"\n".join(lines) if lines else None))


def _event_end(buffer: bytearray) -> tuple[int, int]:
    ends = [(buffer.find(sep), len(sep)) for sep in (b"\n\n", b"\r\n\r\n")]
    found = [pair for pair in ends if pair[0] >= 0]
    return min(found) if found else (-1, 0)


_RESPONSES_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
    }
)
_RESPONSES_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})

#: Generated text a stream keeps for the response guardrails (characters); past it, unchecked.
MAX_KEPT_TEXT = 262_144


class SseUsage:
    """Follows a provider's SSE stream and keeps the usage it reports.

    OpenAI sends usage in the last chunk when ``stream_options.include_usage`` is set (the
    Responses API: in ``response.completed``, ``.incomplete`` or ``.failed``, the last event,
    which ``finished`` names); Anthropic sends input counts in ``message_start`` and output
    in ``message_delta``.
    ``feed`` never changes the bytes; call it with each chunk as it passes.
    """

    def __init__(self, kind: str, *, keep_text: bool = False) -> None:
        self.kind = kind
        self._buffer = bytearray()
        self._openai: Usage | None = None
        self._anthropic: dict[str, int] = {}
        self.text_chars = 0  # characters of generated text seen (for an estimate)
        self._parts: list[str] | None = [] if keep_text else None
        self.finished: str | None = None  # Responses API: the type of the stream's last event

    @property
    def text(self) -> str:
        """The generated text and tool-call arguments seen, up to ``MAX_KEPT_TEXT`` characters
        (with ``keep_text``)."""
        return "".join(self._parts or ())

    def _note_text(self, text: str) -> None:
        if self._parts is not None and self.text_chars < MAX_KEPT_TEXT:
            self._parts.append(text[: MAX_KEPT_TEXT - self.text_chars])
        self.text_chars += len(text)

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        for payload in iter_sse_data(self._buffer):
            self.observe(payload)

    def observe(self, payload: bytes) -> None:
        """Take one event's data payload (already split from the stream)."""
        if payload == b"[DONE]":
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if self.kind == "anthropic":
            self._observe_anthropic(event)
            return
        kind = event.get("type")
        if isinstance(kind, str) and kind.startswith("response."):
            self._observe_responses(kind, event)
            return
        usage = event.get("usage")
        if isinstance(usage, dict):
            self._openai = _openai(usage)
        for choice in event.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                self._note_text(delta["content"])
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    self._note_text(function["arguments"])

    def _observe_responses(self, kind: str, event: dict[str, Any]) -> None:
        """An OpenAI Responses API event: text and argument deltas, and the last event."""
        if kind in _RESPONSES_DELTAS and isinstance(event.get("delta"), str):
            self._note_text(event["delta"])
        elif kind in _RESPONSES_ENDS:
            self.finished = kind
            response = event.get("response")
            usage = response.get("usage") if isinstance(response, dict) else None
            if isinstance(usage, dict):
                self._openai = _openai(usage)

    def _observe_anthropic(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        usage: Any = None
        if kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
        elif kind == "message_delta":
            usage = event.get("usage")
        elif kind == "content_block_delta":
            delta = event.get("delta")
            for field in ("text", "partial_json"):  # text_delta, input_json_delta
                if isinstance(delta, dict) and isinstance(delta.get(field), str):
                    self._note_text(delta[field])
        if isinstance(usage, dict):
            self._anthropic.update(flat_anthropic_usage(usage))

    @property
    def usage(self) -> Usage | None:
        """The usage reported so far (None when the stream carried none)."""
        if self.kind == "anthropic":
            return anthropic_usage(self._anthropic) if self._anthropic else None
        return self._openai
