"""Shared by the simulated provider's tests: the request bodies whose usage they count by
hand, one request with urllib (HTTP errors are replies too) and SSE ``data:`` decoding."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any, NamedTuple

import orjson

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
# 58 prompt characters: "\0system\0" (8) + 14 + "\0user\0" (6) + 30 -> ceil(58 / 4) = 15 tokens.
CHAT_BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
}
# 50 prompt characters: 14 (system) + "\0user\0" (6) + 30 -> ceil(50 / 4) = 13 tokens.
MESSAGES_BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def call(
    base: str,
    path: str,
    body: Any = None,
    *,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request with urllib; HTTP errors are replies too."""
    data = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        base + path,
        data=data,
        method=method or ("GET" if data is None else "POST"),
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return Reply(response.status, _lower(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, _lower(error.headers.items()), error.read())


def _lower(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def chat(content: str, **extra: Any) -> dict[str, Any]:
    """A one-message chat request body."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}


def sse_data(body: bytes) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded (``[DONE]`` kept as text)."""
    payloads: list[Any] = []
    for line in body.decode().split("\n"):
        if line.startswith("data: "):
            text = line.removeprefix("data: ")
            payloads.append(text if text == "[DONE]" else orjson.loads(text))
    return payloads
