"""Cache: the response cache's hit rate over time, what it saved, and the requests
worth caching (identical requests a provider answered more than once)."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.ui import count, grain_for, line_chart, pct, table, usd

# Candidates come from raw requests (costed one by one): the last 12 hours of the range
# keep the page under a second and a half on 10 M requests.
CANDIDATE_WINDOW = timedelta(hours=12)

ctx = context()
filters = ctx.filters
st.title("Cache")
common = {"since": filters.since, "until": filters.until, "filters": filters.where}
grain = grain_for(filters.since, filters.until)

total = fetch(ctx.settings, "cache", by=(), grain=None, **common)
row = total.row(0, named=True) if total.height else {}
columns = st.columns(4)
columns[0].metric("Hit rate (requests)", pct(row.get("request_hit_ratio")))
columns[1].metric("Savings", usd(row.get("saved_usd")))
columns[2].metric(
    "Hit rate (cost)",
    pct(row.get("cost_hit_ratio")),
    help="Savings over savings plus spend: the share of the would-be cost the cache absorbed.",
)
columns[3].metric("Cached requests", count(row.get("cached_requests") or 0))
estimated = row.get("saved_estimated_usd") or 0.0
if estimated:
    st.caption(
        f"Of the savings, {usd(estimated)} is estimated: cache hits logged without token "
        "counts saved what the same request cost when a provider answered it, else the "
        "median cost of that model's answers that day (docs/costs.md)."
    )

over_time = fetch(ctx.settings, "cache", by=(), grain=grain, **common)
st.subheader(f"Hit rate per {grain}")
line_chart(
    over_time.sort("period") if over_time.height else over_time,
    x="period",
    y=["request_hit_ratio", "cost_hit_ratio"],
    grain=grain,
    title="hit rate",
    y_format=".0%",
    as_of=ctx.as_of,
)
st.subheader("By route (gateway, endpoint)")
routes = fetch(ctx.settings, "cache", by=("gateway", "endpoint"), grain=None, **common)
if not estimated:  # a column of $0.00 would push the table past the page's width
    routes = routes.drop("saved_estimated_usd", strict=False)
table(routes, key="routes", share_of="saved_usd")

window_start = max(filters.since, min(filters.until, ctx.as_of) - CANDIDATE_WINDOW)
window_end = min(filters.until, ctx.as_of)
st.subheader("Candidates for caching")
st.caption(
    f"Identical requests answered by a provider more than once, {window_start:%Y-%m-%d %H:%M} "
    f"to {window_end:%Y-%m-%d %H:%M} UTC (the last 12 hours of the range)."
)
candidates = fetch(
    ctx.settings,
    "candidates",
    since=window_start,
    until=window_end,
    filters=filters.where,
    limit=20,
)
if candidates.height:
    st.metric(
        "Potential saving (top 20)", usd(float(candidates["potential_saving_usd"].sum() or 0))
    )
table(candidates, key="candidates")
