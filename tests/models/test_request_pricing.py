"""``RequestPricer`` (the gateway's per-request cost) agrees with ``with_cost`` exactly."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from models.cost import with_cost
from models.pricing import OVERRIDE_RANK, PRICE_SCHEMA, price_table
from models.request_pricing import RequestPricer, Usage

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CASES = [
    ("openai", "gpt-4o-mini", Usage(1000, 200)),
    ("openai", "gpt-4o", Usage(5000, 300, cache_read=4096)),
    ("anthropic", "claude-sonnet-4-5", Usage(12000, 800, cache_read=8000, cache_write=2000)),
    ("anthropic", "claude-3-5-haiku-latest", Usage(100, 50)),
    ("openai", "text-embedding-3-small", Usage(800, 0)),  # no output price
]


@pytest.mark.parametrize(("provider", "model", "usage"), CASES)
def test_same_cost_as_the_warehouse_model(provider: str, model: str, usage: Usage) -> None:
    """The gateway logs the same USD the models recompute for the same tokens and time."""
    frame = pl.LazyFrame(
        {
            "ts": [AT],
            "provider": [provider],
            "model": [model],
            "status_code": [200],
            "cached": [False],
            "rate_limited": [False],
            "tokens_in": [usage.tokens_in],
            "tokens_out": [usage.tokens_out],
            "cache_read_tokens": [usage.cache_read],
            "cache_write_tokens": [usage.cache_write],
            "cost": [None],
        },
        schema_overrides={"cost": pl.Float64},
    )
    expected = with_cost(frame, price_table([(provider, model)])).collect()["cost_usd"][0]
    assert expected is not None and expected > 0
    assert RequestPricer().cost(provider, model, AT, usage) == pytest.approx(expected, rel=1e-12)


def test_gpt_4o_mini_hand_computed() -> None:
    """gpt-4o-mini at $0.15 in / $0.60 out per million: 1,000 in + 200 out = $0.00027."""
    cost = RequestPricer().cost("openai", "gpt-4o-mini", AT, Usage(1000, 200))
    assert cost == pytest.approx(0.00027, rel=1e-9)


def test_unknown_model_has_no_cost_and_override_wins() -> None:
    """No catalogue price gives None (never 0); a user price file row is used instead."""
    assert RequestPricer().cost("openai", "house-model", AT, Usage(10, 10)) is None
    override = pl.DataFrame(
        [
            {
                "provider": "openai",
                "model": "house-model",
                "rank": OVERRIDE_RANK,
                "source": "override",
                "price_ref": "prices.toml:1",
                "valid_from": None,
                "daily_start_min": None,
                "daily_end_min": None,
                "above_input_tokens": None,
                "input_mtok": 2.0,
                "output_mtok": 4.0,
                "cache_read_mtok": None,
                "cache_write_mtok": None,
                "cache_write_1h_mtok": None,
            }
        ],
        schema=PRICE_SCHEMA,
    )
    pricer = RequestPricer(override)
    assert pricer.cost("openai", "house-model", AT, Usage(1_000_000, 500_000)) == 4.0
    assert pricer.known("openai", "house-model")
