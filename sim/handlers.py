"""The simulated provider's endpoints: check a request body, then build its answer.

:meth:`Handlers.check` validates a body the way the real API would (400 on a missing
``model``, ``messages``, Anthropic's required ``max_tokens``...); :meth:`Handlers.answer`
generates the answer from the request digest and the prompt cache (see
:mod:`sim.usage` for the numbers). Only one choice is ever returned (``n`` is
ignored). A prompt containing ``BACKWARDS_MARKER`` (``"Say backwards: "``) is answered
with the text after its last occurrence, reversed: tests make the provider say what they
need (a secret, a jailbreak) without the prompt saying it, to check the gateway's response
DLP and guardrails. Embeddings
have 1536 dimensions unless ``dimensions`` (1-3072) asks otherwise: the size of
``text-embedding-3-small``, so cached embedding responses have a real weight.

Not thread-safe: one event loop owns a ``Handlers`` (its prompt cache and counter).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from hashlib import blake2b
from typing import Any, Final

import orjson

from core.errors import InvalidSimRequest
from sim.responses_api import REASONING_TOKENS, openai_response, openai_response_stream
from sim.shapes import (
    Answer,
    ToolCall,
    anthropic_message,
    anthropic_stream,
    embedding,
    models_list,
    openai_chat,
    openai_chat_stream,
    openai_completion,
    openai_completion_stream,
    openai_embeddings,
)
from sim.usage import (
    Prompt,
    PromptCache,
    answer_text,
    anthropic_prompt,
    count_tokens,
    openai_prompt,
    output_tokens,
    responses_prompt,
    text_prompt,
)

__all__ = ["BACKWARDS_MARKER", "DEFAULT_DIMENSIONS", "Handlers", "InvalidSimRequest", "MockRequest"]

BACKWARDS_MARKER: Final = "Say backwards: "
DEFAULT_DIMENSIONS: Final = 1536
MAX_DIMENSIONS: Final = 3072
_MODELS_CREATED: Final = 1_735_689_600  # 2025-01-01T00:00:00Z: a fixed date for /v1/models
_STREAM_KEYS: Final = frozenset({"stream", "stream_options"})


@dataclass(frozen=True, slots=True)
class MockRequest:
    """A checked request: ``kind`` is ``chat``, ``completion``, ``embeddings``, ``messages``,
    ``count_tokens`` or ``responses``."""

    kind: str
    model: str
    prompt: Prompt
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    inputs: tuple[Any, ...] = ()  # embeddings: each input (text or token ids)
    input_tokens: int = 0  # embeddings: tokens over all inputs
    dimensions: int = DEFAULT_DIMENSIONS
    as_base64: bool = False
    tool: dict[str, Any] | None = None  # the tool that tool_choice makes it call
    reasoning: int = 0  # responses: reasoning tokens (from reasoning.effort)


class Handlers:
    """Checks and answers requests for one app; ``counter`` numbers the responses (ids)."""

    def __init__(self, salt: bytes, counter: Iterator[int]) -> None:
        self._salt = salt
        self._counter = counter
        self._cache = PromptCache()
        self._models = models_list(_MODELS_CREATED)

    def models(self) -> bytes:
        """The ``GET /v1/models`` body."""
        return self._models

    @staticmethod
    def parse(raw: bytes) -> dict[str, Any]:
        """The body as a JSON object, or :class:`InvalidSimRequest`."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidSimRequest("Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidSimRequest("Request body must be a JSON object")
        return body

    def digest(self, path: str, body: dict[str, Any]) -> bytes:
        """BLAKE2b-256, keyed with the seed, of the path and the body less its stream options."""
        canonical = {key: value for key, value in body.items() if key not in _STREAM_KEYS}
        data = path.encode() + b"\n" + orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
        return blake2b(data, digest_size=32, key=self._salt).digest()

    def check(self, path: str, body: dict[str, Any]) -> MockRequest:
        """Validate a POST body for ``path``; :class:`InvalidSimRequest` says what is wrong."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidSimRequest("model: a model name is required")
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        if path == "/v1/chat/completions":
            _require_messages(body)
            limit = _max_tokens(body, "max_completion_tokens") or _max_tokens(body, "max_tokens")
            return MockRequest(
                "chat", model, openai_prompt(body), limit, stream, stream and include_usage
            )
        if path == "/v1/completions":
            prompt = body.get("prompt")
            if not isinstance(prompt, str | list):
                raise InvalidSimRequest("prompt: a string or a list is required")
            return MockRequest(
                "completion",
                model,
                text_prompt(prompt),
                _max_tokens(body, "max_tokens"),
                stream,
                stream and include_usage,
            )
        if path == "/v1/embeddings":
            return _check_embeddings(model, body)
        if path == "/v1/responses":
            return _check_responses(model, body, stream=stream)
        _require_messages(body)
        if path == "/v1/messages/count_tokens":  # Anthropic's: no max_tokens needed
            return MockRequest("count_tokens", model, anthropic_prompt(body))
        limit = _max_tokens(body, "max_tokens")
        if limit is None:
            raise InvalidSimRequest("max_tokens: Field required")
        return MockRequest(
            "messages", model, anthropic_prompt(body), limit, stream, tool=_forced_tool(body)
        )

    def answer(self, request: MockRequest, digest: bytes) -> bytes | list[bytes]:
        """The JSON body, or the SSE events of a stream, for a checked request."""
        if request.kind == "count_tokens":  # the prompt's tokens, as a messages answer counts them
            return orjson.dumps({"input_tokens": request.prompt.tokens})
        if request.kind == "embeddings":
            vectors = [
                embedding(self._salt, request.model, _seed_text(item), request.dimensions)
                for item in request.inputs
            ]
            return openai_embeddings(
                request.model, vectors, request.input_tokens, as_base64=request.as_base64
            )
        out = output_tokens(digest, request.max_tokens)
        text = answer_text(digest, out)
        marker = request.prompt.text.rfind(BACKWARDS_MARKER)
        if marker >= 0:  # a test asks for this exact answer
            text = request.prompt.text[marker + len(BACKWARDS_MARKER) :].strip()[::-1]
            out = count_tokens(len(text))
        if request.kind == "messages":
            cached = self._cache.anthropic(request.model, request.prompt)
        else:
            cached = self._cache.openai(request.model, request.prompt)
        usage = replace(cached, output_tokens=out)
        prefixes = {
            "chat": "chatcmpl-",
            "completion": "cmpl-",
            "messages": "msg_",
            "responses": "resp_",
        }
        prefix = prefixes[request.kind]
        answer = Answer(
            id=f"{prefix}{digest[:8].hex()}{next(self._counter):08x}",
            created=int(time.time()),
            model=request.model,
            text=text,
            usage=usage,
            truncated=out == request.max_tokens,
            tool_call=_tool_call(request.tool, digest),
        )
        if request.kind == "chat":
            if request.stream:
                return openai_chat_stream(answer, include_usage=request.include_usage)
            return openai_chat(answer)
        if request.kind == "responses":
            if request.stream:
                return openai_response_stream(answer, request.reasoning)
            return openai_response(answer, request.reasoning)
        if request.kind == "completion":
            if request.stream:
                return openai_completion_stream(answer, include_usage=request.include_usage)
            return openai_completion(answer)
        return anthropic_stream(answer) if request.stream else anthropic_message(answer)


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool a request's ``tool_choice`` makes it call: Anthropic's ``any`` or ``tool``,
    the Responses API's ``required`` or ``{"type": "function", "name": …}``."""
    listed = body.get("tools")
    tools = [t for t in listed if isinstance(t, dict)] if isinstance(listed, list) else []
    choice = body.get("tool_choice")
    if tools and choice == "required":
        return tools[0]
    if not tools or not isinstance(choice, dict):
        return None
    if choice.get("type") == "any":
        return tools[0]
    if choice.get("type") in ("tool", "function"):
        named = [t for t in tools if t.get("name") == choice.get("name")]
        if not named:
            raise InvalidSimRequest(f"tool_choice: no tool named {choice.get('name')!r}")
        return named[0]
    return None


