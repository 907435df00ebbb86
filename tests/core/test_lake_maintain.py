"""``core.lake.maintain`` on an Iceberg warehouse in a temporary folder: compaction moves
rows without changing one, packs only small files in groups under the bound and leaves
the expected number of data files; a group's replace keeps another writer's appends;
snapshot expiry keeps the current snapshot, records in the manifest the objects a crashed
ingest committed before their snapshots go, and keeps the snapshots of objects a live
ingest holds; deletion leaves only the files the current metadata references."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from pyiceberg.exceptions import CommitFailedException

from app.service import refresh
from core.lake import EngineSpec, LakeSpec
from core.lake.compact import _replace_files, _write_group, plan_groups
from core.lake.lake import Lake, _without_library_retries
from core.lake.maintain import ORPHAN_AGE, TableMaintenance, compact_table, maintain
from core.lake.state import STATE_TABLES, owner_id
from ingest import IngestSettings, IngestSummary, run_ingest
from ingest.lake_commit import committed_objects
from models import ModelsSettings
from tests.conftest import logpush_record, write_ndjson
from tests.lake_fixtures import ROW_QUERY, lake_spec, read_all

DAY_ONE = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z in unixnano
HOUR = 3_600_000_000_000
COSTS = "SELECT * FROM request_costs ORDER BY log_id, ts"
MANIFEST = (
    "SELECT object_key, etag, status, records, rows_loaded, rows_duplicate, rows_rejected "
    "FROM ingest_files ORDER BY object_key"
)
WEEK = timedelta(days=7)


def _write(logs: Path, name: str, hour: int, count: int = 3) -> None:
    """An object of ``count`` records in hour ``hour`` after 2026-04-18 00:00 UTC."""
    start = DAY_ONE + hour * HOUR
    records = [logpush_record(Timestamp=start + i * 1_000_000_000) for i in range(count)]
    write_ndjson(logs / name, records)


def _ingest(logs: Path, spec: LakeSpec) -> IngestSummary:
    settings = IngestSettings(
        source=str(logs),
        db_path=dataclasses.replace(spec, engine=EngineSpec(batch_objects=1)),
        quality="off",
    )
    return run_ingest(settings)


def _files_per_day(spec: LakeSpec, name: str) -> dict[int, int]:
    with Lake(spec) as lake:
        days: dict[int, int] = {}
        for task in lake.table(name).scan().plan_files():
            day = int(task.file.partition[0])
            days[day] = days.get(day, 0) + 1
    return days


def _snapshots(spec: LakeSpec, name: str) -> int:
    with Lake(spec) as lake:
        return len(lake.table(name).snapshots())


def _watched(tmp_path: Path) -> LakeSpec:
    """Six objects on 2026-04-18 and two on 04-19, each ingested and its rollups refreshed
    alone (as ``aigw ingest --watch`` does): a data file per object in both tables."""
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    for index, hour in enumerate([1, 3, 5, 7, 9, 11, 25, 27]):
        _write(logs, f"o{index}.log.gz", hour)
        assert _ingest(logs, spec).rows_loaded == 3
        refresh(spec, ModelsSettings())
    return spec


def test_compaction_rewrites_only_days_over_the_limit_and_changes_no_row(tmp_path: Path) -> None:
    spec = _watched(tmp_path)
    assert _files_per_day(spec, "requests") == {20561: 6, 20562: 2}
    assert _files_per_day(spec, "request_costs") == {20561: 6, 20562: 2}
    rows, costs = read_all(spec, ROW_QUERY), read_all(spec, COSTS)
    rollups = read_all(spec, "SELECT * FROM rollup_hourly ORDER BY ALL")
    assert len(rows) == len(costs) == 24

    with Lake(spec) as lake:
        result = maintain(lake, older_than=WEEK, max_small_files=4)

    tables = {t.name: t for t in result.tables}
    assert tables["requests"] == TableMaintenance("requests", 8, 3, days_compacted=1)
    assert tables["request_costs"] == TableMaintenance("request_costs", 8, 3, days_compacted=1)
    assert (result.expired, result.recorded) == (0, 0)  # every snapshot is younger than a week
    assert _files_per_day(spec, "requests") == {20561: 1, 20562: 2}
    assert _files_per_day(spec, "request_costs") == {20561: 1, 20562: 2}
    assert read_all(spec, ROW_QUERY) == rows
    assert read_all(spec, COSTS) == costs
    assert read_all(spec, "SELECT * FROM rollup_hourly ORDER BY ALL") == rollups

    with Lake(spec) as lake:  # nothing left to compact
        again = {t.name: t for t in maintain(lake, older_than=WEEK, max_small_files=4).tables}
    assert again["requests"] == TableMaintenance("requests", 3, 3)


def test_expiry_keeps_the_current_snapshot_and_forgets_no_object(tmp_path: Path) -> None:
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    for index in range(4):
        _write(logs, f"o{index}.log.gz", index)
    assert _ingest(logs, spec).loaded == 4
    manifest = read_all(spec, MANIFEST)
    assert _snapshots(spec, "requests") == 4

    with Lake(spec) as lake:
        assert maintain(lake, older_than=WEEK).expired == 0
        result = maintain(lake, older_than=timedelta(0), now=datetime.now(tz=UTC))
        live = committed_objects(lake)

    requests = next(t for t in result.tables if t.name == "requests")
    assert (requests.expired, requests.kept, result.recorded) == (3, 0, 0)
    assert _snapshots(spec, "requests") == 1
    assert [key for key, _ in live] == [str(logs / "o3.log.gz")]  # the current one's object
    assert read_all(spec, MANIFEST) == manifest
    assert read_all(spec, "SELECT count(*) FROM requests") == [(12,)]
    again = _ingest(logs, spec)
    assert (again.unchanged, again.loaded) == (4, 0)


def _crash_after_commit(spec: LakeSpec, key: str, owner: str) -> None:
    """Make the manifest say what a driver killed between the Iceberg commit of ``key``
    and its manifest update leaves: the object pending, claimed by ``owner``."""
    files = STATE_TABLES["ingest_files"]
    with Lake(spec) as lake, lake.state.engine.begin() as con:
        con.execute(
            files.update()
            .where(files.c.object_key == key)
            .values(
                status="pending",
                records=0,
                rows_loaded=0,
                rows_duplicate=0,
                claimed_by=owner,
                claimed_at=datetime.now(tz=UTC),
            )
        )


def _dead_owner() -> str:
    """The claim owner id of a process of this machine that has exited."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    host, _, rest = owner_id().partition(":")
    return f"{host}:{child.stdout.strip()}:{rest.partition(':')[2]}"


