"""``aigw ingest`` into an Iceberg warehouse: list, claim, run the engine, commit in batches.

The driver lists the source and looks the objects up in the state database's manifest;
what is new or changed is claimed there (a lease: see ``core.lake.state``) in chunks of
``EngineSpec.batch_objects``, each chunk read by the per-object engine (in this process,
or on Ray workers: ``ingest.lake_ray``) and committed to Iceberg in two commits
(``ingest.lake_commit``), then recorded in the manifest. Objects another driver holds are
left to it. An object committed by a run that died before its manifest update is
recognised by its snapshot summary and recorded, not loaded again. On Ray
(``AheadRunner``) a chunk is claimed and its loads started before the previous chunk's
commit, so that the workers parse while the driver deduplicates, writes and commits.

Guarantees are those of the DuckDB path: exact counts per object (``loaded + duplicates +
rejected == records``), an object's rows all stored or none (its rows are in one
commit), the same rows and rejects, and a failed object never stops the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from core.lake import EngineSpec
from core.lake.datafiles import DataFileTarget
from core.lake.lake import Lake
from core.lake.state import FileEntry, owner_id
from ingest.lake_commit import commit_objects, committed_objects
from ingest.lake_object import ObjectLoad, load_object
from ingest.loader import BATCH_ROWS, ObjectCounts
from ingest.run import IngestSummary, ObjectResult
from ingest.sources import Source, StoredObject

__all__ = ["AheadRunner", "LocalRunner", "ObjectRunner", "ingest_lake"]


class ObjectRunner(Protocol):
    """Runs ``load_object`` over objects, returning their loads in the same order."""

    def map(self, objects: Sequence[StoredObject], **options: object) -> list[ObjectLoad]: ...

    def close(self) -> None: ...


@runtime_checkable
class AheadRunner(ObjectRunner, Protocol):
    """A runner whose loads run elsewhere (Ray): ``submit`` starts them and returns a
    call that waits for them, so that the driver commits one chunk while the next loads."""

    def submit(
        self, objects: Sequence[StoredObject], **options: object
    ) -> Callable[[], list[ObjectLoad]]: ...


class LocalRunner:
    """The per-object engine in this process, one object after another."""

    def __init__(self, source_uri: str) -> None:
        self.source_uri = source_uri

    def map(self, objects: Sequence[StoredObject], **options: object) -> list[ObjectLoad]:
        return [load_object(self.source_uri, obj, **options) for obj in objects]  # type: ignore[arg-type]

    def close(self) -> None:
        return None


def ingest_lake(
    source: Source,
    lake: Lake,
    *,
    engine: EngineSpec | None = None,
    runner: ObjectRunner | None = None,
    objects: Sequence[StoredObject] | None = None,
    endpoint_url: str | None = None,
    private_key_pem: bytes | None = None,
    batch_rows: int = BATCH_ROWS,
    on_listed: Callable[[int], None] | None = None,
    on_object: Callable[[ObjectResult], None] | None = None,
    stop: threading.Event | None = None,
) -> IngestSummary:
    """Load every new or changed object of ``source`` into ``lake`` (see module).

    ``runner`` defaults to the one ``engine`` names (``LocalRunner`` for ``local``).
    Raises ``SourceError`` if the source cannot be listed and ``WarehouseError`` if the
    lake cannot be written.
    """
    engine = engine or EngineSpec()
    clock = time.monotonic()
    summary = IngestSummary()
    started = summary.started_at
    prefix = source.uri.rstrip("/") + "/"
    if objects is None:
        listed = list(source.list_objects())
        manifest = lake.state.manifest(prefix=prefix)
    else:
        listed = list(objects)
        manifest = lake.state.manifest([obj.key for obj in listed])
    if on_listed is not None:
        on_listed(len(listed))
    done = {
        key: etag for key, (etag, status) in manifest.items() if status in {"loaded", "skipped"}
    }
    fresh = [obj for obj in listed if done.get(obj.key) != obj.etag]
    for obj in listed:
        if done.get(obj.key) == obj.etag:
            _report(summary, ObjectResult(obj.key, "unchanged"), on_object)
    if not fresh:
        summary.seconds = time.monotonic() - clock
        return summary
    owner = owner_id()
    runner = runner or _runner(engine, source.uri)
    options: dict[str, object] = {
        "started": started,
        "endpoint_url": endpoint_url,
        "batch_rows": batch_rows,
    }
    if private_key_pem is not None:
        options["private_key_pem"] = private_key_pem
    driver = _Driver(lake, source.uri, owner, runner, options, manifest, summary, on_object)
    ahead = isinstance(runner, AheadRunner)
    pending: _Chunk | None = None
    try:
        for chunk in _chunks(fresh, engine.batch_objects):
            if stop is not None and stop.is_set():
                summary.stopped = True
                break
            claimed = driver.start(chunk)
            if pending is not None:
                driver.finish(pending)
            pending = claimed
            if not ahead:  # in this process: one chunk claimed at a time
                driver.finish(pending)
                pending = None
        if pending is not None:
            driver.finish(pending)
    finally:
        lake.state.release(owner)
        runner.close()
    summary.seconds = time.monotonic() - clock
    return summary


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A claimed chunk: its manifest entries, the objects a dead driver already committed
    (with their counts) and its loads (``loads()`` waits for them)."""

    entries: dict[str, FileEntry]
    repaired: list[tuple[StoredObject, ObjectCounts]]
    loads: Callable[[], list[ObjectLoad]]


