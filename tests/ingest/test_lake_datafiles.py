"""Data files written where the rows are parsed (``load_objects`` with a
``DataFileTarget``, what each Ray task runs) and committed by the driver: committed as
they are when every row is new; read back, their kept rows written again and deleted
when some rows repeat stored ones, each other's, or a rival driver's commit; on a
folder and on moto's S3 server. Without Ray: the worker's function runs here."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.lake import LakeSpec
from core.lake.datafiles import DataFileTarget, delete_files
from core.lake.lake import Lake
from core.lake.maintain import maintain
from ingest.lake import ingest_lake
from ingest.lake_commit import commit_objects
from ingest.lake_object import ObjectLoad, load_object, load_objects
from ingest.lake_ray import spread
from ingest.sources import StoredObject, open_source
from tests.conftest import logpush_record, write_ndjson
from tests.ingest.conftest import Bucket
from tests.lake_fixtures import ROW_QUERY, LosesTheRace, lake_spec, read_all

BASE_NS = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z
STORED = "SELECT count(*), count(DISTINCT log_id) FROM requests"


def _objects(logs: Path, spans: dict[str, range]) -> list[StoredObject]:
    """One object per name, holding the records numbered by its span (a number is the
    same record in every object that has it)."""
    for name, span in spans.items():
        write_ndjson(
            logs / "20260418" / f"{name}.log.gz",
            [logpush_record(Metadata={"n": n}, Timestamp=BASE_NS + n * 1000) for n in span],
        )
    return sorted(open_source(str(logs)).list_objects(), key=lambda obj: obj.key)


def _written_by_worker(
    lake: Lake, spec: LakeSpec, logs: Path, objects: list[StoredObject]
) -> list[ObjectLoad]:
    target = DataFileTarget.of(lake.fact("requests"), spec)
    return load_objects(str(logs), objects, files=target, started=datetime.now(tz=UTC))


def _committed_files(lake: Lake) -> set[str]:
    return {task.file.file_path for task in lake.table("requests").scan().plan_files()}


def _files_on_disk(root: Path) -> set[str]:
    return {f"file://{path}" for path in root.rglob("*.parquet") if "requests" in path.parts}


def _counts(counts: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {
        Path(key).name.split(".")[0]: (c.records, c.loaded, c.duplicates)
        for key, c in counts.items()
    }


def _lose_the_race_to(
    winner: Lake, spec: LakeSpec, logs: Path, rival_object: StoredObject, loads: list[ObjectLoad]
) -> dict[str, Any]:
    """Commit ``loads`` through a lake whose first attempt loses to ``winner`` committing
    ``rival_object`` (its rows, in process); the counts, after checking it took two."""
    started = datetime.now(tz=UTC)

    def rival() -> object:
        rows = load_object(str(logs), rival_object, started=started)
        return commit_objects(winner, [rows], started=started, reloaded=False)

    with LosesTheRace(spec, rival) as loser:
        counts = commit_objects(loser, loads, started=started, reloaded=False)
    assert loser.attempts == 2
    return dict(counts)


def test_a_worker_s_files_are_committed_as_they_are(tmp_path: Path) -> None:
    """Rows all new: the commit adds the files the worker wrote (one set for its two
    objects, one file for their one day), and the stored rows are the in-process path's."""
    logs, spec = tmp_path / "logs", lake_spec(tmp_path / "ray")
    objects = _objects(logs, {"a": range(4), "b": range(4, 9)})
    with Lake(spec) as lake:
        loads = _written_by_worker(lake, spec, logs, objects)
        assert [(load.rows, load.keys.num_rows) for load in loads] == [(None, 4), (None, 5)]
        assert loads[0].files == loads[1].files and len(loads[0].files) == 1
        counts = commit_objects(lake, loads, started=datetime.now(tz=UTC), reloaded=False)
        assert _committed_files(lake) == {loads[0].files[0].file_path}
    assert _counts(counts) == {"a": (4, 4, 0), "b": (5, 5, 0)}
    local = lake_spec(tmp_path / "local")
    with Lake(local) as lake:
        ingest_lake(open_source(str(logs)), lake)
    assert read_all(spec, ROW_QUERY) == read_all(local, ROW_QUERY)
    assert len(read_all(spec, ROW_QUERY)) == 9


