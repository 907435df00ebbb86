"""A provider's answer on its way back to the client: whole or streamed, translated between
APIs when needed, checked by response DLP and guardrails, cached, logged. Streams pass through
event by event as they arrive (never buffered whole); usage is read from the stream. A client
that disconnects mid-stream still produces a record (499, usage so far, else estimated)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from models.request_pricing import Usage
from proxy.cache_policy import holds_secret
from proxy.config import RouteSettings
from proxy.errors import StoreError, UpstreamError
from proxy.inbound import COUNT_TOKENS, Endpoint, Target, deeper_than, few_brackets
from proxy.logs import RequestLog, new_log_id
from proxy.policy import StreamDlp, check_response, evaluate, inspect_response
from proxy.providers import (
    AnthropicToOpenAIStream,
    SseUsage,
    UpstreamResponse,
    anthropic_request,
    iter_sse_events,
    openai_error,
    openai_response,
    usage_from_body,
)
from proxy.services import Services
from proxy.stores import CachedResponse
from proxy.wire import Responder

__all__ = ["Answer", "Attempt", "Exchange", "deliver", "replay"]

_log = logging.getLogger("aigw.proxy")
MAX_CACHED_STREAM_BYTES: Final = 4 * 1024 * 1024
CLIENT_CLOSED: Final = 499  # nginx's "client closed request"


@dataclass(slots=True)
class Exchange:
    """One client request, as sent upstream (after DLP), and its log."""

    endpoint: Endpoint
    route: RouteSettings
    body: dict[str, Any]
    raw: bytes | None  # the client's bytes when the body went unchanged
    headers: dict[str, str]
    log: RequestLog
    reason: str | None = None
    estimate: int = 0
    cache_key: str | None = None  # the store key (in the caller's namespace) on a miss
    cache_ttl_s: float = 0.0
    cache_policy: str = ""  # the fingerprint stored with the answer

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    def translating(self, target: Target) -> bool:
        return target.provider.kind != self.endpoint.api

    def provider_endpoint(self, target: Target) -> str:
        chat = target.provider.kind == "anthropic" and self.endpoint.name != COUNT_TOKENS
        return "messages" if chat else self.endpoint.name  # OpenAI chat goes translated

    def client_wants_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def injects_usage(self, target: Target) -> bool:
        """OpenAI streams carry usage only when asked: the gateway asks for it."""
        return (
            self.stream
            and target.provider.kind == "openai"
            and self.endpoint.name in ("chat/completions", "completions")
            and not self.client_wants_usage()
        )

    def payload(self, target: Target) -> bytes:
        """The request body for ``target`` (the client's own bytes when nothing changes)."""
        if self.translating(target):
            return orjson.dumps(anthropic_request(self.body, target.model))
        body = self.body
        if body.get("model") != target.model:
            body = {**body, "model": target.model}
        if self.injects_usage(target):
            body = {
                **body,
                "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
            }
        if body is self.body and self.raw is not None:
            return self.raw
        return orjson.dumps(body)

    def log_unanswered(self, attempt: Attempt, err: UpstreamError) -> None:
        """Log ``attempt`` as a 502: its provider gave no answer, or broke off its body
        (``err`` says how)."""
        self.log.submit_attempt(
            step=attempt.step,
            provider=attempt.target.provider.name,
            model=attempt.target.model,
            status=502,
            started=attempt.started,
            reason=str(err),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one provider for a request: ``step`` 0 is the first target, begun at
    ``started`` (``time.perf_counter_ns``)."""

    target: Target
    step: int
    started: int


@dataclass(frozen=True, slots=True)
class Answer:
    """What a served request used and cost (for limits and budgets)."""

    usage: Usage | None
    cost: float | None


def _headers(exchange: Exchange, log_id: str, step: int, status: str) -> list[tuple[str, str]]:
    headers = [("cf-aig-log-id", log_id), ("cf-aig-step", str(step))]
    if exchange.route.cache:
        headers.append(("cf-aig-cache-status", status))
    return headers


async def replay(hit: CachedResponse, exchange: Exchange, out: Responder) -> Answer:
    """Answer from the response cache: the stored body, or the stored stream chunk by chunk."""
    started = time.perf_counter_ns()
    log_id = new_log_id()
    headers = _headers(exchange, log_id, 0, "HIT")
    if hit.chunks is not None:
        await out.start_stream(hit.status, hit.content_type, headers)
        for chunk in hit.chunks:
            if not await out.chunk(chunk):
                break
        await out.end_stream()
    else:
        await out.raw(hit.status, hit.body or b"", hit.content_type, headers)
    usage = Usage(**{k: int(v) for k, v in hit.usage.items()})
    exchange.log.submit_attempt(
        step=0,
        provider=hit.provider,
        model=hit.model,
        status=hit.status,
        started=started,
        usage=usage,
        cost=0.0,
        cached=True,
        response_bytes=hit.body or b"".join(hit.chunks or ()),
        log_id=log_id,
    )
    return Answer(usage=Usage(), cost=0.0)


async def deliver(
    response: UpstreamResponse,
    exchange: Exchange,
    attempt: Attempt,
    out: Responder,
    services: Services,
) -> Answer:
    """Send ``response`` to the client and log it as ``attempt``."""
    if exchange.stream and response.status == 200 and "event-stream" in response.content_type:
        return await _stream(response, exchange, attempt, out, services)
    target = attempt.target
    log_id = new_log_id()
    try:
        data = await response.read()
    except UpstreamError as err:
        exchange.log_unanswered(attempt, err)
        await out.error(502, str(err), "upstream_error", 502)
        return Answer(None, None)
    status = response.status
    try:
        parsed: Any = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        parsed = None
    usage = usage_from_body(target.provider.kind, parsed) if status < 400 else None
    if exchange.endpoint.name == COUNT_TOKENS and status < 400:  # counting is free: 0 tokens
        usage = Usage()
    reported = parsed.get("model") if isinstance(parsed, dict) else None
    served = reported if isinstance(reported, str) else target.model
    outgoing: Any = parsed
    content_type = response.content_type
    limit = services.config.max_json_depth
    deep = not few_brackets(data, limit) and deeper_than(parsed, limit)  # passed on unread
    refusal: dict[str, Any] | str | None = None
    if deep and (exchange.translating(target) or _inspects(exchange.route)):
        refusal = f"the provider's answer nests deeper than {limit} levels: it cannot be checked"
    elif exchange.translating(target):
        outgoing = (
            openai_response(parsed, usage, served)
            if status == 200 and isinstance(parsed, dict)
            else openai_error(status, parsed)
        )
        data = orjson.dumps(outgoing)
        content_type = "application/json"
        served = target.model
    if status == 200 and isinstance(outgoing, dict) and not deep:
        refusal = _check_response(exchange, outgoing)
    if isinstance(refusal, dict):
        outgoing = refusal
        data = orjson.dumps(refusal)
    elif refusal is not None:
        cost = _cost(services, exchange, target, served, usage)
        exchange.log.submit_attempt(
            step=attempt.step,
            provider=target.provider.name,
            model=served,
            status=502,
            started=attempt.started,
            usage=usage,
            cost=cost,
            reason=refusal,
            log_id=log_id,
        )
        kind = "upstream_error" if deep else "content_policy_blocked"
        await out.error(502, refusal, kind, "content_policy_violation")
        return Answer(usage, cost)
    cost = _cost(services, exchange, target, served, usage) if status < 400 else None
    await out.raw(status, data, content_type, _headers(exchange, log_id, attempt.step, "MISS"))
    if exchange.cache_key is not None and status == 200:
        await _store(
            services, exchange, target, usage, served, content_type=content_type, body=data
        )
    exchange.log.submit_attempt(
        step=attempt.step,
        provider=target.provider.name,
        model=served,
        status=status,
        started=attempt.started,
        usage=usage,
        cost=cost,
        response_body=_too_deep(data, limit) if deep else _logged(exchange, outgoing),
        response_bytes=data,
        reason=exchange.reason,
        log_id=log_id,
    )
    return Answer(usage, cost)


async def _store(
    services: Services,
    exchange: Exchange,
    target: Target,
    usage: Usage | None,
    model: str,
    *,
    content_type: str,
    body: bytes | None = None,
    chunks: list[bytes] | None = None,
) -> None:
    """Fill the response cache with a 200 answer (``body``, or a stream's ``chunks``) unless
    it holds a secret the route does not allow to keep; a cache that fails is logged and the
    answer still counts."""
    if not exchange.route.cache_secrets and holds_secret(body, chunks):
        return
    value = CachedResponse(
        status=200,
        content_type=content_type,
        body=body,
        chunks=None if chunks is None else tuple(chunks),
        usage=_usage_dict(usage),
        model=model,
        provider=target.provider.name,
        stored_at=time.time(),
        policy=exchange.cache_policy,
    )
    try:
        await services.cache.put(exchange.cache_key or "", value, exchange.cache_ttl_s)
    except StoreError as err:
        _log.warning("response cache: %s", err)


def _note_stream_checks(exchange: Exchange, dlp: StreamDlp | None, text: str | None) -> bool:
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


def _check_response(exchange: Exchange, body: dict[str, Any]) -> dict[str, Any] | str | None:
    """Response DLP and guardrails: a redacted body, a refusal message, or None."""
    route = exchange.route
    log = exchange.log
    result: dict[str, Any] | str | None = None
    if route.guardrails != "off" and route.guardrail_responses:
        verdict = check_response(body)
        if verdict.flagged:
            log.guardrail_action = route.guardrails
            log.guardrail_categories = tuple(
                sorted({*log.guardrail_categories, *verdict.categories})
            )
            if route.guardrails == "block":
                return f"response blocked by guardrails: {', '.join(verdict.categories)}"
    if route.dlp != "off" and route.dlp_responses:
        found = inspect_response(body, route.dlp)
        if found.action is not None:
            log.dlp_action = found.action if log.dlp_action in (None, "flag") else log.dlp_action
            log.dlp_categories = tuple(sorted({*log.dlp_categories, *found.categories}))
            if found.action == "block":
                return f"response blocked by DLP: {', '.join(found.categories)}"
            if found.action == "redact":
                result = found.body
    return result


def _inspects(route: RouteSettings) -> bool:
    """Whether answers on ``route`` are read by response guardrails or DLP."""
    return (route.guardrails != "off" and route.guardrail_responses) or (
        route.dlp != "off" and route.dlp_responses
    )


def _too_deep(data: bytes, limit: int) -> dict[str, Any]:
    """What a record holds instead of an answer nested past ``limit`` (a record cannot)."""
    digest = hashlib.sha256(data).hexdigest()
    return {"omitted": f"nested deeper than {limit} levels", "sha256": digest}


def _logged(exchange: Exchange, body: Any) -> Any:
    """The response body for the log: always DLP-redacted (only kept with log_bodies)."""
    if not exchange.log.log_bodies or not isinstance(body, dict):
        return None
    return inspect_response(body, "redact").body


def _usage_dict(usage: Usage | None) -> dict[str, int]:
    """The counts a cached answer keeps (``Usage``'s fields; ``Usage(**it)`` reads them)."""
    return {} if usage is None else asdict(usage)


def _cost(
    services: Services, exchange: Exchange, target: Target, model: str, usage: Usage | None
) -> float | None:
    if usage is None:
        return None
    catalog = target.provider.catalog_name or target.provider.name
    at = datetime.fromtimestamp(exchange.log.ts_ns / 1e9, UTC)
    return services.pricer.cost(catalog, model, at, usage)


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


def _stream_dlp(route: RouteSettings) -> StreamDlp | None:
    return StreamDlp(route.dlp) if route.dlp != "off" and route.dlp_responses else None


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


async def _stream(
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
    dlp = _stream_dlp(route)
    content_type = "text/event-stream" if translator else response.content_type
    await out.start_stream(200, content_type, _headers(exchange, log_id, attempt.step, "MISS"))
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
    cost = _cost(services, exchange, attempt.target, attempt.target.model, usage)
    if kept is not None and status == 200 and cacheable:
        await _store(
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
