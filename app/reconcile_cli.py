"""``aigw reconcile invoice FILE…``: provider bills against the gateway's cost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.console import (
    ConfigOption,
    DbOption,
    FormatOption,
    VerboseOption,
    check_format,
    out,
    user_errors,
    write_json_document,
    write_rows,
)
from app.display import usd_fine
from app.reports_cli import ColumnsOption, _split, warehouse
from app.service.invoices import reconcile_invoices
from app.tables import exact_dicts
from ingest import DEFAULT_DB_PATH

__all__ = ["reconcile_app"]

reconcile_app = typer.Typer(
    help="Compare provider bills with the gateway's cost.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@reconcile_app.command("invoice")
def reconcile_invoice(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Provider cost exports: OpenAI Costs API or Anthropic cost report pages "
            "(JSON), or a CSV with date,provider,model,amount_usd.",
        ),
    ],
    tolerance: Annotated[
        float,
        typer.Option(help="A cell matches when invoice and gateway are this close (USD)."),
    ] = 0.01,
    db: DbOption = DEFAULT_DB_PATH,
    config: ConfigOption = None,
    output_format: FormatOption = "table",
    columns: ColumnsOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Import provider bills (all files or none; a file imported again replaces its rows)
    and compare them per UTC day, provider and model with aigw's effective and logged
    cost, with a likely cause for each difference."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        report = reconcile_invoices(warehouse(db, config), files, tolerance_usd=tolerance)
        cells, summary = report.cells, report.summary
        if chosen == "json":
            write_json_document({"summary": summary, "cells": exact_dicts(cells)})
            return
        write_rows(cells.columns, cells.rows(), chosen, pick=_split(columns))
    if chosen == "table":
        out.print(
            f"imported {report.imported_rows:,} rows from {len(files):,} files; "
            f"invoice {usd_fine(summary['invoice_usd'])}, "
            f"gateway {usd_fine(summary['cost_usd'])} "
            f"(logged {usd_fine(summary['cost_logged'])}), "
            f"matched {usd_fine(summary['matched_usd'])}, "
            f"difference {usd_fine(summary['difference_usd'])}",
            markup=False,
        )
        for cause, amount in summary["difference_by_cause"].items():
            if cause != "matched":
                out.print(f"  {cause}: {usd_fine(amount)}", markup=False)
