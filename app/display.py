"""How aigw shows a value to a person: one format per unit, shared by the CLI and the pages.

Money is USD with cents (``$1,234.56``), one request's cost to a millionth of a dollar,
ratios are percentages with one decimal, counts have thousands separators, latencies are
whole milliseconds; a missing value shows as an em dash, never 0. Exact values belong to
machine formats (CSV, JSON), not to these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

__all__ = [
    "NONE",
    "ColumnKind",
    "change",
    "column_kind",
    "column_label",
    "count",
    "format_value",
    "ms",
    "pct",
    "percent",
    "usd",
    "usd_exact",
    "usd_fine",
]

NONE: Final = "—"

# Column names as a reader says them; a name not listed is shown with its words spaced.
_LABELS: Final[dict[str, str]] = {
    "cost_usd": "Cost",
    "effective_cost_usd": "Effective cost",
    "logged_cost_usd": "Logged cost",
    "saved_usd": "Saved",
    "saved_estimated_usd": "Saved (estimated)",
    "api_key": "API key",
    "api_key_id": "API key",
    "log_id": "Log id",
    "requests": "Requests",
    "tokens_in": "Tokens in",
    "tokens_out": "Tokens out",
    "cache_hit_ratio": "Cache hit rate",
    "impact_pct": "Impact",
    "impact_usd": "Over expected",
    "actual_usd": "Spent",
    "expected_usd": "Expected",
    "actual_requests": "Requests in the hour",
    "expected_requests": "Expected requests",
    "spent_usd": "Spent",
    "cost_logged": "Logged cost",
    "drift_usd": "Drift",
    "drift_pct": "Drift %",
    "request_hit_ratio": "Hit rate (requests)",
    "cost_hit_ratio": "Hit rate (cost)",
    "cached_requests": "Cached requests",
    "potential_saving_usd": "Potential saving",
    "mtd_usd": "Month to date",
    "projected_usd": "Forecast",
    "projected_low_usd": "Forecast low",
    "projected_high_usd": "Forecast high",
    "daily_mean_usd": "Daily mean",
    "daily_std_usd": "Daily std dev",
    "unknown_cost_requests": "Unpriced requests",
    "status_code": "Status",
    "duration_ms": "Duration",
    "ts": "Time",
    "hour": "Hour",
    "period": "Period",
    "share": "Share",
    "used": "Used",
    "cost": "Logged cost",
    "dlp_action": "DLP action",
    "current_cost_usd": "Current cost",
    "projected_cost_usd": "Projected cost",
    "saving_usd": "Saving",
    "saving_per_month_usd": "Saving / month",
    "affected_requests": "Affected",
    "cache_saved_usd": "Cache saved",
    "replay_cached_requests": "Replayed hits",
    "extra_hit_requests": "Extra hits",
    "lost_hit_requests": "Lost hits",
    "refused_users": "Users refused",
    "refused_hours": "Hours refused",
    "first_refused": "First refused",
    "dlp_categories": "DLP categories",
    "rate_limited": "Rate limited",
    "mean_usd": "Mean",
    "p50_usd": "p50",
    "p95_usd": "p95",
    "max_usd": "Max",
    "untagged_usd": "Untagged cost",
    "first_ts": "First request",
    "last_ts": "Last request",
    "cost_per_unit_usd": "Cost per unit",
    "cost_per_outcome_usd": "Cost per outcome",
}


def usd(value: float | None) -> str:
    return NONE if value is None else f"${value:,.2f}"


def usd_exact(value: float | None) -> str:
    """USD to a millionth of a dollar: what one request costs."""
    return NONE if value is None else f"${value:,.6f}"


def usd_fine(value: float | None) -> str:
    """USD to a hundredth of a cent, sign first (``-$0.0642``): CLI tables, where one
    model's spend is often a fraction of a cent."""
    if value is None:
        return NONE
    rounded = round(value, 4)
    return f"-${-rounded:,.4f}" if rounded < 0 else f"${abs(rounded):,.4f}"


def percent(value: float | None) -> str:
    """A value already in percent (``-6.26``) as ``-6.3%``."""
    return NONE if value is None else f"{round(value, 1) + 0.0:,.1f}%"


def pct(value: float | None) -> str:
    """A ratio (0.25) as a percentage (``25.0%``)."""
    return NONE if value is None else f"{value * 100:.1f}%"


def count(value: float | None) -> str:
    return NONE if value is None else f"{int(value):,}"


def ms(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f} ms"


def change(current: float | None, previous: float | None) -> str | None:
    """The relative change from ``previous`` as ``+12.3%`` (None when it cannot be said)."""
    if current is None or previous is None or previous == 0:
        return None
    return f"{(current - previous) / abs(previous) * 100:+.1f}%"


def column_label(name: str) -> str:
    """A column as a reader says it: ``cost_usd`` -> ``Cost``, ``top_model`` -> ``Top model``;
    an unlisted money column loses its unit (``invoice_usd`` -> ``Invoice``): its values
    are shown as money."""
    if name in _LABELS:
        return _LABELS[name]
    words = name.removesuffix("_usd").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


# ---- added for the dashboards' tables (issue 15) ----------------------------------------

ColumnKind = Literal["usd", "usd_exact", "pct", "pct_points", "count", "ms", "score", "text"]


def column_kind(name: str, *, integer: bool = False) -> ColumnKind:
    """How a column's values read, from its name (``integer``: the column holds whole
    numbers): money (``*_usd``, ``cost``), ratios (``*_ratio``, ``*_rate``, ``share``,
    ``used``), percentages already in percent units (``*_pct``), latencies (``*_ms``),
    scores, counts, or text. ``usd_exact`` is one request's cost (``cost``)."""
    if name == "cost" or name.endswith("_exact_usd"):  # custom_cost is a flag, not money
        return "usd_exact"
    if name.endswith("_usd") or name == "usd":
        return "usd"
    if name.endswith(("_ratio", "_rate")) or name in ("share", "used", "threshold"):
        return "pct"
    if name.endswith("_pct"):
        return "pct_points"
    if name.endswith("_ms") or name == "duration":
        return "ms"
    if name == "score":
        return "score"
    if integer or name.endswith(("requests", "tokens")):
        return "count"
    return "text"


def format_value(value: object, kind: ColumnKind) -> str:
    """``value`` as a person reads it for its ``kind``; missing (None, "") is ``NONE``."""
    if value is None or value == "":
        return NONE
    if kind == "text" or not isinstance(value, int | float):
        return str(value)
    formats: dict[str, Callable[[float], str]] = {
        "usd": usd,
        "usd_exact": usd_exact,
        "pct": pct,
        "pct_points": lambda number: pct(number / 100),
        "count": count,
        "ms": ms,
        "score": lambda number: f"{number:,.1f}",
    }
    return formats[kind](float(value))