def test_a_tagged_snapshot_is_kept_and_not_counted_as_expired(tmp_path: Path) -> None:
    """Four commits, the first tagged: expiry at 0m removes the two untagged old ones and
    says two, not three; the tag still reads its three rows."""
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    for index in range(4):
        _write(logs, f"o{index}.log.gz", index)
    assert _ingest(logs, spec).loaded == 4
    with Lake(spec) as lake:
        first = min(lake.table("requests").snapshots(), key=lambda s: s.timestamp_ms)
        lake.table("requests").manage_snapshots().create_tag(first.snapshot_id, "audit").commit()
        result = maintain(lake, older_than=timedelta(0), now=datetime.now(tz=UTC))
        tagged = lake.table("requests").scan(snapshot_id=first.snapshot_id).to_arrow()
    requests = next(t for t in result.tables if t.name == "requests")
    assert (requests.expired, _snapshots(spec, "requests")) == (2, 2)
    assert tagged.num_rows == 3


def test_a_crashed_ingest_is_recorded_before_its_snapshot_expires(tmp_path: Path) -> None:
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    for index in range(3):
        _write(logs, f"o{index}.log.gz", index, count=index + 2)
    _ingest(logs, spec)
    manifest = read_all(spec, MANIFEST)
    first = str(logs / "o0.log.gz")
    _crash_after_commit(spec, first, _dead_owner())
    assert read_all(spec, MANIFEST)[0][2:5] == ("pending", 0, 0)

    with Lake(spec) as lake:
        result = maintain(lake, older_than=timedelta(0), now=datetime.now(tz=UTC))
        assert committed_objects(lake).keys() == {(str(logs / "o2.log.gz"), manifest[2][1])}

    requests = next(t for t in result.tables if t.name == "requests")
    assert (requests.expired, requests.kept, result.recorded) == (2, 0, 1)
    assert read_all(spec, MANIFEST) == manifest  # loaded again, with the summary's counts
    assert manifest[0][2:5] == ("loaded", 2, 2)
    again = _ingest(logs, spec)
    assert (again.unchanged, again.loaded, again.rows_loaded) == (3, 0, 0)
    assert read_all(spec, "SELECT count(*) FROM requests") == [(9,)]


