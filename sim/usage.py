"""How much the simulated provider says a request used: tokens in, tokens out, prompt cache.

The rules are simple on purpose, so that tests can compute the numbers by hand:

- **Prompt text.** A request's prompt is flattened to one string, in the order the provider
  reads it: the ``tools`` JSON first, then (Anthropic) ``system``, then each message as
  ``"\\x00" + role + "\\x00"`` followed by its text. Text parts count as their text; image
  and audio parts as 340 characters (85 tokens, OpenAI's low-detail image); any other part
  (``tool_use``, ``tool_calls``) as its compact JSON; ``tool_result`` content recursively.
  A Responses API request (:func:`responses_prompt`): ``tools``, ``instructions`` as a
  ``developer`` message, then ``input`` (a string is one ``user`` message).
- **Input tokens** are ``ceil(len(prompt) / 4)``: the role marker is the per-message overhead
  (a ``user`` message costs 2 tokens more than its text alone, give or take rounding).
- **Output tokens** come from the request digest: ``20 + d % (cap - 19)`` where
  ``cap = min(max_tokens, 600)`` and ``d`` is the first 8 bytes of the digest (big-endian);
  when ``cap < 20`` the answer is exactly ``cap`` tokens. The answer hits the limit
  (``finish_reason`` ``length``, ``stop_reason`` ``max_tokens``) when it equals ``max_tokens``.
- **Answer text** is a slice of a fixed filler text of 4-character words (`` the api``...),
  starting at word ``int(digest[8:12]) % 8192``: ``n`` output tokens are ``4n - 1``
  characters (no leading space), so ``ceil(len(text) / 4) == n``.
- **Prompt caching** (:class:`PromptCache`). OpenAI: the prompt is cut into blocks of 1024
  tokens (4096 characters); ``cached_tokens`` is 1024 x the largest number of leading
  blocks that an earlier request *to the same model* also started with. Anthropic: every
  content block, system block or tool that carries ``cache_control`` ends a cache prefix;
  prefixes under 1024 tokens are ignored (Anthropic's minimum). The longest prefix seen
  before is read (``cache_read_input_tokens`` = its tokens); when the last prefix is longer,
  the rest up to it is written (``cache_creation_input_tokens``); ``input_tokens`` is what
  follows. Of the written tokens, those up to the last prefix marked ``"ttl": "1h"`` are
  1-hour writes (``cache_creation.ephemeral_1h_input_tokens``; Anthropic wants 1-hour
  prefixes before 5-minute ones), the rest 5-minute writes. Only answered requests (200)
  leave their prefixes behind: a refused one never reached the model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Final

import orjson

__all__ = [
    "CACHE_BLOCK_TOKENS",
    "CHARS_PER_TOKEN",
    "MAX_OUTPUT_TOKENS",
    "MIN_OUTPUT_TOKENS",
    "Prompt",
    "PromptCache",
    "Usage",
    "answer_text",
    "anthropic_prompt",
    "count_tokens",
    "openai_prompt",
    "output_tokens",
    "responses_prompt",
    "text_prompt",
]

CHARS_PER_TOKEN: Final = 4
MIN_OUTPUT_TOKENS: Final = 20
MAX_OUTPUT_TOKENS: Final = 600
CACHE_BLOCK_TOKENS: Final = 1024
_IMAGE_TEXT: Final = "\x01" * 340  # 85 tokens: what OpenAI charges for a low-detail image
_MEDIA_TYPES: Final = frozenset({"image", "image_url", "input_image", "input_audio", "document"})

# Filler words of exactly three letters: with a leading space each is one 4-character token.
_WORD_LIST: Final = (
    "the and for you not are but can all any new use one our out way how now two may see get "
    "set run let key log map sum row day bit top end low big few own per via yes put ask say "
    "try why who cut add fix mix cap hit job net raw tag tip web api app box cat dog sky"
)
_WORDS: Final = _WORD_LIST.split()
_FILLER_WORDS: Final = 8192
# A fixed seed: the filler is the same text in every process (not used for security).
_FILLER: Final = "".join(
    " " + word
    for word in random.Random(20260418).choices(  # noqa: S311 - filler text, not a secret
        _WORDS, k=_FILLER_WORDS + MAX_OUTPUT_TOKENS
    )
)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one answer: ``input_tokens`` is the whole prompt (cached parts too)."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # of the writes, those with a 1-hour TTL

    @property
    def uncached_input_tokens(self) -> int:
        """Anthropic's ``input_tokens``: the prompt less what was read from or written to cache."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens


