"""The response cache end to end: entries are scoped to the caller, carry the policy that
produced them, and answers holding secrets are not stored. Simulated providers and a real
redis-server on 127.0.0.1; the provider is made to say a secret with ``Say backwards:``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from sim.handlers import BACKWARDS_MARKER
from tests.proxy.gateway_fixtures import (
    GATEWAY_KEYS,
    Response,
    gateway,
    mock_calls,
    read_records,
    sha,
)
from tests.proxy.redis_server import run_redis_server

OPENAI_SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"  # noqa: S105 - a fake key
PHONE = "+44 20 7946 0958"
TEAM_A2_KEY = "gw-key-team-a2"
# A second key of team "a", and callers without a key (auth not required).
MORE_CALLERS = f"""
[[auth.keys]]
id = "team-a2"
team = "a"
sha256 = "{sha(TEAM_A2_KEY)}"
[auth]
required = false
"""
CALLERS: dict[str, str | None] = {
    "a": GATEWAY_KEYS["team-a"],
    "a2": TEAM_A2_KEY,
    "b": GATEWAY_KEYS["team-b"],
    "anonymous": None,
}


def saying(text: str, **extra: Any) -> dict[str, Any]:
    """A chat request the simulated provider answers with exactly ``text``."""
    prompt = BACKWARDS_MARKER + text[::-1]
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **extra}


def route(settings: str) -> str:
    return f'\n[routes.chat]\nmatch = ["*"]\ncache = true\ncache_ttl_s = 600\n{settings}\n'


def status(response: Response) -> str:
    return response.headers["cf-aig-cache-status"]


def content(response: Response) -> str:
    """The answer's text, whole or streamed (OpenAI chat)."""
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in response.body.splitlines() if line.startswith(b"data: ")]
        chunks = [orjson.loads(e) for e in events if e != b"[DONE]"]
        return "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
    return str(response.json()["choices"][0]["message"]["content"])


def stored_entries(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM responses").fetchone()[0])


@contextmanager
def store(kind: str) -> Iterator[str]:
    """TOML lines for the ``[cache]`` table: the default SQLite file, or a real Redis."""
    if kind == "sqlite":
        yield ""
        return
    with run_redis_server() as url:
        yield f'url = "{url}"\n'


@pytest.mark.parametrize(
    ("scope", "kind", "statuses", "served_from"),
    [
        ("key", "sqlite", ["MISS", "MISS", "MISS", "MISS", "HIT", "HIT"], [0, 1, 2, 3, 3, 0]),
        ("team", "sqlite", ["MISS", "HIT", "MISS", "MISS", "HIT", "HIT"], [0, 0, 2, 3, 3, 0]),
        ("shared", "sqlite", ["MISS", "HIT", "HIT", "MISS", "HIT", "HIT"], [0, 0, 0, 3, 3, 0]),
        ("key", "redis", ["MISS", "MISS", "MISS", "MISS", "HIT", "HIT"], [0, 1, 2, 3, 3, 0]),
    ],
)
def test_a_cache_key_reads_only_the_entries_of_the_callers_scope(
    tmp_path: Path, scope: str, kind: str, statuses: list[str], served_from: list[int]
) -> None:
    """Every caller sends the same cf-aig-cache-key with its own prompt: a key reads its own
    entries (default scope), its team's (``team``) or everyone's (``shared``); callers
    without a key share one anonymous namespace. CacheKeyHash stays the request's hash."""
    order = ["a", "a2", "b", "anonymous", "anonymous", "a"]
    settings = f'cache_scope = "{scope}"' if scope != "key" else ""
    with store(kind) as cache, gateway(tmp_path, route(settings), extra=cache + MORE_CALLERS) as gw:
        responses = [
            gw.post(
                "/v1/chat/completions",
                saying(f"Answer for {caller}."),
                key=CALLERS[caller],
                headers={"cf-aig-cache-key": "faq-1"},
            )
            for caller in order
        ]
        calls = mock_calls(gw.openai)
    assert [r.status for r in responses] == [200] * 6
    assert [status(r) for r in responses] == statuses
    assert [r.body for r in responses] == [responses[i].body for i in served_from]
    assert len(calls) == statuses.count("MISS")
    assert len({r.body for r in responses}) == statuses.count("MISS")
    records = read_records(gw.logs)
    assert [r["ApiKeyId"] for r in records] == ["team-a", "team-a2", "team-b", None, None, "team-a"]
    assert len({r["CacheKeyHash"] for r in records}) == 1


@pytest.mark.parametrize(
    ("kind", "said", "settings", "redacted"),
    [
        ("sqlite", f"Call me on {PHONE}.", "", "Call me on [REDACTED:PHONE]."),
        ("redis", f"Call me on {PHONE}.", "", "Call me on [REDACTED:PHONE]."),
        (
            "sqlite",
            f"Use {OPENAI_SECRET} here.",
            "cache_secrets = true",
            "Use [REDACTED:OPENAI_KEY] here.",
        ),
    ],
    ids=["pii-sqlite", "pii-redis", "allowed-secret-sqlite"],
)
def test_an_answer_cached_under_one_policy_is_not_served_under_another(
    tmp_path: Path, kind: str, said: str, settings: str, redacted: str
) -> None:
    """Cached while response DLP was off, the answer is a miss once it is on (redacted,
    then cached as such); turned off again, the redacted entry is a miss too."""
    body = saying(said)
    off = route(f'dlp = "redact"\ndlp_responses = false\n{settings}')
    on = route(f'dlp = "redact"\ndlp_responses = true\n{settings}')
    answers = []
    with store(kind) as cache:
        for routes in (off, on, off):
            with gateway(tmp_path, routes, extra=cache) as gw:
                answers += [gw.post("/v1/chat/completions", body) for _ in range(2)]
    assert [status(a) for a in answers] == ["MISS", "HIT", "MISS", "HIT", "MISS", "HIT"]
    assert [content(a) for a in answers] == [said, said, redacted, redacted, said, said]


@pytest.mark.parametrize(
    ("said", "settings", "expected"),
    [
        (f"Use {OPENAI_SECRET} here.", "", (["MISS", "MISS"], 0)),
        (f"Use {OPENAI_SECRET} here.", "cache_secrets = true", (["MISS", "HIT"], 1)),
        (f"Call me on {PHONE}.", "", (["MISS", "HIT"], 1)),
    ],
    ids=["secret", "secret-allowed", "pii"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_answer_holding_a_secret_is_stored_only_when_the_route_allows_it(
    tmp_path: Path, said: str, settings: str, expected: tuple[list[str], int], stream: bool
) -> None:
    """On a route without response DLP (the sample's main chat route before this fix), an
    answer in which DLP finds a secret is served but not stored, whole or streamed, unless
    ``cache_secrets = true``; PII alone does not keep an answer out of the cache. Expected:
    the cache statuses of two identical requests, and the entries in the SQLite file."""
    statuses, entries = expected
    body = saying(said, stream=True) if stream else saying(said)
    with gateway(tmp_path, route(f'dlp = "redact"\ndlp_responses = false\n{settings}')) as gw:
        answers = [gw.post("/v1/chat/completions", body) for _ in range(2)]
        calls = mock_calls(gw.openai)
    assert [status(a) for a in answers] == statuses
    assert [content(a) for a in answers] == [said, said]
    assert len(calls) == statuses.count("MISS")
    assert stored_entries(tmp_path / "cache.sqlite") == entries
