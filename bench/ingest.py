"""Ingest benchmark: `aigw ingest` against DuckDB's own read_json (the engine's floor).

    python bench/ingest.py [--records 1000000] [--per-file 20000] [--out bench/out]

1. Generates N realistic Logpush records (gzip NDJSON, encrypted bodies, ~1.8 KB
   each) once into ``--out`` (reused on later runs with the same N).
2. (a) Times ``aigw ingest`` end to end (a fresh process, a fresh warehouse).
   (b) Times DuckDB's ``CREATE TABLE AS SELECT * FROM read_json(...)`` over the
   same files, also in a fresh process: the floor, with no validation,
   normalisation, deduplication or bookkeeping.
3. Per-object time as the warehouse grows: loads a few new objects into the
   warehouse from (a), then grows it to 10x the rows (copies of its rows moved
   back in time, bodies left out) and loads as many new objects again.

Prints rows/s for (a) and (b), their ratio, and the per-object times. Not a test:
numbers depend on the machine; the README records them with the machine.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

# Run as `python bench/ingest.py`, this file's folder comes first on sys.path and
# its name would shadow the `ingest` package; drop it so the package is found.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

from ingest import IngestSettings, run_ingest  # noqa: E402 - after the sys.path fix above
from sim.synthetic import (  # noqa: E402 - after the sys.path fix above
    TrafficShape,
    synthetic_records,
    write_logpush_files,
)

REPO = Path(__file__).resolve().parent.parent
FLOOR_SQL = "CREATE TABLE raw AS SELECT * FROM read_json('{glob}', format = 'newline_delimited')"


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--per-file", type=int, default=20_000)
    parser.add_argument("--new-objects", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()

    logs = generate(args.out / f"logs-{args.records}-{args.per_file}", args.records, args.per_file)
    files = sorted(logs.rglob("*.log.gz"))
    megabytes = sum(path.stat().st_size for path in files) / 1e6
    print(f"input: {args.records:,} records in {len(files)} objects, {megabytes:,.0f} MB gzip")

    db = args.out / "bench.duckdb"
    remove_db(db)
    ours, peak_mb = timed_process(
        [sys.executable, "-m", "app", "ingest", str(logs), "--db", str(db)]
    )
    floor_db = args.out / "floor.duckdb"
    remove_db(floor_db)
    floor_sql = FLOOR_SQL.format(glob=f"{logs}/*/*.log.gz")
    floor_script = (
        f"import duckdb; con = duckdb.connect({str(floor_db)!r}); "
        f"con.execute({floor_sql!r}); con.close()"
    )
    floor, _ = timed_process([sys.executable, "-c", floor_script])
    remove_db(floor_db)
    print(
        f"(a) aigw ingest:       {ours:6.1f} s  {args.records / ours:9,.0f} rows/s  "
        f"(peak RSS {peak_mb:,.0f} MB)"
    )
    print(f"(b) duckdb read_json:  {floor:6.1f} s  {args.records / floor:9,.0f} rows/s")
    print(f"ratio (a)/(b): {ours / floor:.2f}x")

    rows = count_rows(db)
    small = per_object_seconds(db, args, after=rows, tag="1x")
    grow(db, factor=max(2, round(10 * args.records / count_rows(db))))
    large = per_object_seconds(db, args, after=count_rows(db), tag="10x")
    print(
        f"per object ({args.per_file:,} records): {small * 1000:,.0f} ms with {rows:,} rows; "
        f"{large * 1000:,.0f} ms with {count_rows(db):,} rows ({large / small:.2f}x)"
    )


def generate(root: Path, records: int, per_file: int) -> Path:
    """Write the benchmark's Logpush objects once; later runs reuse them."""
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    write_logpush_files(root, synthetic_records(records, seed=1), per_file=per_file, seed=1)
    done.touch()
    print(f"generated {records:,} records in {time.monotonic() - started:.0f} s")
    return root


def timed_process(command: list[str]) -> tuple[float, float]:
    """Wall seconds of a child process and the peak RSS (MB) of children so far."""
    started = time.monotonic()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def per_object_seconds(db: Path, args: argparse.Namespace, *, after: int, tag: str) -> float:
    """Average seconds to load one new object into ``db`` (new data, later in time)."""
    root = args.out / f"new-{tag}"
    shutil.rmtree(root, ignore_errors=True)
    con = duckdb.connect(str(db), read_only=True)
    latest = con.execute("SELECT max(ts) FROM requests").fetchone()[0]
    con.close()
    shape = TrafficShape(start=latest.astimezone(UTC) + timedelta(hours=1))
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