def test_the_snapshot_of_an_object_a_live_ingest_holds_is_kept(tmp_path: Path) -> None:
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    for index in range(3):
        _write(logs, f"o{index}.log.gz", index)
    _ingest(logs, spec)
    first = str(logs / "o0.log.gz")
    _crash_after_commit(spec, first, owner_id())  # this process: alive, its lease fresh

    with Lake(spec) as lake:
        result = maintain(lake, older_than=timedelta(0), now=datetime.now(tz=UTC))
        live = committed_objects(lake)

    requests = next(t for t in result.tables if t.name == "requests")
    assert (requests.expired, requests.kept, result.recorded) == (1, 1, 0)
    assert _snapshots(spec, "requests") == 2
    assert sorted(key for key, _ in live) == [first, str(logs / "o2.log.gz")]
    assert read_all(spec, MANIFEST)[0][2] == "pending"
    files = STATE_TABLES["ingest_files"]
    with Lake(spec) as lake, lake.state.engine.connect() as con:
        holder = con.execute(sa.select(files.c.claimed_by).where(files.c.object_key == first))
        assert holder.scalar() is not None  # maintain released only its own claims


def test_a_compaction_on_a_stale_snapshot_is_refused_not_dropping_newer_rows(
    tmp_path: Path,
) -> None:
    """The replace of a group planned on a table another writer appended to since it was
    loaded fails to commit; ``Lake.commit`` applies it to the reloaded table: the other
    writer's file and rows stay, only the group's files are replaced."""
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    for index in range(5):
        _write(logs, f"o{index}.log.gz", index)
    _ingest(logs, spec)
    day = datetime(2026, 4, 18, tzinfo=UTC)
    with Lake(spec) as lake:
        stale = _without_library_retries(lake.table("requests"))  # as Lake.commit loads it
        sources = [task.file for task in stale.scan().plan_files()]
        output = _write_group(stale, sources)
        _write(logs, "late.log.gz", 6)
        assert _ingest(logs, spec).rows_loaded == 3
        late = {t.file.file_path for t in lake.table("requests").scan().plan_files()}
        late -= {f.file_path for f in sources}
        with pytest.raises(CommitFailedException):
            _replace_files(stale, sources, [output], day)
        replace = partial(_replace_files, sources=sources, outputs=[output], day=day)
        assert lake.commit("requests", replace) is True
        assert _paths(lake, "requests") == sorted(late | {output.file_path})
        assert lake.commit("requests", replace) is False  # the sources are gone: no commit
        assert _paths(lake, "requests") == sorted(late | {output.file_path})
        assert compact_table(lake, "requests") == (2, 2, 0)  # 2 small files: not over 4
    assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [(18, 18)]


def test_compaction_packs_small_files_in_bounded_groups_and_leaves_large_files(
    tmp_path: Path,
) -> None:
    """Twelve commits to one day and a file over ``small_bytes``: the small files are
    packed in order into groups of at most ``target_bytes``, a file each; the large file
    is not rewritten; the rows are exactly the same."""
    spec = lake_spec(tmp_path)
    logs = tmp_path / "logs"
    _write(logs, "big.log.gz", 0, count=400)
    _ingest(logs, spec)
    for index in range(12):
        _write(logs, f"o{index:02d}.log.gz", index + 1)
        _ingest(logs, spec)
    with Lake(spec) as lake:
        table = lake.table("requests")
        sizes = {t.file.file_path: t.file.file_size_in_bytes for t in table.scan().plan_files()}
        big = max(sizes, key=lambda path: sizes[path])
        small_bytes = sizes[big]  # the 400-row file is not small, the 3-row ones are
        small = sorted(size for path, size in sizes.items() if path != big)
        target = 3 * small[-1]  # room for exactly 3 small files a group
        rows = _sorted_rows(table)
        assert (len(sizes), sum(rows.column("log_id").is_valid().to_pylist())) == (13, 436)

        assert compact_table(lake, "requests", small_bytes=small_bytes, target_bytes=target) == (
            13,
            5,
            1,
        )
        table = lake.table("requests")
        files = {t.file.file_path: t.file for t in table.scan().plan_files()}
        new = set(files) - {big}
        assert big in files and len(new) == 4 and not new & set(sizes)  # the rest is new
        assert sorted(f.record_count for f in files.values()) == [9, 9, 9, 9, 400]
        assert files[big].file_size_in_bytes == sizes[big]
        assert _sorted_rows(table).equals(rows)
        assert table.current_snapshot().summary["aigw.compacted"] == "2026-04-18"
        # the groups are what was replaced: one snapshot each
        assert len(table.snapshots()) == 13 + 4


