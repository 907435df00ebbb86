"""Model switch: the same token counts priced at another model, by hand.

Prices (USD per million tokens, user prices): openai/big $10 in, $30 out, $5 cache
reads; openai/small $1 in, $2 out, $0.50 cache reads; anthropic/other $3 in, $15 out."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import ConfigError, ModelsError
from models import ModelSwitch, switch_models
from models.whatif.common import exact_by_hour
from tests.models.whatif_fixtures import HOUR, M, price, prices, requests, rollup

PRICES = prices(
    price("openai", "big", 10, 30, cache_read_mtok=5),
    price("openai", "small", 1, 2, cache_read_mtok=0.5),
    price("anthropic", "other", 3, 15),
)
TO_SMALL = [ModelSwitch.parse("big=small")]
# 2 requests of agent a: 300k in (100k of them cache reads), 50k out:
#   now   200k x $10 + 100k x $5   + 50k x $30 = $2.00 + $0.50 + $1.50 = $4.00
#   small 200k x $1  + 100k x $0.5 + 50k x $2  = $0.20 + $0.05 + $0.10 = $0.35
# 1 request of agent b: 1M in: now $10.00, small $1.00; and 1 cache hit of b (free, stays free)
# anthropic/other is not switched.
ROLLUP = rollup(
    {"requests": 2, "tokens_in": 3 * M // 10, "cache_read_tokens": M // 10, "tokens_out": M // 20,
     "cost_usd": 4.0},
    {"agent": "b", "tokens_in": M, "cost_usd": 10.0},
    {"agent": "b", "cost_source": "free", "cached_requests": 1, "tokens_in": M, "saved_usd": 10.0},
    {"provider": "anthropic", "model": "other", "tokens_in": M, "cost_usd": 3.0},
)  # fmt: skip


def table(**columns: list[object]) -> pl.DataFrame:
    return pl.DataFrame(columns).with_columns(
        pl.col("requests", "affected_requests").cast(pl.Int64)
    )


def test_a_switch_prices_the_source_models_tokens_at_the_target() -> None:
    """$14.00 now, $1.35 at small: $12.65 saved on the 3 priced requests of 4."""
    answer = switch_models(ROLLUP, TO_SMALL, overrides=PRICES)
    assert answer.change == "model big -> small"
    assert_frame_equal(
        answer.table,
        table(
            provider=["openai"],
            model=["big"],
            requests=[4],
            affected_requests=[3],
            current_cost_usd=[14.0],
            projected_cost_usd=[1.35],
            saving_usd=[12.65],
        ),
    )
    assert answer.notes == ()


def test_by_and_where_split_and_narrow_the_scope() -> None:
    """By agent: b saves $9.00 (its cache hit is in scope, not affected), a $3.65; where
    agent=a keeps a alone."""
    by_agent = switch_models(ROLLUP, TO_SMALL, overrides=PRICES, by=["agent"])
    assert_frame_equal(
        by_agent.table,
        table(
            agent=["b", "a"],
            requests=[2, 2],
            affected_requests=[1, 2],
            current_cost_usd=[10.0, 4.0],
            projected_cost_usd=[1.0, 0.35],
            saving_usd=[9.0, 3.65],
        ),
    )
    only_a = switch_models(ROLLUP, TO_SMALL, overrides=PRICES, by=[], filters={"agent": "a"})
    assert only_a.totals() == {
        "requests": 2,
        "affected_requests": 2,
        "current_cost_usd": 4.0,
        "projected_cost_usd": pytest.approx(0.35),
        "saving_usd": pytest.approx(3.65),
    }


def test_a_switch_across_provider_families_is_refused_without_a_token_ratio() -> None:
    """openai -> anthropic: tokenizers differ, so it is refused with the option to pass."""
    with pytest.raises(ConfigError, match=r"crosses provider families.*--cross-family-ratio"):
        switch_models(ROLLUP, [ModelSwitch.parse("big=anthropic/other")], overrides=PRICES)


def test_a_token_ratio_multiplies_every_token_count_across_families() -> None:
    """Ratio 1.5 at $3/$15: a's 450k in, 75k out cost $1.35 + $1.125 = $2.475; b's 1.5M in
    $4.50. Total $6.975 against $14.00."""
    answer = switch_models(
        ROLLUP,
        [ModelSwitch.parse("openai/big=anthropic/other")],
        overrides=PRICES,
        by=["agent"],
        cross_family_ratio=1.5,
    )
    projected = dict(answer.table.select("agent", "projected_cost_usd").rows())
    assert projected == {"a": pytest.approx(2.475), "b": pytest.approx(4.5)}
    assert answer.notes == ("across provider families every token count is multiplied by 1.5",)


def test_a_target_without_a_price_is_an_error_naming_it() -> None:
    with pytest.raises(ModelsError, match="no price for openai/unknown-model"):
        switch_models(ROLLUP, [ModelSwitch.parse("big=unknown-model")], overrides=PRICES)


def test_requests_of_a_model_without_a_price_keep_their_logged_cost() -> None:
    """A request priced from its logged cost ($2.00) is in scope, not repriced, and noted."""
    frame = pl.concat([ROLLUP, rollup({"cost_source": "logged", "tokens_in": M, "cost_usd": 2.0})])
    answer = switch_models(frame, TO_SMALL, overrides=PRICES, by=[])
    assert answer.totals()["current_cost_usd"] == 16.0
    assert answer.totals()["projected_cost_usd"] == pytest.approx(3.35)
    assert answer.notes == (
        "not repriced, their model has no price (logged cost kept): 1 requests",
    )


def test_a_long_context_tier_in_the_targets_prices_reads_the_raw_requests() -> None:
    """small above 200k input tokens costs $2/$4. Two requests of 150k in the same hour sum
    to 300k: priced by the hour that would take the tier ($0.60); each request is under it,
    so the raw requests are read and priced one by one: 2 x 150k x $1 = $0.30."""
    tiered = prices(
        price("openai", "big", 10, 30),
        price("openai", "small", 1, 2, rank=1),
        price("openai", "small", 2, 4, above_input_tokens=200_000, rank=2),
    )
    assert not exact_by_hour(tiered)
    hour = rollup({"requests": 2, "tokens_in": 300_000, "cost_usd": 3.0})
    raw = requests(
        {"tokens_in": 150_000, "cost_usd": 1.5},
        {"ts": HOUR + timedelta(minutes=30), "tokens_in": 150_000, "cost_usd": 1.5},
    )
    asked: list[list[str]] = []

    def requests_of(models: list[str]) -> pl.LazyFrame:
        asked.append(models)
        return raw

    answer = switch_models(hour, TO_SMALL, overrides=tiered, by=[], requests_of=requests_of)
    assert asked == [["big"]]
    assert answer.totals()["projected_cost_usd"] == pytest.approx(0.30)
    assert answer.totals()["requests"] == 2
    assert "priced request by request" in answer.notes[-1]
    by_hour = switch_models(hour, TO_SMALL, overrides=tiered, by=[])  # no reader: by the hour
    assert by_hour.totals()["projected_cost_usd"] == pytest.approx(0.60)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpt-4o=gpt-4o-mini", ModelSwitch("gpt-4o", "gpt-4o-mini")),
        (
            "openai/gpt-4o=anthropic/claude-haiku-4-5",
            ModelSwitch("gpt-4o", "claude-haiku-4-5", "openai", "anthropic"),
        ),
        (
            "openai/gpt-4o=azure-openai/gpt-4o",
            ModelSwitch("gpt-4o", "gpt-4o", "openai", "azure-openai"),
        ),
    ],
)  # fmt: skip
def test_switches_parse_with_or_without_providers(text: str, expected: ModelSwitch) -> None:
    assert ModelSwitch.parse(text) == expected


@pytest.mark.parametrize("text", ["gpt-4o", "gpt-4o=", "=gpt-4o-mini", "gpt-4o=gpt-4o"])
def test_a_malformed_switch_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="--model"):
        ModelSwitch.parse(text)
