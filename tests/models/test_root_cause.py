"""Root cause of an anomaly (Adtributor, drilled down): a spike caused by one model and
one key, a spike spread evenly (no cell), a repeated request, the detector's seasonal
baseline, and end to end on a synthetic runaway agent."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ingest import IngestSettings, open_warehouse, run_ingest
from models.anomalies import ANOMALY_SCHEMA, detect_anomalies
from models.config import ModelsSettings
from models.reports import read_rollup
from models.rollups import refresh_rollups
from models.root_cause import BREAKDOWN_SCHEMA, CELL_SCHEMA, baseline_hours, explain_flags
from sim.synthetic import RunawayAgent, TrafficShape, synthetic_records, write_logpush_files

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
SPIKE = MONDAY + 4 * HOUR
DIMS = ("model", "api_key")
# Four baseline hours: each of the four (model, key) cells spends $1 in 1 request.
STEADY = {("a", "k1"): 1.0, ("a", "k2"): 1.0, ("b", "k1"): 1.0, ("b", "k2"): 1.0}


# An hourly rollup of agent, model and key (what the fixtures here and in
# tests/alerts/test_evaluate.py build).
ROLLUP_SCHEMA = {
    "hour": pl.Datetime("us", "UTC"),
    "agent": pl.String,
    "model": pl.String,
    "api_key": pl.String,
    "cost_usd": pl.Float64,
    "requests": pl.Int64,
}


def _rollup(hours: list[dict[tuple[str, str], float]], agent: str = "bot") -> pl.LazyFrame:
    """Rollup rows from ``MONDAY``: per hour, (model, key) -> USD (one request per $1)."""
    rows = [
        (MONDAY + offset * HOUR, agent, model, key, usd, round(usd))
        for offset, cells in enumerate(hours)
        for (model, key), usd in cells.items()
    ]
    return pl.LazyFrame(
        rows,
        schema=ROLLUP_SCHEMA,
        orient="row",
    )


def _flag(**row: Any) -> pl.DataFrame:
    """One spend flag of agent ``bot`` at ``SPIKE`` against the recent baseline."""
    base = {
        "scope": "agent",
        "value": "bot",
        "hour": SPIKE,
        "signal": "spend",
        "baseline": "recent",
        "score": 50.0,
        "expected_usd": 4.0,
        "expected_requests": 4.0,
    }
    return pl.DataFrame([{**base, **row}], schema=ANOMALY_SCHEMA)


def _surprise(p: float, q: float) -> float:
    """One item's Jensen-Shannon term, by hand."""
    term = 0.0
    for x in (p, q):
        if x > 0:
            term += x * math.log(2 * x / (p + q))
    return term / 2


def test_a_spike_of_one_model_and_one_key_is_one_cell_with_all_of_the_excess() -> None:
    """$4 an hour spread over 2 models x 2 keys, then model b with key k2 spends $10
    more: one cell, ``agent=bot x model=b x api_key=k2``, $11 against $1, 100% of +$10."""
    spike = {**STEADY, ("b", "k2"): 11.0}
    rollup = _rollup([STEADY] * 4 + [spike])
    flags = _flag(actual_usd=14.0, impact_usd=10.0, actual_requests=14)

    causes = explain_flags(rollup, flags, dimensions=DIMS, history=4 * HOUR)

    keys = {"scope": "agent", "value": "bot", "hour": SPIKE, "measure": "cost_usd"}
    expected_cells = pl.DataFrame(
        [
            {
                **keys,
                "rank": 1,
                "cell": "agent=bot \u00d7 model=b \u00d7 api_key=k2",
                "conditions": [
                    {"dimension": "model", "item": "b"},
                    {"dimension": "api_key", "item": "k2"},
                ],
                "actual": 11.0,
                "expected": 1.0,
                "excess": 10.0,
                "share": 1.0,
                "requests": 11,
                "repeated_requests": None,
            }
        ],
        schema=CELL_SCHEMA,
    )
    assert_frame_equal(causes.cells, expected_cells)
    (summary,) = causes.summary.iter_rows(named=True)
    assert (summary["actual"], summary["expected"], summary["excess"]) == (14.0, 4.0, 10.0)
    assert summary["explained_share"] == 1.0
    assert summary["headline"] == "100% of +$10.00: agent=bot \u00d7 model=b \u00d7 api_key=k2"
    # Top level: model b (expected half, $2; actual 12 of 14) explains all of the change;
    # a ties with its expected share and explains none. Keys mirror models.
    expected_breakdown = pl.DataFrame(
        [
            {**keys, "dimension": dim, "item": item, "actual": actual, "expected": 2.0,
             "excess": actual - 2.0, "explanatory_power": (actual - 2.0) / 10.0,
             "surprise": _surprise(0.5, actual / 14.0), "candidate": actual == 12.0}
            for dim, items in (("model", ("b", "a")), ("api_key", ("k2", "k1")))
            for item, actual in zip(items, (12.0, 2.0), strict=True)
        ],
        schema=BREAKDOWN_SCHEMA,
    )  # fmt: skip
    assert_frame_equal(causes.breakdown, expected_breakdown)


