"""Which alerts hold now: budget thresholds, forecast overruns and anomalies.

Pure functions over the hourly rollup (``models.reports.read_rollup``); they
return every alert whose condition holds at ``now``, with stable ids, and leave
"was it already sent?" to ``alerts.state``. Periods are calendar periods in the
configured time zone (daily from midnight, weekly from Monday, monthly from the
1st) or, for ``rolling`` budgets, the last N days ending with today (so a rolling
budget alerts at most once a day per threshold while it stays over). Money is
USD, times UTC; hours are whole, so local periods are exact for whole-hour zones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from alerts.config import AlertsConfig, AnomalyRule, Budget
from alerts.message import Alert, alert_id, dashboard_link
from models import MEASURES, detect_anomalies, explain_flags

__all__ = ["anomaly_alerts", "budget_alerts", "earliest_needed", "evaluate", "period_bounds"]

# A forecast needs some of the period behind it before it may alert.
_MIN_FORECAST_FRACTION = 0.1


def period_bounds(budget: Budget, now: datetime, tz: str) -> tuple[datetime, datetime]:
    """The budget's current period ``[start, end)`` containing ``now``, in UTC."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if budget.period == "daily":
        start, end = midnight, _add_days(midnight, 1)
    elif budget.period == "weekly":
        start = _add_days(midnight, -midnight.weekday())
        end = _add_days(start, 7)
    elif budget.period == "monthly":
        start = midnight.replace(day=1)
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    else:  # rolling: the last `days` days, today included
        end = _add_days(midnight, 1)
        start = _add_days(end, -budget.days)
    return start.astimezone(UTC), end.astimezone(UTC)


def _add_days(moment: datetime, days: int) -> datetime:
    """``moment`` plus whole calendar days in its own zone (DST-safe wall clock)."""
    naive = moment.replace(tzinfo=None) + timedelta(days=days)
    return naive.replace(tzinfo=moment.tzinfo)


def budget_alerts(
    rollup: pl.LazyFrame, budget: Budget, *, now: datetime, tz: str, dashboard_url: str = ""
) -> list[Alert]:
    """Threshold (and forecast) alerts of one budget at ``now``, in threshold order."""
    start, end = period_bounds(budget, now, tz)
    frame = rollup.filter((pl.col("hour") >= start) & (pl.col("hour") < min(end, now)))
    for name, wanted in budget.filters.items():
        frame = frame.filter(pl.col(name) == wanted)
    keys = [budget.split_by] if budget.split_by else []
    spent = (
        frame.group_by(keys or pl.lit(True).alias("_all")).agg(pl.col("cost_usd").sum()).collect()
    )
    contributors = (
        frame.group_by([*keys, budget.contributors])
        .agg(pl.col("cost_usd").sum())
        .sort("cost_usd", budget.contributors, descending=[True, False], nulls_last=True)
        .collect()
    )
    elapsed = (min(now, end) - start) / (end - start)
    alerts: list[Alert] = []
    for row in spent.sort(keys or "_all").iter_rows(named=True):
        value = row[budget.split_by] if budget.split_by else None
        scope = _scope(budget, value)
        used = float(row["cost_usd"] or 0.0)
        projected = used / elapsed if elapsed >= _MIN_FORECAST_FRACTION else None
        top = _top(contributors, budget, value)
        shown = dict(budget.filters)
        if budget.split_by and value is not None:
            shown[budget.split_by] = str(value)
        template = Alert(
            alert_id="",
            kind="budget",
            rule=budget.name,
            scope=scope,
            period_start=start,
            period_end=end,
            threshold=None,
            spent_usd=used,
            budget_usd=budget.amount_usd,
            forecast_usd=projected,
            top_contributors=top,
            dashboard_url=dashboard_link(dashboard_url, "budgets", shown, start, min(end, now)),
        )
        period = start.isoformat()
        alerts.extend(
            replace(template, alert_id=alert_id(budget.name, scope, period, t), threshold=t)
            for t in budget.thresholds
            if used >= t * budget.amount_usd
        )
        if budget.forecast and projected is not None and used < budget.amount_usd < projected:
            alerts.append(
                replace(
                    template,
                    alert_id=alert_id(budget.name, scope, period, "forecast"),
                    kind="forecast",
                    detail=f"Projected ${projected:,.2f} by {end:%Y-%m-%d %H:%M} UTC",
                )
            )
    return alerts


def _scope(budget: Budget, value: object) -> str:
    parts = [f"{name}={text}" for name, text in budget.filters.items()]
    if budget.split_by:
        parts.append(f"{budget.split_by}={value if value is not None else '(none)'}")
    return ", ".join(parts) or "everything"


