"""Agents and anomalies: spend per agent, and the hours flagged by ``aigw report
anomalies`` drawn against the band the model expected."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.ui import bar_chart, table, usd

ctx = context()
filters = ctx.filters
st.title("Agents and anomalies")

scopes = [name for name in ctx.models.all_dimensions if name not in ("gateway", "endpoint")]
default = "agent" if "agent" in scopes else scopes[0]
chosen = st.query_params.get("scope")
left, middle, right = st.columns(3)
scope = left.selectbox(
    "Scope", scopes, index=scopes.index(chosen if chosen in scopes else default), key="scope"
)
st.query_params["scope"] = scope
hours = middle.selectbox("Look back (hours)", [24, 48, 72, 168], index=0, key="hours")
min_score = right.number_input("Minimum score", 1.0, 100.0, 6.0, step=0.5, key="min_score")

per_value = fetch(
    ctx.settings,
    "spend",
    by=(scope,),
    grain="day",
    top=8,
    since=filters.since,
    until=filters.until,
    filters=filters.where,
)
st.subheader(f"Spend per {scope} and day")
if per_value.height:
    bar_chart(
        per_value.with_columns(per_value[scope].fill_null("(none)")),
        x="period",
        y="cost_usd",
        color=scope,
        title="USD",
    )

result = fetch(
    ctx.settings,
    "anomalies",
    scope=scope,
    now=ctx.as_of,
    hours=int(hours),
    filters=filters.where,
    min_score=float(min_score),
)
flags, bands = result["flags"], result["bands"]
st.subheader(f"Flagged hours ({hours} hours before {ctx.as_of:%Y-%m-%d %H:%M} UTC)")
st.metric("Flags", f"{flags.height:,}", help="One per flagged value, hour and signal.")
if flags.height:
    impact = float(flags["impact_usd"].fill_null(0).sum())
    st.caption(f"Impact over expected: {usd(impact)}")
table(flags, key="flags")

for value in flags["value"].unique().sort(nulls_last=True).to_list()[:6]:
    band = bands.filter(pl.col("value").eq_missing(value))  # null: traffic without a value
    if band.is_empty():
        continue
    shown = value if value is not None else "(none)"
    st.markdown(f"**{scope} = {shown}**: hourly spend against its expected band")
    points = flags.filter(pl.col("value").eq_missing(value)).select("hour", "actual_usd").to_arrow()
    base = alt.Chart(band.to_arrow()).encode(x=alt.X("hour:T", title=None))
    chart = (
        base.mark_area(opacity=0.25).encode(
            y=alt.Y("expected_usd:Q", title="USD per hour"), y2="upper_usd:Q"
        )
        + base.mark_line().encode(y="actual_usd:Q")
        + base.mark_line(strokeDash=[4, 4], color="gray").encode(y="expected_usd:Q")
        + alt.Chart(points)
        .mark_point(color="red", size=80, filled=True)
        .encode(x="hour:T", y="actual_usd:Q", tooltip=["hour:T", "actual_usd:Q"])
    )
    st.altair_chart(chart, width="stretch")