@dataclass(frozen=True, slots=True)
class Prompt:
    """A flattened prompt and the character offsets that end its ``cache_control`` blocks."""

    text: str
    breakpoints: tuple[int, ...] = ()
    hour_breakpoints: tuple[int, ...] = ()  # those whose ``cache_control`` says ``"ttl": "1h"``

    @property
    def tokens(self) -> int:
        """Input tokens of the whole prompt."""
        return count_tokens(len(self.text))


def count_tokens(chars: int) -> int:
    """Tokens in ``chars`` characters of text: ``ceil(chars / 4)``."""
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def output_tokens(digest: bytes, max_tokens: int | None) -> int:
    """Output tokens for a request digest and its ``max_tokens`` (None: no limit)."""
    cap = MAX_OUTPUT_TOKENS if max_tokens is None else min(max_tokens, MAX_OUTPUT_TOKENS)
    if cap < MIN_OUTPUT_TOKENS:
        return cap
    return MIN_OUTPUT_TOKENS + int.from_bytes(digest[:8], "big") % (cap - MIN_OUTPUT_TOKENS + 1)


def answer_text(digest: bytes, tokens: int) -> str:
    """``tokens`` tokens of filler text chosen by the digest (``4 * tokens - 1`` characters)."""
    start = int.from_bytes(digest[8:12], "big") % _FILLER_WORDS
    return _FILLER[CHARS_PER_TOKEN * start + 1 : CHARS_PER_TOKEN * (start + tokens)]


