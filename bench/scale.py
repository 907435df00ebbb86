"""Scale benchmark: the DuckDB path against the Iceberg path (local engine, Ray on one and
two CPUs), what ``aigw maintain`` does to commits and files, the rollups' and a report's
cost as the Iceberg warehouse grows.

    python bench/scale.py [--records N] [--per-file N] [--batch-objects N]
                          [--report-records N] [--out DIR] [--skip-ray] [--warm-ray]

1. Generates ``--records`` records once into ``--out``: ``--profile small`` (the default:
   about 550 bytes, 55 gzip, aigw's gateway fields, no bodies) or ``large`` (about 1.8 KB,
   1 KB gzip, encrypted bodies: the size of docs/scale.md's internet-scale request), 2,000
   a minute.
2. A/B in the same window, each a fresh process on a fresh warehouse, ``--quality off``:
   ``aigw ingest`` into the DuckDB file, into an Iceberg warehouse with the local engine,
   with Ray on one CPU and on two (``[engine] kind = "ray"``, ``num_cpus``); rows/s of the
   load step (the line ``aigw ingest`` prints), wall and CPU seconds of the process and
   what it waited for, its peak RSS; the scaling efficiency of two CPUs over one.
   With ``--warm-ray`` (2b), the same loads in this process with Ray started beforehand
   and its workers warm: the engines without Ray's start.
3. On the Iceberg warehouse of the local engine: commits and data files of ``requests``
   per million rows, before and after ``aigw maintain --older-than 0m`` (timed).
4. Grows that warehouse to ``--report-records`` rows with newer records (an ingest and a
   rollup refresh per step, timed: refresh seconds per million new rows), maintains it,
   and times ``aigw report cost --by provider,model`` (a fresh process, three times).

Ray's workers are not children the CLI waits for one by one: their CPU is counted when
Ray's processes exit with the run, so CPU seconds of the Ray rows include Ray's start.
The machine's load average is printed before and after each step: the machine is
shared. Not a test: docs/scale.md records the numbers with the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as `python bench/scale.py`, this file's folder comes first on sys.path and its
# `ingest.py` would shadow the `ingest` package; drop it so the package is found.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

import pyarrow.compute as pc  # noqa: E402 - after the sys.path fix above

from core.lake import EngineSpec, LakeSpec  # noqa: E402 - after the sys.path fix above
from core.lake.lake import Lake  # noqa: E402 - after the sys.path fix above
from ingest import IngestSettings, run_ingest  # noqa: E402 - after the sys.path fix above
from sim.synthetic import (  # noqa: E402 - after the sys.path fix above
    TrafficShape,
    synthetic_records,
    write_logpush_files,
)

REPO = Path(__file__).resolve().parent.parent
PROFILES = {  # about 550 bytes (55 gzip) a record; about 1.8 KB (1 KB gzip)
    "small": TrafficShape(encrypted_bodies=False, gateway_fields=True, requests_per_minute=2000.0),
    "large": TrafficShape(requests_per_minute=2000.0),
}
LOAD_LINE = re.compile(r"records in ([0-9.]+)s")


@dataclass(frozen=True, slots=True)
class Run:
    """One timed process: wall and CPU seconds (user + system, the process and the
    children it waited for), peak RSS in MB, its output."""

    wall: float
    cpu: float
    rss_mb: float
    output: str

    @property
    def load_seconds(self) -> float:
        match = LOAD_LINE.search(self.output)
        return float(match.group(1)) if match else float("nan")


def _arguments() -> argparse.Namespace:
    """The command line (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--per-file", type=int, default=10_000)
    parser.add_argument("--batch-objects", type=int, default=8)
    parser.add_argument("--report-records", type=int, default=1_000_000)
    parser.add_argument("--step-records", type=int, default=400_000)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--warm-ray",
        action="store_true",
        help="also time the engines in this process with Ray already started (step 2b)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "scale")
    return parser.parse_args()


def main() -> None:
    """Run the benchmark and print its numbers."""
    args = _arguments()
    args.shape = PROFILES[args.profile]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, {_mem_gib():.0f} GiB; {_load()}")
    logs = generate(
        args.out / f"logs-{args.records}-{args.per_file}-{args.profile}",
        args.records,
        args.per_file,
        args.shape,
    )
    gz = sum(p.stat().st_size for p in logs.rglob("*.log.gz")) / 1e6
    objects = len(list(logs.rglob("*.log.gz")))
    print(f"input: {args.records:,} records in {objects} objects, {gz:,.0f} MB gzip")

    variants = {"duckdb": None, "iceberg local": {"kind": "local"}}
    if not args.skip_ray:
        variants |= {
            "iceberg ray 1 cpu": {"kind": "ray", "num_cpus": 1},
            "iceberg ray 2 cpus": {"kind": "ray", "num_cpus": 2},
        }
    runs: dict[str, Run] = {}
    for name, engine in variants.items():
        root = args.out / name.replace(" ", "-")
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        if engine is None:
            command = ["ingest", str(logs), "--quality", "off", "--db", str(root / "aigw.duckdb")]
        else:
            config = write_config(root, engine | {"batch_objects": args.batch_objects})
            command = ["ingest", str(logs), "--quality", "off", "--config", str(config)]
        runs[name] = aigw(command)
        run = runs[name]
        print(
            f"  {name:20s} load {run.load_seconds:6.1f} s  "
            f"{args.records / run.load_seconds:8,.0f} rows/s  | process wall {run.wall:6.1f} s "
            f"cpu {run.cpu:6.1f} s  peak RSS {run.rss_mb:6,.0f} MB  ({_load()})"
        )
    if not args.skip_ray:
        one, two = runs["iceberg ray 1 cpu"], runs["iceberg ray 2 cpus"]
        speedup = one.load_seconds / two.load_seconds
        print(f"  ray 2 cpus over 1: {speedup:.2f}x, scaling efficiency {speedup / 2:.0%}")
    if args.warm_ray:
        warm_engines(args, logs)

    lake_root = args.out / "iceberg-local"
    spec = lake_spec(lake_root)
    config = lake_root / "aigw.toml"
    commits, files, rows = lake_counts(spec)
    per_m = 1e6 / rows
    print(
        f"requests: {rows:,} rows in {commits} commits and {files} data files "
        f"({commits * per_m:,.0f} commits, {files * per_m:,.0f} files per million rows)"
    )
    maintained = aigw(["maintain", "--older-than", "0m", "--config", str(config)])
    commits, files, _ = lake_counts(spec)
    print(
        f"aigw maintain: {maintained.wall:.1f} s wall, {maintained.cpu:.1f} s cpu, "
        f"peak RSS {maintained.rss_mb:,.0f} MB: "
        f"{maintained.output.strip().replace(chr(10), '; ')}"
    )
    print(
        f"  after: {commits} snapshots, {files} data files ({files * per_m:,.1f} per million rows)"
    )
    report(args, logs, config, spec, rows)


def report(args: argparse.Namespace, logs: Path, config: Path, spec: LakeSpec, rows: int) -> None:
    """Step 4: the report's latency as the warehouse grows, and the refresh per step."""
    timings = [(rows, time_report(config))]
    print(f"  report cost --by provider,model on {rows:,} rows: {timings[-1][1]}")
    step = 0
    while rows < args.report_records:
        step += 1
        root = args.out / f"step-{step}"
        shutil.rmtree(root, ignore_errors=True)
        latest = newest(spec)
        shape = replace(args.shape, start=latest + timedelta(minutes=1))
        count = min(args.step_records, args.report_records - rows)
        write_logpush_files(
            root,
            synthetic_records(count, seed=100 + step, shape=shape),
            per_file=args.per_file,
            seed=100 + step,
        )
        # the load alone, in this process (the CLI would refresh the rollups too): the
        # rollup refresh is then timed apart, as its own process
        loaded = run_ingest(
            IngestSettings(
                source=str(root),
                db_path=replace(spec, engine=EngineSpec(batch_objects=args.batch_objects)),
                quality="off",
            )
        )
        refreshed = aigw(["rollup", "--config", str(config)])
        rows += count
        print(
            f"  +{count:,} rows (to {rows:,}): load {loaded.seconds:.1f} s "
            f"({count / loaded.seconds:,.0f} rows/s); aigw rollup {refreshed.wall:.1f} s wall, "
            f"{refreshed.cpu:.1f} s cpu, peak RSS {refreshed.rss_mb:,.0f} MB "
            f"({refreshed.wall * 1e6 / count:.1f} s per million new rows; {_load()})"
        )
        shutil.rmtree(root)
    maintained = aigw(["maintain", "--older-than", "0m", "--config", str(config)])
    print(
        f"  aigw maintain: {maintained.wall:.1f} s wall, {maintained.cpu:.1f} s cpu, peak RSS "
        f"{maintained.rss_mb:,.0f} MB: {maintained.output.strip().replace(chr(10), '; ')}"
    )
    timings.append((rows, time_report(config)))
    for count, timing in timings:
        print(f"report cost --by provider,model on {count:,} Iceberg rows: {timing}")


def warm_engines(args: argparse.Namespace, logs: Path) -> None:
    """Step 2b: the load in this process, Ray started beforehand and its workers warmed
    on a scratch warehouse (as a long-running cluster or ``aigw ingest --watch`` has
    them): the engines' throughput without Ray's start (7 s here) and the workers'
    imports. The local engine runs in this process too, for the same footing."""
    import ray  # noqa: PLC0415 - the lake extra; this step only

    objects = sorted(logs.rglob("*.log.gz"))
    warmup = args.out / "warmup-logs"
    shutil.rmtree(warmup, ignore_errors=True)
    for obj in objects[:4]:
        target = warmup / obj.relative_to(logs)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(obj, target)
    seconds = {}
    for name, cpus in (("local", 0), ("ray 1 cpu", 1), ("ray 2 cpus", 2)):
        engine = EngineSpec(batch_objects=args.batch_objects)
        if cpus:
            engine = EngineSpec(kind="ray", num_cpus=cpus, batch_objects=args.batch_objects)
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            for source, label in ((warmup, "warm-up"), (logs, name)):
                root = args.out / f"warm-{label.replace(' ', '-')}"
                shutil.rmtree(root, ignore_errors=True)
                root.mkdir()
                spec = replace(lake_spec(root), engine=engine)
                settings = IngestSettings(source=str(source), db_path=spec, quality="off")
                summary = run_ingest(settings)
            seconds[name] = summary.seconds
        finally:
            if cpus:
                ray.shutdown()
        print(
            f"  warm, in process: {name:10s} load {summary.seconds:6.1f} s "
            f"{summary.rows_loaded / summary.seconds:8,.0f} rows/s  ({_load()})"
        )
    one, two, local = seconds["ray 1 cpu"], seconds["ray 2 cpus"], seconds["local"]
    print(
        f"  warm: ray 1 cpu / local {one / local:.2f}x; ray 2 cpus over 1: {one / two:.2f}x "
        f"(scaling efficiency {one / two / 2:.0%})"
    )


def time_report(config: Path) -> str:
    """Three fresh-process runs of the report: wall seconds, the cpu and RSS of the last."""
    runs = [
        aigw(["report", "cost", "--by", "provider,model", "--config", str(config)])
        for _ in range(3)
    ]
    walls = ", ".join(f"{run.wall:.2f}" for run in runs)
    return f"{walls} s wall; cpu {runs[-1].cpu:.2f} s, peak RSS {runs[-1].rss_mb:,.0f} MB"


def aigw(args: list[str]) -> Run:
    """Run ``python -m app ARGS`` in this worktree; its wall, CPU, peak RSS, output."""
    env = {k: v for k, v in os.environ.items() if k not in {"AIGW_DB", "AIGW_CONFIG"}}
    env["PYTHONPATH"] = str(REPO)
    # a Ray of its own: without it, ray.init joins any Ray another process of this shared
    # machine started (and then refuses num_cpus)
    env["RAY_ADDRESS"] = "local"
    started = time.monotonic()
    # output to files, not pipes: communicate() would reap the child before wait4 reads
    # its own rusage
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", *args], cwd=REPO, env=env, stdout=out, stderr=errors
        )
        _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        out.seek(0)
        errors.seek(0)
        output, failure = out.read(), errors.read()
    if process.returncode != 0:
        raise SystemExit(f"aigw {' '.join(args)} failed: {failure[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output)


def generate(root: Path, records: int, per_file: int, shape: TrafficShape) -> Path:
    """Write the benchmark's Logpush objects once; later runs reuse them."""
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    write_logpush_files(root, synthetic_records(records, seed=1, shape=shape), per_file=per_file)
    done.touch()
    print(f"generated {records:,} records in {time.monotonic() - started:.0f} s")
    return root


def lake_spec(root: Path) -> LakeSpec:
    return LakeSpec(
        location=str(root / "lake"),
        state=f"sqlite:///{root}/state.db",
        catalog={"type": "sql", "uri": f"sqlite:///{root}/catalog.db"},
    )


def write_config(root: Path, engine: dict[str, object]) -> Path:
    """An ``aigw.toml`` for an Iceberg warehouse under ``root`` with this ``[engine]``."""
    lines = [
        f"{key} = {value!r}" if isinstance(value, int) else f'{key} = "{value}"'
        for key, value in engine.items()
    ]
    path = root / "aigw.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [warehouse]
            kind = "iceberg"
            location = "{root / "lake"}"
            catalog = {{ type = "sql", uri = "sqlite:///{root}/catalog.db" }}
            state = "sqlite:///{root}/state.db"

            [engine]
            """
        )
        + "\n".join(lines)
        + "\n"
    )
    return path


def lake_counts(spec: LakeSpec) -> tuple[int, int, int]:
    """Snapshots, current data files and rows of ``requests``."""
    with Lake(spec) as lake:
        table = lake.table("requests")
        tasks = list(table.scan().plan_files())
        return (
            len(table.snapshots()),
            len(tasks),
            sum(task.file.record_count for task in tasks),
        )


def newest(spec: LakeSpec) -> datetime:
    """The newest ``ts`` of ``requests``."""
    with Lake(spec) as lake:
        ts = lake.table("requests").scan(selected_fields=("ts",)).to_arrow()["ts"]
    return pc.max(ts).as_py().astimezone(UTC)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _mem_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


if __name__ == "__main__":
    started = datetime.now(tz=UTC)
    main()
    print(f"benchmark took {(datetime.now(tz=UTC) - started).total_seconds():.0f} s")
