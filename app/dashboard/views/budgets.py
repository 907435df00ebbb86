"""Budgets and alerts: each budget's burn-down in its current period with the forecast,
the imported provider bills against the gateway per month,
then the alert history and each delivery's status."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from alerts import period_bounds
from app.dashboard.data import alerts_config, context, fetch
from app.dashboard.ui import NONE, pct, render, table, time_axis, usd
from core.errors import AigwError

ctx = context()
st.title("Budgets and alerts")
try:
    config = alerts_config(ctx.settings)
except AigwError as error:  # an invalid budgets file is shown; the history still is
    st.error(str(error))
    config = None
if config is None:
    st.info(
        f"No budgets file at {ctx.settings.budgets_path}: pass `aigw dashboard --budgets FILE`."
    )
else:
    st.caption(
        f"As of {ctx.as_of:%Y-%m-%d %H:%M} UTC, periods in {config.timezone}; spend counted "
        "as `aigw alerts run` counts it."
    )
    for budget in config.budgets:
        start, end = period_bounds(budget, ctx.as_of, config.timezone)
        result = fetch(
            ctx.settings,
            "budgets",
            start=start,
            end=end,
            now=ctx.as_of,
            filters=tuple(sorted(budget.filters.items())),
            split_by=budget.split_by,
        )
        spend, burn = result["spend"], result["burndown"]
        scope = ", ".join(f"{k}={v}" for k, v in budget.filters.items()) or "all traffic"
        st.subheader(f"{budget.name}: {usd(budget.amount_usd)} {budget.period}")
        st.caption(
            f"{scope}{f', per {budget.split_by}' if budget.split_by else ''}; period "
            f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC; thresholds "
            + ", ".join(pct(t) for t in budget.thresholds)
        )
        top = spend.row(0, named=True) if spend.height else {}
        spent = float(top.get("spent_usd") or 0.0)
        projected = top.get("projected_usd")
        columns = st.columns(3)
        biggest = top.get(budget.split_by) if budget.split_by else None
        label = f" (biggest: {budget.split_by} {biggest or NONE})" if budget.split_by else ""
        columns[0].metric(f"Spent{label}", usd(spent))
        columns[1].metric("Used", pct(spent / budget.amount_usd))
        columns[2].metric(
            "Forecast for the period (straight line)",
            usd(projected),
            help="Spent so far ÷ the share of the period elapsed (a straight line), as "
            "`aigw alerts run` projects a budget. The Overview's month-end forecast follows "
            "the mean of recent complete days instead, so the two can differ.",
        )
        if budget.split_by:
            table(
                spend.with_columns(
                    (pl.col("spent_usd") / budget.amount_usd).alias("used"),
                ),
                key=f"split_{budget.name}",
                columns=[budget.split_by, "spent_usd", "used", "projected_usd"],
            )
        elif burn.height:
            long = (
                burn.rename({"spent_usd": "spent", "projected_usd": "forecast"})
                .unpivot(index="period", variable_name="series", value_name="usd")
                .drop_nulls("usd")
            )
            lines = (
                alt.Chart(long.to_arrow())
                .mark_line(point=False)
                .encode(
                    x=time_axis("period", "hour", title="Time (UTC)"),
                    y=alt.Y("usd:Q", title="USD (cumulative)", axis=alt.Axis(format="$,.2f")),
                    color=alt.Color("series:N", title=None, sort=["spent", "forecast"]),
                    strokeDash=alt.StrokeDash(
                        "series:N",
                        legend=None,
                        scale=alt.Scale(domain=["spent", "forecast"], range=[[1, 0], [6, 4]]),
                    ),
                )
            )
            rule = (
                alt.Chart(pl.DataFrame({"budget": [budget.amount_usd]}).to_arrow())
                .mark_rule(color="red")
                .encode(y="budget:Q")
            )
            render(lines + rule)

st.subheader("Gateway vs invoice")
months = fetch(ctx.settings, "invoices")
if months.is_empty():
    st.caption("No provider bills imported yet: `aigw reconcile invoice FILE…` imports them.")
else:
    st.caption(
        "Per UTC month and provider: what the imported bills say against aigw's effective "
        "cost for the billed days (`aigw reconcile invoice` explains each day's difference)."
    )
    table(
        months,
        key="invoices",
        columns=["month", "provider", "invoice_usd", "cost_usd", "difference_usd", "matched_usd"],
    )

st.subheader("Alert history")
history = fetch(ctx.settings, "alerts", limit=200)
if history.is_empty():
    st.caption("No alerts recorded yet (`aigw alerts run` records them).")
else:
    counts = history.group_by("status").len().sort("status")
    columns = st.columns(max(counts.height, 1))
    for column, (status, number) in zip(columns, counts.iter_rows(), strict=True):
        column.metric(f"Deliveries {status}", f"{number:,}")
    table(
        history,
        key="alerts",
        columns=[
            "created_at",
            "kind",
            "rule",
            "scope",
            "threshold",
            "spent_usd",
            "budget_usd",
            "channel",
            "status",
            "attempts",
            "last_error",
        ],
    )
