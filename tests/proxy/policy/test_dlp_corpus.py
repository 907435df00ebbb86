"""Recall and false positives on the corpus (``dlp_corpus``): every secret is redacted in
every request and answer shape DLP reads, streams in 1-character deltas included, and the
benign texts stay as they are."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import orjson
import pytest

from proxy.policy.dlp import DLP_CATEGORIES, inspect_request, inspect_response, scan
from proxy.policy.stream_dlp import StreamDlp
from proxy.policy.texts import request_texts, response_texts
from tests.proxy.policy.dlp_corpus import BENIGN, SECRETS

#: Findings in the benign corpus (each one is a false positive).
BENIGN_FINDINGS = 1


def _revealed(secret: str, texts: list[str], original: str) -> list[str]:
    """Runs of ``secret`` (8 characters, or all of a shorter one) left in ``texts``; runs
    that ``original`` also holds outside the secret (``https://``, a domain) do not count."""
    size = min(8, len(secret))
    joined = "\n".join(texts)
    around = original.replace(secret, "\0")
    runs = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    return sorted(run for run in runs if run in joined and run not in around)


def _requests(text: str) -> dict[str, dict[str, Any]]:
    return {
        "plain": {"messages": [{"role": "user", "content": text}]},
        "parts": {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]},
        "tool_call": {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "function": {"name": "f", "arguments": json.dumps({"note": text})},
                        }
                    ],
                }
            ]
        },
        "document": {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": text},
                        }
                    ],
                }
            ]
        },
    }


def _responses(text: str) -> dict[str, dict[str, Any]]:
    return {
        "openai": {"choices": [{"message": {"role": "assistant", "content": text}}]},
        "anthropic": {"content": [{"type": "text", "text": text}]},
        "tool_use": {"content": [{"type": "tool_use", "id": "t", "input": {"note": text}}]},
    }


def test_the_corpus_is_large_and_covers_every_category() -> None:
    counts = Counter(category for category, _, _ in SECRETS)
    assert len(SECRETS) >= 150
    assert set(counts) == set(DLP_CATEGORIES)


@pytest.mark.parametrize(("category", "text", "secret"), SECRETS)
def test_every_secret_is_redacted_in_every_body_shape(
    category: str, text: str, secret: str
) -> None:
    assert secret in text
    assert category in {f.category for f in scan(text)}
    for shape, body in _requests(text).items():
        redacted = request_texts(inspect_request(body, "redact").body)
        assert _revealed(secret, redacted, text) == [], shape
    for shape, body in _responses(text).items():
        redacted = response_texts(inspect_response(body, "redact").body)
        assert _revealed(secret, redacted, text) == [], shape


def _openai_stream(text: str) -> list[bytes]:
    chunks = [{"index": 0, "delta": {"content": c}, "finish_reason": None} for c in text]
    chunks.append({"index": 0, "delta": {}, "finish_reason": "stop"})
    events = [{"object": "chat.completion.chunk", "id": "c", "choices": [c]} for c in chunks]
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def _anthropic_stream(text: str) -> list[bytes]:
    events = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}}
        for c in text
    ]
    events.append({"type": "content_block_stop", "index": 0})
    return [b"event: x\ndata: " + orjson.dumps(e) + b"\n\n" for e in events]


def _streamed_text(out: bytes) -> str:
    text = ""
    for event in out.split(b"\n\n"):
        _, _, data = event.partition(b"data: ")
        if data.startswith(b"{"):
            parsed = orjson.loads(data)
            for choice in parsed.get("choices", []):
                text += choice["delta"].get("content") or ""
            text += parsed.get("delta", {}).get("text", "")
    return text


@pytest.mark.parametrize("events", [_openai_stream, _anthropic_stream])
def test_every_secret_is_redacted_in_one_character_stream_deltas(events: Any) -> None:
    """All items in one stream, one character per event: secrets are split everywhere."""
    whole = "\n\n".join(text for _, text, _ in SECRETS)
    dlp = StreamDlp("redact")
    out = b"".join(dlp.process(event) for event in events(whole)) + dlp.finish()
    streamed = _streamed_text(out)
    assert streamed.count("[REDACTED:") >= len(SECRETS)
    revealed = {s: _revealed(s, [streamed], whole) for _, _, s in SECRETS}
    assert {s: r for s, r in revealed.items() if r} == {}
    assert set(dlp.categories) == set(DLP_CATEGORIES)


def test_benign_texts_have_the_known_number_of_findings() -> None:
    found = [(text, f.category, text[f.start : f.end]) for text in BENIGN for f in scan(text)]
    assert len(BENIGN) >= 50
    assert len(found) == BENIGN_FINDINGS, found
