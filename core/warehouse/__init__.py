"""The warehouse: one DuckDB file today (``connection``), its numbered migrations
(``migrations``; the ``requests`` columns come from ``core.schema``), and the reads of
``requests`` (``reads`` for the models, ``explore`` for the dashboard's raw-request
views). ``connection`` is the one place where ``duckdb.Error`` becomes an aigw error.
"""

from core.warehouse.connection import Warehouse, open_warehouse, warehouse_errors
from core.warehouse.migrations import MIGRATIONS, SCHEMA_VERSION, table_exists
from core.warehouse.reads import Dimensions, read_requests, time_range

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Dimensions",
    "Warehouse",
    "open_warehouse",
    "read_requests",
    "table_exists",
    "time_range",
    "warehouse_errors",
]
