"""Ingest benchmark: `aigw ingest` against DuckDB's own read_json (the engine's floor).

    python bench/ingest.py [--profile large|small] [--records N] [--per-file N] [--out DIR]

Profiles: ``large`` (the default) is 1,000,000 records of about 1.8 KB (encrypted bodies)
in objects of 20,000; ``small`` is 300,000 records of about 550 bytes (no bodies, aigw's
gateway fields) in 12 objects of 25,000, the common case of gateways that log no bodies.

1. Generates the records (gzip NDJSON) once into ``--out`` (reused on later runs).
2. (a) Times ``aigw ingest`` end to end (a fresh process, a fresh warehouse, the quality
   gate on: the default), with the process's peak RSS and the load step it prints.
   (b) Times DuckDB's ``CREATE TABLE AS SELECT * FROM read_json(...)`` over the
   same files, also in a fresh process: the floor, with no validation,
   normalisation, deduplication or bookkeeping.
   (c) The stages in one process on another fresh warehouse: load, quality gate,
   rollups (what (a) spends beyond them is the process start and the imports), then
   the load again with the opt-in SQL engine (``ingest(sql=True)``).
3. Per-object time as the warehouse grows: loads a few new objects into the
   warehouse from (a), then grows it to 10x the rows (copies of its rows moved
   back in time, bodies left out) and loads as many new objects again.

Not a test: numbers depend on the machine; docs/performance.md records them with it.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

# Run as `python bench/ingest.py`, this file's folder comes first on sys.path and
# its name would shadow the `ingest` package; drop it so the package is found.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

from app.service.reports import refresh  # noqa: E402 - after the sys.path fix above
from core.warehouse import open_warehouse  # noqa: E402 - after the sys.path fix above
from ingest import IngestSettings, run_ingest  # noqa: E402 - after the sys.path fix above
from ingest.run import ingest  # noqa: E402 - after the sys.path fix above
from ingest.service import check_summary  # noqa: E402 - after the sys.path fix above
from ingest.sources import open_source  # noqa: E402 - after the sys.path fix above
from models import ModelsSettings  # noqa: E402 - after the sys.path fix above
from sim.synthetic import (  # noqa: E402 - after the sys.path fix above
    TrafficShape,
    synthetic_records,
    write_logpush_files,
)

REPO = Path(__file__).resolve().parent.parent
FLOOR_SQL = "CREATE TABLE raw AS SELECT * FROM read_json('{glob}', format = 'newline_delimited')"
CPU: list[float] = []  # CPU seconds of each timed child process, in order
PROFILES = {  # records, per object, shape
    "large": (1_000_000, 20_000, TrafficShape()),
    "small": (300_000, 25_000, TrafficShape(encrypted_bodies=False, gateway_fields=True)),
}


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="large")
    parser.add_argument("--records", type=int)
    parser.add_argument("--per-file", type=int)
    parser.add_argument("--new-objects", type=int, default=5)
    parser.add_argument("--no-growth", action="store_true", help="skip step 3 (minutes)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    records, per_file, shape = PROFILES[args.profile]
    args.records = args.records or records
    args.per_file = args.per_file or per_file
    args.shape = shape

    tag = "" if args.profile == "large" else f"-{args.profile}"
    root = args.out / f"logs-{args.records}-{args.per_file}{tag}"
    logs = generate(root, args.records, args.per_file, shape)
    files = sorted(logs.rglob("*.log.gz"))
    megabytes = sum(path.stat().st_size for path in files) / 1e6
    print(f"input: {args.records:,} records in {len(files)} objects, {megabytes:,.0f} MB gzip")

    db = args.out / "bench.duckdb"
    remove_db(db)
    ours, peak_mb, output = timed_process(
        [sys.executable, "-m", "app", "ingest", str(logs), "--db", str(db)]
    )
    load = float(re.search(r"in ([0-9.]+)s", output).group(1))  # type: ignore[union-attr]
    floor_db = args.out / "floor.duckdb"
    remove_db(floor_db)
    floor_sql = FLOOR_SQL.format(glob=f"{logs}/*/*.log.gz")
    floor_script = (
        f"import duckdb; con = duckdb.connect({str(floor_db)!r}); "
        f"con.execute({floor_sql!r}); con.close()"
    )
    ours_cpu = CPU[-1]
    floor, _, _ = timed_process([sys.executable, "-c", floor_script])
    floor_cpu = CPU[-1]
    remove_db(floor_db)
    print(
        f"(a) aigw ingest:       {ours:6.1f} s  {args.records / ours:9,.0f} rows/s  "
        f"CPU {ours_cpu:.1f} s (peak RSS {peak_mb:,.0f} MB, the largest child so far)"
    )
    print(f"    of which the load:  {load:6.1f} s")
    print(
        f"(b) duckdb read_json:  {floor:6.1f} s  {args.records / floor:9,.0f} rows/s  "
        f"CPU {floor_cpu:.1f} s"
    )
    print(
        f"ratio (a)/(b): {ours / floor:.2f}x (CPU {ours_cpu / floor_cpu:.2f}x); "
        f"load/(b): {load / floor:.2f}x"
    )
    stages(logs, args.out / "stages.duckdb")
    if args.no_growth:
        return

    rows = count_rows(db)
    small = per_object_seconds(db, args, after=rows, tag="1x")
    grow(db, factor=max(2, round(10 * args.records / count_rows(db))))
    large = per_object_seconds(db, args, after=count_rows(db), tag="10x")
    print(
        f"per object ({args.per_file:,} records): {small * 1000:,.0f} ms with {rows:,} rows; "
        f"{large * 1000:,.0f} ms with {count_rows(db):,} rows ({large / small:.2f}x)"
    )


def stages(logs: Path, db: Path) -> None:
    """(c): load, quality gate and rollups timed apart, in this process."""
    remove_db(db)
    source = open_source(str(logs))
    with open_warehouse(db) as warehouse:
        warehouse.con.execute("SET threads = 1")
        summary = ingest(source, warehouse)
        started = time.monotonic()
        check_summary(warehouse, summary, source=source.uri, on_failure="warn")
        gate = time.monotonic() - started
    started = time.monotonic()
    refreshed = refresh(db, ModelsSettings())
    rollups = time.monotonic() - started
    remove_db(db)
    with open_warehouse(db) as warehouse:
        warehouse.con.execute("SET threads = 1")
        sql = ingest(source, warehouse, sql=True)
    remove_db(db)
    print(
        f"(c) in one process: load {summary.seconds:.1f} s, quality gate {gate:.1f} s "
        f"(import included), rollups {rollups:.1f} s ({refreshed.rows:,} rows); "
        f"the load with the SQL engine (opt-in) {sql.seconds:.1f} s"
    )


def generate(root: Path, records: int, per_file: int, shape: TrafficShape) -> Path:
    """Write the benchmark's Logpush objects once; later runs reuse them."""
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    write_logpush_files(
        root, synthetic_records(records, seed=1, shape=shape), per_file=per_file, seed=1
    )
    done.touch()
    print(f"generated {records:,} records in {time.monotonic() - started:.0f} s")
    return root


