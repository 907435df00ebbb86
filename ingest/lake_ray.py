"""The per-object engine on Ray: each object is a Ray task running ``load_object``.

The driver submits a chunk's tasks before it commits the previous chunk (``submit``), so
that the workers parse while the driver deduplicates, writes and commits.

The driver keeps the commits (Iceberg) and the manifest (state database); workers only
read objects and return Arrow tables, which Ray moves without copying through its object
store. ``[engine] address``: ``local`` starts Ray on this machine for the run (stopped at
the end), anything else joins that cluster (``auto``, ``ray://host:10001``). A Ray
already started in this process (a test, a notebook) is used as it is.

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
from typing import Any

from core.lake import EngineSpec, require
from ingest.errors import EngineError
from ingest.lake_object import ObjectLoad, load_object
from ingest.sources import StoredObject

__all__ = ["RayRunner"]


class RayRunner:
    """Runs ``load_object`` as Ray tasks, one per object, up to the cluster's CPUs at once.

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
        refs = [self._task.remote(self.source_uri, obj, **options) for obj in objects]
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
        for node, load in results:
            self.nodes[node] += 1
            loads.append(load)
        return loads

    def close(self) -> None:
        self._session.close()


def _load_on_node(source_uri: str, obj: StoredObject, **options: Any) -> tuple[str, ObjectLoad]:
    """What a task runs: ``load_object``, and the id of the node it ran on."""
    ray: Any = require("ray", extra="lake", feature='[engine] kind = "ray"')
    return ray.get_runtime_context().get_node_id(), load_object(source_uri, obj, **options)
