"""One ``aigw alerts run``: refresh rollups, evaluate, record new alerts, deliver what is owed.

Exactly once per crossing: alerts are recorded by stable id before anything is
sent (``alerts.state``), and each (alert, channel) delivery is marked delivered
only after the channel accepted it. A failed delivery stays owed and is retried
by the next run with the same alert id (at least once; receivers deduplicate on
the id). One channel failing does not hold up the others. Two runs at once: the
second waits for DuckDB's write lock on the warehouse (up to ``wait_seconds``),
then sees the first one's records; on an Iceberg warehouse both run, and the state
database's insert-or-ignore records each alert id for one of them only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from alerts.channels import (
    Channel,
    EmailChannel,
    OutboxChannel,
    SlackChannel,
    WebhookChannel,
    deliver_with_retries,
)
from alerts.config import AlertsConfig, ChannelSpec
from alerts.errors import DeliveryError
from alerts.evaluate import earliest_needed, evaluate
from alerts.message import Alert, alert_id
from alerts.state import mark_delivery, pending_deliveries, record_alerts, take_delivery
from core.errors import WarehouseLocked
from core.lake import WarehouseTarget
from core.warehouse import Warehouse, open_warehouse, read_requests, table_exists
from models import ModelsSettings, read_rollup, refresh_rollups

__all__ = ["STALE_RULE", "AlertsRunResult", "build_channel", "run_alerts"]


@dataclass(slots=True)
class AlertsRunResult:
    """What one run did. ``would_fire`` is filled by dry runs only."""

    evaluated: int = 0
    new: list[Alert] = field(default_factory=list)
    delivered: list[tuple[Alert, str]] = field(default_factory=list)
    failed: list[tuple[Alert, str, str]] = field(default_factory=list)  # alert, channel, error
    would_fire: list[tuple[Alert, tuple[str, ...]]] = field(default_factory=list)
    newest_data: datetime | None = None  # the newest request at or before "now" (UTC)
    stale: bool = False  # newest_data is older than the configured age (or missing)
    stale_after_hours: float = 0.0  # the configured age (0: not checked)
    now: datetime | None = None  # the moment evaluated (UTC)


def build_channel(spec: ChannelSpec) -> Channel:
    """The channel object for a configured channel (secrets already resolved)."""
    settings: Mapping[str, Any] = spec.settings
    if spec.type == "outbox":
        return OutboxChannel(spec.name, Path(str(settings["folder"])))
    if spec.type == "slack":
        return SlackChannel(spec.name, str(settings["webhook_url"]))
    if spec.type == "webhook":
        secret = settings.get("secret")
        return WebhookChannel(
            spec.name, str(settings["url"]), None if secret is None else str(secret)
        )
    return EmailChannel(
        spec.name,
        str(settings["host"]),
        int(settings.get("port", 587)),
        str(settings["sender"]),
        [str(address) for address in settings["recipients"]],
        username=settings.get("username"),
        password=settings.get("password"),
        starttls=bool(settings.get("starttls", True)),
    )


def run_alerts(
    db_path: WarehouseTarget,
    models_settings: ModelsSettings,
    config: AlertsConfig,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    wait_seconds: float = 30.0,
    channel_factory: Callable[[ChannelSpec], Channel] = build_channel,
    retry_backoff: float = 0.5,
) -> AlertsRunResult:
    """Evaluate ``config`` at ``now`` (default: the current time) and deliver."""
    moment = now or datetime.now(tz=UTC)
    routes = {budget.name: budget.channels for budget in config.budgets}
    routes |= {rule.name: rule.channels for rule in config.anomalies}
    result = AlertsRunResult(stale_after_hours=config.stale_after_hours, now=moment)
    with _open(db_path, read_only=dry_run, wait_seconds=wait_seconds) as warehouse:
        if not dry_run:
            refresh_rollups(warehouse, models_settings)
        with warehouse.errors():
            rollup = read_rollup(warehouse.con, since=earliest_needed(config, moment), until=moment)

        def requests_of(hours: list[datetime]) -> pl.LazyFrame:
            with warehouse.errors():
                return read_requests(
                    warehouse.con, models_settings, hours=hours, with_request_hash=True
                )

        candidates = (
            evaluate(rollup, config, now=moment, requests_of=requests_of)
            if rollup.collect_schema().names()
            else []
        )
        result.evaluated = len(candidates)
        result.newest_data = _newest_request(warehouse, moment)
        limit = timedelta(hours=config.stale_after_hours)
        result.stale = bool(limit) and (
            result.newest_data is None or moment - result.newest_data > limit
        )
        if result.stale and config.stale_channels:
            routes[STALE_RULE] = config.stale_channels
            candidates.append(_stale_alert(result.newest_data, moment, config))
        if dry_run:
            known = _known_ids(warehouse)
            result.would_fire = [
                (alert, routes[alert.rule]) for alert in candidates if alert.alert_id not in known
            ]
            return result
        result.new = record_alerts(
            warehouse, [(alert, routes[alert.rule]) for alert in candidates], now=moment
        )
        channels = {name: channel_factory(spec) for name, spec in config.channels.items()}
        for owed in pending_deliveries(warehouse):
            if not take_delivery(warehouse, owed.alert, owed.channel, now=datetime.now(tz=UTC)):
                continue  # another run is sending it
            channel = channels.get(owed.channel)
            error = None
            if channel is None:
                error = f"channel {owed.channel} is no longer configured"
            else:
                try:
                    deliver_with_retries(channel, owed.alert, backoff=retry_backoff)
                except DeliveryError as err:
                    error = str(err)
            mark_delivery(
                warehouse, owed.alert, owed.channel, error=error, now=datetime.now(tz=UTC)
            )
            if error is None:
                result.delivered.append((owed.alert, owed.channel))
            else:
                result.failed.append((owed.alert, owed.channel, error))
    return result


STALE_RULE = "stale-data"


def _newest_request(warehouse: Warehouse, now: datetime) -> datetime | None:
    """The time of the newest request at or before ``now`` (UTC), None when there is none."""
    if not table_exists(warehouse.con, "requests"):
        return None
    with warehouse.errors():
        row = warehouse.con.execute("SELECT max(ts) FROM requests WHERE ts <= ?", [now]).fetchone()
    newest = row[0] if row else None
    return newest.astimezone(UTC) if isinstance(newest, datetime) else None


def _stale_alert(newest: datetime | None, now: datetime, config: AlertsConfig) -> Alert:
    """The stale-data alert: one id per newest request time (one message per outage)."""
    since = newest or now
    age = (
        "no request at all"
        if newest is None
        else f"the newest request is from {newest:%Y-%m-%d %H:%M} UTC"
    )
    return Alert(
        alert_id=alert_id(STALE_RULE, "none" if newest is None else newest.isoformat()),
        kind="stale",
        rule=STALE_RULE,
        scope="everything",
        period_start=since,
        period_end=now,
        threshold=None,
        spent_usd=0.0,
        budget_usd=None,
        forecast_usd=None,
        dashboard_url=config.dashboard_url,
        detail=(
            f"Stale data: {age}, more than {config.stale_after_hours:g} hours before "
            f"{now:%Y-%m-%d %H:%M} UTC. Is `aigw ingest` (or Logpush) still running?"
        ),
    )


def _known_ids(warehouse: Warehouse) -> set[str]:
    if not table_exists(warehouse.con, "alerts"):
        return set()
    with warehouse.errors():
        return {row[0] for row in warehouse.con.execute("SELECT alert_id FROM alerts").fetchall()}


def _open(db_path: WarehouseTarget, *, read_only: bool, wait_seconds: float) -> Warehouse:
    """Open the warehouse (never creating one: nothing to evaluate), waiting up to
    ``wait_seconds`` for another writer to finish."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return open_warehouse(db_path, read_only=read_only, create=False)
        except WarehouseLocked:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
