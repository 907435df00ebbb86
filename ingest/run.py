"""One ingest run: list a source, load what is new or changed, report.

Incremental: an object whose etag (S3) or size and mtime (folder) matches a
``loaded`` or ``skipped`` entry in ``ingest_files`` is not read again; a
``failed`` one is retried on every run. A failed object never stops the run;
a warehouse or listing error does (it raises). A set ``stop`` event ends the run
between objects: the object in hand commits, the rest wait for the next run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.warehouse import Warehouse
from ingest.decrypt import Decryptor
from ingest.errors import ObjectReadError
from ingest.loader import BATCH_ROWS, ObjectCounts, record_object, store_object
from ingest.prefetch import Prefetcher
from ingest.quality import QualityReport
from ingest.sources import Source, StoredObject, is_log_object

__all__ = ["IngestSummary", "ObjectResult", "ingest"]


@dataclass(frozen=True, slots=True)
class ObjectResult:
    """The outcome for one object: ``loaded``, ``unchanged``, ``skipped`` or ``failed``."""

    key: str
    status: str
    counts: ObjectCounts = field(default_factory=ObjectCounts)
    error: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class IngestSummary:
    """Totals of one run. Row counts cover the objects read in this run only."""

    objects_seen: int = 0
    loaded: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    records: int = 0
    rows_loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    decrypt_errors: int = 0
    locked_metadata: int = 0  # rows whose Metadata stayed encrypted (no key given)
    seconds: float = 0.0
    failures: list[ObjectResult] = field(default_factory=list)
    # The run's start: every row it loaded has this ``ingested_at``.
    started_at: datetime = field(default_factory=lambda: datetime.now(tz=UTC))
    loaded_keys: list[str] = field(default_factory=list)  # objects whose rows this run stored
    stopped: bool = False  # a stop request ended the run before its last object
    quality: QualityReport | None = None  # the data-quality gate's check of the new rows

    @property
    def rows_per_second(self) -> float:
        """Records read per second of wall time (0 when nothing was read)."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def add(self, result: ObjectResult) -> None:
        """Count one object's outcome."""
        self.objects_seen += 1
        if result.status == "loaded":
            self.loaded += 1
            self.loaded_keys.append(result.key)
        elif result.status == "unchanged":
            self.unchanged += 1
        elif result.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(result)
        self.records += result.counts.records
        self.rows_loaded += result.counts.loaded
        self.duplicates += result.counts.duplicates
        self.rejected += result.counts.rejected
        self.decrypt_errors += result.counts.decrypt_errors
        self.locked_metadata += result.counts.locked_metadata


def ingest(
    source: Source,
    warehouse: Warehouse,
    *,
    objects: Sequence[StoredObject] | None = None,
    batch_rows: int = BATCH_ROWS,
    on_listed: Callable[[int], None] | None = None,
    on_object: Callable[[ObjectResult], None] | None = None,
    decryptor: Decryptor | None = None,
    stop: threading.Event | None = None,
    sql: bool = False,
) -> IngestSummary:
    """Load every new or changed object of ``source`` into ``warehouse``.

    ``objects`` (a watcher's listing or notifications) replaces the full listing;
    only those objects are then looked up in ``ingest_files``. With a
    ``decryptor``, encrypted Logpush fields are opened (``ingest.records``). ``sql``
    normalises in DuckDB SQL where it can (``ingest.engine``; same rows and rejects).

    ``on_listed(n)`` is called once the listing is complete; ``on_object`` after
    each object is committed. When ``stop`` is set, the run ends after the object
    in hand (``summary.stopped``). Raises ``SourceError`` if the source cannot be
    listed and ``WarehouseError`` if the warehouse cannot be written.
    """
    clock = time.monotonic()
    summary = IngestSummary()
    started = summary.started_at
    if objects is None:
        with warehouse.errors():
            rows = warehouse.con.execute(
                "SELECT object_key, etag, status FROM ingest_files "
                "WHERE starts_with(object_key, ?)",
                [source.uri.rstrip("/") + "/"],
            ).fetchall()
        objects = list(source.list_objects())
    else:
        with warehouse.errors():
            rows = warehouse.con.execute(
                "SELECT object_key, etag, status FROM ingest_files "
                "WHERE object_key IN (SELECT unnest(?::VARCHAR[]))",  # a hash join
                [[obj.key for obj in objects]],
            ).fetchall()
    seen = {key: (etag if status != "failed" else None) for key, etag, status in rows}
    if on_listed is not None:
        on_listed(len(objects))
    fresh = [obj for obj in objects if seen.get(obj.key) != obj.etag]
    prefetcher = Prefetcher(
        source,
        [obj for obj in fresh if is_log_object(obj.key)],
        batch_rows,
        decryptor=decryptor,
        sql=sql,
    )
    try:
        for obj in objects:
            if stop is not None and stop.is_set():
                summary.stopped = True
                break
            if seen.get(obj.key) == obj.etag:
                result = ObjectResult(obj.key, "unchanged")
            else:
                result = _ingest_object(
                    warehouse, source.uri, obj, prefetcher, started, seen_before=obj.key in seen
                )
            summary.add(result)
            if on_object is not None:
                on_object(result)
    finally:
        prefetcher.close()
    summary.seconds = time.monotonic() - clock
    return summary


def _ingest_object(
    warehouse: Warehouse,
    source: str,
    obj: StoredObject,
    prefetcher: Prefetcher,
    started: datetime,
    *,
    seen_before: bool,
) -> ObjectResult:
    with warehouse.errors():
        if not is_log_object(obj.key):
            record_object(
                warehouse.con,
                obj,
                source=source,
                status="skipped",
                error="not a log file",
                started=started,
            )
            return ObjectResult(obj.key, "skipped")
        try:
            counts = store_object(
                warehouse.con,
                obj,
                prefetcher.batches(obj),
                source=source,
                started=started,
                seen_before=seen_before,
            )
        except ObjectReadError as err:
            record_object(
                warehouse.con,
                obj,
                source=source,
                status="failed",
                error=str(err),
                started=started,
            )
            return ObjectResult(obj.key, "failed", error=str(err), detail=err.detail)
    return ObjectResult(obj.key, "loaded", counts)
