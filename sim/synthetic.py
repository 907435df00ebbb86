"""Realistic synthetic Logpush traffic, for the demo, tests and benchmarks.

Records follow Cloudflare's ``ai_gateway_events`` dataset (about 1 KB each with
encrypted bodies, as Logpush writes them) and are written the way Logpush lays
out objects: ``<root>/<YYYYMMDD>/<start>_<end>_<random>.log.gz``. Output is a
pure function of the seed.

Optional knobs shape the traffic for the models' tests and demos: a weekly
pattern (``weekend_factor``: quieter Saturdays and Sundays, in UTC), a
``RunawayAgent`` (one agent stuck in a loop for a while), and ``gateway_fields``
(the extension fields aigw's own gateway logs: log and event ids, route, API key,
DLP and guardrail findings, failover steps, cache key hashes). With their defaults
the stream is exactly what it was without them.
"""

from __future__ import annotations

import base64
import gzip
import heapq
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from core import logpush

__all__ = [
    "RunawayAgent",
    "TrafficShape",
    "format_timestamp",
    "rest_record",
    "synthetic_records",
    "write_logpush_files",
]

# (provider, model, USD per million input tokens, per million output tokens, weight)
_MODELS: Final = (
    ("openai", "gpt-4o-mini", 0.15, 0.60, 30),
    ("openai", "gpt-4o", 2.50, 10.00, 15),
    ("anthropic", "claude-sonnet-4", 3.00, 15.00, 20),
    ("anthropic", "claude-3-5-haiku", 0.80, 4.00, 10),
    ("google-ai-studio", "gemini-2.0-flash", 0.10, 0.40, 15),
    ("workers-ai", "@cf/meta/llama-3.1-8b-instruct", 0.28, 0.83, 10),
)
_WEIGHTS: Final = tuple(m[4] for m in _MODELS)
_TEAMS: Final = ("search", "support", "platform", "growth")
_AGENTS: Final = ("triage-bot", "code-review", "summarizer", "sql-helper", None)
_ENDPOINTS: Final = {"anthropic": "v1/messages"}


@dataclass(frozen=True, slots=True)
class RunawayAgent:
    """An agent stuck in a loop: from ``start`` for ``duration`` it sends ``multiplier``
    times its usual request rate (so about ``multiplier`` times its usual spend).

    ``agent`` is one of the generated agents (``triage-bot``, ``code-review``,
    ``summarizer``, ``sql-helper``); the extra requests come from that agent's
    usual users, with the usual mix of models.
    """

    agent: str
    start: datetime
    duration: timedelta = timedelta(hours=1)
    multiplier: float = 20.0


@dataclass(frozen=True, slots=True)
class TrafficShape:
    """Knobs of the generated traffic (rates are fractions of requests).

    ``weekend_factor`` multiplies the request rate on Saturdays and Sundays (UTC);
    ``runaway`` adds one agent's runaway loop on top of the steady traffic;
    ``gateway_fields`` adds aigw gateway fields (see ``_gateway_fields``).
    """

    start: datetime = datetime(2026, 4, 18, tzinfo=UTC)
    requests_per_minute: float = 400.0
    gateways: tuple[str, ...] = ("prod", "staging")
    users: int = 40
    cache_hit_rate: float = 0.12
    error_rate: float = 0.02
    rate_limited_rate: float = 0.01
    encrypted_bodies: bool = True
    plain_metadata: bool = True
    weekend_factor: float = 1.0
    runaway: RunawayAgent | None = None
    gateway_fields: bool = False