def test_plan_groups_never_exceed_the_bound() -> None:
    files = [_Sized(size) for size in (5, 5, 5, 9, 2, 2, 20, 3, 3, 3)]
    groups = plan_groups(files, 10)
    assert [[f.file_size_in_bytes for f in g] for g in groups] == [[5, 5], [2, 2], [3, 3, 3]]
    assert plan_groups(files, 100) == [files]


@dataclasses.dataclass(frozen=True)
class _Sized:
    file_size_in_bytes: int


def _sorted_rows(table: Any) -> pa.Table:
    rows = table.scan().to_arrow().drop_columns(["ingested_at"])
    return rows.sort_by([(name, "ascending") for name in ("log_id", "ts")])


def _paths(lake: Lake, name: str) -> list[str]:
    return sorted(task.file.file_path for task in lake.table(name).scan().plan_files())


def test_expiry_deletes_the_data_files_no_snapshot_references(tmp_path: Path) -> None:
    """After a compaction, the small files it replaced are still read by the old snapshots:
    kept while those live, deleted with them; nothing a snapshot reads is deleted."""
    spec = _watched(tmp_path)
    rows = read_all(spec, ROW_QUERY)
    with Lake(spec) as lake:
        first = maintain(lake, older_than=WEEK, max_small_files=4)
        assert first.deleted == 0  # every old snapshot is younger than a week
        on_disk = _data_files(lake, "requests")
        assert (len(on_disk), _file_count(lake, "requests")) == (9, 3)  # 8 small + 1 compacted
        result = maintain(lake, older_than=timedelta(0), now=datetime.now(tz=UTC))
        tables = {t.name: t for t in result.tables}
        # the six small files of 2026-04-18 in each day-partitioned table
        assert (tables["requests"].deleted, tables["request_costs"].deleted) == (6, 6)
        for name in tables:
            assert len(_data_files(lake, name)) == _file_count(lake, name)
    assert read_all(spec, ROW_QUERY) == rows


def test_a_data_file_no_snapshot_ever_referenced_waits_a_day_whatever_the_retention(
    tmp_path: Path,
) -> None:
    """A stray Parquet file under ``data/`` (a write whose commit has not come, or never
    will) survives ``--older-than 0m`` while younger than ``ORPHAN_AGE``; once older, it
    goes. The table's own files stay either way."""
    spec = _watched(tmp_path)
    rows = read_all(spec, ROW_QUERY)
    with Lake(spec) as lake:
        folder = Path(lake.table("requests").location().removeprefix("file://")) / "data"
        fresh, stale = folder / "fresh-stray.parquet", folder / "stale-stray.parquet"
        for stray in (fresh, stale):
            stray.write_bytes(b"PAR1")
        aged = time.time() - ORPHAN_AGE.total_seconds() - 60
        os.utime(stale, (aged, aged))
        # no day over the small-file limit: nothing compacted, so only strays can go
        result = maintain(lake, older_than=timedelta(0), max_small_files=100)
        assert {t.name: t.deleted for t in result.tables}["requests"] == 1
        assert (fresh.exists(), stale.exists()) == (True, False)
    assert read_all(spec, ROW_QUERY) == rows


def test_a_table_whose_files_are_named_by_plain_paths_loses_none(tmp_path: Path) -> None:
    """A catalog whose ``warehouse`` is a folder without ``file://`` names its files by
    plain paths, where the folder's listing gives URIs: the two are compared as paths,
    so the table's files, a day old, stay under ``--older-than 1h`` (they were all
    deleted, the current ``metadata.json`` too), and a stray as old goes."""
    spec = lake_spec(tmp_path)
    spec = dataclasses.replace(spec, catalog={**spec.catalog, "warehouse": spec.location})
    logs = tmp_path / "logs"
    _write(logs, "o0.log.gz", 1)
    assert _ingest(logs, spec).rows_loaded == 3
    lake_folder = Path(spec.location)
    stray = lake_folder / "aigw" / "requests" / "data" / "stray.parquet"
    stray.write_bytes(b"PAR1")
    aged = time.time() - ORPHAN_AGE.total_seconds() - 60
    for path in lake_folder.rglob("*"):
        os.utime(path, (aged, aged))
    with Lake(spec) as lake:
        assert lake.table("requests").location().startswith("/")  # no scheme
        result = maintain(lake, older_than=timedelta(hours=1))
        assert {t.name: (t.deleted, t.metadata_deleted) for t in result.tables}["requests"] == (
            1,
            0,
        )
    assert not stray.exists()
    assert len(read_all(spec, ROW_QUERY)) == 3


