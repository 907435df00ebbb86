"""Regenerate the committed sample logs: `python sample_data/generate.py`.

The demo's traffic comes from the gateway itself (`aigw simulate`), not from here.

Writes ``sample_data/logs/``: Logpush objects in all three timestamp formats, one
object delivered twice (Logpush is at-least-once), one malformed line, the
bucket's ``ownership-challenge.txt``, and a page of the logs REST API. The output
is a pure function of the seeds below.
"""

from __future__ import annotations

import gzip
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import orjson

from sim.synthetic import (
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


if __name__ == "__main__":
    main()
