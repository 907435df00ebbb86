"""``cacheable_requests``: what the rollup refresh keeps for the cache TTL what-if, on real
warehouse files. The replay read from it equals the replay read the long way (every
request parsed again, costs joined), for every TTL, grouping, key scope and filter; an
incremental refresh (late records in an old hour, a new hour) leaves the table as a full
rebuild would; a stale warehouse is read the long way."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from app.service import refresh, whatif_cache
from core.warehouse import open_warehouse, read_cacheable, read_requests
from models import (
    ModelsSettings,
    parse_ttl,
    read_rollup,
    replay_cache_ttls,
    replay_identified,
)
from tests.conftest import logpush_record
from tests.models.kept_fixtures import load, seeded_batch

H0 = 1_776_470_400  # 2026-04-18T00:00:00Z, unix seconds
SINCE = datetime(2026, 4, 18, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=4)
SETTINGS = ModelsSettings(dimensions={"team": "team"})
TTLS = [parse_ttl(text) for text in ("30s", "5m", "1h")]
_REPLAY = ("gateway", "model", "status_code", "cached", "rate_limited", "api_key")


def record(rng: random.Random, at: int, serial: int) -> dict[str, Any]:
    """A request among 2 gateways, 2 endpoints, 2 models, 3 keys and 6 request hashes;
    some refused, failed, skipping the cache, without a hash, or hits."""
    status = rng.choice([200] * 8 + [429, 500])
    extra: dict[str, Any] = {"LogId": f"r{serial}", "ApiKeyId": rng.choice(["k1", "k2", "k3"])}
    if rng.random() < 0.9:
        extra["CacheKeyHash"] = f"h{rng.randrange(6)}"
    if rng.random() < 0.1:
        extra["CacheSkipped"] = True
    cached = status == 200 and rng.random() < 0.25
    return logpush_record(
        Timestamp=at * 1_000_000_000,
        Gateway=rng.choice(["prod", "staging"]),
        Endpoint=rng.choice(["chat/completions", "embeddings"]),
        Model=rng.choice(["gpt-4o-mini", "gpt-4o"]),
        StatusCode=status,
        RateLimited=status == 429,
        Cached=cached,
        Metrics={
            "cost": 0.0 if cached else 0.001 * rng.randrange(1, 9),
            "tokensIn": rng.randrange(100, 3000),
            "tokensOut": rng.randrange(10, 500),
            "durationMs": 100,
        },
        Metadata={"team": rng.choice(["search", "ads"])},
        **extra,
    )


def batch(seed: int, count: int, first: int, span: int) -> list[dict[str, Any]]:
    return seeded_batch(record, seed, count, first, span)


def replays(db: Path, *, by: list[str], per_key: bool, filters: dict[str, str]) -> tuple:
    """The replay from ``cacheable_requests`` and the replay read the long way."""
    with open_warehouse(db, read_only=True) as warehouse:
        con = warehouse.con
        rollup = read_rollup(
            con,
            since=SINCE,
            until=UNTIL,
            by=[*by, *filters],
            measures=("requests", "cached_requests", "cost_usd", "saved_usd"),
        )
        for name, value in filters.items():
            rollup = rollup.filter(pl.col(name) == value)
        kept = read_cacheable(
            con, since=SINCE, until=UNTIL, columns=by, filters=filters, per_key=per_key
        )
        fast = replay_identified(rollup, kept, TTLS, by=by, per_key=per_key)
        repeated = read_requests(
            con,
            SETTINGS,
            since=SINCE,
            until=UNTIL,
            with_request_hash=True,
            repeated_at_least=2,
            repeated_in="range",
            stored_costs=True,
            columns=[*by, *filters, *_REPLAY, "cache_skipped"],
        )
        for name, value in filters.items():
            repeated = repeated.filter(pl.col(name) == value)
        slow = replay_cache_ttls(rollup, repeated, TTLS, by=by, per_key=per_key)
    return fast, slow


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 requests over 3 hours, then 200 more: late ones in the first hour and a new
    fourth hour, each load followed by a refresh (the second one incremental)."""
    root = tmp_path_factory.mktemp("cacheable")
    db, source = root / "w.duckdb", root / "logs"
    load(db, source, batch(1, 600, H0, 3 * 3600), "a")
    assert refresh(db, SETTINGS).full
    late = batch(2, 100, H0, 3600) + batch(3, 100, H0 + 3 * 3600, 3600)
    load(db, source, late, "b")
    assert not refresh(db, SETTINGS).full
    return db


@pytest.mark.parametrize(
    ("by", "per_key", "filters"),
    [
        (["gateway", "endpoint"], False, {}),
        (["gateway", "endpoint"], True, {}),
        (["model"], False, {"gateway": "prod"}),
        (["api_key"], True, {"endpoint": "embeddings"}),
    ],
)
def test_the_kept_inputs_replay_as_the_requests_read_again(
    warehouse: Path, by: list[str], per_key: bool, filters: dict[str, str]
) -> None:
    fast, slow = replays(warehouse, by=by, per_key=per_key, filters=filters)
    for kept, again in zip(fast, slow, strict=True):
        assert kept.change == again.change
        assert kept.notes == again.notes
        assert_frame_equal(kept.table, again.table, check_exact=False, abs_tol=1e-12)
    changed = [answer.table["affected_requests"].sum() for answer in fast]
    assert all(count > 0 for count in changed)  # every TTL changes something here


