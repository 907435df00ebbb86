"""Savings: the changes that would have saved the most over the date range, the list of
``aigw report savings`` (model switches, cache TTLs per route, batch APIs). Each item
shows its saving per month, its evidence and the one change that realises it, and links
to the cost attribution page filtered to its scope (a new tab, so the list stays)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.filters import filter_dimensions, shared_link
from app.dashboard.ui import count, table, usd
from app.display import usd_fine
from models import SAVINGS_COLUMNS, scope_filters

TOP: Final = 10
# the table's columns: the report's, less the change and evidence (each item shows them)
SUMMARY: Final = tuple(name for name in SAVINGS_COLUMNS if name not in ("change", "evidence"))
KINDS: Final = {
    "model": "Model switch",
    "cache": "Response cache",
    "batch": "Batch API",
    "prompt-cache": "Prompt caching",
}
# Markdown marks in free text (the evidence quotes dollars: "$" starts LaTeX).
_MARKS: Final = str.maketrans({mark: "\\" + mark for mark in "\\`*_[]<>$#|~"})


def _text(value: str) -> str:
    """``value`` as literal markdown text."""
    return value.translate(_MARKS)


def _span(days: float) -> str:
    """A measured span as a reader says it: hours under two days."""
    return f"{days * 24:,.0f} hours" if days < 2 else f"{days:,.1f} days"


ctx = context()
filters = ctx.filters
st.title("Savings")
end = fetch(ctx.settings, "bounds")[1]
since, until = filters.since, min(filters.until, end)
if since >= until:
    st.info("No data in the date range: pick days that hold traffic.")
    st.stop()
whatif = ctx.settings.whatif
report = fetch(
    ctx.settings,
    "savings",
    since=since,
    until=until,
    top=TOP,
    batch_key=whatif.batch_key,
    batch_values=whatif.batch_values,
    batch_discount=tuple(sorted(whatif.batch_discount.items())),
)
st.caption(
    f"Over {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC; per month is the saving "
    "over the days that hold data, scaled to 30 days. The same list: "
    f"`aigw report savings --since {since:%Y-%m-%dT%H:%M} --until {until:%Y-%m-%dT%H:%M}`."
)
if filters.where:
    st.info(
        "Savings are computed over all traffic of the range: the dimension filters do not "
        "apply here (each item opens its own scope in cost attribution).",
        icon=":material/filter_alt_off:",
    )
for note in report.notes:
    st.caption(f"Note: {_text(note)}")
opportunities = report.table
if opportunities.is_empty():
    st.info("No savings found in the range.")
    st.stop()

cells = st.columns(3)
cells[0].metric("Opportunities", count(opportunities.height))
cells[1].metric("Biggest saving per month", usd(opportunities["saving_per_month_usd"][0]))
cells[2].metric(
    "Measured over",
    _span(report.days or 0.0),
    help="The range's days that hold data: from the first rolled-up hour, if later.",
)
table(opportunities, key="savings_table", columns=list(SUMMARY))

filterable = filter_dimensions(ctx.models.all_dimensions)
metadata = list(ctx.models.dimensions)
last_day = (filters.until - timedelta(days=1)).date()
for number, row in enumerate(opportunities.iter_rows(named=True), start=1):
    scope = scope_filters(row["scope"])
    # A scope dimension that is no filter (the endpoint) becomes the breakdown instead.
    rest = [name for name in scope if name not in filterable]
    by = rest[0] if rest else next((name for name in metadata if name not in scope), "model")
    link = shared_link(
        "attribution",
        scope,
        filters.since.date(),
        last_day,
        params={"by": by},
        dimensions=filterable,
    )
    shown = ", ".join(f"{name}={value}" for name, value in scope.items() if name in filterable)
    with st.container(border=True, key=f"saving_{number}"):
        left, right = st.columns([1, 3])
        left.metric(
            f"{number}. {KINDS.get(row['kind'], row['kind'])}: {row['scope']}",
            usd(row["saving_per_month_usd"]),
            help="Saving per month",
        )
        right.markdown("**The change**")
        right.code(row["change"], language=None, wrap_lines=True)
        right.markdown(
            "**Evidence.** "
            + _text(
                f"{row['evidence']}. Scope {row['scope']}: {row['requests']:,} requests, "
                f"{usd_fine(row['current_cost_usd'])} now, "
                f"{usd_fine(row['projected_cost_usd'])} with the change: "
                f"{usd_fine(row['saving_usd'])} saved over {_span(report.days or 0.0)}, "
                f"{usd(row['saving_per_month_usd'])} per month."
            )
        )
        right.markdown(f"[Open in cost attribution: {_text(shown)}, by {by}]({link})")
