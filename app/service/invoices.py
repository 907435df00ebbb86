"""Provider bills against the gateway: import the files into ``provider_costs`` (all of
them in one transaction, a file imported again replacing its rows) and compare them per
UTC day, provider and model with aigw's effective and logged cost (``models.invoices``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.errors import ConfigError, WarehouseError
from core.lake import LakeSpec, WarehouseTarget
from core.warehouse import open_warehouse
from models import compare_invoices, gateway_daily, invoice_summary, read_invoices, read_rollup

__all__ = ["InvoiceReport", "reconcile_invoices"]


@dataclass(frozen=True, slots=True)
class InvoiceReport:
    """The compared cells, their totals (``invoice_summary``) and the rows imported."""

    cells: pl.DataFrame
    summary: dict[str, Any]
    imported_rows: int


def reconcile_invoices(
    target: WarehouseTarget, paths: Sequence[Path], *, tolerance_usd: float = 0.01
) -> InvoiceReport:
    """Read every file (the first bad one raises before the warehouse is touched), store
    them in ``provider_costs`` keyed by absolute path, and compare them with the daily
    rollup of the bills' days. An Iceberg warehouse refuses: it has no ``provider_costs``."""
    if tolerance_usd < 0:
        raise ConfigError(f"--tolerance {tolerance_usd} must be 0 or more")
    if isinstance(target, LakeSpec):
        raise ConfigError(
            "an Iceberg warehouse cannot store provider bills yet; "
            "reconcile against a DuckDB warehouse (--db FILE)"
        )
    invoice = read_invoices(paths)
    keys = {str(path): str(path.resolve()) for path in paths}
    stored = invoice.with_columns(pl.col("source_file").replace_strict(keys))
    if not Path(target).exists():
        raise WarehouseError(
            f"no warehouse at {target}; run `aigw ingest` first or pass --db", path=str(target)
        )
    with open_warehouse(target) as warehouse, warehouse.errors():
        con = warehouse.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "DELETE FROM provider_costs WHERE source_file IN (SELECT unnest(?))",
                [sorted(set(keys.values()))],
            )
            if stored.height:
                con.executemany(
                    "INSERT INTO provider_costs VALUES (?, ?, ?, ?, ?, now())", stored.rows()
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        rollup = pl.LazyFrame()
        if not invoice.is_empty():
            since = datetime.combine(invoice["day"].min(), time(), UTC)  # type: ignore[arg-type]
            until = datetime.combine(invoice["day"].max(), time(), UTC) + timedelta(days=1)  # type: ignore[arg-type]
            rollup = read_rollup(con, since=since, until=until, daily=True)
        gateway = gateway_daily(rollup)
    cells = compare_invoices(invoice, gateway, tolerance_usd=tolerance_usd)
    return InvoiceReport(cells, invoice_summary(cells), stored.height)
