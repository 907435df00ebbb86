"""Ingest into an Iceberg warehouse with the per-object engine on Ray: Ray started here
(``ray.init``), then a two-node cluster on this machine (``ray.cluster_utils.Cluster``):
the same rows, rejects and counts as the local engine, objects spread over both nodes, and
a worker node removed in the middle of a run with nothing lost and nothing doubled.

The two Rays cannot share a process, so each lives in a class-scoped fixture: the first
is shut down before the second starts.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

import ingest
from core.lake import EngineSpec, LakeSpec
from core.lake.lake import Lake
from core.warehouse import open_warehouse
from ingest import IngestSettings, IngestSummary, run_ingest
from ingest.errors import EngineError
from ingest.lake import LocalRunner, ObjectRunner, ingest_lake
from ingest.lake_object import ObjectLoad
from ingest.lake_ray import RayRunner
from ingest.sources import StoredObject, open_source
from models import ModelsSettings, refresh_rollups
from tests.conftest import REPO, logpush_record, write_ndjson
from tests.ingest.test_decrypt import pem, sealed_record
from tests.ingest.test_lake import MANIFEST
from tests.lake_fixtures import ROW_QUERY, lake_spec, read_all
from tests.models.test_rollups_lake import COSTS, DAILY, HOURLY

SAMPLES = REPO / "sample_data" / "logs"
REJECTS = "SELECT source_file, line_number, raw_line, raw_truncated, reason FROM rejects"
RAY_OPTIONS: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}


def _ingest(source: Path, spec: LakeSpec, runner: ObjectRunner, batch: int) -> IngestSummary:
    with Lake(spec) as lake:
        return ingest_lake(
            open_source(str(source)), lake, engine=EngineSpec(batch_objects=batch), runner=runner
        )


def _counts(summary: IngestSummary) -> tuple[int, ...]:
    return (
        summary.loaded,
        summary.skipped,
        summary.failed,
        summary.unchanged,
        summary.rows_loaded,
        summary.duplicates,
        summary.rejected,
    )


def _slow_objects(root: Path, objects: int, records: int) -> None:
    """``objects`` objects of ``records`` distinct records each (10 000 take a warm worker
    about 0.7 s to load)."""
    base = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z
    for index in range(objects):
        write_ndjson(
            root / "20260418" / f"part-{index:02}.log.gz",
            [
                logpush_record(Metadata={"team": "search", "n": n}, Timestamp=base + n * 1000)
                for n in range(index * records, (index + 1) * records)
            ],
        )


class _KillLoads:
    """Kills, until stopped, every worker of this driver's Ray node that runs an object's
    load (its process title is ``ray::_load_on_node``); ``killed`` holds their pids."""

    def __init__(self) -> None:
        self.raylet = ray._private.worker.global_worker.node.all_processes["raylet"][0].process.pid
        self.killed: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _KillLoads:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for pid in set(self._loading_workers()) - self.killed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                self.killed.add(pid)

    def _loading_workers(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == self.raylet and title.startswith(b"ray::_load_on_node"):
                found.append(int(entry.name))
        return found


class _ManifestAtSubmit(RayRunner):
    """The Ray runner, noting at each ``submit`` how many objects the manifest holds as
    claimed (``pending``) and as recorded (loaded or skipped)."""

    def __init__(self, spec: LakeSpec, source_uri: str) -> None:
        super().__init__(EngineSpec(kind="ray"), source_uri)
        self.spec = spec
        self.seen: list[tuple[int, int]] = []

    def submit(
        self, objects: Sequence[StoredObject], **options: object
    ) -> Callable[[], list[ObjectLoad]]:
        with Lake(self.spec) as lake:
            statuses = [
                status for _, status in lake.state.manifest(prefix=self.source_uri).values()
            ]
        recorded = sum(status in {"loaded", "skipped"} for status in statuses)
        self.seen.append((statuses.count("pending"), recorded))
        return super().submit(objects, **options)


class _KeepsLoads(RayRunner):
    """The Ray runner, keeping every load it returns in ``loads``."""

    def __init__(self, source_uri: str) -> None:
        super().__init__(EngineSpec(kind="ray"), source_uri)
        self.loads: list[ObjectLoad] = []

    def submit(
        self, objects: Sequence[StoredObject], **options: object
    ) -> Callable[[], list[ObjectLoad]]:
        wait = super().submit(objects, **options)

        def kept() -> list[ObjectLoad]:
            loads = wait()
            self.loads.extend(loads)
            return loads

        return kept


@ray.remote
def _ingest_module_file() -> str:
    return str(ingest.__file__)


@pytest.fixture(scope="class")
def local_ray() -> Iterator[None]:
    """Ray on this machine with two CPUs, for the tests of one class."""
    ray.init(num_cpus=2, include_dashboard=False, **RAY_OPTIONS)
    yield
    ray.shutdown()


@pytest.mark.usefixtures("local_ray")
class TestRayStartedHere:
    def test_workers_import_the_same_aigw_as_the_driver(self) -> None:
        """A worker runs this checkout's code, not another install of aigw."""
        assert ray.get(_ingest_module_file.remote()) == ingest.__file__

    def test_same_rows_rejects_and_counts_as_the_local_engine(self, tmp_path: Path) -> None:
        on_ray, local = lake_spec(tmp_path / "ray"), lake_spec(tmp_path / "local")
        runner = RayRunner(EngineSpec(kind="ray"), str(SAMPLES))
        summary = _ingest(SAMPLES, on_ray, runner, batch=3)
        expected = _ingest(SAMPLES, local, LocalRunner(str(SAMPLES)), batch=3)

        assert _counts(summary) == _counts(expected) == (8, 1, 0, 0, 960, 150, 1)
        assert sum(runner.nodes.values()) == 9  # every object, the skipped one too
        assert ray.is_initialized()  # a Ray the runner did not start is left running
        assert read_all(on_ray, ROW_QUERY) == read_all(local, ROW_QUERY)
        assert read_all(on_ray, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [
            (960, 960)
        ]
        assert read_all(on_ray, REJECTS) == read_all(local, REJECTS)
        assert (
            read_all(on_ray, MANIFEST)
            == read_all(local, MANIFEST)
            == [("loaded", 8, 1111, 960, 150, 1), ("skipped", 1, 0, 0, 0, 0)]
        )

    def test_the_workers_write_the_data_files_the_driver_commits(self, tmp_path: Path) -> None:
        """Two CPUs: a chunk of four objects runs as two tasks, each writing its two
        objects' rows as one file; the rows never come to the driver, the commit adds
        exactly those two files."""
        logs, spec = tmp_path / "logs", lake_spec(tmp_path)
        _slow_objects(logs, objects=4, records=1_000)
        runner = _KeepsLoads(str(logs))
        summary = _ingest(logs, spec, runner, batch=4)

        assert _counts(summary) == (4, 0, 0, 0, 4_000, 0, 0)
        assert [(load.rows, load.keys.num_rows) for load in runner.loads] == [(None, 1_000)] * 4
        written = {data_file.file_path for load in runner.loads for data_file in load.files}
        assert len(written) == 2
        with Lake(spec) as lake:
            plan = lake.table("requests").scan().plan_files()
            assert {task.file.file_path for task in plan} == written
        assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [
            (4_000, 4_000)
        ]

    def test_encrypted_fields_are_opened_on_the_workers_with_the_driver_s_key(
        self, tmp_path: Path
    ) -> None:
        """The private key reaches the workers with each task (never as a stored Ray
        object): metadata and usage opened as the local engine opens them, a record
        sealed for another key kept with its reason."""
        logs = tmp_path / "logs"
        write_ndjson(logs / "20260418" / "a.log.gz", [sealed_record(), sealed_record()])
        write_ndjson(logs / "20260418" / "b.log.gz", [sealed_record("other")])
        on_ray, local = lake_spec(tmp_path / "ray"), lake_spec(tmp_path / "local")
        key = pem("gateway")
        for spec, runner in (
            (on_ray, RayRunner(EngineSpec(kind="ray"), str(logs))),
            (local, LocalRunner(str(logs))),
        ):
            with Lake(spec) as lake:
                summary = ingest_lake(
                    open_source(str(logs)), lake, runner=runner, private_key_pem=key
                )
            assert (summary.rows_loaded, summary.decrypt_errors) == (3, 1)
        opened = (
            "SELECT metadata->>'team', tokens_in, tokens_out, cache_read_tokens, "
            "decrypt_error IS NULL FROM requests ORDER BY source_file, source_line"
        )
        assert read_all(on_ray, opened) == read_all(local, opened)
        assert read_all(on_ray, opened)[:2] == [("search", 1200, 80, 1000, True)] * 2
        assert read_all(on_ray, ROW_QUERY) == read_all(local, ROW_QUERY)

    def test_the_next_chunk_loads_while_the_driver_commits_the_previous_one(
        self, tmp_path: Path
    ) -> None:
        """Each chunk's loads start on Ray before the previous chunk is committed and
        recorded (the driver's commit overlaps the workers' parse), one chunk ahead only;
        every object is still loaded once, with the local engine's counts."""
        spec = lake_spec(tmp_path)
        runner = _ManifestAtSubmit(spec, str(SAMPLES))
        summary = _ingest(SAMPLES, spec, runner, batch=3)

        assert _counts(summary) == (8, 1, 0, 0, 960, 150, 1)
        # (claimed, recorded) objects when chunks 1, 2 and 3 were submitted
        assert runner.seen == [(3, 0), (6, 0), (6, 3)]
        assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [
            (960, 960)
        ]

    def test_rollups_on_ray_equal_the_duckdb_warehouse_s(self, tmp_path: Path) -> None:
        """One Ray task per day prices and rolls up what the DuckDB file does."""
        spec = dataclasses.replace(lake_spec(tmp_path), engine=EngineSpec(kind="ray"))
        duck = tmp_path / "aigw.duckdb"
        for target in (spec, duck):
            run_ingest(IngestSettings(source=str(SAMPLES), db_path=target, quality="off"))
            with open_warehouse(target) as warehouse:
                refresh_rollups(warehouse, ModelsSettings())
        for query in (HOURLY, DAILY, COSTS):
            assert read_all(spec, query) == read_all(duck, query)
        assert (len(read_all(spec, HOURLY)), len(read_all(spec, COSTS))) == (551, 960)

    def test_a_load_lost_through_every_retry_fails_the_run_cleanly(self, tmp_path: Path) -> None:
        """Workers killed four times (a task and its three retries): an ``EngineError``,
        nothing stored, the claim released (else this live process would hold it and the
        rerun skip it); the rerun loads everything once."""
        logs, spec = tmp_path / "logs", lake_spec(tmp_path)
        _slow_objects(logs, objects=1, records=10_000)
        with _KillLoads() as killer, pytest.raises(EngineError) as failed:
            _ingest(logs, spec, RayRunner(EngineSpec(kind="ray"), str(logs)), batch=1)
        assert len(killer.killed) == 4
        assert "\n" not in str(failed.value)
        assert read_all(spec, "SELECT status, count(*) FROM ingest_files GROUP BY ALL") == [
            ("pending", 1)
        ]

        rerun = _ingest(logs, spec, RayRunner(EngineSpec(kind="ray"), str(logs)), batch=1)
        assert _counts(rerun) == (1, 0, 0, 0, 10_000, 0, 0)
        assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [
            (10_000, 10_000)
        ]
        assert read_all(spec, MANIFEST) == [("loaded", 1, 10_000, 10_000, 0, 0)]


def _wait_until_dead(node_id: str, seconds: float = 60.0) -> None:
    """Wait until Ray reports node ``node_id`` dead; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while node_id in {node["NodeID"] for node in ray.nodes() if node["Alive"]}:
        assert time.monotonic() < deadline, f"node {node_id} still alive after {seconds:.0f} s"
        time.sleep(0.2)


class _RemoveNodeDuringMap:
    """The Ray runner, with ``node`` removed from ``cluster`` 0.02 s into its
    ``at``-th ``map``; ``per_map`` is each map's objects by node id."""

    def __init__(self, runner: RayRunner, cluster: Cluster, node: Any, *, at: int) -> None:
        self.runner, self.cluster, self.node, self.at = runner, cluster, node, at
        self.calls = 0
        self.per_map: list[Counter[str]] = []
        self.removal_began_in_map = False
        self._began = threading.Event()

    def _remove(self) -> None:
        self._began.set()
        self.cluster.remove_node(self.node, allow_graceful=False)

    def map(self, objects: Sequence[StoredObject], **options: object) -> list[ObjectLoad]:
        self.calls += 1
        timer = threading.Timer(0.02, self._remove) if self.calls == self.at else None
        before = self.runner.nodes.copy()
        if timer is not None:
            timer.start()
        loads = self.runner.map(objects, **options)
        if timer is not None:
            self.removal_began_in_map = self._began.is_set()
            timer.join()
        self.per_map.append(self.runner.nodes - before)
        return loads

    def close(self) -> None:
        self.runner.close()


@pytest.fixture(scope="class")
def cluster() -> Iterator[tuple[Cluster, Any]]:
    """A head and a worker node with one CPU each, for the tests of one class, and the
    worker node."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            # a removed node is known dead in about a second, not 30
            "_system_config": {
                "health_check_initial_delay_ms": 0,
                "health_check_period_ms": 300,
                "health_check_failure_threshold": 3,
            },
        },
    )
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, **RAY_OPTIONS)
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


class TestTwoNodes:
    """Head and worker node with one CPU each; the last test removes the worker."""

    def test_objects_run_on_both_nodes(self, cluster: tuple[Cluster, Any], tmp_path: Path) -> None:
        head, worker = cluster[0].head_node.node_id, cluster[1].node_id
        runner = RayRunner(EngineSpec(kind="ray"), str(SAMPLES))
        summary = _ingest(SAMPLES, lake_spec(tmp_path), runner, batch=9)

        assert _counts(summary) == (8, 1, 0, 0, 960, 150, 1)
        assert set(runner.nodes) == {head, worker}
        assert sum(runner.nodes.values()) == 9

    def test_a_worker_node_removed_mid_run_loses_and_doubles_nothing(
        self, cluster: tuple[Cluster, Any], tmp_path: Path
    ) -> None:
        head, worker = cluster[0].head_node.node_id, cluster[1].node_id
        logs, spec = tmp_path / "logs", lake_spec(tmp_path)
        _slow_objects(logs, objects=6, records=30_000)
        # chunks of two objects, one per node; the worker goes 0.02 s into the second (a load of
        # 30,000 records takes a warm worker about 0.2 s here: it cannot have ended)
        faulty = _RemoveNodeDuringMap(
            RayRunner(EngineSpec(kind="ray"), str(logs)), cluster[0], cluster[1], at=2
        )
        summary = _ingest(logs, spec, faulty, batch=2)

        assert faulty.removal_began_in_map
        _wait_until_dead(worker)  # Ray marks a killed node dead at its next health check
        assert faulty.per_map[0] == Counter({head: 1, worker: 1})
        assert faulty.per_map[1] == Counter({head: 2})  # the worker's object, run again
        assert faulty.per_map[2] == Counter({head: 2})
        assert _counts(summary) == (6, 0, 0, 0, 180_000, 0, 0)

        rerun = _ingest(logs, spec, RayRunner(EngineSpec(kind="ray"), str(logs)), batch=2)
        assert _counts(rerun) == (0, 0, 0, 6, 0, 0, 0)
        assert read_all(spec, "SELECT count(*), count(DISTINCT log_id) FROM requests") == [
            (180_000, 180_000)
        ]
        assert read_all(spec, MANIFEST) == [("loaded", 6, 180_000, 180_000, 0, 0)]
        assert read_all(
            spec, "SELECT source_file, count(*) FROM requests GROUP BY ALL ORDER BY 1"
        ) == [(str(logs / "20260418" / f"part-{i:02}.log.gz"), 30_000) for i in range(6)]
