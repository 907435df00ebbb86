"""Policy events: guardrail, DLP, rate-limit and failover counts over time, the categories
found, and the recent events (categories and actions only, never the matched text)."""

from __future__ import annotations

import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.filters import open_filtered
from app.dashboard.ui import NONE, bar_chart, grain_for, table

LABELS = {
    "guardrail": "Guardrail",
    "dlp": "DLP",
    "rate_limit": "Rate limited",
    "failover": "Failover attempts",
}

ctx = context()
filters = ctx.filters
st.title("Policy events")
grain = grain_for(filters.since, filters.until)
result = fetch(
    ctx.settings,
    "policy",
    since=filters.since,
    until=filters.until,
    filters=filters.where,
    grain=grain,
)
counts, categories, recent = result["counts"], result["categories"], result["recent"]
columns = st.columns(len(LABELS))
for column, (kind, label) in zip(columns, LABELS.items(), strict=True):
    total = int(counts.filter(counts["kind"] == kind)["events"].sum()) if counts.height else 0
    column.metric(label, f"{total:,}")
st.subheader(f"Events per {grain}")
bar_chart(
    counts.with_columns(counts["kind"].replace(LABELS)) if counts.height else counts,
    x="period",
    y="events",
    grain=grain,
    color="kind",
    title="requests",
    as_of=ctx.as_of,
    y_format=",d",
)
st.subheader("Guardrail and DLP categories")
table(
    categories.with_columns(categories["category"].replace("(none)", NONE))
    if categories.height
    else categories,
    key="categories",
    share_of="requests",
)
st.subheader("Recent events")
st.caption(
    "Newest 50; categories and actions only: matched text is never stored. "
    "Click an event to open its request in the explorer."
)
picked = table(
    recent,
    key="recent",
    columns=[
        "ts",
        "log_id",
        "provider",
        "model",
        "status_code",
        "guardrail_action",
        "guardrail_categories",
        "dlp_action",
        "dlp_categories",
        "rate_limited",
        "step",
    ],
    select=True,
)
if picked is not None:
    open_filtered("explorer", {}, params={"status": "all", "id": str(recent["log_id"][picked])})
