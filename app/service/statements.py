"""Showback statements and cost per outcome over the warehouse: settings in, results out.

``statements_report`` reads the daily rollups exactly as ``aigw report cost`` does for a
month (``read_rollup`` with day-aligned bounds), so the statements add up to that
report to the cent; ``unit_cost_report`` reads each request's business key and the
effective cost the last rollup refresh stored for it (``unit_requests``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from alerts import Budget
from core.errors import ConfigError
from core.lake import WarehouseTarget
from core.warehouse import open_warehouse
from models import (
    AllocationRule,
    ModelsSettings,
    Statements,
    TeamBudget,
    UnitCosts,
    build_statements,
    month_window,
    read_outcomes,
    read_rollup,
    rollups_stale,
    unit_costs,
    unit_requests,
)

__all__ = [
    "StatementsReport",
    "UnitCostReport",
    "statements_report",
    "team_budgets",
    "unit_cost_report",
]

_MEASURES = ("requests", "cost_usd", "saved_usd", "unknown_cost_requests")
_SECTIONS = ("user", "agent")


@dataclass(frozen=True, slots=True)
class StatementsReport:
    """The statements and whether the rollups lag behind the warehouse or settings."""

    statements: Statements
    stale: bool


def team_budgets(budgets: Sequence[Budget], dimension: str) -> list[TeamBudget]:
    """The monthly budgets that are one team's alone: filtered on ``dimension`` and
    nothing else (that team's), or split by ``dimension`` without filters (each team's).
    A budget with other filters (a provider, a model) is not a team's budget."""
    chosen = []
    for budget in budgets:
        if budget.period != "monthly":
            continue
        if budget.split_by is None and set(budget.filters) == {dimension}:
            chosen.append(TeamBudget(budget.name, budget.amount_usd, budget.filters[dimension]))
        elif budget.split_by == dimension and not budget.filters:
            chosen.append(TeamBudget(budget.name, budget.amount_usd, None))
    return chosen


def statements_report(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    *,
    month: str,
    by: str = "team",
    rule: AllocationRule | None = None,
    budgets: Sequence[Budget] = (),
) -> StatementsReport:
    """One statement per ``by`` value for ``month`` (``YYYY-MM``, UTC), read-only.
    ``ConfigError`` for a bad month or a ``by`` that is not a metadata dimension."""
    if by not in settings.dimensions:
        raise ConfigError(
            f"--by {by!r} is not a metadata dimension; use one of {', '.join(settings.dimensions)}"
        )
    previous, _, end = month_window(month)
    sections = [name for name in _SECTIONS if name in settings.dimensions and name != by]
    columns = list(dict.fromkeys([by, "provider", "model", *sections]))
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        rollup = read_rollup(
            warehouse.con, since=previous, until=end, daily=True, by=columns, measures=_MEASURES
        )
        stale = rollups_stale(warehouse.con, settings)
    if not rollup.collect_schema().names():
        empty = dict.fromkeys(columns, pl.String) | {"hour": pl.Datetime("us", "UTC")}
        rollup = pl.LazyFrame(
            schema=empty | {name: pl.Float64 if "usd" in name else pl.Int64 for name in _MEASURES}
        )
    statements = build_statements(
        rollup,
        month=month,
        dimension=by,
        rule=rule,
        sections=sections,
        budgets=team_budgets(budgets, by),
    )
    return StatementsReport(statements, stale)


@dataclass(frozen=True, slots=True)
class UnitCostReport:
    """Cost per unit, and whether the rollups (and so the stored request costs) lag
    behind the warehouse or the settings."""

    costs: UnitCosts
    stale: bool


def unit_cost_report(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    *,
    unit_key: str,
    by: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = 10,
    outcomes: Path | None = None,
) -> UnitCostReport:
    """Cost per value of the metadata key ``unit_key`` (a conversation, a ticket…) over
    ``[since, until)``, optionally per ``by`` dimension, with the ``top`` most expensive
    units and, given an outcomes CSV, cost per outcome. Read-only."""
    if by is not None and by not in settings.all_dimensions:
        raise ConfigError(
            f"--by {by!r} is not a dimension; use one of {', '.join(settings.all_dimensions)}"
        )
    if top < 0:
        raise ConfigError(f"--top {top} must be 0 or more")
    if since is not None and until is not None and since >= until:
        raise ConfigError("--since must be before --until (--until is exclusive)")
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        frame = unit_requests(
            warehouse, settings, unit_key=unit_key, by=by, since=since, until=until
        ).collect()
        stale = rollups_stale(warehouse.con, settings)
    outcome_rows = read_outcomes(outcomes) if outcomes is not None else None
    costs = unit_costs(frame.lazy(), by=by, top=top, outcomes=outcome_rows)
    return UnitCostReport(costs, stale)
