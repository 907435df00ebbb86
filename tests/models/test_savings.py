"""Estimated savings of cache hits that tokens cannot price: the same cache key's miss
first (the latest before the hit), else the median of the model's misses that UTC day,
flagged ``saved_estimated``; hand-computed numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from models.savings import MISS_COLUMNS, with_estimated_savings

COSTED: dict[str, Any] = {
    "log_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "provider": pl.String,
    "model": pl.String,
    "cached": pl.Boolean,
    "saved_usd": pl.Float64,
}


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _estimate(
    costed: list[tuple[Any, ...]],
    hashes: list[tuple[str, str | None]],
    misses: list[tuple[Any, ...]],
    keyed: list[tuple[Any, ...]] | None = None,
) -> list[tuple[str, float | None, bool]]:
    """``(log_id, saved_usd, saved_estimated)`` per row of ``costed``, in its order."""
    result = with_estimated_savings(
        pl.LazyFrame(costed, schema=COSTED, orient="row"),
        pl.LazyFrame(hashes, schema={"log_id": pl.String, "request_hash": pl.String}, orient="row"),
        pl.LazyFrame(misses, schema=MISS_COLUMNS, orient="row"),
        None if keyed is None else pl.LazyFrame(keyed, schema=MISS_COLUMNS, orient="row"),
    ).collect()
    assert result.columns == [*COSTED, "saved_estimated"]
    return [
        (log_id, None if saved is None else round(saved, 9), estimated)
        for log_id, saved, estimated in result.select(
            "log_id", "saved_usd", "saved_estimated"
        ).rows()
    ]


def test_a_hit_without_tokens_saves_the_logged_cost_of_its_keys_miss() -> None:
    """The key's latest miss cost $0.0123: the hit saved $0.0123, estimated; the key's
    older miss and the model's median play no part."""
    rows = _estimate(
        [("hit", _at(20, 9, 9), "openai", "gpt-4o", True, None)],
        [("hit", "k1")],
        [
            ("k1", "openai", "gpt-4o", _at(20, 9, 8), 0.0123),
            ("k2", "openai", "gpt-4o", _at(20, 8), 0.5),
            ("k1", "openai", "gpt-4o", _at(20, 7), 0.9),  # an older miss of the key
        ],
    )
    assert rows == [("hit", 0.0123, True)]


def test_a_hit_without_a_matching_miss_saves_the_median_of_its_models_misses() -> None:
    """No miss has the hit's key: the median of the 3 misses of gpt-4o that UTC day
    ($0.01, $0.04, $0.02 -> $0.02); another model's and another day's misses are left out."""
    rows = _estimate(
        [("hit", _at(20, 12), "openai", "gpt-4o", True, None)],
        [("hit", "unseen")],
        [
            ("a", "openai", "gpt-4o", _at(20, 1), 0.01),
            ("b", "openai", "gpt-4o", _at(20, 13), 0.04),
            ("c", "openai", "gpt-4o", _at(20, 23, 59), 0.02),
            ("d", "openai", "gpt-4o", _at(19, 23), 9.0),  # the day before
            ("e", "openai", "gpt-4o-mini", _at(20, 2), 7.0),  # another model
            ("f", "azure", "gpt-4o", _at(20, 3), 5.0),  # another provider
        ],
    )
    assert rows == [("hit", 0.02, True)]


def test_the_latest_miss_before_the_hit_wins_and_a_later_one_stands_in() -> None:
    """Of the key's misses, the latest at or before the hit; with none before, the first
    after it (a miss logged the day before counts, one two days before does not)."""
    misses = [
        ("late", "openai", "gpt-4o", _at(18, 23, 59), 0.7),  # two days before: too old
        ("k", "openai", "gpt-4o", _at(19, 22), 0.001),
        ("k", "openai", "gpt-4o", _at(20, 9), 0.002),
        ("k", "openai", "gpt-4o", _at(20, 11), 0.004),
        ("late", "openai", "gpt-4o", _at(20, 12), 0.03),
        ("late", "openai", "gpt-4o", _at(20, 14), 0.05),
    ]
    rows = _estimate(
        [
            ("h1", _at(20, 10), "openai", "gpt-4o", True, None),
            ("h2", _at(20, 9), "openai", "gpt-4o", True, None),
            ("h3", _at(20, 10), "openai", "gpt-4o", True, None),
        ],
        [("h1", "k"), ("h2", "k"), ("h3", "late")],
        misses,
    )
    assert rows == [("h1", 0.002, True), ("h2", 0.002, True), ("h3", 0.03, True)]


def test_priced_hits_and_answers_keep_their_figures_and_order() -> None:
    """A hit priced from tokens keeps its saving (not estimated); answers save nothing; a
    hit of a model with no miss that day stays unknown (null, never 0); rows keep their
    order."""
    rows = _estimate(
        [
            ("answer", _at(20, 9), "openai", "gpt-4o", False, None),
            ("priced", _at(20, 9, 1), "openai", "gpt-4o", True, 0.007),
            ("lonely", _at(20, 9, 2), "openai", "o3", True, None),
            ("no-key", _at(20, 9, 3), None, "gpt-4o", True, None),
            ("hit", _at(20, 9, 4), "openai", "gpt-4o", None, None),
        ],
        [],
        [("x", "openai", "gpt-4o", _at(20, 9), 0.003)],
    )
    assert rows == [
        ("answer", None, False),
        ("priced", 0.007, False),
        ("lonely", None, False),
        ("no-key", None, False),  # no provider: no miss of the same provider
        ("hit", None, False),  # cached unknown: not a hit
    ]


@pytest.mark.parametrize("provider", [None, ""])
def test_a_hit_without_provider_takes_the_median_of_misses_without_one(
    provider: str | None,
) -> None:
    """A null provider and an empty one are the same provider (as in pricing)."""
    rows = _estimate(
        [("hit", _at(20, 9), provider, "m", True, None)],
        [],
        [("x", None, "m", _at(20, 1), 0.004), ("y", "", "m", _at(20, 2), 0.006)],
    )
    assert rows == [("hit", 0.005, True)]


def test_keys_match_the_keyed_misses_and_medians_come_from_all_misses() -> None:
    """As the rollups read them: the misses without keys give the medians ($0.02 of
    $0.01, $0.02, $0.03), the keyed ones the key matches ($0.0123)."""
    misses = [
        (None, "openai", "gpt-4o", _at(20, 1), 0.01),
        (None, "openai", "gpt-4o", _at(20, 2), 0.02),
        (None, "openai", "gpt-4o", _at(20, 3), 0.03),
    ]
    rows = _estimate(
        [
            ("keyed", _at(20, 9), "openai", "gpt-4o", True, None),
            ("unkeyed", _at(20, 9), "openai", "gpt-4o", True, None),
        ],
        [("keyed", "k1"), ("unkeyed", "k2")],
        misses,
        keyed=[("k1", "openai", "gpt-4o", _at(20, 4), 0.0123)],
    )
    assert rows == [("keyed", 0.0123, True), ("unkeyed", 0.02, True)]
