"""The shared value formats: what a person reads in the CLI and on the pages."""

from __future__ import annotations

from app.display import NONE, change, column_label, count, pct, usd, usd_exact


def test_money_counts_and_ratios_read_as_a_person_says_them() -> None:
    assert usd(1234.5) == "$1,234.50"
    assert usd_exact(0.0000123) == "$0.000012"
    assert count(916785) == "916,785"
    assert pct(0.2266) == "22.7%"
    assert usd(None) == NONE
    assert change(110.0, 100.0) == "+10.0%"
    assert change(1.0, 0.0) is None


def test_column_labels_are_human() -> None:
    assert column_label("cost_usd") == "Cost"
    assert column_label("saved_usd") == "Saved"
    assert column_label("top_model") == "Top model"
