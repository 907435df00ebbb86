"""Statements as files: one HTML page and one CSV per team, and a summary of each.

The HTML stands alone (no fonts, stylesheets or scripts fetched from anywhere) and
prints to PDF from a browser (``@media print``: A4 margins, rows never split across
pages, table headers repeated). Every value that comes from the warehouse (team, user,
agent and model names) is HTML-escaped; money, counts and ratios are formatted by
``app.display``. The CSVs are for programs: USD with cents, ratios as fractions.

Files, for month ``M`` and dimension ``D``: ``M-summary.html`` and ``.csv`` (its first
column named ``D``), and ``M-D-NAME.html`` and ``.csv`` per team, ``NAME`` the team's
name where it is made of lowercase letters, digits, ``.``, ``_`` and ``-``, else those
characters and a hash of the name.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any, Final

import polars as pl

from app import display
from app.tables import exact, unit_of
from core.files import write_atomic
from models import Statements

__all__ = ["statement_files", "team_file_stem", "write_statement_files"]

_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_UNALLOCATED: Final = "(unallocated)"
_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_NUMERIC: Final = ' class="num"'
_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
  color:#1a1a1a;margin:2rem auto;max-width:62rem;padding:0 1rem;font-size:14px;line-height:1.4}
h1{font-size:1.5rem;margin:0 0 .25rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
.sub,.note{color:#555}
.sub{margin:0 0 1.25rem}
.figures{display:flex;flex-wrap:wrap;gap:.75rem;margin:0 0 1rem}
.figure{border:1px solid #ddd;border-radius:6px;padding:.5rem .8rem;min-width:9rem}
.figure .label{color:#555;font-size:.8rem}
.figure .value{font-size:1.2rem;font-weight:600}
table{border-collapse:collapse;width:100%;margin:0 0 1rem}
th,td{padding:.3rem .5rem;border-bottom:1px solid #e5e5e5;text-align:left;vertical-align:top;
  overflow-wrap:anywhere}
th{font-weight:600;border-bottom:2px solid #999}
table.lines{table-layout:fixed}
table.lines th:first-child{width:40%}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tfoot td{font-weight:600;border-top:2px solid #999}
footer{margin-top:2rem;color:#777;font-size:.8rem}
@media print{
  @page{size:A4;margin:14mm}
  body{margin:0;max-width:none;font-size:10pt}
  a{color:inherit;text-decoration:none}
  tr,.figure{break-inside:avoid}
  thead{display:table-header-group}
  h2{break-after:avoid}
}
"""


def team_file_stem(statements: Statements, team: str) -> str:
    """The file name (without suffix) of ``team``'s statement: safe on any file system,
    and distinct for distinct names even where case does not count."""
    safe = _SAFE.sub("_", team).strip("._") or "_"
    if safe != team.lower():  # a hash keeps "Search" and "search" apart on any disk
        safe += "-" + hashlib.sha256(team.encode()).hexdigest()[:8]
    return f"{statements.month}-{statements.dimension}-{safe}"


def write_statement_files(statements: Statements, folder: Path) -> list[Path]:
    """Write the summary and each team's statement (HTML and CSV) into ``folder``
    (created when missing), each file whole or not at all; return the paths."""
    paths = []
    for name, data in statement_files(statements).items():
        path = folder / name
        write_atomic(path, data)
        paths.append(path)
    return paths


def statement_files(statements: Statements) -> dict[str, bytes]:
    """File name -> content of every file of ``statements``: the summary first."""
    summary_stem = f"{statements.month}-summary"
    files = {
        f"{summary_stem}.html": _summary_html(statements).encode(),
        f"{summary_stem}.csv": _csv(
            [statements.dimension, *statements.summary.columns[1:]], statements.summary.rows()
        ).encode(),
    }
    for row in statements.summary.iter_rows(named=True):
        if row["team"] is None:
            continue
        stem = team_file_stem(statements, row["team"])
        lines = statements.lines.filter(pl.col("team") == row["team"])
        files[f"{stem}.html"] = _team_html(statements, row, lines).encode()
        files[f"{stem}.csv"] = _team_csv(row, lines).encode()
    return files


def _month_name(month: str) -> str:
    """``2026-11`` as ``November 2026`` (English, whatever the locale)."""
    year, number = month.split("-")
    return f"{_MONTHS[int(number) - 1]} {year}"


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}\n<footer>Effective cost in USD (what aigw recomputed from tokens and prices, "
        "else what the gateway logged); months are UTC. Amounts are rounded to the cent so "
        "that they add up: the statements' totals equal <code>aigw report cost</code> for "
        "the month.</footer>\n</body>\n</html>\n"
    )


