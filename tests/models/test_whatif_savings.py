"""Savings opportunities: the what-ifs' best changes as one list, per month, by hand."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from models import batch_savings, opportunities, parse_ttl, replay_cache_ttl, scope_filters
from models.whatif.savings import switch_candidates
from tests.models.test_whatif_batch import PRICES as BATCH_PRICES
from tests.models.test_whatif_batch import ROLLUP as BATCH_ROLLUP
from tests.models.test_whatif_cache import REPEATED, ROUTE_TOTALS
from tests.models.whatif_fixtures import M, price, prices, rollup

# openai/big $10 in and openai/small $1 in, both on chat; openai/embed on embeddings
# ($0.02); anthropic/other on chat ($3). 1M input tokens each.
PRICES = prices(
    price("openai", "big", 10, 30),
    price("openai", "small", 1, 2),
    price("openai", "embed", 0.02, 0),
    price("anthropic", "other", 3, 15),
)
USAGE = rollup(
    {"tokens_in": M, "cost_usd": 10.0},
    {"model": "small", "tokens_in": M, "cost_usd": 1.0},
    {"model": "embed", "endpoint": "embeddings", "tokens_in": M, "cost_usd": 0.02},
    {"provider": "anthropic", "model": "other", "tokens_in": M, "cost_usd": 3.0},
)


def test_the_list_ranks_a_switch_a_batch_api_and_a_cache_ttl_by_saving_per_month() -> None:
    """Over 10 days (x3 for a month): big -> small saves $9.00 ($27.00 a month), the batch
    API $6.50 for agent nightly ($19.50), a 1h TTL $5.00 on the route ($15.00; 5m saves only
    $1.00). Nothing is proposed for small (big costs more), embed (no cheaper model on its
    endpoint) or other (no other anthropic model)."""
    replays = {
        label: replay_cache_ttl(ROUTE_TOTALS, REPEATED, parse_ttl(label)) for label in ("5m", "1h")
    }
    batch = batch_savings(
        BATCH_ROLLUP, "agent", ["nightly"], {"openai": 0.5}, overrides=BATCH_PRICES
    )
    table = opportunities(
        USAGE,
        days=10,
        overrides=PRICES,
        cache_replays=replays,
        batch=batch,
        batch_dimension="agent",
    )
    assert table.select("kind", "scope", "saving_per_month_usd", "saving_usd").rows() == [
        ("model", "provider=openai, model=big", pytest.approx(27.0), pytest.approx(9.0)),
        ("batch", "agent=nightly", pytest.approx(19.5), 6.5),
        ("cache", "gateway=prod, endpoint=chat/completions", pytest.approx(15.0), 5.0),
    ]
    assert table["change"].to_list() == [
        "model name: request small instead of big",
        "send agent=nightly's requests through the provider's batch API (answers within 24 hours)",
        "gateway.toml: cache = true, cache_ttl_s = 3600 on the route of chat/completions "
        "(Cloudflare: header cf-aig-cache-ttl: 3600)",
    ]
    assert table["evidence"][0] == (
        "1 priced requests of big: $10.00; the same tokens at small's prices: $1.00"
    )
    assert table.select("requests", "current_cost_usd", "projected_cost_usd").row(0) == (
        1, 10.0, pytest.approx(1.0),
    )  # fmt: skip
    assert opportunities(USAGE, days=10, overrides=PRICES, top=1).height == 1


def test_candidates_are_the_familys_models_on_the_same_endpoint_and_catalogue_siblings() -> None:
    """gpt-4.1 on chat: gpt-4.1-mini and gpt-4.1-nano from the catalogue, and gpt-4o-mini in
    use on chat; never text-embedding-3-small, used on embeddings; and not
    claude-3-5-haiku-lite, a name the catalogue matches to claude-3-5-haiku itself."""
    usage = rollup(
        {"model": "gpt-4.1", "cost_source": "catalog"},
        {"model": "gpt-4o-mini", "cost_source": "catalog"},
        {"model": "text-embedding-3-small", "endpoint": "embeddings", "cost_source": "catalog"},
        {"provider": "anthropic", "model": "claude-3-5-haiku", "cost_source": "catalog"},
    ).collect()
    found = {model: candidates for _, model, candidates in switch_candidates(usage)}
    assert found["gpt-4.1"] == ["gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o-mini"]
    assert "text-embedding-3-small" not in found["gpt-4o-mini"]
    assert "claude-3-5-haiku" not in found


def test_a_scope_reads_back_as_the_filters_of_its_link() -> None:
    assert scope_filters("gateway=prod, endpoint=chat/completions") == {
        "gateway": "prod",
        "endpoint": "chat/completions",
    }


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(Exception, match="longer than 0 days"):
        opportunities(pl.LazyFrame(), days=0)


def test_of_ttls_that_save_the_same_the_shortest_is_proposed() -> None:
    """1h and 24h serve the same repeats ($5.00); the 24h sum carries float noise of
    1e-12 above it: 1h is proposed, its answers fresher for the same saving."""
    one_hour = replay_cache_ttl(ROUTE_TOTALS, REPEATED, parse_ttl("1h"))
    noisy = one_hour.table.with_columns(pl.col("saving_usd") + 1e-12)
    replays = {"1h": one_hour, "24h": dataclasses.replace(one_hour, table=noisy)}
    table = opportunities(USAGE, days=10, overrides=PRICES, cache_replays=replays)
    cache = table.filter(pl.col("kind") == "cache")
    assert cache["change"].to_list() == [
        "gateway.toml: cache = true, cache_ttl_s = 3600 on the route of chat/completions "
        "(Cloudflare: header cf-aig-cache-ttl: 3600)"
    ]