def test_the_table_holds_each_answered_hashed_request_that_did_not_skip(
    warehouse: Path,
) -> None:
    records = batch(1, 600, H0, 3 * 3600) + batch(2, 100, H0, 3600)
    records += batch(3, 100, H0 + 3 * 3600, 3600)
    expected = sorted(
        r["LogId"]
        for r in records
        if "CacheKeyHash" in r and r["StatusCode"] == 200 and "CacheSkipped" not in r
    )
    with open_warehouse(warehouse, read_only=True) as opened:
        rows = opened.con.execute(
            "SELECT log_id, cached, cost_usd IS NOT NULL FROM cacheable_requests ORDER BY 1"
        ).fetchall()
    assert [row[0] for row in rows] == expected
    assert len(expected) == 533
    assert all(row[2] for row in rows)  # each with the refresh's effective cost


def test_an_incremental_refresh_keeps_what_a_full_rebuild_would(
    warehouse: Path, tmp_path: Path
) -> None:
    query = "SELECT * FROM cacheable_requests ORDER BY log_id"
    with open_warehouse(warehouse, read_only=True) as opened:
        incremental = opened.con.execute(query).pl()
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    refresh(copy, SETTINGS, full=True)
    with open_warehouse(copy, read_only=True) as opened:
        rebuilt = opened.con.execute(query).pl()
    assert incremental.height == 533
    assert_frame_equal(incremental, rebuilt)


def test_a_stale_warehouse_is_replayed_from_its_requests(warehouse: Path, tmp_path: Path) -> None:
    """Rows loaded after the refresh are not in the table yet: the what-if reads the
    requests (and says the rollups are stale), so it still sees them."""
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    fresh = whatif_cache(copy, SETTINGS, parse_ttl("1h"), since=SINCE, until=UNTIL)
    extra = [
        logpush_record(
            Timestamp=(H0 + 60 * n) * 1_000_000_000,
            Gateway="prod",
            Endpoint="chat/completions",
            LogId=f"late{n}",
            CacheKeyHash="late",
            Metrics={"cost": 0.5, "tokensIn": 10, "tokensOut": 10},
        )
        for n in range(3)
    ]
    load(copy, tmp_path / "more", extra, "c")
    stale = whatif_cache(copy, SETTINGS, parse_ttl("1h"), since=SINCE, until=UNTIL)
    assert stale.notes[-1].startswith("the rollups are behind")
    route = (pl.col("gateway") == "prod") & (pl.col("endpoint") == "chat/completions")
    before, after = fresh.table.filter(route), stale.table.filter(route)
    # two of the three new identical requests become hits (their cost is not refreshed
    # yet, so the saving is unchanged): the long read found them
    assert after["extra_hit_requests"][0] == before["extra_hit_requests"][0] + 2


def test_a_v10_warehouse_gains_the_table_and_its_next_refresh_fills_it(
    warehouse: Path, tmp_path: Path
) -> None:
    """A warehouse from before v11 (the tables of v11 and v12 dropped, the version set
    back, the rollups current): opening it adds the empty table and forgets the rollup
    state, so the cache what-if reads the requests (stale) until the next refresh, a full
    one, fills it."""
    copy = tmp_path / "v10.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    before = whatif_cache(copy, SETTINGS, parse_ttl("5m"), since=SINCE, until=UNTIL).table
    with open_warehouse(copy) as opened:
        opened.con.execute("DROP TABLE cacheable_requests")
        opened.con.execute("DROP TABLE prompt_prefixed_requests")  # v12's, after
        opened.con.execute("DELETE FROM schema_migrations WHERE version >= 11")
    with open_warehouse(copy) as opened:
        assert opened.con.execute("SELECT count(*) FROM cacheable_requests").fetchone() == (0,)
        assert opened.con.execute("SELECT count(*) FROM rollup_state").fetchone() == (0,)
    stale = whatif_cache(copy, SETTINGS, parse_ttl("5m"), since=SINCE, until=UNTIL)
    assert stale.notes[-1].startswith("the rollups are behind")
    assert_frame_equal(stale.table, before, check_exact=False, abs_tol=1e-12)
    assert refresh(copy, SETTINGS).full
    with open_warehouse(copy, read_only=True) as opened:
        assert opened.con.execute("SELECT count(*) FROM cacheable_requests").fetchone() == (533,)


def test_a_request_identity_is_the_md5_of_its_gateway_model_and_hash(tmp_path: Path) -> None:
    """``group_hash`` and ``group_check`` halve the MD5 of the JSON list
    ``["prod","gpt-4o-mini","h1"]`` as DuckDB's md5_number_lower and md5_number_upper do
    (the digest's bytes 8-15 and 0-7, little-endian), in a full and an incremental refresh."""
    db, source = tmp_path / "w.duckdb", tmp_path / "logs"
    load(db, source, [logpush_record(LogId="first", CacheKeyHash="h1")], "a")
    assert refresh(db, SETTINGS).full
    later = logpush_record(Timestamp=(H0 + 3600) * 1_000_000_000, LogId="later", CacheKeyHash="h1")
    load(db, source, [later], "b")
    assert not refresh(db, SETTINGS).full
    with open_warehouse(db, read_only=True) as opened:
        rows = opened.con.execute(
            "SELECT log_id, group_hash, group_check FROM cacheable_requests ORDER BY 1"
        ).fetchall()
    identity = (7_839_308_898_083_389_915, 15_446_214_445_307_550_065)
    assert rows == [("first", *identity), ("later", *identity)]
