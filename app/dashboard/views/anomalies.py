"""Agents and anomalies: spend per agent, and the hours flagged by ``aigw report
anomalies`` drawn against the band the model expected.

The look-back, minimum score and minimum impact default to the budgets file's anomaly
rule for the scope (what ``aigw alerts run`` watches), else 24 hours, 6 and $0. Flags
under the minimum impact are not hidden silently: they are counted and explained
(several values flagged in one hour are a burst of all traffic, not one runaway).
"""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import polars as pl
import streamlit as st

from app.dashboard.data import alerts_config, context, fetch
from app.dashboard.filters import open_filtered
from app.dashboard.ui import (
    NONE,
    bar_chart,
    grain_for,
    render,
    table,
    time_axis,
    time_tooltip,
    usd,
)

ctx = context()
filters = ctx.filters
st.title("Agents and anomalies")

scopes = [name for name in ctx.models.all_dimensions if name not in ("gateway", "endpoint")]
default = "agent" if "agent" in scopes else scopes[0]
chosen = st.query_params.get("scope")
config = alerts_config(ctx.settings)
left, middle, right, last = st.columns(4)
scope = left.selectbox(
    "Scope", scopes, index=scopes.index(chosen if chosen in scopes else default), key="scope"
)
st.query_params["scope"] = scope
rule = next((r for r in (config.anomalies if config else ()) if r.scope == scope), None)
choices = sorted({24, 48, 72, 168, rule.hours if rule else 24})
hours = middle.selectbox(
    "Look back (hours)", choices, index=choices.index(rule.hours if rule else 24), key="hours"
)
min_score = right.number_input(
    "Minimum score", 1.0, 1000.0, rule.min_score if rule else 6.0, step=0.5, key="min_score"
)
min_impact = last.number_input(
    "Minimum impact (USD over expected)",
    0.0,
    1_000_000.0,
    rule.min_impact_usd if rule else 0.0,
    step=0.1,
    key="min_impact",
)
if rule is not None:
    st.caption(
        f"Defaults from the anomaly rule `{rule.name}` of the budgets file ({rule.hours} hours, "
        f"score {rule.min_score:g}, impact {usd(rule.min_impact_usd)}). Here the minimum "
        "impact applies to every signal; `aigw alerts run` keeps request-rate flags under it."
    )

grain = grain_for(filters.since, filters.until)
per_value = fetch(
    ctx.settings,
    "spend",
    by=(scope,),
    grain=grain,
    top=8,
    since=filters.since,
    until=filters.until,
    filters=filters.where,
)
st.subheader(f"Spend per {scope} and {grain}")
bar_chart(
    per_value, x="period", y="cost_usd", grain=grain, color=scope, title="USD", as_of=ctx.as_of
)

result = fetch(
    ctx.settings,
    "anomalies",
    scope=scope,
    now=ctx.as_of,
    hours=int(hours),
    filters=filters.where,
    min_score=float(min_score),
    min_impact_usd=float(min_impact),
)
flags, below, bands = result["flags"], result["below"], result["bands"]
headlines = {
    (value, hour): text
    for text, value, hour in result["causes"].select("headline", "value", "hour").rows()
}
flags = flags.with_columns(
    pl.Series(
        "root_cause",
        [headlines.get(key, "") for key in zip(flags["value"], flags["hour"], strict=True)],
        dtype=pl.String,
    )
)
st.subheader(f"Flagged hours ({hours} hours before {ctx.as_of:%Y-%m-%d %H:%M} UTC)")
st.metric("Flags", f"{flags.height:,}", help="One per flagged value, hour and signal.")
if flags.height:
    impact = float(flags.unique(["value", "hour"])["impact_usd"].fill_null(0).sum())
    st.caption(
        f"Spend over expected: {usd(impact)}. The root cause names the few cells of the "
        "other dimensions that explain most of a flagged hour's excess (Adtributor, NSDI "
        f"2014; see docs/costs.md). Click a flag to open that {scope}'s requests of the day "
        "in the explorer."
    )
picked = table(
    flags.rename({"value": scope}),
    key="flags",
    columns=[
        scope,
        "hour",
        "signal",
        "baseline",
        "score",
        "actual_usd",
        "expected_usd",
        "impact_usd",
        "actual_requests",
        "expected_requests",
        "root_cause",
    ],
    select=True,
)
# The table is wider than the page: the root cause, the page's answer, also stands in full
# below it, one line per flagged hour.
for (value, hour), text in sorted(
    {(row["value"], row["hour"]): row["root_cause"] for row in flags.iter_rows(named=True)}.items(),
    key=lambda item: item[0][1],
):
    if text:
        shown = text.replace("$", "\\$")  # a dollar sign in markdown opens LaTeX
        st.markdown(
            f"**Root cause**, {scope} {value or NONE} at {hour:%Y-%m-%d %H:%M} UTC: {shown}"
        )
if picked is not None:
    flag = flags.row(picked, named=True)
    where = {scope: flag["value"]} if flag["value"] is not None else {}
    open_filtered("explorer", where, day=flag["hour"].date(), params={"status": "all"})

if below.height:
    hours_below = below.group_by("hour").agg(
        pl.col("value").unique().sort(nulls_last=True), pl.col("impact_usd").max()
    )
    lines = []
    for row in hours_below.sort("hour").iter_rows(named=True):
        values = [value or NONE for value in row["value"]]
        why = (
            f"{len(values)} values of {scope} at once: a burst of all traffic in that hour "
            "(a second log source or a backfill), not one runaway"
            if len(values) > 1
            else f"{values[0]} only"
        )
        lines.append(
            f"- {row['hour']:%Y-%m-%d %H:%M} UTC: {', '.join(values)} ({why}; at most "
            f"{usd(row['impact_usd'])} over expected)"
        )
    st.info(
        f"{below.height:,} more flags score above {min_score:g} but spend less than "
        f"{usd(min_impact)} over expected:\n" + "\n".join(lines),
        icon=":material/info:",
    )

for value in flags["value"].unique().sort(nulls_last=True).to_list()[:6]:
    band = bands.filter(pl.col("value").eq_missing(value))  # null: traffic without a value
    if band.is_empty():
        continue
    st.markdown(f"**{scope} = {value or NONE}**: hourly spend against its expected band")
    points = flags.filter(pl.col("value").eq_missing(value)).select("hour", "actual_usd")
    window = ctx.as_of - timedelta(hours=int(hours))
    base = alt.Chart(band.filter(pl.col("hour") >= window - timedelta(days=1)).to_arrow())
    base = base.encode(x=time_axis("hour", "hour"))
    usd_axis = alt.Axis(format="$,.2f")
    chart = (
        base.mark_area(opacity=0.25).encode(
            y=alt.Y("expected_usd:Q", title="USD per hour", axis=usd_axis), y2="upper_usd:Q"
        )
        + base.mark_line().encode(y="actual_usd:Q")
        + base.mark_line(strokeDash=[4, 4], color="gray").encode(y="expected_usd:Q")
        + alt.Chart(points.to_arrow())
        .mark_point(color="red", size=80, filled=True)
        .encode(
            x=time_axis("hour", "hour"),
            y="actual_usd:Q",
            tooltip=[time_tooltip("hour", "hour"), alt.Tooltip("actual_usd:Q", format="$,.2f")],
        )
    )
    render(chart)
