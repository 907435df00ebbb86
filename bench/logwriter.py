"""Log writer benchmark: what ``LogWriter.submit`` costs the gateway's event loop per record.

    python bench/logwriter.py [--records 1000000] [--out bench/out/logwriter]

Submits N ~1.5 KB ``ai_gateway_events`` records (10,000 distinct ones, cycled)
to a writer with the default settings (100k records / 5 MB / 30 s) writing gzip
NDJSON into a local folder, while its thread compresses and writes batches.
Prints, per record: ``orjson.dumps`` alone; a bare lock-protected append of the
dict (the floor); ``submit`` with no thread running; the thread's work
(serialise, gzip, write; measured as ``close`` of that writer); ``submit`` while
the thread runs (CPU of the calling thread, and wall time, which includes waiting
for the GIL while the writer thread serialises and compresses);
then the whole run's time including ``close``. Not a test: numbers depend on
the machine; the README records them with the machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

# Run as `python bench/logwriter.py`, this file's folder comes first on sys.path and
# bench/ingest.py would shadow the `ingest` package; drop it so the package is found.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

from proxy.logs import (  # noqa: E402 - after the sys.path fix above
    LocalFolderSink,
    LogWriter,
    WriterSettings,
)

_BASE_NS = 1_776_470_400_000_000_000  # 2026-04-18T00:00:00Z in unixnano


def _record() -> dict[str, Any]:
    """A plain (unencrypted) gateway record of about 1.5 KB serialised."""
    return {
        "Timestamp": _BASE_NS,
        "Gateway": "prod",
        "Provider": "openai",
        "Model": "gpt-4o-mini-2024-07-18",
        "RequestedModel": "gpt-4o-mini",
        "Endpoint": "chat/completions",
        "StatusCode": 200,
        "Cached": False,
        "RateLimited": False,
        "Metrics": {"cost": 0.0015, "durationMs": 850, "tokensIn": 1000, "tokensOut": 200},
        "Metadata": {"team": "search", "user": "ana", "agent": "retriever", "tenant": "acme"},
        "RoutingDecisionID": "01JS0M7W9R4B6Y2K3F8D5C1A0Z",
        "RoutingReason": "primary",
        "RequestBody": {"key": "k" * 344, "iv": "i" * 16, "data": "d" * 168},
        "ResponseBody": {"key": "k" * 344, "iv": "i" * 16, "data": "r" * 80},
    }


def _per_record_us(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:.2f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/logwriter"))
    args = parser.parse_args()
    count: int = args.records
    template = _record()
    # A pool of 10,000 distinct dicts, cycled: a gateway does not keep a million records
    # alive, and a million long-lived dicts would make every full GC pass the cost measured.
    pool = [{**template, "Timestamp": _BASE_NS + n * 1_000_000} for n in range(10_000)]
    records = [pool[n % len(pool)] for n in range(count)]
    print(f"record: {len(orjson.dumps(template)) + 1} bytes of NDJSON; {count:,} records")

    clock = time.perf_counter()
    for record in records:
        orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    print(f"orjson.dumps alone:        {_per_record_us(time.perf_counter() - clock, count)}")

    lock, held = threading.Lock(), []
    clock = time.perf_counter()
    for record in records:
        with lock:
            held.append(record)
    print(f"locked append of the dict: {_per_record_us(time.perf_counter() - clock, count)}")
    held.clear()

    shutil.rmtree(args.out, ignore_errors=True)
    settings = WriterSettings(spool_dir=args.out / "spool")
    idle = LogWriter(LocalFolderSink(args.out / "idle"), settings)
    clock = time.perf_counter()
    for record in records:
        idle.submit(record)
    submitted = time.perf_counter() - clock
    print(
        f"LogWriter.submit, alone:   {_per_record_us(submitted, count)} "
        "(no thread running: the queue holds every record)"
    )
    clock = time.perf_counter()
    idle.close()  # no thread: serialises, compresses and writes everything here
    written = time.perf_counter() - clock
    print(f"serialise+gzip+write:      {_per_record_us(written, count)} (the thread's work)")

    writer = LogWriter(LocalFolderSink(args.out / "logs"), settings)
    writer.start()
    clock, cpu = time.perf_counter(), time.thread_time()
    for record in records:
        writer.submit(record)
    submitted, cpu = time.perf_counter() - clock, time.thread_time() - cpu
    writer.close()
    total = time.perf_counter() - clock
    stats = writer.stats
    size = sum(path.stat().st_size for path in (args.out / "logs").rglob("*.log.gz"))
    print(
        f"LogWriter.submit, busy:    {_per_record_us(cpu, count)} CPU of the calling thread, "
        f"{_per_record_us(submitted, count)} wall (the writer thread holds the GIL meanwhile)"
    )
    print(
        f"submit + close: {total:.2f} s; {stats.files_written} files, "
        f"{stats.records_written:,} records, {size / 1e6:.1f} MB gzip"
    )


if __name__ == "__main__":
    main()
