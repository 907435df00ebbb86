"""Rows for people and for programs: ``--format table``, ``csv`` and ``json``.

Tables (people): each value formatted by its column's unit (``app.display``: money,
ratios, counts; times in UTC, a column of midnights as dates), escaped (cell text is
never read as rich markup or emoji codes), and fitted to the terminal by leaving out
columns from the right, which the caller names on stderr (``--columns`` picks). CSV
and JSON (programs): exact values without binary noise: money rounded to a billionth
of a dollar, other floats to 12 significant digits, times in ISO 8601.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Final

import polars as pl
from rich.table import Table
from rich.text import Text

from app import display

__all__ = ["Fitted", "exact", "exact_dicts", "fit_table", "unit_of"]

_MONEY_DIGITS: Final = 9  # a billionth of a dollar: below any price per token
_BORDER: Final = 3  # a rich table column's padding and rule, in cells


def unit_of(name: str) -> str:
    """The unit a report column's name says: money, ratio, percent, count or plain."""
    if name.endswith(("_ratio", "_share")):
        return "ratio"
    if name.endswith("_usd") or name.startswith("cost_"):
        return "money"
    if name.endswith("_pct"):
        return "percent"
    if name.endswith(("requests", "_tokens")) or name.startswith("tokens"):
        return "count"
    return "plain"


def exact(value: Any, unit: str = "plain") -> Any:
    """A value for CSV or JSON: money to 1e-9 USD, other floats to 12 significant digits
    (``4.978219483999999`` -> ``4.978219484``); decimals as floats; everything else as is."""
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        rounded = round(value, _MONEY_DIGITS) if unit == "money" else float(f"{value:.12g}")
        return rounded + 0.0  # no "-0.0"
    return value


def exact_dicts(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready objects of ``exact`` values."""
    units = {name: unit_of(name) for name in frame.columns}
    return [
        {name: exact(value, units[name]) for name, value in row.items()}
        for row in frame.iter_rows(named=True)
    ]


@dataclass(frozen=True, slots=True)
class Fitted:
    """A table ready to print, and the columns left out to fit the width."""

    table: Table
    hidden: list[str]


def fit_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    width: int | None,
    units: bool,
) -> Fitted:
    """A rich table of ``rows`` no wider than ``width`` cells (None: any width).

    With ``units`` (reports), headers are human labels and values use ``app.display``;
    without (``aigw sql``), headers and values stay as the query gave them, only tidied.
    Columns are kept by ``_priority`` while they fit, shown in their own order; the
    first one always (text folds).
    """
    kinds = [unit_of(name) if units else "plain" for name in columns]
    cells = [
        _column_cells([row[index] for row in rows], kinds[index], units=units)
        for index in range(len(columns))
    ]
    headers = [display.column_label(name) if units else name for name in columns]
    keep: list[int] = []
    used = 1  # the table's left rule
    numeric = [_numeric(rows, index) for index in range(len(columns))]
    order = sorted(range(len(columns)), key=lambda i: _priority(columns[i], kinds[i], numeric[i]))
    for index in order:
        needed = max([Text(headers[index]).cell_len, *(Text(c).cell_len for c in cells[index])])
        if width is not None and keep and used + needed + _BORDER > width:
            continue
        keep.append(index)
        used += needed + _BORDER
    keep.sort()
    table = Table(show_lines=False)
    for index in keep:
        table.add_column(
            Text(headers[index]),
            justify="right" if numeric[index] else "left",
            no_wrap=numeric[index],
            overflow="fold",
        )
    for number in range(len(rows)):
        table.add_row(*(Text(cells[index][number]) for index in keep))
    hidden = [columns[index] for index in range(len(columns)) if index not in keep]
    return Fitted(table, hidden)


def _priority(name: str, kind: str, numeric: bool) -> int:
    """Which columns a narrow terminal keeps first: the row's identity (text and times),
    then money, then the request count, then the rest from the left."""
    if not numeric:
        return 0
    if kind == "money":
        return 1
    return 2 if name == "requests" else 3


def _numeric(rows: Sequence[Sequence[Any]], index: int) -> bool:
    values = [row[index] for row in rows if row[index] is not None]
    return bool(values) and all(
        isinstance(v, int | float | decimal.Decimal) and not isinstance(v, bool) for v in values
    )


def _column_cells(values: list[Any], kind: str, *, units: bool) -> list[str]:
    """One column's cells; times decided for the whole column (all midnights: dates)."""
    times = [v for v in values if isinstance(v, datetime)]
    dated = bool(times) and all(v.timetz().replace(tzinfo=None) == time(0) for v in times)
    return [_cell(value, kind, units=units, dated=dated) for value in values]


def _cell(value: Any, kind: str, *, units: bool, dated: bool) -> str:
    if value is None:
        return display.NONE
    if isinstance(value, datetime):
        if dated:
            return f"{value:%Y-%m-%d}"
        return f"{value:%Y-%m-%d %H:%M}" if units else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return str(value)
    if isinstance(value, decimal.Decimal) and not units:
        return str(value)
    number = float(value)
    if units:
        if kind == "money":
            return display.usd_fine(number)
        if kind == "ratio":
            return display.pct(number)
        if kind == "percent":
            return display.percent(number)
        if kind == "count" or isinstance(value, int):
            return display.count(number)
        return f"{number:,.2f}"
    if isinstance(value, int):
        return str(value)
    text = f"{number:.6f}".rstrip("0").rstrip(".")
    return "0" if text in {"", "-0"} else text
