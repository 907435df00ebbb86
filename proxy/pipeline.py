"""One client request through the gateway's controls, in order:

authentication -> rate limits -> budget -> guardrails -> DLP -> response cache ->
providers in the route's order (failover on 429, 5xx, timeout) -> response
(whole or streamed) -> logs, limits settled, spend counted, cache filled.

Every attempt is one log record (``Step`` 0, 1, 2…), submitted through the request's
``RequestLog`` to the gateway's record sink; the client gets one response. Refusals by the
controls (rate limits and budgets: 429; guardrail and DLP blocks: 400) are one record too,
and so are requests refused before them (404, 401, 405; a body that is not a JSON object or
nests deeper than ``max_json_depth``; bad metadata or model) and a request our own code
failed (500). Refusals without an accepted gateway key (401, 404; with ``auth.required``
off, every refusal before the controls) pass a ``RefusalGate`` first, so that a flood of bad
keys cannot flood the logs; an unknown key is logged as a fingerprint (``ApiKeyId``
``sha256:`` and 8 hex digits), never as itself. ``GET /v1/models`` answers are not logged
(no provider, no tokens); its refusals are.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from models.pricing import catalog_models
from proxy.cache_policy import answer_policy, cache_namespace, cacheable_request
from proxy.config import GatewayConfig, KeyIdentity, RouteSettings
from proxy.errors import RequestRefused, StoreError, UpstreamError
from proxy.exchange import Answer, Attempt, Exchange
from proxy.inbound import (
    Target,
    authenticate,
    check_depth,
    check_event_id,
    check_model_name,
    key_fingerprint,
    loggable_event_id,
    parse_body,
    parse_endpoint,
    parse_metadata,
    plan_targets,
    resolve_model,
)
from proxy.logs import RefusalGate, RequestLog
from proxy.policy import (
    BudgetCheck,
    Charged,
    Denied,
    check_budget,
    check_request,
    estimate_tokens,
    inspect_request,
    rate_limit,
    redact,
    request_texts,
)
from proxy.prompt_prefix import prompt_prefix
from proxy.responses import deliver, replay
from proxy.services import Services
from proxy.stores import cache_key, scoped_key
from proxy.wire import Request, Responder

__all__ = ["SIM_TIME_HEADER", "Gateway"]

_log = logging.getLogger("aigw.proxy")
SIM_TIME_HEADER: Final = "x-aigw-simulated-time"
_RETRYABLE: Final = frozenset({408, 429, 500, 502, 503, 504, 529})
_GLOB: Final = re.compile(r"[*?\[]")  # fnmatch's special characters


class Gateway:
    """The request pipeline; one instance per process, used on one event loop."""

    def __init__(self, services: Services) -> None:
        self.s = services
        logs = services.config.logs
        self.refusals = RefusalGate(logs.refusals_per_ip_per_min, logs.refusals_per_min)

    async def handle(self, request: Request, out: Responder) -> None:
        """Answer ``request`` on ``out``; every answer to an API endpoint leaves exactly one
        record per attempt (refusals one record), except refusals without an accepted key
        past ``RefusalGate``'s limits."""
        log = self._new_log(request)
        try:
            await self._handle(request, out, log)
        except RequestRefused as err:
            if log.records == 0:
                self._log_refusal(request, log, err.status, str(err))
            if not out.started:
                await out.error(err.status, str(err), err.kind, err.code, err.headers)
        except Exception:  # noqa: BLE001 - the edge: a bug still gets its record and a 500
            _log.exception("request to %s failed", request.path[:200])
            if log.records == 0:
                self._log_refusal(request, log, 500, "internal gateway error")
            if not out.started:
                await out.error(500, "internal gateway error", "api_error")
        self.s.metrics.request_done(log)

    def log_early_refusal(self, request: Request, status: int, reason: str) -> None:
        """The one record of a request refused while its body was read (413, a body that
        timed out, an unsendable header): ``request`` is its head, with an empty body."""
        self._log_refusal(request, self._new_log(request), status, reason)

    def _new_log(self, request: Request) -> RequestLog:
        """The request's log, before anything is known of it but its arrival."""
        return RequestLog(
            sink=self.s.logs,
            ts_ns=self.s.clock(),
            gateway=self.s.config.gateway,
            endpoint=None,
            requested_model=None,
            route=None,
            api_key_id=None,
            metadata=None,
            event_id=loggable_event_id(request.headers.get("cf-aig-event-id")),
            log_bodies=self.s.config.logs.log_bodies,
            request_bytes=request.body,
        )

    def _log_refusal(self, request: Request, log: RequestLog, status: int, reason: str) -> None:
        """The one record of a request refused before a provider was tried. Without an
        accepted key, records pass ``self.refusals`` first (a flood of bad keys or paths
        cannot flood the logs); an unknown key is logged by its fingerprint, never itself."""
        if log.api_key_id is None:
            if status == 401:
                log.api_key_id = key_fingerprint(request.headers)
            if not self.refusals.allow(request.client_ip):
                if self.refusals.left_out == 1:  # the first left out since the last summary
                    loop = asyncio.get_running_loop()
                    loop.call_later(self.refusals.window_s, self.refusals.summarise)
                return
        # a reason may quote what the client sent (a path): never a secret in the logs
        log.submit_attempt(
            step=0,
            provider=None,
            model=None,
            status=status,
            started=log.t0,
            reason=redact(reason[:4096])[:300],
        )

    async def _handle(self, request: Request, out: Responder, log: RequestLog) -> None:
        config = self.s.config
        if request.method == "GET" and request.path == "/v1/models":
            authenticate(request.headers, config)
            await self._models(out)
            return
        endpoint = parse_endpoint(request.path, config)
        log.gateway, log.endpoint = endpoint.gateway, endpoint.name
        identity = authenticate(request.headers, config)
        log.api_key_id = identity.id if identity else None
        if request.method != "POST":
            raise RequestRefused(
                405, f"{request.method} is not allowed; use POST", "invalid_request_error"
            )
        check_event_id(request.headers.get("cf-aig-event-id"))
        body = parse_body(request.body)
        model = body.get("model")
        if isinstance(model, str):
            _check_model(model)
            log.requested_model = model
        check_depth(body, config.max_json_depth, request.body)
        metadata = parse_metadata(request.headers.get("cf-aig-metadata"))
        log.metadata = _safe_metadata(metadata)
        primary, route = resolve_model(endpoint, body, config)
        log.route = route.name
        if self.s.simulated_time and SIM_TIME_HEADER in request.headers:
            log.ts_ns = _simulated_time(request.headers[SIM_TIME_HEADER])
            self.s.cache_clock.simulated_ns = log.ts_ns
        ts_ns = log.ts_ns
        estimate = estimate_tokens(request_texts(body))
        targets = plan_targets(primary, route, endpoint, config)
        try:
            charged, budget, targets, reason = await self._limits(
                request, route, identity, metadata, estimate, targets, log
            )
            sent_body = _policies(body, route, log)
        except RequestRefused as err:
            log.submit_attempt(
                step=0,
                provider=primary.provider.name,
                model=primary.model,
                status=err.status,
                started=log.t0,
                rate_limited=err.code == "rate_limited",
                reason=str(err),
            )
            self.s.metrics.refused(route.name, err.kind)
            raise
        if reason is not None:
            self.s.metrics.rerouted(route.name)
        if config.logs.log_bodies:  # logged bodies are always redacted, whatever the mode
            redacted = sent_body is not body
            log.request_body = sent_body if redacted else inspect_request(body, "redact").body
        log.request_bytes = request.body if sent_body is body else orjson.dumps(sent_body)
        log.prompt_prefix = prompt_prefix(sent_body)  # hashed as sent: after DLP
        exchange = Exchange(
            endpoint=endpoint,
            route=route,
            body=sent_body,
            raw=request.body if sent_body is body else None,
            headers=request.headers,
            log=log,
            reason=reason,
            estimate=estimate,
        )
        answer = await self._cached_or_called(exchange, targets, identity, out)
        await self._account(answer, charged, budget, ts_ns / 1e9)

    async def _limits(  # noqa: PLR0917 - private, one caller
        self,
        request: Request,
        route: RouteSettings,
        identity: KeyIdentity | None,
        metadata: dict[str, Any] | None,
        estimate: int,
        targets: list[Target],
        log: RequestLog,
    ) -> tuple[Charged, BudgetCheck | None, list[Target], str | None]:
        """Rate limits, then the budget: ``RequestRefused`` 429, or the targets to try (a
        reroute when the budget is spent and says so)."""
        now_s = log.ts_ns / 1e9
        charged, denied = await rate_limit(
            self.s.limiter, route, identity, request.client_ip, metadata, estimate, now_s
        )
        if denied is not None:
            raise _rate_limited(denied)
        now = datetime.fromtimestamp(now_s, UTC)
        budget = await check_budget(self.s.spend, route, identity, metadata, now)
        if budget is None or not budget.exceeded:
            return charged, budget, targets, None
        if budget.settings.action == "reject":
            spent = RequestRefused(429, budget.message(), "budget_exceeded", "budget_exceeded")
            spent.headers = [("x-should-retry", "false")]  # the SDKs' retries cannot help
            raise spent
        provider, model = str(budget.settings.reroute).split("/", 1)
        rerouted = [Target(self.s.config.providers[provider], model)]
        return charged, budget, rerouted, f"budget spent: rerouted to {budget.settings.reroute}"

    async def _cached_or_called(
        self,
        exchange: Exchange,
        targets: list[Target],
        identity: KeyIdentity | None,
        out: Responder,
    ) -> Answer | None:
        """A hit in the caller's namespace produced under the route's current policy, else
        the providers (and the answer is stored if it may be; see ``proxy.cache_policy``)."""
        headers = exchange.headers
        route = exchange.route
        skip = headers.get("cf-aig-skip-cache", "").lower() in ("true", "1", "yes")
        if route.cache and cacheable_request(exchange.endpoint.name, exchange.body):
            key = cache_key(
                exchange.body,
                provider=targets[0].provider.name,
                model=targets[0].model,
                override=headers.get("cf-aig-cache-key"),
            )
            # Logged even when skipped, and the same for every tenant: same request, same hash.
            exchange.log.cache_key_hash = key[:32]
            exchange.log.cache_skipped = skip  # what-ifs must not replay it as cacheable
            if not skip:
                stored = scoped_key(key, cache_namespace(route, identity))
                policy = answer_policy(route, exchange.endpoint.api)
                try:
                    hit = await self.s.cache.get(stored)
                except StoreError as err:  # a cache that is down is a miss, not an outage
                    _log.warning("response cache: %s", err)
                    hit = None
                if hit is not None and hit.policy == policy:  # another policy's: a miss
                    return await replay(hit, exchange, out)
                exchange.cache_key = stored
                exchange.cache_policy = policy
                exchange.cache_ttl_s = _ttl(headers.get("cf-aig-cache-ttl"), route.cache_ttl_s)
        return await self._call(exchange, targets, out)

    async def _call(
        self, exchange: Exchange, targets: list[Target], out: Responder
    ) -> Answer | None:
        for step, target in enumerate(targets):
            last = step == len(targets) - 1
            attempt = Attempt(target, step, started=time.perf_counter_ns())
            try:
                response = await self.s.upstream.post(
                    target.provider,
                    exchange.provider_endpoint(target),
                    exchange.payload(target),
                    exchange.headers,
                )
            except UpstreamError as err:
                exchange.log_unanswered(attempt, err)
                self.s.metrics.upstream_unanswered(
                    exchange.log, target.provider.name, attempt.started
                )
                if last:
                    await out.error(502, f"no provider answered: {err}", "upstream_error", 502)
                    return None
                self.s.metrics.failover(target.provider.name)
                continue
            if response.status in _RETRYABLE and not last:
                data = await response.read()
                exchange.log.submit_attempt(
                    step=step,
                    provider=target.provider.name,
                    model=target.model,
                    status=response.status,
                    started=attempt.started,
                    response_bytes=data,
                    reason=f"HTTP {response.status}: failing over",
                )
                self.s.metrics.upstream_answered(exchange.log, target.provider.name, response)
                self.s.metrics.failover(target.provider.name)
                continue
            answer = await deliver(response, exchange, attempt, out, self.s)
            self.s.metrics.upstream_answered(exchange.log, target.provider.name, response)
            return answer
        return None

    async def _account(
        self, answer: Answer | None, charged: Charged, budget: BudgetCheck | None, now: float
    ) -> None:
        if answer is None:
            return
        usage = answer.usage
        if usage is not None:
            await charged.settle(self.s.limiter, usage.tokens_in + usage.tokens_out, now)
        if budget is not None and answer.cost:
            await self.s.spend.add(budget.key, budget.period, answer.cost)

    async def _models(self, out: Responder) -> None:
        models = sorted(
            {
                f"{p.name}/{r}"
                for p in self.s.config.providers.values()
                for r in _route_models(self.s.config, p.name)
            }
        )
        data = [  # created: unknown to the gateway; OpenAI's shape has it, so 0
            {"id": model, "object": "model", "created": 0, "owned_by": model.split("/")[0]}
            for model in models
        ]
        await out.json(200, {"object": "list", "data": data})


