"""The ``aigw`` command line: thin wrappers over library functions.

Each command parses options, calls one library function and maps ``AigwError``
to one line on stderr (details with ``--verbose``); see ``app.console`` for the
exit codes. Report and export commands live in ``app.reports_cli``.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alerts import load_alerts_config
from app.alerts_cli import alerts_app
from app.console import (
    EXIT_PARTIAL,
    EXIT_QUALITY,
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
from app.lake_cli import maintain_command
from app.mock_cli import mock_provider_command
from app.proxy_cli import proxy_command, simulate_command
from app.reconcile_cli import reconcile_app
from app.reports_cli import export_app, report_app, resolve_settings, warehouse
from app.service import ingest_and_refresh, refresh
from app.settings import load_settings
from app.statement_cli import statement_command
from app.unit_cost_cli import unit_cost_command
from app.watch import parse_interval, print_quality, print_refreshed, run_watch
from app.whatif_cli import savings_command, whatif_command
from core.errors import ConfigError
from core.warehouse import run_sql
from ingest import (
    DEFAULT_DB_PATH,
    IngestSettings,
    IngestSummary,
    ObjectResult,
    WatchSettings,
    check_quality_mode,
)

cli = typer.Typer(
    name="aigw",
    help="FinOps and control for AI-gateway traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts say [models] and [ingest]: never read them as markup
)
cli.add_typer(report_app, name="report")
cli.add_typer(export_app, name="export")
cli.add_typer(alerts_app, name="alerts")
cli.command("proxy")(proxy_command)
cli.command("simulate")(simulate_command)
cli.command("mock-provider")(mock_provider_command)
cli.command("dashboard")(dashboard_command)
cli.command("maintain")(maintain_command)
cli.command("statement")(statement_command)
report_app.command("unit-cost")(unit_cost_command)
cli.command("whatif")(whatif_command)
report_app.command("savings")(savings_command)
cli.add_typer(reconcile_app, name="reconcile")


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
    quality: Annotated[
        str | None,
        typer.Option(
            help="Data-quality gate: fail (exit 3 on a critical failure), warn or off "
            "(default: [ingest] quality in aigw.toml, else fail)."
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep loading new objects until stopped.")
    ] = False,
    interval: Annotated[
        str | None, typer.Option(help="Watch mode: time between listings (default 30s).")
    ] = None,
    sqs_queue_url: Annotated[
        str | None,
        typer.Option(help="Watch mode: SQS queue receiving the bucket's S3 event notifications."),
    ] = None,
    late_days: Annotated[
        int,
        typer.Option(
            min=0,
            max=366,
            help="Watch mode: at start and then hourly, also list this many day folders back "
            "for objects delivered late.",
        ),
    ] = 7,
    budgets: Annotated[
        Path | None,
        typer.Option(
            envvar="AIGW_BUDGETS",
            help="Watch mode: evaluate these budgets after each batch "
            "(default: ./budgets.toml when present).",
        ),
    ] = None,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Load Logpush / REST log objects into the warehouse, check them, refresh the rollups."""
    with user_errors(verbose):
        check_endpoint_url(endpoint_url)
        edge = load_settings(config, os.environ, budgets=budgets)
        models_settings, file_options = edge.models, edge.ingest
        settings = IngestSettings(
            source=source,
            db_path=edge.warehouse_for(db),
            endpoint_url=endpoint_url,
            private_key=private_key,
            private_key_pem=edge.private_key_pem if private_key is None else None,
            quality=check_quality_mode(quality or file_options.quality or "fail"),
        )
        if watch:
            every = interval or file_options.interval
            options = WatchSettings(
                interval=parse_interval(every or "30s"),
                sqs_queue_url=sqs_queue_url or file_options.sqs_queue_url,
                late_days=late_days,
            )
            if options.sqs_queue_url and not source.startswith("s3://"):
                raise ConfigError("--sqs-queue-url needs an s3:// source")
            alerts_config = (
                load_alerts_config(edge.budgets_path, dimensions=models_settings.all_dimensions)
                if edge.budgets_path is not None
                else None
            )
            with _progress(verbose, bar=False) as (_, on_object):
                code = run_watch(
                    settings,
                    options,
                    models_settings=models_settings,
                    alerts_config=alerts_config,
                    on_object=on_object,
                )
            raise typer.Exit(code)
        if interval or sqs_queue_url:
            raise ConfigError("--interval and --sqs-queue-url need --watch")
        # SIGTERM (a supervisor, a container's stop) stops as Ctrl-C does: the object in
        # hand is not committed, the quality gate's process and its handed-over rows are
        # removed, a warehouse this run created is removed; exit 130
        signal.signal(signal.SIGTERM, _interrupt)
        with _progress(verbose) as (on_listed, on_object):
            outcome = ingest_and_refresh(
                settings,
                models_settings,
                on_listed=on_listed,
                on_object=on_object,
                on_loaded=_print_loaded,
            )
        summary, refreshed = outcome.summary, outcome.refreshed
    print_refreshed(refreshed)
    if summary.failures:
        for failure in summary.failures:
            err.print(f"failed: {failure.error}", markup=False)
            if verbose and failure.detail:
                err.print(failure.detail, markup=False)
    if summary.quality is not None and summary.quality.gate_failed:
        raise typer.Exit(EXIT_QUALITY)
    if summary.failures:
        raise typer.Exit(EXIT_PARTIAL)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """A signal handler that stops the command as Ctrl-C does."""
    raise KeyboardInterrupt


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
        result = refresh(warehouse(db, config), resolve_settings(config), full=full)
    kind = "rebuilt" if result.full else f"{result.hours:,} hours refreshed"
    out.print(f"rollups: {kind} ({result.rows:,} rows written)", markup=False)