def _figure(label: str, value: str) -> str:
    return (
        f'<div class="figure"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div></div>'
    )


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    foot: Sequence[str] = (),
    *,
    lines: bool = False,
) -> str:
    """An HTML table whose first column names the row and the others are numbers (right
    aligned); every cell is escaped here."""

    def cells(values: Sequence[str], tag: str) -> str:
        return "".join(
            f"<{tag}{_NUMERIC if index else ''}>{escape(value)}</{tag}>"
            for index, value in enumerate(values)
        )

    head = f"<thead><tr>{cells(headers, 'th')}</tr></thead>"
    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    tail = f"<tfoot><tr>{cells(foot, 'td')}</tr></tfoot>" if foot else ""
    opening = '<table class="lines">' if lines else "<table>"
    return f"{opening}{head}<tbody>{body}</tbody>{tail}</table>"


def _allocation_text(statements: Statements) -> str:
    """Which rule applied to the spend without a team, in a sentence."""
    without = display.usd(statements.unattributed_usd)
    dimension = statements.dimension
    rule = statements.rule
    said = f"Spend without a {dimension}: {without}"
    if not statements.unattributed_usd:
        return f"Every request this month had a {dimension}: nothing to allocate (rule {rule})."
    if statements.applied == rule.kind:
        return f"{said}, {rule.describe()} (rule {rule})."
    return (
        f"{said}; the rule is {rule}, but no {dimension} had a cost of its own to be "
        "proportional to, so it was left unallocated."
    )


def _change(row: dict[str, Any]) -> str:
    return display.change(row["total_usd"], row["previous_usd"]) or display.NONE


def _summary_html(statements: Statements) -> str:
    summary = statements.summary
    month = _month_name(statements.month)
    title = f"AI spend statements, {month}"
    rows = []
    for row in summary.iter_rows(named=True):
        team = row["team"] if row["team"] is not None else _UNALLOCATED
        rows.append(
            [
                team,
                display.count(row["requests"]),
                display.usd(row["direct_usd"]),
                display.usd(row["allocated_usd"]),
                display.usd(row["total_usd"]),
                display.pct(row["share"]),
                display.usd(row["saved_usd"]),
                display.usd(row["previous_usd"]),
                _change(row),
                display.usd(row["budget_usd"]),
                display.pct(row["budget_used"]),
            ]
        )
    saved = float(summary["saved_usd"].sum())
    foot = [
        "Total",
        display.count(int(summary["requests"].sum())),
        display.usd(float(summary["direct_usd"].sum())),
        display.usd(float(summary["allocated_usd"].sum())),
        display.usd(statements.total_usd),
        display.pct(1.0 if statements.total_usd else None),
        display.usd(saved),
        "",
        "",
        "",
        "",
    ]
    headers = [
        statements.dimension.capitalize(),
        "Requests",
        "Own cost",
        "Allocated",
        "Total",
        "Share",
        "Cache savings",
        "Last month",
        "Change",
        "Budget",
        "Budget used",
    ]
    figures = "".join(
        [
            _figure("Total effective cost", display.usd(statements.total_usd)),
            _figure(f"Without a {statements.dimension}", display.usd(statements.unattributed_usd)),
            _figure("Cache savings", display.usd(saved)),
            _figure("Statements", display.count(summary["team"].drop_nulls().len())),
        ]
    )
    links = "".join(
        f'<li><a href="{escape(team_file_stem(statements, team))}.html">{escape(team)}</a></li>'
        for team in summary["team"].drop_nulls().to_list()
    )
    body = (
        f"<h1>{escape(title)}</h1>\n"
        f'<p class="sub">By {escape(statements.dimension)} · effective cost, USD · '
        f"{escape(statements.month)} (UTC)</p>\n"
        f'<div class="figures">{figures}</div>\n'
        f"<p>{escape(_allocation_text(statements))}</p>\n"
        f"{_table(headers, rows, foot)}\n"
        '<p class="note">Budget: a monthly budget for that one '
        f"{escape(statements.dimension)} in the budgets file; used: its own cost over the "
        "budget (the allocated share is not counted, as the budget alerts do not count it)."
        "</p>\n"
        f"<h2>Statements</h2>\n<ul>{links}</ul>\n" + "\n".join(_unattributed_tables(statements))
    )
    return _page(title, body)


