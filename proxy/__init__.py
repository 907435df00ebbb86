"""The companion gateway: OpenAI/Anthropic-compatible, inline controls (cache, rate limits,
budgets, guardrails, DLP, failover) and Logpush-format logs.

On the request path: ``asgi`` (the app and its lifespan; ``serving`` runs it under
uvicorn), ``wire`` (the ASGI request and responder), ``inbound`` (what the client asked
for), ``pipeline`` (the request through the controls), ``responses`` (the answer on its
way back) and ``cache_policy`` (whose cached answers a request may read, and which answers
may be kept), with ``config`` and ``services`` (what they talk to). Around it, the wings:
``policy/`` (guardrails, DLP, rate limits and budgets), ``stores/`` (response cache, limit
and spend counters), ``providers/`` (upstream client, API translation, usage) and
``logs/`` (records, writer, sinks).

From the rest of aigw it imports only the shared floor (``core``) and
``models.pricing``/``models.request_pricing``; never ``ingest``, ``alerts``, ``app`` or
``sim``. The simulated provider and traffic live in ``sim``, which imports the gateway.
"""

from proxy.asgi import GatewayApp, create_gateway_app, run_gateway
from proxy.config import GatewayConfig, load_gateway_config
from proxy.errors import GatewayConfigError, LogSinkError, ProxyError, StoreError, UpstreamError
from proxy.pipeline import SIM_TIME_HEADER
from proxy.policy import (
    DLP_CATEGORIES,
    GUARDRAIL_CATEGORIES,
    RULES,
    DlpResult,
    StreamRedactor,
    Verdict,
    check_request,
    evaluate,
    inspect_request,
    redact,
    scan,
)
from proxy.serving import serve_until_signal
from proxy.telemetry import require_otel
from proxy.workers import available_cores, run_workers, worker_count

__all__ = [
    "DLP_CATEGORIES",
    "GUARDRAIL_CATEGORIES",
    "RULES",
    "SIM_TIME_HEADER",
    "DlpResult",
    "GatewayApp",
    "GatewayConfig",
    "GatewayConfigError",
    "LogSinkError",
    "ProxyError",
    "StoreError",
    "StreamRedactor",
    "UpstreamError",
    "Verdict",
    "available_cores",
    "check_request",
    "create_gateway_app",
    "evaluate",
    "inspect_request",
    "load_gateway_config",
    "redact",
    "require_otel",
    "run_gateway",
    "run_workers",
    "scan",
    "serve_until_signal",
    "worker_count",
]
