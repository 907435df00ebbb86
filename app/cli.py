"""The ``aigw`` command line: thin wrappers over library functions.

Each command parses options, calls one library function and maps ``AigwError``
to one line on stderr (details with ``--verbose``). Exit codes: 0 success,
1 the run finished but some objects failed, 2 the command could not run
(bad option, unreachable source, locked warehouse, bad SQL).
"""

from __future__ import annotations

import csv
import gc
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest import (
    DEFAULT_DB_PATH,
    AigwError,
    IngestSettings,
    IngestSummary,
    ObjectResult,
    QueryResult,
    run_ingest,
    run_query,
)

EXIT_PARTIAL: Final = 1
EXIT_ERROR: Final = 2

cli = typer.Typer(
    name="aigw",
    help="FinOps and control for AI-gateway traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_out = Console(highlight=False, soft_wrap=True)

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="AIGW_DB", help="Warehouse file (DuckDB).", show_default=True),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show details of errors.")]


@contextmanager
def _user_errors(verbose: bool) -> Iterator[None]:
    """Turn errors into one line on stderr and exit code 2; details only when verbose."""
    try:
        yield
    except AigwError as err:
        _err.print(f"error: {err}", markup=False)
        if verbose and err.detail:
            _err.print(err.detail, markup=False)
        raise typer.Exit(EXIT_ERROR) from err
    except KeyboardInterrupt:
        _err.print("interrupted", markup=False)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as err:  # the last line of defence: never a bare traceback
        _err.print(f"error: unexpected {type(err).__name__}: {err}", markup=False)
        if verbose:
            _err.print(traceback.format_exc(), markup=False)
        else:
            _err.print("rerun with --verbose for details", markup=False)
        raise typer.Exit(EXIT_ERROR) from err


@cli.command("ingest")
def ingest_command(
    source: Annotated[str, typer.Argument(help="Folder path or s3://bucket/prefix.")],
    db: DbOption = DEFAULT_DB_PATH,
    endpoint_url: Annotated[
        str | None,
        typer.Option(help="S3-compatible endpoint (R2, MinIO); default: AWS_ENDPOINT_URL or AWS."),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Load Logpush / REST log objects into the warehouse (incremental, idempotent)."""
    settings = IngestSettings(source=source, db_path=db, endpoint_url=endpoint_url)
    with _user_errors(verbose), _progress(verbose) as (on_listed, on_object):
        summary = run_ingest(settings, on_listed=on_listed, on_object=on_object)
    _print_summary(summary)
    if summary.failures:
        for failure in summary.failures:
            _err.print(f"failed: {failure.error}", markup=False)
            if verbose and failure.detail:
                _err.print(failure.detail, markup=False)
        raise typer.Exit(EXIT_PARTIAL)


@cli.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="SQL to run (read-only).")],
    db: DbOption = DEFAULT_DB_PATH,
    output_format: Annotated[
        str, typer.Option("--format", help="table, csv or json.", case_sensitive=False)
    ] = "table",
    verbose: VerboseOption = False,
) -> None:
    """Run read-only SQL on the warehouse."""
    writers = {"table": _write_table, "csv": _write_csv, "json": _write_json}
    writer = writers.get(output_format.lower())
    if writer is None:
        _err.print(
            f"error: unknown --format {output_format!r}; use table, csv or json", markup=False
        )
        raise typer.Exit(EXIT_ERROR)
    with _user_errors(verbose):
        result = run_query(db, query)
    writer(result)


_ObjectCallbacks = tuple[Callable[[int], None] | None, Callable[[ObjectResult], None] | None]


@contextmanager
def _progress(verbose: bool) -> Iterator[_ObjectCallbacks]:
    """Callbacks that drive a progress bar on a terminal and per-object lines when verbose."""
    bar: Progress | None = None
    task = None
    if _err.is_terminal:
        bar = Progress(
            TextColumn("ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("objects"),
            TimeElapsedColumn(),
            console=_err,
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
            _err.print(line, markup=False)

    if bar is None:
        yield on_listed, on_object
        return
    with bar:
        yield on_listed, on_object


def _print_summary(summary: IngestSummary) -> None:
    _out.print(
        f"objects: {summary.objects_seen} seen, {summary.loaded} loaded, "
        f"{summary.unchanged} unchanged, {summary.skipped} skipped, {summary.failed} failed",
        markup=False,
    )
    _out.print(
        f"rows: {summary.rows_loaded:,} loaded, {summary.duplicates:,} duplicates, "
        f"{summary.rejected:,} rejected of {summary.records:,} records "
        f"in {summary.seconds:.1f}s ({summary.rows_per_second:,.0f} rows/s)",
        markup=False,
    )


def _write_table(result: QueryResult) -> None:
    table = Table(show_lines=False)
    for column in result.columns:
        table.add_column(column, overflow="fold")
    for row in result.rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    # Piped output is not cut to 80 columns: the table takes the width it needs.
    console = _out if _out.is_terminal else Console(width=4096, highlight=False)
    console.print(table)


def _write_csv(result: QueryResult) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(result.rows)


def _write_json(result: QueryResult) -> None:
    records = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    sys.stdout.write(orjson.dumps(records, default=_json_default).decode() + "\n")


def _json_default(value: Any) -> Any:
    return str(value)


def main() -> None:
    """Console-script entry point."""
    # Parsing allocates millions of small container objects that live until their batch
    # is stored; a larger first-generation threshold spares most cyclic-GC passes over
    # them (measured: about 7% of parse time). A one-shot command can afford it.
    gc.set_threshold(50_000, 20, 20)
    cli()
