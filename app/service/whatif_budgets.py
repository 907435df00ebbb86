"""``aigw whatif --budgets``: a budgets file's budgets enforced as spend caps over a
window of the recorded requests (``models.whatif.caps``)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import polars as pl

from alerts import load_alerts_config, period_bounds
from app.service.reports import _check_dimensions
from app.service.whatif import DEFAULT_DAYS, _empty, _narrowed, _rollup, _Window, _window
from core.errors import ConfigError
from core.lake import WarehouseTarget
from core.warehouse import open_warehouse, read_requests
from models import CapsReplay, ModelsSettings, SpendCap, replay_caps

__all__ = ["whatif_budgets"]


def whatif_budgets(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    budgets: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int = DEFAULT_DAYS,
    user: str = "user",
) -> CapsReplay:
    """The budgets of a ``budgets.toml`` enforced as spend caps over the window
    (``models.whatif.caps``); rolling budgets are left out (a note says so)."""
    config = load_alerts_config(budgets, dimensions=settings.all_dimensions)
    _check_dimensions(settings, [user])
    caps = [
        SpendCap(
            name=budget.name,
            amount_usd=budget.amount_usd,
            period=budget.period,
            filters=dict(budget.filters),
            split_by=budget.split_by,
            timezone=config.timezone,
        )
        for budget in config.budgets
        if budget.period != "rolling"
    ]
    rolling = [budget.name for budget in config.budgets if budget.period == "rolling"]
    notes = [f"rolling budgets are not replayed: {', '.join(rolling)}"] if rolling else []
    if not caps:
        raise ConfigError(f"{budgets}: no daily, weekly or monthly [[budget]] to replay")
    dims = [user, *(cap.split_by for cap in caps if cap.split_by)]
    dims += [name for cap in caps for name in cap.filters]
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        window = _window(warehouse, settings, since, until, days)
        if window is None:
            return CapsReplay(_empty("budgets as caps"), pl.DataFrame(), pl.DataFrame())
        # the spend of the periods the window starts in, from their start
        lead = min(
            period_bounds(budget, window.since, config.timezone)[0]
            for budget in config.budgets
            if budget.period != "rolling"
        )
        rollup = _rollup(
            warehouse,
            _Window(min(lead, window.since), window.until),
            dims,
            ("requests", "cost_usd"),
        )
        if not rollup.collect_schema().names():
            return CapsReplay(_empty("budgets as caps"), pl.DataFrame(), pl.DataFrame())
        replay = replay_caps(
            rollup,
            caps,
            # each split cap's crossing scopes only, not every request of their hours
            lambda by, pairs: read_requests(
                warehouse.con,
                _narrowed(settings, dims),
                scopes=pairs,
                scope_by=by,
                stored_costs=True,
                columns=[*dims, "log_id"],
            ),
            user=user,
            since=window.since,
        )
    answer = window.stamp(replay.whatif)
    answer = dataclasses.replace(answer, notes=(*answer.notes, *notes))
    return CapsReplay(answer, replay.users, replay.hours)
