"""The spellings of a log record's fields, shared by both normalisation paths.

``ingest.records`` (Python, one record at a time) and ``ingest.engine_sql`` (DuckDB SQL,
a whole object at a time) read the same names from here, so that the two paths cannot
disagree about which key fills which column. Plain data: each record key maps to a
*slot* (an int, the index of the raw value collected before conversion).
"""

from __future__ import annotations

from typing import Final

from core import logpush

__all__ = [
    "ANTHROPIC_CACHE_FIELDS",
    "API_KEY_ID",
    "CACHED",
    "CACHE_APART",
    "CACHE_KEY_HASH",
    "CACHE_READ",
    "CACHE_WRITE",
    "CACHE_WRITE_1H",
    "COST",
    "CUSTOM_COST",
    "DLP_ACTION",
    "DLP_CATEGORIES",
    "DURATION",
    "ENDPOINT",
    "ENDPOINT_OF_REQUEST_TYPE",
    "EVENT_ID",
    "GATEWAY",
    "GUARDRAIL_ACTION",
    "GUARDRAIL_CATEGORIES",
    "ID",
    "LOGPUSH_FIELDS",
    "METADATA",
    "METRICS",
    "METRIC_FIELDS",
    "MODEL",
    "MODEL_TYPE",
    "NSLOTS",
    "PROMPT_PREFIX_HASH",
    "PROMPT_PREFIX_TOKENS",
    "PROVIDER",
    "RATE_LIMITED",
    "REQUESTED_MODEL",
    "REQUEST_BODY",
    "REQUEST_CONTENT_TYPE",
    "REQUEST_TYPE",
    "RESPONSE_BODY",
    "RESPONSE_CONTENT_TYPE",
    "REST_FIELDS",
    "ROUTE",
    "ROUTING_ID",
    "ROUTING_REASON",
    "STATUS",
    "STEP",
    "SUCCESS",
    "TOK_IN",
    "TOK_OUT",
    "TS",
]

# Slots of the raw values collected before conversion.
(
    ID,
    TS,
    GATEWAY,
    PROVIDER,
    MODEL,
    REQUESTED_MODEL,
    ENDPOINT,
    STATUS,
    SUCCESS,
    CACHED,
    RATE_LIMITED,
    DURATION,
    COST,
    STEP,
    EVENT_ID,
    ROUTING_ID,
    ROUTING_REASON,
    METADATA,
    REQUEST_BODY,
    RESPONSE_BODY,
    METRICS,
    TOK_IN,
    TOK_OUT,
    CACHE_READ,
    CACHE_WRITE,
    CACHE_APART,
    ROUTE,
    API_KEY_ID,
    DLP_ACTION,
    DLP_CATEGORIES,
    GUARDRAIL_ACTION,
    GUARDRAIL_CATEGORIES,
    CACHE_KEY_HASH,
    CUSTOM_COST,
    MODEL_TYPE,
    REQUEST_TYPE,
    REQUEST_CONTENT_TYPE,
    RESPONSE_CONTENT_TYPE,
    CACHE_WRITE_1H,
    PROMPT_PREFIX_HASH,
    PROMPT_PREFIX_TOKENS,
) = range(41)
NSLOTS: Final = 41

LOGPUSH_FIELDS: Final = {
    logpush.TIMESTAMP: TS,
    logpush.GATEWAY: GATEWAY,
    logpush.PROVIDER: PROVIDER,
    logpush.MODEL: MODEL,
    logpush.REQUESTED_MODEL: REQUESTED_MODEL,
    logpush.ENDPOINT: ENDPOINT,
    logpush.STATUS_CODE: STATUS,
    logpush.CACHED: CACHED,
    logpush.RATE_LIMITED: RATE_LIMITED,
    logpush.METRICS: METRICS,
    logpush.METADATA: METADATA,
    logpush.REQUEST_BODY: REQUEST_BODY,
    logpush.RESPONSE_BODY: RESPONSE_BODY,
    logpush.ROUTING_DECISION_ID: ROUTING_ID,
    logpush.ROUTING_REASON: ROUTING_REASON,
    # extension fields written by aigw's gateway
    logpush.LOG_ID: ID,
    logpush.EVENT_ID: EVENT_ID,
    logpush.STEP: STEP,
    logpush.ROUTE: ROUTE,
    logpush.API_KEY_ID: API_KEY_ID,
    logpush.DLP_ACTION: DLP_ACTION,
    logpush.DLP_CATEGORIES: DLP_CATEGORIES,
    logpush.GUARDRAIL_ACTION: GUARDRAIL_ACTION,
    logpush.GUARDRAIL_CATEGORIES: GUARDRAIL_CATEGORIES,
    logpush.CACHE_KEY_HASH: CACHE_KEY_HASH,
    logpush.PROMPT_PREFIX_HASH: PROMPT_PREFIX_HASH,
    logpush.PROMPT_PREFIX_TOKENS: PROMPT_PREFIX_TOKENS,
}

