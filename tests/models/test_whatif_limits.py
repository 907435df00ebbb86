"""The gateway's rate limits replayed: which requests each window would have refused, per
user, and the spend avoided, by hand; and the same decisions as the gateway's limiter."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import polars as pl
import pytest

from models import RateLimitRule, replay_rate_limits, unique_keys
from models.whatif import limits_kernel
from proxy.stores import Limit
from proxy.stores.ratelimit import MemoryRateLimiter
from tests.models.whatif_fixtures import HOUR, requests

S = timedelta(seconds=1)


def routed(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Costed requests on route ``chat`` (user ana, key k1, 10:00:00 unless said)."""
    return requests(*rows).with_columns(pl.lit("chat").alias("route"))


def per_user(limit: int, *, sliding: bool = False) -> RateLimitRule:
    return RateLimitRule("chat", "per-user", "metadata:user", "requests", limit, 60, sliding)


def with_user_column(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(pl.col("user").alias("metadata:user"))


def test_a_fixed_window_refuses_past_the_limit_until_the_next_window() -> None:
    """2 requests a minute per user: ana's third and fourth of 10:00 (10:00:20, 10:00:50)
    are refused ($2 avoided of $7); 10:01:00 opens a new window; bo has his own count."""
    frame = with_user_column(
        routed(
            {"cost_usd": 1.0},
            {"ts": HOUR + 10 * S, "cost_usd": 1.0},
            {"ts": HOUR + 20 * S, "cost_usd": 1.0},
            {"ts": HOUR + 30 * S, "user": "bo", "cost_usd": 2.0},
            {"ts": HOUR + 50 * S, "cost_usd": 1.0},
            {"ts": HOUR + 60 * S, "cost_usd": 1.0},
        )
    )
    result = replay_rate_limits(frame, [per_user(2)])
    assert result.whatif.table.rows() == [("chat", 6, 2, 7.0, 5.0, 2.0, 0, 1, HOUR + 20 * S)]
    assert result.whatif.totals()["saving_usd"] == 2.0
    assert result.users.rows() == [("chat", "ana", 2, 0, 2.0)]
    assert result.windows.rows() == [("chat", "per-user", "ana", HOUR, 2, 0, 2.0)]


def test_a_sliding_window_weighs_the_previous_window() -> None:
    """2 a minute, sliding: after 10:00:00 and 10:00:30, at 10:01:15 the estimate is
    2 x 0.75 + 0 + 1 = 2.5 (refused); at 10:01:45 it is 2 x 0.25 + 1 = 1.5 (allowed).
    A fixed window allows both."""
    frame = with_user_column(
        routed(
            {"cost_usd": 1.0},
            {"ts": HOUR + 30 * S, "cost_usd": 1.0},
            {"ts": HOUR + 75 * S, "cost_usd": 1.0},
            {"ts": HOUR + 105 * S, "cost_usd": 1.0},
        )
    )
    sliding = replay_rate_limits(frame, [per_user(2, sliding=True)])
    assert sliding.windows.rows() == [("chat", "per-user", "ana", HOUR + 60 * S, 1, 0, 1.0)]
    fixed = replay_rate_limits(frame, [per_user(2)])
    assert fixed.whatif.table["affected_requests"].to_list() == [0]
    assert fixed.windows.is_empty()


def test_limits_are_charged_all_or_nothing_and_tokens_after_the_call() -> None:
    """1 request a minute per user and 1,000 tokens a minute per key: ana's 600-token call
    passes (600 charged), her second is refused by the user limit and charges no tokens, so
    bo's 400 input tokens fit exactly (1,000); his next call (1 token) is refused by the
    key's tokens."""
    frame = with_user_column(
        routed(
            {"tokens_in": 600, "cost_usd": 1.0},
            {"ts": HOUR + 5 * S, "tokens_in": 100, "cost_usd": 0.5},
            {"ts": HOUR + 10 * S, "user": "bo", "tokens_in": 400, "cost_usd": 0.75},
            {"ts": HOUR + 20 * S, "user": "cy", "tokens_in": 1, "cost_usd": 0.25},
        )
    )
    key_tokens = RateLimitRule("chat", "key-tokens", "key", "tokens", 1000, 60)
    result = replay_rate_limits(frame, [per_user(1), key_tokens])
    assert result.windows.rows() == [
        ("chat", "key-tokens", "k1", HOUR, 1, 0, 0.25),
        ("chat", "per-user", "ana", HOUR, 1, 0, 0.5),
    ]
    assert result.users.rows() == [("chat", "ana", 1, 0, 0.5), ("chat", "cy", 1, 0, 0.25)]


def test_failover_attempts_are_one_request_and_other_routes_are_out_of_scope() -> None:
    """One request a minute: the second request's two attempts (event e2: a failed primary
    and a $1 fallback) are refused together; a request of another route is not counted."""
    frame = with_user_column(
        routed(
            {"cost_usd": 1.0},
            {"ts": HOUR + S, "status_code": 500, "cost_usd": 0.0},
            {"ts": HOUR + 2 * S, "cost_usd": 1.0},
            {"ts": HOUR + 3 * S, "cost_usd": 4.0},
        ).with_columns(
            pl.Series("event_id", ["e1", "e2", "e2", "e3"]),
            pl.Series("step", [0, 0, 1, 0]),
            pl.Series("route", ["chat", "chat", "chat", "embeddings"]),
        )
    )
    result = replay_rate_limits(frame, [per_user(1)])
    assert result.whatif.table.rows() == [("chat", 2, 1, 2.0, 1.0, 1.0, 0, 1, HOUR + S)]


async def _gateway(rows: list[dict[str, Any]], rules: list[RateLimitRule]) -> list[bool]:
    """The gateway's decisions: acquire the route's limits with the input tokens as the
    estimate, then settle the output tokens at the same time."""
    limiter = MemoryRateLimiter()
    allowed = []
    for row in rows:
        limits = [
            Limit(
                f"{rule.name}:{row[rule.per]}", rule.unit, rule.limit, rule.window_s, rule.sliding
            )  # type: ignore[arg-type]
            for rule in rules
        ]
        now = row["ts"].timestamp()
        cost = {"requests": 1, "tokens": row["tokens_in"]}
        decision = await limiter.acquire("route:chat", limits, cost, now)
        if decision.allowed:
            await limiter.settle("route:chat", limits, row["tokens_out"], now)
        allowed.append(decision.allowed)
    return allowed


@pytest.mark.parametrize("compiled", [True, False])
def test_the_replay_decides_as_the_gateways_limiter(
    compiled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """400 requests of 3 users over 10 minutes under a sliding request limit and a fixed
    token limit: the same requests are refused as by proxy.stores' MemoryRateLimiter,
    by the compiled loop and by its Python source run as is."""
    if not compiled:
        monkeypatch.setattr(limits_kernel, "_compiled", dict(limits_kernel.SOURCES))
    pick = random.Random(7)  # noqa: S311 - reproducible traffic, not key material
    rows = [
        {
            "ts": HOUR + timedelta(seconds=pick.uniform(0, 600)),
            "user": pick.choice(["ana", "bo", "cy"]),
            "tokens_in": pick.randint(0, 300),
            "tokens_out": pick.randint(0, 200),
            "cost_usd": 1.0,
        }
        for _ in range(400)
    ]
    rows.sort(key=lambda row: row["ts"])
    rules = [
        RateLimitRule("chat", "per-user", "metadata:user", "requests", 12, 60, sliding=True),
        RateLimitRule("chat", "per-user-tokens", "metadata:user", "tokens", 3000, 30),
    ]
    frame = with_user_column(routed(*rows))
    for row in rows:
        row["metadata:user"] = row["user"]
    expected = asyncio.run(_gateway(rows, rules))
    result = replay_rate_limits(frame, rules)
    per_user_refused: dict[str, int] = {}
    for row, allowed in zip(rows, expected, strict=True):
        if not allowed:
            per_user_refused[row["user"]] = per_user_refused.get(row["user"], 0) + 1
    shown = dict(result.users.select("user", "refused_requests").rows())
    assert shown == per_user_refused
    refused = result.whatif.table["affected_requests"][0]
    assert refused == expected.count(False) == 106
    assert result.windows["refused_requests"].sum() == refused


def test_callers_keys_replace_log_ids_and_must_not_repeat() -> None:
    """Keys given as ``_request`` (a warehouse read's 64-bit hashes) and no log ids: the
    same decisions as by log id, the rows' tie order as given (10:00:00 "r1" before "r0"
    in the rows: "r1" is the allowed one); a key given twice is refused, not folded."""
    frame = with_user_column(
        routed(
            {"cost_usd": 1.0},
            {"cost_usd": 2.0},
            {"ts": HOUR + 10 * S, "cost_usd": 4.0},
        )
    ).collect()
    swapped = pl.concat([frame[1:2], frame[0:1], frame[2:]])
    keyed = swapped.with_columns(pl.Series("_request", [7, 3, 11], dtype=pl.UInt64))
    result = replay_rate_limits(keyed.drop("log_id").lazy(), [per_user(1)])
    assert result.whatif.table.rows() == [("chat", 3, 2, 7.0, 2.0, 5.0, 0, 1, HOUR)]
    by_log_id = replay_rate_limits(frame.lazy(), [per_user(1)])
    assert by_log_id.whatif.table.rows() == [("chat", 3, 2, 7.0, 1.0, 6.0, 0, 1, HOUR)]
    repeated = keyed.with_columns(pl.Series("_request", [7, 3, 7], dtype=pl.UInt64))
    with pytest.raises(ValueError, match="_request repeats"):
        replay_rate_limits(repeated.drop("log_id").lazy(), [per_user(1)])


def test_unique_keys_compares_hashes_then_the_keys() -> None:
    assert unique_keys(pl.Series([5, 1, 9], dtype=pl.UInt64))
    assert not unique_keys(pl.Series([5, 1, 5], dtype=pl.UInt64))
    assert unique_keys(pl.Series(["a", "b", "c"]))
    assert not unique_keys(pl.Series(["a", "b", "a"]))
    assert unique_keys(pl.Series([], dtype=pl.String))
