"""The charts' grain, partial-period and colour rules (pure functions of ``app.dashboard.ui``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from app.dashboard.ui import _column_config, grain_for, partial_period, series_scale

DAY = datetime(2026, 11, 15, tzinfo=UTC)


def test_ranges_up_to_three_days_are_hourly_longer_ones_daily() -> None:
    assert grain_for(DAY, DAY + timedelta(days=1)) == "hour"  # a first day: 24 points
    assert grain_for(DAY, DAY + timedelta(days=3)) == "hour"
    assert grain_for(DAY, DAY + timedelta(days=4)) == "day"


def test_the_last_period_is_partial_only_while_now_is_inside_it() -> None:
    days = pl.DataFrame({"period": [DAY, DAY + timedelta(days=1)]})
    last = DAY + timedelta(days=1)
    assert partial_period(days, "period", "day", last + timedelta(hours=13)) == last
    assert partial_period(days, "period", "day", last + timedelta(days=1)) is None
    assert partial_period(days, "period", "day", None) is None
    hours = pl.DataFrame({"period": [DAY, DAY + timedelta(hours=1)]})
    assert partial_period(hours, "period", "hour", DAY + timedelta(hours=2)) is None


def test_series_colours_mean_what_they_say_whatever_shares_the_chart() -> None:
    """Errors are red and requests grey (drawn in the theme's order, requests came out red
    and errors light blue); saved money and cache hits green."""
    scale = series_scale(["requests", "cached_requests", "errors"]).to_dict()
    assert scale == {
        "domain": ["Requests", "Cached requests", "Errors"],
        "range": ["#7f7f7f", "#2ca02c", "#d62728"],
    }
    spend = series_scale(["cost_usd", "saved_usd", "tokens_in"]).to_dict()
    assert spend["range"] == ["#1f77b4", "#2ca02c", "#9467bd"]


def test_period_columns_read_as_their_period_and_instants_to_the_minute() -> None:
    """A month shows as 2026-11 (not 2026-11-01 00:00), a day as 2026-11-19; other
    times to the minute, all in UTC and said so in the header."""
    frame = pl.DataFrame(
        {
            "month": [datetime(2026, 11, 1, tzinfo=UTC)],
            "day": [datetime(2026, 11, 19, tzinfo=UTC).date()],
            "created_at": [datetime(2026, 11, 19, 23, tzinfo=UTC)],
        }
    )
    _, config = _column_config(frame, ())
    shown = {name: (c["label"], c["type_config"]["format"]) for name, c in config.items()}
    assert shown == {
        "month": ("Month (UTC)", "YYYY-MM"),
        "day": ("Day (UTC)", "YYYY-MM-DD"),
        "created_at": ("Created at (UTC)", "YYYY-MM-DD HH:mm"),
    }
