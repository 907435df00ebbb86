"""``budgets.toml``: budgets, anomaly rules and channels, validated before anything runs.

Every error names the file, the budget (or rule, or channel) and the key, never a
value, and nothing is sent when the file is invalid. A channel's secrets (webhook
URLs, signing keys, passwords) may be written in the file; to keep one out of it,
a ``<key>_env`` key names the environment variable that holds it, read once at the
edge by ``load_alerts_config``. See ``sample_data/budgets.toml``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.errors import BudgetConfigError
from core.settings import read_toml, unknown_key

__all__ = [
    "DEFAULT_STALE_AFTER_HOURS",
    "PERIODS",
    "AlertsConfig",
    "AnomalyRule",
    "Budget",
    "ChannelSpec",
    "load_alerts_config",
]

PERIODS: Final = ("daily", "weekly", "monthly", "rolling")
CHANNEL_TYPES: Final = ("outbox", "slack", "webhook", "email")
_TOP_KEYS: Final = (
    "timezone", "dashboard_url", "stale_after_hours", "stale_channels", "channels", "budget",
    "anomaly",
)  # fmt: skip
DEFAULT_STALE_AFTER_HOURS: Final = 24.0
# Settings per channel type; each may also be given as ``<key>_env`` (the variable's name).
_CHANNEL_KEYS: Final = {
    "outbox": ("folder",),
    "slack": ("webhook_url",),
    "webhook": ("url", "secret"),
    "email": ("host", "port", "sender", "recipients", "username", "password", "starttls"),
}
_BUDGET_KEYS: Final = (
    "name", "amount_usd", "period", "days", "thresholds", "filter", "split_by",
    "contributors", "forecast", "channels",
)  # fmt: skip
_ANOMALY_KEYS: Final = ("name", "scope", "min_score", "min_impact_usd", "hours", "channels")


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A configured channel: its type and settings, secrets already read from the env."""

    name: str
    type: str
    settings: Mapping[str, Any]

    def __repr__(self) -> str:  # settings may hold secrets: never print them
        return f"ChannelSpec(name={self.name!r}, type={self.type!r})"


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend budget: ``amount_usd`` per period for a scope (optionally split by a dimension)."""

    name: str
    amount_usd: float
    period: str
    thresholds: tuple[float, ...]
    channels: tuple[str, ...]
    filters: Mapping[str, str] = field(default_factory=dict)
    split_by: str | None = None
    days: int = 7  # rolling periods only
    forecast: bool = False
    contributors: str = "model"


@dataclass(frozen=True, slots=True)
class AnomalyRule:
    """Alert on anomalies of a dimension above a score and a USD impact."""

    name: str
    scope: str
    channels: tuple[str, ...]
    min_score: float = 6.0
    min_impact_usd: float = 0.0
    hours: int = 24


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """Everything ``aigw alerts run`` needs."""

    budgets: tuple[Budget, ...]
    anomalies: tuple[AnomalyRule, ...]
    channels: Mapping[str, ChannelSpec]
    timezone: str = "UTC"
    dashboard_url: str = ""
    # Newest data older than this (hours before the run's "now") is an alarm; 0: never.
    stale_after_hours: float = DEFAULT_STALE_AFTER_HOURS
    stale_channels: tuple[str, ...] = ()  # where the stale-data alert goes (none: stderr only)


def load_alerts_config(
    path: Path, *, dimensions: tuple[str, ...], environ: Mapping[str, str] | None = None
) -> AlertsConfig:
    """Read and validate ``path``; ``dimensions`` are the report dimensions budgets may use."""
    env = os.environ if environ is None else environ
    document = read_toml(
        path, label="", error=lambda message: BudgetConfigError(message, path=str(path))
    )
    where = _Where(str(path))
    where.check_keys(None, document, _TOP_KEYS)
    timezone = str(document.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise where.error(None, "timezone", f"unknown time zone {timezone!r}") from None
    channels = {
        name: _channel(where, name, spec, env)
        for name, spec in _table(where, None, "channels", document.get("channels", {})).items()
    }
    budgets = tuple(
        _budget(where, index, entry, dimensions, channels)
        for index, entry in enumerate(_list(where, "budget", document.get("budget", [])), start=1)
    )
    anomalies = tuple(
        _anomaly(where, index, entry, dimensions, channels)
        for index, entry in enumerate(_list(where, "anomaly", document.get("anomaly", [])), 1)
    )
    names = [budget.name for budget in budgets] + [rule.name for rule in anomalies]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise where.error(duplicates[0], "name", "names must be unique across budgets and rules")
    stale_after = document.get("stale_after_hours", DEFAULT_STALE_AFTER_HOURS)
    stale_channels = document.get("stale_channels")
    if isinstance(stale_after, bool) or not isinstance(stale_after, int | float) or stale_after < 0:
        raise where.error(None, "stale_after_hours", "must be a number of hours, 0 or more")
    return AlertsConfig(
        budgets=budgets,
        anomalies=anomalies,
        channels=channels,
        timezone=timezone,
        dashboard_url=str(document.get("dashboard_url", "")),
        stale_after_hours=float(stale_after),
        stale_channels=()
        if stale_channels is None
        else _channels(where, "stale_channels", stale_channels, channels),
    )


@dataclass(frozen=True, slots=True)
class _Where:
    path: str

    def error(self, owner: str | None, key: str, problem: str) -> BudgetConfigError:
        place = f"{self.path}: {owner}: " if owner else f"{self.path}: "
        return BudgetConfigError(f"{place}`{key}` {problem}", path=self.path, budget=owner, key=key)

    def check_keys(
        self, owner: str | None, table: Mapping[str, Any], allowed: Iterable[str]
    ) -> None:
        """A misspelt key must not silently mean its default (``splitby`` is not ``split_by``)."""
        known = sorted(set(allowed))
        key = unknown_key(table, known)
        if key is not None:
            raise self.error(owner, key, f"is not a known key (known: {', '.join(known)})")


def _table(where: _Where, owner: str | None, key: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(owner, key, "must be a table")
    return value


def _list(where: _Where, key: str, value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise where.error(None, key, f"must be an array of tables ([[{key}]])")
    return value


def _channel(where: _Where, name: str, spec: object, env: Mapping[str, str]) -> ChannelSpec:
    owner = f"channel {name}"
    table = _table(where, owner, name, spec)
    kind = table.get("type")
    if kind not in CHANNEL_TYPES:
        raise where.error(owner, "type", f"must be one of {', '.join(CHANNEL_TYPES)}")
    allowed = _CHANNEL_KEYS[str(kind)]
    where.check_keys(owner, table, {"type", *allowed, *(f"{key}_env" for key in allowed)})
    settings: dict[str, Any] = {}
    for key, value in table.items():
        if key == "type":
            continue
        if key.endswith("_env"):
            variable = str(value)
            if variable not in env:
                raise where.error(owner, key, f"names ${variable}, which is not set")
            settings[key.removesuffix("_env")] = env[variable]
        else:
            settings[key] = value
    required = {
        "outbox": ("folder",),
        "slack": ("webhook_url",),
        "webhook": ("url",),
        "email": ("host", "sender", "recipients"),
    }[str(kind)]
    for key in required:
        if not settings.get(key):
            raise where.error(owner, key, "is missing")
    if kind == "email" and settings.get("username") and not bool(settings.get("starttls", True)):
        raise where.error(
            owner,
            "starttls",
            "is false but `username` is set: the password would travel in clear; "
            "set starttls = true or remove username",
        )
    return ChannelSpec(name=name, type=str(kind), settings=settings)


def _channels(
    where: _Where, owner: str, value: object, channels: Mapping[str, ChannelSpec]
) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise where.error(owner, "channels", "must list at least one channel")
    for name in value:
        if name not in channels:
            raise where.error(owner, "channels", f"names {name!r}, which is not a [channels.*]")
    return tuple(str(name) for name in value)


def _named(where: _Where, kind: str, index: int, entry: dict[str, Any]) -> tuple[str, str]:
    """The entry's name and how errors call it ("budget monthly"); the name is required."""
    name = str(entry.get("name") or f"#{index}")
    owner = f"{kind} {name}"
    if not entry.get("name"):
        raise where.error(owner, "name", "is missing")
    return name, owner


