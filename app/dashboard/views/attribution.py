"""Cost attribution: spend stacked by a chosen dimension, the top consumers (a click on
one opens its requests in the explorer), a drill-down into one value by a second
dimension, a CSV download of the table, and the cost per unit of work (a metadata key:
conversation, ticket, job)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.filters import filter_dimensions, open_filtered
from app.dashboard.ui import bar_chart, count, grain_for, line_chart, table, usd

TOP = 8  # stacked series: the biggest values, the rest summed as "other"
# The table's columns, spend first (the CSV download keeps them all).
SHOWN = (
    "cost_usd",
    "requests",
    "tokens_in",
    "tokens_out",
    "cached_requests",
    "saved_usd",
    "errors",
    "unknown_cost_requests",
)

ctx = context()
filters = ctx.filters
dimensions = list(ctx.models.all_dimensions)
st.title("Cost attribution")
locked = fetch(ctx.settings, "unattributed", since=filters.since, until=filters.until)
if locked:
    st.warning(
        f"{count(locked)} requests without attribution: Metadata is encrypted; "
        "pass --private-key to `aigw ingest`."
    )

wanted = st.query_params.get("by")
chosen = wanted if wanted in dimensions else "model"
by: str = st.selectbox(
    "Attribute spend to", dimensions, index=dimensions.index(str(chosen)), key="by"
)
st.query_params["by"] = by
grain = grain_for(filters.since, filters.until)
common = {"since": filters.since, "until": filters.until, "filters": filters.where}

stacked = fetch(ctx.settings, "spend", by=(by,), grain=grain, top=TOP, **common)
st.subheader(f"Spend by {by} per {grain}")
bar_chart(stacked, x="period", y="cost_usd", grain=grain, color=by, title="USD", as_of=ctx.as_of)

ranking = fetch(ctx.settings, "spend", by=(by,), grain=None, top=None, **common)
total = float(ranking["cost_usd"].sum() or 0.0) if not ranking.is_empty() else 0.0
st.metric(f"Total spend, {count(ranking.height)} values of {by}", usd(total))

st.subheader("Top consumers")
top = ranking.head(50)
drillable = by in filter_dimensions(ctx.models.all_dimensions)
if drillable:
    st.caption(f"Click a row to open its requests in the explorer, filtered to that {by}.")
picked = table(top, key="top_table", columns=[by, *SHOWN], share_of="cost_usd", select=drillable)
if picked is not None:
    value = top[by][picked]
    if value is None:
        st.info(f"Requests without a {by} cannot be filtered on; pick another row.")
    else:
        open_filtered("explorer", {by: str(value)}, params={"status": "all"})
if not ranking.is_empty():
    st.download_button(
        f"Download spend by {by} (CSV)",
        ranking.write_csv(),
        file_name=f"aigw-spend-by-{by}-{filters.since:%Y%m%d}-{filters.until:%Y%m%d}.csv",
        mime="text/csv",
    )

st.subheader("Drill down")
values = [str(value) for value in ranking[by].drop_nulls().to_list()] if ranking.height else []
if values:
    left, right = st.columns(2)
    value = left.selectbox(f"One {by}", values, key="drill_value")
    others = [name for name in dimensions if name != by and name not in dict(filters.where)]
    then = right.selectbox("broken down by", others, key="drill_by")
    drill = fetch(
        ctx.settings,
        "spend",
        by=(then,),
        grain=None,
        top=None,
        since=filters.since,
        until=filters.until,
        filters=(*filters.where, (by, value)),
    )
    st.metric(f"Spend of {by} = {value}", usd(float(drill["cost_usd"].sum() or 0.0)))
    if drill.height:
        table(drill, key="drill_table", columns=[then, *SHOWN], share_of="cost_usd")

st.subheader("Cost per unit of work")
unit_key = st.text_input(
    "Metadata key of a unit (conversation_id, ticket_id, job_id…)",
    value=ctx.settings.unit_key or "",
    key="unit_key",
    help='Default: [outcomes] unit_key in aigw.toml. The same numbers: "aigw report unit-cost".',
).strip()
if not unit_key:
    st.caption(
        "Name the metadata key your apps tag requests with to see what one conversation, "
        "ticket or job costs."
    )
else:
    units = fetch(ctx.settings, "unit_cost", unit_key=unit_key, top=20, **common)
    summary = units["summary"].row(0, named=True)
    tagged, untagged = summary["cost_usd"], summary["untagged_usd"]
    cells = st.columns(5)
    cells[0].metric(f"Units ({unit_key})", count(summary["units"]))
    cells[1].metric("Mean per unit", usd(summary["mean_usd"]))
    cells[2].metric("p50 per unit", usd(summary["p50_usd"]))
    cells[3].metric("p95 per unit", usd(summary["p95_usd"]))
    cells[4].metric("Max per unit", usd(summary["max_usd"]))
    st.caption(
        f"{usd(tagged)} of spend carries {unit_key}; {usd(untagged)} "
        f"({count(summary['untagged_requests'])} requests) does not."
    )
    weekly = units["weekly"].with_columns(pl.col("week").cast(pl.Datetime("us", "UTC")))
    line_chart(
        weekly, x="week", y=["mean_usd", "p50_usd", "p95_usd"], grain="day", title="USD a unit",
        y_format="$,.4f",
    )  # fmt: skip
    st.caption(
        "Per week: units by the UTC week (from Monday, the day shown) of their first request."
    )
    table(units["top"].rename({"unit": unit_key}), key="unit_top", exact=("cost_usd",))
