"""Commit parsed objects to an Iceberg warehouse: deduplicated, batched, recoverable.

``commit_objects`` writes several objects in two Iceberg commits: their rejects (an
overwrite of the rejects of those objects, so that a retry replaces, never doubles) and
then their rows (an append). The rows' commit is the objects' commit: its snapshot
summary carries, under ``aigw.objects``, each object's key, etag and counts. A crash
after it and before the manifest update is repaired by the next run from those summaries
(``committed_objects``), never by loading again.

Deduplication: a row whose ``log_id`` and ``ts`` an earlier object of the batch has, or
a stored row has, is a duplicate. Stored rows are read only from the partitions (UTC
days) of the batch's time range, so the cost follows a day's size, not the history's.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa

from core.lake.filters import in_ranges, is_in
from core.lake.lake import Lake
from core.lake.tables import FACT_SCHEMAS, OBJECTS_SUMMARY, conform, snapshot_objects
from ingest.lake_object import ObjectLoad
from ingest.loader import ObjectCounts

__all__ = ["SUMMARY_KEY", "commit_objects", "committed_objects"]

SUMMARY_KEY: Final = OBJECTS_SUMMARY
_REQUESTS: Final = FACT_SCHEMAS["requests"]
_REJECTS: Final = FACT_SCHEMAS["rejects"]


def commit_objects(
    lake: Lake, loads: Sequence[ObjectLoad], *, started: datetime, reloaded: bool = True
) -> dict[str, ObjectCounts]:
    """Store the rows and rejects of ``loads`` (all ``parsed``); their counts by key.
    ``reloaded=False`` (no object was loaded before) skips clearing old rejects when the
    batch has none."""
    keys = [load.obj.key for load in loads]
    rejects = [load.rejects for load in loads if load.rejects is not None]
    table = pa.concat_tables(rejects) if rejects else _REJECTS.empty_table()
    if rejects or (reloaded and _has_rows(lake, "rejects")):
        lake.commit("rejects", lambda t: _replace_rejects(t, conform(table, _REJECTS), keys))
    counts: dict[str, ObjectCounts] = {}

    def append(iceberg: Any) -> None:
        kept, per_object = _new_rows(iceberg, loads)
        counts.clear()
        for index, load in enumerate(loads):
            rejected = load.rejects.num_rows if load.rejects is not None else 0
            loaded = per_object.get(index, 0)
            counts[load.obj.key] = ObjectCounts(
                records=load.records,
                loaded=loaded,
                duplicates=load.records - loaded - rejected,
                rejected=rejected,
                decrypt_errors=load.decrypt_errors,
                locked_metadata=load.locked_metadata,
            )
        summary = _summary(loads, counts, started)
        iceberg.append(conform(kept, _REQUESTS), snapshot_properties={SUMMARY_KEY: summary})

    lake.commit("requests", append)
    return counts


def committed_objects(lake: Lake) -> dict[tuple[str, str], ObjectCounts]:
    """``{(key, etag): counts}`` of every object a live snapshot of ``requests`` committed."""
    table = lake.table("requests")
    if table is None:
        return {}
    found: dict[tuple[str, str], ObjectCounts] = {}
    for snapshot in table.snapshots():
        for key, etag, records, loaded, duplicates, rejected, undecrypted in snapshot_objects(
            snapshot
        ):
            found[(key, etag)] = ObjectCounts(records, loaded, duplicates, rejected, undecrypted)
    return found


def _summary(
    loads: Iterable[ObjectLoad], counts: dict[str, ObjectCounts], started: datetime
) -> str:
    objects = [
        [
            load.obj.key,
            load.obj.etag,
            counts[load.obj.key].records,
            counts[load.obj.key].loaded,
            counts[load.obj.key].duplicates,
            counts[load.obj.key].rejected,
            counts[load.obj.key].decrypt_errors,
        ]
        for load in loads
    ]
    return orjson.dumps({"started": started.isoformat(), "objects": objects}).decode()


def _new_rows(iceberg: Any, loads: Sequence[ObjectLoad]) -> tuple[pa.Table, dict[int, int]]:
    """The rows of ``loads`` not stored yet and not repeated by an earlier object of the
    batch, and how many each object (by index) keeps."""
    parts = [
        load.rows.append_column("_obj", pa.array([i] * load.rows.num_rows, pa.int32()))
        for i, load in enumerate(loads)
        if load.rows is not None and load.rows.num_rows
    ]
    if not parts:
        return _REQUESTS.empty_table(), {}
    batch = pa.concat_tables(parts, promote_options="permissive")
    low = pa.compute.min(batch["ts"]).as_py()
    high = pa.compute.max(batch["ts"]).as_py()
    seen = _stored_keys(iceberg, low, high)
    if seen.num_rows == 0 and pa.compute.count_distinct(batch["log_id"]).as_py() == batch.num_rows:
        kept = batch  # nothing stored in its time range, no log id twice: every row is new
    else:
        kept = _without_repeats(batch, seen)
    # counted in Arrow: a Python loop over the kept rows took 1 s a million rows (the
    # driver's largest share on Ray, where the workers parse)
    counted = pa.compute.value_counts(kept["_obj"]) if kept.num_rows else []
    per_object = {item["values"].as_py(): item["counts"].as_py() for item in counted}
    return kept.drop_columns(["_obj"]), per_object


def _without_repeats(batch: pa.Table, seen: pa.Table) -> pa.Table:
    """``batch``'s rows whose (log id, time) is not in ``seen``, each once (the first by
    object, then by line)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("batch", batch)
        con.register("seen", seen)
        return (
            con.execute(
                "SELECT * FROM batch AS b WHERE NOT EXISTS "
                "(SELECT 1 FROM seen AS s WHERE s.log_id = b.log_id AND s.ts = b.ts) "
                "QUALIFY row_number() OVER (PARTITION BY log_id, ts ORDER BY _obj, source_line) = 1"
            )
            .arrow()
            .read_all()
        )
    finally:
        con.close()


def _stored_keys(iceberg: Any, low: datetime, high: datetime) -> pa.Table:
    """``log_id`` and ``ts`` of the stored rows from ``low`` to ``high`` (the day
    partitions outside are never opened)."""
    if iceberg.current_snapshot() is None:
        return pa.table(
            {"log_id": pa.array([], pa.string()), "ts": pa.array([], _REQUESTS.field("ts").type)}
        )
    row_filter = in_ranges("ts", [(low, high)], closed=True)
    return iceberg.scan(row_filter=row_filter, selected_fields=("log_id", "ts")).to_arrow()


def _replace_rejects(iceberg: Any, rejects: pa.Table, keys: list[str]) -> None:
    with warnings.catch_warnings():  # objects seen for the first time have no old rejects
        warnings.filterwarnings("ignore", "Delete operation did not match any records")
        iceberg.overwrite(rejects, overwrite_filter=is_in("source_file", keys))


def _has_rows(lake: Lake, name: str) -> bool:
    table = lake.table(name)
    return table is not None and table.current_snapshot() is not None
