"""Watch mode: keep loading objects as Logpush writes them, until asked to stop.

Each poll lists the source from the day before the newest day folder seen
(``list_objects(from_day=…)``: S3 ``StartAfter``, or skipped day folders), so a
poll lists at most two days of keys however long the history; late objects of the
current or previous day are still found. The first poll, and then one poll every
``sweep_seconds``, lists ``late_days`` days back instead, for objects delivered later
still (a gateway's upload that failed and was retried from its spool): the listing is
bounded by that window, never by the history. Objects already handled (held in memory
for the sweep window) are not looked up again. With an SQS queue of S3 notifications
the named objects load as soon as their message arrives, and the listing still
runs every ``list_every`` intervals to catch what notifications missed.

The warehouse is opened only for a batch (load, quality gate, ``after_batch``) and
closed between polls, so another process (the dashboard) can read it in between (an
Iceberg warehouse is always readable: each batch is committed by ``ingest.lake``).
When another process holds it, the watcher waits with a bounded backoff and says
so once (``on_notice``); it never gives up while not stopped.

Stopping: set ``stop`` (the CLI does so on SIGTERM/SIGINT). The object in hand
commits, the batch's quality check and ``after_batch`` still run, then ``watch``
returns. SQS messages are deleted only after their objects are recorded in
``ingest_files``. A failed object is retried after 1, 2, 4… intervals (at most
an hour).

Runs in the calling thread; ``stop`` may be set from any thread or signal handler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from core.lake import LakeSpec
from core.warehouse import Warehouse, attach_snapshot, open_warehouse
from ingest.config import IngestSettings
from ingest.errors import SourceError, WarehouseLocked
from ingest.notifications import Notification, SqsQueue
from ingest.quality import QualityGate
from ingest.run import IngestSummary, ObjectResult, ingest
from ingest.service import check_summary, make_decryptor, private_key_pem
from ingest.sources import S3Bucket, Source, StoredObject, day_of, open_source

__all__ = ["AfterBatch", "PollReport", "WatchSettings", "WatchSummary", "watch"]

_MAX_RETRY_SECONDS: Final = 3600.0
_SQS_WAIT_SECONDS: Final = 5.0  # the longest a stop waits on a long poll

AfterBatch = Callable[[Warehouse, IngestSummary], None]


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """``interval`` seconds between listings (and the wait before a retry);
    ``list_every``: with SQS, list every that many intervals; ``lock_backoff_max``:
    the longest wait between tries to open a warehouse held by another process;
    ``late_days`` and ``sweep_seconds``: how far back, and how often, a sweep lists for
    objects delivered days late (0 or 1: no sweep; polls list the last two days anyway)."""

    interval: float = 30.0
    sqs_queue_url: str | None = None
    list_every: int = 10
    lock_backoff_max: float = 5.0
    late_days: int = 7
    sweep_seconds: float = 3600.0


@dataclass(frozen=True, slots=True)
class PollReport:
    """One poll: keys listed (0 when it did not list), objects named by notifications,
    and objects handed to the loader."""

    listed: int
    notified: int
    new: int
    from_day: str | None


@dataclass(slots=True)
class WatchSummary:
    """Totals over the whole watch: batches run and the sum of their summaries."""

    polls: int = 0
    batches: int = 0
    totals: IngestSummary = field(default_factory=IngestSummary)
    quality_failures: int = 0  # batches whose gate failed (critical expectation, mode fail)

    def add(self, batch: IngestSummary) -> None:
        """Count one batch."""
        self.batches += 1
        for name in (
            "objects_seen",
            "loaded",
            "unchanged",
            "skipped",
            "failed",
            "records",
            "rows_loaded",
            "duplicates",
            "rejected",
            "decrypt_errors",
            "locked_metadata",
            "seconds",
        ):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(batch, name))
        self.totals.failures.extend(batch.failures)
        self.totals.loaded_keys.extend(batch.loaded_keys)
        if batch.quality is not None and batch.quality.gate_failed:
            self.quality_failures += 1


def watch(
    settings: IngestSettings,
    options: WatchSettings,
    *,
    stop: threading.Event,
    after_batch: AfterBatch | None = None,
    on_batch: Callable[[IngestSummary], None] | None = None,
    on_object: Callable[[ObjectResult], None] | None = None,
    on_poll: Callable[[PollReport], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    source: Source | None = None,
    queue: SqsQueue | None = None,
) -> WatchSummary:
    """Poll ``settings.source`` until ``stop`` is set; load each poll's new objects as
    one batch. ``source`` and ``queue`` may be passed in (tests, other clients);
    otherwise they are made from the settings.

    ``on_batch(summary)`` then ``after_batch(warehouse, summary)`` run after each
    batch's load and quality check, with the warehouse still open (rollups, alerts).

    Raises ``SourceError`` for a source that cannot be used (a transient one is
    reported through ``on_notice`` and retried next poll), ``WarehouseError`` (other
    than a lock) and ``QualityGateError``.
    """
    source = source or open_source(settings.source, endpoint_url=settings.endpoint_url)
    if queue is None and options.sqs_queue_url is not None:
        if not isinstance(source, S3Bucket):
            raise SourceError("--sqs-queue-url needs an s3:// source", source=source.uri)
        queue = SqsQueue(options.sqs_queue_url, source)
    watcher = _Watcher(
        settings, options, source, queue=queue, stop=stop, notice=on_notice or (lambda _: None)
    )
    watcher.after_batch = after_batch
    watcher.on_batch = on_batch
    watcher.on_object = on_object
    summary = watcher.summary
    next_listing = time.monotonic()
    with _engine_session(settings):
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_listing:
                spacing = options.interval * (options.list_every if queue is not None else 1)
                next_listing = now + spacing
                report = watcher.poll_listing()
            elif queue is not None:
                report = watcher.poll_queue(queue, min(_SQS_WAIT_SECONDS, next_listing - now))
            else:
                stop.wait(next_listing - now)
                continue
            summary.polls += 1
            if on_poll is not None and report is not None:
                on_poll(report)
    return summary


@contextmanager
def _engine_session(settings: IngestSettings) -> Iterator[None]:
    """For an Iceberg warehouse run by Ray, one Ray session for the whole watch: every
    batch's loads and rollup refresh use it (and its warm workers). Each batch started
    and stopped its own before: 7-9 s a batch on this machine."""
    target = settings.db_path
    if not isinstance(target, LakeSpec) or target.engine.kind != "ray":
        yield
        return
    from core.lake.ray_session import ray_session  # noqa: PLC0415 - the lake extra

    with ray_session(target.engine):
        yield


class _Watcher:
    """The state between polls: handled keys of the listing window, failed keys'
    retry times, the newest day folder seen, and the quality gate."""

    def __init__(
        self,
        settings: IngestSettings,
        options: WatchSettings,
        source: Source,
        *,
        queue: SqsQueue | None,
        stop: threading.Event,
        notice: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.options = options
        self.source = source
        self.queue = queue
        self.stop = stop
        self.notice = notice
        self.summary = WatchSummary()
        self.after_batch: AfterBatch | None = None
        self.on_batch: Callable[[IngestSummary], None] | None = None
        self.on_object: Callable[[ObjectResult], None] | None = None
        self.decryptor = make_decryptor(settings)
        self.gate = QualityGate()
        self.handled: dict[str, str] = {}  # key -> etag, loaded/skipped/unchanged
        self.retry: dict[str, tuple[str, float, int]] = {}  # key -> etag, retry at, attempts
        self.newest_day: str | None = None
        self.started = False
        self.sweep_at = 0.0  # monotonic time of the next late sweep (0: the first poll)

    def poll_listing(self) -> PollReport | None:
        """List the window (everything, the first time on an empty warehouse) and load
        what is new."""
        if not self.started:
            if not self._read_cursor():
                return None
            self.started = True
        sweep = self.options.late_days > 1 and time.monotonic() >= self.sweep_at
        from_day = self._from_day(self.options.late_days if sweep else 1)
        try:
            listed = list(self.source.list_objects(from_day=from_day))
        except SourceError as err:
            if not err.transient:
                raise
            self.notice(f"listing failed, retrying next poll: {err}")
            return PollReport(0, 0, 0, from_day)
        if sweep:
            self.sweep_at = time.monotonic() + self.options.sweep_seconds
        days = [day for obj in listed if (day := day_of(self.source.uri, obj.key))]
        if days:
            self.newest_day = max([*days, self.newest_day or ""])
        self._forget(listed)
        new = self._new(listed)
        if new:
            self._batch(new, [])
        return PollReport(len(listed), 0, len(new), from_day)

    def _from_day(self, days_back: int) -> str | None:
        """The day folder a listing starts from: ``days_back`` days before the newest."""
        if self.newest_day is None:
            return None
        day = datetime.strptime(self.newest_day, "%Y%m%d") - timedelta(days=days_back)
        return day.strftime("%Y%m%d")

    def _forget(self, listed: Sequence[StoredObject]) -> None:
        """Drop handled keys that no sweep will list again: those before the sweep window
        (and, outside day folders, those gone from the listing)."""
        keys = {obj.key for obj in listed}
        floor = self._from_day(max(self.options.late_days, 1)) or ""
        kept = {}
        for key, etag in self.handled.items():
            day = day_of(self.source.uri, key)
            if key in keys or (day is not None and day >= floor):
                kept[key] = etag
        self.handled = kept

    def poll_queue(self, queue: SqsQueue, wait: float) -> PollReport:
        """Wait up to ``wait`` seconds for notifications; load the objects they name."""
        try:
            notes = queue.receive(wait)
        except SourceError as err:
            if not err.transient:
                raise
            self.notice(f"receiving notifications failed, retrying: {err}")
            self.stop.wait(min(wait, 1.0))
            return PollReport(0, 0, 0, None)
        named = list({obj.key: obj for note in notes for obj in note.objects}.values())
        new = self._new(named, due_only=False)
        if new:
            self._batch(new, notes)
        elif notes:
            queue.delete(notes)  # test events, other prefixes, objects already loaded
        return PollReport(0, len(named), len(new), None)

    def _new(self, objects: Sequence[StoredObject], *, due_only: bool = True) -> list[StoredObject]:
        clock = time.monotonic()
        fresh = []
        for obj in objects:
            if self.handled.get(obj.key) == obj.etag:
                continue
            waiting = self.retry.get(obj.key)
            if due_only and waiting and waiting[0] == obj.etag and waiting[1] > clock:
                continue
            fresh.append(obj)
        return fresh

    def _read_cursor(self) -> bool:
        """The newest day folder already in ``ingest_files``; False if stopped first."""
        warehouse = self._open()
        if warehouse is None:
            return False
        prefix = self.source.uri.rstrip("/") + "/"
        if warehouse.lake is not None:  # the state database answers; no manifest copy
            with warehouse, warehouse.errors():
                self.newest_day = warehouse.lake.state.newest_day_folder(prefix)
            return True
        with warehouse, warehouse.errors():
            row = warehouse.con.execute(
                "SELECT max(regexp_extract(object_key[length($p) + 1:], '^(\\d{8})/', 1)) "
                "FROM ingest_files WHERE starts_with(object_key, $p)",
                {"p": prefix},
            ).fetchone()
        self.newest_day = row[0] if row and row[0] else None
        return True

    def _batch(self, objects: list[StoredObject], notes: list[Notification]) -> None:
        warehouse = self._open()
        if warehouse is None:
            return  # stopped while waiting: the objects (and messages) wait for next time
        with warehouse:
            warehouse.con.execute("SET threads = 1")
            results: dict[str, ObjectResult] = {}

            def seen(result: ObjectResult) -> None:
                results[result.key] = result
                if self.on_object is not None:
                    self.on_object(result)

            if warehouse.lake is not None:
                from ingest.lake import ingest_lake  # noqa: PLC0415 - the lake extra

                summary = ingest_lake(
                    self.source,
                    warehouse.lake,
                    engine=warehouse.lake.spec.engine,
                    objects=objects,
                    endpoint_url=self.settings.endpoint_url,
                    private_key_pem=private_key_pem(self.settings),
                    batch_rows=self.settings.batch_rows,
                    on_object=seen,
                    stop=self.stop,
                )
                attach_snapshot(warehouse.con, warehouse.lake)  # the check reads the commits
            else:
                summary = ingest(
                    self.source,
                    warehouse,
                    objects=objects,
                    batch_rows=self.settings.batch_rows,
                    on_object=seen,
                    decryptor=self.decryptor,
                    stop=self.stop,
                )
            self._remember(objects, results)
            check_summary(
                warehouse,
                summary,
                source=self.source.uri,
                on_failure=self.settings.quality,
                gate=self.gate,
            )
            self.summary.add(summary)
            if self.on_batch is not None:
                self.on_batch(summary)
            if self.after_batch is not None and summary.objects_seen:
                self.after_batch(warehouse, summary)
        if self.queue is not None and notes:
            # A message goes once each object it names is recorded in ingest_files
            # (loaded, skipped or failed: a failed one is retried by the listing).
            done = [
                note
                for note in notes
                if all(
                    obj.key in results or self.handled.get(obj.key) == obj.etag
                    for obj in note.objects
                )
            ]
            self.queue.delete(done)

    def _remember(self, objects: list[StoredObject], results: dict[str, ObjectResult]) -> None:
        clock = time.monotonic()
        for obj in objects:
            result = results.get(obj.key)
            if result is None:
                continue  # stopped before it
            if result.status == "failed":
                attempts = self.retry.get(obj.key, (obj.etag, 0.0, 0))[2] + 1
                delay = min(self.options.interval * 2 ** (attempts - 1), _MAX_RETRY_SECONDS)
                self.retry[obj.key] = (obj.etag, clock + delay, attempts)
            else:
                self.handled[obj.key] = obj.etag
                self.retry.pop(obj.key, None)

    def _open(self) -> Warehouse | None:
        """The warehouse, waiting while another process holds it; None if stopped."""
        delay = 0.1
        said = False
        while not self.stop.is_set():
            try:
                return open_warehouse(self.settings.db_path)
            except WarehouseLocked as err:
                if not said:
                    self.notice(f"{err.args[0].split(';')[0]}; waiting for it")
                    said = True
                self.stop.wait(delay)
                delay = min(delay * 2, self.options.lock_backoff_max)
        return None
