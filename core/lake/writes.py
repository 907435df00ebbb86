"""Writes of derived tables (rollups, request costs) to an Iceberg warehouse: a whole
table replaced, or the rows of some hours replaced, each in one commit that retries on
conflict (``Lake.commit``)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from core.lake.filters import in_ranges
from core.lake.lake import Lake
from core.lake.tables import conform

__all__ = ["hour_ranges", "replace_rows", "replace_table"]


def replace_table(lake: Lake, name: str, data: pa.Table) -> None:
    """Make ``name`` hold exactly ``data`` (a new table: its columns may have changed)."""
    lake.create(name, _schema(data), replace=True)
    if data.num_rows:
        lake.commit(name, lambda table: table.append(conform(data, table.schema().as_arrow())))


def replace_rows(
    lake: Lake,
    name: str,
    data: pa.Table,
    *,
    column: str,
    starts: Sequence[datetime],
    width: timedelta,
) -> None:
    """Replace the rows of ``name`` whose ``column`` falls in ``[start, start + width)``
    for any of ``starts`` by ``data`` (created from ``data`` when missing)."""
    if lake.table(name) is None:
        replace_table(lake, name, data)
        return
    predicate = in_ranges(column, hour_ranges(starts, width))

    def overwrite(table: Any) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            table.overwrite(conform(data, table.schema().as_arrow()), overwrite_filter=predicate)

    lake.commit(name, overwrite)


def hour_ranges(starts: Sequence[datetime], width: timedelta) -> list[tuple[datetime, datetime]]:
    """``[start, start + width)`` for each start, adjacent ones merged, in order."""
    ranges: list[tuple[datetime, datetime]] = []
    for start in sorted(set(starts)):
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], start + width)
        else:
            ranges.append((start, start + width))
    return ranges


def _schema(data: pa.Table) -> pa.Schema:
    """``data``'s schema with every field nullable (Iceberg ``optional``) and plain types."""
    fields = []
    for field in data.schema:
        kind = field.type
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kind = pa.string()
        fields.append(pa.field(field.name, kind, nullable=True))
    return pa.schema(fields)
