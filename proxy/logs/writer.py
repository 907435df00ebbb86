"""The gateway's Logpush writer: request records -> gzip NDJSON objects in a sink.

``submit`` only queues the record dict (no copy, no serialisation: holding
kilobytes of fresh bytes per record costs the event loop several microseconds
in page faults). A background thread serialises queued records in chunks,
streams them through a gzip compressor (so a batch is held compressed) and
stores each batch as ``<prefix>/{YYYYMMDD}/{start}_{end}_{random}.log.gz``, the
layout Logpush uses and ``aigw ingest`` reads. A batch is cut at ``max_records``
records, before it would pass ``max_bytes`` of uncompressed NDJSON, or
``max_interval_s`` after its first record was submitted, whichever comes first.

Durability: the thread appends each record's line to the open batch's journal file and
fsyncs it within ``sync_interval_s`` of the record's submission (``proxy.logs.journal``);
a gateway killed with SIGKILL, or a power loss, loses no record submitted longer ago than
that: the next start uploads the journal's batch under the same object key.

Delivery: an upload is tried ``upload_attempts`` times with backoff; a batch
that still fails is written to ``spool_dir/<key>`` and sent again at ``start()``,
at every ``flush()`` and every ``max_interval_s`` until it goes through. Nothing
is dropped; like Logpush, delivery is at least once (a put that timed out after
the store kept it is sent again).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from core import logpush
from core.files import write_atomic
from proxy.errors import LogSinkError, ProxyError
from proxy.logs.batch import Batch, as_text, batch_key, stamp_of
from proxy.logs.journal import Journal
from proxy.logs.sinks import LogSink

__all__ = ["LogWriter", "WriterSettings", "WriterStats", "batch_key"]

_log = logging.getLogger(__name__)

_DRAIN_AT = 512  # queued records that wake the thread: bounds the dicts held between drains
_JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_SPOOL_SUFFIX = logpush.OBJECT_SUFFIX


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """How the writer batches and delivers. Sizes in bytes, times in seconds.

    ``max_bytes`` bounds a file's uncompressed NDJSON (a single larger record
    still gets a file of its own). ``retry_backoff_s[i]`` is the pause after
    failed attempt ``i + 1`` (the last value repeats).
    """

    prefix: str = ""
    max_records: int = 100_000
    max_bytes: int = 5_000_000
    max_interval_s: float = 30.0
    spool_dir: Path = Path("data/gateway-spool")
    upload_attempts: int = 3
    retry_backoff_s: tuple[float, ...] = (0.2, 1.0)
    sync_interval_s: float = 0.2  # a record is fsynced to the journal within this

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_bytes < 1 or self.upload_attempts < 1:
            raise ProxyError("log writer limits must be at least 1 (records, bytes, attempts)")
        if self.max_interval_s <= 0 or self.sync_interval_s <= 0:
            raise ProxyError("log writer intervals must be more than 0 seconds")


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters since the writer was made (a snapshot).

    ``records_rejected`` counts records JSON cannot hold (a circular reference,
    an integer past 64 bits), logged and left out; ``records_written`` counts
    this writer's records the sink accepted (also via the spool); ``files_written``
    every object the sink accepted, including spool files left by an earlier run;
    ``upload_failures`` failed put attempts; ``spooled_pending`` the batches now
    waiting in the spool folder (or, if the disk refused them, in memory).
    """

    records_submitted: int = 0
    records_rejected: int = 0
    records_written: int = 0
    files_written: int = 0
    files_spooled: int = 0
    upload_failures: int = 0
    spooled_pending: int = 0


