"""The stable prompt prefix: what is hashed, its estimated tokens, and the gateway's
records carrying ``PromptPrefixHash`` and ``PromptPrefixTokens``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson

from proxy.policy.dlp import redact
from proxy.prompt_prefix import prompt_prefix
from tests.proxy.gateway_fixtures import GATEWAY_KEYS, gateway, read_records

SYSTEM = "Be brief. " * 400  # 4,000 characters: 4000 // 4 + 1 = 1,001 tokens
TOOLS = [{"type": "function", "function": {"name": "f"}}]  # 45 characters of JSON


def digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def test_anthropic_system_and_tools_are_the_prefix() -> None:
    """system and tools hashed together (messages are not): 4045 // 4 + 1 = 1,012 tokens."""
    body = {"model": "m", "system": SYSTEM, "tools": TOOLS, "messages": [{"role": "user"}]}
    assert len(orjson.dumps(TOOLS)) == 45
    assert prompt_prefix(body) == (digest({"system": SYSTEM, "tools": TOOLS}), 1012)


def test_openai_leading_system_and_developer_messages_are_the_prefix() -> None:
    """Only the messages before the first other role; the user's text changes nothing."""
    leading = [
        {"role": "system", "content": SYSTEM[:2000]},
        {"role": "developer", "content": [{"type": "text", "text": SYSTEM[:2000]}]},
    ]
    later = {"role": "system", "content": "not leading"}
    first = {"messages": [*leading, {"role": "user", "content": "a"}, later]}
    second = {"messages": [*leading, {"role": "user", "content": "b"}], "temperature": 1}
    assert prompt_prefix(first) == (digest({"messages": leading}), 1001)
    assert prompt_prefix(second) == prompt_prefix(first)


def test_responses_instructions_are_the_prefix_and_no_prefix_is_none() -> None:
    """``instructions`` and leading developer items of ``input`` (Responses API) count
    (80 characters: 21 tokens); a body without any prefix gives None."""
    assert prompt_prefix({"instructions": "x" * 40, "input": "hi"}) == (
        digest({"instructions": "x" * 40}),
        11,
    )
    developer = {"role": "developer", "content": "y" * 40}
    items = {"instructions": "x" * 40, "input": [developer, {"role": "user", "content": "hi"}]}
    assert prompt_prefix(items) == (
        digest({"instructions": "x" * 40, "input": [developer]}),
        21,
    )
    assert prompt_prefix({"messages": [{"role": "user", "content": "hi"}]}) is None
    assert prompt_prefix({"system": "", "tools": [], "input": "hi"}) is None


def test_gateway_records_carry_the_prefix_hash_and_tokens(tmp_path: Path) -> None:
    """Through the simulated providers: the same system prompt, the same hash on both
    records, 1,001 tokens; a request without one has neither field."""
    chat = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}],
    }
    messages = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    plain = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    with gateway(tmp_path) as gw:
        statuses = [
            gw.post("/v1/chat/completions", chat).status,
            gw.post(
                "/v1/messages", messages, key=None, headers={"x-api-key": GATEWAY_KEYS["team-a"]}
            ).status,
            gw.post("/v1/messages", messages, key=GATEWAY_KEYS["team-b"]).status,
            gw.post("/v1/chat/completions", plain).status,
        ]
    assert statuses == [200, 200, 200, 200]
    records = read_records(gw.logs)
    fields = [(r.get("PromptPrefixHash"), r.get("PromptPrefixTokens")) for r in records]
    system_message = {"messages": [{"role": "system", "content": SYSTEM}]}
    assert fields == [
        (digest(system_message), 1001),
        (digest({"system": SYSTEM}), 1001),
        (digest({"system": SYSTEM}), 1001),
        (None, None),
    ]
    assert "PromptPrefixHash" not in records[3]


def test_a_role_of_any_json_type_ends_the_leading_messages() -> None:
    """A ``role`` that is a list or an object (unhashable) is not a system role: the
    leading messages end there, as at a user message."""
    system = {"role": "system", "content": "Be brief."}
    for role in ([], {}, ["system"], 5, None):
        body = {"messages": [system, {"role": role, "content": "x"}, system]}
        assert prompt_prefix(body) == (digest({"messages": [system]}), 3)
    assert prompt_prefix({"messages": [{"role": ["system"]}]}) is None


def test_the_prefix_is_hashed_after_dlp_redaction(tmp_path: Path) -> None:
    """A route that redacts: the hash is of the system prompt as sent upstream, with
    ``[REDACTED:EMAIL]`` in place of the address, and never of the original."""
    system = "Escalate to ana@example.com. " + SYSTEM
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "Hi"}],
    }
    routes = '\n[routes.chat]\nmatch = ["*"]\ndlp = "redact"\n'
    with gateway(tmp_path, routes) as gw:
        assert gw.post("/v1/chat/completions", body).status == 200
    [record] = read_records(gw.logs)
    sent = redact(system)
    assert sent.startswith("Escalate to [REDACTED:EMAIL]. ")
    message = {"role": "system", "content": sent}
    assert record["PromptPrefixHash"] == digest({"messages": [message]})
    assert record["PromptPrefixTokens"] == len(sent) // 4 + 1
