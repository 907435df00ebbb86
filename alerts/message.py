"""What an alert says, independent of the channel that carries it.

``Alert.alert_id`` is stable: the same crossing (budget, scope value, period,
threshold; for anomalies rule, scope value and hour) always gets the same id, so
receivers can deduplicate deliveries that are retried (at least once). Money is USD;
times are UTC. Spent amounts and their share of a budget are rounded down (to the
cent, to the percent), so a message never claims a threshold its numbers have not
reached ("$2.49 of $2.50 (99%)", not "(100%)").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

__all__ = ["Alert", "alert_id", "dashboard_link"]

_SIGNALS = {"requests": "request rate", "new_identity": "new identity spending", "spend": "spend"}


def dashboard_link(
    base: str, page: str, filters: Mapping[str, str], start: datetime, end: datetime
) -> str:
    """``base``'s ``page`` filtered to ``filters`` and the UTC days of ``[start, end)``, as
    the dashboard reads its URL (``?from=…&to=…&agent=…``, ``to`` inclusive); "" without a
    base."""
    if not base:
        return ""
    last = max(start, end - timedelta(microseconds=1))
    query = {"from": f"{start:%Y-%m-%d}", "to": f"{last:%Y-%m-%d}", **filters}
    return f"{base.rstrip('/')}/{page}?{urlencode(query)}"


def _cents_down(usd: float) -> float:
    """``usd`` rounded down to the cent (a hair of float error forgiven)."""
    return math.floor(usd * 100 + 1e-6) / 100


def _percent_down(part: float, whole: float) -> int:
    """``part / whole`` in whole percent, rounded down."""
    return math.floor(part / whole * 100 + 1e-6)


def alert_id(*parts: object) -> str:
    """A stable id from the parts that identify one crossing."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a budget threshold crossed, a forecast overrun, or an anomaly."""

    alert_id: str
    kind: str  # "budget", "forecast", "anomaly" or "stale" (no new data)
    rule: str  # the budget or anomaly rule name
    scope: str  # e.g. "everything", "agent=summarizer", "provider=openai"
    period_start: datetime
    period_end: datetime
    threshold: float | None  # fraction of the budget, e.g. 0.8; None for anomalies
    spent_usd: float
    budget_usd: float | None
    forecast_usd: float | None
    top_contributors: list[tuple[str, float]] = field(default_factory=list)  # (name, USD)
    dashboard_url: str = ""
    detail: str = ""  # one extra line (anomaly score, expected vs actual)
    signal: str = ""  # anomalies: spend, requests or new_identity; several comma-separated

    @property
    def title(self) -> str:
        """One line: what crossed."""
        if self.kind == "budget" and self.threshold is not None and self.budget_usd:
            return (
                f"{self.rule}: {self.threshold:.0%} of ${self.budget_usd:,.2f} reached "
                f"for {self.scope}"
            )
        if self.kind == "stale":
            return f"{self.rule}: no new data since {self.period_start:%Y-%m-%d %H:%M} UTC"
        if self.kind == "forecast" and self.budget_usd:
            return f"{self.rule}: {self.scope} is on course to exceed ${self.budget_usd:,.2f}"
        names = [_SIGNALS.get(part, part) for part in self.signal.split(",") if part]
        what = " and ".join(names) or "spend"
        hour = f"{self.period_start:%Y-%m-%d %H:00} UTC"
        return f"{self.rule}: anomalous {what} for {self.scope} at {hour}"

    def lines(self) -> list[str]:
        """The body as plain-text lines (every channel says the same things)."""
        lines = [self.title]
        if self.kind == "stale":
            lines.extend(self.detail.splitlines())
            if self.dashboard_url:
                lines.append(f"Dashboard: {self.dashboard_url}")
            lines.append(f"Alert id: {self.alert_id}")
            return lines
        spent = f"Spent ${_cents_down(self.spent_usd):,.2f}"
        if self.budget_usd:
            share = _percent_down(self.spent_usd, self.budget_usd)
            spent += f" of ${self.budget_usd:,.2f} ({share}%)"
        lines.append(
            f"{spent} in {self.period_start:%Y-%m-%d %H:%M} - {self.period_end:%Y-%m-%d %H:%M} UTC"
        )
        if self.forecast_usd is not None:
            lines.append(f"Forecast for the period: ${self.forecast_usd:,.2f}")
        if self.detail:
            lines.extend(self.detail.splitlines())
        if self.top_contributors:
            lines.append(
                "Top contributors: "
                + ", ".join(f"{name} ${usd:,.2f}" for name, usd in self.top_contributors[:3])
            )
        if self.dashboard_url:
            lines.append(f"Dashboard: {self.dashboard_url}")
        lines.append(f"Alert id: {self.alert_id}")
        return lines

    def as_json(self) -> dict[str, Any]:
        """The alert as a JSON-ready object (webhooks, outbox)."""
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "rule": self.rule,
            "scope": self.scope,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "threshold": self.threshold,
            "spent_usd": self.spent_usd,
            "budget_usd": self.budget_usd,
            "forecast_usd": self.forecast_usd,
            "top_contributors": [
                {"name": name, "usd": usd} for name, usd in self.top_contributors[:3]
            ],
            "dashboard_url": self.dashboard_url,
            "detail": self.detail,
            "signal": self.signal,
            "title": self.title,
            "text": "\n".join(self.lines()),
        }