class LogWriter:
    """Batches records and writes them off the request path.

    Thread-safety: ``submit`` may be called from any thread (the event loop
    included) and never blocks on I/O; the record dict passes to the writer and
    must not be changed afterwards (it is serialised later, on the thread).
    ``flush`` and ``close`` block their caller; call them off the event loop.
    The writer owns its background thread; the caller owns the sink.
    """

    def __init__(self, sink: LogSink, settings: WriterSettings) -> None:
        self._sink = sink
        self._settings = settings
        self._cond = threading.Condition(threading.Lock())
        # Guarded by _cond: the queue, flags and counters.
        # Two parallel lists, not a list of tuples: no GC-tracked allocation per record,
        # so submit never triggers a garbage collection pass.
        self._queue: list[dict[str, Any]] = []
        self._stamps: list[int] = []
        self._queued_since = 0.0  # monotonic time of the queue's first record
        self._closed = False
        self._flush_wanted = 0  # flush requests made ...
        self._flush_done = 0  # ... and served by the thread
        self._thread: threading.Thread | None = None
        self._close_deadline = float("inf")
        self._counts = {stat.name: 0 for stat in fields(WriterStats)}
        # Guarded by _io (one deliverer at a time: the thread, or the caller without one).
        self._io = threading.Lock()
        self._open: Batch | None = None
        self._sink_up = True  # false once a batch of this round went to the spool
        self._spooled_records: dict[str, int] = {}  # spool key -> records of this writer
        self._held: list[tuple[str, bytes]] = []  # batches not even the spool disk took
        self._journal = Journal(settings.spool_dir / "journal")

    @property
    def stats(self) -> WriterStats:
        """The counters now."""
        with self._cond:
            return WriterStats(**self._counts)

    def start(self) -> None:
        """Start the background thread; its first job is re-sending spooled files."""
        with self._cond:
            if self._closed:
                raise ProxyError("the log writer is closed; make a new one")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="aigw-logwriter", daemon=True)
        self._thread.start()

    def submit(self, record: dict[str, Any]) -> None:
        """Queue one record: a list append under a lock (about 0.5 us). Raises
        ``ProxyError`` after ``close``. Named by its ``Timestamp`` (unixnano int),
        else by the wall clock now."""
        stamp = record.get("Timestamp")
        if type(stamp) is not int:
            stamp = time.time_ns()
        with self._cond:
            if self._closed:
                raise ProxyError("the log writer is closed; records after shutdown are refused")
            queue = self._queue
            queue.append(record)
            self._stamps.append(stamp)
            self._counts["records_submitted"] += 1
            if len(queue) == 1:
                self._queued_since = time.monotonic()
                self._cond.notify()  # the thread sets its alarm for this record's interval
            elif len(queue) == _DRAIN_AT:
                self._cond.notify()

    def flush(self) -> None:
        """Write out every record submitted so far and retry the spool; return when done."""
        with self._cond:
            thread = self._thread
            if thread is not None and thread.is_alive():
                self._flush_wanted += 1
                wanted = self._flush_wanted
                self._cond.notify_all()
                while self._flush_done < wanted and thread.is_alive():
                    self._cond.wait(1.0)
                return
        self._work_inline()

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush everything and stop the thread. Idempotent.

        Batches that cannot be uploaded by then are spooled (``stats.spooled_pending``
        says how many files wait); once ``timeout_s`` is near, the thread stops
        waiting between attempts and spools at once.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._close_deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            self._work_inline()
            return
        thread.join(timeout_s)
        if thread.is_alive():
            _log.warning("log writer thread still uploading after %.0f s", timeout_s)
            return
        with self._cond:
            left = bool(self._queue)
        if left or self._open is not None:  # the thread died on an unexpected error
            self._work_inline()

    # -- background work -------------------------------------------------------

    def _count(self, name: str, amount: int = 1) -> None:
        with self._cond:
            self._counts[name] += amount

    def _take_queue(self) -> tuple[list[dict[str, Any]], list[int], float]:
        """The queued records, their times, and when the first was queued. Holds ``_cond``."""
        queue, self._queue = self._queue, []
        stamps, self._stamps = self._stamps, []
        return queue, stamps, self._queued_since

    def _work_inline(self) -> None:
        """Write everything queued and retry the spool, in the caller (no thread running)."""
        with self._io:
            with self._cond:
                queue, stamps, since = self._take_queue()
            self._sink_up = True
            self._absorb(queue, stamps, since)
            self._finish_open()
            if self._sink_up:
                self._resend_spool()

    def _run(self) -> None:
        interval = self._settings.max_interval_s
        sync_s = min(self._settings.sync_interval_s, interval)
        with self._io:
            self._recover_journal()
            self._resend_spool()
        next_spool_try = time.monotonic() + interval
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    due = now + interval  # when the oldest record or open batch is due
                    if self._queue:  # its records go to the journal within sync_s
                        due = self._queued_since + sync_s
                    if self._open is not None:
                        due = min(due, self._open.opened + interval)
                    flushing = self._flush_wanted > self._flush_done
                    spool_due = self._counts["spooled_pending"] > 0 and now >= next_spool_try
                    batch_due = self._open is not None and now >= self._open.opened + interval
                    if (
                        len(self._queue) >= _DRAIN_AT
                        or (self._queue and now >= due)
                        or batch_due
                        or flushing
                        or self._closed
                        or spool_due
                    ):
                        break
                    if self._counts["spooled_pending"]:
                        due = min(due, next_spool_try)
                    self._cond.wait(max(due - now, 0.001))
                queue, stamps, since = self._take_queue()
                wanted = self._flush_wanted
                closing = self._closed
            with self._io:
                self._sink_up = True
                self._absorb(queue, stamps, since)
                self._journal.sync()
                batch = self._open
                if batch is not None and (
                    flushing or closing or time.monotonic() >= batch.opened + interval
                ):
                    self._finish_open()
                if self._sink_up and (flushing or spool_due or closing):
                    self._resend_spool()
                if not self._sink_up or spool_due:
                    next_spool_try = time.monotonic() + interval
            with self._cond:
                self._flush_done = wanted
                self._cond.notify_all()
                if closing and not self._queue:
                    return

    def _absorb(self, queue: list[dict[str, Any]], stamps: list[int], since: float) -> None:
        """Serialise queued records into the open batch, writing each batch that fills."""
        settings = self._settings
        for record, stamp in zip(queue, stamps, strict=True):
            try:
                line = orjson.dumps(record, default=as_text, option=_JSON_OPTIONS)
            except orjson.JSONEncodeError as err:
                self._count("records_rejected")
                _log.error("log record left out: JSON cannot hold it (%s)", err)
                continue
            batch = self._open
            if batch is not None and batch.size + len(line) > settings.max_bytes:
                self._finish_open()
                batch = None
            if batch is None:
                batch = self._open = Batch(since, stamp, secrets.token_hex(4))
                self._open_journal(batch.token)
                since = time.monotonic()  # a later batch from this queue starts now
            batch.add(line, stamp)
            self._journal.append(line)
            if batch.records >= settings.max_records or batch.size >= settings.max_bytes:
                self._finish_open()

    def _finish_open(self) -> None:
        """Compress the open batch's tail and deliver it: upload, or spool."""
        batch, self._open = self._open, None
        if batch is None:
            return
        data = batch.finish()
        key = batch_key(self._settings.prefix, batch.first_ns, batch.last_ns, batch.token)
        # Once a batch of this round was spooled the sink is down: spool the rest at once
        # (the spool retry finds out when it is back).
        if self._sink_up and self._upload(key, data):
            with self._cond:
                self._counts["records_written"] += batch.records
                self._counts["files_written"] += 1
            self._journal.discard()
            return
        self._sink_up = False
        if self._spool(key, data, batch.records):
            self._journal.discard()
        else:  # held in memory only: the journal file stays until it is sent
            self._journal.close()

    def _open_journal(self, token: str) -> None:
        """Start the new batch's journal file; without one (a disk error) the batch is
        still delivered, only not durable before its upload."""
        try:
            self._journal.open(token)
        except OSError as err:
            _log.error("cannot write the log journal in %s (%s)", self._journal.folder, err)

    def _recover_journal(self) -> None:
        """Deliver the batches that journal files of a dead writer hold (same keys)."""
        for token, lines in self._journal.recover():
            if not lines:
                self._journal.forget(token)
                continue
            batch: Batch | None = None
            for line in lines:
                stamp = stamp_of(line)
                if batch is None:
                    batch = Batch(time.monotonic(), stamp, token)
                batch.add(line, stamp)
            assert batch is not None  # noqa: S101 - lines is not empty
            key = batch_key(self._settings.prefix, batch.first_ns, batch.last_ns, token)
            data = batch.finish()
            if self._upload(key, data):
                self._count("files_written")
            elif not self._spool(key, data, 0):
                continue  # held in memory: the journal file stays for the next start
            self._journal.forget(token)
            _log.warning("log batch %s recovered from the journal (%d records)", key, len(lines))

    def _upload(self, key: str, data: bytes) -> bool:
        """Put ``data`` with retries; whether the sink accepted it."""
        settings = self._settings
        for attempt in range(settings.upload_attempts):
            try:
                self._sink.put(key, data)
            except LogSinkError as err:
                self._count("upload_failures")
                _log.warning("log upload attempt %d failed: %s", attempt + 1, err)
                if attempt + 1 == settings.upload_attempts:
                    return False
                pause = settings.retry_backoff_s[min(attempt, len(settings.retry_backoff_s) - 1)]
                if time.monotonic() + pause > self._close_deadline:
                    return False  # shutting down: spool now rather than outlive the timeout
                time.sleep(pause)
            else:
                return True
        return False

    def _spool(self, key: str, data: bytes, records: int) -> bool:
        """Keep a batch the sink refused in ``spool_dir/<key>``, or in memory if even that
        fails (a full disk): it is offered to the sink again with the spooled files.
        Whether it reached the disk."""
        path = self._settings.spool_dir.joinpath(*key.split("/"))
        try:
            write_atomic(path, data)
        except OSError as err:
            _log.error("cannot spool log batch to %s (%s); holding it in memory", path, err)
            with self._cond:
                self._held.append((key, data))
            stored = False
        else:
            _log.warning("log batch spooled to %s; it is sent again later", path)
            stored = True
        with self._cond:
            self._counts["files_spooled"] += 1
            self._counts["spooled_pending"] += 1
            self._spooled_records[key] = records
        return stored

    def _resend_spool(self) -> None:
        """Offer held batches, then spooled files (oldest key first), to the sink until one
        fails; delete each file sent. Several gateways may share a spool folder."""
        root = self._settings.spool_dir
        try:
            files = sorted(root.rglob(f"*{_SPOOL_SUFFIX}")) if root.is_dir() else []
        except OSError as err:
            _log.error("cannot list the log spool %s (%s)", root, err)
            files = []
        with self._cond:
            held = list(self._held)
        waiting = len(held) + len(files)
        for key, data in held:
            if not self._resend(key, data):
                break
            waiting -= 1
            with self._cond:
                self._held.remove((key, data))
            # its journal file was kept while it was only in memory
            self._journal.forget(key.rsplit("_", 1)[-1].removesuffix(_SPOOL_SUFFIX))
        else:
            for path in files:
                key = path.relative_to(root).as_posix()
                try:
                    data = path.read_bytes()
                except FileNotFoundError:  # another gateway sharing the spool sent it
                    waiting -= 1
                    continue
                except OSError as err:  # unreadable (permissions): left for an operator
                    _log.error("cannot read spooled log file %s (%s)", path, err.strerror)
                    continue
                if not self._resend(key, data):
                    break
                waiting -= 1
                path.unlink(missing_ok=True)
        with self._cond:
            self._counts["spooled_pending"] = waiting

    def _resend(self, key: str, data: bytes) -> bool:
        """One put of a spooled batch; whether the sink accepted it."""
        try:
            self._sink.put(key, data)
        except LogSinkError as err:
            self._count("upload_failures")
            _log.warning("spooled log batch %s not sent yet: %s", key, err)
            return False
        with self._cond:
            self._counts["files_written"] += 1
            self._counts["records_written"] += self._spooled_records.pop(key, 0)
        return True
