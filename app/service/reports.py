"""Reports over the warehouse: settings in, results out. The CLI's report and export
commands and the dashboard call these; each opens the warehouse, reads rollups or
requests through ``core.warehouse`` and ``models``, and applies the pure models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from core.errors import ConfigError
from core.lake import WarehouseTarget
from core.warehouse import open_warehouse, read_requests, rollup_span
from models import (
    GRAINS,
    MIN_REPEATS,
    ModelsSettings,
    RefreshResult,
    RootCauses,
    cache_candidates,
    cache_summary,
    daily_bounds,
    detect_anomalies,
    explain_flags,
    filter_rollup,
    focus_table,
    forecast_month,
    newest_rollup_hour,
    read_rollup,
    reconciliation,
    refresh_rollups,
    repeated_prompt_flags,
    repeated_requests,
    rollups_stale,
    spend_by,
    write_focus,
)

__all__ = [
    "CacheReport",
    "SpendReport",
    "anomaly_report",
    "cache_report",
    "cost_report",
    "data_span",
    "explain_anomalies",
    "export_focus",
    "forecast_report",
    "reconcile_report",
    "refresh",
]


@dataclass(frozen=True, slots=True)
class SpendReport:
    """A spend table, the models without a price, and whether the rollups lag behind."""

    table: pl.DataFrame
    unpriced: list[tuple[str, str, int]]  # (provider, model, requests) with unknown cost
    stale: bool
    saved_estimated_usd: float = 0.0  # the estimated part of the table's saved_usd


def data_span(db_path: WarehouseTarget) -> tuple[datetime, datetime] | None:
    """The first rolled-up hour and the end of the newest one (UTC), None when there
    are none: what the reports can see, for saying why one came back empty."""
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        return rollup_span(warehouse.con)


def _check_window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise ConfigError(
            f"--since {since:%Y-%m-%d %H:%M} is not before --until {until:%Y-%m-%d %H:%M}: "
            "the window is empty (--until is exclusive)"
        )


def _dated(table: pl.DataFrame, grain: str | None) -> pl.DataFrame:
    """Periods of a day or longer as dates (UTC), not midnights."""
    if grain in {"day", "week", "month"} and "period" in table.columns:
        return table.with_columns(pl.col("period").dt.date())
    return table


def refresh(
    db_path: WarehouseTarget, settings: ModelsSettings, *, full: bool = False
) -> RefreshResult:
    """Bring the rollups of the warehouse at ``db_path`` up to date; a missing DuckDB
    file is refused (``WarehouseError``), not created."""
    with open_warehouse(db_path, create=False) as warehouse:
        return refresh_rollups(warehouse, settings, full=full)


def cost_report(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    *,
    by: Sequence[str],
    grain: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int | None = None,
    filters: dict[str, str] | None = None,
) -> SpendReport:
    """Spend by ``by`` (any dimensions) and ``grain`` from the rollups, read-only; periods
    of a day or longer as dates. ``ConfigError`` for an unknown dimension or grain, an
    empty window, or ``top`` below 1."""
    _check_dimensions(settings, [*by, *(filters or {})])
    _check_window(since, until)
    if top is not None and top < 1:
        raise ConfigError(f"--top {top} must be 1 or more")
    if grain is not None and grain not in GRAINS:
        raise ConfigError(f"unknown grain {grain!r}; use one of {', '.join(GRAINS)}")
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        daily = grain != "hour" and daily_bounds(since, until)
        rollup = read_rollup(warehouse.con, since=since, until=until, daily=daily)
        stale = rollups_stale(warehouse.con, settings)
        if not rollup.collect_schema().names():
            empty = pl.DataFrame()
            return SpendReport(empty, [], stale=True)
        unpriced = (
            rollup.filter(pl.col("unknown_cost_requests") > 0)
            .group_by("provider", "model")
            .agg(pl.col("unknown_cost_requests").sum())
            .sort("unknown_cost_requests", descending=True)
            .collect()
            .rows()
        )
        table = _dated(spend_by(rollup, by, grain=grain, top=top, filters=filters), grain)
        estimated = 0.0
        if "saved_estimated_usd" in rollup.collect_schema():
            kept = filter_rollup(rollup, filters).select(pl.col("saved_estimated_usd").sum())
            estimated = float(kept.collect().item() or 0.0)
    return SpendReport(table, unpriced, stale, saved_estimated_usd=estimated)


def reconcile_report(
    db_path: WarehouseTarget,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pl.DataFrame:
    """Logged versus recomputed cost per provider and model, from the rollups (read-only)."""
    _check_window(since, until)
    daily = daily_bounds(since, until)
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        rollup = read_rollup(warehouse.con, since=since, until=until, daily=daily)
        if not rollup.collect_schema().names():
            return pl.DataFrame()
        return reconciliation(rollup)


@dataclass(frozen=True, slots=True)
class CacheReport:
    """Cache hit ratios and savings, and the requests worth caching."""

    summary: pl.DataFrame
    candidates: pl.DataFrame


def cache_report(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    *,
    by: Sequence[str],
    grain: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    candidates: int = 10,
) -> CacheReport:
    """Hit ratio by requests and by would-be cost, savings, and the top ``candidates``.

    Candidates come from raw requests in the window (identical request hashes
    served by a provider more than once), so the window should be bounded on
    large warehouses.
    """
    _check_dimensions(settings, by)
    _check_window(since, until)
    if candidates < 0:
        raise ConfigError(f"--candidates {candidates} must be 0 or more")
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        rollup = read_rollup(warehouse.con, since=since, until=until)
        summary = _dated(cache_summary(rollup, by, grain), grain)
        repeated = cache_candidates(
            repeated_requests(
                warehouse, settings, since=since, until=until, at_least=2, within="range"
            )
        )
    return CacheReport(summary, repeated.head(candidates))


def export_focus(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    out: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Write FOCUS 1.2 rows (Parquet or CSV by suffix) to ``out``; return the row count."""
    _check_window(since, until)
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        rows = focus_table(warehouse, settings, since=since, until=until)
    write_focus(rows, out)
    return rows.height


