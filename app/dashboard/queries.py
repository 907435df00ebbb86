"""The named queries pages ask ``data.fetch`` for: each composes ``models`` functions.

Every function takes the open read-only warehouse and the models settings first,
then hashable keyword arguments (``filters`` as ``dimension = value`` pairs, UTC
datetimes). Rollups are read summed by only the dimensions a view needs (DuckDB
does the sum), from the daily table when the bounds fall on UTC midnights.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from app.dashboard.data import QUERIES
from app.service import Savings, request_detail, savings_in
from core.warehouse import (
    Warehouse,
    alert_history,
    data_health,
    find_requests,
    latency_p95,
    policy_categories,
    policy_counts,
    read_requests,
    recent_policy_events,
    rollup_span,
    unattributed_requests,
)
from models import (
    MEASURES,
    MIN_REPEATS,
    ModelsSettings,
    WhatIfSettings,
    anomaly_bands,
    budget_spend,
    burndown,
    cache_candidates,
    cache_summary,
    compare_invoices,
    daily_bounds,
    detect_anomalies,
    dimension_values,
    explain_flags,
    filter_rollup,
    forecast_month,
    gateway_daily,
    invoice_months,
    read_provider_costs,
    read_rollup,
    repeated_prompt_flags,
    repeated_requests,
    spend_by,
    totals,
    trend,
    unit_costs,
    unit_requests,
)

Pairs = tuple[tuple[str, str], ...]


def _rollup(
    warehouse: Warehouse,
    *,
    since: datetime | None,
    until: datetime | None,
    filters: Pairs = (),
    by: Sequence[str] = (),
    hourly: bool = False,
) -> pl.LazyFrame:
    """The rollup in ``[since, until)`` summed by ``by`` (and the filtered dimensions)."""
    daily = not hourly and daily_bounds(since, until)
    names = list(dict.fromkeys([*by, *(name for name, _ in filters)]))
    frame = read_rollup(
        warehouse.con, since=since, until=until, daily=daily, by=names, measures=MEASURES
    )
    return filter_rollup(frame, dict(filters))


def bounds(warehouse: Warehouse, settings: ModelsSettings) -> tuple[datetime, datetime] | None:
    """The first rolled-up hour and the end of the newest one (UTC), or None when empty."""
    del settings
    return rollup_span(warehouse.con)


def options(warehouse: Warehouse, settings: ModelsSettings) -> dict[str, list[str]]:
    """The values each filter dimension takes anywhere in the warehouse."""
    frame = read_rollup(
        warehouse.con, daily=True, by=list(settings.all_dimensions), measures=("requests",)
    )
    return dimension_values(frame, settings.all_dimensions)


def overview(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    filters: Pairs,
    grain: str,
) -> dict[str, Any]:
    """Totals of the range and of the range before it, and the trend per ``grain``."""
    del settings
    span = until - since
    current = _rollup(warehouse, since=since, until=until, filters=filters, hourly=grain == "hour")
    before = _rollup(warehouse, since=since - span, until=since, filters=filters)
    return {"totals": totals(current), "previous": totals(before), "trend": trend(current, grain)}


def month_forecast(
    warehouse: Warehouse, settings: ModelsSettings, *, now: datetime, filters: Pairs
) -> dict[str, Any]:
    """``forecast_month`` of the total at ``now`` (UTC calendar month), as one row."""
    del settings
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    frame = _rollup(
        warehouse, since=month_start - timedelta(days=16), until=now, filters=filters, hourly=True
    )
    result = forecast_month(frame, now=now)
    return result.row(0, named=True) if result.height else {}


def spend(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    filters: Pairs,
    by: tuple[str, ...],
    grain: str | None,
    top: int | None,
) -> pl.DataFrame:
    """``spend_by`` over the filtered range."""
    del settings
    frame = _rollup(
        warehouse, since=since, until=until, filters=filters, by=by, hourly=grain == "hour"
    )
    if not frame.collect_schema().names():
        return pl.DataFrame()
    return spend_by(frame, list(by), grain=grain, top=top)


def latency(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    filters: Pairs,
    grain: str | None,
) -> pl.DataFrame:
    return latency_p95(
        warehouse.con, settings, since=since, until=until, filters=dict(filters), grain=grain
    )


def cache(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    filters: Pairs,
    by: tuple[str, ...],
    grain: str | None,
) -> pl.DataFrame:
    del settings
    frame = _rollup(
        warehouse, since=since, until=until, filters=filters, by=by, hourly=grain == "hour"
    )
    return cache_summary(frame, by, grain)


def candidates(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    filters: Pairs,
    limit: int,
) -> pl.DataFrame:
    """Cache candidates from the raw requests of ``[since, until)`` (keep it short)."""
    costed = repeated_requests(
        warehouse, settings, since=since, until=until, at_least=2, within="range"
    )
    return cache_candidates(filter_rollup(costed, dict(filters))).head(limit)


def anomalies(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    scope: str,
    now: datetime,
    hours: int,
    filters: Pairs,
    min_score: float,
    min_impact_usd: float = 0.0,
) -> dict[str, pl.DataFrame]:
    """``aigw report anomalies`` for ``scope``: ``flags`` (spend over expected of at least
    ``min_impact_usd``, as ``aigw alerts run`` counts a rule's flags; repeated-prompt
    loops always), ``below`` (the statistical flags under that impact, to explain them),
    ``bands`` (the spend band of each value in ``flags``) and ``causes`` (the root cause
    of each flagged value and hour, ``models.root_cause``: its summary with the headline)."""
    window = timedelta(hours=hours)
    frame = _rollup(
        warehouse,
        since=now - window - timedelta(weeks=5),
        until=now,
        filters=filters,
        by=(scope,),
        hourly=True,
    )
    flags = detect_anomalies(frame, scope, now=now, window=window, min_score=min_score)
    loops = repeated_prompt_flags(
        filter_rollup(
            repeated_requests(
                warehouse,
                settings,
                since=now - window,
                until=now,
                at_least=MIN_REPEATS,
                within="hour",
            ),
            dict(filters),
        ),
        scope,
    )
    # a minimum of 0 keeps every flag (a requests flag may spend less than expected)
    small = (pl.col("impact_usd").fill_null(0.0) < min_impact_usd) & (min_impact_usd > 0)
    below = flags.filter(small)
    flags = flags.filter(~small)
    flags = pl.concat([flags, loops]).sort("hour", "value", "signal", nulls_last=True)
    values = flags["value"].unique().to_list()
    bands = anomaly_bands(frame, scope, values, now=now, window=window, min_score=min_score)
    causes = _root_causes(warehouse, settings, flags, filters)
    return {"flags": flags, "below": below, "bands": bands, "causes": causes}


def _root_causes(
    warehouse: Warehouse, settings: ModelsSettings, flags: pl.DataFrame, filters: Pairs
) -> pl.DataFrame:
    """The root cause summary of each flagged value and hour (``models.root_cause``), by
    the dimensions the filters leave free, within the filters."""
    hours = sorted(set(flags["hour"].to_list()))
    fixed = dict(filters)
    dimensions = [name for name in settings.all_dimensions if name not in fixed]
    if not hours:
        return explain_flags(pl.LazyFrame(), flags, dimensions=dimensions).summary
    rollup = _rollup(
        warehouse,
        since=hours[0] - timedelta(weeks=5),
        until=hours[-1] + timedelta(hours=1),
        filters=filters,
        by=settings.all_dimensions,
        hourly=True,
    )
    requests = read_requests(warehouse.con, settings, hours=hours, with_request_hash=True)
    return explain_flags(
        rollup, flags, dimensions=dimensions, requests=filter_rollup(requests, fixed)
    ).summary


def budgets(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    filters: Pairs,
    split_by: str | None,
) -> dict[str, pl.DataFrame]:
    """One budget's spend per split value, and the burn-down of its whole scope."""
    del settings
    by = (split_by,) if split_by else ()
    frame = _rollup(warehouse, since=start, until=min(end, now), filters=filters, by=by)
    if not frame.collect_schema().names():
        return {"spend": pl.DataFrame(), "burndown": pl.DataFrame()}
    return {
        "spend": budget_spend(frame, start=start, end=end, now=now, split_by=split_by),
        "burndown": burndown(frame, start=start, end=end, now=now),
    }


