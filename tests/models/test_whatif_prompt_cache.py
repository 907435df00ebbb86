"""Provider prompt caching replayed on requests that repeat a large prefix unread.

Catalogue rates of claude-sonnet-4-5 (USD per million tokens): input 3.00, output 15.00,
cache read 0.30, cache write 3.75. Each request below: 6,000 input tokens (5,000 of them
the prefix), 500 output tokens, no cache reads; now it costs
6,000 x 3 / 1e6 + 500 x 15 / 1e6 = 0.018 + 0.0075 = 0.0255.
A write: 1,000 x 3 + 5,000 x 3.75 + 500 x 15 = (3,000 + 18,750 + 7,500) / 1e6 = 0.02925.
A read: 1,000 x 3 + 5,000 x 0.30 + 500 x 15 = (3,000 + 1,500 + 7,500) / 1e6 = 0.012.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import pytest

from models.cost import with_cost
from models.pricing import price_table
from models.whatif import replay_prompt_cache
from tests.models.whatif_fixtures import HOUR, price

SONNET = ("anthropic", "claude-sonnet-4-5")
PREFIX = "5e1d" * 8


def request(minute: float, **changes: Any) -> dict[str, Any]:
    """One answered claude-sonnet-4-5 request ``minute`` minutes after 10:00 UTC."""
    row = {
        "ts": HOUR + timedelta(minutes=minute),
        "provider": SONNET[0],
        "model": SONNET[1],
        "agent": "support",
        "status_code": 200,
        "cached": False,
        "rate_limited": False,
        "tokens_in": 6000,
        "tokens_out": 500,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "cost": None,
        "prompt_prefix_hash": PREFIX,
        "prompt_prefix_tokens": 5000,
    }
    return row | changes


def costed(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    """The rows priced from the catalogue, as ``costed_requests`` gives them."""
    frame = pl.DataFrame(rows, schema_overrides={"cost": pl.Float64, "status_code": pl.Int32})
    pairs = frame.select("provider", "model").unique().rows()
    return with_cost(frame.lazy(), price_table(pairs))


def test_three_requests_a_minute_apart_write_once_and_read_twice() -> None:
    """1 write + 2 reads: 0.02925 + 2 x 0.012 = 0.05325 instead of 3 x 0.0255 = 0.0765."""
    answer = replay_prompt_cache(costed([request(0), request(1), request(2)]))
    assert answer.table.to_dicts() == [
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "requests": 3,
            "affected_requests": 3,
            "current_cost_usd": pytest.approx(0.0765),
            "projected_cost_usd": pytest.approx(0.05325),
            "saving_usd": pytest.approx(0.02325),
            "cache_write_requests": 1,
            "cache_read_requests": 2,
        }
    ]
    assert not any("no prefix hash" in note for note in answer.notes)


def test_a_gap_longer_than_the_ttl_starts_a_new_chain() -> None:
    """At 0, 4 and 10 minutes: the read at 4 refreshes the entry, 10 is 6 min after it:
    2 writes + 1 read = 2 x 0.02925 + 0.012 = 0.0705, saving 0.006 (rows out of order)."""
    answer = replay_prompt_cache(costed([request(10), request(0), request(4)]))
    row = answer.table.row(0, named=True)
    assert (row["cache_write_requests"], row["cache_read_requests"]) == (2, 1)
    assert row["projected_cost_usd"] == pytest.approx(0.0705)
    assert row["saving_usd"] == pytest.approx(0.006)


def mixed_requests() -> list[dict[str, Any]]:
    """Two eligible requests of support's prefix, then one without a hash (Cloudflare's),
    a small prefix, a cache read, a refusal, and search's request on another prefix."""
    return [
        request(0),
        request(1),
        request(2, prompt_prefix_hash=None, prompt_prefix_tokens=None),
        request(3, prompt_prefix_tokens=1000),
        request(4, cache_read_tokens=5000),
        request(5, status_code=429, rate_limited=True),
        request(6, agent="search", prompt_prefix_hash="other"),
    ]


def test_requests_without_a_hash_or_ineligible_are_kept_and_counted() -> None:
    """A Cloudflare-logged request (no hash) is counted in a note and costs the same; so
    does a small prefix, a request that read the cache, a refused one; a prefix on
    another hash is its own chain. By agent: support's write and read save
    2 x 0.0255 - (0.02925 + 0.012) = 0.00975; search's lone write costs 0.00375 more."""
    rows = mixed_requests()
    answer = replay_prompt_cache(costed(rows), by=["agent"])
    table = answer.table.select(
        "agent", "requests", "cache_write_requests", "cache_read_requests", "saving_usd"
    )
    assert table.rows() == [
        ("support", 6, 1, 1, pytest.approx(0.00975)),
        ("search", 1, 1, 0, pytest.approx(-0.00375)),
    ]
    assert (
        "1 requests carry no prefix hash (logged by another gateway, e.g. Cloudflare's, or "
        "without a system prompt or tools): not estimated"
    ) in answer.notes
    assert "1 requests already read the prompt cache: left as is" in answer.notes


def test_a_model_without_a_cache_read_rate_is_not_estimated() -> None:
    """A model whose only price row has no cache-read rate: nothing changes, a note says so."""
    overrides = pl.DataFrame([price("acme", "big", 1.0, 2.0)])
    rows = [request(0, provider="acme", model="big"), request(1, provider="acme", model="big")]
    frame = pl.DataFrame(rows, schema_overrides={"cost": pl.Float64, "status_code": pl.Int32})
    requests = with_cost(frame.lazy(), price_table([("acme", "big")], overrides))
    answer = replay_prompt_cache(requests, overrides=overrides)
    row = answer.table.row(0, named=True)
    assert (row["affected_requests"], row["saving_usd"]) == (0, 0.0)
    assert "2 requests are on models without a cache-read price: not estimated" in answer.notes


def test_with_the_rollups_totals_only_the_prefixed_requests_are_needed() -> None:
    """The same requests as above, by agent, with the totals from rollup rows: support's 6
    requests cost 4 x 0.0255 + 0.012 (the cache read) + 0 (refused) = 0.114, search's 1
    0.0255. Given only the 6 requests with a
    prefix hash, the table equals the one from all 7, and the request without a hash is
    counted from the totals."""
    rows = mixed_requests()
    whole = replay_prompt_cache(costed(rows), by=["agent"])
    totals = (
        costed(rows).group_by("agent").agg(pl.len().alias("requests"), pl.col("cost_usd").sum())
    )
    prefixed = [row for row in rows if row["prompt_prefix_hash"] is not None]
    answer = replay_prompt_cache(costed(prefixed), by=["agent"], scope=totals)
    assert answer.table.sort("agent").to_dicts() == [
        {name: pytest.approx(value) if isinstance(value, float) else value
         for name, value in row.items()}
        for row in whole.table.sort("agent").to_dicts()
    ]  # fmt: skip
    assert answer.table.sort("agent")["current_cost_usd"].to_list() == [
        pytest.approx(0.0255),
        pytest.approx(0.114),
    ]
    assert answer.notes == whole.notes
