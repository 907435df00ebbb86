"""One request in full for the dashboard's explorer: its stored row (``core.warehouse``)
with its cost recomputed by the models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import polars as pl

from core.warehouse import Warehouse, request_row
from models import ModelsSettings, costed_requests

__all__ = ["RequestDetail", "request_detail"]

_COST_PARTS: Final = (
    "input_usd",
    "output_usd",
    "cache_read_usd",
    "cache_write_usd",
    "cache_write_1h_usd",
    "cost_usd",
    "saved_usd",
    "saved_estimated",
    "cost_logged",
    "cost_source",
)


@dataclass(frozen=True, slots=True)
class RequestDetail:
    """One request: its fields, recomputed cost parts, policy actions and failover steps.

    ``fields`` holds the request's columns (no bodies); ``metadata`` its custom
    metadata (an encrypted object stays as it is); ``cost`` one row with
    ``input_usd``, ``output_usd``, ``cache_read_usd``, ``cache_write_usd`` (5-minute
    writes), ``cache_write_1h_usd`` (1-hour writes), ``cost_usd``, ``saved_usd``,
    ``saved_estimated`` (a hit's saving estimated: ``models.savings``), ``cost_logged``
    and ``cost_source`` as ``models.cost`` computes them; ``attempts`` every request
    sharing its ``event_id`` (the failover steps), by ``step``.
    """

    fields: dict[str, Any]
    metadata: Any
    cost: dict[str, Any]
    attempts: pl.DataFrame


def request_detail(
    warehouse: Warehouse, settings: ModelsSettings, log_id: str
) -> RequestDetail | None:
    """The request with ``log_id`` (None when there is none)."""
    row = request_row(warehouse, log_id)
    if row is None:
        return None
    ts = row.fields["ts"]
    costed = (
        costed_requests(warehouse, settings, since=ts, until=ts + timedelta(microseconds=1))
        .filter(pl.col("log_id") == log_id)
        .select(*_COST_PARTS)
        .collect()
    )
    cost = costed.row(0, named=True) if costed.height else {}
    return RequestDetail(fields=row.fields, metadata=row.metadata, cost=cost, attempts=row.attempts)
