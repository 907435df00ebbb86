"""Talking to providers: the pooled upstream client (the one place where ``aiohttp`` errors
become :class:`proxy.errors.UpstreamError`), translation between OpenAI chat and Anthropic
messages, and token usage read from answers, whole or streamed (SSE).
"""

from proxy.providers.translate import (
    AnthropicToOpenAIStream,
    anthropic_request,
    openai_error,
    openai_response,
)
from proxy.providers.upstream import (
    FORWARDED_HEADERS,
    Upstream,
    UpstreamResponse,
    forwarded_headers,
    provider_path,
)
from proxy.providers.usage import SseUsage, iter_sse_events, usage_from_body

__all__ = [
    "FORWARDED_HEADERS",
    "AnthropicToOpenAIStream",
    "SseUsage",
    "Upstream",
    "UpstreamResponse",
    "anthropic_request",
    "forwarded_headers",
    "iter_sse_events",
    "openai_error",
    "openai_response",
    "provider_path",
    "usage_from_body",
]
