"""Cache effectiveness: hit ratios and savings from rollups, and repeated
uncached requests found as cache candidates (hand-computed and end to end)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.warehouse import read_requests
from ingest import IngestSettings, open_warehouse, run_ingest
from models.cache import ROUTE, cache_candidates, cache_summary
from models.config import ModelsSettings
from models.cost import with_cost
from models.errors import ModelsError
from models.pricing import price_table
from tests.conftest import logpush_record, write_ndjson

UTC_US = pl.Datetime("us", "UTC")
ROLLUP_SCHEMA: dict[str, Any] = {
    "hour": UTC_US,
    "gateway": pl.String,
    "endpoint": pl.String,
    "model": pl.String,
    "cost_source": pl.String,
    "requests": pl.Int64,
    "cached_requests": pl.Int64,
    "unknown_cost_requests": pl.Int64,
    "cost_usd": pl.Float64,
    "saved_usd": pl.Float64,
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "requests": pl.Int64,
    "cached_requests": pl.Int64,
    "request_hit_ratio": pl.Float64,
    "cost_usd": pl.Float64,
    "saved_usd": pl.Float64,
    "saved_estimated_usd": pl.Float64,
    "cost_hit_ratio": pl.Float64,
    "unknown_cost_requests": pl.Int64,
}
REQUEST_SCHEMA: dict[str, Any] = {
    "request_hash": pl.String,
    "gateway": pl.String,
    "model": pl.String,
    "ts": UTC_US,
    "status_code": pl.Int32,
    "cached": pl.Boolean,
    "rate_limited": pl.Boolean,
    "cost_usd": pl.Float64,
}
CANDIDATE_SCHEMA: dict[str, Any] = {
    "request_hash": pl.String,
    "gateway": pl.String,
    "model": pl.String,
    "repeats": pl.Int64,
    "cost_usd": pl.Float64,
    "first_seen": UTC_US,
    "last_seen": UTC_US,
    "potential_saving_usd": pl.Float64,
}


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 4, day, hour, minute, tzinfo=UTC)


def _rollup() -> pl.LazyFrame:
    """Two routes over two days: prod/chat has hits ($0.005 of the first day's savings
    estimated), staging/embed has none."""
    rows = [
        # hour, gateway, endpoint, model, source, requests, cached, unknown, cost, saved
        (_at(18, 9), "prod", "chat", "gpt-4o", "catalog", 6, 0, 0, 0.06, None),
        (_at(18, 9), "prod", "chat", "gpt-4o", "free", 2, 2, 0, 0.0, 0.02),
        (_at(19, 3), "prod", "chat", "gpt-4o-mini", "catalog", 3, 0, 0, 0.003, None),
        (_at(19, 3), "prod", "chat", "gpt-4o-mini", "free", 1, 1, 0, 0.0, 0.001),
        (_at(19, 4), "staging", "embed", "bge", "unknown", 4, 0, 4, None, None),
    ]
    first_hits = (pl.col("hour") == _at(18, 9)) & (pl.col("cost_source") == "free")
    return pl.LazyFrame(rows, schema=ROLLUP_SCHEMA, orient="row").with_columns(
        pl.when(first_hits).then(0.005).otherwise(None).alias("saved_estimated_usd")
    )


def test_summary_by_route_gives_hand_computed_ratios_and_savings() -> None:
    """By route, hit ratio is cached/requests and cost ratio saved/(saved + cost)."""
    summary = cache_summary(_rollup(), ROUTE)
    expected = pl.DataFrame(
        {
            "gateway": ["prod", "staging"],
            "endpoint": ["chat", "embed"],
            # prod: 12 requests, 3 hits; $0.063 paid, $0.021 saved -> 0.021 / 0.084
            "requests": [12, 4],
            "cached_requests": [3, 0],
            "request_hit_ratio": [0.25, 0.0],
            "cost_usd": [0.063, 0.0],
            "saved_usd": [0.021, 0.0],
            "saved_estimated_usd": [0.005, 0.0],
            # staging: nothing paid or saved is known, so no cost ratio
            "cost_hit_ratio": [0.25, None],
            "unknown_cost_requests": [0, 4],
        },
        schema={"gateway": pl.String, "endpoint": pl.String, **SUMMARY_SCHEMA},
    )
    assert_frame_equal(summary, expected)


def test_summary_by_model_per_day_has_one_row_per_period_and_model() -> None:
    """At ``grain="day"`` each day's models are summed apart, periods in order."""
    summary = cache_summary(_rollup(), ["model"], grain="day")
    expected = pl.DataFrame(
        {
            "period": [_at(18, 0), _at(19, 0), _at(19, 0)],
            "model": ["gpt-4o", "gpt-4o-mini", "bge"],
            "requests": [8, 4, 4],
            "cached_requests": [2, 1, 0],
            "request_hit_ratio": [0.25, 0.25, 0.0],
            "cost_usd": [0.06, 0.003, 0.0],
            "saved_usd": [0.02, 0.001, 0.0],
            "saved_estimated_usd": [0.005, 0.0, 0.0],
            # 0.02 / 0.08 and 0.001 / 0.004
            "cost_hit_ratio": [0.25, 0.25, None],
            "unknown_cost_requests": [0, 0, 4],
        },
        schema={"period": UTC_US, "model": pl.String, **SUMMARY_SCHEMA},
    )
    assert_frame_equal(summary, expected)


