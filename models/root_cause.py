"""Root cause of an anomaly: the few cells of the other dimensions that explain a flagged
hour's excess over its expected value.

``explain_flags(rollup, flags, dimensions=…)`` breaks each flag of
``models.anomalies.detect_anomalies`` (a scope value's hour) down by the rollup's other
dimensions (model, provider, API key, user, endpoint, …) with Adtributor (R. Bhagwan et
al., "Adtributor: Revenue Debugging in Advertising Systems", NSDI 2014), applied
recursively to reach cells of several dimensions:

* expected per value: the scope value's mix over its baseline hours (the same hours of
  the week for an ``hour_of_week`` baseline, else the ``history`` hours before) scaled to
  the detector's expected total, ``F_j = expected x baseline_j / baseline`` (0 without
  baseline rows); ``A_j`` is the hour's actual;
* explanatory power, a value's share of the change: ``EP_j = (A_j - F_j) / (A - F)``;
* surprise, its term of the Jensen-Shannon divergence between the expected and actual
  distributions (``p_j = F_j / F``, ``q_j = A_j / A``):
  ``S_j = ½ (p_j ln(2 p_j / (p_j + q_j)) + q_j ln(2 q_j / (p_j + q_j)))``;
* per dimension, values by surprise, each with ``EP_j >= min_element_ep``, are taken
  until their explanatory power reaches ``explained`` (0.8), within ``max_values``; the
  dimension's surprise is theirs summed. Under ``min_surprise`` (the mix is the expected
  one), or not explained that succinctly, a dimension explains nothing;
* the most surprising dimension is chosen (pairs of dimensions when no single one
  explains: two causes crossing); each chosen value is a cell, broken down again by the
  remaining dimensions until none explains it. The leaves, biggest excess first, are
  kept until they reach ``explained`` of the excess (at most ``max_cells``), named with
  the scope value first (``agent=summarizer x model=gpt-4o x api_key=k-17``). A spike
  spread evenly over every value names no cell.

A cell's ``share`` is its excess over the hour's (USD; requests for a request-rate
flag whose spend did not rise). ``repeated_requests``, from the hour's raw requests
(``request_hash``), counts a cell's most frequent identical request: a loop resending one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

__all__ = [
    "BREAKDOWN_SCHEMA",
    "CELL_SCHEMA",
    "SUMMARY_SCHEMA",
    "RootCauses",
    "baseline_hours",
    "explain_flags",
]

_KEYS: Final = {
    "scope": pl.String(),
    "value": pl.String(),
    "hour": pl.Datetime("us", "UTC"),
    "measure": pl.String(),
}
SUMMARY_SCHEMA: Final = pl.Schema(
    {
        **_KEYS,
        "actual": pl.Float64(),
        "expected": pl.Float64(),
        "excess": pl.Float64(),
        "explained_share": pl.Float64(),
        "cells": pl.Int64(),
        "headline": pl.String(),
    }
)
CELL_SCHEMA: Final = pl.Schema(
    {
        **_KEYS,
        "rank": pl.Int64(),
        "cell": pl.String(),
        "conditions": pl.List(pl.Struct({"dimension": pl.String(), "item": pl.String()})),
        "actual": pl.Float64(),
        "expected": pl.Float64(),
        "excess": pl.Float64(),
        "share": pl.Float64(),
        "requests": pl.Int64(),
        "repeated_requests": pl.Int64(),
    }
)
BREAKDOWN_SCHEMA: Final = pl.Schema(
    {
        **_KEYS,
        "dimension": pl.String(),
        "item": pl.String(),
        "actual": pl.Float64(),
        "expected": pl.Float64(),
        "excess": pl.Float64(),
        "explanatory_power": pl.Float64(),
        "surprise": pl.Float64(),
        "candidate": pl.Boolean(),
    }
)
_EXPLAINED_SIGNALS: Final = ("spend", "requests", "new_identity")
_WEEK: Final = timedelta(weeks=1)
_NONE: Final = "(none)"
_TIMES: Final = " \u00d7 "  # the multiplication sign between a cell's conditions
_SHOWN_ITEMS: Final = 5  # breakdown rows per dimension: the biggest excesses


@dataclass(frozen=True, slots=True)
class RootCauses:
    """Per flagged (scope value, hour): ``summary`` (one row, ``SUMMARY_SCHEMA``, its
    ``headline`` the one line alerts carry), ``cells`` (``CELL_SCHEMA``, by rank) and
    ``breakdown`` (``BREAKDOWN_SCHEMA``: every dimension's biggest values and
    Adtributor's candidates, with their explanatory power and surprise)."""

    summary: pl.DataFrame
    cells: pl.DataFrame
    breakdown: pl.DataFrame


@dataclass(frozen=True, slots=True)
class _Settings:
    history: timedelta
    seasonal_weeks: int
    explained: float
    min_element_ep: float
    min_surprise: float
    max_values: int
    max_cells: int


@dataclass(frozen=True, slots=True)
class _Node:
    """A cell: its conditions (dimension, item), actual and expected (the measure's unit)."""

    conditions: tuple[tuple[str, str | None], ...]
    actual: float
    expected: float

    @property
    def excess(self) -> float:
        return self.actual - self.expected


def explain_flags(
    rollup: pl.LazyFrame,
    flags: pl.DataFrame,
    *,
    dimensions: Sequence[str],
    requests: pl.LazyFrame | None = None,
    history: timedelta = timedelta(days=7),
    seasonal_weeks: int = 4,
    explained: float = 0.8,
    min_element_ep: float = 0.1,
    min_surprise: float = 0.01,
    max_values: int = 3,
    max_cells: int = 3,
) -> RootCauses:
    """The root cause of each (scope, value, hour) of ``flags`` (``ANOMALY_SCHEMA``; its
    ``spend``, ``requests`` and ``new_identity`` rows), oldest first.

    ``rollup`` needs ``hour`` (UTC), the flags' scope column, ``dimensions``, ``cost_usd``
    (USD) and ``requests``: the flagged hours and their baselines (``history`` hours
    before, or the same hour of ``seasonal_weeks`` earlier weeks: as the detector had
    them). ``requests`` (optional) are raw requests with ``ts``, the scope,
    ``dimensions`` and ``request_hash``, for ``repeated_requests``. Spend is explained
    when the hour's spend rose (``impact_usd > 0``), else the request count. The other
    parameters are the method's (module docstring).
    """
    if not 0 < explained <= 1 or max_values < 1 or max_cells < 1:
        raise ValueError("explained must be in (0, 1], max_values and max_cells 1 or more")
    settings = _Settings(
        history, seasonal_weeks, explained, min_element_ep, min_surprise, max_values, max_cells
    )
    events = (
        flags.filter(pl.col("signal").is_in(_EXPLAINED_SIGNALS))
        .group_by("scope", "value", "hour")
        .agg(
            pl.col("baseline").sort_by(pl.col("baseline") == "none").first(),
            pl.col("impact_usd").max(),
            pl.col("expected_usd").max(),
            pl.col("expected_requests").max(),
        )
        .sort("hour", "scope", "value", nulls_last=True)
    )
    summaries: list[dict[str, Any]] = []
    cells: list[pl.DataFrame] = [CELL_SCHEMA.to_frame()]
    breakdowns: list[pl.DataFrame] = [BREAKDOWN_SCHEMA.to_frame()]
    for event in events.iter_rows(named=True):
        summary, cell, breakdown = _explain_event(rollup, requests, event, dimensions, settings)
        summaries.append(summary)
        cells.append(cell)
        breakdowns.append(breakdown)
    return RootCauses(
        pl.DataFrame(summaries, schema=SUMMARY_SCHEMA),
        pl.concat(cells, how="vertical"),
        pl.concat(breakdowns, how="vertical"),
    )


def baseline_hours(
    hour: datetime, baseline: str, history: timedelta, seasonal_weeks: int
) -> list[datetime]:
    """The hours whose mix makes the expected breakdown of ``hour`` (UTC): the same hour
    of the ``seasonal_weeks`` weeks before for ``hour_of_week``, the ``history`` hours
    before for ``recent``, none for ``none`` (a new identity: nothing was expected)."""
    if baseline == "hour_of_week":
        return [hour - k * _WEEK for k in range(1, seasonal_weeks + 1)]
    if baseline == "recent":
        count = -(-history // timedelta(hours=1))
        return [hour - k * timedelta(hours=1) for k in range(count, 0, -1)]
    return []


def _explain_event(
    rollup: pl.LazyFrame,
    requests: pl.LazyFrame | None,
    event: dict[str, Any],
    dimensions: Sequence[str],
    settings: _Settings,
) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame]:
    scope, value, hour = event["scope"], event["value"], event["hour"]
    dims = [name for name in dimensions if name != scope]
    spend = (event["impact_usd"] or 0.0) > 0
    measure = "cost_usd" if spend else "requests"
    expected = float((event["expected_usd"] if spend else event["expected_requests"]) or 0.0)
    before = baseline_hours(
        hour, event["baseline"] or "none", settings.history, settings.seasonal_weeks
    )
    rows = (
        rollup.filter(
            pl.col(scope).cast(pl.String).eq_missing(value) & pl.col("hour").is_in([hour, *before])
        )
        .select(
            "hour",
            *(pl.col(name).cast(pl.String) for name in dims),
            pl.col(measure).cast(pl.Float64).fill_null(0.0).alias("_x"),
            pl.col("requests").cast(pl.Int64).fill_null(0).alias("_n"),
        )
        .collect()
    )
    actual_rows = rows.filter(pl.col("hour") == hour)
    base_rows = rows.filter(pl.col("hour") != hour)
    base_total = float(base_rows["_x"].sum())
    scale = expected / base_total if base_total > 0 else 0.0
    root = _Node((), float(actual_rows["_x"].sum()), expected if base_total > 0 else 0.0)
    leaves = _drill(root, actual_rows, base_rows, dims=dims, scale=scale, settings=settings)
    keys = {"scope": scope, "value": value, "hour": hour, "measure": measure}
    chosen = _keep(leaves, root, settings) if leaves != [root] else []
    hashes = _hashes(requests, scope, value, hour, dims) if requests is not None else None
    cell_rows = [
        {
            **keys,
            "rank": rank,
            "cell": _label(scope, value, node.conditions),
            "conditions": [{"dimension": d, "item": item} for d, item in node.conditions],
            "actual": node.actual,
            "expected": node.expected,
            "excess": node.excess,
            "share": node.excess / root.excess if root.excess > 0 else None,
            "requests": int(_within(actual_rows, node.conditions)["_n"].sum()),
            "repeated_requests": None if hashes is None else _repeats(hashes, node.conditions),
        }
        for rank, node in enumerate(chosen, start=1)
    ]
    cells = pl.DataFrame(cell_rows, schema=CELL_SCHEMA)
    explained_share = float(cells["share"].sum()) if cells.height else None
    summary = {
        **keys,
        "actual": root.actual,
        "expected": root.expected,
        "excess": root.excess,
        "explained_share": explained_share,
        "cells": cells.height,
        "headline": _headline(measure, root, cells, dims),
    }
    breakdown = _breakdown(
        root, actual_rows, base_rows, dims=dims, scale=scale, settings=settings
    ).with_columns(**{name: pl.lit(keys[name], dtype) for name, dtype in _KEYS.items()})
    return summary, cells, breakdown.select(BREAKDOWN_SCHEMA.names()).cast(BREAKDOWN_SCHEMA)


def _within(frame: pl.DataFrame, conditions: Sequence[tuple[str, str | None]]) -> pl.DataFrame:
    """The rows of ``frame`` in the cell (a null item matches rows without that dimension)."""
    for dimension, item in conditions:
        frame = frame.filter(pl.col(dimension).eq_missing(item))
    return frame


def _items(
    node: _Node, actual: pl.DataFrame, base: pl.DataFrame, by: Sequence[str], scale: float
) -> pl.DataFrame:
    """Per item of the dimensions ``by`` (one, or a pair) within ``node``: ``actual``,
    ``expected`` (its baseline share of the expected total), ``excess``,
    ``explanatory_power`` and ``surprise``, most surprising first."""
    a = actual.group_by(by).agg(pl.col("_x").sum().alias("actual"))
    f = base.group_by(by).agg((pl.col("_x").sum() * scale).alias("expected"))
    change = node.excess
    p = pl.col("expected") / node.expected if node.expected > 0 else pl.lit(0.0)
    q = pl.col("actual") / node.actual if node.actual > 0 else pl.lit(0.0)
    return (
        a.join(f, on=by, how="full", coalesce=True, nulls_equal=True)
        .with_columns(pl.col("actual", "expected").fill_null(0.0))
        .with_columns(
            (pl.col("actual") - pl.col("expected")).alias("excess"),
            ((pl.col("actual") - pl.col("expected")) / change).alias("explanatory_power"),
            (0.5 * (_xlog(p, p + q) + _xlog(q, p + q))).alias("surprise"),
        )
        .sort(["surprise", *by], descending=[True, *[False] * len(by)], nulls_last=True)
    )


def _xlog(x: pl.Expr, total: pl.Expr) -> pl.Expr:
    """``x ln(2x / total)``, 0 when ``x`` is 0 (its limit)."""
    return pl.when(x > 0).then(x * (2 * x / total).log()).otherwise(0.0)


def _candidates(items: pl.DataFrame, settings: _Settings) -> pl.DataFrame:
    """Adtributor's candidate set of one dimension: items by surprise with an explanatory
    power of ``min_element_ep`` or more, up to the first whose running explanatory power
    reaches ``explained`` (empty when ``max_values`` of them do not)."""
    eligible = items.filter(pl.col("explanatory_power") >= settings.min_element_ep).head(
        settings.max_values
    )
    running = eligible["explanatory_power"].cum_sum()
    reached = [index for index, power in enumerate(running) if power >= settings.explained - 1e-9]
    return eligible.head(reached[0] + 1) if reached else eligible.clear()


def _drill(
    node: _Node,
    actual: pl.DataFrame,
    base: pl.DataFrame,
    *,
    dims: Sequence[str],
    scale: float,
    settings: _Settings,
) -> list[_Node]:
    """The leaves under ``node``: itself when no remaining dimension explains its excess,
    else the leaves under each chosen item of the most surprising dimension. When no
    single dimension explains it, pairs of dimensions are tried (two causes crossing,
    such as one key on one model and another key on another model)."""
    if node.excess <= 0 or not dims:
        return [node]
    best = _best(
        node, actual, base, groupings=[[name] for name in dims], scale=scale, settings=settings
    )
    if best is None and len(dims) > 1:
        pairs = [list(pair) for pair in itertools.combinations(dims, 2)]
        best = _best(node, actual, base, groupings=pairs, scale=scale, settings=settings)
    if best is None:
        return [node]
    by, chosen = best
    rest = [name for name in dims if name not in by]
    leaves: list[_Node] = []
    for item in chosen.iter_rows(named=True):
        conditions = tuple((name, item[name]) for name in by)
        child = _Node((*node.conditions, *conditions), item["actual"], item["expected"])
        leaves += _drill(
            child,
            _within(actual, conditions),
            _within(base, conditions),
            dims=rest,
            scale=scale,
            settings=settings,
        )
    return leaves


def _best(
    node: _Node,
    actual: pl.DataFrame,
    base: pl.DataFrame,
    *,
    groupings: Sequence[list[str]],
    scale: float,
    settings: _Settings,
) -> tuple[list[str], pl.DataFrame] | None:
    """The grouping with the most surprising candidates (the first of equals), if any."""
    best: tuple[float, list[str], pl.DataFrame] | None = None
    for by in groupings:
        items = _items(node, actual, base, by, scale)
        chosen = _candidates(items, settings)
        surprise = float(chosen["surprise"].sum())
        # a single item (constant here) tells nothing, even when nothing was expected
        enough = items.height > 1 and chosen.height > 0 and surprise >= settings.min_surprise
        if enough and (best is None or surprise > best[0] + 1e-12):
            best = (surprise, by, chosen)
    return None if best is None else (best[1], best[2])


def _keep(leaves: list[_Node], root: _Node, settings: _Settings) -> list[_Node]:
    """The biggest leaves, until they explain ``explained`` of the root's excess."""
    kept: list[_Node] = []
    share = 0.0
    for leaf in sorted(leaves, key=lambda node: -node.excess):
        if leaf.excess <= 0 or len(kept) == settings.max_cells:
            break
        kept.append(leaf)
        share += leaf.excess / root.excess
        if share >= settings.explained - 1e-9:
            break
    return kept


def _breakdown(
    root: _Node,
    actual: pl.DataFrame,
    base: pl.DataFrame,
    *,
    dims: Sequence[str],
    scale: float,
    settings: _Settings,
) -> pl.DataFrame:
    """Every dimension's items at the top: its candidates and its biggest excesses."""
    if root.excess <= 0:
        return BREAKDOWN_SCHEMA.to_frame()
    parts = [BREAKDOWN_SCHEMA.to_frame().drop(_KEYS)]
    for dimension in dims:
        items = _items(root, actual, base, [dimension], scale).rename({dimension: "item"})
        candidates = _candidates(items, settings)["item"]
        marked = items.with_columns(
            pl.lit(dimension).alias("dimension"),
            (
                pl.col("item").is_in(candidates.drop_nulls().implode())
                | (pl.col("item").is_null() & pl.lit(candidates.null_count() > 0))
            ).alias("candidate"),
        )
        top = marked.sort(["excess", "item"], descending=[True, False], nulls_last=True)
        shown = top.filter(pl.col("candidate") | (pl.int_range(pl.len()) < _SHOWN_ITEMS))
        parts.append(shown.select(parts[0].columns))
    return pl.concat(parts, how="vertical_relaxed")


def _hashes(
    requests: pl.LazyFrame, scope: str, value: str | None, hour: datetime, dims: Sequence[str]
) -> pl.DataFrame:
    """The hour's raw requests of the scope value: dimensions (as text) and ``request_hash``."""
    return (
        requests.filter(
            (pl.col("ts").dt.truncate("1h") == hour)
            & pl.col(scope).cast(pl.String).eq_missing(value)
        )
        .select(
            *(pl.col(name).cast(pl.String) for name in dims),
            pl.col("request_hash").cast(pl.String),
        )
        .collect()
    )


def _repeats(hashes: pl.DataFrame, conditions: Sequence[tuple[str, str | None]]) -> int:
    """How many of the cell's requests are its most repeated identical request (0: none
    repeats; requests without a hash cannot be compared)."""
    counts = _within(hashes, conditions)["request_hash"].drop_nulls().value_counts()
    top = int(counts.select(pl.col("count").max()).item() or 0) if counts.height else 0
    return top if top >= 2 else 0


def _label(scope: str, value: str | None, conditions: Sequence[tuple[str, str | None]]) -> str:
    """``agent=summarizer x model=gpt-4o x api_key=k-17``."""
    parts = [(scope, value), *conditions]
    return _TIMES.join(f"{name}={_NONE if item is None else item}" for name, item in parts)


def _amount(measure: str, amount: float) -> str:
    return f"${amount:,.2f}" if measure == "cost_usd" else f"{amount:,.0f} requests"


def _percent(share: float) -> str:
    """A share in whole percent, rounded down (a message never claims more)."""
    return f"{math.floor(share * 100 + 1e-6)}%"


def _headline(measure: str, root: _Node, cells: pl.DataFrame, dims: Sequence[str]) -> str:
    """One line: ``93% of +$2.29: agent=summarizer x model=gpt-4o x api_key=k-17; 610 of
    its 754 requests repeat one request`` (several cells: each with its share)."""
    excess = f"+{_amount(measure, root.excess)}"
    if root.excess <= 0:
        return (
            f"no excess to explain ({_amount(measure, root.actual)} against "
            f"{_amount(measure, root.expected)} expected)"
        )
    if cells.is_empty():
        return (
            f"spread evenly: no few values of {', '.join(dims) or 'any dimension'} "
            f"explain most of {excess}"
        )
    texts = []
    for cell in cells.iter_rows(named=True):
        repeats = cell["repeated_requests"]
        said = (
            f"{repeats:,} of its {cell['requests']:,} requests repeat one request"
            if repeats
            else ""
        )
        if cells.height == 1:
            texts.append(cell["cell"] + (f"; {said}" if said else ""))
        else:
            inside = "; ".join(part for part in (_percent(cell["share"]), said) if part)
            texts.append(f"{cell['cell']} ({inside})")
    total = float(cells["share"].sum())
    return f"{_percent(total)} of {excess}: " + ", ".join(texts)
