"""The lakehouse with its state database and SQL catalog on PostgreSQL (a throwaway
cluster: tests/postgres_server.py), several drivers at once: claims are exclusive under
real concurrency (``FOR UPDATE SKIP LOCKED``), also when taking over a dead driver's
claim; a table two drivers create at once is one table; an Iceberg append that lost a
commit race is deduplicated again against the winner's rows; an object a dead driver
committed is recorded, not reloaded; and two ingest drivers started together on one
source load each object once: nothing doubled, nothing lost."""

from __future__ import annotations

import itertools
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from core.lake import EngineSpec, LakeSpec
from core.lake.lake import Lake
from core.lake.state import FileEntry, StateDB, owner_id
from core.warehouse import open_warehouse
from ingest import IngestSettings, run_ingest
from ingest.lake import LocalRunner, ingest_lake
from ingest.lake_commit import commit_objects, committed_objects
from ingest.lake_object import ObjectLoad, load_object
from ingest.sources import StoredObject, open_source
from tests.conftest import REPO, logpush_record, write_ndjson
from tests.ingest.lake_workers import claim_keys, entry, ingest_once, run_together
from tests.lake_fixtures import LosesTheRace
from tests.postgres_server import create_database, run_postgres_server

SAMPLES = REPO / "sample_data" / "logs"
MANIFEST = (
    "SELECT status, count(*), sum(records), sum(rows_loaded), sum(rows_duplicate), "
    "sum(rows_rejected), max(attempts) FROM ingest_files GROUP BY ALL ORDER BY 1"
)
T = TypeVar("T")
_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """One PostgreSQL server for the module; each test makes its own databases."""
    with run_postgres_server() as url:
        yield url


def _database(server: str) -> str:
    return create_database(server, f"t{next(_names)}")


def _pg_lake(server: str, root: Path) -> LakeSpec:
    """An Iceberg warehouse whose catalog and state database are PostgreSQL databases."""
    return LakeSpec(
        location=str(root / "lake"),
        state=_database(server),
        catalog={"type": "sql", "uri": _database(server)},
    )


