"""Parse objects ahead of the writer, in a background thread.

The parser thread runs the ingest engine (``ingest.engine``: DuckDB SQL over each block
of lines, Python for the lines SQL leaves and for decryption) while the writer stores
the previous batch; DuckDB releases the GIL, so both cores work. At most ``depth``
parsed batches wait in memory.

Contract: the writer calls ``batches(obj)`` for the objects in the order they
were given, each one to its end or to its error; ``close()`` stops the thread.
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
    """Reads and parses ``objects`` from ``source`` in order, ``depth`` batches ahead."""

    def __init__(
        self,
        source: Source,
        objects: Sequence[StoredObject],
        batch_rows: int,
        depth: int = 2,
        decryptor: Decryptor | None = None,
    ) -> None:
        self._source = source
        self._decryptor = decryptor
        self._objects = objects
        self._batch_rows = batch_rows
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aigw-parse", daemon=True)
        self._thread.start()

    def batches(self, obj: StoredObject) -> Iterator[ParsedBatch]:
        """The parsed batches of ``obj``; raises its ``ObjectReadError`` if it has one."""
        while True:
            key, item = self._queue.get()
            if key != obj.key:
                raise RuntimeError(f"prefetch order broken: expected {obj.key}, got {key}")
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(ParsedBatch, item)

    def close(self) -> None:
        """Stop the parser thread and drop what it parsed ahead."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
        self._thread.join()

    def _run(self) -> None:
        engine = SqlEngine()
        try:
            self._parse_all(engine)
        finally:
            engine.close()

    def _parse_all(self, engine: SqlEngine) -> None:
        for obj in self._objects:
            try:
                with closing(self._source.open(obj)) as stream:
                    batches = read_object(
                        stream, obj.key, engine, self._batch_rows, self._decryptor
                    )
                    for batch in batches:
                        if not self._put((obj.key, batch)):
                            return
            except ObjectReadError as err:
                if not self._put((obj.key, err)):
                    return
                continue
            except Exception as err:  # noqa: BLE001 - handed to the writer, which re-raises it
                self._put((obj.key, err))
                return
            if not self._put((obj.key, _END)):
                return

    def _put(self, item: _Item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False
