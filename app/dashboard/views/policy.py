"""Policy events: guardrail, DLP, rate-limit and failover counts over time, the categories
found, and the recent events (categories and actions only, never the matched text)."""

from __future__ import annotations

import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.ui import bar_chart, table

LABELS = {
    "guardrail": "Guardrail",
    "dlp": "DLP",
    "rate_limit": "Rate limited",
    "failover": "Failover attempts",
}

ctx = context()
filters = ctx.filters
st.title("Policy events")
grain = "hour" if (filters.until - filters.since).days <= 2 else "day"
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
bar_chart(counts, x="period", y="events", color="kind", title="requests")
st.subheader("Guardrail and DLP categories")
table(categories, key="categories")
st.subheader("Recent events")
st.caption("Newest 50; categories and actions only: matched text is never stored.")
table(recent, key="recent")
