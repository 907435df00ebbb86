"""Batch API: non-interactive traffic at batch prices, by hand; the catalogue's batch
prices as genai-prices states them."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from genai_prices.data_snapshot import get_snapshot

from models import batch_savings
from models.pricing import price_table, variant_prices
from models.whatif.batch import BATCH, batch_price_table
from tests.models.whatif_fixtures import M, price, prices, rollup

# openai/big $10 in, $30 out (user prices); custom/llm $1 in, $1 out (no batch API known).
PRICES = prices(price("openai", "big", 10, 30), price("custom", "llm", 1, 1))
# agent "nightly" is non-interactive: 2 requests of big (1M in, 100k out: $10 + $3 = $13)
# and 1 of custom/llm ($1); agent "chat" is interactive ($13, not in scope).
ROLLUP = rollup(
    {"agent": "nightly", "requests": 2, "tokens_in": M, "tokens_out": M // 10, "cost_usd": 13.0},
    {"agent": "nightly", "provider": "custom", "model": "llm", "tokens_in": M, "cost_usd": 1.0},
    {"agent": "nightly", "cost_source": "free", "cached_requests": 1},
    {"agent": "chat", "tokens_in": M, "tokens_out": M // 10, "cost_usd": 13.0},
)  # fmt: skip


def test_non_interactive_traffic_is_priced_at_half_where_a_batch_api_is_known() -> None:
    """openai at 50% off: $13.00 -> $6.50; custom has no batch price: $1.00 stays, noted."""
    answer = batch_savings(ROLLUP, "agent", ["nightly"], {"openai": 0.5}, overrides=PRICES)
    assert answer.table.select(
        "agent", "requests", "affected_requests", "current_cost_usd", "projected_cost_usd",
        "saving_usd",
    ).rows() == [("nightly", 4, 2, 14.0, 7.5, 6.5)]  # fmt: skip
    assert answer.notes == (
        "no batch price known for custom/llm: add a [whatif.batch_discount] entry",
    )


def test_a_discount_setting_prices_another_provider() -> None:
    """custom at 20% off as well: $1.00 -> $0.80; saving $6.70 by model."""
    answer = batch_savings(
        ROLLUP,
        "agent",
        ["nightly"],
        {"openai": 0.5, "custom": 0.2},
        overrides=PRICES,
        by=["model"],
    )
    assert answer.table.select("model", "projected_cost_usd", "saving_usd").rows() == [
        ("big", 6.5, 6.5),
        ("llm", pytest.approx(0.8), pytest.approx(0.2)),
    ]
    assert answer.notes == ()


def test_a_value_not_marked_non_interactive_is_out_of_scope() -> None:
    answer = batch_savings(ROLLUP, "agent", ["weekly"], {"openai": 0.5}, overrides=PRICES)
    assert answer.table.is_empty()
    assert answer.notes == ("no request in scope has agent in weekly",)


def test_catalogue_batch_prices_are_genai_prices_batch_variants() -> None:
    """gpt-4o's batch row has genai-prices' prices for processing=batch, from its start date,
    ranked above the standard row."""
    _, info = get_snapshot().find_provider_model("gpt-4o", None, "openai", None)
    variant = next(v for v in info.price_variants or () if v.when == BATCH)
    start = datetime.combine(variant.constraint.start_date, datetime.min.time(), tzinfo=UTC)  # type: ignore[union-attr]
    expected = info.get_prices(start, BATCH)
    rows = variant_prices([("openai", "gpt-4o")], BATCH)
    assert rows.height == 1
    row = rows.row(0, named=True)
    assert row["valid_from"] == start
    assert row["input_mtok"] == float(expected.input_mtok)  # type: ignore[arg-type]
    assert row["output_mtok"] == float(expected.output_mtok)  # type: ignore[arg-type]
    assert row["rank"] > price_table([("openai", "gpt-4o")])["rank"].max()  # type: ignore[operator]


def test_the_batch_table_discounts_the_standard_prices_below_the_catalogues_batch_rows() -> None:
    """Before the catalogue's batch prices start, gpt-4o is its standard price less 50%."""
    table = batch_price_table([("openai", "gpt-4o")], {"openai": 0.5})
    standard = price_table([("openai", "gpt-4o")]).row(0, named=True)
    discounted = table.filter(pl.col("valid_from").is_null()).row(0, named=True)
    assert discounted["input_mtok"] == standard["input_mtok"] / 2
    assert discounted["price_ref"] == "gpt-4o less 50.0%"
    assert table.filter(pl.col("valid_from").is_not_null()).height == 1
    assert (
        batch_price_table([("openai", "gpt-4o")], {})
        .filter(pl.col("valid_from").is_null())
        .is_empty()
    )
