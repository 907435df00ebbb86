"""Work on a second connection to the warehouse, in a thread, while the caller goes on.

DuckDB, Polars and numpy release the GIL in their long calls, so on a machine with two
cores two independent reads and replays overlap (the savings report: the cache replays
beside the other what-ifs). An Iceberg warehouse's connection is an in-memory database
whose views belong to that one connection, so there the work runs first, inline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from core.warehouse import Warehouse

__all__ = ["beside"]

T = TypeVar("T")


@contextmanager
def beside(warehouse: Warehouse, work: Callable[[Warehouse], T]) -> Iterator[Future[T]]:
    """``work(warehouse')`` started in a thread on a cursor of ``warehouse`` (a DuckDB
    file), its future yielded; on leaving, the thread is waited for and the cursor closed.
    Errors come out of ``future.result()``."""
    if warehouse.lake is not None:
        done: Future[T] = Future()
        try:
            done.set_result(work(warehouse))
        except Exception as err:  # noqa: BLE001 - handed to the caller through the future
            done.set_exception(err)
        yield done
        return
    cursor = warehouse.con.cursor()
    try:
        cursor.execute("SET TimeZone = 'UTC'")  # a cursor has its own session settings
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigw-beside") as pool:
            future = pool.submit(work, dataclasses.replace(warehouse, con=cursor))
            try:
                yield future
            except BaseException:
                cursor.interrupt()  # the caller failed: stop the work's query, then wait
                raise
    finally:
        cursor.close()
