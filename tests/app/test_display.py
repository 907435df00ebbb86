"""The shared value formats: what a person reads in the CLI and on the pages."""

from __future__ import annotations

from app.display import (
    NONE,
    change,
    column_kind,
    column_label,
    count,
    format_value,
    pct,
    usd,
    usd_exact,
)


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
    # an unlisted money column: its values read as money, its name drops the unit
    assert column_label("invoice_usd") == "Invoice"
    assert column_label("difference_usd") == "Difference"


def test_a_columns_name_says_how_its_values_read() -> None:
    assert column_kind("cost_usd") == "usd"
    assert column_kind("cost") == "usd_exact"  # one request's logged cost
    assert column_kind("custom_cost") == "text"  # REST custom_cost: a flag, never $1.00
    assert column_kind("request_hit_ratio") == "pct"
    assert column_kind("impact_pct") == "pct_points"
    assert column_kind("duration_ms") == "ms"
    assert column_kind("requests", integer=True) == "count"
    assert column_kind("team") == "text"


def test_values_format_by_kind_and_missing_is_one_word() -> None:
    assert format_value(916785, "count") == "916,785"
    assert format_value(5.4232, "usd") == "$5.42"
    assert format_value(0.2266, "pct") == "22.7%"
    assert format_value(9165.6136, "pct_points") == "9165.6%"
    assert format_value(0.0042, "usd_exact") == "$0.004200"
    assert format_value(None, "usd") == NONE
    assert format_value("", "text") == NONE
