"""``aigw statement``: the month's showback statements, one per team, as HTML and CSV."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from alerts import load_alerts_config
from app.console import ConfigOption, DbOption, VerboseOption, err, out, user_errors
from app.display import count, usd
from app.service import AnyEnvironment, statements_report
from app.settings import load_settings
from app.statement_files import write_statement_files
from ingest import DEFAULT_DB_PATH
from models import allocation_rule

__all__ = ["statement_command"]


def statement_command(
    month: Annotated[str, typer.Option(help="The month, YYYY-MM (UTC).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the files into.")],
    by: Annotated[str, typer.Option(help="The metadata dimension a statement is for.")] = "team",
    unallocated: Annotated[
        str | None,
        typer.Option(
            help="Spend without a team: proportional, owner:TEAM or none "
            "(default: [statements] unallocated in aigw.toml, else proportional).",
        ),
    ] = None,
    budgets: Annotated[
        Path | None,
        typer.Option(
            envvar="AIGW_BUDGETS",
            help="Budgets file whose monthly budgets of one team are shown "
            "(default: ./budgets.toml when present).",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Write one statement per team (and a summary) for a month: HTML that prints to PDF,
    and CSV. Their totals equal `aigw report cost` for the month, to the cent."""
    with user_errors(verbose):
        edge = load_settings(config, os.environ, budgets=budgets)
        rule = (
            allocation_rule(unallocated, where="--unallocated")
            if unallocated is not None
            else edge.statements.unallocated
        )
        budget_list = (
            load_alerts_config(
                edge.budgets_path, dimensions=edge.models.all_dimensions, environ=AnyEnvironment()
            ).budgets
            if edge.budgets_path is not None
            else ()
        )
        report = statements_report(
            edge.warehouse_for(db),
            edge.models,
            month=month,
            by=by,
            rule=rule,
            budgets=budget_list,
        )
        paths = write_statement_files(report.statements, out_dir)
    statements = report.statements
    if report.stale:
        err.print(
            "warning: rollups are behind the warehouse or the settings; run `aigw rollup`",
            markup=False,
        )
    unpriced = int(statements.summary["unpriced_requests"].sum() or 0)
    if unpriced:
        err.print(
            f"warning: {count(unpriced)} requests have no price and are not in the amounts; "
            "add them to the price file",
            markup=False,
        )
    teams = statements.summary["team"].drop_nulls().len()
    if not teams and not statements.total_usd:
        err.print(f"note: no spend in {statements.month}", markup=False)
    out.print(
        f"wrote {teams} {by} statements and a summary for {statements.month} to {out_dir} "
        f"({len(paths)} files): total {usd(statements.total_usd)}, "
        f"{usd(statements.unattributed_usd)} without a {by} "
        f"({'left unallocated' if statements.applied == 'none' else statements.rule})",
        markup=False,
    )
