"""One object through the per-object engine, for the lakehouse path: what a worker runs.

``load_object`` opens the object, runs ``ingest.engine.read_object`` and returns an
``ObjectLoad``: its rows as one Arrow table (``ts``, ``source_file``, ``source_line`` and
``ingested_at`` added), its rejects, and its counts. It touches no warehouse, and all its
arguments are plain values (the source by URI, the private key as PEM), so a Ray worker on
another machine runs it as the driver would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pyarrow as pa

from ingest.decrypt import Decryptor, load_private_key
from ingest.engine import read_object
from ingest.errors import ObjectReadError
from ingest.loader import BATCH_ROWS, locked_metadata
from ingest.sources import StoredObject, is_log_object, open_source

__all__ = ["ObjectLoad", "load_object"]

_TS: Final = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class ObjectLoad:
    """What the engine made of one object: ``status`` is ``parsed`` (rows and rejects
    below), ``skipped`` (not a log file) or ``failed`` (``error``, ``detail``)."""

    obj: StoredObject
    status: str
    rows: pa.Table | None = None
    rejects: pa.Table | None = None
    records: int = 0
    decrypt_errors: int = 0
    locked_metadata: int = 0
    error: str | None = None
    detail: str | None = None


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