def test_zero_requests_and_zero_would_be_cost_give_null_ratios_not_nan() -> None:
    """A group with no requests and no cost gets null ratios, never NaN or an error."""
    empty_group = pl.LazyFrame(
        [(_at(18, 0), "prod", "chat", "m", "free", 0, 0, 0, 0.0, None)],
        schema=ROLLUP_SCHEMA,
        orient="row",
    )
    summary = cache_summary(empty_group, ["model"])
    assert summary.select("request_hit_ratio", "cost_hit_ratio").rows() == [(None, None)]
    # a rollup built before estimated savings existed has none
    assert summary["saved_estimated_usd"].to_list() == [0.0]


def test_a_rollup_without_columns_gives_an_empty_summary() -> None:
    """A warehouse never rolled up gives an empty summary with typed columns."""
    summary = cache_summary(pl.LazyFrame(), ["model"], grain="week")
    assert summary.is_empty()
    assert dict(summary.schema) == {"period": UTC_US, "model": pl.String, **SUMMARY_SCHEMA}


def test_an_unknown_grain_or_column_is_a_models_error() -> None:
    """A grain outside hour/day/week/month, or a column the rollup lacks, is a ModelsError."""
    with pytest.raises(ModelsError, match="unknown grain 'year'"):
        cache_summary(_rollup(), ROUTE, grain="year")
    with pytest.raises(ModelsError, match="customer"):
        cache_summary(_rollup(), ["customer"])


def _requests() -> pl.LazyFrame:
    """Costed requests: h1 answered three times on prod (first at 10:00), h2 twice
    (first with an unknown cost), h3 once, and occurrences that never count."""
    rows = [
        # request_hash, gateway, model, ts, status, cached, rate limited, cost
        ("h1", "prod", "gpt-4o", _at(18, 10, 30), 200, False, False, 0.1),
        ("h1", "prod", "gpt-4o", _at(18, 11), 200, False, False, 0.2),
        ("h1", "prod", "gpt-4o", _at(18, 10), 200, False, False, 0.3),
        ("h1", "prod", "gpt-4o", _at(18, 12), 200, True, False, 0.0),  # a cache hit
        ("h1", "prod", "gpt-4o", _at(18, 13), 500, False, False, 0.0),  # an error
        ("h1", "prod", "gpt-4o", _at(18, 14), 429, False, True, 0.0),  # rate limited
        ("h1", "staging", "gpt-4o", _at(18, 10), 200, False, False, 0.3),  # once there
        ("h2", "prod", "gpt-4o-mini", _at(18, 9), 200, False, False, None),
        ("h2", "prod", "gpt-4o-mini", _at(18, 9, 5), None, None, None, 0.05),
        ("h3", "prod", "gpt-4o", _at(18, 9), 200, False, False, 0.7),
        (None, "prod", "gpt-4o", _at(18, 9), 200, False, False, 0.9),  # encrypted body
        (None, "prod", "gpt-4o", _at(18, 9), 200, False, False, 0.9),
    ]
    return pl.LazyFrame(rows, schema=REQUEST_SCHEMA, orient="row")