def _check_dimensions(settings: ModelsSettings, names: Sequence[str]) -> None:
    known = set(settings.all_dimensions)
    for name in names:
        if name not in known:
            raise ConfigError(
                f"unknown dimension {name!r}; use one of {', '.join(settings.all_dimensions)}"
            )


def anomaly_report(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    *,
    scope: str = "agent",
    now: datetime | None = None,
    window: timedelta = timedelta(hours=24),
    min_score: float = 6.0,
    min_impact_usd: float = 0.0,
    min_repeats: int = MIN_REPEATS,
) -> pl.DataFrame:
    """Anomalous hourly spend and request rates per ``scope`` value in ``[now - window, now)``,
    and runaway loops: one identical request sent ``min_repeats`` times in an hour.

    ``now`` defaults to the end of the newest rolled-up hour, so the report covers
    the latest data. Reads five weeks of hourly rollups before the window (the
    seasonal baseline) and the window's raw requests (for the repeated prompts).
    """
    _check_dimensions(settings, [scope])
    if window <= timedelta(0):
        raise ConfigError(f"--hours {window / timedelta(hours=1):g} must be 1 or more")
    if min_repeats < 2:
        raise ConfigError(f"--min-repeats {min_repeats} must be 2 or more")
    if min_score < 0:
        raise ConfigError(f"--min-score {min_score:g} must be 0 or more")
    if min_impact_usd < 0:
        raise ConfigError(f"--min-impact {min_impact_usd:g} must be 0 or more")
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        end = now or newest_rollup_hour(warehouse.con)
        if end is None:
            return detect_anomalies(pl.LazyFrame(), scope)
        since = end - window - timedelta(weeks=5)
        rollup = read_rollup(
            warehouse.con, since=since, until=end, by=[scope], measures=("cost_usd", "requests")
        )
        statistical = detect_anomalies(
            rollup,
            scope,
            now=end,
            window=window,
            min_score=min_score,
            min_impact_usd=min_impact_usd,
        )
        loops = repeated_prompt_flags(
            repeated_requests(
                warehouse,
                settings,
                since=end - window,
                until=end,
                at_least=min_repeats,
                within="hour",
            ),
            scope,
            min_repeats=min_repeats,
        )
    return pl.concat([statistical, loops]).sort("hour", "value", "signal", nulls_last=True)


def explain_anomalies(
    db_path: WarehouseTarget, settings: ModelsSettings, flags: pl.DataFrame
) -> RootCauses:
    """The root cause of each flagged (value, hour) of ``flags`` (``anomaly_report``'s):
    the cells of the other dimensions that explain its excess (``models.root_cause``).

    Reads the hourly rollups by every dimension from five weeks before the first flagged
    hour (the baselines) to the last, and the raw requests of the flagged hours only
    (for the repeats of one request)."""
    hours = sorted(set(flags["hour"].to_list()))
    if not hours:
        return explain_flags(pl.LazyFrame(), flags, dimensions=settings.all_dimensions)
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        rollup = read_rollup(
            warehouse.con,
            since=hours[0] - timedelta(weeks=5),
            until=hours[-1] + timedelta(hours=1),
            by=list(settings.all_dimensions),
            measures=("cost_usd", "requests"),
        )
        requests = read_requests(warehouse.con, settings, hours=hours, with_request_hash=True)
        return explain_flags(rollup, flags, dimensions=settings.all_dimensions, requests=requests)


def forecast_report(
    db_path: WarehouseTarget,
    settings: ModelsSettings,
    *,
    by: Sequence[str] = (),
    now: datetime | None = None,
    tz: str = "UTC",
) -> pl.DataFrame:
    """Month-to-date and projected month-end spend per ``by`` value (calendar month in ``tz``)."""
    _check_dimensions(settings, by)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {tz!r}; use an IANA name such as Europe/Paris"
        ) from None
    moment = now or datetime.now(tz=UTC)
    local = moment.astimezone(zone)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    since = (month_start - timedelta(days=16)).astimezone(UTC)
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        rollup = read_rollup(
            warehouse.con, since=since, until=moment, by=list(by), measures=("cost_usd",)
        )
        return forecast_month(rollup, now=moment, scope=list(by), tz=tz)
