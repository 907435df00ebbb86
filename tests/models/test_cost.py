"""Effective cost per request: hand-computed prices for cache reads and writes, free
attempts, unknown models, dated overrides and long-context tiers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from genai_prices import Usage, calc_price
from polars.testing import assert_frame_equal

from models import CATALOG_PROVIDERS, COST_COLUMNS, load_price_file, price_table, with_cost
from models.pricing import OVERRIDE_RANK, PRICE_SCHEMA
from models.reports import reconciliation

UTC_US = pl.Datetime("us", "UTC")
NOON = datetime(2026, 4, 18, 12, tzinfo=UTC)

REQUEST_SCHEMA = pl.Schema(
    {
        "log_id": pl.String(),
        "ts": UTC_US,
        "provider": pl.String(),
        "model": pl.String(),
        "status_code": pl.Int32(),
        "cached": pl.Boolean(),
        "rate_limited": pl.Boolean(),
        "tokens_in": pl.Int64(),
        "tokens_out": pl.Int64(),
        "cache_read_tokens": pl.Int64(),
        "cache_write_tokens": pl.Int64(),
        "cost": pl.Float64(),
        "step": pl.Int32(),
    }
)
VIEW_SCHEMA = pl.Schema(
    {
        "log_id": pl.String(),
        "input_usd": pl.Float64(),
        "cache_read_usd": pl.Float64(),
        "cache_write_usd": pl.Float64(),
        "output_usd": pl.Float64(),
        "cost_usd": pl.Float64(),
        "saved_usd": pl.Float64(),
        "cost_source": pl.String(),
        "price_ref": pl.String(),
    }
)


def requests(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Requests as the warehouse holds them; each row overrides a plain 200 at noon UTC."""
    base: dict[str, Any] = {
        "ts": NOON,
        "provider": "anthropic",
        "model": "claude-sonnet-4",
        "status_code": 200,
        "cached": False,
        "rate_limited": False,
        "tokens_in": None,
        "tokens_out": None,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "cost": None,
        "step": 0,
    }
    return pl.DataFrame([{**base, **row} for row in rows], schema=REQUEST_SCHEMA).lazy()


def price(
    provider: str,
    model: str,
    *,
    input_mtok: float,
    output_mtok: float,
    cache_read_mtok: float | None = None,
    cache_write_mtok: float | None = None,
    cache_write_1h_mtok: float | None = None,
    source: str = "override",
    ref: str = "prices.toml:1",
    rank: int | None = None,
    above_input_tokens: int | None = None,
    valid_from: datetime | None = None,
) -> dict[str, Any]:
    """One price-table row (USD per million tokens)."""
    return {
        "provider": provider,
        "model": model,
        "rank": rank if rank is not None else (OVERRIDE_RANK if source == "override" else 0),
        "source": source,
        "price_ref": ref,
        "valid_from": valid_from,
        "daily_start_min": None,
        "daily_end_min": None,
        "above_input_tokens": above_input_tokens,
        "input_mtok": input_mtok,
        "output_mtok": output_mtok,
        "cache_read_mtok": cache_read_mtok,
        "cache_write_mtok": cache_write_mtok,
        "cache_write_1h_mtok": cache_write_1h_mtok,
    }


def prices(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=PRICE_SCHEMA)


def costs(frame: pl.LazyFrame, table: pl.DataFrame) -> pl.DataFrame:
    """The cost columns a FinOps user reads, per request."""
    return with_cost(frame, table).select(VIEW_SCHEMA.names()).collect()


def expected(*rows: tuple[Any, ...]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=VIEW_SCHEMA, orient="row")


SONNET = price(
    "anthropic",
    "claude-sonnet-4",
    input_mtok=3.0,
    output_mtok=15.0,
    cache_read_mtok=0.30,
    cache_write_mtok=3.75,
)


def test_anthropic_cache_reads_and_writes_are_priced_at_their_own_rates() -> None:
    """1M tokens in (800k cache reads, 100k writes) + 1k out at $3/$15/$0.30/$3.75 cost $0.93."""
    frame = requests(
        {
            "log_id": "a",
            "tokens_in": 1_000_000,
            "cache_read_tokens": 800_000,
            "cache_write_tokens": 100_000,
            "tokens_out": 1_000,
            "cost": 0.9,
        }
    )
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        # 100k uncached x $3 + 800k x $0.30 + 100k x $3.75 + 1k x $15, per million
        expected(("a", 0.3, 0.24, 0.375, 0.015, 0.93, None, "override", "prices.toml:1")),
    )


