"""Cost per unit (conversation, ticket…) on small frames, computed by hand: the
percentiles, the most expensive units, the weekly trend, per agent, and outcomes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError
from models import read_outcomes, unit_costs

MON = datetime(2026, 11, 16, 9, tzinfo=UTC)  # a Monday
SCHEMA = {
    "ts": pl.Datetime("us", "UTC"),
    "unit": pl.String,
    "agent": pl.String,
    "cost_usd": pl.Float64,
}
# Five conversations costing 1, 2, 3, 4 and 10 dollars (c1 over two requests, c4 the
# week after), and two requests without one (null and empty): $0.50.
REQUESTS = pl.DataFrame(
    [
        (MON, "c1", "bot", 0.4),
        (MON + timedelta(minutes=5), "c1", "bot", 0.6),
        (MON, "c2", "bot", 2.0),
        (MON + timedelta(days=1), "c3", "helper", 3.0),
        (MON + timedelta(days=7), "c4", "helper", 4.0),
        (MON + timedelta(days=2), "c5", "bot", 10.0),
        (MON, None, "bot", 0.25),
        (MON, "", "helper", 0.25),
    ],
    schema=SCHEMA,
    orient="row",
).lazy()
STATS = ["units", "requests", "cost_usd", "mean_usd", "p50_usd", "p95_usd", "max_usd"]


def test_percentiles_interpolate_between_ranks() -> None:
    # Sorted unit costs 1, 2, 3, 4, 10: mean 20/5 = 4; p50 the middle one, 3; p95 at
    # rank 0.95 * 4 = 3.8, between 4 and 10: 4 + 0.8 * 6 = 8.8; max 10.
    summary = unit_costs(REQUESTS).summary
    assert summary.select(*STATS, "untagged_requests", "untagged_usd").rows() == [
        (5, 6, 20.0, 4.0, 3.0, pytest.approx(8.8), 10.0, 2, 0.5)
    ]


def test_the_most_expensive_units_with_their_request_counts() -> None:
    top = unit_costs(REQUESTS, top=3).top
    assert top.select("unit", "requests", "cost_usd").rows() == [
        ("c5", 1, 10.0),
        ("c4", 1, 4.0),
        ("c3", 1, 3.0),
    ]
    first = unit_costs(REQUESTS, top=5).top.filter(pl.col("unit") == "c1")
    assert first.select("requests", "first_ts", "last_ts").rows() == [
        (2, MON, MON + timedelta(minutes=5))
    ]


def test_the_weekly_trend_counts_a_unit_in_the_week_of_its_first_request() -> None:
    # Week of 16 Nov: c1, c2, c3, c5 = 1, 2, 3, 10 (mean 4, p50 2.5, p95 at rank 2.85:
    # 3 + 0.85 * 7 = 8.95); week of 23 Nov: c4 alone, 4.
    weekly = unit_costs(REQUESTS).weekly
    assert weekly.select("week", *STATS).rows() == [
        (date(2026, 11, 16), 4, 5, 16.0, 4.0, 2.5, pytest.approx(8.95), 10.0),
        (date(2026, 11, 23), 1, 1, 4.0, 4.0, 4.0, 4.0, 4.0),
    ]


def test_by_agent_each_agent_has_its_units_and_untagged_requests() -> None:
    # bot: c1 1, c2 2, c5 10 (mean 13/3, p50 2, p95 at rank 1.9: 2 + 0.9 * 8 = 9.2);
    # helper: c3 3, c4 4 (p95 at rank 0.95: 3.95). Untagged: one each, $0.25.
    summary = unit_costs(REQUESTS, by="agent").summary
    assert summary.select("agent", *STATS, "untagged_requests", "untagged_usd").rows() == [
        ("bot", 3, 4, 13.0, pytest.approx(13 / 3), 2.0, pytest.approx(9.2), 10.0, 1, 0.25),
        ("helper", 2, 2, 7.0, 3.5, 3.5, pytest.approx(3.95), 4.0, 1, 0.25),
    ]


def test_no_tagged_requests_give_zero_units_and_no_statistics() -> None:
    untagged = REQUESTS.filter(pl.col("unit").is_null())
    summary = unit_costs(untagged).summary
    assert summary.select(*STATS, "untagged_requests").rows() == [
        (0, 0, 0.0, None, None, None, None, 1)
    ]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_outcomes_give_cost_per_resolved_ticket(tmp_path: Path) -> None:
    # resolved: c1 (1) and c2 (2): 3 dollars, 1.5 a unit, and all 20 dollars over 2
    # resolved = 10 per resolved one; escalated: c5, 10 and 20 / 1 = 20; c3 and c4 are
    # not in the file (null outcome): 7, 3.5 a unit, 20 / 2 = 10.
    outcomes = read_outcomes(
        write(
            tmp_path / "outcomes.csv",
            "unit_id,outcome,value\nc1,resolved,30\nc2,resolved,\nc5,escalated,5\nzz,resolved,1\n",
        )
    )
    table = unit_costs(REQUESTS, outcomes=outcomes).outcomes
    assert table is not None
    assert table.rows() == [
        ("resolved", 2, 3.0, 1.5, 30.0, 10.0),
        (None, 2, 7.0, 3.5, 0.0, 10.0),
        ("escalated", 1, 10.0, 10.0, 5.0, 20.0),
    ]
    assert table.columns == [
        "outcome",
        "units",
        "cost_usd",
        "cost_per_unit_usd",
        "value",
        "cost_per_outcome_usd",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ticket,outcome,value\nc1,resolved,1\n", "the header must be unit_id,outcome,value"),
        ("unit_id,outcome,value\nc1,resolved\n", ":2: expected unit_id,outcome,value"),
        ("unit_id,outcome,value\nc1,resolved,lots\n", ":2: value 'lots' is not a number"),
        ("unit_id,outcome,value\nc1,a,1\nc1,b,2\n", "unit_id 'c1' appears more than once"),
    ],
)
def test_a_bad_outcomes_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "outcomes.csv", text)
    with pytest.raises(ConfigError) as caught:
        read_outcomes(path)
    assert str(caught.value).startswith(f"outcomes {path}")
    assert message in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read outcomes"):
        read_outcomes(tmp_path / "missing.csv")
