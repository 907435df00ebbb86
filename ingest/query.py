"""Read-only SQL over the warehouse, for analysts (``aigw sql``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.warehouse import open_warehouse

__all__ = ["QueryResult", "run_query"]


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Column names and rows of one query, in order."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(db_path: Path, sql: str) -> QueryResult:
    """Run ``sql`` on a read-only connection; errors become ``WarehouseError``."""
    with open_warehouse(db_path, read_only=True) as warehouse, warehouse.errors():
        cursor = warehouse.con.execute(sql)
        columns = [column[0] for column in cursor.description or ()]
        return QueryResult(columns, cursor.fetchall() if columns else [])