def _simulated_time(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise RequestRefused(
            400, f"{SIM_TIME_HEADER} must be unixnano", "invalid_request_error"
        ) from None


def _rate_limited(denied: Denied) -> RequestRefused:
    limit = denied.limit
    message = (
        f"rate limit {limit.name!r} ({limit.limit} {limit.unit} per {limit.window_s:g} s) "
        f"reached; retry after {denied.retry_after_s} s"
    )
    error = RequestRefused(429, message, "rate_limit_exceeded", "rate_limited")
    error.headers = [("retry-after", str(denied.retry_after_s))]
    return error


def _policies(body: dict[str, Any], route: RouteSettings, log: RequestLog) -> dict[str, Any]:
    """Guardrails, then DLP, on the request: the body to send (redacted in redact mode);
    ``RequestRefused`` 400 in block mode. Verdicts are noted on ``log`` (categories only)."""
    if route.guardrails != "off":
        verdict = check_request(body)
        if verdict.flagged:
            log.guardrail_action = route.guardrails
            log.guardrail_categories = verdict.categories
            if route.guardrails == "block":
                message = f"request blocked by guardrails: {', '.join(verdict.categories)}"
                raise RequestRefused(400, message, "guardrail_blocked", "content_policy_violation")
    if route.dlp == "off":
        return body
    result = inspect_request(body, route.dlp)
    if result.action is None:
        return body
    log.dlp_action = result.action
    log.dlp_categories = result.categories
    if result.action == "block":
        message = f"request blocked by DLP: {', '.join(result.categories)}"
        raise RequestRefused(400, message, "dlp_blocked", "content_policy_violation")
    return result.body if result.action == "redact" else body


def _route_models(config: GatewayConfig, provider: str) -> list[str]:
    """The models a route serves through ``provider``: each concrete name in a route's
    ``match`` (bare, or ``provider/…``), and the catalogue's models of the provider
    (``catalog_name``, else its name) that a route's globs match. No routes configured:
    the default route, ``*``."""
    routes = config.routes or (config.route_for(provider, ""),)  # none: the default, "*"
    names = [g for route in routes for g in route.match if not _GLOB.search(g)]
    listed = [g.split("/", 1)[-1] for g in names if "/" not in g or g.startswith(f"{provider}/")]
    settings = config.providers[provider]
    globbed = [r for r in routes if any(_GLOB.search(g) for g in r.match)]
    listed += [
        model
        for model in catalog_models(settings.catalog_name or provider)
        if any(route.matches(provider, model) for route in globbed)
    ]
    return listed


def _ttl(header: str | None, default: float) -> float:
    if header:
        try:
            value = float(header)
        except ValueError:
            return default
        if value > 0:
            return value
    return default


def _check_model(model: str) -> None:
    """``RequestRefused`` 400 for a model name that is not a name, or that holds a secret
    (it would reach the provider and every log record)."""
    check_model_name(model)
    if _holds_secret(model):
        raise RequestRefused(
            400, "the model name contains a secret", "invalid_request_error", "bad_model"
        )


@functools.lru_cache(maxsize=1024)
def _holds_secret(name: str) -> bool:
    """Whether DLP finds a secret in ``name`` (a model name: few, and asked every request)."""
    return redact(name) != name


def _safe_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """Metadata as logged: keys and string values pass through DLP redaction (secrets
    never logged)."""
    if not metadata:
        return metadata
    return {redact(k): redact(v) if isinstance(v, str) else v for k, v in metadata.items()}
