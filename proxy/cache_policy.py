"""The response cache's rules on the request path: whose entries a request may read, under
which policy an entry may be served, and which answers may be kept at all. The stores and
the key functions are in :mod:`proxy.stores.cache`.

- **Tenant.** Entries live in a namespace (:func:`cache_namespace`): by default the
  gateway key's id, so one key never reads another's answers, whatever ``cf-aig-cache-key``
  it sends. A route may widen this explicitly with ``cache_scope = "team"`` (keys of one
  team share) or ``"shared"`` (every key shares). Callers without a key (``auth.required =
  false``) share one anonymous namespace, whatever the scope.
- **Policy.** Each entry carries the fingerprint of the policy that produced it
  (:func:`answer_policy`): the route's guardrail and DLP modes, ``cache_secrets``, and the
  client's API (answers are translated for it). An entry whose fingerprint differs from the
  route's current one is a miss, never a hit: an answer cached before response DLP was
  turned on is not served after.
- **Secrets.** An answer in which the DLP detectors find a secret
  (:data:`SECRET_CATEGORIES`: keys, tokens, private keys, password assignments) is not
  stored unless the route says ``cache_secrets = true`` (:func:`holds_secret`); PII alone
  does not prevent caching (the entry is readable in its namespace only).
- **Server state.** A Responses API request that continues state kept by the provider
  (``previous_response_id``, ``conversation``) or runs in the ``background`` is neither
  read from nor written to the cache (:func:`cacheable_request`): its answer depends on more
  than its body, or is not there yet. Only completed (or ``incomplete``) responses are kept
  (:func:`complete_response`).

Pure functions; safe from any thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import orjson

from proxy.config import KeyIdentity, RouteSettings
from proxy.policy import SECRET_CATEGORIES, response_texts, scan
from proxy.providers import iter_sse_events

__all__ = [
    "ANONYMOUS",
    "SECRET_CATEGORIES",
    "answer_policy",
    "cache_namespace",
    "cacheable_request",
    "complete_response",
    "holds_secret",
]

#: The namespace of requests sent without a gateway key (when auth is not required).
ANONYMOUS: Final = "anonymous"


def cacheable_request(endpoint: str, body: dict[str, Any]) -> bool:
    """Whether a request to ``endpoint`` (``chat/completions``, ``responses``…) may be
    answered from, and fill, the cache: not ``messages/count_tokens`` (free, and the same
    body as a messages request), not a Responses API request that depends on the provider's
    state or runs in the background."""
    if endpoint == "messages/count_tokens":
        return False
    if endpoint == "responses":
        stateful = body.get("previous_response_id") or body.get("conversation")
        return not stateful and body.get("background") is not True
    return True


def complete_response(endpoint: str, body: Any) -> bool:
    """Whether a whole 200 answer may be stored: a Responses API ``response`` only when its
    ``status`` is ``completed`` or ``incomplete`` (not ``queued``, ``failed``…)."""
    if endpoint != "responses":
        return True
    return isinstance(body, dict) and body.get("status") in ("completed", "incomplete")


def cache_namespace(route: RouteSettings, identity: KeyIdentity | None) -> str:
    """The tenant whose entries a request on ``route`` reads and writes.

    ``key:<id>`` for the default scope ``key`` (and for ``team`` when the key has no team),
    ``team:<team>`` for ``team``, ``shared`` for ``shared``, :data:`ANONYMOUS` without a key.
    """
    if identity is None:
        return ANONYMOUS
    if route.cache_scope == "shared":
        return "shared"
    if route.cache_scope == "team" and identity.team:
        return f"team:{identity.team}"
    return f"key:{identity.id}"


def answer_policy(route: RouteSettings, api: str) -> str:
    """The fingerprint (16 hex digits) of what shapes an answer on ``route`` for a client of
    ``api`` (``openai`` or ``anthropic``): any change to these settings makes earlier
    entries misses."""
    settings = {
        "api": api,
        "guardrails": route.guardrails,
        "guardrail_responses": route.guardrail_responses,
        "dlp": route.dlp,
        "dlp_responses": route.dlp_responses,
        "cache_secrets": route.cache_secrets,
    }
    canonical = orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


def holds_secret(body: bytes | None, chunks: Sequence[bytes] | None = None) -> bool:
    """Whether the DLP detectors find a secret in an answer as the client got it: a whole
    JSON ``body``, or a stream's ``chunks`` (SSE, OpenAI or Anthropic events).

    Reads the model-written text (content, tool-call arguments); a stream's fragments are
    joined first, so a secret split across events is found. A body that is not JSON is
    read as text.
    """
    texts = _stream_texts(chunks) if chunks is not None else _body_texts(body or b"")
    return any(f.category in SECRET_CATEGORIES for text in texts for f in scan(text))


def _body_texts(body: bytes) -> list[str]:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [body.decode("utf-8", "replace")]
    return response_texts(parsed) if isinstance(parsed, dict) else []


def _stream_texts(chunks: Sequence[bytes]) -> list[str]:
    buffer = bytearray(b"".join(chunks))
    if not buffer.endswith(b"\n\n"):
        buffer += b"\n\n"  # a last event without its blank line still counts
    parts: list[str] = []
    for _, payload in iter_sse_events(buffer):
        if payload is None or payload == b"[DONE]":
            continue
        try:
            event: Any = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            parts.extend(response_texts(event))
    return ["".join(parts)]
