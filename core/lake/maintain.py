"""Maintenance of an Iceberg warehouse: compact small data files, expire old snapshots,
delete the files nothing references any more.

Ingest (above all ``aigw ingest --watch``) commits a data file per day partition per
batch, so a day of ``requests`` and ``request_costs`` collects many small files, and every
commit leaves a snapshot, a manifest list, a manifest and a ``metadata.json``. ``maintain``
does what a scheduler runs nightly:

- **Compaction** (``core.lake.compact``). A day partition with more than
  ``max_small_files`` data files smaller than ``small_bytes`` has those files rewritten
  in groups of at most ``target_bytes``, a group read one file at a time (bounded memory,
  whatever the size of the day), each group one commit replacing exactly its files, so
  rows another writer appended meanwhile stay. Rows are never changed, only moved; large
  files are never rewritten.
- **Snapshot expiry.** Snapshots older than the retention are removed from each table's
  metadata (the current one always stays). The snapshot summaries of ``requests`` are how
  a crashed ingest is repaired (``OBJECTS_SUMMARY``), so before a snapshot is expired
  every object it names is made known to the manifest: an object whose manifest row does
  not say it is loaded with that etag is claimed and recorded as loaded with the counts
  of the summary; a snapshot naming an object that cannot be recorded (another driver
  holds it, or the manifest has another version of it) is kept for a later run.
- **Unreferenced files.** PyIceberg 0.12 removes expired snapshots from the metadata
  only, so after expiry ``maintain`` deletes, among the files last modified before the
  retention's cutoff (a younger file may belong to a commit in flight: never touched):
  the data files under the table's ``data/`` folder that no remaining snapshot
  references, and under its ``metadata/`` folder the manifest lists and manifests
  (``*.avro``) of no remaining snapshot and the ``*.metadata.json`` files that are
  neither the current one nor in the current metadata's log. A file that the table's
  metadata did not name when this run began (nor after its compaction) goes only once
  it is a day old too, ``ORPHAN_AGE``, whatever the retention: it may belong to a
  commit still to come (a Ray worker's data file waiting for its driver's commit; the
  manifests, manifest list and ``metadata.json`` a writer writes before the catalog
  swaps its pointer), and deleting it would leave that commit naming a missing file.
  The log's files are kept,
  as Iceberg's own orphan-file removal keeps them: a reader that resolved the catalog's
  pointer just before a commit still opens its file, and the log is bounded by the table
  property ``write.metadata.previous-versions-max`` (100 by default; PyIceberg honours it,
  and deletes what falls out of the log itself when
  ``write.metadata.delete-after-commit.enabled`` is set). Other files (statistics) are
  left alone.

R2 Data Catalog can do all of it itself (its compaction and snapshot-expiration
settings); ``maintain`` is for the SQL catalog and for REST catalogs that do not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow.fs as pafs
import sqlalchemy as sa

from core.errors import WarehouseError
from core.lake.compact import MAX_SMALL_FILES, SMALL_BYTES, TARGET_BYTES, compact_table
from core.lake.lake import Lake
from core.lake.state import STATE_TABLES, FileEntry, owner_id
from core.lake.tables import DAY_PARTITIONED, file_system, snapshot_objects

__all__ = [
    "MAX_SMALL_FILES",
    "ORPHAN_AGE",
    "SMALL_BYTES",
    "TARGET_BYTES",
    "MaintainResult",
    "TableMaintenance",
    "compact_table",
    "delete_unreferenced",
    "delete_unreferenced_metadata",
    "expire_snapshots",
    "maintain",
]

_DONE: Final = frozenset({"loaded", "skipped"})
# A file the table's metadata never named is deleted only once this old: younger, it may
# be a write whose commit is still to come (Iceberg's own orphan removal keeps 3 days).
ORPHAN_AGE: Final = timedelta(days=1)
_KEYS_PER_QUERY: Final = 500
_METADATA_SUFFIXES: Final = (".avro", ".metadata.json")  # manifests, lists, versions


@dataclass(frozen=True, slots=True)
class TableMaintenance:
    """What ``maintain`` did to one table: data files of its current snapshot before and
    after compaction, days compacted, snapshots expired and old snapshots kept, data files
    and metadata files (manifests, manifest lists, ``metadata.json``) deleted."""

    name: str
    files_before: int
    files_after: int
    days_compacted: int = 0
    expired: int = 0
    kept: int = 0
    deleted: int = 0
    metadata_deleted: int = 0


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

    @property
    def metadata_deleted(self) -> int:
        return sum(table.metadata_deleted for table in self.tables)


def maintain(
    lake: Lake,
    *,
    older_than: timedelta,
    now: datetime | None = None,
    max_small_files: int = MAX_SMALL_FILES,
    small_bytes: int = SMALL_BYTES,
    target_bytes: int = TARGET_BYTES,
) -> MaintainResult:
    """Compact the day partitions of ``requests`` and ``request_costs``, then expire every
    table's snapshots older than ``now - older_than`` and delete the data and metadata
    files older than that which nothing references any more (see module)."""
    now = now or datetime.now(tz=UTC)
    cutoff = now - older_than
    results: list[TableMaintenance] = []
    recorded = 0
    for name in _table_names(lake):
        table = lake.table(name)
        if table is None:
            continue
        before = after = _file_count(table)
        named = _versions(table)  # compaction's commits may drop some from the log
        days = 0
        if name in DAY_PARTITIONED:
            before, after, days = compact_table(
                lake,
                name,
                max_small_files=max_small_files,
                small_bytes=small_bytes,
                target_bytes=target_bytes,
            )
        compacted = lake.table(name)  # before expiry forgets some
        known = _all_data_files(compacted)
        named |= _metadata_files(compacted)
        expired, kept, fixed = expire_snapshots(lake, name, cutoff=cutoff, now=now)
        deleted = delete_unreferenced(lake, name, cutoff=cutoff, known=known)
        metadata = delete_unreferenced_metadata(lake, name, cutoff=cutoff, known=named)
        recorded += fixed
        results.append(
            TableMaintenance(name, before, after, days, expired, kept, deleted, metadata)
        )
    return MaintainResult(tuple(results), recorded)


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
    expired = lake.commit(name, lambda current_table: _expire(current_table, ids)) if ids else 0
    return expired, len(held), recorded


def delete_unreferenced(
    lake: Lake, name: str, *, cutoff: datetime, known: Collection[str] = ()
) -> int:
    """Delete the files under ``name``'s ``data/`` folder that no snapshot of the table
    references and that were last modified before ``cutoff``; how many were deleted.

    A file no snapshot ever referenced (not in ``known``, the files of the snapshots
    before expiry) may be a write not committed yet (a Ray worker's files wait for the
    driver's commit; a crashed one's never come): it goes only once older than
    ``ORPHAN_AGE`` too, whatever ``cutoff``."""
    table = lake.table(name)
    if table is None:
        return 0
    folder = f"{table.location().rstrip('/')}/data"
    return _delete_old(lake, folder, _all_data_files(table), cutoff, known=known)


def _all_data_files(table: Any) -> set[str]:
    """The data files any snapshot of ``table`` references (URIs)."""
    if table is None or not table.snapshots():
        return set()
    return set(table.inspect.all_files().column("file_path").to_pylist())


def delete_unreferenced_metadata(
    lake: Lake, name: str, *, cutoff: datetime, known: Collection[str] = ()
) -> int:
    """Delete the manifest lists, manifests and ``metadata.json`` files under ``name``'s
    ``metadata/`` folder that the current metadata does not reference (see module) and
    that were last modified before ``cutoff``; how many were deleted.

    A file not in ``known`` (what the metadata named before expiry) may be a commit in
    flight's (its manifests and ``metadata.json`` are written before the catalog's
    pointer moves): it goes only once older than ``ORPHAN_AGE`` too, whatever ``cutoff``."""
    table = lake.table(name)
    if table is None:
        return 0
    folder = f"{table.location().rstrip('/')}/metadata"
    referenced = _metadata_files(table)
    return _delete_old(lake, folder, referenced, cutoff, known=known, suffixes=_METADATA_SUFFIXES)


def _metadata_files(table: Any) -> set[str]:
    """The metadata files ``table``'s current metadata names (URIs): itself, its log,
    statistics, and every snapshot's manifest list and manifests."""
    if table is None:
        return set()
    metadata = table.metadata
    named = _versions(table)
    named |= {s.statistics_path for s in metadata.statistics}
    named |= {s.statistics_path for s in metadata.partition_statistics}
    for snapshot in metadata.snapshots:
        named.add(snapshot.manifest_list)
        named |= {m.manifest_path for m in snapshot.manifests(table.io)}
    return named


