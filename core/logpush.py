"""The Cloudflare AI Gateway Logpush format, stated once: field names, the extension
fields aigw's gateway adds, the ``Metrics`` keys, and the object-key layout.

The gateway's writer (``proxy``), the reader (``ingest.records``) and the synthetic-log
generator (``sim``) all take their names from here. Objects are gzip NDJSON named
``<prefix>/<YYYYMMDD>/<start>_<end>_<random>.log.gz`` with compact UTC times
(``20260418T000210Z``), the day folder being the start's date.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "API_KEY_ID",
    "CACHED",
    "CACHE_KEY_HASH",
    "CACHE_SKIPPED",
    "CLOUDFLARE_FIELDS",
    "DLP_ACTION",
    "DLP_CATEGORIES",
    "ENDPOINT",
    "EVENT_ID",
    "EXTENSION_FIELDS",
    "GATEWAY",
    "GUARDRAIL_ACTION",
    "GUARDRAIL_CATEGORIES",
    "LOG_ID",
    "METADATA",
    "METRICS",
    "METRIC_CACHE_READ_TOKENS",
    "METRIC_CACHE_WRITE_1H_TOKENS",
    "METRIC_CACHE_WRITE_TOKENS",
    "METRIC_COST",
    "METRIC_DURATION_MS",
    "METRIC_TOKENS_IN",
    "METRIC_TOKENS_OUT",
    "MODEL",
    "OBJECT_SUFFIX",
    "PROMPT_PREFIX_HASH",
    "PROMPT_PREFIX_TOKENS",
    "PROVIDER",
    "RATE_LIMITED",
    "REQUESTED_MODEL",
    "REQUEST_BODY",
    "REQUEST_SHA256",
    "RESPONSE_BODY",
    "RESPONSE_SHA256",
    "ROUTE",
    "ROUTING_DECISION_ID",
    "ROUTING_REASON",
    "STATUS_CODE",
    "STEP",
    "TIMESTAMP",
    "compact_utc",
    "object_key",
]

# -- Cloudflare's dataset ``ai_gateway_events`` ---------------------------------------------
TIMESTAMP: Final = "Timestamp"  # unixnano (API default), unix, or rfc3339 (dashboard default)
GATEWAY: Final = "Gateway"
PROVIDER: Final = "Provider"
MODEL: Final = "Model"  # the model that served
REQUESTED_MODEL: Final = "RequestedModel"
ENDPOINT: Final = "Endpoint"
STATUS_CODE: Final = "StatusCode"
CACHED: Final = "Cached"
RATE_LIMITED: Final = "RateLimited"
METRICS: Final = "Metrics"  # an object: cost, durationMs, token counts when present
METADATA: Final = "Metadata"  # custom metadata; encrypted by Cloudflare
REQUEST_BODY: Final = "RequestBody"  # encrypted by Cloudflare
RESPONSE_BODY: Final = "ResponseBody"  # encrypted by Cloudflare
ROUTING_DECISION_ID: Final = "RoutingDecisionID"
ROUTING_REASON: Final = "RoutingReason"

CLOUDFLARE_FIELDS: Final = (
    TIMESTAMP,
    GATEWAY,
    PROVIDER,
    MODEL,
    REQUESTED_MODEL,
    ENDPOINT,
    STATUS_CODE,
    CACHED,
    RATE_LIMITED,
    METRICS,
    METADATA,
    REQUEST_BODY,
    RESPONSE_BODY,
    ROUTING_DECISION_ID,
    ROUTING_REASON,
)

# -- extension fields written by aigw's gateway (absent from Cloudflare's logs) -------------
LOG_ID: Final = "LogId"
EVENT_ID: Final = "EventId"
STEP: Final = "Step"  # which attempt served: 0 = primary, 1, 2... the fallbacks
ROUTE: Final = "Route"
API_KEY_ID: Final = "ApiKeyId"
DLP_ACTION: Final = "DlpAction"
DLP_CATEGORIES: Final = "DlpCategories"
GUARDRAIL_ACTION: Final = "GuardrailAction"
GUARDRAIL_CATEGORIES: Final = "GuardrailCategories"
CACHE_KEY_HASH: Final = "CacheKeyHash"
REQUEST_SHA256: Final = "RequestSha256"  # instead of the body when bodies are not logged
RESPONSE_SHA256: Final = "ResponseSha256"
# the stable prompt prefix (system prompt, instructions, tools): its hash and estimated
# tokens, never its text (``proxy.prompt_prefix``); absent when a request has none
PROMPT_PREFIX_HASH: Final = "PromptPrefixHash"
PROMPT_PREFIX_TOKENS: Final = "PromptPrefixTokens"
# true when the client asked not to use the response cache (``cf-aig-skip-cache``): the
# request neither read nor filled it; absent otherwise (kept in ``extra`` by ingest)
CACHE_SKIPPED: Final = "CacheSkipped"

EXTENSION_FIELDS: Final = (
    LOG_ID,
    EVENT_ID,
    STEP,
    ROUTE,
    API_KEY_ID,
    DLP_ACTION,
    DLP_CATEGORIES,
    GUARDRAIL_ACTION,
    GUARDRAIL_CATEGORIES,
    CACHE_KEY_HASH,
    REQUEST_SHA256,
    RESPONSE_SHA256,
    PROMPT_PREFIX_HASH,
    PROMPT_PREFIX_TOKENS,
    CACHE_SKIPPED,
)

# -- inside ``Metrics`` ----------------------------------------------------------------------
METRIC_COST: Final = "cost"  # USD, Cloudflare's estimate
METRIC_DURATION_MS: Final = "durationMs"
# Token counts as aigw's gateway writes them (the reader also knows other spellings).
METRIC_TOKENS_IN: Final = "tokensIn"  # every input token, cache reads and writes included
METRIC_TOKENS_OUT: Final = "tokensOut"
METRIC_CACHE_READ_TOKENS: Final = "cacheReadTokens"
METRIC_CACHE_WRITE_TOKENS: Final = "cacheWriteTokens"  # all cache writes, 1-hour ones included
METRIC_CACHE_WRITE_1H_TOKENS: Final = "cacheWrite1hTokens"  # of which 1-hour writes

# -- object keys -----------------------------------------------------------------------------
OBJECT_SUFFIX: Final = ".log.gz"
_NS: Final = 1_000_000_000


def compact_utc(when: datetime | int) -> str:
    """``20260418T000210Z`` for a datetime (naive means UTC) or Unix nanoseconds."""
    if isinstance(when, int):
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when // _NS))
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y%m%dT%H%M%SZ")


def object_key(prefix: str, first: datetime | int, last: datetime | int, token: str) -> str:
    """``prefix/YYYYMMDD/{start}_{end}_{token}.log.gz`` (no prefix: from the day folder on)."""
    start = compact_utc(first)
    name = f"{start[:8]}/{start}_{compact_utc(last)}_{token}{OBJECT_SUFFIX}"
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name
