"""Data files written where the rows are, committed by the driver: the distributed write.

A Ray worker that has parsed an object writes its rows as the table's Parquet data files
itself (``write_rows``) and hands the driver only their descriptions (PyIceberg
``DataFile``: path, partition, row count, column statistics) and the rows' keys; the
driver decides what to keep (deduplication) and commits the files in one snapshot
(``ingest.lake_commit``). The rows never travel to the driver, and the driver's CPU goes
to commits, not to encoding Parquet. Ray Data's own Iceberg sink writes the same way
(``_dataframe_to_data_files`` on workers, ``append_data_file`` on the driver).

A file whose rows are not all kept is read back by the driver (``read_rows``), its kept
rows written again, and it is deleted after the commit (``delete_files``); a worker that
dies after writing leaves files no snapshot references, which ``aigw maintain`` deletes
(``core.lake.maintain``, unreferenced files).

``DataFileTarget`` travels with each task: the table's metadata without its snapshots
(the schema, partition spec, location and properties are all a writer reads) and the
object store's settings as ``[warehouse] s3`` names them: the names of the key
variables, never their values (each worker reads its own environment). A folder is this
machine's: the target names the driver's host, and a worker on another (``reachable``
false) returns its rows instead, for the driver to write (its files would be on a disk
the table's readers never see).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pyarrow as pa
import pyarrow.parquet as pq

from core.lake.spec import LakeSpec
from core.lake.tables import conform, location_uri, storage_properties

__all__ = ["DataFileTarget", "data_files", "delete_files", "read_rows", "write_rows"]


@dataclass(frozen=True, slots=True)
class DataFileTarget:
    """Where a worker writes a table's data files (see module): picklable, no secrets."""

    metadata: Any  # PyIceberg TableMetadata, snapshots removed
    location: str
    s3: Mapping[str, str] = field(default_factory=dict)
    host: str = ""  # a folder's machine (the driver's); "" for an object store

    @classmethod
    def of(cls, table: Any, spec: LakeSpec) -> DataFileTarget:
        """The target of PyIceberg ``table`` in the warehouse of ``spec``."""
        metadata = table.metadata.model_copy(
            update={
                "snapshots": [],
                "snapshot_log": [],
                "metadata_log": [],
                "refs": {},
                "current_snapshot_id": None,
            }
        )
        folder = location_uri(spec.location).startswith("file://")
        host = socket.gethostname() if folder else ""
        return cls(metadata=metadata, location=spec.location, s3=dict(spec.s3), host=host)

    def reachable(self) -> bool:
        """Whether this process can write the table's files: an object store, or the
        folder's own machine."""
        return not self.host or self.host == socket.gethostname()

    def file_io(self, environ: Mapping[str, str] | None = None) -> Any:
        """PyIceberg's file IO for the table's location, keys from ``environ``."""
        from pyiceberg.io import load_file_io  # noqa: PLC0415 - the lake extra

        spec = LakeSpec(location=self.location, state="", s3=self.s3)
        props = storage_properties(spec, os.environ if environ is None else environ)
        return load_file_io(props, location=self.metadata.location)


def write_rows(target: DataFileTarget, rows: pa.Table) -> tuple[Any, ...]:
    """Write ``rows`` as data files of ``target`` (see ``data_files``)."""
    return data_files(target.metadata, rows, target.file_io())


def data_files(metadata: Any, rows: pa.Table, io: Any) -> tuple[Any, ...]:
    """Write ``rows`` (the table's columns, conformed to its schema here) as data files
    of the table ``metadata`` describes, with ``io``: one or more per partition, under
    names no other write uses. Nothing is committed."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files  # noqa: PLC0415 - the lake extra

    table = conform(rows, metadata.schema().as_arrow())
    if not table.num_rows:
        return ()
    return tuple(
        _dataframe_to_data_files(table_metadata=metadata, df=table, io=io, write_uuid=uuid4())
    )


def read_rows(io: Any, files: Sequence[Any]) -> pa.Table:
    """The rows of data ``files`` (written by ``write_rows``), one table, read with ``io``."""
    tables = []
    for data_file in files:
        with io.new_input(data_file.file_path).open() as stream:
            tables.append(pq.read_table(stream))
    return pa.concat_tables(tables)


def delete_files(io: Any, files: Iterable[Any]) -> None:
    """Delete data ``files`` no snapshot references, as far as the store allows: what is
    missing, or may not be deleted (an append-only role), stays for ``aigw maintain``;
    the commit they were left out of stands either way."""
    for data_file in files:
        try:
            io.delete(data_file.file_path)
        except OSError:  # missing, refused, or the store unreachable (PyArrow's S3 errors)
            continue