def _unattributed_tables(statements: Statements) -> list[str]:
    """The spend without a team by model, user and agent: what was allocated."""
    lines = statements.lines.filter(pl.col("team").is_null())
    if lines.is_empty():
        return []
    requests = int(lines.filter(pl.col("section") == "model")["requests"].sum())
    heading = f"Spend without a {statements.dimension}, by {{section}}"
    return _line_tables(lines, requests=requests, cost=statements.unattributed_usd, heading=heading)


def _team_html(statements: Statements, row: dict[str, Any], lines: pl.DataFrame) -> str:
    team = str(row["team"])
    month = _month_name(statements.month)
    title = f"{team}: AI spend statement, {month}"
    budget = (
        f"{display.pct(row['budget_used'])} of {display.usd(row['budget_usd'])}"
        if row["budget_usd"] is not None
        else "no budget"
    )
    figures = "".join(
        [
            _figure("Total", display.usd(row["total_usd"])),
            _figure("Own cost", display.usd(row["direct_usd"])),
            _figure("Allocated share", display.usd(row["allocated_usd"])),
            _figure("Cache savings", display.usd(row["saved_usd"])),
            _figure("Last month", display.usd(row["previous_usd"])),
            _figure("Change", _change(row)),
            _figure("Budget used", budget),
        ]
    )
    allocated = _allocation_text(statements)
    if statements.unattributed_usd and statements.applied != "none":
        allocated = (
            f"Allocated share: {display.usd(row['allocated_usd'])} "
            f"({display.pct(row['allocated_share'])} of the spend without a "
            f"{statements.dimension}). {allocated}"
        )
    budget_text = (
        f"Budget {row['budget']}: {display.usd(row['budget_usd'])} a month; own cost "
        f"{display.usd(row['direct_usd'])} used {display.pct(row['budget_used'])} of it."
        if row["budget"] is not None
        else f"No monthly budget for this {statements.dimension} alone in the budgets file."
    )
    sections = _line_tables(lines, requests=row["requests"], cost=row["direct_usd"])
    unpriced = (
        f'<p class="note">{display.count(row["unpriced_requests"])} requests have no price and '
        "no logged cost: they are not in these amounts.</p>\n"
        if row["unpriced_requests"]
        else ""
    )
    body = (
        f"<h1>{escape(title)}</h1>\n"
        f'<p class="sub">{escape(statements.dimension.capitalize())} {escape(team)} · '
        f"effective cost, USD · {escape(statements.month)} (UTC)</p>\n"
        f'<div class="figures">{figures}</div>\n'
        f"<p>{escape(allocated)}</p>\n<p>{escape(budget_text)}</p>\n{unpriced}"
        + "\n".join(sections)
    )
    return _page(title, body)


def _line_tables(
    lines: pl.DataFrame, *, requests: int, cost: float, heading: str = "By {section}"
) -> list[str]:
    """One table per section of ``lines`` (by model, by user…) whose items add up to
    ``requests`` and ``cost`` (the footer), with each item's share of ``cost``."""
    tables = []
    for section in dict.fromkeys(lines["section"].to_list()):
        part = lines.filter(pl.col("section") == section)
        rows = [
            [
                item,
                display.count(item_requests),
                display.usd(item_cost),
                display.usd(saved),
                display.pct(item_cost / cost if cost else None),
            ]
            for item, item_requests, item_cost, saved in part.select(
                "item", "requests", "cost_usd", "saved_usd"
            ).iter_rows()
        ]
        foot = ["Total", display.count(requests), display.usd(cost), "", ""]
        headers = [section.capitalize(), "Requests", "Cost", "Cache savings", "Share"]
        title = heading.format(section=section)
        tables.append(f"<h2>{escape(title)}</h2>\n{_table(headers, rows, foot, lines=True)}")
    return tables


def _csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    units = [unit_of(name) for name in columns]
    writer.writerows(
        [exact(value, unit) for value, unit in zip(row, units, strict=True)] for row in rows
    )
    return buffer.getvalue()


def _team_csv(row: dict[str, Any], lines: pl.DataFrame) -> str:
    """The team's lines (``section, item, requests, cost_usd, saved_usd``), then its
    totals as ``total`` rows: own cost, allocated, total."""
    body = [list(values) for values in lines.drop("team").rows()]
    body += [
        ["total", "own cost", row["requests"], row["direct_usd"], row["saved_usd"]],
        ["total", "allocated", None, row["allocated_usd"], None],
        ["total", "total", row["requests"], row["total_usd"], row["saved_usd"]],
    ]
    return _csv(["section", "item", "requests", "cost_usd", "saved_usd"], body)
