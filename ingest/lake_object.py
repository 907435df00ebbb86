"""One object through the per-object engine, for the lakehouse path: what a worker runs.

``load_object`` opens the object, runs ``ingest.engine.read_object`` and returns an
``ObjectLoad``: its rows as one Arrow table (``ts``, ``source_file``, ``source_line`` and
``ingested_at`` added), its rejects, and its counts. ``load_objects`` loads several and,
given a ``DataFileTarget`` (on Ray), writes their rows as one set of the table's data
files itself, returning the files' descriptions and the rows' keys instead of the rows
(``core.lake.datafiles``). Nothing is committed, and all arguments are plain values (the
source by URI, the private key as PEM, the target without secrets), so a Ray worker on
another machine runs them as the driver would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

import pyarrow as pa

from core.lake.datafiles import DataFileTarget, write_rows
from ingest.decrypt import Decryptor, load_private_key
from ingest.engine import read_object
from ingest.errors import ObjectReadError
from ingest.loader import BATCH_ROWS, locked_metadata
from ingest.sources import StoredObject, is_log_object, open_source

__all__ = ["KEY_COLUMNS", "ObjectLoad", "load_object", "load_objects"]

_TS: Final = pa.timestamp("us", tz="UTC")
KEY_COLUMNS: Final = ("log_id", "ts", "source_line")  # what deduplication reads of a row


@dataclass(frozen=True, slots=True)
class ObjectLoad:
    """What the engine made of one object: ``status`` is ``parsed`` (rows and rejects
    below), ``skipped`` (not a log file) or ``failed`` (``error``, ``detail``).

    The rows are either in ``rows``, or, written by a worker, in the data ``files`` with
    their ``KEY_COLUMNS`` in ``keys``; ``files`` may also hold the rows of the other
    objects ``load_objects`` loaded with this one (their ``source_file`` tells them
    apart)."""

    obj: StoredObject
    status: str
    rows: pa.Table | None = None
    rejects: pa.Table | None = None
    files: tuple[Any, ...] = ()
    keys: pa.Table | None = None
    records: int = 0
    decrypt_errors: int = 0
    locked_metadata: int = 0
    error: str | None = None
    detail: str | None = None

    def row_keys(self) -> pa.Table | None:
        """``KEY_COLUMNS`` of the object's rows; None when it has none."""
        if self.rows is not None and self.rows.num_rows:
            return self.rows.select(KEY_COLUMNS)
        return self.keys if self.keys is not None and self.keys.num_rows else None


def load_object(
    source_uri: str,
    obj: StoredObject,
    *,
    started: datetime,
    endpoint_url: str | None = None,
    private_key_pem: bytes | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ObjectLoad:
    """Read and normalise ``obj`` of the source at ``source_uri`` (see module)."""
    if not is_log_object(obj.key):
        return ObjectLoad(obj, "skipped", error="not a log file")
    decryptor = (
        Decryptor(load_private_key(private_key_pem, source="the private key"))
        if private_key_pem is not None
        else None
    )
    source = open_source(source_uri, endpoint_url=endpoint_url)
    rows: list[pa.Table] = []
    rejects: list[pa.Table] = []
    records = 0
    try:
        stream = source.open(obj)
        try:
            for batch in read_object(stream, obj.key, None, batch_rows, decryptor):
                records += batch.records
                if batch.rows is not None:
                    rows.append(batch.rows)
                if batch.rejects is not None:
                    rejects.append(batch.rejects)
        finally:
            stream.close()
    except ObjectReadError as err:
        return ObjectLoad(obj, "failed", error=str(err), detail=err.detail)
    table = _rows(rows, obj.key, started)
    undecrypted = locked = 0
    if table is not None:
        column = table["decrypt_error"]
        undecrypted = len(column) - column.null_count
        locked = locked_metadata(table)
    return ObjectLoad(
        obj,
        "parsed",
        rows=table,
        rejects=_rejects(rejects, obj.key, started),
        records=records,
        decrypt_errors=undecrypted,
        locked_metadata=locked,
    )


def load_objects(
    source_uri: str,
    objects: Sequence[StoredObject],
    *,
    files: DataFileTarget | None = None,
    **options: Any,
) -> list[ObjectLoad]:
    """``load_object`` of each of ``objects``, in order; with ``files`` (``reachable``
    here), the rows of all of them written as one set of data files (one per day
    partition), each load then carrying the set in ``files`` and its own rows' keys in
    ``keys``."""
    loads = [load_object(source_uri, obj, **options) for obj in objects]
    tables = [load.rows for load in loads if load.rows is not None]
    if files is None or not tables or not files.reachable():
        return loads  # the rows go to the driver, which writes them
    written = write_rows(files, pa.concat_tables(tables))
    return [
        replace(load, rows=None, keys=load.rows.select(KEY_COLUMNS), files=written)
        if load.rows is not None
        else load
        for load in loads
    ]


def _rows(parts: list[pa.Table], key: str, started: datetime) -> pa.Table | None:
    if not parts:
        return None
    table = pa.concat_tables(parts)
    names = ["ts" if name == "ts_us" else name for name in table.column_names]
    table = table.rename_columns(names)
    count = table.num_rows
    table = table.append_column("source_file", pa.array([key] * count, pa.string()))
    return table.append_column("ingested_at", pa.array([started] * count, _TS))


def _rejects(parts: list[pa.Table], key: str, started: datetime) -> pa.Table | None:
    if not parts:
        return None
    table = pa.concat_tables(parts)
    count = table.num_rows
    table = table.add_column(0, "source_file", pa.array([key] * count, pa.string()))
    return table.append_column("rejected_at", pa.array([started] * count, _TS))
