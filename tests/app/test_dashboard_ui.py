"""The charts' grain and partial-period rules (pure functions of ``app.dashboard.ui``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from app.dashboard.ui import grain_for, partial_period

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