def test_repeated_rows_are_dropped_and_the_worker_s_files_replaced(tmp_path: Path) -> None:
    """c (records 0-2) stored first; then one worker's files for a (0-5) and b (3-8):
    a repeats c three times, b repeats a three times. The kept rows are written again,
    the worker's file deleted: what is on disk is what the table references."""
    logs, spec = tmp_path / "logs", lake_spec(tmp_path)
    a, b, c = _objects(logs, {"a": range(6), "b": range(3, 9), "c": range(3)})
    started = datetime.now(tz=UTC)
    with Lake(spec) as lake:
        first = commit_objects(lake, [load_object(str(logs), c, started=started)], started=started)
        loads = _written_by_worker(lake, spec, logs, [a, b])
        worker_file = loads[0].files[0].file_path
        counts = commit_objects(lake, loads, started=started)
        committed = _committed_files(lake)
    assert _counts(first | counts) == {"c": (3, 3, 0), "a": (6, 3, 3), "b": (6, 3, 3)}
    assert worker_file not in committed and len(committed) == 2
    assert _files_on_disk(tmp_path / "lake") == committed
    assert read_all(spec, STORED) == [(9, 9)]
    assert read_all(spec, "SELECT source_file, count(*) FROM requests GROUP BY 1 ORDER BY 1") == [
        (a.key, 3),
        (b.key, 3),
        (c.key, 3),
    ]


def test_a_commit_that_lost_the_race_drops_the_rival_s_rows_from_the_worker_s_files(
    tmp_path: Path,
) -> None:
    """The first attempt adds the worker's files as they are and loses to a rival that
    stored b (3-8); the retry finds a (0-5) repeats three of b's and writes a's other
    three again: nothing doubled, the worker's file deleted."""
    logs, spec = tmp_path / "logs", lake_spec(tmp_path)
    a, b = _objects(logs, {"a": range(6), "b": range(3, 9)})
    with Lake(spec) as winner:
        loads = _written_by_worker(winner, spec, logs, [a])
        counts = _lose_the_race_to(winner, spec, logs, b, loads)
        committed = _committed_files(winner)
    assert _counts(counts) == {"a": (6, 3, 3)}
    assert loads[0].files[0].file_path not in committed
    assert _files_on_disk(tmp_path / "lake") == committed
    assert read_all(spec, STORED) == [(9, 9)]


def test_files_awaiting_their_commit_survive_maintenance(tmp_path: Path) -> None:
    """``aigw maintain --older-than 0m`` between a worker's write and the driver's commit
    leaves the files (no snapshot has referenced them yet): the commit then adds files
    that exist, and every row reads back."""
    logs, spec = tmp_path / "logs", lake_spec(tmp_path)
    first, second = _objects(logs, {"a": range(4), "b": range(4, 9)})
    started = datetime.now(tz=UTC)
    with Lake(spec) as lake:
        commit_objects(lake, [load_object(str(logs), first, started=started)], started=started)
        loads = _written_by_worker(lake, spec, logs, [second])
        maintain(lake, older_than=timedelta(0))
        commit_objects(lake, loads, started=started)
        assert _files_on_disk(tmp_path / "lake") == _committed_files(lake)
    assert read_all(spec, STORED) == [(9, 9)]