def savings(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    top: int,
    batch_key: str | None,
    batch_values: tuple[str, ...],
    batch_discount: tuple[tuple[str, float], ...],
) -> Savings:
    """``aigw report savings --since --until --top`` (``app.service.savings_in``), the
    ``[whatif]`` settings passed as hashable values."""
    whatif = WhatIfSettings(batch_key, batch_values, dict(batch_discount))
    return savings_in(warehouse, settings, whatif, since=since, until=until, top=top)


def invoices(warehouse: Warehouse, settings: ModelsSettings) -> pl.DataFrame:
    """Gateway vs invoice per month and provider, over every imported bill
    (``models.invoice_months``); empty when none was imported."""
    del settings
    bills = read_provider_costs(warehouse.con)
    if bills.is_empty():
        return pl.DataFrame()
    first, last = bills["day"].min(), bills["day"].max()
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)  # type: ignore[union-attr]
    until = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)  # type: ignore[union-attr]
    rollup = read_rollup(warehouse.con, since=since, until=until, daily=True)
    return invoice_months(compare_invoices(bills, gateway_daily(rollup)))


def alert_log(warehouse: Warehouse, settings: ModelsSettings, *, limit: int) -> pl.DataFrame:
    del settings
    return alert_history(warehouse.con, limit=limit)


