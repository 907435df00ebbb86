"""Realistic synthetic Logpush traffic, for the demo, tests and benchmarks.

Records follow Cloudflare's ``ai_gateway_events`` dataset (about 1 KB each with
encrypted bodies, as Logpush writes them) and are written the way Logpush lays
out objects: ``<root>/<YYYYMMDD>/<start>_<end>_<random>.log.gz``. Output is a
pure function of the seed.
"""

from __future__ import annotations

import base64
import gzip
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

__all__ = [
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
_TEAMS: Final = ("search", "support", "platform", "growth")
_AGENTS: Final = ("triage-bot", "code-review", "summarizer", "sql-helper", None)
_ENDPOINTS: Final = {"anthropic": "v1/messages"}


@dataclass(frozen=True, slots=True)
class TrafficShape:
    """Knobs of the generated traffic (rates are fractions of requests)."""

    start: datetime = datetime(2026, 4, 18, tzinfo=UTC)
    requests_per_minute: float = 400.0
    gateways: tuple[str, ...] = ("prod", "staging")
    users: int = 40
    cache_hit_rate: float = 0.12
    error_rate: float = 0.02
    rate_limited_rate: float = 0.01
    encrypted_bodies: bool = True
    plain_metadata: bool = True


def synthetic_records(
    count: int, *, seed: int = 7, shape: TrafficShape | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` Logpush records in time order; ``Timestamp`` is a UTC datetime."""
    shape = shape or TrafficShape()
    rng = random.Random(seed)
    weights = [m[4] for m in _MODELS]
    step = timedelta(minutes=1) / shape.requests_per_minute
    when = shape.start
    for _ in range(count):
        when += step * rng.expovariate(1.0)
        provider, model, price_in, price_out, _w = rng.choices(_MODELS, weights)[0]
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
        metrics: dict[str, Any] = {"durationMs": 5 if cached else int(rng.lognormvariate(6.8, 0.6))}
        if status == 200:
            metrics["tokensIn"] = tokens_in
            metrics["tokensOut"] = tokens_out
            if cache_read:
                metrics["cacheReadTokens"] = cache_read
            cost = (tokens_in * price_in + tokens_out * price_out) / 1_000_000
            metrics["cost"] = 0 if cached else round(cost, 8)
        user = rng.randrange(shape.users)
        metadata = {
            "team": _TEAMS[user % len(_TEAMS)],
            "user": f"user-{user:03d}",
        }
        agent = _AGENTS[user % len(_AGENTS)]
        if agent:
            metadata["agent"] = agent
        record: dict[str, Any] = {
            "Timestamp": when,
            "Gateway": rng.choice(shape.gateways),
            "Provider": provider,
            "Model": model,
            "RequestedModel": model,
            "Endpoint": _ENDPOINTS.get(provider, "chat/completions"),
            "StatusCode": status,
            "Cached": cached,
            "RateLimited": rate_limited,
            "Metrics": metrics,
            "Metadata": metadata if shape.plain_metadata else _encrypted(rng, 120),
            "RoutingDecisionID": "",
            "RoutingReason": "",
        }
        if shape.encrypted_bodies:
            record["RequestBody"] = _encrypted(rng, 180)
            record["ResponseBody"] = _encrypted(rng, 240)
        yield record


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
        first, last = batch[0]["Timestamp"], batch[-1]["Timestamp"]
        name = f"{first:%Y%m%dT%H%M%SZ}_{last:%Y%m%dT%H%M%SZ}_{rng.getrandbits(32):08x}.log.gz"
        path = root / f"{first:%Y%m%d}" / name
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
        "tokens_in": metrics.get("tokensIn"),
        "tokens_out": metrics.get("tokensOut"),
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