def _holder(url: str, key: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            query = sa.text("SELECT claimed_by FROM ingest_files WHERE object_key = :key")
            return con.execute(query, {"key": key}).scalar_one()
    finally:
        engine.dispose()


def test_a_claim_locks_with_for_update_skip_locked(server: str) -> None:
    state = StateDB(_database(server))
    sent: list[str] = []
    sa.event.listen(state.engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    try:
        claimed = state.claim([entry("a"), entry("b")], owner_id(), now=datetime.now(tz=UTC))
    finally:
        state.close()
    assert claimed == ["a", "b"]
    locking = [sql for sql in sent if "FOR UPDATE" in sql]
    assert len(locking) == 1
    assert locking[0].rstrip().endswith("FOR UPDATE SKIP LOCKED")


def test_two_processes_opening_a_new_state_database_claim_each_of_200_objects_once(
    server: str,
) -> None:
    url = _database(server)  # empty: both processes create the tables at once
    keys = [f"s3://logs/2026/04/18/{i:03}.log.gz" for i in range(200)]
    first, second = run_together(claim_keys, url, keys)
    assert len(first) + len(second) == 200
    assert sorted(first + second) == keys
    state = StateDB(url)
    try:
        rows = state.rows("ingest_files")
    finally:
        state.close()
    assert len(rows) == 200
    assert {(row[5], row[11]) for row in rows} == {("loaded", 1)}  # status, attempts


def _dead_owner() -> str:
    """The owner id of a process of this machine that has exited."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return f"{socket.gethostname()[:32]}:{gone.pid}:exited"


def _wait_for_a_lock_wait(url: str) -> None:
    """Return once a session of ``url``'s database waits for a row lock."""
    engine = sa.create_engine(url)
    waiting = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    try:
        with engine.connect() as con:
            while con.execute(waiting).scalar_one() == 0:
                assert time.monotonic() < deadline, "no session waited for the lock"
                time.sleep(0.02)  # polling PostgreSQL's view: it has no event to wait on
    finally:
        engine.dispose()


def test_an_object_a_driver_took_from_a_dead_one_is_not_taken_again_by_another(
    server: str,
) -> None:
    url = _database(server)
    state = StateDB(url)
    state.claim([entry("k")], _dead_owner(), now=datetime.now(tz=UTC))
    taker = owner_id()  # a live driver of this process
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con, ThreadPoolExecutor(1) as pool:
            # the taker's claim is under way: k is its own, not committed yet
            con.execute(
                sa.text("UPDATE ingest_files SET claimed_by = :owner WHERE object_key = 'k'"),
                {"owner": taker},
            )
            late = pool.submit(state.claim, [entry("k")], owner_id(), now=datetime.now(tz=UTC))
            _wait_for_a_lock_wait(url)  # the late driver waits for the taker's row
            con.commit()
            assert late.result(timeout=30) == []
    finally:
        engine.dispose()
        state.close()
    assert _holder(url, "k") == taker


class _CreatedMeanwhile:
    """A catalog through which a table being created is created by ``rival`` first
    (between the create transaction's start and its commit)."""

    def __init__(self, catalog: Any, rival: Callable[[], object]) -> None:
        self._catalog = catalog
        self._rival = rival

    def create_table_transaction(self, *args: Any, **kwargs: Any) -> Any:
        transaction = self._catalog.create_table_transaction(*args, **kwargs)
        self._rival()
        return transaction

    def __getattr__(self, name: str) -> Any:
        return getattr(self._catalog, name)


def test_a_table_two_drivers_create_at_once_is_the_winners_stored_table(
    server: str, tmp_path: Path
) -> None:
    spec = _pg_lake(server, tmp_path)
    created: list[Any] = []
    with Lake(spec) as winner, Lake(spec) as loser:
        loser.catalog = _CreatedMeanwhile(
            loser.catalog, lambda: created.append(winner.fact("requests"))
        )
        table = loser.fact("requests")
        for each in (table, created[0]):
            each.refresh()  # the stored table, not a staged one (which cannot be refreshed)
    assert table.metadata.table_uuid == created[0].metadata.table_uuid


class _RivalDiesAfterCommitting(LocalRunner):
    """This driver's engine, in process; during its first ``map`` another driver claims
    ``victim``, commits it to Iceberg and dies before recording it in the manifest."""

    def __init__(self, source_uri: str, spec: LakeSpec, victim: StoredObject) -> None:
        super().__init__(source_uri)
        self._spec = spec
        self._victim: StoredObject | None = victim

    def map(self, objects: Sequence[StoredObject], **options: Any) -> list[ObjectLoad]:
        if self._victim is not None:
            victim, self._victim = self._victim, None
            listed = FileEntry(victim.key, self.source_uri, victim.size, victim.etag, None, "")
            with Lake(self._spec) as rival:
                dead = _dead_owner()
                assert rival.state.claim([listed], dead, now=datetime.now(tz=UTC)) == [victim.key]
                load = load_object(self.source_uri, victim, started=datetime.now(tz=UTC))
                commit_objects(rival, [load], started=datetime.now(tz=UTC), reloaded=False)
        return super().map(objects, **options)


def test_an_object_a_dead_driver_committed_during_this_run_is_recorded_not_reloaded(
    server: str, tmp_path: Path
) -> None:
    spec = _pg_lake(server, tmp_path)
    logs = tmp_path / "logs"
    records = [logpush_record(Timestamp=1_776_470_400_000_000_000 + i) for i in range(7)]
    write_ndjson(logs / "20260418" / "a.log.gz", records[:3])
    write_ndjson(logs / "20260418" / "b.log.gz", records[3:])
    source = open_source(str(logs))
    victim = next(obj for obj in source.list_objects() if obj.key.endswith("b.log.gz"))
    runner = _RivalDiesAfterCommitting(source.uri, spec, victim)
    with Lake(spec) as lake:
        summary = ingest_lake(source, lake, engine=EngineSpec(batch_objects=1), runner=runner)
    # b is counted as the dead driver loaded it: 4 rows, not 4 duplicates of its own rows
    assert (summary.loaded, summary.rows_loaded, summary.duplicates) == (2, 7, 0)
    with open_warehouse(spec, read_only=True) as warehouse:
        warehouse.load_manifest()
        con = warehouse.con
        assert con.execute("SELECT count(*), count(DISTINCT log_id) FROM requests").fetchall() == [
            (7, 7)
        ]
        manifest = con.execute(
            "SELECT status, count(*), sum(rows_loaded), sum(rows_duplicate) "
            "FROM ingest_files GROUP BY ALL"
        )
        assert manifest.fetchall() == [("loaded", 2, 7, 0)]


def _two_objects(logs: Path) -> tuple[ObjectLoad, ObjectLoad]:
    """Objects a (records 0-5) and b (records 3-8): three records in both."""
    records = [
        logpush_record(Metadata={"n": i}, Timestamp=1_776_470_400_000_000_000 + i) for i in range(9)
    ]
    write_ndjson(logs / "20260418" / "a.log.gz", records[:6])
    write_ndjson(logs / "20260418" / "b.log.gz", records[3:])
    source = open_source(str(logs))
    started = datetime.now(tz=UTC)
    a, b = (load_object(source.uri, obj, started=started) for obj in source.list_objects())
    return a, b


@pytest.mark.parametrize("table", ["created by the loser", "created before"])
def test_an_append_that_lost_the_commit_race_is_deduplicated_against_the_winner(
    server: str, tmp_path: Path, table: str
) -> None:
    spec = _pg_lake(server, tmp_path)
    load_a, load_b = _two_objects(tmp_path / "logs")
    started = datetime.now(tz=UTC)
    with Lake(spec) as winner:
        if table == "created before":
            winner.fact("requests")

        def rival() -> object:
            return commit_objects(winner, [load_b], started=started, reloaded=False)

        with LosesTheRace(spec, rival) as loser:
            counts = commit_objects(loser, [load_a], started=started, reloaded=False)
        summaries = committed_objects(winner)
    a = counts[load_a.obj.key]
    assert (a.records, a.loaded, a.duplicates, a.rejected) == (6, 3, 3, 0)
    assert {key: (c.loaded, c.duplicates) for (key, _), c in summaries.items()} == {
        load_a.obj.key: (3, 3),
        load_b.obj.key: (6, 0),
    }
    with open_warehouse(spec, read_only=True) as warehouse:
        warehouse.load_manifest()
        stored = warehouse.con.execute("SELECT count(*), count(DISTINCT log_id) FROM requests")
        assert stored.fetchall() == [(9, 9)]
    assert loser.attempts == 2  # the conflict reached our retry, which read b's rows


def test_two_drivers_started_together_load_each_object_once(server: str, tmp_path: Path) -> None:
    spec = _pg_lake(server, tmp_path)
    runs = run_together(
        ingest_once, spec, str(SAMPLES), 2, imports=("ingest", "pyiceberg.catalog.sql")
    )
    total = {name: sum(run[name] for run in runs) for name in runs[0]}
    assert total == {
        "loaded": 8,
        "skipped": 1,
        "failed": 0,
        "rows_loaded": 960,
        "duplicates": 150,
        "rejected": 1,
    }
    rerun = run_ingest(IngestSettings(source=str(SAMPLES), db_path=spec, quality="off"))
    assert (rerun.unchanged, rerun.loaded, rerun.records) == (9, 0, 0)

    with open_warehouse(spec, read_only=True) as warehouse:
        warehouse.load_manifest()
        con = warehouse.con
        assert con.execute("SELECT count(*), count(DISTINCT log_id) FROM requests").fetchall() == [
            (960, 960)
        ]
        assert con.execute("SELECT round(sum(cost), 6) FROM requests").fetchall() == [(1.900609,)]
        assert con.execute("SELECT count(*) FROM rejects").fetchall() == [(1,)]
        assert con.execute(MANIFEST).fetchall() == [
            ("loaded", 8, 1111, 960, 150, 1, 1),
            ("skipped", 1, 0, 0, 0, 0, 1),
        ]
    with Lake(spec) as lake:
        objects = committed_objects(lake)
    assert len(objects) == 8  # each log object named by one commit
    assert sum(c.loaded for c in objects.values()) == 960
    assert sum(c.duplicates for c in objects.values()) == 150