def test_cost_frame_keeps_the_logged_cost_beside_the_recomputed_one() -> None:
    """cost_logged is what the gateway logged; cost_usd is aigw's price; both are kept."""
    frame = requests({"log_id": "a", "tokens_in": 1_000_000, "tokens_out": 0, "cost": 2.5})
    out = with_cost(frame, prices(SONNET)).collect()
    assert set(COST_COLUMNS) <= set(out.columns)
    assert "cost" not in out.columns
    assert out.select("cost_usd", "cost_logged").row(0) == (3.0, 2.5)


@pytest.mark.parametrize(
    ("slug", "model", "usage"),
    [
        ("anthropic", "claude-sonnet-4", (1_000_000, 800_000, 100_000, 1_000)),
        ("openai", "gpt-4o-mini", (10_000, 4_000, 0, 100)),
        ("google-ai-studio", "gemini-2.5-pro", (150_000, 50_000, 0, 2_000)),
        ("google-ai-studio", "gemini-2.5-pro", (250_000, 50_000, 0, 2_000)),
        ("workers-ai", "@cf/meta/llama-3.1-8b-instruct", (1_000, 0, 0, 100)),
    ],
)
def test_catalogue_cost_matches_the_genai_prices_calculator(
    slug: str, model: str, usage: tuple[int, int, int, int]
) -> None:
    """A catalogue-priced request costs what genai-prices itself computes for the same usage."""
    tokens_in, cache_read, cache_write, tokens_out = usage  # tokens_in includes the cache ones
    frame = requests(
        {
            "log_id": "a",
            "provider": slug,
            "model": model,
            "tokens_in": tokens_in,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "tokens_out": tokens_out,
        }
    )
    row = with_cost(frame, price_table([(slug, model)])).collect().row(0, named=True)
    reference = calc_price(
        Usage(
            input_tokens=tokens_in,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            output_tokens=tokens_out,
        ),
        model,
        provider_id=CATALOG_PROVIDERS[slug],
        genai_request_timestamp=NOON,
    )
    assert row["cost_source"] == "catalog"
    assert row["price_ref"] == reference.model.id
    assert row["cost_usd"] == pytest.approx(float(reference.total_price), rel=1e-9)


def test_cache_writes_without_a_write_price_are_billed_at_the_input_price() -> None:
    """OpenAI-style prices have no cache-write rate: writes cost the input rate, reads their own."""
    table = prices(price("openai", "gpt-4o", input_mtok=2.0, output_mtok=8.0, cache_read_mtok=0.5))
    frame = requests(
        {
            "log_id": "a",
            "provider": "openai",
            "model": "gpt-4o",
            "tokens_in": 10_000,
            "cache_read_tokens": 4_000,
            "cache_write_tokens": 1_000,
            "tokens_out": 500,
        }
    )
    assert_frame_equal(
        costs(frame, table),
        # 5k x $2 + 4k x $0.5 + 1k x $2 + 500 x $8, per million
        expected(("a", 0.01, 0.002, 0.002, 0.004, 0.018, None, "override", "prices.toml:1")),
    )


def test_a_response_cache_hit_is_free_and_records_what_it_saved() -> None:
    """A gateway cache hit bills nothing; saved_usd is what the call would have cost."""
    frame = requests(
        {"log_id": "hit", "cached": True, "tokens_in": 1_000_000, "tokens_out": 1_000, "cost": 0.0}
    )
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        expected(("hit", None, None, None, None, 0.0, 3.015, "free", "prices.toml:1")),
    )


def test_a_prompt_cache_read_is_billed_and_never_counted_as_saved() -> None:
    """Provider prompt-cache reads are cheap but billed; only response-cache hits save money."""
    frame = requests(
        {"log_id": "prompt-cache", "tokens_in": 100_000, "cache_read_tokens": 100_000},
        {"log_id": "response-cache", "cached": True, "tokens_in": 100_000},
    )
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        expected(
            ("prompt-cache", 0.0, 0.03, 0.0, 0.0, 0.03, None, "override", "prices.toml:1"),
            ("response-cache", None, None, None, None, 0.0, 0.3, "free", "prices.toml:1"),
        ),
    )


@pytest.mark.parametrize(
    ("status_code", "rate_limited"),
    [(429, False), (429, True), (200, True)],
    ids=["status-429", "429-and-flag", "flag-only"],
)
def test_a_rate_limited_attempt_costs_nothing(status_code: int, rate_limited: bool) -> None:
    """Rate-limited attempts (429 or the RateLimited flag) are free, whatever the model."""
    frame = requests(
        {"log_id": "a", "status_code": status_code, "rate_limited": rate_limited},
        {
            "log_id": "b",
            "status_code": status_code,
            "rate_limited": rate_limited,
            "model": "no-such-model",
        },
    )
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        expected(
            ("a", None, None, None, None, 0.0, None, "free", "prices.toml:1"),
            ("b", None, None, None, None, 0.0, None, "free", None),
        ),
    )


