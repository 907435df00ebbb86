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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa

from core.lake.datafiles import data_files, delete_files, read_rows
from core.lake.filters import in_ranges, is_in
from core.lake.lake import Lake
from core.lake.tables import FACT_SCHEMAS, OBJECTS_SUMMARY, conform, snapshot_objects
from ingest.lake_object import ObjectLoad
from ingest.loader import ObjectCounts

__all__ = ["SUMMARY_KEY", "commit_objects", "committed_objects"]

SUMMARY_KEY: Final = OBJECTS_SUMMARY
_REQUESTS: Final = FACT_SCHEMAS["requests"]
_REJECTS: Final = FACT_SCHEMAS["rejects"]
# what names one row of a batch: its object (index), line and log id
_ROW_KEY: Final = ("_obj", "source_line", "log_id")


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
    cleanup: list[tuple[Any, list[Any]]] = []  # the committed table's file IO, unused files

    def append(iceberg: Any) -> None:
        batch = _new_rows(iceberg, loads)
        counts.clear()
        for index, load in enumerate(loads):
            rejected = load.rejects.num_rows if load.rejects is not None else 0
            loaded = batch.per_object.get(index, 0)
            counts[load.obj.key] = ObjectCounts(
                records=load.records,
                loaded=loaded,
                duplicates=load.records - loaded - rejected,
                rejected=rejected,
                decrypt_errors=load.decrypt_errors,
                locked_metadata=load.locked_metadata,
            )
        summary = _summary(loads, counts, started)
        _append(iceberg, batch, {SUMMARY_KEY: summary})
        cleanup[:] = [(iceberg.io, batch.unused)]

    lake.commit("requests", append)
    for io, unused in cleanup:  # the workers' files whose kept rows the commit wrote again
        delete_files(io, unused)
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


@dataclass(frozen=True, slots=True)
class _NewRows:
    """What one commit of a batch stores: ``rows`` the driver writes, the workers' data
    ``files`` committed as they are, and ``unused`` workers' files, some of whose rows
    are repeats (their kept rows are in ``rows``); ``per_object`` counts the kept rows
    of each object (by index)."""

    rows: pa.Table
    files: list[Any]
    unused: list[Any]
    per_object: dict[int, int]


def _new_rows(iceberg: Any, loads: Sequence[ObjectLoad]) -> _NewRows:
    """The rows of ``loads`` not stored yet and not repeated by an earlier object of the
    batch. Deduplication reads the rows' keys only: an object whose rows are all new
    keeps its data files (written by a worker) or its rows whole."""
    keyed = [(i, keys) for i, load in enumerate(loads) if (keys := load.row_keys()) is not None]
    if not keyed:
        return _NewRows(_REQUESTS.empty_table(), [], [], {})
    keys = pa.concat_tables(
        [part.append_column("_obj", pa.array([i] * part.num_rows, pa.int32())) for i, part in keyed]
    )
    low = pa.compute.min(keys["ts"]).as_py()
    high = pa.compute.max(keys["ts"]).as_py()
    seen = _stored_keys(iceberg, low, high)
    kept: pa.Table | None = None  # the kept rows' _ROW_KEY; None when all are kept
    if seen.num_rows or pa.compute.count_distinct(keys["log_id"]).as_py() != keys.num_rows:
        kept = _kept_lines(keys, seen)
    # counted in Arrow: a Python loop over the kept rows took 1 s a million rows (the
    # driver's largest share on Ray, where the workers parse)
    if kept is None:
        per_object = {i: part.num_rows for i, part in keyed}
    else:
        counted = pa.compute.value_counts(kept["_obj"]) if kept.num_rows else []
        per_object = {item["values"].as_py(): item["counts"].as_py() for item in counted}
    whole = {i for i, part in keyed if per_object.get(i, 0) == part.num_rows}
    # pieces: the rows of one object (the local engine) or the data files one worker
    # wrote for several
    pieces: dict[object, list[int]] = {}
    for i, _ in keyed:
        load = loads[i]
        piece = i if load.rows is not None else tuple(f.file_path for f in load.files)
        pieces.setdefault(piece, []).append(i)
    rows: list[pa.Table] = []
    files: list[Any] = []
    unused: list[Any] = []
    for members in pieces.values():
        first = loads[members[0]]
        if whole.issuperset(members):  # every row new: stored whole
            files.extend(first.files)
            if first.rows is not None:
                rows.append(conform(first.rows, _REQUESTS))
            continue
        unused.extend(first.files)  # its kept rows are written again
        if any(per_object.get(i, 0) for i in members):
            table = first.rows if first.rows is not None else read_rows(iceberg.io, first.files)
            found = kept if kept is not None else keys  # (set: some rows were dropped)
            rows.append(conform(_kept_rows(table, loads, members, found), _REQUESTS))
    data = pa.concat_tables(rows) if rows else _REQUESTS.empty_table()
    return _NewRows(data, files, unused, per_object)