def _versions(table: Any) -> set[str]:
    """The ``metadata.json`` files of ``table``: the current one and its log's (URIs)."""
    return {table.metadata_location} | {e.metadata_file for e in table.metadata.metadata_log}


def _delete_old(
    lake: Lake,
    folder: str,
    referenced: Collection[str],
    cutoff: datetime,
    *,
    known: Collection[str],
    suffixes: tuple[str, ...] = ("",),
) -> int:
    """Delete the files under ``folder`` (a URI or path) whose name ends with one of
    ``suffixes``, not in ``referenced`` and last modified before ``cutoff``, and also more
    than ``ORPHAN_AGE`` ago when not in ``known``; how many. Names are compared as the
    file system lists them (``_listed``: a table's metadata may name a local file by a
    URI or a plain path, an object by ``s3://`` or ``s3a://``)."""
    fs, _ = file_system(lake.spec)
    selector = pafs.FileSelector(_listed(folder), allow_not_found=True, recursive=True)
    orphans = min(cutoff, datetime.now(tz=UTC) - ORPHAN_AGE)
    kept = {_listed(uri) for uri in referenced}
    seen = {_listed(uri) for uri in known}

    def old_enough(path: str, mtime: datetime) -> bool:
        limit = cutoff if path in seen else orphans
        return mtime.timestamp() < limit.timestamp()

    doomed = [
        info.path
        for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File
        and info.path.endswith(suffixes)
        and info.mtime is not None
        and info.path not in kept
        and old_enough(info.path, info.mtime)
    ]
    for path in doomed:
        fs.delete_file(path)
    return len(doomed)


def _listed(uri: str) -> str:
    """``uri`` as a PyArrow file system lists it: a local path (``file:///x``,
    ``file:/x`` and ``/x`` all give ``/x``) or an object's ``bucket/key``."""
    if uri.startswith("file:"):
        path = uri.removeprefix("file:")
        return path[2:] if path.startswith("///") else path
    return uri.split("://", 1)[1] if "://" in uri else uri


def _expire(table: Any, ids: Sequence[int]) -> int:
    """Expire ``ids`` from the reloaded ``table``: those still there and not a branch or
    tag head (another maintainer may have expired some, a writer moved the head); how
    many were expired."""
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    present = [i for i in ids if i not in protected and table.snapshot_by_id(i) is not None]
    if present:
        table.maintenance.expire_snapshots().by_ids(present).commit()
    return len(present)


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
