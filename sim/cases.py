"""The demo's cases: agents whose traffic each shows one finding of the reports (seeded, pure).

* ``ticket-tagger`` (support): short tickets to tag with one word, sent to
  claude-opus-4-1: an expensive model doing a cheap model's work (``aigw report savings``:
  a model switch).
* ``status-digest`` (platform): one identical request every 65 to 75 minutes, just past
  the chat route's 1-hour cache TTL: every repeat is paid; a 24-hour TTL would serve all
  but the first (``aigw whatif --cache-ttl 24h``).
* ``handbook-qa`` (search): claude-sonnet-4-5 on ``/v1/messages`` with the same
  5,000-token system prompt (the handbook, no ``cache_control``) in sessions of 3 or 4
  calls 40 s to 4 minutes apart, 2 to 3 hours apart (``aigw whatif --prompt-cache``).
* ``crm-enricher`` (support, on the ``support-jobs`` key): a background worker, day and
  night, its metadata marked ``interactive: false`` (``aigw whatif --batch``).
* the runaway: ``summarizer`` started by ``support-user-1`` as a job on the
  ``support-jobs`` key for one hour; nine calls in ten resend one identical request with
  ``cf-aig-skip-cache`` (so each reaches the provider and is paid): the anomaly's root cause
  names the key and the repeated request.

``case_calls`` returns their calls (not sorted); the same settings give the same calls.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sim.calls import WORDS, PlannedCall, busy_moment, ns

__all__ = ["CASE_SHARES", "CaseWindow", "case_calls"]

# Shares of all calls (the runaway's is plan_traffic's runaway_share).
CASE_SHARES: Final = {
    "ticket-tagger": 0.025,
    "status-digest": 0.0125,
    "handbook-qa": 0.02,
    "crm-enricher": 0.03,
}
JOBS_KEY: Final = "support-jobs"
_DIGEST_GAP_S: Final = (65 * 60, 75 * 60)  # just past the chat route's cache_ttl_s = 3600
_SESSION_GAP_S: Final = (40, 240)  # within the providers' 5-minute prompt-cache TTL
# Sessions 2 to 3 hours apart, each of 3 or 4 calls within its hour: at most $0.08 an hour,
# so the anomaly detector (a MAD floor of $0.01) never scores one as a runaway.
_SESSION_EVERY_H: Final = (2, 3)
_LOOP_SHARE: Final = 0.9  # of the runaway's calls, those that resend its one request


@dataclass(frozen=True, slots=True)
class CaseWindow:
    """The simulated period and the runaway: ``runaway`` calls of ``runaway_agent`` in
    the hour from ``runaway_start``."""

    start: datetime
    days: float
    runaway: int
    runaway_agent: str = "summarizer"
    runaway_start: datetime = datetime(2026, 11, 19, 10, tzinfo=UTC)


def case_calls(rng: random.Random, requests: int, window: CaseWindow) -> list[PlannedCall]:
    """The cases' calls for a simulation of ``requests`` calls: each case takes its
    ``CASE_SHARES`` share of them, the runaway ``window.runaway``."""
    count = {name: int(requests * share) for name, share in CASE_SHARES.items()}
    calls = [_ticket(rng, window) for _ in range(count["ticket-tagger"])]
    calls += _digests(rng, window, count["status-digest"])
    calls += _handbook_sessions(rng, window, count["handbook-qa"])
    calls += [_enrichment(rng, window) for _ in range(count["crm-enricher"])]
    calls += _runaway(rng, window)
    return calls


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _ticket(rng: random.Random, window: CaseWindow) -> PlannedCall:
    moment = busy_moment(rng, window.start, window.days)
    metadata = {
        "team": "support",
        "user": f"support-user-{rng.randint(1, 6)}",
        "agent": "ticket-tagger",
        "env": "prod",
    }
    body = {
        "model": "claude-opus-4-1",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": "Tag this ticket with one word (billing, bug, access or other): "
                + _words(rng, 80, 200),
            }
        ],
    }
    return PlannedCall(ns(moment), "support", "/v1/messages", body, metadata)


def _digests(rng: random.Random, window: CaseWindow, count: int) -> list[PlannedCall]:
    """``count`` identical requests, 65 to 75 minutes apart, from the period's start."""
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You write the platform team's status digest."},
            {
                "role": "user",
                "content": "Summarise the open incidents and deploys: " + _words(rng, 300, 300),
            },
        ],
        "max_tokens": 400,
    }
    metadata = {
        "team": "platform",
        "user": "platform-user-2",
        "agent": "status-digest",
        "env": "prod",
    }
    end = window.start + timedelta(days=window.days)
    moment = window.start + timedelta(seconds=rng.uniform(0, 600))
    calls: list[PlannedCall] = []
    while len(calls) < count and moment < end:
        calls.append(PlannedCall(ns(moment), "platform", "/v1/chat/completions", body, metadata))
        moment += timedelta(seconds=rng.uniform(*_DIGEST_GAP_S))
    return calls