@cli.command("sql")
def sql_command(
    query: Annotated[str, typer.Argument(help="SQL to run (read-only); ';' separates statements.")],
    db: DbOption = DEFAULT_DB_PATH,
    output_format: FormatOption = "table",
    columns: Annotated[
        str | None, typer.Option("--columns", help="Columns to show, comma-separated.")
    ] = None,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run read-only SQL on the warehouse: every statement's rows, in order.

    The connection reads only the warehouse: COPY … TO, ATTACH, reading other files,
    INSTALL and SET are refused (save results with --format csv > FILE).
    """
    chosen = check_format(output_format)
    pick = [part.strip() for part in (columns or "").split(",") if part.strip()]
    with user_errors(verbose):
        results = [result for result in run_sql(warehouse(db, config), query) if result.columns]
        if chosen != "table" and len(results) > 1:
            raise ConfigError(
                f"--format {chosen} prints one result; the SQL has {len(results)} statements "
                "that return rows (run them one at a time)"
            )
        for number, result in enumerate(results):
            if len(results) > 1:
                out.print(("" if number == 0 else "\n") + f"-- {result.statement}")
            write_rows(result.columns, result.rows, chosen, units=False, pick=pick or None)


_ObjectCallbacks = tuple[Callable[[int], None] | None, Callable[[ObjectResult], None] | None]


@contextmanager
def _progress(verbose: bool, *, bar: bool = True) -> Iterator[_ObjectCallbacks]:
    """Callbacks that drive a progress bar on a terminal (unless ``bar`` is False) and
    per-object lines when verbose."""
    progress: Progress | None = None
    task = None
    if bar and err.is_terminal:
        progress = Progress(
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
        if progress is not None:
            task = progress.add_task("ingest", total=total)

    def on_object(result: ObjectResult) -> None:
        if progress is not None and task is not None:
            progress.advance(task)
        if verbose and result.status != "unchanged":
            counts = result.counts
            line = f"{result.status} {result.key}"
            if result.status == "loaded":
                line += (
                    f": {counts.loaded} rows, {counts.duplicates} duplicates, "
                    f"{counts.rejected} rejected"
                )
            err.print(line, markup=False)

    if progress is None:
        yield on_listed, on_object
        return
    with progress:
        yield on_listed, on_object


def _print_loaded(summary: IngestSummary) -> None:
    """What the load and its quality gate did (printed before the rollups' line; the
    refresh overlaps the gate's check, so both are done by then)."""
    _print_summary(summary)
    print_quality(summary.quality)


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
    if summary.locked_metadata:
        out.print(
            f"attribution: {summary.locked_metadata:,} requests without attribution: "
            "Metadata is encrypted; pass --private-key",
            markup=False,
        )


def check_endpoint_url(url: str | None) -> None:
    """``ConfigError`` unless ``url`` (when given) is an http(s) URL with a host."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(
            f"--endpoint-url {url!r} is not a URL; give http(s)://host[:port], "
            "e.g. https://ACCOUNT.r2.cloudflarestorage.com"
        )


def main() -> None:
    """Console-script entry point."""
    # Parsing allocates millions of small container objects that live until their batch
    # is stored; a larger first-generation threshold spares most cyclic-GC passes over
    # them (measured: about 7% of parse time). A one-shot command can afford it.
    gc.set_threshold(50_000, 20, 20)
    cli()
