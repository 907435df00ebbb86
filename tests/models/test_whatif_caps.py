"""Budgets replayed as spend caps: which requests, users and hours would have been refused,
and the spend avoided, by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from models import SpendCap, replay_caps
from models.whatif.caps import RequestsOfScopes
from tests.models.whatif_fixtures import HOUR, UTC_US, requests

MIN = timedelta(minutes=1)
H = timedelta(hours=1)
# Agent a on one day: 10:00 $1 (ana), 10:10 $1 (bo), 10:20 $1 (ana); 11:05 $2 (ana),
# 11:10 $2 (bo), 11:20 $2 (ana); 12:00 $1 (bo), 12:01 $1 (bo); and the next day 10:00 $1
# (ana). Agent b: 10:00 $1.
RAW = requests(
    {"cost_usd": 1.0},
    {"ts": HOUR + 10 * MIN, "user": "bo", "cost_usd": 1.0},
    {"ts": HOUR + 20 * MIN, "cost_usd": 1.0},
    {"ts": HOUR + H + 5 * MIN, "cost_usd": 2.0},
    {"ts": HOUR + H + 10 * MIN, "user": "bo", "cost_usd": 2.0},
    {"ts": HOUR + H + 20 * MIN, "cost_usd": 2.0},
    {"ts": HOUR + 2 * H, "user": "bo", "cost_usd": 1.0},
    {"ts": HOUR + 2 * H + MIN, "user": "bo", "cost_usd": 1.0},
    {"ts": HOUR + 24 * H, "cost_usd": 1.0},
    {"agent": "b", "cost_usd": 1.0},
).collect()


def rollup_of(raw: pl.DataFrame) -> pl.LazyFrame:
    """The hourly rollup of ``raw`` by agent, user and model."""
    return (
        raw.group_by(pl.col("ts").dt.truncate("1h").alias("hour"), "agent", "user", "model")
        .agg(pl.len().cast(pl.Int64).alias("requests"), pl.col("cost_usd").sum())
        .lazy()
    )


Asked = list[tuple[str | None, list[tuple[datetime, str | None]]]]


def reader(raw: pl.DataFrame, asked: Asked) -> RequestsOfScopes:
    """``requests_of`` on ``raw``: exactly the rows of the pairs it is asked for (a None
    value matching a null one), each call noted in ``asked``."""

    def requests_of(by: str | None, pairs: list[tuple[datetime, str | None]]) -> pl.LazyFrame:
        asked.append((by, pairs))
        hour = pl.col("ts").dt.truncate("1h")
        if by is None:
            return raw.lazy().filter(hour.is_in([at for at, _ in pairs]))
        wanted = pl.DataFrame(pairs, schema={"_hour": UTC_US, by: pl.String}, orient="row")
        return (
            raw.lazy()
            .with_columns(hour.alias("_hour"))
            .join(wanted.lazy(), on=["_hour", by], nulls_equal=True)
            .drop("_hour")
        )

    return requests_of


def replay(*caps: SpendCap, raw: pl.DataFrame = RAW) -> tuple[object, Asked]:
    asked: Asked = []
    return replay_caps(rollup_of(raw), list(caps), reader(raw, asked)), asked


def test_a_daily_cap_refuses_every_request_after_the_spend_reaches_it() -> None:
    """$4 a day per agent: a has spent $5 when bo asks at 11:10, so 11:10, 11:20, 12:00 and
    12:01 are refused ($6 avoided of $12, $6 kept); the next day starts afresh. Only a's
    requests of the crossing hour, 11:00, are read request by request."""
    result, asked = replay(SpendCap("per-agent", 4.0, "daily", split_by="agent"))
    assert asked == [("agent", [(HOUR + H, "a")])]
    rows = result.whatif.table.select(  # type: ignore[attr-defined]
        "budget", "scope", "requests", "affected_requests", "current_cost_usd",
        "projected_cost_usd", "saving_usd", "refused_users", "refused_hours", "first_refused",
    ).rows()  # fmt: skip
    assert rows == [
        ("per-agent", "agent=a", 9, 4, 12.0, 6.0, 6.0, 2, 2, HOUR + H + 10 * MIN),
        ("per-agent", "agent=b", 1, 0, 1.0, 1.0, 0.0, 0, 0, None),
    ]
    assert result.users.rows() == [  # type: ignore[attr-defined]
        ("per-agent", "agent=a", "bo", 3, 4.0),
        ("per-agent", "agent=a", "ana", 1, 2.0),
    ]
    assert result.hours.rows() == [  # type: ignore[attr-defined]
        ("per-agent", "agent=a", HOUR + H, 2, 4.0),
        ("per-agent", "agent=a", HOUR + 2 * H, 2, 2.0),
    ]
    assert not result.whatif.additive  # type: ignore[attr-defined]


def test_filters_narrow_a_cap_and_an_unsplit_cap_spans_its_scope() -> None:
    """$3 a week for user bo, whatever the agent: bo spends $1 at 10:10 and $2 at 11:10, so
    12:00 and 12:01 are refused ($2 avoided). Only bo's requests of 11:00 are read."""
    result, asked = replay(SpendCap("bo-weekly", 3.0, "weekly", filters={"user": "bo"}))
    assert asked == [("user", [(HOUR + H, "bo")])]
    row = result.whatif.table.row(0, named=True)  # type: ignore[attr-defined]
    assert (row["scope"], row["requests"], row["affected_requests"]) == ("user=bo", 4, 2)
    assert row["saving_usd"] == pytest.approx(2.0)
    assert row["first_refused"] == HOUR + 2 * H


