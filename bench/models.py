"""Models benchmark: rollups and reports over a large warehouse.

    python bench/models.py [--requests 10000000] [--out bench/out]

1. Builds a warehouse of N synthetic requests directly in SQL (30 days, 6 models,
   4 teams, 200 users, 5 agents; about 1% unknown models), once (reused later).
2. Times a full rollup rebuild (read through Arrow, cost join, hourly group-by).
3. Adds 100,000 new rows (a fresh ``ingested_at``) and times the incremental refresh.
4. Times each report on the rollups (what dashboards and alerts call), the month's
   statements, and the cost per unit (which reads and prices the month's requests).

Prints seconds per step and the peak RSS. Not a test; the README records the numbers.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

# Run as `python bench/models.py`, this folder comes first on sys.path; the
# packages live one level up.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

from ingest import open_warehouse  # noqa: E402 - after the sys.path fix above
from models import (  # noqa: E402 - after the sys.path fix above
    ModelsSettings,
    build_statements,
    detect_anomalies,
    forecast_month,
    read_rollup,
    reconciliation,
    refresh_rollups,
    spend_by,
    unit_costs,
    unit_requests,
)
from models.cache import cache_summary  # noqa: E402
from models.focus import focus_table  # noqa: E402

sys.path.append(str(Path(__file__).parent))  # this folder's helpers, for one import
from synthetic_requests import build_requests, fill_requests, fill_sql, fresh  # noqa: E402

sys.path.pop()  # names here (ingest.py, models.py, proxy.py) shadow the packages

REPO = Path(__file__).resolve().parent.parent
ANOMALY_MEASURES = ("cost_usd", "requests")
STATEMENT_MEASURES = ("requests", "cost_usd", "saved_usd", "unknown_cost_requests")

_FILL = fill_sql("bench")


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    base = args.out / f"models-{args.requests}.duckdb"
    if not base.exists():
        seconds = timed(lambda: build(base, args.requests))
        print(f"built a warehouse of {args.requests:,} requests in {seconds:.0f} s")
    db = args.out / "models-run.duckdb"
    shutil.copy(base, db)
    settings = ModelsSettings()
    spacing = 30 * 86_400 * 1_000_000 // args.requests
    with open_warehouse(db) as warehouse:
        full = timed(lambda: refresh_rollups(warehouse, settings, full=True))
        print(f"full rollup rebuild: {full:.1f} s ({rollup_rows(warehouse.con):,} rollup rows)")
        fill(warehouse.con, batch="new", offset=args.requests, count=args.new, spacing_us=spacing)
        incremental = timed(lambda: refresh_rollups(warehouse, settings))
        print(f"incremental refresh after {args.new:,} new rows: {incremental:.2f} s")
        con = warehouse.con
        # Each entry reads what the CLI's report reads (``app.service``).
        since_5w = datetime(2026, 9, 27, tzinfo=UTC)
        reports: dict[str, Callable[[], Any]] = {
            "read hourly rollups (30 days, every column)": lambda: read_rollup(con).collect(),
            "spend by provider, model": lambda: spend_by(
                read_rollup(con, daily=True), ["provider", "model"]
            ),
            "spend by team, day": lambda: spend_by(
                read_rollup(con, daily=True), ["team"], grain="day"
            ),
            "top 10 users by week": lambda: spend_by(
                read_rollup(con, daily=True), ["user"], grain="week", top=10
            ),
            "spend by agent, hour (1 day)": lambda: spend_by(
                read_rollup(
                    con,
                    since=datetime(2026, 10, 15, tzinfo=UTC),
                    until=datetime(2026, 10, 16, tzinfo=UTC),
                ),
                ["agent"],
                grain="hour",
            ),
            "reconciliation": lambda: reconciliation(read_rollup(con, daily=True)),
            "anomalies per agent (5 weeks of hours)": lambda: detect_anomalies(
                read_rollup(con, since=since_5w, by=["agent"], measures=ANOMALY_MEASURES), "agent"
            ),
            "anomalies per user (5 weeks of hours)": lambda: detect_anomalies(
                read_rollup(con, since=since_5w, by=["user"], measures=ANOMALY_MEASURES), "user"
            ),
            "forecast by team": lambda: forecast_month(
                read_rollup(
                    con,
                    since=datetime(2026, 9, 15, tzinfo=UTC),
                    by=["team"],
                    measures=("cost_usd",),
                ),
                now=datetime(2026, 10, 31, tzinfo=UTC),
                scope=["team"],
            ),
            "cache summary by route, day": lambda: cache_summary(
                read_rollup(con, daily=True), ["gateway", "endpoint"], "day"
            ),
            "FOCUS rows per meter (30 days, from requests)": lambda: focus_table(
                warehouse, settings
            ),
            "statements by team (October)": lambda: build_statements(
                read_rollup(
                    con,
                    since=datetime(2026, 9, 1, tzinfo=UTC),
                    until=datetime(2026, 11, 1, tzinfo=UTC),
                    daily=True,
                    by=["team", "provider", "model", "user", "agent"],
                    measures=STATEMENT_MEASURES,
                ),
                month="2026-10",
            ),
            "unit cost per user (October, stored request costs)": lambda: unit_costs(
                unit_requests(
                    warehouse,
                    settings,
                    unit_key="user",
                    since=datetime(2026, 10, 1, tzinfo=UTC),
                    until=datetime(2026, 11, 1, tzinfo=UTC),
                )
            ),
        }
        for name, report in reports.items():
            best = min(timed(report) for _ in range(3))
            print(f"report {name}: {best * 1000:,.0f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:,.0f} MB")
    db.unlink()


def build(path: Path, count: int) -> None:
    """A warehouse of ``count`` synthetic requests over 30 days."""
    fresh(path)
    with open_warehouse(path) as warehouse:
        build_requests(warehouse.con, _FILL, count)


def fill(
    con: duckdb.DuckDBPyConnection, *, batch: str, offset: int, count: int, spacing_us: int
) -> None:
    """Insert ``count`` requests after ``offset`` (in time order), ingested now."""
    fill_requests(con, _FILL, batch=batch, offset=offset, count=count, spacing_us=spacing_us)


def rollup_rows(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT count(*) FROM rollup_hourly").fetchone()
    return int(row[0]) if row else 0


def timed(step: Callable[[], Any]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
