"""The stream relay: a provider's SSE answer passed to the client event by event as it
arrives (never buffered whole), translated between APIs when needed, redacted by the stream
DLP, checked by response guardrails at its end (logged; a started stream cannot be refused),
cached when whole and clean, logged with the usage it reported. A client that disconnects
mid-stream still produces a record (499, usage so far, else estimated)."""

from __future__ import annotations

from typing import Final

import orjson

from models.request_pricing import Usage
from proxy.errors import UpstreamError
from proxy.exchange import Answer, Attempt, Exchange, answer_headers, cost_of, store_answer
from proxy.inbound import Target
from proxy.logs import new_log_id
from proxy.policy import ResponsesStreamDlp, StreamDlp, evaluate
from proxy.providers import AnthropicToOpenAIStream, SseUsage, UpstreamResponse, iter_sse_events
from proxy.services import Services
from proxy.wire import Responder

__all__ = ["relay_stream"]

MAX_CACHED_STREAM_BYTES: Final = 4 * 1024 * 1024
CLIENT_CLOSED: Final = 499  # nginx's "client closed request"


async def relay_stream(
    response: UpstreamResponse,
    exchange: Exchange,
    attempt: Attempt,
    out: Responder,
    services: Services,
) -> Answer:
    log_id = new_log_id()
    translator = _translator(exchange, attempt.target)
    per_event = translator is not None or exchange.injects_usage(attempt.target)
    route = exchange.route
    guarded = route.guardrails != "off" and route.guardrail_responses
    tracker = SseUsage(attempt.target.provider.kind, keep_text=guarded)
    dlp = _stream_dlp(exchange)
    content_type = "text/event-stream" if translator else response.content_type
    await out.start_stream(
        200, content_type, answer_headers(exchange, log_id, attempt.step, "MISS")
    )
    buffer = bytearray()
    kept: list[bytes] | None = [] if exchange.cache_key is not None else None
    status, reason = 200, exchange.reason
    try:
        async for chunk in response.chunks():
            if per_event:
                buffer += chunk
                data = _relay_events(buffer, tracker, translator)
            else:
                tracker.feed(chunk)
                data = chunk
            if dlp is not None:
                data = dlp.process(data)
            if kept is not None and data:
                kept.append(data)
                if len(kept) % 64 == 0 and sum(map(len, kept)) > MAX_CACHED_STREAM_BYTES:
                    kept = None  # too big to cache
            if not await out.chunk(data):
                status, reason = CLIENT_CLOSED, "client disconnected mid-stream"
                response.close()
                break
        else:
            tail = bytes(buffer) if buffer and translator is None else b""
            if dlp is not None:
                tail = dlp.process(tail) + dlp.finish()
            if tail:
                await out.chunk(tail)
    except (UpstreamError, orjson.JSONEncodeError) as err:
        status, reason = 502, _broken_stream(err)
    finally:
        if status != CLIENT_CLOSED:
            response.release()
    await out.end_stream()
    cacheable = _note_stream_checks(exchange, dlp, tracker.text if guarded else None)
    usage = tracker.usage
    if usage is None and status != 200:
        usage = Usage(tokens_in=exchange.estimate, tokens_out=tracker.text_chars // 4)
        reason = f"{reason}; usage estimated"
    cost = cost_of(services, exchange, attempt.target, attempt.target.model, usage)
    if kept is not None and status == 200 and cacheable and _whole(exchange, tracker):
        await store_answer(
            services,
            exchange,
            attempt.target,
            usage,
            attempt.target.model,
            content_type=content_type,
            chunks=kept,
        )
    exchange.log.submit_attempt(
        step=attempt.step,
        provider=attempt.target.provider.name,
        model=attempt.target.model,
        status=status,
        started=attempt.started,
        usage=usage,
        cost=cost,
        reason=reason,
        log_id=log_id,
    )
    return Answer(usage, cost)


def _note_stream_checks(exchange: Exchange, dlp: _Dlp | None, text: str | None) -> bool:
    """Log what response DLP and guardrails (given the text) found in a finished stream.

    A stream that has started cannot be refused, so a guardrail verdict is logged as
    ``monitor`` whatever the mode; in ``block`` mode a flagged stream is not cached.
    Returns whether the stream may be cached.
    """
    log = exchange.log
    if dlp is not None and dlp.action is not None:
        log.dlp_action = log.dlp_action if log.dlp_action in ("redact", "block") else dlp.action
        log.dlp_categories = tuple(sorted({*log.dlp_categories, *dlp.categories}))
    if text is None:
        return True
    verdict = evaluate((text,))
    if not verdict.flagged:
        return True
    log.guardrail_action = log.guardrail_action or "monitor"
    log.guardrail_categories = tuple(sorted({*log.guardrail_categories, *verdict.categories}))
    return exchange.route.guardrails != "block"


def _broken_stream(err: UpstreamError | orjson.JSONEncodeError) -> str:
    """Why a stream ended early: its provider broke off, or sent an event nested past what
    JSON writing allows (it cannot be translated or passed on redacted)."""
    if isinstance(err, UpstreamError):
        return str(err)
    return f"the provider's stream could not be passed on: {err}"


def _usage_only(payload: bytes) -> bool:
    """An OpenAI chunk with usage and no choices: the one the gateway asked for."""
    if b'"usage"' not in payload:
        return False
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and not event.get("choices") and event.get("usage") is not None


def _translator(exchange: Exchange, target: Target) -> AnthropicToOpenAIStream | None:
    if not exchange.translating(target):
        return None
    return AnthropicToOpenAIStream(target.model, include_usage=exchange.client_wants_usage())


_Dlp = StreamDlp | ResponsesStreamDlp


def _stream_dlp(exchange: Exchange) -> _Dlp | None:
    route = exchange.route
    if route.dlp == "off" or not route.dlp_responses:
        return None
    if exchange.endpoint.name == "responses":
        return ResponsesStreamDlp(route.dlp)
    return StreamDlp(route.dlp)


def _whole(exchange: Exchange, tracker: SseUsage) -> bool:
    """Whether a stream that ended without error holds a whole answer worth caching: a
    Responses API stream must end in ``response.completed`` or ``.incomplete`` (not
    ``.failed``, nor cut short without its last event)."""
    if exchange.endpoint.name != "responses":
        return True
    return tracker.finished in ("response.completed", "response.incomplete")


def _relay_events(
    buffer: bytearray, tracker: SseUsage, translator: AnthropicToOpenAIStream | None
) -> bytes:
    """The complete events in ``buffer``, translated, minus the usage chunk the gateway
    asked for; usage is noted on ``tracker``."""
    parts = []
    for raw, payload in iter_sse_events(buffer):
        if payload is None:
            if translator is None:
                parts.append(raw)
            continue
        tracker.observe(payload)
        if translator is not None:
            parts.append(translator.convert(payload))
        elif not _usage_only(payload):
            parts.append(raw)
    return b"".join(parts)
