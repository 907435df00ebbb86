"""Warehouses for the tests of what the rollup refresh keeps (``cacheable_requests``,
``prompt_prefixed_requests``, ``replay_requests``): records loaded by the real ingest, in
seeded random batches."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.lake import LakeSpec
from ingest import IngestSettings, run_ingest
from tests.conftest import write_ndjson

Record = Callable[[random.Random, int, int], dict[str, Any]]


def seeded_batch(
    record: Record, seed: int, count: int, first: int, span: int
) -> list[dict[str, Any]]:
    """``count`` records of ``record(rng, at, serial)`` at whole seconds in ``span``
    seconds from ``first`` (unix seconds; some share a second), in time order, their
    serials ``seed * 100,000`` on."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    times = sorted(first + rng.randrange(span) for _ in range(count))
    return [record(rng, at, seed * 100_000 + n) for n, at in enumerate(times)]


def load(db: Path | LakeSpec, source: Path, records: list[dict[str, Any]], name: str) -> None:
    """``records`` written to ``source/<name>.log.gz`` and the folder ingested into ``db``
    (quality gate off)."""
    write_ndjson(source / f"{name}.log.gz", records)
    run_ingest(IngestSettings(source=str(source), db_path=db, quality="off"))
