"""Parse objects ahead of the writer, in background threads.

Each parser thread reads its share of the objects through ``ingest.engine`` while the
writer stores earlier batches (DuckDB releases the GIL while it inserts). By default one
parser runs the typed path (``ingest.engine_typed``, which holds the GIL). With ``sql``,
the engine normalises in DuckDB SQL, which releases the GIL too, so two parsers run (one
with a ``Decryptor``: decryption is Python). At most ``depth`` parsed batches per parser
wait in memory.

Contract: the writer calls ``batches(obj)`` for the objects in the order they
were given, each one to its end or to its error; ``close()`` stops the threads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Final, cast

from ingest.decrypt import Decryptor
from ingest.engine import SqlEngine, read_object
from ingest.errors import ObjectReadError
from ingest.loader import ParsedBatch
from ingest.sources import Source, StoredObject

__all__ = ["Prefetcher"]

_END: Final = object()
_Item = tuple[str, "ParsedBatch | BaseException | object"]


class Prefetcher:
    """Reads and parses ``objects`` from ``source``, in order for the writer, ``depth``
    batches ahead per parser thread."""

    def __init__(
        self,
        source: Source,
        objects: Sequence[StoredObject],
        batch_rows: int,
        *,
        depth: int = 2,
        decryptor: Decryptor | None = None,
        sql: bool = False,
    ) -> None:
        self._source = source
        self._decryptor = decryptor
        self._objects = objects
        self._batch_rows = batch_rows
        self._sql = sql
        count = 2 if sql and decryptor is None and len(objects) > 1 else 1
        self._queues: list[queue.Queue[_Item]] = [queue.Queue(maxsize=depth) for _ in range(count)]
        self._next = 0  # index of the object the writer asks for next
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(k,), name=f"aigw-parse-{k}", daemon=True)
            for k in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def batches(self, obj: StoredObject) -> Iterator[ParsedBatch]:
        """The parsed batches of ``obj``; raises its ``ObjectReadError`` if it has one.
        Each call takes the next object's lane, whether or not its batches are read."""
        lane = self._queues[self._next % len(self._queues)]
        self._next += 1
        return self._drain(lane, obj)

    @staticmethod
    def _drain(lane: queue.Queue[_Item], obj: StoredObject) -> Iterator[ParsedBatch]:
        while True:
            key, item = lane.get()
            if key != obj.key:
                raise RuntimeError(f"prefetch order broken: expected {obj.key}, got {key}")
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(ParsedBatch, item)

    def close(self) -> None:
        """Stop the parser threads and drop what they parsed ahead."""
        self._stop.set()
        for thread, lane in zip(self._threads, self._queues, strict=True):
            while thread.is_alive():
                try:
                    lane.get(timeout=0.05)
                except queue.Empty:
                    continue
            thread.join()

    def _run(self, lane: int) -> None:
        engine = SqlEngine() if self._sql else None
        try:
            self._parse_all(engine, lane)
        finally:
            if engine is not None:
                engine.close()

    def _parse_all(self, engine: SqlEngine | None, lane: int) -> None:
        mine = self._objects[lane :: len(self._queues)]
        for obj in mine:
            try:
                with closing(self._source.open(obj)) as stream:
                    batches = read_object(
                        stream, obj.key, engine, self._batch_rows, self._decryptor
                    )
                    for batch in batches:
                        if not self._put(lane, (obj.key, batch)):
                            return
            except ObjectReadError as err:
                if not self._put(lane, (obj.key, err)):
                    return
                continue
            except Exception as err:  # noqa: BLE001 - handed to the writer, which re-raises it
                self._put(lane, (obj.key, err))
                return
            if not self._put(lane, (obj.key, _END)):
                return

    def _put(self, lane: int, item: _Item) -> bool:
        while not self._stop.is_set():
            try:
                self._queues[lane].put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False
