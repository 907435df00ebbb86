"""The per-object engine on Ray: a chunk's objects split into as many Ray tasks as the
cluster has CPUs, each running ``load_objects`` on its share.

The driver submits a chunk's tasks before it commits the previous chunk (``submit``), so
that the workers parse while the driver deduplicates, writes and commits.

The driver keeps the commits (Iceberg) and the manifest (state database); workers read
objects, write their rows as the table's data files (``core.lake.datafiles``: the driver
passes ``files``) and return the files' descriptions and the rows' keys. A task writes
its share's rows as one set of files: fewer, larger files than one set per object (a
file's fixed cost is about a third of writing 10,000 rows here).

``[engine] address``: ``local`` starts Ray on this machine for the run (stopped at the
end), anything else joins that cluster (``auto``, ``ray://host:10001``). A Ray already
started in this process (a test, a notebook) is used as it is.

A task whose worker or node dies runs again elsewhere (three retries); a load lost
through them all fails the run with ``EngineError``, the objects already committed kept
and the others left for the next run.

Workers import aigw as the driver's machine lays it out: Ray puts the driver's working
directory first on their ``sys.path``, then the installed packages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, TypeVar

from core.lake import EngineSpec, require
from ingest.errors import EngineError
from ingest.lake_object import ObjectLoad, load_objects
from ingest.sources import StoredObject

__all__ = ["RayRunner", "spread"]

T = TypeVar("T")


class RayRunner:
    """Runs ``load_objects`` as Ray tasks, a chunk split in as many as the cluster has CPUs.

    ``nodes`` counts, per Ray node id, the objects whose load the driver got from that
    node (a task retried elsewhere counts where it last ran). Not thread-safe: one run
    at a time.
    """

    def __init__(self, engine: EngineSpec, source_uri: str) -> None:
        from core.lake.ray_session import ray_session  # noqa: PLC0415 - the lake extra

        self.source_uri = source_uri
        self.nodes: Counter[str] = Counter()
        self._session = ExitStack()
        self._ray: Any = self._session.enter_context(ray_session(engine))
        self._task = self._ray.remote(num_cpus=1, max_retries=3)(_load_on_node)

    def map(self, objects: Sequence[StoredObject], **options: object) -> list[ObjectLoad]:
        """Each object's load, in order; a worker or node that dies is retried elsewhere.

        Raises ``EngineError`` when a load is lost through its three retries; an error
        ``load_object`` raises comes as the local engine raises it (Ray's copy is also
        an instance of its type)."""
        return self.submit(objects, **options)()

    def submit(
        self, objects: Sequence[StoredObject], **options: object
    ) -> Callable[[], list[ObjectLoad]]:
        """Start the objects' loads on the cluster now; the call returned waits for them
        and gives what ``map`` gives (the driver commits the previous chunk meanwhile)."""
        # the table's metadata stored once for all the chunk's tasks; the other options
        # stay inline in each task (a private key must not be an object Ray may spill)
        shared = {
            name: self._ray.put(value) if name == "files" else value
            for name, value in options.items()
        }
        cpus = int(self._ray.cluster_resources().get("CPU", 1))
        refs = [
            self._task.remote(self.source_uri, group, **shared) for group in spread(objects, cpus)
        ]
        return lambda: self._collect(refs)

    def _collect(self, refs: list[Any]) -> list[ObjectLoad]:
        exceptions = self._ray.exceptions
        try:
            results = self._ray.get(refs)
        except exceptions.RayTaskError:
            raise
        except exceptions.RayError as err:
            raise EngineError(
                f"Ray lost an object's load through its retries ({type(err).__name__}); "
                "nothing of it is stored, run again",
                detail=str(err),
            ) from err
        loads = []
        for node, group in results:
            self.nodes[node] += len(group)
            loads.extend(group)
        return loads

    def close(self) -> None:
        self._session.close()


def spread(objects: Sequence[T], count: int) -> list[Sequence[T]]:
    """``objects`` in at most ``count`` consecutive groups of nearly equal size (one
    group when ``count`` is below 1)."""
    count = max(1, min(count, len(objects)))
    size, extra = divmod(len(objects), count)
    groups, start = [], 0
    for index in range(count):
        end = start + size + (index < extra)
        groups.append(objects[start:end])
        start = end
    return groups


def _load_on_node(
    source_uri: str, objects: Sequence[StoredObject], **options: Any
) -> tuple[str, list[ObjectLoad]]:
    """What a task runs: ``load_objects``, and the id of the node it ran on."""
    ray: Any = require("ray", extra="lake", feature='[engine] kind = "ray"')
    return ray.get_runtime_context().get_node_id(), load_objects(source_uri, objects, **options)
