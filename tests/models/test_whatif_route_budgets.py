"""The gateway's route budgets replayed with its rate limits: refused and rerouted requests,
the spend avoided and the cheaper model's price, by hand; and the same decisions as the
gateway's own pipeline (its rate limits, then its budget, then the spend of the answer)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from core.errors import ConfigError
from models import RateLimitRule, RouteBudget, limit_decisions, replay_rate_limits
from models.request_pricing import Usage
from models.whatif import limits_kernel
from proxy.config import load_gateway_config
from proxy.errors import RequestRefused
from proxy.exchange import Answer
from proxy.pipeline import Gateway
from proxy.services import Services
from proxy.stores.counters import MemorySpendCounter
from proxy.stores.ratelimit import MemoryRateLimiter
from tests.models.whatif_fixtures import HOUR, M, price, prices, requests

S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
DAY_START = datetime(2026, 4, 18, tzinfo=UTC)
SMALL = prices(price("openai", "small", 1, 2))  # USD per million tokens: $1 in, $2 out


def routed(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Costed requests on route ``chat`` (user ana, key k1, openai/big, 10:00 unless said),
    with the user as ``metadata:user``."""
    return requests(*rows).with_columns(
        pl.lit("chat").alias("route"), pl.col("user").alias("metadata:user")
    )


def test_a_reject_budget_refuses_the_rest_of_the_day_once_spent() -> None:
    """$2 a day per user: ana spends $1.50 then $1 (allowed: $1.50 < $2), so her 10:30 $0.50
    is refused; bo's $3 passes (his first) and his 10:40 $1 is refused; the next UTC day
    ana starts again. $1.50 avoided of $8."""
    frame = routed(
        {"cost_usd": 1.5},
        {"ts": HOUR + 10 * MIN, "cost_usd": 1.0},
        {"ts": HOUR + 20 * MIN, "user": "bo", "cost_usd": 3.0},
        {"ts": HOUR + 30 * MIN, "cost_usd": 0.5},
        {"ts": HOUR + 40 * MIN, "user": "bo", "cost_usd": 1.0},
        {"ts": HOUR + 14 * 60 * MIN + 5 * MIN, "cost_usd": 1.0},  # 00:05 the next day
    )
    budget = RouteBudget("chat", 2.0, "day", "metadata:user")
    result = replay_rate_limits(frame, [], [budget])
    assert result.whatif.change == "budgets: chat ($2 a day per metadata:user)"
    assert result.whatif.table.rows() == [
        ("chat", 6, 2, 8.0, 6.5, 1.5, 0, 2, HOUR + 30 * MIN),
    ]
    assert result.users.rows() == [("chat", "ana", 1, 0, 0.5), ("chat", "bo", 1, 0, 1.0)]
    assert result.windows.rows() == [
        ("chat", "budget", "ana", DAY_START, 1, 0, 0.5),
        ("chat", "budget", "bo", DAY_START, 1, 0, 1.0),
    ]


def test_the_spend_before_the_window_counts_in_its_first_period() -> None:
    """ana spent $1 at 08:00, before the window: her 10:00 $1.50 passes ($1 < $2) and her
    10:10 $1 is refused ($2.50 spent); a month budget counts from the 1st."""
    frame = routed({"cost_usd": 1.5}, {"ts": HOUR + 10 * MIN, "cost_usd": 1.0})
    earlier = routed({"ts": HOUR - 2 * 60 * MIN, "cost_usd": 1.0})
    daily = RouteBudget("chat", 2.0, "day", "metadata:user")
    result = replay_rate_limits(frame, [], [daily], earlier=earlier)
    assert result.windows.rows() == [("chat", "budget", "ana", DAY_START, 1, 0, 1.0)]
    monthly = RouteBudget("chat", 1.0, "month", "metadata:user")
    early = routed({"ts": datetime(2026, 4, 1, tzinfo=UTC), "cost_usd": 1.0})
    result = replay_rate_limits(frame, [], [monthly], earlier=early)
    assert result.windows.rows() == [
        ("chat", "budget", "ana", datetime(2026, 4, 1, tzinfo=UTC), 2, 0, 2.5)
    ]