def _kept_rows(
    table: pa.Table, loads: Sequence[ObjectLoad], members: list[int], kept: pa.Table
) -> pa.Table:
    """The rows of ``table`` (rows of the objects ``members`` index) whose object, line
    and log id ``kept`` (``_obj``, ``source_line``, ``log_id``) names. The log id tells
    apart the records of one line (a REST API page: its records share the line's
    number); an object has each log id once (``ingest.engine`` drops its repeats)."""
    codes = pa.array(members, pa.int32())
    position = pa.compute.index_in(
        table["source_file"], value_set=pa.array([loads[i].obj.key for i in members])
    )
    index = pa.table(
        {
            "_obj": pa.compute.take(codes, position),
            "source_line": table["source_line"],
            # one type on both sides (a data file read back has large strings)
            "log_id": table["log_id"].cast(pa.string()),
            "_row": pa.array(range(table.num_rows), pa.int64()),
        }
    )
    wanted = kept.select(_ROW_KEY).filter(pa.compute.is_in(kept["_obj"], value_set=codes))
    wanted = wanted.set_column(2, "log_id", wanted["log_id"].cast(pa.string()))
    # joined on the keys alone (Arrow's join carries no list columns), rows taken in order
    rows = index.join(wanted, keys=list(_ROW_KEY), join_type="left semi")["_row"]
    return table.take(rows.sort())


def _kept_lines(keys: pa.Table, seen: pa.Table) -> pa.Table:
    """``_ROW_KEY`` of the rows of ``keys`` whose (log id, time) is not in ``seen``, each
    (log id, time) once (the first by object, then by line)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("batch", keys)
        con.register("seen", seen)
        return (
            con.execute(
                "SELECT _obj, source_line, log_id FROM batch AS b WHERE NOT EXISTS "
                "(SELECT 1 FROM seen AS s WHERE s.log_id = b.log_id AND s.ts = b.ts) "
                "QUALIFY row_number() OVER (PARTITION BY log_id, ts ORDER BY _obj, source_line) = 1"
            )
            .arrow()
            .read_all()
        )
    finally:
        con.close()


def _append(iceberg: Any, batch: _NewRows, properties: dict[str, str]) -> None:
    """One snapshot of ``requests`` adding the batch's data files and rows (the rows
    written here; ``Table.append`` would leave them), with ``properties`` in its
    summary. A commit that lost to another writer deletes the files written here (the
    workers' are deleted once unused)."""
    from pyiceberg.exceptions import CommitFailedException  # noqa: PLC0415 - the lake extra

    written = data_files(iceberg.metadata, batch.rows, iceberg.io)
    try:
        with (
            iceberg.transaction() as tx,
            tx.update_snapshot(snapshot_properties=properties).fast_append() as files,
        ):
            for data_file in (*batch.files, *written):
                files.append_data_file(data_file)
    except CommitFailedException:
        # not committed (another writer was first): the retry writes its own files
        delete_files(iceberg.io, written)
        raise


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
