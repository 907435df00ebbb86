"""Month-end forecast: hand-computed projections and intervals, month and time-zone
boundaries."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from models.errors import ModelsError
from models.forecast import forecast_month

HOUR = timedelta(hours=1)


def _rollup(rows: list[tuple[datetime, str, float]]) -> pl.LazyFrame:
    """Rollup rows (hour start in UTC, team, cost USD)."""
    return pl.LazyFrame(
        rows,
        schema={"hour": pl.Datetime("us", "UTC"), "team": pl.String, "cost_usd": pl.Float64},
        orient="row",
    )


def _hourly(start: datetime, end: datetime, usd: float, team: str = "search") -> list[Any]:
    """``usd`` every hour in ``[start, end)``."""
    hours = int((end - start) / HOUR)
    return [(start + index * HOUR, team, usd) for index in range(hours)]


def _forecast(scope: tuple[str, ...] = (), **row: Any) -> pl.DataFrame:
    """One expected forecast row (``scope`` columns first)."""
    schema: dict[str, Any] = dict.fromkeys(scope, pl.String) | {
        "month_start": pl.Date,
        "mtd_usd": pl.Float64,
        "projected_usd": pl.Float64,
        "projected_low_usd": pl.Float64,
        "projected_high_usd": pl.Float64,
        "days_elapsed": pl.Float64,
        "days_in_month": pl.Int64,
        "daily_mean_usd": pl.Float64,
        "daily_std_usd": pl.Float64,
        "basis_days": pl.Int64,
    }
    return pl.DataFrame([row], schema=schema)


def test_constant_daily_spend_projects_exactly_with_a_zero_width_interval() -> None:
    """24 USD a day, at noon on March 15: 348 spent, 744 (31 x 24) at month end, no spread."""
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    rows = _hourly(datetime(2026, 3, 1, tzinfo=UTC), now, 1.0)
    rows.append((now, "search", 1000.0))  # the hour starting now has not begun: ignored

    forecast = forecast_month(_rollup(rows), now=now)

    expected = _forecast(
        month_start=date(2026, 3, 1),
        mtd_usd=14 * 24 + 12.0,
        projected_usd=744.0,
        projected_low_usd=744.0,
        projected_high_usd=744.0,
        days_elapsed=14.5,
        days_in_month=31,
        daily_mean_usd=24.0,
        daily_std_usd=0.0,
        basis_days=14,
    )
    assert_frame_equal(forecast, expected)


def test_alternating_days_give_their_mean_and_sample_std_and_a_normal_interval() -> None:
    """Days of 10 and 20 USD: mean 15, std sqrt(100/3); interval +/- z * std * sqrt(r + r^2/n)."""
    rows = [
        (datetime(2026, 4, day, 12, tzinfo=UTC), "search", 10.0 if day % 2 else 20.0)
        for day in range(1, 11)
    ]
    rows += [(datetime(2026, 4, day, 12, tzinfo=UTC), "support", 5.0) for day in range(1, 11)]
    now = datetime(2026, 4, 11, tzinfo=UTC)

    forecast = forecast_month(_rollup(rows), now=now, scope=("team",), lookback_days=4)

    # search: April 1-10 spent 5 x 10 + 5 x 20 = 150; the basis is April 7-10 (10, 20, 10,
    # 20); 20 days remain, so 150 + 15 x 20 = 450, spread sqrt(100/3 x (20 + 20^2/4)).
    z, spread = NormalDist().inv_cdf(0.95), math.sqrt(100 / 3 * 120)
    same = {"month_start": date(2026, 4, 1), "days_elapsed": 10.0, "days_in_month": 30}
    expected = pl.concat(
        [
            _forecast(
                ("team",),
                team="search",
                mtd_usd=150.0,
                projected_usd=450.0,
                projected_low_usd=450.0 - z * spread,
                projected_high_usd=450.0 + z * spread,
                daily_mean_usd=15.0,
                daily_std_usd=math.sqrt(100 / 3),
                basis_days=4,
                **same,
            ),
            _forecast(
                ("team",),
                team="support",
                mtd_usd=50.0,
                projected_usd=150.0,
                projected_low_usd=150.0,
                projected_high_usd=150.0,
                daily_mean_usd=5.0,
                daily_std_usd=0.0,
                basis_days=4,
                **same,
            ),
        ]
    )
    assert_frame_equal(forecast, expected)


def test_the_first_hours_of_a_month_start_afresh_and_project_from_last_month() -> None:
    """At 06:00 on April 1, 6 USD spent in April; March's 24 USD days project 6 + 24 x 29.75."""
    now = datetime(2026, 4, 1, 6, tzinfo=UTC)
    rows = _hourly(datetime(2026, 3, 18, tzinfo=UTC), now, 1.0)

    forecast = forecast_month(_rollup(rows), now=now)

    expected = _forecast(
        month_start=date(2026, 4, 1),
        mtd_usd=6.0,
        projected_usd=720.0,
        projected_low_usd=720.0,
        projected_high_usd=720.0,
        days_elapsed=0.25,
        days_in_month=30,
        daily_mean_usd=24.0,
        daily_std_usd=0.0,
        basis_days=14,
    )
    assert_frame_equal(forecast, expected)


