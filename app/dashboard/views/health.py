"""Data health: the ingest manifest, failed objects, rejected records, data-quality results
and how fresh the data and rollups are."""

from __future__ import annotations

import orjson
import polars as pl
import streamlit as st

from app.dashboard.data import context, fetch
from app.dashboard.ui import table

ctx = context()
st.title("Data health")
health = fetch(ctx.settings, "health", limit=50)
objects = health.objects


def _total(status: str, column: str) -> int:
    rows = objects.filter(objects["status"] == status)
    return int(rows[column].sum() or 0) if rows.height else 0


def _sum(column: str) -> int:
    return int(objects[column].sum() or 0) if objects.height else 0


columns = st.columns(5)
columns[0].metric("Objects loaded", f"{_total('loaded', 'objects'):,}")
columns[1].metric("Objects failed", f"{_total('failed', 'objects'):,}")
columns[2].metric(
    "Rows loaded", f"{int(objects['rows_loaded'].sum() or 0):,}" if objects.height else "0"
)
columns[3].metric(
    "Duplicates", f"{int(objects['duplicates'].sum() or 0):,}" if objects.height else "0"
)
columns[4].metric("Rejected records", f"{health.rejects_total:,}")

newest = health.newest_ts
st.caption(
    f"Newest request {newest:%Y-%m-%d %H:%M:%S} UTC · last load "
    f"{health.newest_ingested_at:%Y-%m-%d %H:%M:%S} UTC · warehouse {ctx.settings.warehouse_name}"
    if newest and health.newest_ingested_at
    else "No requests yet."
)
if health.rollup_watermark != health.newest_ingested_at:
    st.warning("The rollups are behind the newest load: run `aigw rollup` (reports lag).")

st.subheader("Ingest manifest by status")
table(objects, key="objects")
st.subheader("Failed objects")
table(health.failed, key="failed")
st.subheader("Data quality")
if health.quality.is_empty():
    st.caption("No data-quality checks recorded yet (the quality gate writes `quality_runs`).")
else:
    runs = health.quality
    quality = st.columns(3)
    quality[0].metric("Quality runs", f"{runs.height:,}")
    quality[1].metric("Failed runs", f"{int((~runs['success']).sum()):,}")
    quality[2].metric("Critical failures", f"{int(runs['critical_failures'].sum() or 0):,}")
    picked = table(runs.drop("results"), key="quality", select=True)
    run = runs.row(picked or 0, named=True)
    checks = pl.DataFrame(orjson.loads(run["results"] or "[]"), infer_schema_length=None)
    st.markdown(
        f"**Checks of the run finished {run['finished_at']:%Y-%m-%d %H:%M:%S} UTC** "
        "(click a run above for another; empty fields left out)"
    )
    if checks.height:
        empty = [
            name
            for name, column in checks.to_dict().items()
            if column.null_count() == len(column)
            or (column.dtype == pl.List and column.list.len().max() == 0)
        ]
        table(checks.drop(empty), key="checks")
st.subheader("Rejected records")
st.caption(f"Newest 50 of {health.rejects_total:,}; reasons only (raw lines may hold secrets).")
table(health.rejects, key="rejects")
st.subheader("Recent objects")
table(health.recent, key="recent_objects")
