"""Small hand-made frames for the what-if tests: user price rows, rollup rows and costed
requests, with round numbers so that every dollar in a test is computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from models.pricing import OVERRIDE_RANK, PRICE_SCHEMA

UTC_US = pl.Datetime("us", "UTC")
HOUR = datetime(2026, 4, 18, 10, tzinfo=UTC)  # a Saturday, 10:00 UTC
M = 1_000_000  # tokens in a million: prices are USD per million tokens

ROLLUP_SCHEMA: dict[str, Any] = {
    "hour": UTC_US,
    "gateway": pl.String,
    "endpoint": pl.String,
    "provider": pl.String,
    "model": pl.String,
    "agent": pl.String,
    "user": pl.String,
    "cost_source": pl.String,
    "requests": pl.Int64,
    "cached_requests": pl.Int64,
    "tokens_in": pl.Int64,
    "tokens_out": pl.Int64,
    "cache_read_tokens": pl.Int64,
    "cache_write_tokens": pl.Int64,
    "cost_usd": pl.Float64,
    "saved_usd": pl.Float64,
}
REQUEST_SCHEMA: dict[str, Any] = {
    "log_id": pl.String,
    "ts": UTC_US,
    "gateway": pl.String,
    "endpoint": pl.String,
    "provider": pl.String,
    "model": pl.String,
    "agent": pl.String,
    "user": pl.String,
    "api_key": pl.String,
    "request_hash": pl.String,
    "status_code": pl.Int32,
    "cached": pl.Boolean,
    "rate_limited": pl.Boolean,
    "cost_source": pl.String,
    "tokens_in": pl.Int64,
    "tokens_out": pl.Int64,
    "cache_read_tokens": pl.Int64,
    "cache_write_tokens": pl.Int64,
    "cost_usd": pl.Float64,
    "saved_usd": pl.Float64,
}


def price(
    provider: str,
    model: str,
    input_mtok: float,
    output_mtok: float,
    *,
    cache_read_mtok: float | None = None,
    above_input_tokens: int | None = None,
    rank: int = 0,
) -> dict[str, Any]:
    """A user price row (USD per million tokens): it wins over the catalogue."""
    return {
        "provider": provider,
        "model": model,
        "rank": OVERRIDE_RANK + rank,
        "source": "override",
        "price_ref": f"prices.toml:{rank}",
        "valid_from": None,
        "daily_start_min": None,
        "daily_end_min": None,
        "above_input_tokens": above_input_tokens,
        "input_mtok": input_mtok,
        "output_mtok": output_mtok,
        "cache_read_mtok": cache_read_mtok,
        "cache_write_mtok": None,
        "cache_write_1h_mtok": None,
    }


def prices(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=PRICE_SCHEMA)


def rollup(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Hourly rollup rows; each overrides one priced request of openai/big at 10:00."""
    base: dict[str, Any] = {
        "hour": HOUR,
        "gateway": "prod",
        "endpoint": "chat/completions",
        "provider": "openai",
        "model": "big",
        "agent": "a",
        "user": "ana",
        "cost_source": "override",
        "requests": 1,
        "cached_requests": 0,
        "tokens_in": 0,
        "tokens_out": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.0,
        "saved_usd": None,
    }
    return pl.DataFrame([{**base, **row} for row in rows], schema=ROLLUP_SCHEMA).lazy()


def requests(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Costed requests; each overrides one answered request of openai/big at 10:00."""
    base: dict[str, Any] = {
        "log_id": None,
        "ts": HOUR,
        "gateway": "prod",
        "endpoint": "chat/completions",
        "provider": "openai",
        "model": "big",
        "agent": "a",
        "user": "ana",
        "api_key": "k1",
        "request_hash": None,
        "status_code": 200,
        "cached": False,
        "rate_limited": False,
        "cost_source": "override",
        "tokens_in": 0,
        "tokens_out": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.0,
        "saved_usd": None,
    }
    frame = pl.DataFrame([{**base, **row} for row in rows], schema=REQUEST_SCHEMA)
    return frame.with_columns(pl.format("r{}", pl.int_range(pl.len())).alias("log_id")).lazy()