def policy(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    filters: Pairs,
    grain: str,
) -> dict[str, pl.DataFrame]:
    con, where = warehouse.con, dict(filters)
    return {
        "counts": policy_counts(
            con, settings, since=since, until=until, filters=where, grain=grain
        ),
        "categories": policy_categories(con, settings, since=since, until=until, filters=where),
        "recent": recent_policy_events(con, settings, since=since, until=until, filters=where),
    }


def requests(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    filters: Pairs,
    status: str,
    log_id: str,
    limit: int,
) -> pl.DataFrame:
    return find_requests(
        warehouse.con,
        settings,
        since=since,
        until=until,
        filters=dict(filters),
        status=status,
        log_id=log_id or None,
        limit=limit,
    )


def unattributed(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
) -> int:
    return unattributed_requests(warehouse.con, since=since, until=until)


def detail(warehouse: Warehouse, settings: ModelsSettings, *, log_id: str) -> Any:
    return request_detail(warehouse, settings, log_id)


def health(warehouse: Warehouse, settings: ModelsSettings, *, limit: int) -> Any:
    del settings
    warehouse.load_manifest()
    return data_health(warehouse.con, limit=limit)


def unit_cost(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    since: datetime,
    until: datetime,
    filters: Pairs,
    unit_key: str,
    top: int,
) -> dict[str, pl.DataFrame]:
    """Cost per value of the metadata key ``unit_key`` (``unit_costs``): the summary, the
    ``top`` most expensive units and the weekly trend, as ``aigw report unit-cost``."""
    requests = unit_requests(
        warehouse, settings, unit_key=unit_key, since=since, until=until, filters=dict(filters)
    )
    costs = unit_costs(requests, top=top)
    return {"summary": costs.summary, "top": costs.top, "weekly": costs.weekly}


QUERIES.update(
    {
        "bounds": bounds,
        "options": options,
        "overview": overview,
        "forecast": month_forecast,
        "spend": spend,
        "latency": latency,
        "cache": cache,
        "candidates": candidates,
        "anomalies": anomalies,
        "budgets": budgets,
        "alerts": alert_log,
        "policy": policy,
        "requests": requests,
        "detail": detail,
        "unattributed": unattributed,
        "health": health,
        "unit_cost": unit_cost,
        "invoices": invoices,
        "savings": savings,
    }
)
