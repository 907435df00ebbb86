"""The replay's read (``core.warehouse.replay_read``): routed and ordered in DuckDB (by
time, ties by the request key's 64-bit hash), with the stored costs, and that hash."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from core.warehouse import (
    KEY_HASH,
    asked_pairs,
    open_warehouse,
    read_requests,
    read_routed,
)
from models import ModelsSettings
from tests.app.whatif_fixtures import CONFIG, PRICES, record
from tests.conftest import run_aigw, write_ndjson

SINCE = datetime(2026, 4, 18, tzinfo=UTC)
UNTIL = datetime(2026, 4, 19, tzinfo=UTC)
SETTINGS = ModelsSettings(dimensions={"user": "user", "agent": "agent"})


def _at(minute: int, log_id: str, asked: str | None = None, **fields: Any) -> dict[str, Any]:
    row = record(minute, "chat", 1_000, 100, LogId=log_id, **fields)
    return row if asked is None else {**row, "RequestedModel": asked}


# Two requests at 10:00 (a tie, in the order of their keys' hashes), "b" logged route "batch"; a
# claude request (route "claude" by its pair); two attempts of event "e" (steps 0 and 1,
# both 10:05, gpt-4o asked, gpt-4o-mini served the second); "x" logged a route not
# configured ("gone"), routed by its asked model (gpt-4o-mini; gpt-4o served).
RECORDS = [
    _at(0, "c"),
    _at(0, "b", Route="batch"),
    _at(1, "a", Provider="anthropic", Model="claude-sonnet-4"),
    _at(5, "e1", EventId="e", Step=0),
    _at(5, "e2", "gpt-4o", EventId="e", Step=1, Model="gpt-4o-mini"),
    _at(9, "x", "gpt-4o-mini", Route="gone"),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("replay_read")
    (root / "prices.toml").write_text(PRICES)
    (root / "aigw.toml").write_text(CONFIG)
    write_ndjson(root / "logs" / "a.log.gz", RECORDS)
    db = root / "aigw.duckdb"
    config = str(root / "aigw.toml")
    loaded = run_aigw("ingest", str(root / "logs"), "--db", str(db), "--config", config)
    assert loaded.returncode == 0, loaded.stderr
    return db


CHOSEN = {  # the window's pairs, routed
    ("openai", "gpt-4o"): "chat",
    ("openai", "gpt-4o-mini"): "mini",
    ("anthropic", "claude-sonnet-4"): "claude",
}


def _read(
    db: Path,
    routes: list[str],
    extra: tuple[str, ...] = (),
    chosen: dict[tuple[str | None, str | None], str] = CHOSEN,
) -> pl.DataFrame:
    with open_warehouse(db, read_only=True) as opened:
        assert asked_pairs(opened.con, SINCE, UNTIL) == [
            ("anthropic", "claude-sonnet-4"),
            ("openai", "gpt-4o"),
            ("openai", "gpt-4o-mini"),
        ]
        return read_routed(
            opened.con,
            SETTINGS,
            since=SINCE,
            until=UNTIL,
            routes=routes,
            logged={"chat", "batch", "claude", "mini"},
            chosen=chosen,
            columns=["log_id", "tokens_in", "user", *extra],
        )


def test_requests_come_routed_in_request_order_with_their_stored_costs(warehouse: Path) -> None:
    frame = _read(warehouse, ["batch", "chat", "claude", "mini"])
    rows = frame.select("log_id", "route").rows()
    # event "e"'s attempts share key "e": their order is not defined (a replay folds them)
    assert sorted(rows[3:5]) == [("e1", "chat"), ("e2", "chat")]  # routed by gpt-4o, asked
    tie = [("b", "batch"), ("c", "chat")]  # "b" logged a configured route: kept
    with duckdb.connect(str(warehouse), read_only=True) as con:
        ordered = con.execute("SELECT hash('b') < hash('c')").fetchone()
    assert rows[:3] + rows[5:] == [
        *(tie if ordered and ordered[0] else tie[::-1]),
        ("a", "claude"),
        ("x", "mini"),  # logged a route not configured: by its asked model, gpt-4o-mini
    ]
    assert frame["user"].to_list() == ["ana"] * 6
    with open_warehouse(warehouse, read_only=True) as opened:
        expected = read_requests(
            opened.con,
            SETTINGS,
            since=SINCE,
            until=UNTIL,
            stored_costs=True,
            columns=["log_id", "tokens_in", "user"],
        ).collect()
    # the same rows with the same stored costs as the reports' read: 1,000 tokens in and
    # 100 out at gpt-4o's $10/$30 a million are $0.013, at gpt-4o-mini's $1/$2 $0.0012,
    # at claude-sonnet-4's $3/$15 $0.0045
    by_id = {row["log_id"]: row for row in expected.iter_rows(named=True)}
    assert set(by_id) == set(frame["log_id"])
    costs = {log_id: round(cost, 10) for log_id, cost in frame.select("log_id", "cost_usd").rows()}
    assert costs == {"b": 0.013, "c": 0.013, "a": 0.0045, "e1": 0.013, "e2": 0.0012, "x": 0.013}
    assert costs == {log_id: round(row["cost_usd"], 10) for log_id, row in by_id.items()}
    tokens = [by_id[log_id]["tokens_in"] for log_id in frame["log_id"]]
    assert frame["tokens_in"].to_list() == tokens == [1_000] * 6
    # the key's hash: one per request key, the attempts of "e" sharing theirs
    keys = frame[KEY_HASH].to_list()
    assert len(set(keys)) == 5
    assert keys[3] == keys[4]
    assert frame[KEY_HASH].dtype == pl.UInt64
    assert "event_id" not in frame.columns
    assert "step" not in frame.columns


def test_the_keys_text_and_attempts_come_when_named(warehouse: Path) -> None:
    """What a replay reads again when a key repeats: the event ids and steps."""
    frame = _read(warehouse, ["chat"], ("event_id", "step"))
    rows = sorted(frame.select("log_id", "event_id", "step").rows())
    assert rows == [("c", None, None), ("e1", "e", 0), ("e2", "e", 1)]


def test_only_the_named_routes_come_back(warehouse: Path) -> None:
    frame = _read(warehouse, ["mini", "claude"])
    assert frame.select("log_id", "route").rows() == [("a", "claude"), ("x", "mini")]
    assert _read(warehouse, ["nowhere"]).height == 0


def test_many_pairs_are_routed_by_a_join_as_by_the_case(warehouse: Path) -> None:
    """Past _CASE_PAIRS pairs the route comes from a join with a table of the pairs (a
    CASE of thousands of pairs took seconds a million requests): the same rows, routes
    and order; a pair of a route not read and a pair not chosen go nowhere."""
    few = _read(warehouse, ["batch", "chat", "mini"])
    padding = {("openai", f"gpt-4o-{number}"): "chat" for number in range(100)}
    chosen = {
        **CHOSEN,  # "a" (claude) goes nowhere: its route is not read
        **padding,
        (None, None): "chat",
    }
    many = _read(warehouse, ["batch", "chat", "mini"], chosen=chosen)
    assert many.select("log_id", "route").rows()[:2] == few.select("log_id", "route").rows()[:2]
    assert sorted(many.select("log_id", "route").rows()[:2]) == [("b", "batch"), ("c", "chat")]
    # (event "e"'s two attempts share a key: their order is not defined)
    assert many.sort("ts", "log_id").equals(few.sort("ts", "log_id"))
    assert many.height == 5  # "a" (claude) is not read
