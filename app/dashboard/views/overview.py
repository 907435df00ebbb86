"""Overview: month-to-date spend against budget and forecast, and the range's key numbers
with their trend against the range just before it."""

from __future__ import annotations

import streamlit as st

from app.dashboard.data import alerts_config, context, fetch
from app.dashboard.ui import change, count, grain_for, line_chart, ms, pct, usd

ctx = context()
filters = ctx.filters
where = filters.where
st.title("Overview")
st.caption(
    f"{filters.since:%Y-%m-%d} to {filters.until:%Y-%m-%d} (UTC, end excluded); trends compare "
    "with the range of the same length just before."
)

# ---- month to date -----------------------------------------------------------------
forecast = fetch(ctx.settings, "forecast", now=ctx.as_of, filters=where)
config = alerts_config(ctx.settings)
# A budget is drawn against the spend only when it counts the same traffic: its filters
# are exactly the page's filters (a team's spend against the company budget misleads).
monthly = [
    budget
    for budget in (config.budgets if config else ())
    if budget.period == "monthly" and dict(budget.filters) == dict(where) and not budget.split_by
]
mtd = forecast.get("mtd_usd")
projected = forecast.get("projected_usd")
columns = st.columns(3)
columns[0].metric(
    f"Spend month to date ({ctx.as_of:%B %Y}, UTC)",
    usd(mtd),
    help="Effective cost recomputed from tokens (aigw report forecast).",
)
columns[1].metric(
    "Forecast month end (daily trend)",
    usd(projected),
    help=(
        f"Spend so far plus the mean of the last {forecast.get('basis_days') or 0} complete "
        "days for each day left (`aigw report forecast`); 90% interval "
        f"{usd(forecast.get('projected_low_usd'))} to {usd(forecast.get('projected_high_usd'))}. "
        "The Budgets page projects a budget's period linearly (spent ÷ share of the period "
        "elapsed, as `aigw alerts run` does), so its figure can differ."
    ),
)
if monthly:
    budget = monthly[0]
    used = (mtd or 0.0) / budget.amount_usd
    scope = ", ".join(f"{k}={v}" for k, v in budget.filters.items()) or "all traffic"
    columns[2].metric(
        f"Budget {budget.name}",
        usd(budget.amount_usd),
        delta=f"{used * 100:.0f}% used",
        delta_color="inverse" if used >= 1 else "off",
        help=f"Monthly budget `{budget.name}` of the budgets file, scope: {scope}.",
    )
    st.progress(
        min(used, 1.0),
        text=f"{usd(mtd)} of {usd(budget.amount_usd)} (budget {budget.name}, {scope})",
    )
else:
    columns[2].metric(
        "Budget",
        "—",
        help="No monthly budget in the budgets file counts exactly these filters "
        "(the Budgets page shows every budget).",
    )

# ---- range totals and trends -------------------------------------------------------
grain = grain_for(filters.since, filters.until)
result = fetch(
    ctx.settings,
    "overview",
    since=filters.since,
    until=filters.until,
    filters=where,
    grain=grain,
)
latency = fetch(
    ctx.settings,
    "latency",
    since=filters.since,
    until=filters.until,
    filters=where,
    grain=grain,
)
latency_before = fetch(
    ctx.settings,
    "latency",
    since=filters.previous().since,
    until=filters.since,
    filters=where,
    grain=None,
)
now, before, trend = result["totals"], result["previous"], result["trend"]
p95 = latency["p95_ms"][0] if latency.height else None  # the whole range comes first
p95_before = latency_before["p95_ms"][0] if latency_before.height else None
series = trend if not trend.is_empty() else None


def _spark(column: str) -> list[float] | None:
    if series is None:
        return None
    return [float(value or 0.0) for value in series[column].to_list()]


# delta colours: more spend or errors reads as bad (red), more cache hits as good (green)
cards = [
    ("Spend", usd(now.get("cost_usd")), "cost_usd", "inverse"),
    ("Requests", count(now.get("requests")), "requests", "off"),
    ("Tokens (in + out)", count(now.get("tokens")), "tokens", "off"),
    ("Cache hit rate", pct(now.get("cache_hit_ratio")), "cache_hit_ratio", "normal"),
    ("Cache savings", usd(now.get("saved_usd")), "saved_usd", "normal"),
    ("Error rate", pct(now.get("error_rate")), "error_rate", "inverse"),
]
row = st.columns(4)
for index, (label, value, column, color) in enumerate(cards):
    row[index % 4].metric(
        label,
        value,
        delta=change(now.get(column), before.get(column)),
        delta_color=color,  # type: ignore[arg-type]
        chart_data=_spark(column),
        border=True,
    )
    if index == 3:
        row = st.columns(4)
row[2].metric(
    "p95 latency",
    ms(p95),
    delta=change(p95, p95_before),
    delta_color="inverse",
    chart_data=[float(v or 0.0) for v in latency["p95_ms"].to_list()[1:]] or None,
    border=True,
)
unknown = now.get("unknown_cost_requests") or 0
if unknown:
    st.warning(f"{count(unknown)} requests have no price and no logged cost (not counted as 0).")

st.subheader("Spend and savings")
if series is not None:
    line_chart(
        series,
        x="period",
        y=["cost_usd", "saved_usd"],
        grain=grain,
        title="USD",
        y_format="$,.2f",
        as_of=ctx.as_of,
    )
    st.subheader("Requests, errors and cache hits")
    line_chart(
        series,
        x="period",
        y=["requests", "cached_requests", "errors"],
        grain=grain,
        title="requests",
        y_format=",d",
        as_of=ctx.as_of,
    )
else:
    st.caption("No traffic in this range.")
