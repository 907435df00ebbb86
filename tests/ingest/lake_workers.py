"""What the PostgreSQL lakehouse tests run in several processes at once.

The processes are spawned (a forked pytest would carry its threads along), so each imports
this module only: it stays light, without the test suite's fixtures. Every worker waits
at a barrier, so the processes start their work together, and puts ``("ok", value)`` or
``("error", traceback)`` on the results queue.
"""

from __future__ import annotations

import importlib
import multiprocessing
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from core.lake import EngineSpec, LakeSpec
from core.lake.state import FileEntry, StateDB, owner_id

__all__ = ["claim_keys", "entry", "ingest_once", "run_together"]


def entry(key: str) -> FileEntry:
    """A listed object ``key`` (etag derived from the key)."""
    return FileEntry(key, "s3://logs/", 100, f"etag-{key}", None, "pending")


def run_together(
    target: Callable[..., Any], *args: Any, count: int = 2, imports: tuple[str, ...] = ()
) -> list[Any]:
    """Run ``target(*args)`` in ``count`` processes that start it together (once each has
    imported the modules ``imports`` names); the values they returned, in the order they
    finished. Fails on a worker's error."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(target, args, imports, barrier, results))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.exitcode is None:
                process.kill()
    errors = [detail for kind, detail in outcomes if kind == "error"]
    if errors:
        raise AssertionError(f"a worker failed:\n{errors[0]}")
    return [detail for _, detail in outcomes]


def _worker(
    target: Callable[..., Any],
    args: tuple[Any, ...],
    imports: tuple[str, ...],
    barrier: Any,
    results: Any,
) -> None:
    try:
        for name in imports:
            importlib.import_module(name)
        barrier.wait(timeout=60)
        results.put(("ok", target(*args)))
    except Exception:  # noqa: BLE001 - reported to the test, which fails with the traceback
        results.put(("error", traceback.format_exc()))


def claim_keys(url: str, keys: list[str], chunk: int = 5) -> list[str]:
    """Claim ``keys`` ``chunk`` at a time, as a driver does, finishing what it got (status
    ``loaded``); the keys this process claimed."""
    state = StateDB(url)
    owner = owner_id()
    claimed: list[str] = []
    try:
        for start in range(0, len(keys), chunk):
            listed = [entry(key) for key in keys[start : start + chunk]]
            mine = state.claim(listed, owner, now=datetime.now(tz=UTC))
            claimed += mine
            done = [replace(e, status="loaded") for e in listed if e.key in mine]
            state.finish(done, owner, started=datetime.now(tz=UTC))
    finally:
        state.close()
    return claimed


def ingest_once(spec: LakeSpec, source: str, batch_objects: int) -> dict[str, int]:
    """One ``aigw ingest`` run of ``source`` into ``spec``; its totals."""
    from ingest import IngestSettings, run_ingest  # noqa: PLC0415 - only the driver needs it

    spec = replace(spec, engine=EngineSpec(batch_objects=batch_objects))
    settings = IngestSettings(source=source, db_path=spec, quality="off")
    summary = run_ingest(settings)
    totals = ("loaded", "skipped", "failed", "rows_loaded", "duplicates", "rejected")
    return {name: getattr(summary, name) for name in totals}