class _Flattener:
    """Appends prompt pieces and remembers where ``cache_control`` blocks end."""

    __slots__ = ("hour_marks", "length", "marks", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.marks: list[int] = []
        self.hour_marks: list[int] = []

    def mark(self, cache_control: Any) -> None:
        """End a cache prefix here when ``cache_control`` is set (a 1-hour one for ``1h``)."""
        if cache_control is None:
            return
        self.marks.append(self.length)
        if isinstance(cache_control, dict) and cache_control.get("ttl") == "1h":
            self.hour_marks.append(self.length)

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def content(self, content: Any) -> None:
        """Add a message's content: a string, a list of parts, or anything else as JSON."""
        if content is None:
            return
        if isinstance(content, str):
            self.add(content)
            return
        if not isinstance(content, list):
            self.add(_json(content))
            return
        for part in content:
            self.part(part)

    def part(self, part: Any) -> None:
        if isinstance(part, str):
            self.add(part)
            return
        if not isinstance(part, dict):
            self.add(_json(part))
            return
        kind = part.get("type")
        text = part.get("text")
        if isinstance(text, str):
            self.add(text)
        elif isinstance(kind, str) and kind in _MEDIA_TYPES:  # a list type is unhashable
            self.add(_IMAGE_TEXT)
        elif kind == "tool_result":
            self.content(part.get("content"))
        elif kind == "tool_use":
            self.add(_json(part.get("input")))
        else:
            self.add(_json(part))
        self.mark(part.get("cache_control"))

    def message(self, message: Any) -> None:
        if not isinstance(message, dict):
            self.add(_json(message))
            return
        role = message.get("role")
        self.add(f"\x00{role if isinstance(role, str) else ''}\x00")
        self.content(message.get("content"))
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            self.add(_json(tool_calls))

    def prompt(self) -> Prompt:
        return Prompt("".join(self.parts), tuple(self.marks), tuple(self.hour_marks))


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def openai_prompt(body: dict[str, Any]) -> Prompt:
    """The prompt of an OpenAI chat request: ``tools`` then ``messages`` (no cache marks)."""
    flat = _Flattener()
    tools = body.get("tools")
    if tools is not None:
        flat.add(_json(tools))
    for message in body.get("messages") or ():
        flat.message(message)
    return Prompt(flat.prompt().text)


def anthropic_prompt(body: dict[str, Any]) -> Prompt:
    """The prompt of an Anthropic messages request: ``tools``, ``system``, ``messages``."""
    flat = _Flattener()
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            flat.add(_json(tool))
            if isinstance(tool, dict):
                flat.mark(tool.get("cache_control"))
    flat.content(body.get("system"))
    for message in body.get("messages") or ():
        flat.message(message)
    return flat.prompt()


def responses_prompt(body: dict[str, Any]) -> Prompt:
    """The prompt of an OpenAI Responses request: ``tools``, ``instructions`` (as a
    ``developer`` message), then ``input``: a string (one ``user`` message) or items.
    Message items count as chat messages; a ``function_call`` item as its ``arguments``, a
    ``function_call_output`` as its ``output``, any other item as its compact JSON."""
    flat = _Flattener()
    tools = body.get("tools")
    if tools is not None:
        flat.add(_json(tools))
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        flat.message({"role": "developer", "content": instructions})
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given or ()
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "function_call":
            flat.add(str(item.get("arguments", "")))
        elif kind == "function_call_output":
            flat.content(item.get("output"))
        else:
            flat.message(item)
    return Prompt(flat.prompt().text)


def text_prompt(value: Any) -> Prompt:
    """A completions ``prompt`` or one embeddings ``input``: text, or token ids (one char each)."""
    if isinstance(value, str):
        return Prompt(value)
    if isinstance(value, list) and all(isinstance(item, int) for item in value):
        # Token ids: one token each, so four characters each.
        return Prompt("\x02" * (CHARS_PER_TOKEN * len(value)))
    if isinstance(value, list):
        return Prompt("".join(text_prompt(item).text for item in value))
    return Prompt(_json(value))


class PromptCache:
    """Prompt prefixes that earlier requests sent, per provider and model.

    Bounded: past ``limit`` remembered prefixes it forgets them all (a benchmark sends
    millions of distinct prompts; tests send a few). Not thread-safe: the app's one event
    loop owns it.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._seen: set[bytes] = set()
        self._limit = limit

    def clear(self) -> None:
        """Forget every prefix."""
        self._seen.clear()

    def openai(self, model: str, prompt: Prompt) -> Usage:
        """Input usage with ``cache_read_tokens`` in whole 1024-token blocks; records the blocks."""
        block = CACHE_BLOCK_TOKENS * CHARS_PER_TOKEN
        ends = range(block, len(prompt.text) + 1, block)
        hit = self._match(b"openai", model, prompt.text, ends)
        return Usage(prompt.tokens, 0, cache_read_tokens=count_tokens(hit))

    def anthropic(self, model: str, prompt: Prompt) -> Usage:
        """Input usage with cache reads and writes at ``cache_control`` breakpoints."""
        ends = [end for end in prompt.breakpoints if count_tokens(end) >= CACHE_BLOCK_TOKENS]
        hit = self._match(b"anthropic", model, prompt.text, ends)
        read = count_tokens(hit)
        last = max(ends, default=0)
        written = count_tokens(last) - read if last > hit else 0
        hour = max((end for end in prompt.hour_breakpoints if end in ends), default=0)
        hour_written = count_tokens(hour) - read if written and hour > hit else 0
        return Usage(prompt.tokens, 0, read, written, hour_written)

    def _match(self, provider: bytes, model: str, text: str, ends: Any) -> int:
        """The longest prefix end in ``ends`` seen before (0: none); remembers all of them."""
        digest = blake2b(provider + b"\x00" + model.encode(), digest_size=16)
        keys: list[bytes] = []
        hit = 0
        start = 0
        for end in sorted(set(ends)):
            digest.update(text[start:end].encode("utf-8", "surrogatepass"))
            start = end
            key = digest.copy().digest()
            keys.append(key)
            if key in self._seen:
                hit = end
        if keys:
            if len(self._seen) + len(keys) > self._limit:
                self._seen.clear()
            self._seen.update(keys)
        return hit
