"""What a client asked for: endpoint, identity, metadata, and the providers to try.

Pure functions over the request and the config; the pipeline turns their
``RequestRefused`` into an HTTP error in the API's shape (OpenAI's, or Anthropic's on
``/v1/messages``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from proxy.config import GatewayConfig, KeyIdentity, ProviderSettings, RouteSettings
from proxy.errors import RequestRefused

__all__ = [
    "COUNT_TOKENS",
    "Endpoint",
    "RequestRefused",
    "Target",
    "authenticate",
    "check_depth",
    "check_event_id",
    "check_model_name",
    "deeper_than",
    "few_brackets",
    "key_fingerprint",
    "loggable_event_id",
    "parse_body",
    "parse_endpoint",
    "parse_metadata",
    "plan_targets",
    "resolve_model",
]

MAX_METADATA_ENTRIES: Final = 5
MAX_METADATA_KEY_CHARS: Final = 64
MAX_METADATA_VALUE_CHARS: Final = 1024
MAX_NAME_CHARS: Final = 256  # a model name, an event id
COUNT_TOKENS: Final = "messages/count_tokens"  # Anthropic's: counted by the provider, free
OPENAI_ENDPOINTS: Final = {
    "/v1/chat/completions": "chat/completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",  # the Responses API: OpenAI providers only
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    api: str  # the body's API: "openai" or "anthropic"
    name: str  # "chat/completions", "completions", "embeddings", "responses", "messages"…
    gateway: str
    provider: str | None  # set by the Cloudflare-shaped path /{gateway}/{provider}/...


@dataclass(frozen=True, slots=True)
class Target:
    provider: ProviderSettings
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.model}"


def parse_endpoint(path: str, config: GatewayConfig) -> Endpoint:
    """The endpoint of ``path``; ``RequestRefused`` 404 for anything else."""
    name = OPENAI_ENDPOINTS.get(path)
    if name is not None:
        return Endpoint("openai", name, config.gateway, None)
    if path in ("/v1/messages", f"/v1/{COUNT_TOKENS}"):
        return Endpoint("anthropic", path.removeprefix("/v1/"), config.gateway, None)
    parts = path.strip("/").split("/", 2)
    if len(parts) == 3 and parts[1] in config.providers:
        if not config.serves_gateway(parts[0]):
            raise RequestRefused(
                404,
                f"no such gateway: {parts[0][:64]!r} (this gateway serves "
                f"{', '.join(sorted(config.gateway_names))})",
                "invalid_request_error",
                "not_found",
            )
        provider = config.providers[parts[1]]
        rest = parts[2].removeprefix("v1/")
        if provider.kind == "openai" and rest in OPENAI_ENDPOINTS.values():
            return Endpoint("openai", rest, parts[0], provider.name)
        if provider.kind == "anthropic" and rest in ("messages", COUNT_TOKENS):
            return Endpoint("anthropic", rest, parts[0], provider.name)
    raise RequestRefused(404, f"no such endpoint: {path}", "invalid_request_error", "not_found")


def authenticate(headers: Mapping[str, str], config: GatewayConfig) -> KeyIdentity | None:
    """The identity of the gateway key sent (``cf-aig-authorization``, ``Authorization``
    or ``x-api-key``); ``RequestRefused`` 401 when required and missing or unknown."""
    token = _presented_key(headers)
    if token:
        digest = hashlib.sha256(token.encode()).hexdigest()
        for known, identity in config.keys.items():
            if hmac.compare_digest(known, digest):
                return identity
    if not config.auth_required:
        return None
    raise RequestRefused(
        401,
        "invalid or missing gateway key: send Authorization: Bearer <gateway key>",
        "authentication_error",
        "invalid_api_key",
    )


def key_fingerprint(headers: Mapping[str, str]) -> str | None:
    """An id for the gateway key a request presented, safe to log: ``"sha256:"`` and the
    first 8 hex digits of its SHA-256 (never the key); None when it sent none."""
    token = _presented_key(headers)
    if not token:
        return None
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:8]


def _presented_key(headers: Mapping[str, str]) -> str | None:
    token = _bearer(headers.get("cf-aig-authorization")) or _bearer(headers.get("authorization"))
    return token or headers.get("x-api-key")


def _bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body: a JSON object; ``RequestRefused`` 400 otherwise."""
    try:
        body = orjson.loads(raw)  # itself bounded: past 1024 levels it is a decode error
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise RequestRefused(400, "the request body must be a JSON object", "invalid_request_error")
    return body


def check_depth(body: dict[str, Any], max_depth: int, raw: bytes | None = None) -> None:
    """``RequestRefused`` 400 when ``body`` nests deeper than ``max_depth`` containers (the
    body itself is 1); ``raw``, the bytes it was decoded from, spares the walk when they
    hold too few brackets to nest that deep."""
    if raw is not None and few_brackets(raw, max_depth):
        return
    if deeper_than(body, max_depth):
        raise RequestRefused(
            400,
            f"the request body nests deeper than {max_depth} levels",
            "invalid_request_error",
            "too_deep",
        )


