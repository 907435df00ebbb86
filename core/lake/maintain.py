"""Maintenance of an Iceberg warehouse: compact small data files, expire old snapshots.

Ingest (above all ``aigw ingest --watch``) commits a data file per day partition per
batch, so a day of ``requests`` and ``request_costs`` collects many small files, and every
commit leaves a snapshot in the table's metadata. ``maintain`` does what a scheduler runs
nightly:

- **Compaction.** A day partition with more than ``max_small_files`` data files smaller
  than ``small_bytes`` is rewritten as one or a few large files: an overwrite of that day
  by its own rows (sorted by ``ts``, ``log_id``) in one commit. Rows are never changed, only
  moved. PyIceberg 0.12 has no rewrite-data-files action, so this is it; the commit retries
  on conflict with the table reloaded and the day read again (``Lake.commit``), so rows
  another writer appended meanwhile are kept.
- **Snapshot expiry.** Snapshots older than the retention are removed from each table's
  metadata (the current one always stays). The snapshot summaries of ``requests`` are how
  a crashed ingest is repaired (``OBJECTS_SUMMARY``), so before a snapshot is expired
  every object it names is made known to the manifest: an object whose manifest row does
  not say it is loaded with that etag is claimed and recorded as loaded with the counts
  of the summary; a snapshot naming an object that cannot be recorded (another driver
  holds it, or the manifest has another version of it) is kept for a later run.
- **Unreferenced data files.** PyIceberg 0.12 removes expired snapshots from the metadata
  only, so after expiry ``maintain`` deletes the data files under the table's ``data/``
  folder that no remaining snapshot references and that are older than the retention
  (a file younger than that may belong to a commit in flight: never touched).

R2 Data Catalog can do both itself (its compaction and snapshot-expiration settings);
``maintain`` is for the SQL catalog and for REST catalogs that do not.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Final

import pyarrow.fs as pafs
import sqlalchemy as sa

from core.errors import WarehouseError
from core.lake.extra import require
from core.lake.filters import in_ranges
from core.lake.lake import Lake
from core.lake.state import STATE_TABLES, FileEntry, owner_id
from core.lake.tables import DAY_PARTITIONED, file_system, snapshot_objects

__all__ = [
    "MAX_SMALL_FILES",
    "SMALL_BYTES",
    "MaintainResult",
    "TableMaintenance",
    "compact_table",
    "delete_unreferenced",
    "expire_snapshots",
    "maintain",
]

MAX_SMALL_FILES: Final = 4
SMALL_BYTES: Final = 64 * 1024 * 1024
COMPACTED: Final = "aigw.compacted"  # the snapshot property of a compaction: the day
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAY: Final = timedelta(days=1)
_DONE: Final = frozenset({"loaded", "skipped"})
_KEYS_PER_QUERY: Final = 500


@dataclass(frozen=True, slots=True)
class TableMaintenance:
    """What ``maintain`` did to one table: data files of its current snapshot before and
    after compaction, days rewritten, snapshots expired and old snapshots kept."""

    name: str
    files_before: int
    files_after: int
    days_compacted: int = 0
    expired: int = 0
    kept: int = 0
    deleted: int = 0


@dataclass(frozen=True, slots=True)
class MaintainResult:
    """The tables maintained (those that exist) and the objects recorded in the manifest
    from snapshot summaries before their snapshots were expired."""

    tables: tuple[TableMaintenance, ...]
    recorded: int

    @property
    def expired(self) -> int:
        return sum(table.expired for table in self.tables)

    @property
    def deleted(self) -> int:
        return sum(table.deleted for table in self.tables)


def maintain(
    lake: Lake,
    *,
    older_than: timedelta,
    now: datetime | None = None,
    max_small_files: int = MAX_SMALL_FILES,
    small_bytes: int = SMALL_BYTES,
) -> MaintainResult:
    """Compact the day partitions of ``requests`` and ``request_costs``, then expire every
    table's snapshots older than ``now - older_than`` and delete the data files no snapshot
    references any more (see module)."""
    now = now or datetime.now(tz=UTC)
    cutoff = now - older_than
    results: list[TableMaintenance] = []
    recorded = 0
    for name in _table_names(lake):
        table = lake.table(name)
        if table is None:
            continue
        before = after = _file_count(table)
        days = 0
        if name in DAY_PARTITIONED:
            before, after, days = compact_table(
                lake, name, max_small_files=max_small_files, small_bytes=small_bytes
            )
        expired, kept, fixed = expire_snapshots(lake, name, cutoff=cutoff, now=now)
        deleted = delete_unreferenced(lake, name, cutoff=cutoff)
        recorded += fixed
        results.append(TableMaintenance(name, before, after, days, expired, kept, deleted))
    return MaintainResult(tuple(results), recorded)


def compact_table(
    lake: Lake,
    name: str,
    *,
    max_small_files: int = MAX_SMALL_FILES,
    small_bytes: int = SMALL_BYTES,
) -> tuple[int, int, int]:
    """Rewrite each day of ``name`` that has more than ``max_small_files`` data files
    under ``small_bytes`` as one or a few files, one commit per day; ``(files before,
    files after, days rewritten)``."""
    table = lake.table(name)
    if table is None:
        return 0, 0, 0
    small: dict[datetime, int] = {}
    for task in table.scan().plan_files():
        if task.file.file_size_in_bytes < small_bytes:
            day = _day_start(task.file.partition[0])
            small[day] = small.get(day, 0) + 1
    before = _file_count(table)
    days = sorted(day for day, count in small.items() if count > max_small_files)
    for day in days:
        lake.commit(name, partial(_rewrite_day, day=day))
    after = _file_count(lake.table(name)) if days else before
    return before, after, len(days)


def expire_snapshots(
    lake: Lake, name: str, *, cutoff: datetime, now: datetime | None = None
) -> tuple[int, int, int]:
    """Expire the snapshots of ``name`` taken before ``cutoff`` but the current one, after
    recording in the manifest the objects they name (see module); ``(expired, kept,
    objects recorded)``."""
    table = lake.table(name)
    if table is None:
        return 0, 0, 0
    current = table.current_snapshot()
    limit = int(cutoff.timestamp() * 1000)
    old = [
        s
        for s in table.snapshots()
        if s.timestamp_ms < limit and (current is None or s.snapshot_id != current.snapshot_id)
    ]
    held, recorded = _settle(lake, old, now or datetime.now(tz=UTC))
    ids = [s.snapshot_id for s in old if s.snapshot_id not in held]
    if ids:
        lake.commit(name, lambda current_table: _expire(current_table, ids))
    return len(ids), len(held), recorded


def delete_unreferenced(lake: Lake, name: str, *, cutoff: datetime) -> int:
    """Delete the files under ``name``'s ``data/`` folder that no snapshot of the table
    references and that were last modified before ``cutoff``; how many were deleted."""
    table = lake.table(name)
    if table is None:
        return 0
    referenced = (
        set(table.inspect.all_files().column("file_path").to_pylist())
        if table.snapshots()
        else set()
    )
    fs, prefix = file_system(lake.spec)
    folder = f"{table.location().rstrip('/')}/data".removeprefix(prefix)
    selector = pafs.FileSelector(folder, allow_not_found=True, recursive=True)
    limit = cutoff.timestamp()
    doomed = [
        info.path
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File
        and info.mtime is not None
        and info.mtime.timestamp() < limit
        and prefix + info.path not in referenced
    ]
    for path in doomed:
        fs.delete_file(path)
    return len(doomed)


def _rewrite_day(table: Any, day: datetime) -> None:
    """One commit: the rows of ``day`` replace the day's data files (no row changes);
    ``CommitFailedException`` when the table moved on since ``table`` was loaded."""
    predicate = in_ranges("ts", [(day, day + _DAY)])
    rows = table.scan(row_filter=predicate).to_arrow()
    rows = rows.sort_by([("ts", "ascending"), ("log_id", "ascending")])
    exceptions = require("pyiceberg.exceptions", extra="lake", feature="iceberg tables")
    try:
        with warnings.catch_warnings():  # a day emptied meanwhile has nothing to delete
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            table.overwrite(
                rows,
                overwrite_filter=predicate,
                snapshot_properties={COMPACTED: day.date().isoformat()},
            )
    except exceptions.ValidationException as err:
        # PyIceberg found files another writer added to the day since ``rows`` were read:
        # a conflict like any other, so that ``Lake.commit`` reads the day again
        raise exceptions.CommitFailedException(str(err)) from err


def _expire(table: Any, ids: Sequence[int]) -> None:
    """Expire ``ids`` from the reloaded ``table``: those still there and not a branch or
    tag head (another maintainer may have expired some, a writer moved the head)."""
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    present = [i for i in ids if i not in protected and table.snapshot_by_id(i) is not None]
    if present:
        table.maintenance.expire_snapshots().by_ids(present).commit()


def _settle(lake: Lake, snapshots: Iterable[Any], now: datetime) -> tuple[set[int], int]:
    """Make the manifest know every object ``snapshots`` name; the ids of the snapshots
    that must be kept (an object could not be recorded) and how many were recorded."""
    named = [
        (s, obj)
        for s in sorted(snapshots, key=lambda s: s.timestamp_ms)
        for obj in snapshot_objects(s)
    ]
    if not named:
        return set(), 0
    rows = _manifest_rows(lake, {obj[0] for _, obj in named})
    unsettled: list[tuple[int, tuple[str, str, int, int, int, int, int]]] = []
    for snapshot, obj in named:
        key, etag = obj[0], obj[1]
        row = rows.get(key)
        taken = datetime.fromtimestamp(snapshot.timestamp_ms / 1000, tz=UTC)
        if row is not None and (
            (row["status"] in _DONE and row["etag"] == etag)
            or (row["status"] != "pending" and row["finished_at"] > taken)  # a later word
        ):
            continue
        unsettled.append((snapshot.snapshot_id, obj))
    # the newest commit of an object is the one to record (an object is committed once
    # per etag; a second commit of the same etag would be a bug, and the newest wins)
    wanted = {
        obj[0]: obj for _, obj in unsettled if obj[0] in rows and rows[obj[0]]["etag"] == obj[1]
    }
    recorded: set[tuple[str, str]] = set()
    if wanted:
        owner = owner_id()
        claims = [_entry(rows[key], "pending") for key in wanted]
        try:
            mine = set(lake.state.claim(claims, owner, now=now))
            entries = [_entry(rows[key], "loaded", wanted[key]) for key in sorted(mine)]
            if entries:
                lake.state.finish(entries, owner, started=now)
                recorded = {(key, wanted[key][1]) for key in mine}
        finally:
            lake.state.release(owner)
    # a snapshot naming another version of a recorded object is kept this time: the
    # manifest's row is now later than it, so the next run lets it go
    held = {snapshot_id for snapshot_id, obj in unsettled if (obj[0], obj[1]) not in recorded}
    return held, len(recorded)


def _entry(
    row: dict[str, Any], status: str, obj: tuple[str, str, int, int, int, int, int] | None = None
) -> FileEntry:
    records, loaded, duplicates, rejected = obj[2:6] if obj is not None else (0, 0, 0, 0)
    return FileEntry(
        row["object_key"],
        row["source"],
        row["size"] or 0,
        row["etag"],
        row["mtime"],
        status,
        records=records,
        loaded=loaded,
        duplicates=duplicates,
        rejected=rejected,
    )


def _manifest_rows(lake: Lake, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The manifest rows of ``keys`` (those that exist), by key."""
    files = STATE_TABLES["ingest_files"]
    columns = [files.c[c] for c in ("object_key", "source", "size", "etag", "mtime")]
    columns += [files.c.status, files.c.finished_at]
    ordered = sorted(keys)
    found: dict[str, dict[str, Any]] = {}
    with lake.state.errors(), lake.state.engine.connect() as con:
        for start in range(0, len(ordered), _KEYS_PER_QUERY):
            chunk = ordered[start : start + _KEYS_PER_QUERY]
            query = sa.select(*columns).where(files.c.object_key.in_(chunk))
            for row in con.execute(query).mappings():
                found[row["object_key"]] = dict(row)
    return found


def _table_names(lake: Lake) -> list[str]:
    """The tables of the lake's namespace, in name order."""
    try:
        identifiers = lake.catalog.list_tables(lake.spec.namespace)
    except Exception as err:  # the catalog's client raises many kinds
        raise WarehouseError(
            f"{lake.spec.describe()}: cannot list the tables ({type(err).__name__})",
            path=lake.spec.location,
            detail=str(err),
        ) from err
    return sorted(identifier[-1] for identifier in identifiers)


def _file_count(table: Any) -> int:
    return sum(1 for _ in table.scan().plan_files()) if table.current_snapshot() else 0


def _day_start(value: Any) -> datetime:
    """The UTC start of a ``day(ts)`` partition value (days since 1970, or a date)."""
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return _EPOCH + timedelta(days=int(value))
