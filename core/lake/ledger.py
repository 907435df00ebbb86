"""The alert ledger in a lakehouse's state database: what makes alerts fire once when the
warehouse is Iceberg (the DuckDB warehouse keeps the same tables in its file).

``record`` inserts alerts not seen before with a pending delivery per channel, in one
transaction (``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL alike), so an
alert id is recorded once however many runs evaluate it at the same time; ``owed`` lists
the deliveries not yet made; ``take`` lets one run at a time send a delivery (runs are not
serialised by a file lock here); ``mark`` records one attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.lake.state import STATE_TABLES, StateDB

__all__ = ["SENDING_LEASE", "mark", "owed", "record", "take"]

# A delivery being sent by a run that died is sent again by a later run after this long.
SENDING_LEASE: Final = timedelta(minutes=10)

_ALERTS = STATE_TABLES["alerts"]
_DELIVERIES = STATE_TABLES["alert_deliveries"]


def record(
    state: StateDB, alerts: Sequence[tuple[dict[str, Any], Sequence[str]]], *, now: datetime
) -> list[str]:
    """Record each ``(alert row, channels)`` whose ``alert_id`` is new, with a pending
    delivery per channel; return the new ids, in order."""
    new: list[str] = []
    with state.errors(), state.engine.begin() as con:
        insert = _insert_ignoring_duplicates(con)
        for row, channels in alerts:
            result = con.execute(insert(_ALERTS).values(**row))
            if result.rowcount != 1:
                continue
            new.append(str(row["alert_id"]))
            for channel in channels:
                con.execute(
                    insert(_DELIVERIES).values(
                        alert_id=row["alert_id"],
                        channel=channel,
                        status="pending",
                        attempts=0,
                        last_error=None,
                        updated_at=now,
                        delivered_at=None,
                    )
                )
    return new


def owed(state: StateDB) -> list[tuple[str, str, int]]:
    """``(payload, channel, attempts)`` of every delivery not yet made (pending or failed),
    oldest alert first, thresholds in order (as the DuckDB warehouse orders them)."""
    a, d = _ALERTS.c, _DELIVERIES.c
    query = (
        sa.select(a.payload, d.channel, d.attempts)
        .select_from(_DELIVERIES.join(_ALERTS, d.alert_id == a.alert_id))
        .where(d.status != "delivered")
        .order_by(
            a.created_at, a.rule, a.scope, a.threshold.is_(None), a.threshold, a.kind, d.channel
        )
    )
    with state.errors(), state.engine.connect() as con:
        return [(str(p), str(c), int(n)) for p, c, n in con.execute(query).all()]


def take(state: StateDB, alert_id: str, channel: str, *, now: datetime) -> bool:
    """Mark a delivery as being sent by this run; False when another run is sending it
    (two runs at once never both send it; a run that died leaves it for
    ``SENDING_LEASE``, then it is owed again)."""
    d = _DELIVERIES.c
    free = sa.or_(
        d.status.in_(("pending", "failed")),
        sa.and_(d.status == "sending", d.updated_at < now - SENDING_LEASE),
    )
    with state.errors(), state.engine.begin() as con:
        result = con.execute(
            _DELIVERIES.update()
            .where(d.alert_id == alert_id)
            .where(d.channel == channel)
            .where(free)
            .values(status="sending", updated_at=now)
        )
    return result.rowcount == 1


def mark(state: StateDB, alert_id: str, channel: str, *, error: str | None, now: datetime) -> None:
    """Record one delivery attempt: delivered when ``error`` is None, else failed."""
    d = _DELIVERIES.c
    values: dict[str, Any] = {
        "status": "failed" if error else "delivered",
        "attempts": d.attempts + 1,
        "last_error": error,
        "updated_at": now,
    }
    if error is None:
        values["delivered_at"] = now
    with state.errors(), state.engine.begin() as con:
        con.execute(
            _DELIVERIES.update()
            .where(d.alert_id == alert_id)
            .where(d.channel == channel)
            .values(**values)
        )


def _insert_ignoring_duplicates(con: sa.Connection) -> Any:
    """``insert(table)`` that skips a row whose primary key exists, for this dialect."""
    dialect = con.dialect.name
    if dialect == "postgresql":
        return lambda table: postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return lambda table: sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"the state database must be SQLite or PostgreSQL, not {dialect}")
