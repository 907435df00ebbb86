"""The rollup computation of an Iceberg warehouse as a Ray job: one task per UTC day.

Each task opens the warehouse's snapshot itself (the catalog and the data files are
reachable from every node), prices that day's requests (of the given hours, or all) with
the same ``costed_requests`` and ``hourly_rollup`` as the local path, and returns the
day's hourly rollup and per-request costs as Arrow tables; the driver concatenates them
and writes (``models.rollups_lake``). Days are independent, so the job scales with the
days that changed: a watch batch touches one or two, a rebuild all of them.

Ray core tasks rather than Ray Data or Daft: the unit of work is a day's partition,
already what Iceberg stores together, and the computation is the models' own Polars code,
so a task needs no translation of the pricing into another engine's expressions.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pyarrow as pa

from core.lake import LakeSpec
from core.warehouse import Warehouse, open_warehouse, request_days
from models.config import ModelsSettings
from models.pricing import load_price_file
from models.rollups import costed_requests, rollup_and_costs

__all__ = ["day_rollup", "rollups_on_ray"]

_DAY = timedelta(days=1)


def rollups_on_ray(
    warehouse: Warehouse, settings: ModelsSettings, hours: list[datetime] | None
) -> tuple[pa.Table, pa.Table]:
    """``(hourly rollup, request costs)`` for ``hours`` (None: every day), computed by one
    Ray task per day on the cluster ``[engine]`` names."""
    from core.lake.ray_session import ray_session  # noqa: PLC0415 - the lake extra

    lake = warehouse.lake
    if lake is None:
        raise TypeError("rollups_on_ray needs an Iceberg warehouse")
    days: dict[datetime, list[datetime] | None] = {}
    if hours is None:
        days = dict.fromkeys(request_days(warehouse.con))
    else:
        for hour in hours:
            start = hour.replace(hour=0, minute=0, second=0, microsecond=0)
            days.setdefault(start, []).append(hour)  # type: ignore[union-attr]
    if not days:
        return _empty(warehouse, settings)
    with ray_session(lake.spec.engine) as ray:
        task = ray.remote(num_cpus=1, max_retries=3)(day_rollup)
        refs = [task.remote(lake.spec, settings, day, day_hours) for day, day_hours in days.items()]
        parts = ray.get(refs)
    hourly = pa.concat_tables([part[0] for part in parts], promote_options="permissive")
    costs = pa.concat_tables([part[1] for part in parts], promote_options="permissive")
    return hourly.sort_by("hour"), costs


def day_rollup(
    spec: LakeSpec, settings: ModelsSettings, day: datetime, hours: list[datetime] | None
) -> tuple[pa.Table, pa.Table]:
    """One day's hourly rollup and request costs (of ``hours``, or the whole day), read
    from the warehouse's current snapshot: what a Ray task runs."""
    overrides = load_price_file(settings.prices) if settings.prices is not None else None
    with open_warehouse(spec, read_only=True) as warehouse:
        costed = costed_requests(
            warehouse, settings, since=day, until=day + _DAY, hours=hours, overrides=overrides
        )
        return _collect(costed, settings)


def _collect(costed: pl.LazyFrame, settings: ModelsSettings) -> tuple[pa.Table, pa.Table]:
    """The hourly rollup and the request costs of ``costed``, computed in one pass."""
    rollup, costs = rollup_and_costs(costed, settings)
    return rollup.to_arrow(), costs.to_arrow()


def _empty(warehouse: Warehouse, settings: ModelsSettings) -> tuple[pa.Table, pa.Table]:
    return _collect(costed_requests(warehouse, settings), settings)