def test_a_reroute_budget_prices_the_rest_at_the_cheaper_model() -> None:
    """$1 a day per key, then openai/small ($1 in, $2 out per million): k1's first $1
    request passes; its second (500,000 in, 125,000 out; $2 on big) costs $0.50 + $0.25 =
    $0.75 rerouted; its cache hit is rerouted and stays free; k2's $0.25 passes. $3.25 ->
    $2.00: $1.25 saved on 2 rerouted requests, none refused."""
    frame = routed(
        {"cost_usd": 1.0},
        {"ts": HOUR + 5 * MIN, "tokens_in": M // 2, "tokens_out": M // 8, "cost_usd": 2.0},
        {"ts": HOUR + 6 * MIN, "cached": True, "cost_source": "free", "tokens_in": 10},
        {"ts": HOUR + 7 * MIN, "api_key": "k2", "cost_usd": 0.25},
    )
    budget = RouteBudget("chat", 1.0, "day", "key", "reroute", "openai/small")
    result = replay_rate_limits(frame, [], [budget], overrides=SMALL)
    assert result.whatif.table.rows() == [("chat", 4, 2, 3.25, 2.0, 1.25, 2, 0, None)]
    assert result.users.rows() == [("chat", "ana", 0, 2, 1.25)]
    assert result.windows.rows() == [("chat", "budget", "k1", DAY_START, 0, 2, 1.25)]
    assert (
        "rerouted requests not priced from tokens (response-cache hits, models without a "
        "price) keep their logged cost: 1"
    ) in result.whatif.notes


def test_a_reroute_across_provider_families_needs_a_token_ratio() -> None:
    """An anthropic request rerouted to openai/small is refused without a ratio; with 2
    target tokens per source token its 250,000 in and 125,000 out cost $0.50 + $0.50."""
    frame = routed(
        {"provider": "anthropic", "model": "claude", "cost_usd": 1.0},
        {"ts": HOUR + MIN, "provider": "anthropic", "model": "claude", "cost_usd": 3.0,
         "tokens_in": M // 4, "tokens_out": M // 8},
    )  # fmt: skip
    budget = RouteBudget("chat", 1.0, "day", "route", "reroute", "openai/small")
    with pytest.raises(ConfigError, match="across provider families"):
        replay_rate_limits(frame, [], [budget], overrides=SMALL)
    result = replay_rate_limits(frame, [], [budget], overrides=SMALL, cross_family_ratio=2.0)
    assert result.whatif.table.rows() == [("chat", 2, 1, 4.0, 2.0, 2.0, 1, 0, None)]


def test_a_provider_priced_as_another_is_in_that_providers_family() -> None:
    """Requests logged on the gateway's provider ``backup`` (priced as openai, its
    catalog_name), rerouted to backup/small: the same family, no ratio needed; the second
    request's 250,000 in and 125,000 out cost $0.25 + $0.25 at small's prices. Unmapped,
    ``backup`` is a family of its own: the error names the configured reroute."""
    frame = routed(
        {"provider": "backup", "model": "big", "cost_usd": 1.0},
        {"ts": HOUR + MIN, "provider": "backup", "model": "big", "cost_usd": 3.0,
         "tokens_in": M // 4, "tokens_out": M // 8},
    )  # fmt: skip
    budget = RouteBudget("chat", 1.0, "day", "route", "reroute", "backup/small", "openai")
    result = replay_rate_limits(
        frame, [], [budget], overrides=SMALL, priced_as={"backup": "openai"}
    )
    assert result.whatif.table.rows() == [("chat", 2, 1, 4.0, 1.5, 2.5, 1, 0, None)]
    with pytest.raises(ConfigError, match="reroutes backup/big to backup/small, across"):
        replay_rate_limits(frame, [], [budget], overrides=SMALL)


def test_a_request_refused_by_the_budget_still_uses_up_the_rate_limit() -> None:
    """3 requests a minute on the route and $1 a day per user: ana's first request spends
    her budget; her next two pass the limit and are refused by the budget, but the gateway
    charged the limit first: bo's 10:00:30 request is refused by the route's limit; at
    10:01 bo passes both. A request refused by a limit never reaches the budget."""
    frame = routed(
        {"cost_usd": 1.0},
        {"ts": HOUR + 10 * S, "cost_usd": 1.0},
        {"ts": HOUR + 20 * S, "cost_usd": 1.0},
        {"ts": HOUR + 30 * S, "user": "bo", "cost_usd": 0.5},
        {"ts": HOUR + 60 * S, "user": "bo", "cost_usd": 0.5},
    )
    limit = RateLimitRule("chat", "per-route", "route", "requests", 3, 60)
    budget = RouteBudget("chat", 1.0, "day", "metadata:user")
    result = replay_rate_limits(frame, [limit], [budget])
    assert result.whatif.change == (
        "rate limits: chat.per-route; budgets: chat ($1 a day per metadata:user)"
    )
    assert result.windows.rows() == [
        ("chat", "budget", "ana", DAY_START, 2, 0, 2.0),
        ("chat", "per-route", "chat", HOUR, 1, 0, 0.5),
    ]
    assert result.users.rows() == [("chat", "ana", 2, 0, 2.0), ("chat", "bo", 1, 0, 0.5)]
    assert result.whatif.table.rows() == [("chat", 5, 3, 4.0, 1.5, 2.5, 0, 2, HOUR + 10 * S)]


GATEWAY = """\
[auth]
required = false

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9"

[routes.chat]
match = ["*"]
provider = "openai"
rate_limits = [
    {{ name = "per-user", per = "metadata:user", unit = "requests", limit = 6, window_s = 60, sliding = true }},
    {{ name = "per-user-tokens", per = "metadata:user", unit = "tokens", limit = 1500, window_s = 30 }},
]
budget = {{ usd = 3.0, period = "day", per = "metadata:user", action = "{action}", reroute = "openai/small" }}
"""  # noqa: E501 - TOML inline tables are one line


async def _gateway(tmp_path: Path, action: str, rows: list[dict[str, Any]]) -> list[str]:
    """The gateway pipeline's own decisions: its ``_limits`` (rate limits, then the budget)
    and, for a request let through, its ``_account`` (settle the tokens, add the spend)."""
    path = tmp_path / "gateway.toml"
    path.write_text(GATEWAY.format(action=action))
    config = load_gateway_config(path, {})
    services = Services(
        config=config,
        upstream=None,  # type: ignore[arg-type] - never called by _limits and _account
        logs=None,  # type: ignore[arg-type]
        cache=None,  # type: ignore[arg-type]
        limiter=MemoryRateLimiter(),
        spend=MemorySpendCounter(),
        pricer=None,  # type: ignore[arg-type]
        metrics=None,  # type: ignore[arg-type]
    )
    gateway = Gateway(services)
    route = config.routes[0]
    outcomes = []
    for row in rows:
        ts_ns = int(row["ts"].timestamp() * 1e9)
        try:
            charged, budget, _, reason = await gateway._limits(  # the rule itself
                SimpleNamespace(client_ip=None),  # type: ignore[arg-type]
                route,
                None,
                {"user": row["user"]},
                row["tokens_in"],
                [],
                SimpleNamespace(ts_ns=ts_ns),  # type: ignore[arg-type]
            )
        except RequestRefused as err:
            outcomes.append(err.code)
            continue
        cost = row["cost_usd"] / 10 if reason else row["cost_usd"]
        answer = Answer(Usage(row["tokens_in"], row["tokens_out"]), cost)
        await gateway._account(answer, charged, budget, ts_ns / 1e9)
        outcomes.append("rerouted" if reason else "allowed")
    return outcomes


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("action", ["reject", "reroute"])
def test_the_replay_decides_as_the_gateways_pipeline(
    tmp_path: Path,
    action: str,
    compiled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """400 requests of 3 users over 20 minutes across midnight UTC, under a sliding request
    limit, a fixed token limit and a $3 daily budget per user: the same requests are
    allowed, rate limited, refused by the budget or rerouted as by the gateway's pipeline,
    by the compiled loop and by its Python source run as is."""
    if not compiled:
        monkeypatch.setattr(limits_kernel, "_compiled", dict(limits_kernel.SOURCES))
    pick = random.Random(11)  # noqa: S311 - reproducible traffic, not key material
    midnight = datetime(2026, 4, 19, tzinfo=UTC)
    rows = sorted(
        (
            {
                "ts": midnight + timedelta(seconds=pick.uniform(-600, 600)),
                "user": pick.choice(["ana", "bo", "cy"]),
                "tokens_in": pick.randint(0, 300),
                "tokens_out": pick.randint(0, 200),
                "cost_usd": pick.uniform(0, 0.2),
            }
            for _ in range(400)
        ),
        key=lambda row: row["ts"],
    )
    expected = asyncio.run(_gateway(tmp_path, action, rows))
    rules = [
        RateLimitRule("chat", "per-user", "metadata:user", "requests", 6, 60, sliding=True),
        RateLimitRule("chat", "per-user-tokens", "metadata:user", "tokens", 1500, 30),
    ]
    budget = RouteBudget("chat", 3.0, "day", "metadata:user", action, "openai/small")
    decided = limit_decisions(routed(*rows), rules, [budget])
    codes = {"budget": "budget_exceeded", None: "allowed"}
    replayed = [
        "rerouted" if rerouted else codes.get(limit, "rate_limited")
        for limit, rerouted in decided.select("limit", "rerouted").rows()
    ]
    assert replayed == expected
    counts = {outcome: expected.count(outcome) for outcome in set(expected)}
    spent = "rerouted" if action == "reroute" else "budget_exceeded"
    assert counts == {"allowed": 165, "rate_limited": 133, spent: 102}


def test_a_spend_that_is_not_a_number_is_over_the_budget() -> None:
    """A request whose cost is NaN (a broken price) leaves the route's spend unknown: a
    request passes only while the spend is below the budget, so the next ones are refused
    (not let through for ever)."""
    frame = routed(
        {"cost_usd": float("nan")},
        {"ts": HOUR + timedelta(seconds=1), "cost_usd": 1.0},
        {"ts": HOUR + timedelta(seconds=2), "cost_usd": 1.0},
    )
    decided = limit_decisions(frame, [], [RouteBudget("chat", 0.5, per="route")])
    assert decided["limit"].to_list() == [None, "budget", "budget"]