@pytest.mark.parametrize("status_code", [500, 502, 503])
def test_a_server_error_without_usage_costs_nothing(status_code: int) -> None:
    """A 5xx that reported no tokens was not billed: cost 0, source free (not unknown)."""
    frame = requests({"log_id": "a", "status_code": status_code})
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        expected(("a", None, None, None, None, 0.0, None, "free", "prices.toml:1")),
    )


def test_a_successful_failover_attempt_is_billed_like_any_request() -> None:
    """The fallback (step 1) that answered is billed at its model's price, like step 0."""
    frame = requests(
        {"log_id": "first", "status_code": 503, "step": 0},
        {"log_id": "fallback", "step": 1, "tokens_in": 10_000, "tokens_out": 1_000},
        {"log_id": "plain", "step": 0, "tokens_in": 10_000, "tokens_out": 1_000},
    )
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        expected(
            ("first", None, None, None, None, 0.0, None, "free", "prices.toml:1"),
            ("fallback", 0.03, 0.0, 0.0, 0.015, 0.045, None, "override", "prices.toml:1"),
            ("plain", 0.03, 0.0, 0.0, 0.015, 0.045, None, "override", "prices.toml:1"),
        ),
    )


def test_an_unknown_model_uses_the_cost_the_gateway_logged() -> None:
    """No price anywhere but a logged cost: that cost is used, marked cost_source logged."""
    frame = requests(
        {"log_id": "a", "model": "acme-ft-1", "tokens_in": 1_000, "tokens_out": 10, "cost": 0.0123}
    )
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        expected(("a", None, None, None, None, 0.0123, None, "logged", None)),
    )


def test_an_unknown_model_without_a_logged_cost_has_a_null_cost_never_zero() -> None:
    """Unpriced and unlogged spend is null and marked unknown, so it is never reported as $0."""
    frame = requests({"log_id": "a", "model": "acme-ft-1", "tokens_in": 1_000, "tokens_out": 10})
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        expected(("a", None, None, None, None, None, None, "unknown", None)),
    )


def test_an_override_with_valid_from_wins_only_from_that_date(tmp_path: Path) -> None:
    """A negotiated rate from 2026-04-10 prices requests from that instant; the catalogue before."""
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[price]]\nprovider = "anthropic"\nmodel = "claude-sonnet-4"\n'
        'input = 1\noutput = 5\nvalid_from = "2026-04-10"\n'
    )
    catalogue = price(
        "anthropic",
        "claude-sonnet-4",
        input_mtok=3.0,
        output_mtok=15.0,
        source="catalog",
        ref="claude-sonnet-4-0",
    )
    table = pl.concat([prices(catalogue), load_price_file(path)])
    frame = requests(
        {
            "log_id": "before",
            "ts": datetime(2026, 4, 9, 23, 59, 59, tzinfo=UTC),
            "tokens_in": 1_000_000,
            "tokens_out": 100_000,
        },
        {
            "log_id": "from",
            "ts": datetime(2026, 4, 10, tzinfo=UTC),
            "tokens_in": 1_000_000,
            "tokens_out": 100_000,
        },
    )
    assert_frame_equal(
        costs(frame, table),
        expected(
            ("before", 3.0, 0.0, 0.0, 1.5, 4.5, None, "catalog", "claude-sonnet-4-0"),
            ("from", 1.0, 0.0, 0.0, 0.5, 1.5, None, "override", "prices.toml:1"),
        ),
    )


def test_the_long_context_tier_prices_all_tokens_above_the_threshold_only() -> None:
    """Cliff pricing: 200,000 input tokens pay the base rate; 200,001 pay the tier rate on all."""
    base = price(
        "google-ai-studio",
        "gemini-2.5-pro",
        input_mtok=1.25,
        output_mtok=10.0,
        source="catalog",
        ref="gemini-2.5-pro",
        rank=0,
    )
    tier = price(
        "google-ai-studio",
        "gemini-2.5-pro",
        input_mtok=2.5,
        output_mtok=15.0,
        source="catalog",
        ref="gemini-2.5-pro",
        rank=1,
        above_input_tokens=200_000,
    )
    gemini = {"provider": "google-ai-studio", "model": "gemini-2.5-pro", "tokens_out": 1_000}
    frame = requests(
        {**gemini, "log_id": "at", "tokens_in": 200_000},
        {**gemini, "log_id": "above", "tokens_in": 200_001},
    )
    assert_frame_equal(
        costs(frame, prices(base, tier)),
        expected(
            ("at", 0.25, 0.0, 0.0, 0.01, 0.26, None, "catalog", "gemini-2.5-pro"),
            ("above", 0.5000025, 0.0, 0.0, 0.015, 0.5150025, None, "catalog", "gemini-2.5-pro"),
        ),
    )


