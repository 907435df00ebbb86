"""``aigw report unit-cost``: what one conversation, ticket, session or job costs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

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
from app.service import unit_cost_report
from app.settings import load_settings
from app.tables import exact_dicts
from core.errors import ConfigError
from ingest import DEFAULT_DB_PATH

__all__ = ["unit_cost_command"]


def unit_cost_command(
    per: Annotated[
        str | None,
        typer.Option(
            help="The metadata key that names a unit: conversation_id, ticket_id… "
            "(default: [outcomes] unit_key in aigw.toml)."
        ),
    ] = None,
    by: Annotated[str | None, typer.Option(help="Also per this dimension (agent, team…).")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this date or time (UTC), inclusive.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Until this date or time (UTC), exclusive.")
    ] = None,
    top: Annotated[int, typer.Option(help="How many of the most expensive units to list.")] = 10,
    outcomes: Annotated[
        Path | None,
        typer.Option(help="CSV of unit_id,outcome,value: adds cost per outcome."),
    ] = None,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    verbose: VerboseOption = False,
) -> None:
    """Units, cost per unit (mean, p50, p95, max), the most expensive units and the
    weekly trend (--format csv: the summary; json: everything)."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        edge = load_settings(config, os.environ)
        key = per or edge.outcomes.unit_key
        if not key:
            raise ConfigError(
                "name the unit's metadata key: --per conversation_id, or "
                '[outcomes] unit_key = "conversation_id" in aigw.toml'
            )
        report = unit_cost_report(
            edge.warehouse_for(db),
            edge.models,
            unit_key=key,
            by=by,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            top=top,
            outcomes=outcomes,
        )
    if report.stale:
        err.print(
            "warning: rollups are behind the warehouse or the settings; run `aigw rollup`",
            markup=False,
        )
    costs = report.costs
    if not int(costs.summary["units"].sum()):
        err.print(
            f"no units: no request in the window has the metadata key {key!r}",
            markup=False,
        )
    parts = {"summary": costs.summary, "top": costs.top, "weekly": costs.weekly}
    if costs.outcomes is not None:
        parts["outcomes"] = costs.outcomes
    if chosen == "json":
        write_json_document({name: exact_dicts(frame) for name, frame in parts.items()})
        return
    write_rows(costs.summary.columns, costs.summary.rows(), chosen)
    if chosen == "csv":
        return
    titles = {
        "top": f"most expensive {key} values:",
        "weekly": "by week of the first request (UTC, from Monday):",
        "outcomes": "by outcome (cost per outcome: every unit's cost over the units with it):",
    }
    for name, frame in parts.items():
        if name != "summary" and not frame.is_empty():
            out.print(titles[name], markup=False)
            shown = frame.rename({"unit": key}) if "unit" in frame.columns else frame
            write_rows(shown.columns, shown.rows(), chosen)
