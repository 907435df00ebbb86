"""The rate-limit replay's answer tables, summed from the loop's arrays, equal the plain
grouping of its per-request decisions (``limit_decisions``) on random traffic of three
routes: limits per user and per key, fixed and sliding, requests and tokens, budgets that
refuse and that reroute, null users, and with the compiled loops and their Python."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from models import RateLimitRule, RouteBudget, limit_decisions, replay_rate_limits
from models.whatif import limits_kernel
from models.whatif.route_budgets import priced_reroutes
from tests.models.whatif_fixtures import HOUR, price, prices, requests

SMALL = prices(price("openai", "small", 1, 2))
RULES = [
    RateLimitRule("chat", "per-user", "metadata:user", "requests", 3, 60, sliding=True),
    RateLimitRule("chat", "per-key-tokens", "key", "tokens", 400, 30),
    RateLimitRule("batch", "per-user", "metadata:user", "requests", 2, 120),
    RateLimitRule("code", "per-key", "key", "requests", 2, 45, sliding=True),
]
BUDGETS = [
    RouteBudget("batch", 0.6, "day", "metadata:user", "reject"),
    RouteBudget("code", 0.8, "day", "key", "reroute", "openai/small"),
]


def traffic(seed: int, count: int) -> pl.LazyFrame:
    """``count`` random requests over 20 minutes on the three routes and one without
    limits: 4 users (and none), 3 keys, tokens and costs at random (a tenth free cache
    hits)."""
    pick = random.Random(seed)  # noqa: S311 - reproducible traffic, not key material
    rows: list[dict[str, Any]] = []
    for index in range(count):
        cached = pick.random() < 0.1
        rows.append(
            {
                "log_id": f"r{index}",
                "ts": HOUR + timedelta(seconds=pick.uniform(0, 1200)),
                "user": pick.choice(["ana", "bo", "cy", "di", None]),
                "api_key": pick.choice(["k1", "k2", "k3"]),
                "tokens_in": pick.randint(0, 400),
                "tokens_out": pick.randint(0, 300),
                "cost_usd": 0.0 if cached else round(pick.uniform(0, 0.1), 6),
                "cached": cached,
                "cost_source": "free" if cached else "catalog",
            }
        )
    route = pl.Series([pick.choice(["chat", "batch", "code", "other"]) for _ in rows])
    return requests(*rows).with_columns(route.alias("route"), pl.col("user").alias("metadata:user"))


def grouped(frame: pl.LazyFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The three tables by grouping ``limit_decisions``' rows (reroutes priced by
    ``priced_reroutes``, as the replay prices them)."""
    decided = limit_decisions(frame, RULES, BUDGETS).with_columns(
        pl.col("route", "limit", "subject").cast(pl.String)
    )
    moved, _ = priced_reroutes(decided.filter(pl.col("rerouted")), [BUDGETS[1]], overrides=SMALL)
    decided = decided.join(
        moved.select("log_id", "projected_cost_usd"), on="log_id", how="left"
    ).with_columns(
        pl.when(pl.col("limit").is_not_null() & ~pl.col("rerouted"))
        .then(0.0)
        .otherwise(pl.coalesce("projected_cost_usd", "cost_usd"))
        .alias("after"),
        (pl.col("limit").is_not_null() & ~pl.col("rerouted")).alias("refused"),
    )
    decided = decided.with_columns((pl.col("cost_usd") - pl.col("after")).alias("avoided"))
    refused = pl.col("refused")
    table = (
        decided.group_by("route")
        .agg(
            pl.len().cast(pl.Int64).alias("requests"),
            pl.col("limit").is_not_null().sum().cast(pl.Int64).alias("affected_requests"),
            pl.col("cost_usd").sum().alias("current_cost_usd"),
            pl.col("after").sum().alias("projected_cost_usd"),
            pl.col("rerouted").sum().cast(pl.Int64).alias("rerouted_requests"),
            pl.col("user").filter(refused).n_unique().cast(pl.Int64).alias("refused_users"),
            pl.col("ts").filter(refused).min().alias("first_refused"),
        )
        .sort("route")
    )
    counted = [
        refused.sum().cast(pl.Int64).alias("refused_requests"),
        pl.col("rerouted").sum().cast(pl.Int64).alias("rerouted_requests"),
        pl.col("avoided").sum().alias("avoided_usd"),
    ]
    affected = decided.filter(pl.col("limit").is_not_null())
    users = affected.group_by("route", "user").agg(counted).sort("route", "user", nulls_last=True)
    windows = (
        affected.group_by("route", "limit", "subject", "window_start")
        .agg(counted)
        .sort("route", "limit", "subject", "window_start")
    )
    return table, users, windows


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_tables_are_the_sums_of_the_per_request_decisions(
    seed: int, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not compiled:
        monkeypatch.setattr(limits_kernel, "_compiled", dict(limits_kernel.SOURCES))
    frame = traffic(seed, 600)
    table, users, windows = grouped(frame)
    result = replay_rate_limits(frame, RULES, BUDGETS, overrides=SMALL)
    # every kind of refusal happens: rate limits, a budget's refusals and reroutes
    assert set(windows["limit"]) == {"per-user", "per-key-tokens", "per-key", "budget"}
    assert windows["rerouted_requests"].sum() > 0 and users["user"].null_count() > 0
    expected = result.whatif.table.drop("saving_usd").sort("route")
    assert_frame_equal(expected, table, check_exact=False)
    assert_frame_equal(
        result.users.sort("route", "user", nulls_last=True), users, check_exact=False
    )
    assert_frame_equal(result.windows, windows, check_exact=False)


def _at(*seconds: int) -> pl.LazyFrame:
    """Requests of route chat at ``seconds`` after 10:00, one cent each."""
    rows = [
        {
            "log_id": f"r{index}",
            "ts": HOUR + timedelta(seconds=at),
            "user": "ana",
            "api_key": "k1",
            "tokens_in": 1,
            "tokens_out": 1,
            "cost_usd": 0.01,
            "cached": False,
            "cost_source": "catalog",
        }
        for index, at in enumerate(seconds)
    ]
    return requests(*rows).with_columns(pl.lit("chat").alias("route"))


@pytest.mark.parametrize("shared", ["two limits", "a limit called budget"])
def test_refusers_of_one_name_make_one_row_a_subject_and_window(shared: str) -> None:
    """The gateway lets two limits of a route share a name, or a limit be called
    ``budget``: their refusals of one subject in windows that start at the same time
    are one row of ``windows`` (its keys: route, limit, subject, window start), as a
    grouping of the decisions gives."""
    if shared == "two limits":  # 1 a minute refuses at 10:00:01, 2 an hour at 10:02:01
        rules = [
            RateLimitRule("chat", "a", "route", "requests", 1, 60),
            RateLimitRule("chat", "a", "route", "requests", 2, 3600),
        ]
        frame, budgets, name, start = _at(0, 1, 61, 62, 121), [], "a", HOUR
    else:  # the budget refuses the third (00:00's day), the limit (00:00's day) the fourth
        rules = [RateLimitRule("chat", "budget", "route", "requests", 3, 86400)]
        budgets = [RouteBudget("chat", 0.015, "day", "route", "reject")]
        frame, name, start = _at(0, 1, 2, 3), "budget", HOUR.replace(hour=0)
    windows = replay_rate_limits(frame, rules, budgets).windows
    first = windows.row(0, named=True)
    assert (first["limit"], first["subject"], first["window_start"]) == (name, "chat", start)
    assert (first["refused_requests"], first["avoided_usd"]) == (2, pytest.approx(0.02))
    assert not windows.select("route", "limit", "subject", "window_start").is_duplicated().any()


def test_the_route_cannot_be_the_user_column() -> None:
    """The users table is keyed by route and user: naming the route as the user column
    would overwrite one with the other, so it is refused."""
    with pytest.raises(ValueError, match="user column cannot be the route"):
        replay_rate_limits(_at(0, 1), [RULES[0]], user="route")