def _top(contributors: pl.DataFrame, budget: Budget, value: object) -> list[tuple[str, float]]:
    rows = contributors
    if budget.split_by:
        rows = rows.filter(
            pl.col(budget.split_by).is_null() if value is None else pl.col(budget.split_by) == value
        )
    return [
        (str(name) if name is not None else "(none)", float(usd or 0.0))
        for name, usd in rows.select(budget.contributors, "cost_usd").head(3).iter_rows()
    ]


RequestsOf = Callable[[list[datetime]], pl.LazyFrame]
"""The raw requests of some UTC hours, with ``request_hash`` (``read_requests``)."""


def anomaly_alerts(
    rollup: pl.LazyFrame,
    rule: AnomalyRule,
    *,
    now: datetime,
    dashboard_url: str = "",
    requests_of: RequestsOf | None = None,
) -> list[Alert]:
    """One alert per flagged (value, hour) in the rule's window before ``now``: its
    signals (spend, request rate, new identity) are one event, so one message.

    The id is the rule's, the value's and the hour's, not the signals': a signal that
    joins a later run (more of the hour arrived) does not send the event again. The
    detail's last line is the hour's root cause (``models.root_cause``): the cells of the
    rollup's other dimensions that explain most of its excess, and, with ``requests_of``
    (the raw requests of the flagged hours), how many of a cell's requests repeat one.
    """
    flags = detect_anomalies(
        rollup,
        rule.scope,
        now=now,
        window=timedelta(hours=rule.hours),
        min_score=rule.min_score,
        min_impact_usd=rule.min_impact_usd,
    )
    dimensions = [
        name
        for name in rollup.collect_schema().names()
        if name not in {"hour", "cost_source", rule.scope, *MEASURES}
    ]
    hours = sorted(set(flags["hour"].to_list()))
    requests = requests_of(hours) if requests_of is not None and hours and dimensions else None
    causes = explain_flags(
        rollup, flags if dimensions else flags.clear(), dimensions=dimensions, requests=requests
    )
    headlines = {
        (row[1], row[2]): row[0]
        for row in causes.summary.select("headline", "value", "hour").rows()
    }
    events: dict[tuple[Any, datetime], list[dict[str, Any]]] = {}
    for flag in flags.iter_rows(named=True):
        events.setdefault((flag["value"], flag["hour"]), []).append(flag)
    alerts = []
    for (value, hour), signals in events.items():
        signals.sort(key=lambda flag: str(flag["signal"]))
        scope = f"{rule.scope}={value if value is not None else '(none)'}"
        first = signals[0]
        actual = _number(first["actual_usd"])
        filters = {rule.scope: str(value)} if value is not None else {}
        alerts.append(
            Alert(
                alert_id=alert_id(rule.name, scope, hour.isoformat()),
                kind="anomaly",
                rule=rule.name,
                scope=scope,
                period_start=hour,
                period_end=hour + timedelta(hours=1),
                threshold=None,
                spent_usd=actual,
                budget_usd=None,
                forecast_usd=None,
                dashboard_url=dashboard_link(
                    dashboard_url,
                    "anomalies",
                    {"scope": rule.scope, **filters},
                    hour,
                    hour + timedelta(hours=1),
                ),
                signal=",".join(str(flag["signal"]) for flag in signals),
                detail="\n".join(
                    [
                        "Signals: "
                        + ", ".join(
                            f"{flag['signal']} (score {_number(flag['score']):.1f})"
                            for flag in signals
                        ),
                        f"${actual:,.2f} against ${_number(first['expected_usd']):,.2f} "
                        f"expected; {first['actual_requests']} requests against "
                        f"{_number(first['expected_requests']):,.0f}",
                        *(
                            [f"Root cause: {headlines[value, hour]}"]
                            if (value, hour) in headlines
                            else []
                        ),
                    ]
                ),
            )
        )
    return alerts


def _number(value: object) -> float:
    """A flag's number (null: 0)."""
    return float(value) if isinstance(value, int | float) else 0.0


def evaluate(
    rollup: pl.LazyFrame,
    config: AlertsConfig,
    *,
    now: datetime,
    requests_of: RequestsOf | None = None,
) -> list[Alert]:
    """Every alert that holds at ``now``: budgets in file order, then anomaly rules (their
    root causes count repeated requests when ``requests_of`` reads raw requests)."""
    alerts: list[Alert] = []
    for budget in config.budgets:
        alerts += budget_alerts(
            rollup, budget, now=now, tz=config.timezone, dashboard_url=config.dashboard_url
        )
    for rule in config.anomalies:
        alerts += anomaly_alerts(
            rollup, rule, now=now, dashboard_url=config.dashboard_url, requests_of=requests_of
        )
    return alerts


def earliest_needed(config: AlertsConfig, now: datetime) -> datetime:
    """The oldest hour any budget period or anomaly baseline of ``config`` reads."""
    starts = [period_bounds(budget, now, config.timezone)[0] for budget in config.budgets]
    starts += [now - timedelta(hours=rule.hours) - timedelta(weeks=5) for rule in config.anomalies]
    return min(starts, default=now)