@dataclass(frozen=True, slots=True)
class _Driver:
    """One run's claims, loads and commits, a chunk at a time."""

    lake: Lake
    source_uri: str
    owner: str
    runner: ObjectRunner
    options: dict[str, object]
    manifest: dict[str, tuple[str | None, str]]
    summary: IngestSummary
    on_object: Callable[[ObjectResult], None] | None

    def start(self, chunk: Sequence[StoredObject]) -> _Chunk:
        """Claim ``chunk`` and start loading what this driver holds of it (on an
        ``AheadRunner`` the loads run while the caller commits the previous chunk)."""
        entries = {obj.key: _entry(self.source_uri, obj, "pending") for obj in chunk}
        now = datetime.now(tz=UTC)
        mine = set(self.lake.state.claim(list(entries.values()), self.owner, now=now))
        held = [obj for obj in chunk if obj.key in mine]
        # read after the claim: a driver that died since this run started may have
        # committed an object it held, which this driver now holds
        committed = committed_objects(self.lake) if held else {}
        repaired = [
            (obj, committed[obj.key, obj.etag]) for obj in held if (obj.key, obj.etag) in committed
        ]
        todo = [obj for obj in held if (obj.key, obj.etag) not in committed]
        runner, options = self.runner, self.options
        if not todo:
            return _Chunk(entries, repaired, list)
        if isinstance(runner, AheadRunner):
            # the workers write the rows' data files: the rows never come to this process
            target = DataFileTarget.of(self.lake.fact("requests"), self.lake.spec)
            return _Chunk(entries, repaired, runner.submit(todo, **options, files=target))
        return _Chunk(entries, repaired, lambda: runner.map(todo, **options))

    def finish(self, chunk: _Chunk) -> None:
        """Wait for ``chunk``'s loads, commit its rows and record every object of it."""
        loads = chunk.loads()
        parsed = [load for load in loads if load.status == "parsed"]
        started = self.summary.started_at
        reloaded = any(load.obj.key in self.manifest for load in parsed)
        counts = (
            commit_objects(self.lake, parsed, started=started, reloaded=reloaded) if parsed else {}
        )
        counts |= {obj.key: repaired for obj, repaired in chunk.repaired}
        results = [ObjectResult(obj.key, "loaded", counts[obj.key]) for obj, _ in chunk.repaired]
        results += [_result(load, counts) for load in loads]
        entries = [_finished(self.source_uri, chunk.entries, result) for result in results]
        self.lake.state.finish(entries, self.owner, started=started)
        for result in results:
            _report(self.summary, result, self.on_object)


def _runner(engine: EngineSpec, source_uri: str) -> ObjectRunner:
    if engine.kind == "ray":
        from ingest.lake_ray import RayRunner  # noqa: PLC0415 - the lake extra, on demand

        return RayRunner(engine, source_uri)
    return LocalRunner(source_uri)


def _chunks(items: Sequence[StoredObject], size: int) -> Iterator[Sequence[StoredObject]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _entry(source: str, obj: StoredObject, status: str) -> FileEntry:
    return FileEntry(obj.key, source, obj.size, obj.etag, obj.mtime, status)


def _result(load: ObjectLoad, counts: dict[str, ObjectCounts]) -> ObjectResult:
    if load.status == "parsed":
        return ObjectResult(load.obj.key, "loaded", counts[load.obj.key])
    return ObjectResult(load.obj.key, load.status, error=load.error, detail=load.detail)


def _finished(source: str, entries: dict[str, FileEntry], result: ObjectResult) -> FileEntry:
    base = entries[result.key]
    c = result.counts
    return FileEntry(
        base.key,
        source,
        base.size,
        base.etag,
        base.mtime,
        result.status,
        records=c.records,
        loaded=c.loaded,
        duplicates=c.duplicates,
        rejected=c.rejected,
        error=result.error,
    )


def _report(
    summary: IngestSummary, result: ObjectResult, on_object: Callable[[ObjectResult], None] | None
) -> None:
    summary.add(result)
    if on_object is not None:
        on_object(result)