def _tool_call(tool: dict[str, Any] | None, digest: bytes) -> ToolCall | None:
    """A call of ``tool`` whose input gives each string property a value from the digest."""
    if tool is None:
        return None
    schema = tool.get("input_schema", tool.get("parameters"))
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        properties = {}
    arguments = {
        name: f"{name}-{digest[:3].hex()}"
        for name, spec in properties.items()
        if isinstance(spec, dict) and spec.get("type") == "string"
    }
    return ToolCall(f"toolu_{digest[:12].hex()}", str(tool.get("name", "")), arguments)


def _check_responses(model: str, body: dict[str, Any], *, stream: bool) -> MockRequest:
    """A Responses API request: ``input`` a string or a non-empty list of items (objects),
    ``instructions`` a string when given, ``max_output_tokens`` (caps the answer's text
    tokens), ``reasoning.effort`` (adds :data:`REASONING_TOKENS` to the output tokens)."""
    given = body.get("input")
    if not (
        isinstance(given, str)
        or (isinstance(given, list) and given and all(isinstance(i, dict) for i in given))
    ):
        raise InvalidSimRequest("input: a string or a non-empty list of items is required")
    if not isinstance(body.get("instructions", ""), str | None):
        raise InvalidSimRequest("instructions: must be a string")
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    return MockRequest(
        "responses",
        model,
        responses_prompt(body),
        _max_tokens(body, "max_output_tokens"),
        stream,
        tool=_forced_tool(body),
        reasoning=REASONING_TOKENS.get(effort, 0) if isinstance(effort, str) else 0,
    )


def _require_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidSimRequest("messages: a non-empty list is required")


def _max_tokens(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSimRequest(f"{key}: must be an integer of at least 1")
    return value


def _check_embeddings(model: str, body: dict[str, Any]) -> MockRequest:
    given = body.get("input")
    if isinstance(given, str) or (
        isinstance(given, list) and given and all(isinstance(item, int) for item in given)
    ):
        inputs: tuple[Any, ...] = (given,)
    elif isinstance(given, list) and given:
        inputs = tuple(given)
    else:
        raise InvalidSimRequest("input: a string or a non-empty list is required")
    if not all(isinstance(item, str | list) for item in inputs):
        raise InvalidSimRequest("input: each item must be a string or a list of token ids")
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise InvalidSimRequest("dimensions: must be an integer")
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise InvalidSimRequest(f"dimensions: must be between 1 and {MAX_DIMENSIONS}")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise InvalidSimRequest("encoding_format: must be 'float' or 'base64'")
    return MockRequest(
        "embeddings",
        model,
        Prompt(""),  # embeddings have no prompt cache; input_tokens counts each input
        inputs=inputs,
        input_tokens=sum(text_prompt(item).tokens for item in inputs),
        dimensions=dimensions,
        as_base64=encoding == "base64",
    )


def _seed_text(item: Any) -> str:
    """What an embedding's vector depends on: the text, or the token ids as JSON."""
    return item if isinstance(item, str) else orjson.dumps(item).decode()
