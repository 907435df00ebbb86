"""Regenerate the committed sample logs: `python sample_data/generate.py`.

`python sample_data/generate.py --traffic DIR` instead writes the demo's larger,
uncommitted traffic to DIR: eight days (2026-11-12 to 2026-11-20 UTC) at 3
requests a minute, quieter weekends, and the agent `summarizer` stuck in a loop
(20 times its rate) from 2026-11-19 10:00 to 11:00 UTC.

Writes ``sample_data/logs/``: Logpush objects in all three timestamp formats, one
object delivered twice (Logpush is at-least-once), one malformed line, the
bucket's ``ownership-challenge.txt``, and a page of the logs REST API. The output
is a pure function of the seeds below.
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from ingest.synthetic import (
    RunawayAgent,
    TrafficShape,
    rest_record,
    synthetic_records,
    write_logpush_files,
)

ROOT = Path(__file__).parent / "logs"


def main() -> None:
    """Write the sample tree from scratch."""
    shutil.rmtree(ROOT, ignore_errors=True)
    logpush = ROOT / "logpush"
    shape = TrafficShape(start=datetime(2026, 11, 20, 9, 0, tzinfo=UTC), requests_per_minute=20)
    records = list(synthetic_records(900, seed=11, shape=shape))
    paths = []
    for part, fmt in enumerate(("unixnano", "unix", "rfc3339")):
        chunk = records[part * 300 : (part + 1) * 300]
        paths += write_logpush_files(logpush, chunk, per_file=150, timestamp_format=fmt, seed=part)
    # At-least-once delivery: the first object arrives a second time under another name.
    first = paths[0]
    shutil.copy(first, first.with_name(first.name.replace(".log.gz", "_redelivered.log.gz")))
    # One malformed line (a truncated record) in the last object: it goes to `rejects`.
    last = paths[-1]
    lines = gzip.decompress(last.read_bytes()).splitlines()
    lines.insert(10, lines[10][:80])
    last.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    (logpush / "ownership-challenge.txt").write_text("sample-ownership-token\n")
    # A page of the logs REST API, as `curl .../logs?page=1` saves it.
    rng = random.Random(5)
    rest_shape = TrafficShape(
        start=datetime(2026, 11, 20, 12, 0, tzinfo=UTC), requests_per_minute=10, gateways=("prod",)
    )
    rest = [
        rest_record(record, rng, step=1 if index % 25 == 0 else 0)
        for index, record in enumerate(synthetic_records(60, seed=12, shape=rest_shape))
    ]
    page = {"success": True, "errors": [], "result": rest, "result_info": {"page": 1, "count": 60}}
    (ROOT / "rest").mkdir(parents=True)
    (ROOT / "rest" / "logs-page-1.json").write_bytes(orjson.dumps(page, option=orjson.OPT_INDENT_2))


def demo_traffic(root: Path) -> None:
    """Eight days of steady traffic with one runaway hour, as Logpush objects under ``root``.

    Written once: a later call finds the ``.complete`` marker and leaves the objects
    as they are, so a second ingest sees them unchanged.
    """
    if (root / ".complete").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    start = datetime(2026, 11, 12, tzinfo=UTC)
    shape = TrafficShape(
        start=start,
        requests_per_minute=3,
        encrypted_bodies=False,
        weekend_factor=0.3,
        runaway=RunawayAgent("summarizer", start=datetime(2026, 11, 19, 10, tzinfo=UTC)),
    )
    end = start + timedelta(days=8)
    records = (r for r in synthetic_records(40_000, seed=21, shape=shape) if r["Timestamp"] < end)
    write_logpush_files(root, records, per_file=2_000, seed=21)
    (root / ".complete").touch()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the sample logs or the demo traffic.")
    parser.add_argument("--traffic", type=Path, help="write the demo traffic to this folder")
    arguments = parser.parse_args()
    if arguments.traffic is not None:
        demo_traffic(arguments.traffic)
    else:
        main()
