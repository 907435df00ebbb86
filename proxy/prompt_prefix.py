"""The stable prefix of a request: what a provider's prompt cache could serve again.

A chat, messages or Responses API request starts with the same instructions call after
call: the leading ``system`` and ``developer`` messages (OpenAI chat, and the items of a
Responses API ``input`` list), ``system`` (Anthropic messages), ``instructions``
(Responses API), and the ``tools`` offered.
Providers cache such a prefix (Anthropic's ``cache_control``, OpenAI's automatic prompt
caching), so requests that repeat it could be billed at the cache-read rate. The gateway
logs a hash of the prefix and its estimated size, never the prefix itself, so that
``aigw whatif --prompt-cache`` can say what caching would have saved.

The hash is SHA-256 of canonical JSON (keys sorted at every depth, as ``cache_key``),
its first 32 hex characters; the size is about four characters a token
(``estimate_tokens``). Stable across releases: a change would split the chains.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from proxy.policy.controls import estimate_tokens

__all__ = ["PREFIX_HASH_CHARS", "prompt_prefix"]

PREFIX_HASH_CHARS: Final = 32  # like CacheKeyHash
_LEADING_ROLES: Final = frozenset({"system", "developer"})


def prompt_prefix(body: dict[str, Any]) -> tuple[str, int] | None:
    """(hash, estimated tokens) of ``body``'s stable prefix, as sent upstream (after DLP);
    None when it has none (no system prompt, instructions or tools)."""
    parts: dict[str, Any] = {}
    for name in ("messages", "input"):  # chat; Responses API input items
        leading = _leading_messages(body.get(name))
        if leading:
            parts[name] = leading
    for name in ("system", "instructions", "tools"):
        value = body.get(name)
        if value not in (None, "", [], {}):
            parts[name] = value
    if not parts:
        return None
    canonical = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(canonical).hexdigest()[:PREFIX_HASH_CHARS]
    return digest, estimate_tokens(_texts(parts))


def _leading_messages(messages: Any) -> list[Any]:
    """The system and developer messages before the first other message."""
    if not isinstance(messages, list):
        return []
    leading = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or role not in _LEADING_ROLES:  # a list is unhashable
            break
        leading.append(message)
    return leading


def _texts(parts: dict[str, Any]) -> list[str]:
    """What the provider turns into tokens: the prompt texts, and the tools' JSON."""
    texts: list[str] = []
    for message in (*parts.get("messages", ()), *parts.get("input", ())):
        texts.extend(_text_of(message.get("content")))
    for name in ("system", "instructions"):
        texts.extend(_text_of(parts.get(name)))
    if "tools" in parts:
        texts.append(orjson.dumps(parts["tools"]).decode())
    return texts


def _text_of(value: Any) -> list[str]:
    """A string, or the ``text`` of each content block of a list (other blocks as JSON)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [
            block["text"]
            if isinstance(block, dict) and isinstance(block.get("text"), str)
            else orjson.dumps(block).decode()
            for block in value
        ]
    return [orjson.dumps(value).decode()]