def test_row_order_and_count_are_preserved() -> None:
    """with_cost returns one row per request, in the input order, priced or not."""
    ids = [f"r{index:02d}" for index in range(30)]
    models = ["claude-sonnet-4", "acme-ft-1", None, "gpt-4o"]
    frame = requests(
        *(
            {"log_id": log_id, "model": models[index % 4], "tokens_in": 1_000 + index}
            for index, log_id in enumerate(reversed(ids))
        )
    )
    table = prices(
        SONNET,
        price("anthropic", "gpt-4o", input_mtok=1.0, output_mtok=1.0, ref="prices.toml:2"),
        SONNET,  # a duplicate price row must not duplicate requests
    )
    out = costs(frame, table)
    assert out["log_id"].to_list() == list(reversed(ids))
    assert out.group_by("cost_source").len().sort("cost_source").rows() == [
        ("override", 15),
        ("unknown", 15),
    ]


def test_a_provider_prefixed_model_is_priced_from_the_catalogue() -> None:
    """compat + openai/gpt-4o-mini, 1,000 in and 500 out at OpenAI's $0.15 / $0.60 per MTok:
    1,000 x 0.15 / 1e6 + 500 x 0.60 / 1e6 = 0.00015 + 0.0003 = $0.00045 (catalog)."""
    frame = requests(
        {
            "log_id": "p",
            "provider": "compat",
            "model": "openai/gpt-4o-mini",
            "tokens_in": 1_000,
            "tokens_out": 500,
            "cost": 0.0005,
        }
    )
    table = price_table([("compat", "openai/gpt-4o-mini")])
    assert_frame_equal(
        costs(frame, table),
        expected(("p", 0.00015, 0.0, 0.0, 0.0003, 0.00045, None, "catalog", "gpt-4o-mini")),
        abs_tol=1e-12,
    )


def test_a_custom_cost_wins_over_the_price_file_and_the_catalogue() -> None:
    """The gateway was told this request cost $0.0002 (custom_cost): that is the cost,
    source ``custom``, though an override would say 1,000 x 3 / 1e6 + 500 x 15 / 1e6 =
    $0.0105; a cache hit stays free."""
    frame = requests(
        {"log_id": "c", "tokens_in": 1_000, "tokens_out": 500, "cost": 0.0002},
        {"log_id": "h", "tokens_in": 1_000, "tokens_out": 500, "cost": 0.0002, "cached": True},
        {"log_id": "o", "tokens_in": 1_000, "tokens_out": 500, "cost": 0.0002},
    ).with_columns(custom_cost=pl.Series([True, True, False]))
    assert_frame_equal(
        costs(frame, prices(SONNET)),
        expected(
            ("c", None, None, None, None, 0.0002, None, "custom", "prices.toml:1"),
            ("h", None, None, None, None, 0.0, 0.0105, "free", "prices.toml:1"),
            ("o", 0.003, 0.0, 0.0, 0.0075, 0.0105, None, "override", "prices.toml:1"),
        ),
        abs_tol=1e-12,
    )


def test_a_custom_cost_is_never_reconciliation_drift() -> None:
    """Reconciliation compares recomputed costs only: the custom row ($0.0002 logged and
    used) is left out, the override row shows 0.0105 - 0.0002 = $0.0103 of drift."""
    frame = requests(
        {"log_id": "c", "tokens_in": 1_000, "tokens_out": 500, "cost": 0.0002},
        {"log_id": "o", "tokens_in": 1_000, "tokens_out": 500, "cost": 0.0002},
    ).with_columns(custom_cost=pl.Series([True, False]))
    costed = with_cost(frame, prices(SONNET)).with_columns(requests=pl.lit(1))
    drift = reconciliation(costed)
    assert drift.select("provider", "model", "requests").rows() == [
        ("anthropic", "claude-sonnet-4", 1)
    ]
    assert drift["drift_usd"][0] == pytest.approx(0.0103, abs=1e-12)


def test_a_prefixed_model_without_a_provider_is_priced_by_its_prefix() -> None:
    """No provider logged, model openai/gpt-4o-mini: priced as OpenAI's, 2,000 in and 1,000
    out = 2,000 x 0.15 / 1e6 + 1,000 x 0.60 / 1e6 = 0.0003 + 0.0006 = $0.0009."""
    frame = requests(
        {
            "log_id": "n",
            "provider": None,
            "model": "openai/gpt-4o-mini",
            "tokens_in": 2_000,
            "tokens_out": 1_000,
        }
    )
    table = price_table([("", "openai/gpt-4o-mini")])
    assert_frame_equal(
        costs(frame, table),
        expected(("n", 0.0003, 0.0, 0.0, 0.0006, 0.0009, None, "catalog", "gpt-4o-mini")),
        abs_tol=1e-12,
    )
