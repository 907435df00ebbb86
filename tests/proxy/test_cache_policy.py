"""The response cache's rules: the caller's namespace, the policy fingerprint, and which
answers hold a secret (whole bodies and SSE streams, OpenAI and Anthropic)."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson
import pytest

from proxy.cache_policy import ANONYMOUS, answer_policy, cache_namespace, holds_secret
from proxy.config import KeyIdentity, RouteSettings

SECRET = "ghp_" + "a1B2c3D4e5" * 4  # a fake GitHub token
ROUTE = RouteSettings(name="chat", cache=True)
KEY = KeyIdentity("search-app", team="search")


@pytest.mark.parametrize(
    ("scope", "identity", "namespace"),
    [
        ("key", KEY, "key:search-app"),
        ("team", KEY, "team:search"),
        ("team", KeyIdentity("ops-tool"), "key:ops-tool"),  # no team: its own entries
        ("shared", KEY, "shared"),
        ("key", None, ANONYMOUS),
        ("shared", None, ANONYMOUS),
    ],
)
def test_the_namespace_follows_the_routes_scope(
    scope: str, identity: KeyIdentity | None, namespace: str
) -> None:
    route = dataclasses.replace(ROUTE, cache_scope=scope)
    assert cache_namespace(route, identity) == namespace


def test_the_policy_fingerprint_is_pinned() -> None:
    """Fingerprints are stored with entries: a drift would turn every entry into a miss."""
    canonical = (
        b'{"api":"openai","cache_secrets":false,"dlp":"off","dlp_responses":false,'
        b'"guardrail_responses":false,"guardrails":"off"}'
    )
    assert answer_policy(ROUTE, "openai") == hashlib.sha256(canonical).hexdigest()[:16]
    assert answer_policy(ROUTE, "openai") == "b7fba62948846013"


@pytest.mark.parametrize(
    "change",
    [
        {"guardrails": "monitor"},
        {"guardrail_responses": True},
        {"dlp": "redact"},
        {"dlp_responses": True},
        {"cache_secrets": True},
    ],
    ids=lambda change: next(iter(change)),
)
def test_the_policy_fingerprint_changes_with_every_setting_that_shapes_an_answer(
    change: dict[str, Any],
) -> None:
    assert answer_policy(dataclasses.replace(ROUTE, **change), "openai") != answer_policy(
        ROUTE, "openai"
    )


def test_the_policy_fingerprint_changes_with_the_clients_api_and_not_with_the_rest() -> None:
    """Answers are translated for the client's API; the TTL or the scope change nothing."""
    assert answer_policy(ROUTE, "anthropic") != answer_policy(ROUTE, "openai")
    other = dataclasses.replace(ROUTE, name="other", cache_ttl_s=5.0, cache_scope="shared")
    assert answer_policy(other, "openai") == answer_policy(ROUTE, "openai")


def chat(content: str) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, "message": {"content": content}}]})


def openai_stream(*deltas: str) -> list[bytes]:
    events = [{"choices": [{"index": 0, "delta": {"content": d}}]} for d in deltas]
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (chat(f"Your token is {SECRET}."), True),
        (chat("Write to ana@example.com or call +44 20 7946 0958."), False),  # PII only
        (chat("No secret here."), False),
        (orjson.dumps({"content": [{"type": "text", "text": f"token: {SECRET}"}]}), True),
        (
            orjson.dumps(
                {
                    "choices": [
                        {
                            "message": {
                                "tool_calls": [
                                    {"function": {"arguments": f'{{"token": "{SECRET}"}}'}}
                                ]
                            }
                        }
                    ]
                }
            ),
            True,
        ),
        (f"plain text {SECRET}".encode(), True),
        (orjson.dumps({"data": [{"embedding": [0.1, 0.2]}]}), False),
    ],
    ids=["chat", "pii", "clean", "anthropic", "tool-arguments", "not-json", "embeddings"],
)
def test_holds_secret_reads_whole_answers(body: bytes, found: bool) -> None:
    assert holds_secret(body) is found


def test_holds_secret_finds_a_secret_split_across_stream_events() -> None:
    """The fragments are joined: neither event alone holds the token."""
    chunks = openai_stream("Use ", SECRET[:12], SECRET[12:], " now.")
    assert holds_secret(None, chunks) is True
    assert holds_secret(None, openai_stream("Use ", "nothing", " now.")) is False


def test_holds_secret_reads_anthropic_streams_and_a_last_event_without_its_blank_line() -> None:
    events = [
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": SECRET[:6]}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": SECRET[6:]}},
    ]
    chunks = [b"event: content_block_delta\ndata: " + orjson.dumps(e) + b"\n\n" for e in events]
    chunks[-1] = chunks[-1].rstrip(b"\n")
    assert holds_secret(None, chunks) is True