# Token, cost and duration spellings, inside Logpush ``Metrics`` and at the top
# level of REST objects. ``CACHE_APART`` marks Anthropic's names, whose
# counts are not included in the input count.
METRIC_FIELDS: Final = {
    "cost": COST,
    "durationMs": DURATION,
    "duration_ms": DURATION,
    "duration": DURATION,
    **dict.fromkeys(
        (
            "tokensIn",
            "tokens_in",
            "inputTokens",
            "input_tokens",
            "promptTokens",
            "prompt_tokens",
        ),
        TOK_IN,
    ),
    **dict.fromkeys(
        (
            "tokensOut",
            "tokens_out",
            "outputTokens",
            "output_tokens",
            "completionTokens",
            "completion_tokens",
        ),
        TOK_OUT,
    ),
    **dict.fromkeys(
        (
            "cacheReadTokens",
            "cache_read_tokens",
            "cachedTokens",
            "cached_tokens",
            "cachedInputTokens",
            "cached_input_tokens",
        ),
        CACHE_READ,
    ),
    **dict.fromkeys(
        (
            "cacheWriteTokens",
            "cache_write_tokens",
            "cacheCreationTokens",
            "cache_creation_tokens",
        ),
        CACHE_WRITE,
    ),
    # of the cache writes, those with a 1-hour TTL (aigw's gateway; Anthropic nests them
    # in ``cache_creation``, read from decrypted response bodies)
    **dict.fromkeys(
        (logpush.METRIC_CACHE_WRITE_1H_TOKENS, "cache_write_1h_tokens"), CACHE_WRITE_1H
    ),
}
ANTHROPIC_CACHE_FIELDS: Final = {
    "cache_read_input_tokens": CACHE_READ,
    "cacheReadInputTokens": CACHE_READ,
    "cache_creation_input_tokens": CACHE_WRITE,
    "cacheCreationInputTokens": CACHE_WRITE,
}

# The endpoint of a REST record without ``path``, from its ``request_type`` where that
# names one operation (OpenAI-style paths, as Cloudflare logs them); other types (e.g.
# ``universal``, which may call anything) leave the endpoint NULL.
ENDPOINT_OF_REQUEST_TYPE: Final = {
    "chat": "chat/completions",
    "chat.completions": "chat/completions",
    "chat-completions": "chat/completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "images": "images/generations",
    "image-generation": "images/generations",
    "audio": "audio/transcriptions",
    "transcriptions": "audio/transcriptions",
    "speech": "audio/speech",
    "responses": "responses",
}

REST_FIELDS: Final = {
    "id": ID,
    "created_at": TS,
    "gateway_id": GATEWAY,
    "gateway": GATEWAY,
    "provider": PROVIDER,
    "model": MODEL,
    "requested_model": REQUESTED_MODEL,
    "path": ENDPOINT,
    "endpoint": ENDPOINT,
    "status_code": STATUS,
    "success": SUCCESS,
    "cached": CACHED,
    "rate_limited": RATE_LIMITED,
    "step": STEP,
    "event_id": EVENT_ID,
    "metadata": METADATA,
    "request_body": REQUEST_BODY,
    "response_body": RESPONSE_BODY,
    "custom_cost": CUSTOM_COST,
    "model_type": MODEL_TYPE,
    "request_type": REQUEST_TYPE,
    "request_content_type": REQUEST_CONTENT_TYPE,
    "response_content_type": RESPONSE_CONTENT_TYPE,
}
