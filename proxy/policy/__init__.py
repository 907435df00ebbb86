"""What the gateway allows and what it hides: guardrails (rules for jailbreaks, prompt
injection, malicious code and PII harvesting), DLP (PII and secrets found and redacted, in
whole bodies and in streams) and a route's rate limits and budgets applied to one request.

``texts`` is where these checks find the text in request and response bodies; the pipeline
uses it too, to estimate input tokens. Guardrails and DLP are pure functions (a
``StreamDlp`` or ``StreamRedactor`` belongs to one stream); the controls count in the
stores of :mod:`proxy.stores`.
"""

from proxy.policy.controls import (
    BudgetCheck,
    Charged,
    Denied,
    check_budget,
    estimate_tokens,
    rate_limit,
)
from proxy.policy.dlp import (
    DLP_CATEGORIES,
    DLP_MODES,
    SECRET_CATEGORIES,
    DlpResult,
    Finding,
    StreamRedactor,
    inspect_request,
    inspect_response,
    redact,
    scan,
)
from proxy.policy.guardrails import (
    GUARDRAIL_CATEGORIES,
    RULES,
    Rule,
    Verdict,
    check_request,
    check_response,
    evaluate,
)
from proxy.policy.stream_dlp import StreamDlp
from proxy.policy.stream_dlp_responses import ResponsesStreamDlp
from proxy.policy.texts import request_texts, response_texts

__all__ = [
    "DLP_CATEGORIES",
    "DLP_MODES",
    "GUARDRAIL_CATEGORIES",
    "RULES",
    "SECRET_CATEGORIES",
    "BudgetCheck",
    "Charged",
    "Denied",
    "DlpResult",
    "Finding",
    "ResponsesStreamDlp",
    "Rule",
    "StreamDlp",
    "StreamRedactor",
    "Verdict",
    "check_budget",
    "check_request",
    "check_response",
    "estimate_tokens",
    "evaluate",
    "inspect_request",
    "inspect_response",
    "rate_limit",
    "redact",
    "request_texts",
    "response_texts",
    "scan",
]