def test_a_spike_spread_evenly_over_every_value_names_no_cell() -> None:
    """Every cell spends 3.5 times its usual $1: each value keeps its expected share, so no
    dimension is surprising (surprise 0) and the hour is 'spread evenly', not one cause."""
    even = dict.fromkeys(STEADY, 3.5)
    rollup = _rollup([STEADY] * 4 + [even])
    flags = _flag(actual_usd=14.0, impact_usd=10.0, actual_requests=16)

    causes = explain_flags(rollup, flags, dimensions=DIMS, history=4 * HOUR)

    assert_frame_equal(causes.cells, CELL_SCHEMA.to_frame())
    (summary,) = causes.summary.iter_rows(named=True)
    assert (summary["excess"], summary["cells"], summary["explained_share"]) == (10.0, 0, None)
    assert summary["headline"] == (
        "spread evenly: no few values of model, api_key explain most of +$10.00"
    )
    assert causes.breakdown["surprise"].to_list() == [0.0] * 4
    assert causes.breakdown["explanatory_power"].to_list() == [0.5] * 4


def test_a_repeated_request_is_counted_in_its_cell_from_the_raw_requests() -> None:
    """The b x k2 cell's 11 requests hold one request sent 9 times, one other, and one
    without a hash (encrypted): '9 of its 11 requests repeat one request'."""
    spike = {**STEADY, ("b", "k2"): 11.0}
    rollup = _rollup([STEADY] * 4 + [spike])
    hashes = ["h1"] * 9 + ["h2", None] + ["h3", "h3", "h4"]  # the last 3: the other cells
    cells = [("b", "k2")] * 11 + [("a", "k1"), ("a", "k2"), ("b", "k1")]
    requests = pl.LazyFrame(
        {
            "ts": [SPIKE + timedelta(minutes=i) for i in range(14)],
            "agent": ["bot"] * 14,
            "model": [model for model, _ in cells],
            "api_key": [key for _, key in cells],
            "request_hash": hashes,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    flags = _flag(actual_usd=14.0, impact_usd=10.0, actual_requests=14)

    causes = explain_flags(rollup, flags, dimensions=DIMS, history=4 * HOUR, requests=requests)

    assert causes.cells.select("requests", "repeated_requests").row(0) == (11, 9)
    assert causes.summary["headline"].item() == (
        "100% of +$10.00: agent=bot \u00d7 model=b \u00d7 api_key=k2; "
        "9 of its 11 requests repeat one request"
    )


def test_two_causes_in_one_hour_are_two_cells_with_their_shares() -> None:
    """Key k1 on model a adds $6 and key k2 on model b $4: two cells, 60% and 40%, each
    named down to its key."""
    spike = {**STEADY, ("a", "k1"): 7.0, ("b", "k2"): 5.0}
    rollup = _rollup([STEADY] * 4 + [spike])
    flags = _flag(actual_usd=14.0, impact_usd=10.0, actual_requests=14)

    causes = explain_flags(rollup, flags, dimensions=DIMS, history=4 * HOUR)

    assert causes.cells.select("cell", "excess", "share").rows() == [
        ("agent=bot \u00d7 model=a \u00d7 api_key=k1", 6.0, 0.6),
        ("agent=bot \u00d7 model=b \u00d7 api_key=k2", 4.0, 0.4),
    ]
    assert causes.summary["headline"].item() == (
        "100% of +$10.00: agent=bot \u00d7 model=a \u00d7 api_key=k1 (60%), "
        "agent=bot \u00d7 model=b \u00d7 api_key=k2 (40%)"
    )


def test_the_expected_mix_is_the_detectors_baseline_scaled_to_its_expected_total() -> None:
    """Seasonal flags take their mix from the same hour of earlier weeks; a request-rate
    flag whose spend did not rise explains requests; a new identity expected nothing."""
    assert baseline_hours(SPIKE, "hour_of_week", 4 * HOUR, 3) == [
        SPIKE - timedelta(weeks=k) for k in (1, 2, 3)
    ]
    assert baseline_hours(SPIKE, "recent", 2 * HOUR, 3) == [SPIKE - 2 * HOUR, SPIKE - HOUR]
    assert baseline_hours(SPIKE, "none", 2 * HOUR, 3) == []
    # Baseline: model a $3, b $1 (mix 3:1), scaled to the detector's $8: a 6, b 2.
    lopsided = {("a", "k1"): 3.0, ("b", "k1"): 1.0}
    spike = {("a", "k1"): 6.0, ("b", "k1"): 12.0}
    rollup = _rollup([lopsided] * 4 + [spike])
    flags = _flag(actual_usd=18.0, expected_usd=8.0, impact_usd=10.0)

    causes = explain_flags(rollup, flags, dimensions=("model",), history=4 * HOUR)

    assert causes.cells.select("cell", "actual", "expected", "share").rows() == [
        ("agent=bot \u00d7 model=b", 12.0, 2.0, 1.0)
    ]
    # A loop of free requests: spend did not rise, requests did (model b: 1 -> 9).
    free = _flag(actual_usd=4.0, impact_usd=0.0, expected_requests=4.0, signal="requests")
    loop = _rollup([lopsided] * 4 + [{("a", "k1"): 3.0, ("b", "k1"): 1.0}]).with_columns(
        pl.when(pl.col("model").eq("b") & pl.col("hour").eq(SPIKE))
        .then(9)
        .otherwise("requests")
        .alias("requests")
    )
    by_requests = explain_flags(loop, free, dimensions=("model",), history=4 * HOUR)
    assert by_requests.summary.select("measure", "excess").row(0) == ("requests", 8.0)
    assert by_requests.summary["headline"].item() == (
        "100% of +8 requests: agent=bot \u00d7 model=b"
    )


def test_a_new_identity_is_explained_by_its_mix_without_its_constant_dimensions() -> None:
    """A new agent spends $1 on model a and $9 on model b, all with key k1: nothing was
    expected, so the excess is its spend; model b holds 90% of it, and the key, the same
    on every request, is no part of the cell."""
    rollup = _rollup([{}] * 4 + [{("a", "k1"): 1.0, ("b", "k1"): 9.0}], agent="new")
    flags = _flag(
        value="new", signal="new_identity", baseline="none", score=None, actual_usd=10.0,
        expected_usd=0.0, impact_usd=10.0, expected_requests=0.0,
    )  # fmt: skip

    causes = explain_flags(rollup, flags, dimensions=DIMS)

    assert causes.cells.select("cell", "actual", "expected", "share").rows() == [
        ("agent=new \u00d7 model=b", 9.0, 0.0, 0.9)
    ]
    assert causes.summary["headline"].item() == "90% of +$10.00: agent=new \u00d7 model=b"
    assert causes.breakdown.filter(pl.col("dimension") == "model")["surprise"].to_list() == [
        pytest.approx(0.45 * math.log(2)),
        pytest.approx(0.05 * math.log(2)),
    ]


def _warehouse(tmp_path: Path, shape: TrafficShape, count: int) -> Path:
    logs, db = tmp_path / "logs", tmp_path / "aigw.duckdb"
    write_logpush_files(logs, synthetic_records(count, seed=3, shape=shape), per_file=10_000)
    run_ingest(IngestSettings(source=str(logs), db_path=db))
    with open_warehouse(db) as warehouse:
        refresh_rollups(warehouse, ModelsSettings())
    return db


def test_a_synthetic_runaway_that_repeats_its_usual_mix_is_spread_evenly(
    tmp_path: Path,
) -> None:
    """Eight days at 3 requests a minute through ingest and rollups; ``summarizer`` runs 20x
    for an hour with its usual users and mix of models, gateways and endpoints: the
    detector flags it, its excess is the flag's impact, and since every value keeps about
    its share (no item's surprise reaches 0.01), no cell beyond the agent is named."""
    spike = MONDAY + timedelta(days=7, hours=14)
    shape = TrafficShape(
        start=MONDAY,
        requests_per_minute=3,
        encrypted_bodies=False,
        runaway=RunawayAgent("summarizer", start=spike, duration=HOUR, multiplier=20),
    )
    db = _warehouse(tmp_path, shape, count=3 * 60 * 24 * 8)
    with open_warehouse(db, read_only=True) as warehouse:
        rollup = read_rollup(warehouse.con).collect().lazy()
    flags = detect_anomalies(rollup, "agent", now=spike + HOUR, window=HOUR)
    assert flags["value"].unique().to_list() == ["summarizer"]

    causes = explain_flags(rollup, flags, dimensions=ModelsSettings().all_dimensions)

    (summary,) = causes.summary.iter_rows(named=True)
    impact = flags.filter(pl.col("signal") == "spend")["impact_usd"].item()
    assert (summary["measure"], summary["excess"]) == ("cost_usd", pytest.approx(impact))
    assert causes.cells.is_empty()
    assert summary["headline"].startswith("spread evenly: no few values of gateway, provider")
    dimensions = set(ModelsSettings().all_dimensions) - {"agent"}
    assert set(causes.breakdown["dimension"]) == dimensions
    assert causes.breakdown["surprise"].max() < 0.01