def timed_process(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds of a child process, the peak RSS (MB) of children so far, its output;
    its CPU seconds (user + system) are kept in ``CPU[-1]``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        command, check=True, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return seconds, after.ru_maxrss / 1024, done.stdout


def per_object_seconds(db: Path, args: argparse.Namespace, *, after: int, tag: str) -> float:
    """Average seconds to load one new object into ``db`` (new data, later in time)."""
    root = args.out / f"new-{tag}"
    shutil.rmtree(root, ignore_errors=True)
    con = duckdb.connect(str(db), read_only=True)
    latest = con.execute("SELECT max(ts) FROM requests").fetchone()[0]
    con.close()
    shape = replace(args.shape, start=latest.astimezone(UTC) + timedelta(hours=1))
    count = args.new_objects * args.per_file
    write_logpush_files(
        root, synthetic_records(count, seed=after, shape=shape), per_file=args.per_file, seed=after
    )
    summary = run_ingest(IngestSettings(source=str(root), db_path=db))
    if summary.rows_loaded != count:
        raise SystemExit(f"expected {count} new rows, loaded {summary.rows_loaded}")
    shutil.rmtree(root)
    return summary.seconds / args.new_objects


def grow(db: Path, *, factor: int) -> None:
    """Grow the warehouse to ``factor`` times its rows with copies moved back in time."""
    con = duckdb.connect(str(db))
    first, last = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
    span = (last - first) + timedelta(minutes=1)
    con.execute(
        """INSERT INTO requests
           SELECT requests.* REPLACE (
               copy || '-' || log_id AS log_id, ts - copy * ?::INTERVAL AS ts,
               NULL::JSON AS request_body, NULL::JSON AS response_body)
           FROM requests, range(1, ?) AS copies(copy)
           ORDER BY copy DESC, ts""",
        [span, factor],
    )
    con.close()


def count_rows(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM requests").fetchone()[0])
    finally:
        con.close()


def remove_db(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


if __name__ == "__main__":
    started = datetime.now(tz=UTC)
    main()
    print(f"benchmark took {(datetime.now(tz=UTC) - started).total_seconds():.0f} s")