def _budget(
    where: _Where,
    index: int,
    entry: dict[str, Any],
    dimensions: tuple[str, ...],
    channels: Mapping[str, ChannelSpec],
) -> Budget:
    name, owner = _named(where, "budget", index, entry)
    where.check_keys(owner, entry, _BUDGET_KEYS)
    amount = entry.get("amount_usd")
    if not isinstance(amount, int | float) or isinstance(amount, bool) or amount <= 0:
        raise where.error(owner, "amount_usd", "must be a positive number of USD")
    period = entry.get("period", "monthly")
    if period not in PERIODS:
        raise where.error(owner, "period", f"must be one of {', '.join(PERIODS)}")
    days = entry.get("days", 7)
    if period == "rolling" and (not isinstance(days, int) or days < 1):
        raise where.error(owner, "days", "must be a whole number of days (rolling periods)")
    thresholds = entry.get("thresholds", [1.0])
    if (
        not isinstance(thresholds, list)
        or not thresholds
        or not all(isinstance(t, int | float) and 0 < t <= 10 for t in thresholds)
    ):
        raise where.error(owner, "thresholds", "must list fractions of the budget (e.g. 0.8, 1.0)")
    filters = _table(where, owner, "filter", entry.get("filter", {}))
    split_by = entry.get("split_by")
    for dimension in [*filters, *([split_by] if split_by else [])]:
        if dimension not in dimensions:
            raise where.error(
                owner,
                "split_by" if dimension == split_by else "filter",
                f"uses {dimension!r}, not one of {', '.join(dimensions)}",
            )
    contributors = str(entry.get("contributors", "model"))
    if contributors not in dimensions:
        raise where.error(owner, "contributors", f"{contributors!r} is not a dimension")
    return Budget(
        name=name,
        amount_usd=float(amount),
        period=str(period),
        thresholds=tuple(sorted({float(t) for t in thresholds})),
        channels=_channels(where, owner, entry.get("channels"), channels),
        filters={str(k): str(v) for k, v in filters.items()},
        split_by=str(split_by) if split_by else None,
        days=int(days),
        forecast=bool(entry.get("forecast", False)),
        contributors=contributors,
    )


def _anomaly(
    where: _Where,
    index: int,
    entry: dict[str, Any],
    dimensions: tuple[str, ...],
    channels: Mapping[str, ChannelSpec],
) -> AnomalyRule:
    name, owner = _named(where, "anomaly rule", index, entry)
    where.check_keys(owner, entry, _ANOMALY_KEYS)
    scope = str(entry.get("scope", "agent"))
    if scope not in dimensions:
        raise where.error(owner, "scope", f"{scope!r} is not one of {', '.join(dimensions)}")
    numbers = {}
    for key, default in (("min_score", 6.0), ("min_impact_usd", 0.0), ("hours", 24)):
        value = entry.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise where.error(owner, key, "must be a non-negative number")
        numbers[key] = value
    return AnomalyRule(
        name=name,
        scope=scope,
        channels=_channels(where, owner, entry.get("channels"), channels),
        min_score=float(numbers["min_score"]),
        min_impact_usd=float(numbers["min_impact_usd"]),
        hours=int(numbers["hours"]),
    )
