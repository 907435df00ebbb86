"""Budgets replayed as spend caps on a real warehouse: the crossing scopes' requests read
alone (``read_requests``' ``scopes``) replay as the crossing hours read whole.

Four hours of 2026-04-18 (10:00-13:59 UTC), each with ten requests (one every six
minutes, ana and bo in turn, the agents a second apart) of agents a ($0.01 each), b
($0.025), "(none)" ($0.005) and "-" ($0.01), and of requests without an agent ($0.015);
team search but for b's (ads). At $0.255 a day per agent, b crosses at 11:00 (its first
request there allowed: $0.25 before it), the scope "agent=(none)" (no agent and the
agent literally named "(none)": $0.2 an hour) at 11:00 (6 allowed), a and "-" at 12:00
(6 allowed). The team search's $0.5 a day crosses at 11:00 ($0.4 an hour: 11 allowed),
$1.49 a month for everything at 12:00 ($0.65 an hour: 15 allowed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from app.service import refresh, whatif_budgets
from core.warehouse import open_warehouse, read_requests
from ingest import IngestSettings, run_ingest
from models import CapsReplay, ModelsSettings, SpendCap, read_rollup, replay_caps
from tests.conftest import logpush_record, write_ndjson

DAY = datetime(2026, 4, 18, tzinfo=UTC)
H10 = DAY + timedelta(hours=10)
H = timedelta(hours=1)
SETTINGS = ModelsSettings(dimensions={"team": "team", "user": "user", "agent": "agent"})
AGENTS: dict[str | None, float] = {"a": 0.01, "b": 0.025, "(none)": 0.005, "-": 0.01, None: 0.015}
BUDGETS = """\
[channels.outbox]
type = "outbox"
folder = "outbox"

[[budget]]
name = "per-agent"
amount_usd = 0.255
period = "daily"
split_by = "agent"
channels = ["outbox"]

[[budget]]
name = "search"
amount_usd = 0.5
period = "daily"
filter = { team = "search" }
channels = ["outbox"]

[[budget]]
name = "all"
amount_usd = 1.49
period = "monthly"
channels = ["outbox"]
"""
CAPS = [
    SpendCap("per-agent", 0.255, "daily", split_by="agent"),
    SpendCap("search", 0.5, "daily", filters={"team": "search"}),
    SpendCap("all", 1.49, "monthly"),
]
_COLUMNS = ["user", "agent", "team", "log_id"]
Asked = list[tuple[str | None, list[tuple[datetime, str | None]]]]
EVERY_AGENT = [(None, 10), ("(none)", 10), ("-", 10), ("a", 10), ("b", 10)]


def records() -> Iterator[dict[str, Any]]:
    for hour in range(4):
        for n, (agent, cost) in enumerate(AGENTS.items()):
            for minute in range(0, 60, 6):
                at = H10 + hour * H + timedelta(minutes=minute, seconds=n)
                metadata = {"team": "ads" if agent == "b" else "search"}
                metadata["user"] = "ana" if minute % 12 == 0 else "bo"
                if agent is not None:
                    metadata["agent"] = agent
                yield logpush_record(
                    Timestamp=int(at.timestamp()) * 1_000_000_000,
                    Metrics={"cost": cost, "durationMs": 100},  # no tokens: the logged cost
                    Metadata=metadata,
                    LogId=f"r{hour}-{n}-{minute}",
                )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("caps")
    db = root / "w.duckdb"
    write_ndjson(root / "logs" / "a.log.gz", records())
    run_ingest(IngestSettings(source=str(root / "logs"), db_path=db, quality="off"))
    assert refresh(db, SETTINGS).full
    (root / "budgets.toml").write_text(BUDGETS)
    return db


def whole_hours(db: Path, asked: Asked) -> CapsReplay:
    """The caps replayed on every request of the crossing hours, the pairs asked noted."""
    with open_warehouse(db, read_only=True) as warehouse:

        def requests_of(by: str | None, pairs: list[tuple[datetime, str | None]]) -> pl.LazyFrame:
            asked.append((by, pairs))
            hours = sorted({hour for hour, _ in pairs})
            return read_requests(
                warehouse.con, SETTINGS, hours=hours, stored_costs=True, columns=_COLUMNS
            )

        rollup = read_rollup(
            warehouse.con,
            since=DAY,
            until=DAY + 24 * H,
            by=["user", "agent", "team"],
            measures=("requests", "cost_usd"),
        )
        return replay_caps(rollup, CAPS, requests_of, since=DAY)


def test_the_crossing_scopes_replay_as_their_whole_hours(warehouse: Path) -> None:
    """``aigw whatif --budgets`` (reading each split cap's crossing scopes alone) gives the
    table, users and hours of the replay that reads the crossing hours whole."""
    asked: Asked = []
    expected = whole_hours(warehouse, asked)
    assert asked == [
        ("agent", [(H10 + H, None), (H10 + H, "(none)"), (H10 + H, "b"), (H10 + 2 * H, "-"),
                   (H10 + 2 * H, "a")]),
        ("team", [(H10 + H, "search")]),
        (None, [(H10 + 2 * H, None)]),
    ]  # fmt: skip
    answer = whatif_budgets(
        warehouse, SETTINGS, warehouse.parent / "budgets.toml", since=DAY, until=DAY + 24 * H
    )
    table = expected.whatif.table
    rows = table.select("budget", "scope", "affected_requests", pl.col("saving_usd").round(3))
    assert rows.rows() == [
        ("all", "everything", 85, 1.105),
        ("search", "team=search", 109, 1.095),
        ("per-agent", "agent=b", 29, 0.725),
        ("per-agent", "agent=(none)", 54, 0.54),
        ("per-agent", "agent=-", 14, 0.14),
        ("per-agent", "agent=a", 14, 0.14),
    ]
    assert_frame_equal(answer.whatif.table, table)
    assert_frame_equal(answer.users, expected.users)
    assert_frame_equal(answer.hours, expected.hours)


def test_a_scope_value_matches_its_own_requests_and_none_matches_no_value(
    warehouse: Path,
) -> None:
    """Of 11:00's 50 requests: the ten without an agent for None, not the agents named
    "(none)" or "-"; a derived dimension (the API key, none here) and a column work too."""
    with open_warehouse(warehouse, read_only=True) as warehouse_:
        con = warehouse_.con

        def agents(by: str, *pairs: tuple[datetime, str | None]) -> list[tuple[str | None, int]]:
            frame = read_requests(
                con, SETTINGS, scopes=list(pairs), scope_by=by, stored_costs=True,
                columns=["agent", "log_id"],
            ).collect()  # fmt: skip
            assert frame["cost_usd"].null_count() == 0
            counted = frame.group_by("agent").len().sort("agent", nulls_last=False)
            return [(agent, count) for agent, count in counted.rows()]

        assert agents("agent", (H10 + H, None)) == [(None, 10)]
        assert agents("agent", (H10 + H, "-"), (H10 + 3 * H, "(none)")) == EVERY_AGENT[1:3]
        assert agents("api_key", (H10 + H, None)) == EVERY_AGENT
        assert agents("model", (H10, "gpt-4o-mini"), (H10 + H, "gpt-4o")) == EVERY_AGENT
        assert agents("team", (H10, "ads")) == [("b", 10)]
