"""One client request on its way to a provider and back: what was sent (``Exchange``), each
try of a provider (``Attempt``), what the answer used and cost (``Answer``), and what whole
answers and streams share: the gateway's response headers, the response cache fill, the
price. Used by :mod:`proxy.responses` (whole answers) and :mod:`proxy.streaming`
(streams)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from models.request_pricing import Usage
from proxy.cache_policy import holds_secret
from proxy.config import RouteSettings
from proxy.errors import StoreError, UpstreamError
from proxy.inbound import COUNT_TOKENS, Endpoint, Target
from proxy.logs import RequestLog
from proxy.providers import anthropic_request
from proxy.services import Services
from proxy.stores import CachedResponse

__all__ = [
    "Answer",
    "Attempt",
    "Exchange",
    "answer_headers",
    "cost_of",
    "store_answer",
    "usage_dict",
]

_log = logging.getLogger("aigw.proxy")


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
        options = self.body.get("stream_options")
        return (
            self.stream
            and target.provider.kind == "openai"
            and self.endpoint.name in ("chat/completions", "completions")
            and not self.client_wants_usage()
            # options that are not an object are the client's to have refused, not merged
            and (options is None or isinstance(options, dict))
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


def answer_headers(
    exchange: Exchange, log_id: str, step: int, status: str
) -> list[tuple[str, str]]:
    """The gateway's headers on an answer: its log id, step and (cached routes) cache status."""
    headers = [("cf-aig-log-id", log_id), ("cf-aig-step", str(step))]
    if exchange.route.cache:
        headers.append(("cf-aig-cache-status", status))
    return headers


async def store_answer(
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
        usage=usage_dict(usage),
        model=model,
        provider=target.provider.name,
        stored_at=services.cache_clock(),
        policy=exchange.cache_policy,
    )
    try:
        await services.cache.put(exchange.cache_key or "", value, exchange.cache_ttl_s)
    except StoreError as err:
        _log.warning("response cache: %s", err)


def usage_dict(usage: Usage | None) -> dict[str, int]:
    """The counts a cached answer keeps (``Usage``'s fields; ``Usage(**it)`` reads them)."""
    return {} if usage is None else asdict(usage)


def cost_of(
    services: Services, exchange: Exchange, target: Target, model: str, usage: Usage | None
) -> float | None:
    if usage is None:
        return None
    catalog = target.provider.catalog_name or target.provider.name
    at = datetime.fromtimestamp(exchange.log.ts_ns / 1e9, UTC)
    return services.pricer.cost(catalog, model, at, usage)
