"""Showback statements on small rollups, every number computed by hand: the allocation
rules, cents that add up to the month's total, lines that add up to each team's own
cost, last month's change and the budgets shown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from core.errors import ConfigError
from models import AllocationRule, TeamBudget, allocation_rule, build_statements, month_window

UTC_US = pl.Datetime("us", "UTC")
SCHEMA = {
    "hour": UTC_US,
    "team": pl.String,
    "provider": pl.String,
    "model": pl.String,
    "user": pl.String,
    "agent": pl.String,
    "requests": pl.Int64,
    "cost_usd": pl.Float64,
    "saved_usd": pl.Float64,
    "unknown_cost_requests": pl.Int64,
}
NOV = datetime(2026, 11, 3, tzinfo=UTC)
OCT = datetime(2026, 10, 20, tzinfo=UTC)


def row(
    team: str | None,
    cost: float,
    *,
    at: datetime = NOV,
    requests: int = 1,
    model: str = "gpt-4o-mini",
    user: str | None = None,
    agent: str | None = None,
    saved: float | None = None,
    unknown: int = 0,
) -> dict[str, Any]:
    provider = "anthropic" if model.startswith("claude") else "openai"
    return {
        "hour": at,
        "team": team,
        "provider": provider,
        "model": model,
        "user": user,
        "agent": agent,
        "requests": requests,
        "cost_usd": cost,
        "saved_usd": saved,
        "unknown_cost_requests": unknown,
    }


def rollup(*rows: dict[str, Any]) -> pl.LazyFrame:
    return pl.DataFrame(list(rows), schema=SCHEMA).lazy()


# November: search $10 (two lines), support $20, platform $10, $8 without a team; total $48.
# October: search $5 only. A row of December must not count.
MONTH = rollup(
    row("search", 6.0, requests=2, user="ana", agent="rag"),
    row("search", 4.0, model="claude-sonnet-4", user="bo", agent="rag"),
    row("support", 20.0, requests=3, user="cy", agent="bot", saved=1.5),
    row("platform", 10.0, model="claude-sonnet-4", user="dee"),
    row(None, 5.0, requests=2),
    row("", 3.0),  # an empty team is no team
    row("search", 5.0, at=OCT),
    row("search", 99.0, at=datetime(2026, 12, 1, tzinfo=UTC)),
)


def summary_of(rule: AllocationRule, rows: pl.LazyFrame = MONTH) -> list[tuple[Any, ...]]:
    """Each statement's money (exact cents) and its shares (to 12 digits: Polars divides a
    column by a multiplication, a last binary digit away from Python's division)."""
    statements = build_statements(rows, month="2026-11", rule=rule)
    return statements.summary.select(
        "team",
        "requests",
        "direct_usd",
        "allocated_usd",
        "total_usd",
        pl.col("share", "allocated_share").round(12),
    ).rows()


def r(ratio: float) -> float:
    return round(ratio, 12)


def test_proportional_shares_the_spend_without_a_team_by_own_cost() -> None:
    # $8 without a team over $40 of own cost: 20 cents a dollar.
    # search 10 + 8*10/40 = 12; support 20 + 8*20/40 = 24; platform 10 + 2 = 12; sum 48.
    statements = build_statements(MONTH, month="2026-11", rule=AllocationRule("proportional"))
    assert statements.applied == "proportional"
    assert statements.total_usd == 48.0
    assert statements.unattributed_usd == 8.0
    assert summary_of(AllocationRule("proportional")) == [
        ("support", 3, 20.0, 4.0, 24.0, 0.5, 0.5),
        ("platform", 1, 10.0, 2.0, 12.0, 0.25, 0.25),
        ("search", 3, 10.0, 2.0, 12.0, 0.25, 0.25),
    ]


def test_owner_takes_all_of_it_and_gets_a_statement_without_own_spend() -> None:
    assert summary_of(AllocationRule("owner", "platform")) == [
        ("support", 3, 20.0, 0.0, 20.0, r(20 / 48), 0.0),
        ("platform", 1, 10.0, 8.0, 18.0, r(18 / 48), 1.0),
        ("search", 3, 10.0, 0.0, 10.0, r(10 / 48), 0.0),
    ]
    assert summary_of(AllocationRule("owner", "finance"))[-1] == (
        "finance", 0, 0.0, 8.0, 8.0, r(8 / 48), 1.0,
    )  # fmt: skip


def test_none_leaves_it_on_a_row_of_its_own() -> None:
    assert summary_of(AllocationRule("none")) == [
        ("support", 3, 20.0, 0.0, 20.0, r(20 / 48), None),
        ("platform", 1, 10.0, 0.0, 10.0, r(10 / 48), None),
        ("search", 3, 10.0, 0.0, 10.0, r(10 / 48), None),
        (None, 3, 8.0, 0.0, 8.0, r(8 / 48), None),
    ]


def test_proportional_without_any_own_cost_leaves_it_unallocated() -> None:
    rows = rollup(row("search", 0.0), row(None, 2.5))
    statements = build_statements(rows, month="2026-11", rule=AllocationRule("proportional"))
    assert statements.applied == "none"
    assert statements.summary.select("team", "total_usd").rows() == [(None, 2.5), ("search", 0.0)]


