"""Compaction of the day partitions of ``requests`` and ``request_costs``, in bounded memory.

Ingest commits a data file per day partition per batch, so a day collects many small
files. A day with more than ``max_small_files`` data files smaller than ``small_bytes``
has those small files (and only those: a large file is never rewritten) packed, in the
order of their first ``ts``, into groups of at most ``target_bytes`` of Parquet
(``plan_groups``); each group of two or more files becomes one new data file.

- **Memory.** A group is read one source file at a time (a file is smaller than
  ``small_bytes``), its rows sorted by ``ts``, ``log_id`` and appended to the group's
  output file (a row group per source): peak memory is about three times one source
  file's Arrow table (the rows read, their sorted copy, the writer's buffers), never the
  group nor the day, whatever their size (docs/scale.md has the measurements).
- **Rows.** The output holds exactly the rows of its sources (same multiset); sources
  ordered by first ``ts``, each sorted, so files written from time-ordered batches come out
  sorted. Files with delete files attached are left alone (aigw writes none).
- **Commit.** Each group is one Iceberg commit that replaces exactly its source files
  by its output (``_replace_files``: delete those data files, add the new one, in one
  snapshot with the ``COMPACTED`` property), so rows another writer appended to the day
  meanwhile stay. On a conflict ``Lake.commit`` reloads the table and applies the same
  replace on top of the other writer's commit: the sources are looked up again in the new
  snapshot, and when one of them is gone (another maintainer rewrote it) the group is
  dropped and its output deleted, nothing committed. The output is written once, before
  the commit: a retry costs no rewrite, so a busy day does not starve compaction.

PyIceberg 0.12 has no rewrite-data-files action; this relies on
``Transaction.update_snapshot().overwrite()`` (public) with ``delete_data_file`` and
``append_data_file``, ``ArrowScan`` and ``schema_to_pyarrow`` from ``pyiceberg.io.pyarrow``,
and the Parquet writer ``pyiceberg.io.fileformat.FileFormatFactory`` registers (it writes
Iceberg field ids and returns the column statistics a ``DataFile`` needs), as PyIceberg's
own ``write_file`` does: internals that may move in a later PyIceberg.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Final

import pyarrow as pa

from core.errors import WarehouseError
from core.lake.extra import require
from core.lake.lake import Lake

__all__ = [
    "COMPACTED",
    "MAX_SMALL_FILES",
    "SMALL_BYTES",
    "TARGET_BYTES",
    "compact_table",
    "plan_groups",
]

MAX_SMALL_FILES: Final = 4
SMALL_BYTES: Final = 64 * 1024 * 1024
TARGET_BYTES: Final = 256 * 1024 * 1024  # the bound of a group's Parquet bytes
COMPACTED: Final = "aigw.compacted"  # the snapshot property of a compaction: the day
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ORDER: Final = [("ts", "ascending"), ("log_id", "ascending")]


def compact_table(
    lake: Lake,
    name: str,
    *,
    max_small_files: int = MAX_SMALL_FILES,
    small_bytes: int = SMALL_BYTES,
    target_bytes: int = TARGET_BYTES,
) -> tuple[int, int, int]:
    """Compact each day of ``name`` that has more than ``max_small_files`` data files under
    ``small_bytes`` (see module), a commit per group; ``(files before, files after, days
    with a group committed)``."""
    table = lake.table(name)
    if table is None or table.current_snapshot() is None:
        return 0, 0, 0
    small: dict[Any, list[Any]] = {}
    before = 0
    for task in table.scan().plan_files():
        before += 1
        if task.file.file_size_in_bytes < small_bytes and not task.delete_files:
            key = (task.file.spec_id, task.file.partition[0])  # a group shares a partition
            small.setdefault(key, []).append(task.file)
    days = 0
    ts_id = table.schema().find_field("ts").field_id
    for key in sorted(small):
        files = small[key]
        if len(files) <= max_small_files:
            continue
        files.sort(key=lambda f: (_lower_micros(f, ts_id), f.file_path))
        day = _day_start(key[1])
        committed = [
            _compact_group(lake, name, table, group, day)
            for group in plan_groups(files, target_bytes)
        ]
        days += any(committed)
    after = _file_count(lake.table(name)) if days else before
    return before, after, days


def plan_groups(files: Sequence[Any], target_bytes: int) -> list[list[Any]]:
    """``files`` (with a ``file_size_in_bytes``, in the order to keep) cut into runs whose
    sizes add up to at most ``target_bytes``; runs of one file are left out (nothing to
    merge), as is a file larger than ``target_bytes``."""
    groups: list[list[Any]] = []
    group: list[Any] = []
    total = 0
    for file in files:
        size = file.file_size_in_bytes
        if group and total + size > target_bytes:
            groups.append(group)
            group, total = [], 0
        if size <= target_bytes:
            group.append(file)
            total += size
    groups.append(group)
    return [g for g in groups if len(g) > 1]


def _compact_group(lake: Lake, name: str, table: Any, sources: list[Any], day: datetime) -> bool:
    """Write ``sources`` as one file and commit the replace; whether it was committed."""
    try:
        output = _write_group(table, sources)
    except Exception as err:  # PyIceberg and the object store raise many kinds
        raise WarehouseError(
            f"{lake.spec.describe()}: cannot write a compacted file of table {name} "
            f"({type(err).__name__})",
            path=lake.spec.location,
            detail=str(err),
        ) from err
    done = lake.commit(name, partial(_replace_files, sources=sources, outputs=[output], day=day))
    if not done:  # never committed: nothing references it
        table.io.delete(output.file_path)
    return done


def _write_group(table: Any, sources: Sequence[Any]) -> Any:
    """One Parquet data file of ``sources``' rows (one source in memory at a time, sorted by
    ``ts``, ``log_id``), in their partition, with the table's current schema; its
    ``DataFile``."""
    io_arrow = require("pyiceberg.io.pyarrow", extra="lake", feature="iceberg tables")
    fileformat = require("pyiceberg.io.fileformat", extra="lake", feature="iceberg tables")
    manifest = require("pyiceberg.manifest", extra="lake", feature="iceberg tables")
    expressions = require("pyiceberg.expressions", extra="lake", feature="iceberg tables")
    metadata = table.metadata
    schema = metadata.schema()
    first = sources[0]
    spec = metadata.specs()[first.spec_id]
    file_schema = _small_types(io_arrow.schema_to_pyarrow(schema, include_field_ids=True))
    scan = io_arrow.ArrowScan(metadata, table.io, schema, expressions.AlwaysTrue())
    path = table.location_provider().new_data_location(
        data_file_name=f"00000-0-{uuid.uuid4()}.parquet",
        partition_key=_PartitionPath(spec.partition_to_path(first.partition, schema)),
    )
    output = table.io.new_output(path)
    model = fileformat.FileFormatFactory.get(manifest.FileFormat.PARQUET)
    with model.create_writer(output, schema, metadata.properties) as writer:
        for source in sources:
            writer.write(scan.to_table([_task(source)]).sort_by(_ORDER).cast(file_schema))
            # (no name holds the file's rows: they are freed before the next file is read)
    return manifest.DataFile.from_args(
        content=manifest.DataFileContent.DATA,
        file_path=path,
        file_format=manifest.FileFormat.PARQUET,
        partition=first.partition,
        file_size_in_bytes=len(output),
        sort_order_id=None,
        spec_id=first.spec_id,
        equality_ids=None,
        key_metadata=None,
        **writer.result().to_serialized_dict(),
    )


def _replace_files(
    table: Any, sources: Sequence[Any], outputs: Sequence[Any], day: datetime
) -> bool:
    """One commit on ``table``: ``sources`` deleted and ``outputs`` added, no other file
    touched; False (nothing committed) when a source is no longer in the current snapshot.
    ``CommitFailedException`` when the table moved on since ``table`` was loaded."""
    exceptions = require("pyiceberg.exceptions", extra="lake", feature="iceberg tables")
    properties = {COMPACTED: day.date().isoformat()}
    try:
        with (
            table.transaction() as tx,
            tx.update_snapshot(snapshot_properties=properties).overwrite() as replace,
        ):
            for source in sources:
                replace.delete_data_file(source)
            for output in outputs:
                replace.append_data_file(output)
    except exceptions.ValidationException:
        # "Missing required files to delete": another maintainer replaced a source first
        return False
    return True


class _PartitionPath:
    """What a location provider reads of a ``PartitionKey``: its path (the key itself is
    built from raw row values, and a compaction only has the partition record)."""

    def __init__(self, path: str) -> None:
        self._path = path

    def to_path(self) -> str:
        return self._path


def _task(data_file: Any) -> Any:
    """A scan task reading all of ``data_file`` (no delete files: see module)."""
    tables = require("pyiceberg.table", extra="lake", feature="iceberg tables")
    return tables.FileScanTask(data_file)


def _small_types(schema: pa.Schema) -> pa.Schema:
    """``schema`` with 32-bit offsets, as aigw's writers store strings (PyIceberg's schema
    conversion gives large types, and the Parquet file keeps the Arrow types it was
    written with); field metadata (the Iceberg field ids) kept."""
    return pa.schema([field.with_type(_small(field.type)) for field in schema], schema.metadata)


def _small(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.binary()
    if pa.types.is_large_list(kind) or pa.types.is_list(kind):
        value = kind.value_field
        return pa.list_(value.with_type(_small(value.type)))
    return kind


def _lower_micros(data_file: Any, field_id: int) -> int:
    """The file's lowest ``ts`` in microseconds (Iceberg's 8-byte little-endian bound), or
    the lowest int64 when the file has no bound."""
    bound = (data_file.lower_bounds or {}).get(field_id)
    return int.from_bytes(bound, "little", signed=True) if bound else -(2**63)


def _file_count(table: Any) -> int:
    return sum(1 for _ in table.scan().plan_files()) if table.current_snapshot() else 0


def _day_start(value: Any) -> datetime:
    """The UTC start of a ``day(ts)`` partition value (days since 1970, or a date)."""
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return _EPOCH + timedelta(days=int(value))
