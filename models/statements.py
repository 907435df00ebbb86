"""Showback statements: a month's effective cost per team (or any metadata dimension),
the spend without a team allocated by a rule, in whole cents that add up.

Pure Polars over rollup rows (``read_rollup(..., by=[dimension, provider, model, user,
agent])`` of the month and the month before it). Amounts are USD in whole cents,
apportioned by largest remainders so that nothing is lost to rounding: the statements'
totals (with the unallocated row under ``none``) add up to the month's total effective
cost rounded to the cent (what ``aigw report cost`` sums), and each statement's lines
(by model, by user, by agent) add up to its direct cost.

Allocation rules (``[statements] unallocated`` in ``aigw.toml``), for the cost of
requests whose dimension is missing or empty:

* ``proportional``: shared in proportion to each team's own (direct) cost; when no
  team has any direct cost there is nothing to be proportional to, and it stays
  unallocated (``Statements.applied`` says so);
* ``owner:TEAM``: all of it to TEAM (which gets a statement even without own spend);
* ``none``: left unallocated, on a row of its own whose team is null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from core.errors import ConfigError
from core.settings import check_keys

__all__ = [
    "ALLOCATION_KINDS",
    "AllocationRule",
    "StatementSettings",
    "Statements",
    "TeamBudget",
    "allocation_rule",
    "build_statements",
    "month_window",
    "statement_settings_from",
]

ALLOCATION_KINDS: Final = ("proportional", "owner", "none")
_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")
_NONE_ITEM: Final = "(none)"


@dataclass(frozen=True, slots=True)
class AllocationRule:
    """How the cost without a team is allocated: ``kind`` one of ``ALLOCATION_KINDS``;
    ``owner`` the team that takes it all (``owner`` kind only)."""

    kind: str = "proportional"
    owner: str | None = None

    def describe(self) -> str:
        """The rule as a statement says it."""
        if self.kind == "owner":
            return f"allocated to its owner, {self.owner}"
        if self.kind == "proportional":
            return "allocated in proportion to each team's own cost"
        return "left unallocated"

    def __str__(self) -> str:
        return f"owner:{self.owner}" if self.kind == "owner" else self.kind


def allocation_rule(text: str, *, where: str = "[statements] unallocated") -> AllocationRule:
    """``proportional``, ``owner:TEAM`` or ``none``; ``ConfigError`` (one line, naming
    ``where``) otherwise."""
    kind, sep, owner = text.strip().partition(":")
    if kind == "owner" and sep and owner.strip():
        return AllocationRule("owner", owner.strip())
    if not sep and kind in ("proportional", "none"):
        return AllocationRule(kind)
    raise ConfigError(f"{where} {text!r} must be proportional, owner:TEAM or none")


@dataclass(frozen=True, slots=True)
class StatementSettings:
    """The ``[statements]`` table of ``aigw.toml``."""

    unallocated: AllocationRule = field(default_factory=AllocationRule)


def statement_settings_from(path: Path, section: Mapping[str, Any]) -> StatementSettings:
    """Settings from a ``[statements]`` table read from ``path``; unknown keys are an error."""
    check_keys(path, section, ("unallocated",), where="[statements]")
    value = section.get("unallocated", "proportional")
    if not isinstance(value, str):
        raise ConfigError(f"{path}: [statements] unallocated must be a string")
    return StatementSettings(allocation_rule(value, where=f"{path}: [statements] unallocated"))


@dataclass(frozen=True, slots=True)
class TeamBudget:
    """A monthly budget shown on a statement: for the team ``value`` alone, or, when
    ``value`` is None, one each (a budget split by the dimension, without filters)."""

    name: str
    amount_usd: float
    value: str | None


@dataclass(frozen=True, slots=True)
class Statements:
    """One month's statements.

    ``summary``: one row per statement (team; a null team is the unallocated row):
    ``requests, direct_usd, allocated_usd, total_usd, share`` (of the month's total),
    ``allocated_share`` (of the cost without a team), ``saved_usd`` (response-cache
    savings), ``unpriced_requests``, ``previous_usd`` (last month's total, same rule),
    ``change_ratio``, ``budget, budget_usd, budget_used`` (direct cost / budget).
    ``lines``: ``team, section`` (model, user, agent…), ``item, requests, cost_usd,
    saved_usd``. Money in whole cents (USD, two decimals) except ``saved_usd``.
    """

    month: str  # YYYY-MM
    dimension: str
    rule: AllocationRule
    applied: str  # the rule that applied: the rule's kind, or "none" (see the module)
    total_usd: float  # the month's total effective cost, to the cent
    unattributed_usd: float  # of which without a team, to the cent
    summary: pl.DataFrame
    lines: pl.DataFrame


def month_window(month: str) -> tuple[datetime, datetime, datetime]:
    """``YYYY-MM`` as (previous month's start, its start, next month's start), UTC;
    ``ConfigError`` otherwise."""
    match = _MONTH.match(month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ConfigError(f"--month {month!r} must be YYYY-MM, e.g. 2026-11")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    previous = datetime(year - (number == 1), (number - 2) % 12 + 1, 1, tzinfo=UTC)
    following = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=UTC)
    return previous, start, following


def build_statements(
    rollup: pl.LazyFrame,
    *,
    month: str,
    dimension: str = "team",
    rule: AllocationRule | None = None,
    sections: Sequence[str] = ("user", "agent"),
    budgets: Sequence[TeamBudget] = (),
) -> Statements:
    """The statements of ``month`` (``YYYY-MM``, UTC) from rollup rows that cover it and
    the month before (``hour``, ``dimension``, ``provider``, ``model``, ``sections``,
    ``requests``, ``cost_usd``, ``saved_usd``, ``unknown_cost_requests``). Lines are by
    model (``provider/model``), then by each of ``sections``. A team's budget is the
    first of ``budgets`` for it alone, else the first for each team."""
    rule = rule or AllocationRule()
    previous_start, start, end = month_window(month)
    rows = (
        rollup.with_columns(pl.col(dimension).replace("", None).alias("team"))
        .filter(pl.col("hour") >= previous_start, pl.col("hour") < end)
        .collect()
    )
    current = rows.filter(pl.col("hour") >= start)
    parts, applied, total_cents = _parts(current, rule)
    previous, _, _ = _parts(rows.filter(pl.col("hour") < start), rule)
    unattributed = parts.filter(pl.col("team").is_null())
    unattributed_cents = int(unattributed["direct_cents"].sum()) if unattributed.height else 0
    summary = (
        parts.filter(pl.col("team").is_not_null() | pl.lit(applied == "none"))
        .join(
            previous.select("team", pl.col("total_cents").alias("previous_cents")),
            on="team",
            how="left",
            nulls_equal=True,
        )
        .with_columns(
            (pl.col(name) / 100).alias(name.replace("_cents", "_usd"))
            for name in ("direct_cents", "allocated_cents", "total_cents", "previous_cents")
        )
        .with_columns(
            (pl.col("total_cents") / total_cents if total_cents else pl.lit(None))
            .cast(pl.Float64)
            .alias("share"),
            (
                pl.col("allocated_cents") / unattributed_cents
                if unattributed_cents and applied != "none"
                else pl.lit(None)
            )
            .cast(pl.Float64)
            .alias("allocated_share"),
            pl.when(pl.col("previous_usd") > 0)
            .then(pl.col("total_usd") / pl.col("previous_usd") - 1)
            .otherwise(None)
            .alias("change_ratio"),
        )
    )
    summary = _with_budgets(summary, budgets).select(
        "team",
        "requests",
        "direct_usd",
        "allocated_usd",
        "total_usd",
        "share",
        "allocated_share",
        "saved_usd",
        "unpriced_requests",
        "previous_usd",
        "change_ratio",
        "budget",
        "budget_usd",
        "budget_used",
    )
    return Statements(
        month=f"{start:%Y-%m}",
        dimension=dimension,
        rule=rule,
        applied=applied,
        total_usd=total_cents / 100,
        unattributed_usd=unattributed_cents / 100,
        summary=summary.sort("total_usd", "team", descending=[True, False], nulls_last=True),
        lines=_lines(current, parts, sections),
    )


def _parts(rows: pl.DataFrame, rule: AllocationRule) -> tuple[pl.DataFrame, str, int]:
    """Per team (null: without one): exact direct and allocated cost, and both in whole
    cents adding up to the rows' total; the rule that applied; the total in cents."""
    direct = rows.group_by("team").agg(
        pl.col("requests").sum().cast(pl.Int64),
        pl.col("cost_usd").sum().alias("direct"),
        pl.col("saved_usd").sum(),
        pl.col("unknown_cost_requests").sum().cast(pl.Int64).alias("unpriced_requests"),
    )
    if rule.kind == "owner" and rows.height and rule.owner not in direct["team"].to_list():
        owner = pl.DataFrame(
            {"team": [rule.owner], "requests": [0], "direct": [0.0], "saved_usd": [0.0]}
        ).with_columns(pl.lit(0).alias("unpriced_requests"))
        direct = pl.concat([direct, owner], how="vertical_relaxed")
    attributed = float(direct.filter(pl.col("team").is_not_null())["direct"].sum())
    without = float(direct.filter(pl.col("team").is_null())["direct"].sum())
    applied = rule.kind
    if applied == "proportional" and attributed <= 0 and without:
        applied = "none"
    team = pl.col("team")
    if applied == "proportional":
        allocated = (
            pl.when(team.is_null())
            .then(-without)
            .otherwise(without * pl.col("direct") / attributed)
        )
    elif applied == "owner":
        allocated = (
            pl.when(team.is_null()).then(-without).when(team == rule.owner).then(without)
        ).otherwise(0.0)
    else:
        allocated = pl.lit(0.0)
    total_cents = round(round((attributed + without) * 100, 6))
    parts = (
        direct.sort("team", nulls_last=True)
        .with_columns(allocated.alias("allocated"), pl.lit(total_cents).alias("_target"))
        .with_columns(
            pl.when(team.is_null() & pl.lit(applied != "none"))
            .then(0.0)
            .otherwise(pl.col("direct") + pl.col("allocated"))
            .alias("total")
        )
        .with_columns(
            _apportion("direct", "_target").alias("direct_cents"),
            _apportion("total", "_target").alias("total_cents"),
        )
        .with_columns((pl.col("total_cents") - pl.col("direct_cents")).alias("allocated_cents"))
        .drop("_target")
    )
    return parts, applied, total_cents


def _apportion(value: str, target: str, over: Sequence[str] = ()) -> pl.Expr:
    """Whole cents of each ``value`` (USD) that add up to ``target`` (cents, constant per
    ``over`` group): each value's floor, and the cents left to the largest remainders
    (rows in frame order break ties). Each is within a cent of its value."""
    raw = (pl.col(value).fill_null(0.0) * 100).round(6)
    base = raw.floor()

    def per_group(expr: pl.Expr) -> pl.Expr:
        return expr.over(over) if over else expr

    size = per_group(pl.len()).cast(pl.Int64)
    short = pl.col(target).cast(pl.Int64) - per_group(base.sum()).cast(pl.Int64)
    whole = short.floordiv(size)
    order = per_group((raw - base).rank("ordinal", descending=True)).cast(pl.Int64)
    return (base.cast(pl.Int64) + whole + (order <= short - whole * size).cast(pl.Int64)).cast(
        pl.Int64
    )


def _lines(rows: pl.DataFrame, parts: pl.DataFrame, sections: Sequence[str]) -> pl.DataFrame:
    """Each team's direct cost by model and by each section, apportioned to its cents."""
    model = pl.concat_str(
        pl.col("provider").fill_null("?"), pl.lit("/"), pl.col("model").fill_null("?")
    )
    labelled = [rows.with_columns(pl.lit("model").alias("section"), model.alias("item"))]
    labelled += [
        rows.with_columns(
            pl.lit(name).alias("section"), pl.col(name).cast(pl.String).fill_null(_NONE_ITEM)
        ).with_columns(pl.col(name).alias("item"))
        for name in sections
    ]
    keys = ["team", "section", "item"]
    grouped = [
        frame.group_by(keys).agg(
            pl.col("requests").sum().cast(pl.Int64),
            pl.col("cost_usd").sum().alias("cost"),
            pl.col("saved_usd").sum(),
        )
        for frame in labelled
    ]
    targets = parts.select("team", pl.col("direct_cents").alias("_target"))
    order = pl.col("section").replace_strict(
        ["model", *sections], range(len(sections) + 1), return_dtype=pl.Int64
    )
    return (
        pl.concat(grouped)
        .join(targets, on="team", how="left", nulls_equal=True)
        .with_columns(order.alias("_order"))
        .sort(["team", "_order", "cost", "item"], descending=[False, False, True, False])
        .with_columns(_apportion("cost", "_target", ["team", "section"]).alias("cents"))
        .with_columns((pl.col("cents") / 100).alias("cost_usd"))
        .sort(
            ["team", "_order", "cost_usd", "item"],
            descending=[False, False, True, False],
            nulls_last=True,
        )
        .select(*keys, "requests", "cost_usd", "saved_usd")
    )


def _with_budgets(summary: pl.DataFrame, budgets: Sequence[TeamBudget]) -> pl.DataFrame:
    """``budget``, ``budget_usd`` and ``budget_used`` (direct cost / budget) per team:
    the first budget for the team alone, else the first for each team."""
    chosen: dict[str, TeamBudget] = {}
    each = next((budget for budget in budgets if budget.value is None), None)
    for team in summary["team"].drop_nulls().to_list():
        own = next((budget for budget in budgets if budget.value == team), each)
        if own is not None:
            chosen[team] = own
    table = pl.DataFrame(
        {
            "team": list(chosen),
            "budget": [budget.name for budget in chosen.values()],
            "budget_usd": [budget.amount_usd for budget in chosen.values()],
        },
        schema={"team": pl.String, "budget": pl.String, "budget_usd": pl.Float64},
    )
    return summary.join(table, on="team", how="left").with_columns(
        (pl.col("direct_usd") / pl.col("budget_usd")).alias("budget_used")
    )