def test_a_spend_at_2330_utc_on_the_last_day_belongs_to_the_next_month_in_utc_plus_one() -> None:
    """The 23:00 UTC hour of January 31 is February 1 in Paris (UTC+1), January in UTC."""
    rows = [
        (datetime(2026, 1, 31, 22, tzinfo=UTC), "search", 3.0),  # 23:00 in Paris, January 31
        (datetime(2026, 1, 31, 23, tzinfo=UTC), "search", 5.0),  # 00:00 in Paris, February 1
    ]
    now = datetime(2026, 2, 1, 0, 30, tzinfo=UTC)  # 01:30 in Paris

    in_utc = forecast_month(_rollup(rows), now=now)
    in_paris = forecast_month(_rollup(rows), now=now, tz="Europe/Paris")

    assert in_utc.select("month_start", "mtd_usd").rows() == [(date(2026, 2, 1), 0.0)]
    # Paris: one complete day (January 31, 3 USD) behind the mean, too few for a spread.
    expected = _forecast(
        month_start=date(2026, 2, 1),
        mtd_usd=5.0,
        projected_usd=5.0 + 3.0 * (28 - 1.5 / 24),
        projected_low_usd=None,
        projected_high_usd=None,
        days_elapsed=1.5 / 24,
        days_in_month=28,
        daily_mean_usd=3.0,
        daily_std_usd=None,
        basis_days=1,
    )
    assert_frame_equal(in_paris, expected)


def test_a_team_first_seen_today_shows_its_spend_but_no_projection_yet() -> None:
    """Without a complete day of spend there is nothing to project from."""
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    rows = _hourly(datetime(2026, 3, 15, 9, tzinfo=UTC), now, 2.0, team="growth")

    forecast = forecast_month(_rollup(rows), now=now, scope=("team",))

    assert forecast.select("team", "mtd_usd", "projected_usd", "basis_days").rows() == [
        ("growth", 6.0, None, 0)
    ]


def test_bad_arguments_are_reported_and_an_empty_warehouse_forecasts_nothing() -> None:
    """Unknown time zone or scope: a models error; naive ``now``: a programming error."""
    rollup = _rollup([(datetime(2026, 3, 1, tzinfo=UTC), "search", 1.0)])
    now = datetime(2026, 3, 2, tzinfo=UTC)
    with pytest.raises(ModelsError, match="unknown time zone 'Mars/Olympus'"):
        forecast_month(rollup, now=now, tz="Mars/Olympus")
    with pytest.raises(ModelsError, match="unknown scope tem"):
        forecast_month(rollup, now=now, scope=("tem",))
    with pytest.raises(ValueError, match="timezone-aware"):
        forecast_month(rollup, now=datetime(2026, 3, 2))  # naive: the point of the test
    assert forecast_month(pl.LazyFrame(), now=now, scope=("team",)).height == 0