def test_cents_add_up_the_odd_cent_going_to_the_first_team() -> None:
    # Three teams of $1.00 and 10 cents without a team: 3.33… cents each. Floors give
    # 103 + 103 + 103 = 309 of 310 cents; the remainders tie, so the first team by name
    # takes the odd cent: 1.04, 1.03, 1.03 (allocated 0.04, 0.03, 0.03).
    rows = rollup(row("a", 1.0), row("b", 1.0), row("c", 1.0), row(None, 0.1))
    statements = build_statements(rows, month="2026-11")
    assert statements.summary.select("team", "allocated_usd", "total_usd").rows() == [
        ("a", 0.04, 1.04),
        ("b", 0.03, 1.03),
        ("c", 0.03, 1.03),
    ]
    assert round(statements.summary["total_usd"].sum(), 2) == statements.total_usd == 3.1


def test_own_costs_are_apportioned_to_the_cent_of_the_total() -> None:
    # 0.333 + 0.333 + 0.334 = 1.00 exactly; rounded alone they would give 0.33 + 0.33 +
    # 0.33 = 0.99. Floors 33 + 33 + 33 = 99 of 100 cents; the largest remainder (c's .4)
    # takes the last cent.
    rows = rollup(row("a", 0.333), row("b", 0.333), row("c", 0.334))
    statements = build_statements(rows, month="2026-11")
    assert statements.summary.sort("team").select("team", "direct_usd").rows() == [
        ("a", 0.33),
        ("b", 0.33),
        ("c", 0.34),
    ]
    assert statements.total_usd == 1.0


def test_lines_by_model_user_and_agent_add_up_to_own_cost() -> None:
    statements = build_statements(MONTH, month="2026-11", rule=AllocationRule("none"))
    search = statements.lines.filter(pl.col("team") == "search").drop("team", "saved_usd")
    assert search.rows() == [
        ("model", "openai/gpt-4o-mini", 2, 6.0),
        ("model", "anthropic/claude-sonnet-4", 1, 4.0),
        ("user", "ana", 2, 6.0),
        ("user", "bo", 1, 4.0),
        ("agent", "rag", 3, 10.0),
    ]
    platform = statements.lines.filter(pl.col("team") == "platform", pl.col("section") == "agent")
    assert platform.select("item", "cost_usd").rows() == [("(none)", 10.0)]
    support = statements.lines.filter(pl.col("team") == "support", pl.col("section") == "model")
    assert support["saved_usd"].to_list() == [1.5]


def test_change_from_last_month_and_savings() -> None:
    # search: October $5 (no spend without a team then), November $12: +140%.
    statements = build_statements(MONTH, month="2026-11")
    by_team = {r["team"]: r for r in statements.summary.iter_rows(named=True)}
    assert by_team["search"]["previous_usd"] == 5.0
    assert by_team["search"]["change_ratio"] == pytest.approx(12 / 5 - 1)
    assert by_team["support"]["previous_usd"] is None
    assert by_team["support"]["change_ratio"] is None
    assert by_team["support"]["saved_usd"] == 1.5


def test_a_teams_own_budget_wins_over_one_for_each_team() -> None:
    budgets = [
        TeamBudget("each-team", 50.0, None),
        TeamBudget("search-monthly", 40.0, "search"),
        TeamBudget("support-monthly", 10.0, "support"),
    ]
    statements = build_statements(MONTH, month="2026-11", budgets=budgets)
    assert statements.summary.select("team", "budget", "budget_usd", "budget_used").rows() == [
        ("support", "support-monthly", 10.0, 2.0),  # own cost 20 of 10
        ("platform", "each-team", 50.0, 0.2),  # 10 of 50
        ("search", "search-monthly", 40.0, 0.25),  # 10 of 40
    ]
    alone = build_statements(MONTH, month="2026-11", budgets=[TeamBudget("s", 40.0, "search")])
    assert alone.summary.select("team", "budget").rows() == [
        ("support", None),
        ("platform", None),
        ("search", "s"),
    ]


def test_unpriced_requests_are_counted() -> None:
    rows = rollup(row("search", 1.0, requests=4, unknown=2))
    statements = build_statements(rows, month="2026-11")
    assert statements.summary["unpriced_requests"].to_list() == [2]


def test_an_empty_month_has_no_statements() -> None:
    statements = build_statements(rollup(row("search", 5.0, at=OCT)), month="2026-11")
    assert statements.summary.height == 0
    assert statements.total_usd == 0.0


def test_month_window_crosses_years() -> None:
    assert month_window("2026-01") == (
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 2, 1, tzinfo=UTC),
    )
    assert month_window("2026-12")[2] == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("2026-13", "2026-1", "November", "2026-11-01"):
        with pytest.raises(ConfigError, match=r"--month .* must be YYYY-MM"):
            month_window(bad)


def test_allocation_rules_parse_and_refuse_with_one_line() -> None:
    assert allocation_rule("proportional") == AllocationRule("proportional")
    assert allocation_rule("owner: finance") == AllocationRule("owner", "finance")
    assert allocation_rule("none") == AllocationRule("none")
    for bad in ("owner", "owner:", "share", "none:x"):
        with pytest.raises(ConfigError, match=r"must be proportional, owner:TEAM or none"):
            allocation_rule(bad)
