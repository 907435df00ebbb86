"""The rollups of an Iceberg warehouse: the same numbers as ``models.rollups``, written to
Iceberg tables.

The hours that received rows since the last refresh are recomputed from the snapshot the
warehouse opened on (``costed_requests``: the same vectorised price table), then written
back with an overwrite of those hours: ``rollup_hourly`` by hour, ``rollup_daily`` by the
days of those hours (summed from the new hourly rows), ``request_costs`` by hour. A change
of dimensions or prices rebuilds every table. The watermark is recorded in the state
database after the tables are written: a refresh that dies midway is redone by the next.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import duckdb
import pyarrow as pa

from core.schema import DAILY_TABLE, ROLLUP_TABLE
from core.warehouse import Warehouse, attach_snapshot, newest_ingest, touched_hours
from models.config import ModelsSettings
from models.rollups import RefreshResult, _rollup_by_day, daily_select

__all__ = ["refresh_lake_rollups"]

_COSTS: Final = "_aigw_request_costs"  # the temporary table ``_rollup_by_day`` fills
_HOUR: Final = timedelta(hours=1)
_DAY: Final = timedelta(days=1)


def refresh_lake_rollups(
    warehouse: Warehouse, settings: ModelsSettings, *, full: bool = False
) -> RefreshResult:
    """Bring the Iceberg rollups of ``warehouse`` (opened on an Iceberg warehouse) up to
    date with its ``requests`` snapshot."""
    from core.lake.writes import replace_rows, replace_table  # noqa: PLC0415 - lake extra

    lake = warehouse.lake
    if lake is None:
        raise TypeError("refresh_lake_rollups needs an Iceberg warehouse")
    con = warehouse.con
    with warehouse.errors():
        state = lake.state.rollup_state(ROLLUP_TABLE)
        watermark = newest_ingest(con)
        fingerprint = settings.fingerprint()
        rebuild = full or state is None or state[0] != fingerprint or state[1] is None
        hours: list[datetime] = []
        if state is not None and not rebuild:
            if watermark is None or (state[1] is not None and watermark <= state[1]):
                return RefreshResult(full=False, hours=0, rows=0)
            hours = touched_hours(con, since=state[1])  # type: ignore[arg-type]
        rollup = _rollup_by_day(warehouse, settings, None if rebuild else hours)
        hourly = rollup.sort("hour").to_arrow()
        costs = con.execute(f"SELECT * FROM {_COSTS}").arrow().read_all()  # noqa: S608
        con.execute(f"DROP TABLE IF EXISTS {_COSTS}")
        daily = _daily(hourly, settings)
        if rebuild:
            replace_table(lake, ROLLUP_TABLE, hourly)
            replace_table(lake, DAILY_TABLE, daily)
            replace_table(lake, "request_costs", costs)
        elif hours:
            days = sorted({hour.replace(hour=0) for hour in hours})
            replace_rows(lake, ROLLUP_TABLE, hourly, column="hour", starts=hours, width=_HOUR)
            replace_rows(
                lake,
                DAILY_TABLE,
                _whole_days(lake, days, settings),
                column="hour",
                starts=days,
                width=_DAY,
            )
            replace_rows(lake, "request_costs", costs, column="ts", starts=hours, width=_HOUR)
        lake.state.set_rollup_state(ROLLUP_TABLE, fingerprint, watermark)
        attach_snapshot(con, lake)  # what follows on this connection reads the new rollups
    return RefreshResult(full=rebuild, hours=len(hours), rows=rollup.height)


def _daily(hourly: pa.Table, settings: ModelsSettings) -> pa.Table:
    """``hourly`` summed by UTC day (``hour`` holds the day's start), as the DuckDB
    warehouse's ``rollup_daily``."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("hourly", hourly)
        return con.execute(daily_select(settings, "hourly").format(where="")).arrow().read_all()
    finally:
        con.close()


def _whole_days(lake: object, days: list[datetime], settings: ModelsSettings) -> pa.Table:
    """The daily rows of ``days``, summed from the hourly table just written (a day's other
    hours were not recomputed, so the day is summed from all its stored hours)."""
    from core.lake.filters import in_ranges  # noqa: PLC0415 - the lake extra

    predicate = in_ranges("hour", [(day, day + _DAY) for day in days])
    table = lake.table(ROLLUP_TABLE)  # type: ignore[attr-defined]
    return _daily(table.scan(row_filter=predicate).to_arrow(), settings)
