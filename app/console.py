"""What every ``aigw`` command shares: consoles, options, error mapping, output formats.

Exit codes: 0 success, 1 the run finished but some objects failed, 2 the command
could not run (bad option or config, unreachable source, locked warehouse, bad SQL),
3 the rows loaded but a critical data-quality expectation failed (``--quality fail``),
4 ``aigw alerts run``: the newest data is older than ``--stale-after`` (stale pipeline).
"""

from __future__ import annotations

import csv
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
import typer
from rich.console import Console

from app.tables import exact, fit_table, unit_of
from core.errors import AigwError, ConfigError

__all__ = [
    "EXIT_ERROR",
    "EXIT_PARTIAL",
    "EXIT_QUALITY",
    "EXIT_STALE",
    "ConfigOption",
    "DbOption",
    "FormatOption",
    "VerboseOption",
    "err",
    "out",
    "parse_time",
    "table_width",
    "user_errors",
    "write_json_document",
    "write_rows",
]

EXIT_PARTIAL: Final = 1
EXIT_ERROR: Final = 2
EXIT_QUALITY: Final = 3
EXIT_STALE: Final = 4
FORMATS: Final = ("table", "csv", "json")

# No markup and no emoji codes: what aigw prints (values, names, messages) is shown as is.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
_WIDE = Console(width=4096, highlight=False, markup=False, emoji=False)

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="AIGW_DB", help="Warehouse file (DuckDB).", show_default=True),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="AIGW_CONFIG",
        help="aigw.toml with [models] settings (default: ./aigw.toml when present).",
    ),
]
FormatOption = Annotated[
    str, typer.Option("--format", help="table, csv or json.", case_sensitive=False)
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show details of errors.")]


@contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Turn errors into one line on stderr and exit code 2; details only when verbose."""
    try:
        yield
    except AigwError as error:
        err.print(f"error: {error}", markup=False)
        if verbose and error.detail:
            err.print(error.detail, markup=False)
        raise typer.Exit(EXIT_ERROR) from error
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # The reader stopped reading (`aigw … | head`): nothing is wrong and nothing more
        # can be said; stdout goes to /dev/null so that the exit does not fail a flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:  # the last line of defence: never a bare traceback
        err.print(f"error: unexpected {type(error).__name__}: {error}", markup=False)
        if verbose:
            err.print(traceback.format_exc(), markup=False)
        else:
            err.print("rerun with --verbose for details", markup=False)
        raise typer.Exit(EXIT_ERROR) from error


def check_format(output_format: str) -> str:
    """The format in lower case, or a one-line error and exit 2."""
    lowered = output_format.lower()
    if lowered not in FORMATS:
        err.print(
            f"error: unknown --format {output_format!r}; use table, csv or json", markup=False
        )
        raise typer.Exit(EXIT_ERROR)
    return lowered


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO date or date-time (UTC unless it has an offset); ConfigError otherwise."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} is not a date (use YYYY-MM-DD or ISO 8601)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def write_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    output_format: str,
    *,
    units: bool = True,
    pick: Sequence[str] | None = None,
) -> None:
    """Print rows as a table fitted to the terminal (``app.tables``), CSV, or a JSON
    array of objects. ``pick`` keeps those columns in that order (``--columns``);
    ``units`` formats report columns by unit (``aigw sql`` passes False)."""
    if pick:
        unknown = [name for name in pick if name not in columns]
        if unknown:
            raise ConfigError(
                f"--columns: no column {unknown[0]!r}; the columns are {', '.join(columns)}"
            )
        indexes = [list(columns).index(name) for name in pick]
        columns = list(pick)
        rows = [[row[index] for index in indexes] for row in rows]
    kinds = [unit_of(name) if units else "plain" for name in columns]
    if output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(
            [_plain(exact(value, kind)) for value, kind in zip(row, kinds, strict=True)]
            for row in rows
        )
    elif output_format == "json":
        records = [
            {
                name: exact(value, kind)
                for name, value, kind in zip(columns, row, kinds, strict=True)
            }
            for row in rows
        ]
        sys.stdout.write(orjson.dumps(records, default=str).decode() + "\n")
    elif rows or not units:  # an empty report is not drawn: its command says why
        fitted = fit_table(columns, rows, width=table_width(), units=units)
        # Piped output without COLUMNS is not cut to 80 columns: the table takes its width.
        console = out if out.is_terminal or "COLUMNS" in os.environ else _WIDE
        console.print(fitted.table)
        if fitted.hidden:
            err.print(
                f"note: {len(fitted.hidden)} columns left out to fit {table_width()} "
                f"characters: {', '.join(fitted.hidden)} (choose with --columns, "
                "or use --format csv)",
                markup=False,
            )


def table_width() -> int | None:
    """The width tables fit: the terminal's (or ``COLUMNS``); None when piped without it."""
    return out.width if out.is_terminal or "COLUMNS" in os.environ else None


def write_json_document(document: Any) -> None:
    """Print one JSON document (dates as ISO 8601)."""
    sys.stdout.write(orjson.dumps(document, default=str).decode() + "\n")


def _plain(value: Any) -> Any:
    """Dates as ISO strings; everything else as it is."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
