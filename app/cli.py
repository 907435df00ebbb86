"""The ``aigw`` command line: thin wrappers over library functions.

Each command parses options, calls one library function and maps ``AigwError``
to one line on stderr (details with ``--verbose``); see ``app.console`` for the
exit codes. Report and export commands live in ``app.reports_cli``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.alerts_cli import alerts_app
from app.console import (
    EXIT_PARTIAL,
    ConfigOption,
    DbOption,
    FormatOption,
    VerboseOption,
    check_format,
    err,
    out,
    user_errors,
    write_rows,
)
from app.dashboard_cli import dashboard_command
from app.reports_cli import export_app, report_app, resolve_settings
from ingest import (
    DEFAULT_DB_PATH,
    IngestSettings,
    IngestSummary,
    ObjectResult,
    run_ingest,
    run_query,
)
from models import refresh

cli = typer.Typer(
    name="aigw",
    help="FinOps and control for AI-gateway traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cli.add_typer(report_app, name="report")
cli.add_typer(export_app, name="export")
cli.add_typer(alerts_app, name="alerts")
cli.command("dashboard")(dashboard_command)


@cli.command("ingest")
def ingest_command(
    source: Annotated[str, typer.Argument(help="Folder path or s3://bucket/prefix.")],
    db: DbOption = DEFAULT_DB_PATH,
    endpoint_url: Annotated[
        str | None,
        typer.Option(help="S3-compatible endpoint (R2, MinIO); default: AWS_ENDPOINT_URL or AWS."),
    ] = None,
    private_key: Annotated[
        Path | None,
        typer.Option(
            envvar="AIGW_PRIVATE_KEY_FILE",
            help="PEM private key that opens encrypted Logpush fields "
            "(or the PEM itself in AIGW_PRIVATE_KEY).",
        ),
    ] = None,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Load Logpush / REST log objects into the warehouse, then refresh the rollups."""
    pem = os.environ.get("AIGW_PRIVATE_KEY") if private_key is None else None
    settings = IngestSettings(
        source=source,
        db_path=db,
        endpoint_url=endpoint_url,
        private_key=private_key,
        private_key_pem=pem.encode() if pem else None,
    )
    with user_errors(verbose):
        models_settings = resolve_settings(config)
        with _progress(verbose) as (on_listed, on_object):
            summary = run_ingest(settings, on_listed=on_listed, on_object=on_object)
        _print_summary(summary)
        refreshed = refresh(db, models_settings)
    if refreshed.full:
        out.print(f"rollups: rebuilt ({refreshed.rows:,} rows)", markup=False)
    elif refreshed.hours:
        out.print(f"rollups: {refreshed.hours:,} hours refreshed", markup=False)
    if summary.failures:
        for failure in summary.failures:
            err.print(f"failed: {failure.error}", markup=False)
            if verbose and failure.detail:
                err.print(failure.detail, markup=False)
        raise typer.Exit(EXIT_PARTIAL)


@cli.command("rollup")
def rollup_command(
    db: DbOption = DEFAULT_DB_PATH,
    full: Annotated[
        bool, typer.Option(help="Rebuild every hour, not only the touched ones.")
    ] = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Bring the hourly rollups up to date (aigw ingest does this after each load)."""
    with user_errors(verbose):
        result = refresh(db, resolve_settings(config), full=full)
    kind = "rebuilt" if result.full else f"{result.hours:,} hours refreshed"
    out.print(f"rollups: {kind} ({result.rows:,} rows written)", markup=False)


@cli.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="SQL to run (read-only).")],
    db: DbOption = DEFAULT_DB_PATH,
    output_format: FormatOption = "table",
    verbose: VerboseOption = False,
) -> None:
    """Run read-only SQL on the warehouse."""
    chosen = check_format(output_format)
    with user_errors(verbose):
        result = run_query(db, query)
    write_rows(result.columns, result.rows, chosen)


_ObjectCallbacks = tuple[Callable[[int], None] | None, Callable[[ObjectResult], None] | None]


@contextmanager
def _progress(verbose: bool) -> Iterator[_ObjectCallbacks]:
    """Callbacks that drive a progress bar on a terminal and per-object lines when verbose."""
    bar: Progress | None = None
    task = None
    if err.is_terminal:
        bar = Progress(
            TextColumn("ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("objects"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )

    def on_listed(total: int) -> None:
        nonlocal task
        if bar is not None:
            task = bar.add_task("ingest", total=total)

    def on_object(result: ObjectResult) -> None:
        if bar is not None and task is not None:
            bar.advance(task)
        if verbose and result.status != "unchanged":
            counts = result.counts
            line = f"{result.status} {result.key}"
            if result.status == "loaded":
                line += (
                    f": {counts.loaded} rows, {counts.duplicates} duplicates, "
                    f"{counts.rejected} rejected"
                )
            err.print(line, markup=False)

    if bar is None:
        yield on_listed, on_object
        return
    with bar:
        yield on_listed, on_object


def _print_summary(summary: IngestSummary) -> None:
    out.print(
        f"objects: {summary.objects_seen} seen, {summary.loaded} loaded, "
        f"{summary.unchanged} unchanged, {summary.skipped} skipped, {summary.failed} failed",
        markup=False,
    )
    out.print(
        f"rows: {summary.rows_loaded:,} loaded, {summary.duplicates:,} duplicates, "
        f"{summary.rejected:,} rejected of {summary.records:,} records "
        f"in {summary.seconds:.1f}s ({summary.rows_per_second:,.0f} rows/s)",
        markup=False,
    )
    if summary.decrypt_errors:
        out.print(
            f"decryption: {summary.decrypt_errors:,} rows kept with a field that did not "
            "open (see requests.decrypt_error)",
            markup=False,
        )


def main() -> None:
    """Console-script entry point."""
    # Parsing allocates millions of small container objects that live until their batch
    # is stored; a larger first-generation threshold spares most cyclic-GC passes over
    # them (measured: about 7% of parse time). A one-shot command can afford it.
    gc.set_threshold(50_000, 20, 20)
    cli()
