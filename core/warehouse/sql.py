"""SQL typed by a person (``aigw sql``): read-only, sandboxed, every statement's result.

The connection is read-only and sandboxed (``open_warehouse(sandbox=True)``): no file
or network access but the warehouse itself, so ``COPY … TO``, ``ATTACH``, ``INSTALL``
and ``read_csv('/etc/…')`` are refused, and ``SET`` cannot undo it. Temporary tables
and views still work (they live in memory and die with the connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import AigwError, ConfigError, WarehouseError
from core.lake.spec import WarehouseTarget
from core.warehouse.connection import open_warehouse

__all__ = ["StatementResult", "run_sql"]


@dataclass(frozen=True, slots=True)
class StatementResult:
    """One statement: its text, column names and rows (no columns for e.g. ``CREATE``)."""

    statement: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_sql(db_path: WarehouseTarget, sql: str) -> list[StatementResult]:
    """Run each statement of ``sql`` in order; ``ConfigError`` when there is none,
    ``WarehouseError`` for SQL that fails (naming the statement when there are several)."""
    with open_warehouse(db_path, read_only=True, sandbox=True) as warehouse:
        with warehouse.errors():
            statements = [s.query.strip() for s in warehouse.con.extract_statements(sql)]
        if not statements:
            raise ConfigError("no SQL statement given")
        results = []
        for number, statement in enumerate(statements, start=1):
            try:
                with warehouse.errors():
                    cursor = warehouse.con.execute(statement)
                    columns = [column[0] for column in cursor.description or ()]
                    rows = cursor.fetchall() if columns else []
            except WarehouseError as error:
                raise _explained(error, number, len(statements)) from error
            results.append(StatementResult(statement, columns, rows))
    return results


def _explained(error: WarehouseError, number: int, total: int) -> AigwError:
    """``error`` with the statement's number (when several) and the sandbox named."""
    where = f"statement {number} of {total}: " if total > 1 else ""
    detail = error.detail or ""
    if "disabled by configuration" in detail or "configuration has been locked" in detail:
        return ConfigError(
            f"{where}refused: aigw sql reads only the warehouse (no COPY … TO, ATTACH, "
            "file reads, INSTALL or SET); save results with --format csv > FILE",
            detail=detail,
        )
    if not where:
        return error
    return WarehouseError(f"{where}{error}", path=error.path, detail=error.detail)