def test_periods_follow_the_caps_time_zone() -> None:
    """$1 a day: at 06:00 and 08:00 UTC on one UTC day the second is refused; in Los Angeles
    they fall on two days (23:00 and 01:00 PDT), so neither is."""
    raw = requests(
        {"ts": HOUR - 4 * H, "cost_usd": 1.0}, {"ts": HOUR - 2 * H, "cost_usd": 1.0}
    ).collect()
    utc, _ = replay(SpendCap("daily", 1.0, "daily"), raw=raw)
    local, _ = replay(SpendCap("daily", 1.0, "daily", timezone="America/Los_Angeles"), raw=raw)
    assert utc.whatif.totals() == {}  # type: ignore[attr-defined]
    assert utc.whatif.table["affected_requests"].to_list() == [1]  # type: ignore[attr-defined]
    assert local.whatif.table["affected_requests"].to_list() == [0]  # type: ignore[attr-defined]


def test_a_window_that_starts_inside_a_period_counts_the_periods_earlier_spend() -> None:
    """Replaying from 11:00 with the rollup from midnight: a's $3 of 10:00 still counts, so
    the same four requests are refused; 10:00's requests are not reported."""
    asked: Asked = []
    cap = SpendCap("per-agent", 4.0, "daily", split_by="agent")
    result = replay_caps(rollup_of(RAW), [cap], reader(RAW, asked), since=HOUR + H)
    assert result.whatif.table.select(
        "scope", "requests", "affected_requests", "saving_usd"
    ).rows() == [("agent=a", 6, 4, 6.0)]
    assert asked == [("agent", [(HOUR + H, "a")])]


def test_each_cap_asks_for_the_requests_of_its_own_crossing_scopes_only() -> None:
    """With requests without an agent (10:05 $3 ana, 10:30 $2 bo, 10:40 $1 bo): $4 a day per
    agent crosses for them at 10:00 (their own scope, asked as a null value: 10:40 is
    refused) and for a at 11:00; $13 a day for everything crosses at 11:00 (asked whole:
    11:20 is refused, 12:00 and 12:01 with it)."""
    raw = pl.concat(
        [
            RAW,
            requests(
                {"ts": HOUR + 5 * MIN, "agent": None, "cost_usd": 3.0},
                {"ts": HOUR + 30 * MIN, "agent": None, "user": "bo", "cost_usd": 2.0},
                {"ts": HOUR + 40 * MIN, "agent": None, "user": "bo", "cost_usd": 1.0},
            ).collect(),
        ]
    ).with_columns(pl.format("r{}", pl.int_range(pl.len())).alias("log_id"))
    result, asked = replay(
        SpendCap("per-agent", 4.0, "daily", split_by="agent"),
        SpendCap("all", 13.0, "daily"),
        raw=raw,
    )
    assert asked == [
        ("agent", [(HOUR, None), (HOUR + H, "a")]),
        (None, [(HOUR + H, None)]),
    ]
    assert result.whatif.table.select(  # type: ignore[attr-defined]
        "budget", "scope", "requests", "affected_requests", "saving_usd", "first_refused"
    ).rows() == [
        ("per-agent", "agent=a", 9, 4, 6.0, HOUR + H + 10 * MIN),
        ("all", "everything", 13, 3, 4.0, HOUR + H + 20 * MIN),
        ("per-agent", "agent=(none)", 3, 1, 1.0, HOUR + 40 * MIN),
        ("per-agent", "agent=b", 1, 0, 0.0, None),
    ]
