"""Cost per outcome: what one conversation, ticket, session or job costs.

Apps tag each request with a business key in its metadata (``[outcomes] unit_key`` in
``aigw.toml``, e.g. ``conversation_id``); a unit is one value of that key. Pure Polars
over costed requests (``ts``, ``unit``, ``cost_usd`` in USD and, with ``by``, that
dimension's column):

* ``summary`` (one row, or one per ``by`` value): ``units``, ``requests``, ``cost_usd``
  of the tagged requests, per unit ``mean_usd``, ``p50_usd``, ``p95_usd``, ``max_usd``,
  and the requests without the key (``untagged_requests``, ``untagged_usd``);
* ``top``: the most expensive units, with their request count and first and last request;
* ``weekly``: units by the UTC week (from Monday) of their first request, with the same
  per-unit statistics: the trend;
* ``outcomes`` (when an outcomes CSV is joined): per outcome, ``units``, their
  ``cost_usd`` and ``cost_per_unit_usd``, the sum of their ``value``, and
  ``cost_per_outcome_usd``: the cost of every unit divided by the units with this
  outcome (the cost per resolved ticket, unresolved tickets' cost included).

Percentiles interpolate linearly between the closest ranks (numpy's default: p95 of 1,
2, 3, 4, 10 is 8.8). With ``by``, a unit is one (``by`` value, key value) pair: a
conversation two agents worked on counts under each, with each one's part of its cost.
An empty key value counts as untagged.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from core.errors import ConfigError
from core.settings import check_keys
from core.warehouse import Warehouse, unit_cost_rows
from models.config import ModelsSettings

__all__ = [
    "OUTCOME_COLUMNS",
    "OutcomeSettings",
    "UnitCosts",
    "outcome_settings_from",
    "read_outcomes",
    "unit_costs",
    "unit_requests",
]

OUTCOME_COLUMNS: Final = ("unit_id", "outcome", "value")
_KEY_CHARS: Final = 200  # a metadata key longer than this is a mistake, not a key


@dataclass(frozen=True, slots=True)
class OutcomeSettings:
    """The ``[outcomes]`` table of ``aigw.toml``: the metadata key that names a unit
    (None: not set; ``aigw report unit-cost --per`` then says which)."""

    unit_key: str | None = None


def outcome_settings_from(path: Path, section: Mapping[str, Any]) -> OutcomeSettings:
    """Settings from an ``[outcomes]`` table read from ``path``; unknown keys are an error."""
    check_keys(path, section, ("unit_key",), where="[outcomes]")
    key = section.get("unit_key")
    if key is not None and (not isinstance(key, str) or not 0 < len(key) <= _KEY_CHARS):
        raise ConfigError(f"{path}: [outcomes] unit_key must name a metadata key")
    return OutcomeSettings(unit_key=key)


@dataclass(frozen=True, slots=True)
class UnitCosts:
    """Cost per unit: ``summary``, ``top``, ``weekly`` and ``outcomes`` (see the module)."""

    summary: pl.DataFrame
    top: pl.DataFrame
    weekly: pl.DataFrame
    outcomes: pl.DataFrame | None = None


def read_outcomes(path: Path) -> pl.DataFrame:
    """An outcomes CSV (``unit_id,outcome,value`` with a header; ``value`` a number or
    empty) as a frame; ``ConfigError`` naming the file (and line) otherwise."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read outcomes {path}: {error}") from error
    if not rows or tuple(name.strip() for name in rows[0]) != OUTCOME_COLUMNS:
        raise ConfigError(f"outcomes {path}: the header must be {','.join(OUTCOME_COLUMNS)}")
    units: list[str] = []
    outcomes: list[str] = []
    values: list[float | None] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(OUTCOME_COLUMNS) or not row[0]:
            raise ConfigError(f"outcomes {path}:{line}: expected unit_id,outcome,value")
        try:
            value = float(row[2]) if row[2].strip() else None
        except ValueError:
            raise ConfigError(f"outcomes {path}:{line}: value {row[2]!r} is not a number") from None
        units.append(row[0])
        outcomes.append(row[1])
        values.append(value)
    if len(set(units)) != len(units):
        twice = next(unit for unit in units if units.count(unit) > 1)
        raise ConfigError(f"outcomes {path}: unit_id {twice!r} appears more than once")
    return pl.DataFrame(
        {"unit": units, "outcome": outcomes, "value": values},
        schema={"unit": pl.String, "outcome": pl.String, "value": pl.Float64},
    )