def synthetic_records(
    count: int, *, seed: int = 7, shape: TrafficShape | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` Logpush records in time order; ``Timestamp`` is a UTC datetime.

    A runaway agent's extra requests are drawn from their own random stream, so
    the steady traffic around them is the same as without the runaway.
    """
    shape = shape or TrafficShape()
    records = _steady_records(seed, shape)
    if shape.runaway is not None:
        users = _agent_users(shape, shape.runaway.agent)
        extra = _runaway_records(seed, shape, shape.runaway, users)
        records = heapq.merge(records, extra, key=lambda record: record["Timestamp"])
    return itertools.islice(records, count)


def _rate_factor(shape: TrafficShape, when: datetime) -> float:
    """The multiplier of the request rate at ``when`` (the weekly pattern)."""
    return shape.weekend_factor if when.weekday() >= 5 else 1.0


def _steady_records(seed: int, shape: TrafficShape) -> Iterator[dict[str, Any]]:
    """The steady traffic, without end: a Poisson process at the shape's rate.

    With a weekly pattern the gap to the next request follows the rate at the
    previous one (a piecewise-constant rate, close enough at these rates).
    """
    rng = random.Random(seed)
    step = timedelta(minutes=1) / shape.requests_per_minute
    when = shape.start
    while True:
        gap = step * rng.expovariate(1.0)
        if shape.weekend_factor != 1.0:
            gap /= _rate_factor(shape, when)
        when += gap
        yield _record(rng, shape, when, users=None)


def _agent_users(shape: TrafficShape, agent: str) -> list[int]:
    """The users whose requests carry ``agent`` (``ValueError`` if there are none)."""
    if agent not in _AGENTS:
        raise ValueError(f"unknown agent {agent!r}: one of {_AGENTS[:-1]}")
    users = [user for user in range(shape.users) if _AGENTS[user % len(_AGENTS)] == agent]
    if not users:
        raise ValueError(f"agent {agent!r} has no users among {shape.users}")
    return users


def _runaway_records(
    seed: int, shape: TrafficShape, runaway: RunawayAgent, users: list[int]
) -> Iterator[dict[str, Any]]:
    """The runaway agent's extra requests (from ``users``), in time order, in its window."""
    usual = shape.requests_per_minute * _rate_factor(shape, runaway.start) * len(users)
    extra_per_minute = usual / shape.users * (runaway.multiplier - 1)
    if extra_per_minute <= 0:
        return
    rng = random.Random(f"{seed}:runaway")
    step = timedelta(minutes=1) / extra_per_minute
    when, end = runaway.start, runaway.start + runaway.duration
    while True:
        when += step * rng.expovariate(1.0)
        if when >= end:
            return
        yield _record(rng, shape, when, users=users)


def _record(
    rng: random.Random, shape: TrafficShape, when: datetime, *, users: Sequence[int] | None
) -> dict[str, Any]:
    """One record at ``when``, from one of ``users`` (any user when None).

    The order of the draws from ``rng`` is part of the output: keep it.
    """
    provider, model, price_in, price_out, _w = rng.choices(_MODELS, _WEIGHTS)[0]
    tokens_in = int(rng.lognormvariate(6.5, 0.9)) + 5
    tokens_out = int(rng.lognormvariate(5.0, 0.8)) + 1
    cache_read = (
        (tokens_in * rng.randint(2, 8) // 10)
        if provider == "anthropic" and rng.random() < 0.3
        else 0
    )
    roll = rng.random()
    cached = roll < shape.cache_hit_rate
    rate_limited = not cached and roll < shape.cache_hit_rate + shape.rate_limited_rate
    failed = not cached and not rate_limited and rng.random() < shape.error_rate
    status = 429 if rate_limited else (rng.choice((500, 502, 503)) if failed else 200)
    metrics: dict[str, Any] = {
        logpush.METRIC_DURATION_MS: 5 if cached else int(rng.lognormvariate(6.8, 0.6))
    }
    if status == 200:
        metrics[logpush.METRIC_TOKENS_IN] = tokens_in
        metrics[logpush.METRIC_TOKENS_OUT] = tokens_out
        if cache_read:
            metrics[logpush.METRIC_CACHE_READ_TOKENS] = cache_read
        cost = (tokens_in * price_in + tokens_out * price_out) / 1_000_000
        metrics[logpush.METRIC_COST] = 0 if cached else round(cost, 8)
    user = rng.randrange(shape.users) if users is None else users[rng.randrange(len(users))]
    metadata = {
        "team": _TEAMS[user % len(_TEAMS)],
        "user": f"user-{user:03d}",
    }
    agent = _AGENTS[user % len(_AGENTS)]
    if agent:
        metadata["agent"] = agent
    record: dict[str, Any] = {
        logpush.TIMESTAMP: when,
        logpush.GATEWAY: rng.choice(shape.gateways),
        logpush.PROVIDER: provider,
        logpush.MODEL: model,
        logpush.REQUESTED_MODEL: model,
        logpush.ENDPOINT: _ENDPOINTS.get(provider, "chat/completions"),
        logpush.STATUS_CODE: status,
        logpush.CACHED: cached,
        logpush.RATE_LIMITED: rate_limited,
        logpush.METRICS: metrics,
        logpush.METADATA: metadata if shape.plain_metadata else _encrypted(rng, 120),
        logpush.ROUTING_DECISION_ID: "",
        logpush.ROUTING_REASON: "",
    }
    if shape.encrypted_bodies:
        record[logpush.REQUEST_BODY] = _encrypted(rng, 180)
        record[logpush.RESPONSE_BODY] = _encrypted(rng, 240)
    if shape.gateway_fields:
        record.update(_gateway_fields(when, user, record))
    return record


_DLP_FINDINGS: Final = (
    (("EMAIL",), "redact"),
    (("EMAIL", "PHONE"), "redact"),
    (("AWS_KEY",), "flag"),
)
_GUARDRAIL_FINDINGS: Final = (("jailbreak",), ("pii_harvesting",), ("malicious_code",))


def _gateway_fields(when: datetime, user: int, record: dict[str, Any]) -> dict[str, Any]:
    """What aigw's gateway adds to a record, drawn from their own random stream (so the
    rest of the record is unchanged): about 3% DLP findings, 2% guardrail findings (in
    monitor mode), 2% failover attempts (``Step`` 1), and cache key hashes from a small
    set of prompts per model, so that identical requests repeat."""
    rng = random.Random(f"gateway:{when.isoformat()}:{user}")
    fields: dict[str, Any] = {
        logpush.LOG_ID: f"log-{rng.getrandbits(64):016x}",
        logpush.EVENT_ID: f"evt-{rng.getrandbits(48):012x}",
        logpush.ROUTE: f"{record['Gateway']}-{record['Endpoint'].split('/')[0]}",
        logpush.API_KEY_ID: f"key-{user % 6}",
        logpush.STEP: 1 if rng.random() < 0.02 else 0,
        logpush.CACHE_KEY_HASH: f"{rng.randrange(300):03d}-{record['Model']}",
    }
    roll = rng.random()
    if roll < 0.03:
        categories, action = _DLP_FINDINGS[rng.randrange(len(_DLP_FINDINGS))]
        fields[logpush.DLP_ACTION] = action
        fields[logpush.DLP_CATEGORIES] = list(categories)
    elif roll < 0.05:
        fields[logpush.GUARDRAIL_ACTION] = "monitor"
        fields[logpush.GUARDRAIL_CATEGORIES] = list(_GUARDRAIL_FINDINGS[rng.randrange(3)])
    return fields


def format_timestamp(when: datetime, timestamp_format: str) -> int | str:
    """A UTC datetime as Logpush writes it: ``unixnano``, ``unix`` or ``rfc3339``."""
    if timestamp_format == "unixnano":
        micros = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return micros * 1000
    if timestamp_format == "unix":
        return int(when.timestamp())
    if timestamp_format == "rfc3339":
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise ValueError(f"unknown timestamp format {timestamp_format!r}")


def write_logpush_files(
    root: Path,
    records: Iterable[dict[str, Any]],
    *,
    per_file: int = 1000,
    timestamp_format: str = "unixnano",
    seed: int = 7,
) -> list[Path]:
    """Write records as Logpush objects under ``root``; return the paths in order."""
    rng = random.Random(seed)
    paths: list[Path] = []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        first, last = batch[0][logpush.TIMESTAMP], batch[-1][logpush.TIMESTAMP]
        path = root / logpush.object_key("", first, last, f"{rng.getrandbits(32):08x}")
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for record in batch:
            out = dict(record, Timestamp=format_timestamp(record["Timestamp"], timestamp_format))
            lines.append(orjson.dumps(out))
        path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6, mtime=0))
        paths.append(path)
        batch.clear()

    for record in records:
        batch.append(record)
        if len(batch) >= per_file:
            flush()
    if batch:
        flush()
    return paths


_ULID_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def rest_record(record: dict[str, Any], rng: random.Random, *, step: int = 0) -> dict[str, Any]:
    """The same request as the Cloudflare logs REST API returns it (snake_case)."""
    metrics = record["Metrics"]
    metadata = record["Metadata"]
    return {
        "id": "".join(rng.choice(_ULID_ALPHABET) for _ in range(26)),
        "created_at": record["Timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "provider": record["Provider"],
        "model": record["Model"],
        "model_type": "chat",
        "path": record["Endpoint"],
        "request_type": "universal",
        "success": record["StatusCode"] < 400,
        "cached": record["Cached"],
        "status_code": record["StatusCode"],
        "duration": metrics["durationMs"],
        "tokens_in": metrics.get(logpush.METRIC_TOKENS_IN),
        "tokens_out": metrics.get(logpush.METRIC_TOKENS_OUT),
        "cost": metrics.get("cost"),
        "custom_cost": False,
        "metadata": orjson.dumps(metadata).decode() if isinstance(metadata, dict) else None,
        "step": step,
        "event_id": f"evt-{rng.getrandbits(48):012x}",
        "request_content_type": "application/json",
        "response_content_type": "application/json",
    }


def _encrypted(rng: random.Random, size: int) -> dict[str, str]:
    """An encrypted-field object shaped like Cloudflare's (random bytes, not real ciphertext)."""
    return {
        "type": "encrypted",
        "key": base64.b64encode(rng.randbytes(256)).decode(),
        "iv": base64.b64encode(rng.randbytes(12)).decode(),
        "data": base64.b64encode(rng.randbytes(size)).decode(),
    }