def test_the_metadata_files_of_a_commit_in_flight_survive_maintenance(tmp_path: Path) -> None:
    """A writer writes its manifest and manifest list before the catalog's pointer moves
    to its ``metadata.json``: ``maintain --older-than 0m`` meanwhile leaves them (no
    metadata named them yet), so the commit that follows names files that exist and every
    row reads back. (Deleted, the table's current snapshot would have no manifest list.)"""
    spec = _watched(tmp_path)
    with Lake(spec) as lake:
        rows = lake.table("requests").scan(limit=2).to_arrow()
        with lake.table("requests").transaction() as tx:
            tx.append(rows)  # its data file, manifest and manifest list are written
            result = maintain(lake, older_than=timedelta(0), max_small_files=100)
            # the manifest lists of the 7 expired snapshots (their manifests are all current)
            assert {t.name: t.metadata_deleted for t in result.tables}["requests"] == 7
        table = lake.table("requests")
        assert table.scan().to_arrow().num_rows == 24 + 2
        assert _metadata_files(lake, "requests") == _referenced_metadata(lake, "requests")
    assert len(read_all(spec, ROW_QUERY)) == 24 + 2


def test_maintain_leaves_in_metadata_only_what_the_current_metadata_references(
    tmp_path: Path,
) -> None:
    """After compaction, expiry and deletion, each table's ``metadata/`` folder holds the
    current ``metadata.json``, those of its log (2 for ``requests`` here), and the manifest
    lists and manifests of its snapshots; an unreferenced file newer than the cutoff stays,
    an old one goes. The files there are made a day old first (as for a nightly run): the
    ``metadata.json`` files the new log limit drops were named by no metadata when
    ``maintain`` began, so they wait ``ORPHAN_AGE``."""
    spec = _watched(tmp_path)
    with Lake(spec) as lake:
        with lake.table("requests").transaction() as tx:
            tx.set_properties({"write.metadata.previous-versions-max": "2"})
        folder = Path(lake.table("requests").location().removeprefix("file://")) / "metadata"
        aged = time.time() - ORPHAN_AGE.total_seconds() - 60
        for path in folder.iterdir():
            os.utime(path, (aged, aged))
        old_stray, new_stray = folder / "old-stray-m0.avro", folder / "new-stray-m0.avro"
        old_stray.write_bytes(b"x")
        os.utime(old_stray, (1_000_000_000, 1_000_000_000))
        before = len(_metadata_files(lake, "requests"))
        now = datetime.now(tz=UTC)
        new_stray.write_bytes(b"x")
        os.utime(new_stray, (now.timestamp() + 60, now.timestamp() + 60))
        result = maintain(lake, older_than=timedelta(0), now=now)

        tables = {t.name: t for t in result.tables}
        kept = _metadata_files(lake, "requests")
        # 1 snapshot (the compaction): its list, its manifests (the new file, the six
        # deleted ones, the two files of 04-19), 1 + 2 metadata.json and the new stray
        assert len(kept) == 1 + 4 + 3 + 1
        # 27 before (the old stray among them), + 5 maintain wrote (the compaction's list,
        # 2 manifests and metadata.json; the expiry's metadata.json), + the new stray
        assert before == 27
        assert tables["requests"].metadata_deleted == 27 + 5 + 1 - len(kept) == 24
        assert not old_stray.exists()
        assert kept == _referenced_metadata(lake, "requests") | {new_stray}
        for name in tables:
            if name != "requests":
                assert _metadata_files(lake, name) == _referenced_metadata(lake, name)
        assert result.metadata_deleted > tables["requests"].metadata_deleted


def _metadata_files(lake: Lake, name: str) -> set[Path]:
    folder = Path(lake.table(name).location().removeprefix("file://")) / "metadata"
    return {path for path in folder.rglob("*") if path.is_file()}


def _referenced_metadata(lake: Lake, name: str) -> set[Path]:
    table = lake.table(name)
    uris = {table.metadata_location} | {e.metadata_file for e in table.metadata.metadata_log}
    for snapshot in table.snapshots():
        uris.add(snapshot.manifest_list)
        uris |= {m.manifest_path for m in snapshot.manifests(table.io)}
    return {Path(uri.removeprefix("file://")) for uri in uris}


def _data_files(lake: Lake, name: str) -> list[Path]:
    folder = Path(lake.table(name).location().removeprefix("file://")) / "data"
    return [path for path in folder.rglob("*") if path.is_file()]


def _file_count(lake: Lake, name: str) -> int:
    return sum(1 for _ in lake.table(name).scan().plan_files())