def few_brackets(raw: bytes, limit: int) -> bool:
    """Whether JSON text ``raw`` has at most ``limit`` opening brackets: then no value in
    it nests deeper than ``limit`` (counted at C speed; brackets in strings only add)."""
    return raw.count(b"{") + raw.count(b"[") <= limit


def deeper_than(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests more than ``limit`` containers deep (``{}`` and
    ``[]`` are 1, a scalar 0). Walks with its own stack: safe at any depth."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_metadata(value: str | None) -> dict[str, Any] | None:
    """``cf-aig-metadata``: a JSON object of scalars; entries past the fifth are dropped."""
    if value is None:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise RequestRefused(
            400, "cf-aig-metadata must be a JSON object", "invalid_request_error", "bad_metadata"
        )
    for key, item in parsed.items():
        if len(key) > MAX_METADATA_KEY_CHARS or (
            isinstance(item, str) and len(item) > MAX_METADATA_VALUE_CHARS
        ):
            raise RequestRefused(
                400,
                f"cf-aig-metadata keys may have {MAX_METADATA_KEY_CHARS} characters and "
                f"string values {MAX_METADATA_VALUE_CHARS}",
                "invalid_request_error",
                "bad_metadata",
            )
        if isinstance(item, dict | list):
            raise RequestRefused(
                400,
                f"cf-aig-metadata entry {key!r} must be a string, number or boolean",
                "invalid_request_error",
                "bad_metadata",
            )
    return dict(list(parsed.items())[:MAX_METADATA_ENTRIES])


def check_model_name(model: str) -> None:
    """``RequestRefused`` 400 unless ``model`` is 1-256 printable characters, no spaces."""
    if not _is_name(model):
        raise RequestRefused(
            400,
            f"model must be a name of 1-{MAX_NAME_CHARS} printable characters without spaces",
            "invalid_request_error",
            "bad_model",
        )


def check_event_id(value: str | None) -> None:
    """``RequestRefused`` 400 unless ``cf-aig-event-id`` is absent or 1-256 printable ASCII
    characters without spaces."""
    if value is not None and not loggable_event_id(value):
        raise RequestRefused(
            400,
            f"cf-aig-event-id must be 1-{MAX_NAME_CHARS} printable ASCII characters",
            "invalid_request_error",
            "bad_event_id",
        )


def loggable_event_id(value: str | None) -> str | None:
    """``value`` when it is a valid event id, else None (what a refusal record logs)."""
    if value is None or not value.isascii() or not _is_name(value):
        return None
    return value


def _is_name(value: str) -> bool:
    return (
        0 < len(value) <= MAX_NAME_CHARS
        and value.isprintable()
        and not any(c.isspace() for c in value)
    )


def resolve_model(
    endpoint: Endpoint, body: dict[str, Any], config: GatewayConfig
) -> tuple[Target, RouteSettings]:
    """The first provider and model to try, and the route whose controls apply."""
    requested = body.get("model")
    if not isinstance(requested, str) or not requested:
        raise RequestRefused(400, "the request needs a model", "invalid_request_error", "no_model")
    provider_name = endpoint.provider
    model = requested
    if provider_name is None and "/" in requested:
        prefix, rest = requested.split("/", 1)
        if prefix in config.providers:
            provider_name, model = prefix, rest
    if provider_name is not None:
        route = config.route_for(provider_name, model)
    else:
        route = next(
            (r for r in config.routes if r.matches("*", model)), config.route_for("", model)
        )
        provider_name = route.provider
        if provider_name is None or not can_serve(config.providers[provider_name], endpoint):
            provider_name = _default_provider(endpoint.api, config)
    provider = config.providers[provider_name]
    if not can_serve(provider, endpoint):
        raise RequestRefused(
            400,
            f"provider {provider_name} cannot serve {endpoint.name} requests",
            "invalid_request_error",
            "unsupported_provider",
        )
    return Target(provider, model), route


def _default_provider(api: str, config: GatewayConfig) -> str:
    for name, provider in config.providers.items():
        if provider.kind == api:
            return name
    return next(iter(config.providers))


def can_serve(provider: ProviderSettings, endpoint: Endpoint) -> bool:
    """Same API, or OpenAI chat translated for an Anthropic provider."""
    if provider.kind == endpoint.api:
        return True
    return endpoint.api == "openai" and endpoint.name == "chat/completions"


def plan_targets(
    primary: Target, route: RouteSettings, endpoint: Endpoint, config: GatewayConfig
) -> list[Target]:
    """``primary``, then the route's fallbacks that can serve ``endpoint``, each once."""
    targets = [primary]
    for fallback in route.fallbacks:
        target = Target(config.providers[fallback.provider], fallback.model or primary.model)
        if can_serve(target.provider, endpoint) and target not in targets:
            targets.append(target)
    return targets