def _handbook_sessions(rng: random.Random, window: CaseWindow, count: int) -> list[PlannedCall]:
    """Sessions of 3 or 4 questions on the same large system prompt, a few minutes apart,
    each within one hour (from a minute 0 to 40), sessions 2 to 3 hours apart, all in the
    window (so at most ``count``: the steady traffic makes up the rest)."""
    handbook = "Company handbook. " + _words(rng, 2800, 2800)  # about 5,000 tokens
    calls: list[PlannedCall] = []
    hour = window.start
    end = window.start + timedelta(days=window.days)
    while len(calls) < count and hour < end:  # more calls than sessions fit: fewer sessions
        moment = hour + timedelta(seconds=rng.uniform(0, 40 * 60))
        user = f"search-user-{rng.randint(1, 6)}"
        for _ in range(min(rng.randint(3, 4), count - len(calls))):
            body: dict[str, Any] = {
                "model": "claude-sonnet-4-5",
                "max_tokens": 200,
                "system": handbook,
                "messages": [{"role": "user", "content": "Question: " + _words(rng, 10, 30)}],
            }
            metadata = {"team": "search", "user": user, "agent": "handbook-qa", "env": "prod"}
            calls.append(PlannedCall(ns(moment), "search", "/v1/messages", body, metadata))
            moment += timedelta(seconds=rng.uniform(*_SESSION_GAP_S))
        hour += timedelta(hours=rng.randint(*_SESSION_EVERY_H))
    return calls


def _enrichment(rng: random.Random, window: CaseWindow) -> PlannedCall:
    """A background job's call: any time of day, marked non-interactive."""
    moment = window.start + timedelta(seconds=rng.uniform(0, window.days * 86400))
    metadata = {
        "team": "support",
        "agent": "crm-enricher",
        "interactive": "false",
        "env": "prod",
    }
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Extract the company, industry and size as JSON."},
            {"role": "user", "content": "Record: " + _words(rng, 200, 500)},
        ],
        "max_tokens": 400,
    }
    return PlannedCall(ns(moment), "support", "/v1/chat/completions", body, metadata, key=JOBS_KEY)


def _runaway(rng: random.Random, window: CaseWindow) -> list[PlannedCall]:
    """The runaway job: most calls resend one document, none may be answered from cache."""
    metadata = {
        "team": "support",
        "user": "support-user-1",
        "agent": window.runaway_agent,
        "env": "prod",
    }
    loop = _summary_request(rng)
    calls: list[PlannedCall] = []
    for _ in range(window.runaway):
        moment = window.runaway_start + timedelta(seconds=rng.uniform(0, 3600))
        body = loop if rng.random() < _LOOP_SHARE else _summary_request(rng)
        calls.append(
            PlannedCall(
                ns(moment),
                "support",
                "/v1/chat/completions",
                body,
                metadata,
                runaway=True,
                key=JOBS_KEY,
                headers=(("cf-aig-skip-cache", "true"),),
            )
        )
    return calls


def _summary_request(rng: random.Random) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Summarise the document, then summarise it again."},
            {"role": "user", "content": _words(rng, 800, 1200)},
        ],
        "max_tokens": 800,
    }
