"""``aigw report …`` and ``aigw export …``: spend reports and exports from the rollups."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from app.console import (
    ConfigOption,
    DbOption,
    FormatOption,
    VerboseOption,
    check_format,
    err,
    out,
    parse_time,
    user_errors,
    write_json_document,
    write_rows,
)
from app.display import usd_fine
from app.service import (
    anomaly_report,
    cache_report,
    cost_report,
    data_span,
    explain_anomalies,
    export_focus,
    forecast_report,
    reconcile_report,
)
from app.settings import load_settings
from app.tables import exact_dicts
from core.errors import ConfigError
from core.lake import WarehouseTarget
from ingest import DEFAULT_DB_PATH
from models import ModelsSettings, RootCauses

__all__ = ["export_app", "report_app", "resolve_settings"]

report_app = typer.Typer(
    help="Spend, cost drift (reconcile), cache, anomaly, forecast, unit-cost and savings reports.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts say [models]: never read them as markup
)
export_app = typer.Typer(
    help="Exports (FinOps FOCUS).", no_args_is_help=True, rich_markup_mode=None
)

SinceOption = Annotated[
    str | None, typer.Option("--since", help="From this date or time (UTC), inclusive.")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Until this date or time (UTC), exclusive.")
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Columns to show, comma-separated, by their --format csv names "
        "(default: all that fit the terminal).",
    ),
]


def resolve_settings(config: Path | None) -> ModelsSettings:
    """The models' settings of ``aigw.toml`` (see ``app.settings``), built at the edge."""
    return load_settings(config, os.environ).models


def warehouse(db: Path, config: Path | None) -> WarehouseTarget:
    """The warehouse ``--db`` and ``aigw.toml`` name (see ``app.settings``)."""
    return load_settings(config, os.environ).warehouse_for(db)


def _say_empty(
    db: WarehouseTarget,
    what: str,
    *,
    since: str | None,
    until: str | None,
    where: list[str] | None = None,
) -> None:
    """One line on stderr saying why a report has no rows: the filter, the window, or
    an empty warehouse, with the span of data there is."""
    span = data_span(db)
    if span is None:
        err.print(f"no {what}: the warehouse has no data yet; run `aigw ingest`", markup=False)
        return
    asked = [f"--where {item}" for item in where or []]
    asked += [f"--since {since}"] if since else []
    asked += [f"--until {until}"] if until else []
    first, end = span
    err.print(
        f"no {what} matches {' '.join(asked) or 'the report'}; the data covers "
        f"{first:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
        markup=False,
    )


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _filters(values: list[str] | None) -> dict[str, str]:
    filters = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--where {item!r} must be dimension=value")
        filters[name.strip()] = value
    return filters


@report_app.command("cost")
def report_cost(
    by: Annotated[
        str, typer.Option(help="Dimensions, comma-separated (e.g. model,team).")
    ] = "provider,model",
    grain: Annotated[str | None, typer.Option(help="hour, day, week or month.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    top: Annotated[
        int | None, typer.Option(help="Keep the N biggest, sum the rest as 'other'.")
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="Filter dimension=value (repeatable).")
    ] = None,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    columns: ColumnsOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Cost, requests, tokens and savings by any dimensions and time grain."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        report = cost_report(
            warehouse(db, config),
            resolve_settings(config),
            by=_split(by),
            grain=grain,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            top=top,
            filters=_filters(where),
        )
    if report.stale:
        err.print(
            "warning: rollups are behind the warehouse or the settings; run `aigw rollup`",
            markup=False,
        )
    if report.unpriced:
        total = sum(count for _, _, count in report.unpriced)
        models = ", ".join(f"{provider}/{model}" for provider, model, _ in report.unpriced[:5])
        err.print(
            f"warning: {total:,} requests have no price and are not in cost_usd ({models}); "
            "add them to the price file",
            markup=False,
        )
    if report.saved_estimated_usd:
        err.print(
            f"note: {usd_fine(report.saved_estimated_usd)} of saved_usd is estimated (cache "
            "hits logged without token counts; docs/costs.md)",
            markup=False,
        )
    with user_errors(verbose):
        write_rows(report.table.columns, report.table.rows(), chosen, pick=_split(columns))
        if report.table.is_empty():
            _say_empty(warehouse(db, config), "spend", since=since, until=until, where=where)