def test_a_commit_that_lost_the_race_leaves_no_file_of_its_own(tmp_path: Path) -> None:
    """c (records 0-1) stored; a (0-5) repeats two, so its first attempt writes a's new
    rows again and loses to a rival storing b (4-8); the retry writes a's two new rows:
    the first attempt's file is deleted, the worker's too."""
    logs, spec = tmp_path / "logs", lake_spec(tmp_path)
    a, b, c = _objects(logs, {"a": range(6), "b": range(4, 9), "c": range(2)})
    started = datetime.now(tz=UTC)
    with Lake(spec) as winner:
        commit_objects(winner, [load_object(str(logs), c, started=started)], started=started)
        loads = _written_by_worker(winner, spec, logs, [a])
        counts = _lose_the_race_to(winner, spec, logs, b, loads)
        committed = _committed_files(winner)
    assert _counts(counts) == {"a": (6, 2, 4)}
    assert len(committed) == 3  # c's, b's and a's two rows
    assert _files_on_disk(tmp_path / "lake") == committed
    assert read_all(spec, STORED) == [(9, 9)]


def test_a_task_on_another_machine_than_the_folder_s_returns_its_rows(tmp_path: Path) -> None:
    """A folder warehouse is on the driver's machine: a task running elsewhere (its host
    not the target's) writes nothing, where the table's readers would never see it, and
    returns its rows; the driver writes them."""
    logs, spec = tmp_path / "logs", lake_spec(tmp_path)
    objects = _objects(logs, {"a": range(4), "b": range(4, 9)})
    started = datetime.now(tz=UTC)
    with Lake(spec) as lake:
        target = DataFileTarget.of(lake.fact("requests"), spec)
        assert (target.host, target.reachable()) == (socket.gethostname(), True)
        elsewhere = replace(target, host=f"not-{socket.gethostname()}")
        loads = load_objects(str(logs), objects, files=elsewhere, started=started)
        assert [(load.rows.num_rows, load.files) for load in loads if load.rows] == [
            (4, ()),
            (5, ()),
        ]
        assert not _files_on_disk(tmp_path / "lake")
        counts = commit_objects(lake, loads, started=started, reloaded=False)
        committed = _committed_files(lake)
    assert _counts(counts) == {"a": (4, 4, 0), "b": (5, 5, 0)}
    assert _files_on_disk(tmp_path / "lake") == committed and len(committed) == 1


@pytest.mark.usefixtures("aws_env")
def test_workers_write_to_s3_with_the_keys_of_their_own_environment(
    tmp_path: Path, bucket: Bucket
) -> None:
    """The target carries the endpoint and the names of the key variables; the worker
    reads the keys from its environment (``aws_env``'s) and writes to the bucket."""
    spec = lake_spec(tmp_path, location=f"s3://{bucket.name}/aigw", endpoint=bucket.endpoint)
    logs = tmp_path / "logs"
    objects = _objects(logs, {"a": range(4), "b": range(2, 7)})
    with Lake(spec) as lake:
        target = DataFileTarget.of(lake.fact("requests"), spec)
        assert "testing" not in repr(target)  # names of variables travel, never keys
        assert (target.host, target.reachable()) == ("", True)  # any machine writes S3
        loads = load_objects(str(logs), objects, files=target, started=datetime.now(tz=UTC))
        counts = commit_objects(lake, loads, started=datetime.now(tz=UTC), reloaded=False)
        committed = _committed_files(lake)
    listed = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix="aigw/")["Contents"]
    on_s3 = {f"s3://{bucket.name}/{item['Key']}" for item in listed}
    assert {key for key in on_s3 if key.endswith(".parquet")} == committed
    assert _counts(counts) == {"a": (4, 4, 0), "b": (5, 3, 2)}
    assert read_all(spec, STORED) == [(7, 7)]


def test_a_chunk_is_split_in_as_many_tasks_as_the_cluster_has_cpus() -> None:
    objects = ["a", "b", "c", "d", "e"]
    assert [list(group) for group in spread(objects, 2)] == [["a", "b", "c"], ["d", "e"]]
    assert [list(group) for group in spread(objects, 8)] == [[name] for name in objects]
    assert [list(group) for group in spread(objects, 0)] == [objects]


