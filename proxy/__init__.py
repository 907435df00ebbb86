"""The companion gateway: OpenAI/Anthropic-compatible, inline controls (cache, rate limits,
budgets, guardrails, DLP, failover) and Logpush-format logs.

Imports only the shared floor (``core``) and ``models.pricing``/``models.request_pricing``
from the rest of aigw (import-linter checks it). The simulated provider and traffic live
in ``sim``.
"""

from proxy.asgi import GatewayApp, create_gateway_app, run_gateway
from proxy.config import GatewayConfig, load_gateway_config
from proxy.errors import GatewayConfigError, LogSinkError, ProxyError, StoreError, UpstreamError
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

__all__ = [
    "DLP_CATEGORIES",
    "GUARDRAIL_CATEGORIES",
    "RULES",
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
    "check_request",
    "create_gateway_app",
    "evaluate",
    "inspect_request",
    "load_gateway_config",
    "redact",
    "run_gateway",
    "scan",
]