@report_app.command("reconcile")
def report_reconcile(
    since: SinceOption = None,
    until: UntilOption = None,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    columns: ColumnsOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Drift between the gateway's logged cost and aigw's recomputed cost, per model."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        table = reconcile_report(
            warehouse(db, config),
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
        )
        write_rows(table.columns, table.rows(), chosen, pick=_split(columns))
        if table.is_empty():
            _say_empty(warehouse(db, config), "requests", since=since, until=until)


@report_app.command("cache")
def report_cache(
    by: Annotated[str, typer.Option(help="Dimensions (default: the route).")] = "gateway,endpoint",
    grain: Annotated[str | None, typer.Option(help="hour, day, week or month.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    candidates: Annotated[int, typer.Option(help="How many cache candidates to list.")] = 10,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    verbose: VerboseOption = False,
) -> None:
    """Cache hit ratio (by requests and by would-be cost), savings, and cache candidates."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        report = cache_report(
            warehouse(db, config),
            resolve_settings(config),
            by=_split(by),
            grain=grain,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            candidates=candidates,
        )
    if report.summary.is_empty():
        with user_errors(verbose):
            _say_empty(warehouse(db, config), "requests", since=since, until=until)
    if chosen == "json":
        write_json_document(
            {"summary": exact_dicts(report.summary), "candidates": exact_dicts(report.candidates)}
        )
        return
    saved, estimated = (
        float(report.summary[name].sum() or 0.0) for name in ("saved_usd", "saved_estimated_usd")
    )
    summary = report.summary
    if chosen == "table" and not estimated:  # a column of $0.0000: left out so the table fits
        summary = summary.drop("saved_estimated_usd", strict=False)
    write_rows(summary.columns, summary.rows(), chosen)
    if chosen == "table" and estimated:
        out.print(
            f"of which estimated: {usd_fine(estimated)} of {usd_fine(saved)} saved "
            "(hits without token counts: the cost of the same request's miss, else "
            "the model's median that day; docs/costs.md)",
            markup=False,
        )
    if chosen == "table" and candidates:
        if report.candidates.is_empty():
            out.print("cache candidates: none (no identical request was served twice)")
            return
        out.print("cache candidates (identical requests served more than once):", markup=False)
        write_rows(report.candidates.columns, report.candidates.rows(), chosen)


@export_app.command("focus")
def export_focus_command(
    path: Annotated[Path, typer.Argument(help="OUT.parquet or OUT.csv")],
    since: SinceOption = None,
    until: UntilOption = None,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """FinOps FOCUS 1.2 rows: one per day x gateway x provider x model x key x dimensions x
    priced meter (input, output, cache read, cache write 5m and 1h; logged cost)."""
    with user_errors(verbose):
        rows = export_focus(
            warehouse(db, config),
            resolve_settings(config),
            path,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
        )
    out.print(f"wrote {rows:,} FOCUS rows to {path}", markup=False)


@report_app.command("anomalies")
def report_anomalies(
    scope: Annotated[
        str, typer.Option(help="Dimension to watch: agent, api_key, user, …")
    ] = "agent",
    now: Annotated[
        str | None, typer.Option(help="End of the window (default: end of the newest data).")
    ] = None,
    hours: Annotated[int, typer.Option(help="Window length in hours.")] = 24,
    min_score: Annotated[float, typer.Option(help="Robust z-score that flags.")] = 6.0,
    min_impact: Annotated[float, typer.Option(help="Smallest spend impact (USD) to report.")] = 0.0,
    min_repeats: Annotated[
        int, typer.Option(help="Identical requests in an hour that make a runaway loop.")
    ] = 20,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    columns: ColumnsOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Hours whose spend or request rate per agent (or key, user…) left its usual band,
    each with its root cause: the cells of the other dimensions that explain most of its
    excess (a line per flagged hour; --format json carries the whole breakdown)."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        target, settings = warehouse(db, config), resolve_settings(config)
        flags = anomaly_report(
            target,
            settings,
            scope=scope,
            now=parse_time(now, "--now"),
            window=timedelta(hours=hours),
            min_score=min_score,
            min_impact_usd=min_impact,
            min_repeats=min_repeats,
        )
        causes = explain_anomalies(target, settings, flags)
        _write_anomalies(flags, causes, chosen, _split(columns))
    if flags.is_empty():
        err.print(
            f"no anomalies: no {scope} left its usual band in the {hours} hours before "
            + (now or "the end of the newest data"),
            markup=False,
        )


def _write_anomalies(
    flags: pl.DataFrame, causes: RootCauses, chosen: str, pick: list[str] | None
) -> None:
    """Flags with their root cause: JSON objects with a ``root_cause`` object (summary,
    ``cells``, ``breakdown``; null for repeated prompts alone), a ``root_cause`` column
    (the headline) in CSV, and a line per flagged hour under the table."""
    keys = ["value", "hour"]
    headlines = causes.summary.select(*keys, pl.col("headline").alias("root_cause"))
    if chosen == "json":
        explained: dict[tuple[Any, Any], dict[str, Any]] = {}
        for summary in exact_dicts(causes.summary.drop("scope")):
            key = (summary.pop("value"), summary.pop("hour"))
            within = (pl.col("value").eq_missing(key[0])) & (pl.col("hour") == key[1])
            summary["cells"] = exact_dicts(causes.cells.filter(within).drop(_FLAG_KEYS))
            summary["breakdown"] = exact_dicts(causes.breakdown.filter(within).drop(_FLAG_KEYS))
            explained[key] = summary
        rows = exact_dicts(flags)
        for row in rows:
            row["root_cause"] = explained.get((row["value"], row["hour"]))
        write_json_document(rows)
        return
    if chosen == "csv":
        table = flags.join(headlines, on=keys, how="left", nulls_equal=True)
        write_rows(table.columns, table.rows(), chosen, pick=pick)
        return
    write_rows(flags.columns, flags.rows(), chosen, pick=pick)
    for row in headlines.iter_rows(named=True):
        value = "(none)" if row["value"] is None else row["value"]
        scope = flags["scope"][0]
        out.print(
            f"root cause, {scope}={value} at {row['hour']:%Y-%m-%d %H:%M} UTC: {row['root_cause']}",
            markup=False,
            soft_wrap=True,
        )


_FLAG_KEYS = ("scope", "value", "hour", "measure")


@report_app.command("forecast")
def report_forecast(
    by: Annotated[str, typer.Option(help="Dimensions, comma-separated (default: the total).")] = "",
    now: Annotated[str | None, typer.Option(help="As of this time (default: now).")] = None,
    tz: Annotated[str, typer.Option(help="Time zone of the calendar month.")] = "UTC",
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    columns: ColumnsOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Month-to-date spend and projected month-end spend with an interval."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        moment = parse_time(now, "--now")
        table = forecast_report(
            warehouse(db, config), resolve_settings(config), by=_split(by), now=moment, tz=tz
        )
        write_rows(table.columns, table.rows(), chosen, pick=_split(columns))
        if table.is_empty():
            span = data_span(warehouse(db, config))
            when = f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "now"
            ends = f"; the data ends {span[1]:%Y-%m-%d %H:%M} UTC" if span else ""
            err.print(
                f"no forecast: no spend in the month up to {when}{ends} "
                "(pass --now within the data)",
                markup=False,
            )
