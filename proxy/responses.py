"""A provider's whole answer on its way back to the client: translated between APIs when
needed, checked by response DLP and guardrails, cached, logged; streams go to
:mod:`proxy.streaming`. Cache hits are replayed from here too."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson

from models.request_pricing import Usage
from proxy.cache_policy import complete_response
from proxy.config import RouteSettings
from proxy.errors import UpstreamError
from proxy.exchange import Answer, Attempt, Exchange, answer_headers, cost_of, store_answer
from proxy.inbound import COUNT_TOKENS, deeper_than, few_brackets
from proxy.logs import new_log_id
from proxy.policy import check_response, inspect_response
from proxy.providers import UpstreamResponse, openai_error, openai_response, usage_from_body
from proxy.services import Services
from proxy.stores import CachedResponse
from proxy.streaming import relay_stream
from proxy.wire import Responder

__all__ = ["deliver", "replay"]


async def replay(hit: CachedResponse, exchange: Exchange, out: Responder) -> Answer:
    """Answer from the response cache: the stored body, or the stored stream chunk by chunk."""
    started = time.perf_counter_ns()
    log_id = new_log_id()
    headers = answer_headers(exchange, log_id, 0, "HIT")
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
        reason=exchange.reason,  # a hit served under a budget's reroute says so too
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
        return await relay_stream(response, exchange, attempt, out, services)
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
        cost = cost_of(services, exchange, target, served, usage)
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
    cost = cost_of(services, exchange, target, served, usage) if status < 400 else None
    await out.raw(
        status, data, content_type, answer_headers(exchange, log_id, attempt.step, "MISS")
    )
    cacheable = status == 200 and complete_response(exchange.endpoint.name, outgoing)
    if exchange.cache_key is not None and cacheable:
        await store_answer(
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
