"""Alert history and delivery state in the warehouse: what makes alerts fire once.

The tables are created by the warehouse's migration v5 (``core.warehouse``).

``alerts`` holds one row per alert id (a crossing: budget, scope value, period,
threshold); ``alert_deliveries`` one row per (alert, channel) with its status
(``pending``, ``delivered``, ``failed``), attempts and last error. Recording new
alerts and their pending deliveries is one transaction with ``INSERT … ON CONFLICT
DO NOTHING``, so an alert id is recorded once however often it is evaluated;
DuckDB's single-writer lock on the file keeps two evaluations from interleaving.
Failed deliveries stay in the table and are retried by every later run.

On an Iceberg warehouse the same tables live in its state database (SQLite or
PostgreSQL), where ``core.lake.ledger`` keeps the same promises with the database's own
transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from alerts.message import Alert
from core.warehouse import Warehouse

__all__ = [
    "PendingDelivery",
    "mark_delivery",
    "pending_deliveries",
    "record_alerts",
    "take_delivery",
]


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """An alert still owed to a channel."""

    alert: Alert
    channel: str
    attempts: int


def record_alerts(
    warehouse: Warehouse, alerts: Sequence[tuple[Alert, Sequence[str]]], *, now: datetime
) -> list[Alert]:
    """Record alerts not seen before with a pending delivery per channel; return the new ones."""
    if warehouse.lake is not None:
        from core.lake import ledger  # noqa: PLC0415 - the lake extra, only when asked for

        rows = [(_row(alert, now), channels) for alert, channels in alerts]
        recorded = set(ledger.record(warehouse.lake.state, rows, now=now))
        return [alert for alert, _ in alerts if alert.alert_id in recorded]
    con = warehouse.con
    new: list[Alert] = []
    with warehouse.errors():
        con.execute("BEGIN TRANSACTION")
        try:
            for alert, channels in alerts:
                inserted = con.execute(
                    "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [
                        alert.alert_id,
                        alert.kind,
                        alert.rule,
                        alert.scope,
                        alert.period_start,
                        alert.period_end,
                        alert.threshold,
                        alert.spent_usd,
                        alert.budget_usd,
                        alert.forecast_usd,
                        orjson.dumps(alert.as_json()).decode(),
                        now,
                    ],
                ).fetchone()
                if inserted and inserted[0]:
                    new.append(alert)
                    for channel in channels:
                        con.execute(
                            "INSERT INTO alert_deliveries "
                            "VALUES (?, ?, 'pending', 0, NULL, ?, NULL) ON CONFLICT DO NOTHING",
                            [alert.alert_id, channel, now],
                        )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return new


def pending_deliveries(warehouse: Warehouse) -> list[PendingDelivery]:
    """Deliveries not yet made (pending or failed), oldest alert first, thresholds in order."""
    if warehouse.lake is not None:
        from core.lake import ledger  # noqa: PLC0415 - the lake extra

        return [
            PendingDelivery(_alert(orjson.loads(payload)), channel, attempts)
            for payload, channel, attempts in ledger.owed(warehouse.lake.state)
        ]
    with warehouse.errors():
        rows = warehouse.con.execute(
            "SELECT a.payload, d.channel, d.attempts FROM alert_deliveries d "
            "JOIN alerts a USING (alert_id) WHERE d.status <> 'delivered' "
            "ORDER BY a.created_at, a.rule, a.scope, a.threshold NULLS LAST, a.kind, d.channel"
        ).fetchall()
    return [
        PendingDelivery(_alert(orjson.loads(payload)), channel, attempts)
        for payload, channel, attempts in rows
    ]


def take_delivery(warehouse: Warehouse, alert: Alert, channel: str, *, now: datetime) -> bool:
    """Whether this run may send ``alert`` to ``channel`` now: always on the DuckDB
    warehouse (its write lock serialises runs), on an Iceberg warehouse when no other run
    is sending it (``core.lake.ledger.take``)."""
    if warehouse.lake is None:
        return True
    from core.lake import ledger  # noqa: PLC0415 - the lake extra

    return ledger.take(warehouse.lake.state, alert.alert_id, channel, now=now)


def mark_delivery(
    warehouse: Warehouse, alert: Alert, channel: str, *, error: str | None, now: datetime
) -> None:
    """Record one delivery attempt: delivered when ``error`` is None, else failed (retried)."""
    if warehouse.lake is not None:
        from core.lake import ledger  # noqa: PLC0415 - the lake extra

        ledger.mark(warehouse.lake.state, alert.alert_id, channel, error=error, now=now)
        return
    with warehouse.errors():
        warehouse.con.execute(
            "UPDATE alert_deliveries SET status = ?, attempts = attempts + 1, last_error = ?, "
            "updated_at = ?, delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END "
            "WHERE alert_id = ? AND channel = ?",
            [
                "failed" if error else "delivered",
                error,
                now,
                error is None,
                now,
                alert.alert_id,
                channel,
            ],
        )


def _row(alert: Alert, now: datetime) -> dict[str, object]:
    """The ``alerts`` row of ``alert`` (column names as in the table)."""
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind,
        "rule": alert.rule,
        "scope": alert.scope,
        "period_start": alert.period_start,
        "period_end": alert.period_end,
        "threshold": alert.threshold,
        "spent_usd": alert.spent_usd,
        "budget_usd": alert.budget_usd,
        "forecast_usd": alert.forecast_usd,
        "payload": orjson.dumps(alert.as_json()).decode(),
        "created_at": now,
    }


def _alert(data: dict[str, object]) -> Alert:
    contributors = data.get("top_contributors")
    if not isinstance(contributors, list):
        contributors = []
    return Alert(
        alert_id=str(data["alert_id"]),
        kind=str(data["kind"]),
        rule=str(data["rule"]),
        scope=str(data["scope"]),
        period_start=datetime.fromisoformat(str(data["period_start"])),
        period_end=datetime.fromisoformat(str(data["period_end"])),
        threshold=_number(data.get("threshold")),
        spent_usd=float(_number(data.get("spent_usd")) or 0.0),
        budget_usd=_number(data.get("budget_usd")),
        forecast_usd=_number(data.get("forecast_usd")),
        top_contributors=[(str(item["name"]), float(item["usd"])) for item in contributors],
        dashboard_url=str(data.get("dashboard_url") or ""),
        detail=str(data.get("detail") or ""),
        signal=str(data.get("signal") or ""),
    )


def _number(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