@pytest.mark.parametrize("where", ["worker", "in process"])
def test_the_records_of_one_line_are_kept_or_dropped_each_on_its_own(
    tmp_path: Path, where: str
) -> None:
    """b's first line is a REST API page of records 0 and 1 (one line number for both);
    a (record 0) is stored first: b keeps 1 and 2, record 0 is not stored again, and the
    rows are those one in-process run of both stores."""
    logs, spec = tmp_path / "logs", lake_spec(tmp_path / "two")
    day = logs / "20260418"
    write_ndjson(day / "a.log.gz", [_record(0)])
    write_ndjson(
        day / "b.log.gz", [{"success": True, "result": [_record(0), _record(1)]}, _record(2)]
    )
    a, b = sorted(open_source(str(logs)).list_objects(), key=lambda obj: obj.key)
    started = datetime.now(tz=UTC)
    with Lake(spec) as lake:
        commit_objects(lake, [load_object(str(logs), a, started=started)], started=started)
        loads = (
            _written_by_worker(lake, spec, logs, [b])
            if where == "worker"
            else [load_object(str(logs), b, started=started)]
        )
        assert loads[0].row_keys()["source_line"].to_pylist() == [1, 1, 2]
        counts = commit_objects(lake, loads, started=started)
    assert _counts(counts) == {"b": (3, 2, 1)}
    assert read_all(spec, STORED) == [(3, 3)]
    once = lake_spec(tmp_path / "one")
    with Lake(once) as lake:
        ingest_lake(open_source(str(logs)), lake)
    assert read_all(spec, ROW_QUERY) == read_all(once, ROW_QUERY)


def _record(n: int) -> dict[str, Any]:
    return logpush_record(Metadata={"n": n}, Timestamp=BASE_NS + n * 1000)


class _RefusesDeletes:
    """A store's file IO under an append-only role: every delete refused."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def delete(self, path: str) -> None:
        self.asked.append(path)
        raise PermissionError(f"{path}: AccessDenied")


def test_a_file_the_store_will_not_delete_is_left_to_maintenance() -> None:
    """Cleaning up after a commit is best effort: each file is tried, none raises (the
    commit stands; ``aigw maintain`` deletes them later)."""
    io = _RefusesDeletes()
    files = [SimpleNamespace(file_path=f"s3://bucket/aigw/{name}.parquet") for name in "ab"]
    delete_files(io, files)
    assert io.asked == ["s3://bucket/aigw/a.parquet", "s3://bucket/aigw/b.parquet"]


@pytest.mark.usefixtures("aws_env")
def test_maintenance_on_s3_deletes_the_replaced_files_and_keeps_those_awaiting_a_commit(
    tmp_path: Path, bucket: Bucket
) -> None:
    """On S3 (under a key with a space and ``=``), ``aigw maintain --older-than 0m``
    compacts the day's three files into one and deletes the three (the table's names and
    the bucket's listing are compared right); the file a worker wrote for a commit still
    to come stays, and after that commit every row reads back."""
    spec = lake_spec(tmp_path, location=f"s3://{bucket.name}/a b=1/aigw", endpoint=bucket.endpoint)
    logs = tmp_path / "logs"
    spans = {"a": range(4), "b": range(4, 8), "c": range(8, 12), "d": range(12, 15)}
    *stored, waiting = _objects(logs, spans)
    with Lake(spec) as lake:
        for obj in stored:
            ingest_lake(open_source(str(logs)), lake, objects=[obj])
        loads = _written_by_worker(lake, spec, logs, [waiting])
        result = maintain(lake, older_than=timedelta(0), max_small_files=2)
        requests = {t.name: t for t in result.tables}["requests"]
        commit_objects(lake, loads, started=datetime.now(tz=UTC))
        committed = _committed_files(lake)
    assert (requests.files_before, requests.files_after, requests.deleted) == (3, 1, 3)
    listed = bucket.client.list_objects_v2(Bucket=bucket.name, Prefix="a b=1/aigw/")["Contents"]
    on_s3 = {f"s3://{bucket.name}/{item['Key']}" for item in listed}
    assert {key for key in on_s3 if key.endswith(".parquet")} == committed
    assert len(committed) == 2  # the compacted file and the worker's
    assert read_all(spec, STORED) == [(15, 15)]