def unit_requests(
    warehouse: Warehouse,
    settings: ModelsSettings,
    *,
    unit_key: str,
    by: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, str] | None = None,
) -> pl.LazyFrame:
    """The requests of ``[since, until)`` as ``unit_costs`` takes them: ``ts``, ``unit``
    (the metadata key ``unit_key``'s value), ``by``'s column and ``cost_usd``, each
    request's effective cost as the last rollup refresh stored it (``request_costs``: the
    cost ``aigw report cost`` sums). ``filters`` keep ``dimension = value``."""
    return unit_cost_rows(
        warehouse.con,
        settings,
        unit_key=unit_key,
        by=by,
        since=since,
        until=until,
        filters=filters,
    ).lazy()


def _stats(cost: str = "cost_usd") -> list[pl.Expr]:
    """Per-unit statistics over a frame of one row per unit."""
    per_unit = pl.col(cost)
    return [
        pl.len().cast(pl.Int64).alias("units"),
        pl.col("requests").sum().cast(pl.Int64),
        per_unit.sum().alias("cost_usd"),
        per_unit.mean().alias("mean_usd"),
        per_unit.quantile(0.5, "linear").alias("p50_usd"),
        per_unit.quantile(0.95, "linear").alias("p95_usd"),
        per_unit.max().alias("max_usd"),
    ]


def _aggregate(frame: pl.LazyFrame, keys: Sequence[str], exprs: list[pl.Expr]) -> pl.LazyFrame:
    return frame.group_by(keys).agg(exprs) if keys else frame.select(exprs)


def unit_costs(
    requests: pl.LazyFrame,
    *,
    by: str | None = None,
    top: int = 10,
    outcomes: pl.DataFrame | None = None,
) -> UnitCosts:
    """Cost per unit from costed requests (``ts``, ``unit``, ``cost_usd``, and ``by``'s
    column); ``outcomes`` is ``read_outcomes``' frame. See the module."""
    keys = [by] if by else []
    frame = requests.with_columns(pl.col("unit").replace("", None))
    tagged = frame.filter(pl.col("unit").is_not_null())
    units = tagged.group_by([*keys, "unit"]).agg(
        pl.len().cast(pl.Int64).alias("requests"),
        pl.col("cost_usd").sum(),
        pl.col("ts").min().alias("first_ts"),
        pl.col("ts").max().alias("last_ts"),
    )
    untagged = _aggregate(
        frame.filter(pl.col("unit").is_null()),
        keys,
        [
            pl.len().cast(pl.Int64).alias("untagged_requests"),
            pl.col("cost_usd").sum().alias("untagged_usd"),
        ],
    )
    stats = _aggregate(units, keys, _stats())
    if keys:
        summary = stats.join(untagged, on=keys, how="full", coalesce=True, nulls_equal=True)
    else:
        summary = pl.concat([stats, untagged], how="horizontal")
    summary = summary.with_columns(
        pl.col("units", "requests", "untagged_requests").fill_null(0),
        pl.col("cost_usd", "untagged_usd").fill_null(0.0),
    ).sort(["cost_usd", *keys], descending=[True, *([False] * len(keys))], nulls_last=True)
    weekly = (
        _aggregate(
            units.with_columns(pl.col("first_ts").dt.truncate("1w").alias("week")),
            ["week", *keys],
            _stats(),
        )
        .sort(["week", *keys], nulls_last=True)
        .with_columns(pl.col("week").dt.date())
    )
    ranked = units.sort(
        ["cost_usd", *keys, "unit"],
        descending=[True, *([False] * (len(keys) + 1))],
        nulls_last=True,
    ).head(top)
    summary_frame, top_frame, weekly_frame, unit_frame = pl.collect_all(
        [summary, ranked, weekly, units]
    )
    return UnitCosts(
        summary=summary_frame,
        top=top_frame,
        weekly=weekly_frame,
        outcomes=None if outcomes is None else _outcomes(unit_frame, outcomes),
    )


def _outcomes(units: pl.DataFrame, outcomes: pl.DataFrame) -> pl.DataFrame:
    """Per outcome (null: units the CSV does not list): units, cost, cost per unit, the
    sum of values, and every unit's cost over the units with this outcome."""
    per_unit = units.group_by("unit").agg(pl.col("cost_usd").sum())
    everything = float(per_unit["cost_usd"].sum())
    return (
        per_unit.join(outcomes, on="unit", how="left")
        .group_by("outcome")
        .agg(
            pl.len().cast(pl.Int64).alias("units"),
            pl.col("cost_usd").sum(),
            pl.col("cost_usd").mean().alias("cost_per_unit_usd"),
            pl.col("value").sum(),
        )
        .with_columns((pl.lit(everything) / pl.col("units")).alias("cost_per_outcome_usd"))
        .sort("units", "outcome", descending=[True, False], nulls_last=True)
    )