def test_repeated_uncached_requests_are_candidates_saving_all_but_the_first() -> None:
    """Successful uncached repeats count; the saving is their cost minus the earliest one's."""
    candidates = cache_candidates(_requests())
    expected = pl.DataFrame(
        {
            "request_hash": ["h1", "h2"],
            "gateway": ["prod", "prod"],
            "model": ["gpt-4o", "gpt-4o-mini"],
            "repeats": [3, 2],
            # h1: 0.1 + 0.2 + 0.3, the 10:00 call (0.3) fills the cache;
            # h2: the unknown cost counts 0 and is the first call.
            "cost_usd": [0.6, 0.05],
            "first_seen": [_at(18, 10), _at(18, 9)],
            "last_seen": [_at(18, 11), _at(18, 9, 5)],
            "potential_saving_usd": [0.3, 0.05],
        },
        schema=CANDIDATE_SCHEMA,
    )
    assert_frame_equal(candidates, expected)


def test_min_repeats_raises_the_bar_and_must_be_at_least_two() -> None:
    """``min_repeats=3`` keeps only h1; a bar below 2 is a ModelsError."""
    assert cache_candidates(_requests(), min_repeats=3)["request_hash"].to_list() == ["h1"]
    with pytest.raises(ModelsError, match="at least 2"):
        cache_candidates(_requests(), min_repeats=1)


def test_a_frame_without_request_hash_is_a_models_error() -> None:
    """Requests read without ``with_request_hash`` are refused with the column named."""
    with pytest.raises(ModelsError, match="request_hash"):
        cache_candidates(_requests().drop("request_hash"))


def test_identical_plain_request_bodies_ingested_are_found_as_a_candidate(
    tmp_path: Path, db_path: Path
) -> None:
    """Three uncached calls with one plain body, ingested, are one candidate saving two calls."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]}
    other = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say bye"}]}
    encrypted = {"type": "encrypted", "key": "a2V5", "iv": "aXY=", "data": "ZGF0YQ=="}
    start = 1_776_470_400  # 2026-04-18T00:00:00Z
    write_ndjson(
        tmp_path / "logs" / "a.log.gz",
        [
            logpush_record(Timestamp=start, RequestBody=body),
            logpush_record(Timestamp=start + 60, RequestBody=body),
            logpush_record(Timestamp=start + 120, RequestBody=body),
            logpush_record(Timestamp=start + 180, RequestBody=body, Cached=True),
            logpush_record(Timestamp=start + 240, RequestBody=other),
            logpush_record(Timestamp=start + 300, RequestBody=encrypted),
            logpush_record(Timestamp=start + 360, RequestBody=encrypted),
        ],
    )
    run_ingest(IngestSettings(source=str(tmp_path / "logs"), db_path=db_path))
    with open_warehouse(db_path) as warehouse:
        requests = read_requests(warehouse.con, ModelsSettings(), with_request_hash=True)
        candidates = cache_candidates(with_cost(requests, price_table([("openai", "gpt-4o-mini")])))
    assert candidates.height == 1
    assert len(candidates["request_hash"][0]) == 32  # an MD5 of the plain body
    # gpt-4o-mini at $0.15 / $0.60 per 1M tokens: 1000 x 0.15 + 200 x 0.60 = $0.00027 per call
    assert_frame_equal(
        candidates.drop("request_hash"),
        pl.DataFrame(
            {
                "gateway": ["prod"],
                "model": ["gpt-4o-mini"],
                "repeats": [3],
                "cost_usd": [0.00081],
                "first_seen": [datetime(2026, 4, 18, tzinfo=UTC)],
                "last_seen": [datetime(2026, 4, 18, 0, 2, tzinfo=UTC)],
                "potential_saving_usd": [0.00054],
            },
            schema={k: v for k, v in CANDIDATE_SCHEMA.items() if k != "request_hash"},
        ),
    )
