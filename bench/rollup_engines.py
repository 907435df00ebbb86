"""Rollup engines on Ray: core tasks (what aigw runs) against Ray Data over the same days.

    python bench/rollup_engines.py CONFIG [--cpus 2] [--runs 3]

``CONFIG`` names an Iceberg warehouse (``bench/scale.py`` leaves one with its
``aigw.toml`` in ``OUT/iceberg-local``). With Ray started once (``--cpus``), each run
recomputes every day's hourly rollup and request costs:

- **core tasks**: ``models.rollups_ray.rollups_on_ray`` (one ``ray.remote`` task a day);
- **Ray Data**: a dataset of the days, ``map_batches`` running the same per-day function
  (``day_rollup``) on one day a batch, its outputs taken back to the driver.

Both run the models' own pricing on a day with its look-back (the cache-savings estimate
reads the day before), so the per-day unit is the same and what differs is the engine's
own cost. The outputs are checked equal. Prints seconds per run and the load average.
Not a test; docs/lakehouse.md records the numbers.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

# Run as `python bench/rollup_engines.py`, this folder comes first on sys.path and its
# `ingest.py` would shadow the `ingest` package; drop it so the package is found.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

import numpy as np  # noqa: E402 - after the sys.path fix above
import pyarrow as pa  # noqa: E402
import ray  # noqa: E402

from app.settings import load_settings  # noqa: E402
from core.lake import LakeSpec  # noqa: E402
from core.warehouse import open_warehouse, request_days  # noqa: E402
from models.config import ModelsSettings  # noqa: E402
from models.rollups_ray import day_rollup, rollups_on_ray  # noqa: E402


def ray_data_rollups(
    spec: LakeSpec, settings: ModelsSettings, days: list[Any]
) -> tuple[pa.Table, pa.Table]:
    """Every day's rollup and costs through Ray Data: one day a batch, the same function."""

    def one_day(batch: dict[str, Any]) -> dict[str, Any]:
        # as text: Ray Data turns a datetime into a numpy one and drops its zone
        day = datetime.fromisoformat(str(batch["day"][0]))
        hourly, costs = day_rollup(spec, settings, day, None)
        return {"hourly": [pickle.dumps(hourly)], "costs": [pickle.dumps(costs)]}

    dataset = ray.data.from_items([{"day": day.isoformat()} for day in days]).map_batches(
        one_day, batch_size=1, num_cpus=1
    )
    rows = dataset.take_all()
    hourly = pa.concat_tables([pickle.loads(row["hourly"]) for row in rows])  # noqa: S301 - ours
    costs = pa.concat_tables([pickle.loads(row["costs"]) for row in rows])  # noqa: S301 - ours
    return hourly.sort_by("hour"), costs


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Whether ``a`` and ``b`` hold the same rows, whatever order their days came in;
    sums of money equal to 1e-12 relative (Polars' threads sum in any order, so two runs
    of either engine differ in the last bits)."""
    if not a.schema.equals(b.schema) or a.num_rows != b.num_rows:
        return False
    keys = [
        (name, "ascending")
        for name in a.column_names
        if not pa.types.is_floating(a.schema.field(name).type)
    ]
    x, y = a.sort_by(keys), b.sort_by(keys)
    for name in a.column_names:
        if pa.types.is_floating(a.schema.field(name).type):
            left, right = x[name].to_numpy(), y[name].to_numpy()
            if not np.allclose(left, right, rtol=1e-12, atol=1e-12, equal_nan=True):
                return False
        elif not x[name].equals(y[name]):
            return False
    return True


def main() -> None:
    """Time both engines ``--runs`` times each and check they agree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    loaded = load_settings(args.config, os.environ)
    spec, settings = loaded.warehouse, loaded.models
    assert isinstance(spec, LakeSpec), "an Iceberg warehouse's aigw.toml"  # noqa: S101
    with open_warehouse(spec, read_only=True) as warehouse:
        days = request_days(warehouse.con)
    print(f"{len(days)} days; Ray on {args.cpus} CPUs; load average {os.getloadavg()[0]:.2f}")
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    try:
        results = {}
        for name in ("core tasks", "ray data"):
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                with open_warehouse(spec, read_only=True) as warehouse:
                    if name == "core tasks":
                        results[name] = rollups_on_ray(warehouse, settings, None)
                    else:
                        results[name] = ray_data_rollups(spec, settings, days)
                times.append(time.perf_counter() - started)
            shown = ", ".join(f"{t:.2f}" for t in times)
            print(f"  {name:10s} {shown} s (load average {os.getloadavg()[0]:.2f})")
        same = all(
            _same(a, b) for a, b in zip(results["core tasks"], results["ray data"], strict=True)
        )
        print(f"  outputs equal (rollup and request costs, sorted): {same}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
