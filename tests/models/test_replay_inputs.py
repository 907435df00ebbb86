"""``replay_requests``, ``replay_profiles`` and ``replay_repeats``: what the rollup
refresh keeps for the rate-limit replay, on real warehouse files. Each request keeps its
time, key hash, tokens, cost and profile (the text it shares with other requests); an
incremental refresh (late records in an old hour, a new hour) keeps the profiles'
numbers and leaves the rows as a full rebuild would; the read from them equals the read
of ``requests``; the replay answers the same either way, and when a key repeats (the
refresh lists the keys that do), the rollups are stale or the tables are gone (a hash
collision drops them)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from app.service import refresh, whatif_limits
from core.warehouse import (
    PROFILE_COLUMNS,
    asked_pairs,
    keys_repeat,
    open_warehouse,
    read_kept_routed,
    read_replay_requests,
    read_routed,
    replay_inputs_kept,
)
from core.warehouse.replay_inputs import REPEATS_DDL, REPLAY_DDL
from models import LimitsReplay, ModelsSettings
from tests.conftest import logpush_record
from tests.models.kept_fixtures import load, seeded_batch

H0 = 1_776_470_400  # 2026-04-18T00:00:00Z, unix seconds
SINCE = datetime(2026, 4, 18, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=4)
SETTINGS = ModelsSettings(dimensions={"user": "user", "agent": "agent"})
GATEWAY = """\
[auth]
required = false

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9"

[routes.claude]
match = ["claude-*"]
provider = "openai"
rate_limits = [{ name = "per-key", per = "key", unit = "tokens", limit = 6000, window_s = 600 }]
budget = { usd = 0.02, period = "day", per = "metadata:agent" }

[routes.chat]
match = ["*"]
provider = "openai"
rate_limits = [
  { name = "per-user", per = "metadata:user", limit = 3, window_s = 300, sliding = true },
  { name = "per-route", per = "route", limit = 15, window_s = 900 },
]
"""
# Records without a time of their own are at whole seconds: 600 over 3 hours share some.
_COUNTS = {"requests": 600, "late": 100, "new": 100}


def record(rng: random.Random, at: int, serial: int) -> dict[str, Any]:
    """A request among 2 providers' models, a requested model or none, a logged route or
    none (one not configured), 3 keys or none, 6 users or none and 3 agents."""
    model = rng.choice(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"])
    extra: dict[str, Any] = {"LogId": f"r{serial}"}
    if rng.random() < 0.8:
        extra["ApiKeyId"] = rng.choice(["k1", "k2", "k3"])
    if rng.random() < 0.3:
        extra["RequestedModel"] = rng.choice(["gpt-4o", "claude-sonnet-4"])
    if rng.random() < 0.2:
        extra["Route"] = rng.choice(["chat", "claude", "gone"])
    metadata: dict[str, str] = {"agent": rng.choice(["a1", "a2", "a3"])}
    if rng.random() < 0.9:
        metadata["user"] = f"u{rng.randrange(6)}"
    return logpush_record(
        Timestamp=at * 1_000_000_000,
        Provider="anthropic" if model.startswith("claude") else "openai",
        Model=model,
        Metrics={
            "cost": 0.001 * rng.randrange(1, 9),
            "tokensIn": rng.randrange(100, 3000),
            "tokensOut": rng.randrange(10, 500),
            "durationMs": 100,
        },
        Metadata=metadata,
        **extra,
    )


def batch(seed: int, count: int, first: int, span: int) -> list[dict[str, Any]]:
    return seeded_batch(record, seed, count, first, span)


def profiles(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT * FROM replay_profiles ORDER BY profile").fetchall()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[Any, ...]]]:
    """600 requests over 3 hours, refreshed in full, then 200 more: late ones in the first
    hour and a new fourth hour, refreshed incrementally; with the profiles after the
    first refresh."""
    root = tmp_path_factory.mktemp("replay_inputs")
    db, source = root / "w.duckdb", root / "logs"
    load(db, source, batch(1, _COUNTS["requests"], H0, 3 * 3600), "a")
    assert refresh(db, SETTINGS).full
    first = profiles(db)
    late = batch(2, _COUNTS["late"], H0, 3600) + batch(3, _COUNTS["new"], H0 + 3 * 3600, 3600)
    load(db, source, late, "b")
    again = refresh(db, SETTINGS)
    assert (again.full, again.hours) == (False, 2)
    return db, first


_EXPECTED = """
SELECT r.ts, hash(coalesce(r.event_id, r.log_id)) AS request_key, r.tokens_in,
       r.tokens_out, c.effective_cost_usd AS cost_usd, r.gateway, r.provider, r.model,
       r.endpoint, coalesce(r.api_key_id, json_extract_string(r.extra, '$.ApiKeyId')),
       NULL::VARCHAR, r.request_type, r.model_type, r.metadata, r.requested_model, r.route
FROM requests AS r LEFT JOIN request_costs AS c USING (ts, log_id)
"""
_PROFILED = ", ".join(f"p.{name}" for name in PROFILE_COLUMNS)
_KEPT = (
    "SELECT q.ts, q.request_key, q.tokens_in, q.tokens_out, q.cost_usd, "  # noqa: S608
    f"{_PROFILED} FROM replay_requests AS q "
    "JOIN replay_profiles AS p USING (profile)"
)


def test_each_request_keeps_its_numbers_and_its_profiles_text(
    warehouse: tuple[Path, list[tuple[Any, ...]]],
) -> None:
    """Every request of the 800, once, with its key's hash, tokens, effective cost and
    the text of its profile; fewer profiles than requests, one per distinct text."""
    db, _ = warehouse
    with duckdb.connect(str(db), read_only=True) as con:
        kept = sorted(con.execute(_KEPT).fetchall(), key=repr)
        expected = sorted(con.execute(_EXPECTED).fetchall(), key=repr)
        distinct = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(PROFILE_COLUMNS)} "  # noqa: S608
            "FROM replay_profiles)"
        ).fetchone()
        counted = con.execute("SELECT count(*) FROM replay_profiles").fetchone()
    assert len(kept) == sum(_COUNTS.values()) == 800
    assert kept == expected
    assert distinct == counted
    assert counted is not None and 1 < counted[0] < 800


def test_an_incremental_refresh_keeps_the_profiles_numbers(
    warehouse: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    """The profiles of the first refresh keep their numbers; new ones come after them;
    a full refresh of the same requests keeps the same rows (by text)."""
    db, first = warehouse
    now = profiles(db)
    assert now[: len(first)] == first
    assert [row[0] for row in now] == list(range(len(now)))
    assert len(now) > len(first)  # the new hour brought new profiles
    rebuilt = tmp_path / "rebuilt.duckdb"
    rebuilt.write_bytes(db.read_bytes())
    assert refresh(rebuilt, SETTINGS, full=True).full
    with duckdb.connect(str(db), read_only=True) as con:
        incremental = sorted(con.execute(_KEPT).fetchall(), key=repr)
    with duckdb.connect(str(rebuilt), read_only=True) as con:
        assert sorted(con.execute(_KEPT).fetchall(), key=repr) == incremental


def test_the_kept_requests_come_in_time_order_after_late_records(
    warehouse: tuple[Path, list[tuple[Any, ...]]],
) -> None:
    """The late records' hour was written again after the others: the read sorts what
    the table holds out of order, ties by the key's hash."""
    db, _ = warehouse
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("SELECT ts FROM replay_requests").fetchall()
        frame = read_replay_requests(con, since=SINCE, until=UNTIL)
    assert stored != sorted(stored)  # (as the table lies: the first hour after the third)
    assert frame.height == 800
    assert frame.select(pl.col("ts").dt.epoch("us"), "request_key").rows() == sorted(
        frame.select(pl.col("ts").dt.epoch("us"), "request_key").rows()
    )
    assert frame.schema["ts"] == pl.Datetime("us", "UTC")
    assert frame.select(pl.col("ts").is_duplicated().any()).item()  # ties were read
    with duckdb.connect(str(db), read_only=True) as con:  # without the keys: the same order
        unkeyed = read_replay_requests(con, since=SINCE, until=UNTIL, keys=False)
    assert_frame_equal(unkeyed, frame.drop("request_key"))


def test_a_read_of_some_profiles_without_the_keys_keeps_the_ties_in_key_order() -> None:
    """The profiles' filter is a join, which does not keep the table's order: 20,000
    rows over one minute at whole seconds (DuckDB 1.5 gave one second's ties out of
    order), read one second at a time (the times alone look sorted)."""
    con = duckdb.connect()
    con.execute(REPLAY_DDL + REPEATS_DDL)
    con.execute(
        "INSERT INTO replay_requests SELECT ?::TIMESTAMPTZ + to_seconds(i % 60), hash(i), "
        "i, 1, 0.0, i % 4 FROM range(20000) AS t(i) ORDER BY 1, 2",
        [SINCE],
    )
    for second in range(60):
        since = SINCE + timedelta(seconds=second)
        until = since + timedelta(seconds=1)
        keyed = read_replay_requests(con, since=since, until=until, profiles=[1, 3])
        unkeyed = read_replay_requests(con, since=since, until=until, profiles=[1, 3], keys=False)
        assert keyed["request_key"].is_sorted()
        assert_frame_equal(unkeyed, keyed.drop("request_key"))


@pytest.mark.parametrize("padding", [0, 40])  # a CASE over the pairs; past 32, a join
@pytest.mark.parametrize("columns", [["user", "agent"], ["api_key", "model", "gateway"]])
def test_the_kept_read_equals_the_read_of_requests(
    warehouse: tuple[Path, list[tuple[Any, ...]]], padding: int, columns: list[str]
) -> None:
    """Same rows, order, routes, keys, costs and values (the kept read's dimensions are
    enums of the same text), for routes logged, routed by their pair, or neither."""
    db, _ = warehouse
    with open_warehouse(db, read_only=True) as opened:
        pairs = asked_pairs(opened.con, SINCE, UNTIL)
        chosen = {
            pair: "claude" if (pair[1] or "").startswith("claude") else "chat" for pair in pairs
        }
        chosen.update({("openai", f"pad-{n}"): "chat" for n in range(padding)})
        chosen.pop(("openai", "gpt-4o-mini"))  # a pair routed nowhere
        options: dict[str, Any] = {
            "since": SINCE,
            "until": UNTIL,
            "routes": ["chat", "claude"],
            "logged": {"chat", "claude"},
            "chosen": chosen,
            "columns": ["ts", "tokens_in", "tokens_out", *columns],
        }
        long = read_routed(opened.con, SETTINGS, **options)
        kept = read_kept_routed(opened.con, SETTINGS, **options)
    assert 300 < long.height < 800
    assert set(long["route"]) == {"chat", "claude"}
    assert kept.schema[columns[0]] == pl.Enum(long[columns[0]].drop_nulls().unique().sort())
    assert long.schema["route"] == kept.schema["route"] == pl.Enum(["chat", "claude"])
    assert_frame_equal(
        kept.with_columns(pl.col(pl.Enum).cast(pl.String)),
        long.with_columns(pl.col(pl.Enum).cast(pl.String)),
    )
    # read without the keys (the replay's read when no key repeats): the same rows in the
    # same order, ties included
    with open_warehouse(db, read_only=True) as opened:
        unkeyed = read_kept_routed(opened.con, SETTINGS, **options, keyed=False)
    assert_frame_equal(unkeyed, kept.drop("_request"))


def test_a_column_the_tables_do_not_keep_is_refused(
    warehouse: tuple[Path, list[tuple[Any, ...]]],
) -> None:
    db, _ = warehouse
    with (
        open_warehouse(db, read_only=True) as opened,
        pytest.raises(ValueError, match="hold no status_code"),
    ):
        read_kept_routed(
            opened.con,
            SETTINGS,
            since=SINCE,
            until=UNTIL,
            routes=["chat"],
            logged=set(),
            chosen={},
            columns=["status_code"],
        )


def _answer(replay: LimitsReplay) -> list[list[dict[str, Any]]]:
    return [replay.whatif.table.to_dicts(), replay.users.to_dicts(), replay.windows.to_dicts()]


def _replayed(db: Path, gateway: Path) -> list[list[dict[str, Any]]]:
    return _answer(whatif_limits(db, SETTINGS, gateway, since=SINCE, until=UNTIL))


def test_the_replay_answers_the_same_from_the_kept_tables_and_from_requests(
    warehouse: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    """Limits per user (sliding), per route and per key (tokens), a budget per agent:
    the same refusals, users, windows and savings whether the replay reads the kept
    tables or, without them, ``requests``; refusals of every kind happen."""
    db, _ = warehouse
    gateway = tmp_path / "gateway.toml"
    gateway.write_text(GATEWAY)
    kept = _replayed(db, gateway)
    without = tmp_path / "without.duckdb"
    without.write_bytes(db.read_bytes())
    with duckdb.connect(str(without)) as con:
        con.execute("DROP TABLE replay_requests")
        con.execute("DROP TABLE replay_profiles")
    with open_warehouse(without, read_only=True) as opened:
        assert not replay_inputs_kept(opened.con)
    assert _replayed(without, gateway) == kept
    limits = {row["limit"] for row in kept[2]}
    assert limits == {"per-user", "per-route", "per-key", "budget"}
    assert sum(row["affected_requests"] for row in kept[0]) > 100
    # and the kept tables are what it read: their costs doubled by hand double its costs
    doubled = tmp_path / "doubled.duckdb"
    doubled.write_bytes(db.read_bytes())
    with duckdb.connect(str(doubled)) as con:
        con.execute("UPDATE replay_requests SET cost_usd = 2 * cost_usd")
    route = _replayed(doubled, gateway)[0][0]
    assert route["route"] == kept[0][0]["route"]
    assert route["current_cost_usd"] == pytest.approx(2 * kept[0][0]["current_cost_usd"])


def test_a_hash_collision_drops_the_tables_and_the_replay_reads_requests(
    warehouse: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    """Two profiles of one identity (made here by hand: DuckDB's 64-bit hash is not
    broken) would give requests the wrong text: the next refresh drops both tables, and
    the replay answers as before, from ``requests``."""
    db, _ = warehouse
    gateway = tmp_path / "gateway.toml"
    gateway.write_text(GATEWAY)
    copy, source = tmp_path / "copy.duckdb", tmp_path / "logs"
    copy.write_bytes(db.read_bytes())
    before = _replayed(copy, gateway)
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "INSERT INTO replay_profiles SELECT max(profile) + 1, any_value(identity), "
            "'elsewhere', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
            "FROM replay_profiles"
        )
    load(copy, source, batch(4, 10, H0 + 5 * 3600, 600), "c")  # a later hour: same window
    assert not refresh(copy, SETTINGS).full
    with open_warehouse(copy, read_only=True) as opened:
        assert not replay_inputs_kept(opened.con)
    assert _replayed(copy, gateway) == before


def test_repeated_keys_and_stale_rollups_read_requests(tmp_path: Path) -> None:
    """Two attempts of one event (a failover) fold into one request, which the kept
    tables cannot do: the replay reads ``requests`` with the keys' text, and answers as
    without the tables; a warehouse loaded since its last refresh is read the long way
    (the new records count: the kept tables do not hold them)."""
    db, source = tmp_path / "w.duckdb", tmp_path / "logs"
    gateway = tmp_path / "gateway.toml"
    gateway.write_text(GATEWAY)
    records = batch(5, 60, H0, 600)
    records[1] = {**records[1], "EventId": "e", "Step": 0}
    records[2] = {**records[2], "EventId": "e", "Step": 1}
    load(db, source, records, "a")
    refresh(db, SETTINGS)
    kept = _replayed(db, gateway)
    assert sum(row["requests"] for row in kept[0]) == 59  # 60 records, 2 of one request
    without = tmp_path / "without.duckdb"
    without.write_bytes(db.read_bytes())
    with duckdb.connect(str(without)) as con:
        con.execute("DROP TABLE replay_requests")
        con.execute("DROP TABLE replay_profiles")
    assert _replayed(without, gateway) == kept
    load(db, source, batch(6, 30, H0 + 600, 600), "b")  # not refreshed: stale
    stale = _replayed(db, gateway)
    assert sum(row["requests"] for row in stale[0]) == 89


def test_a_tie_goes_by_the_key_hash_also_when_another_request_folds(tmp_path: Path) -> None:
    """Ana's "a" and bob's "b" at 00:10, one request a minute per route: the one whose
    key hashes lower passes (DuckDB's hash('b') < hash('a'): bob's), whether or not an
    unrelated request of two attempts (event "e", 00:20) makes the replay fold the
    window's attempts with the keys' text."""
    gateway = tmp_path / "gateway.toml"
    gateway.write_text(
        GATEWAY.split("[routes.claude]", maxsplit=1)[0]
        + '[routes.chat]\nmatch = ["*"]\nprovider = "openai"\n'
        'rate_limits = [{ name = "one", per = "route", limit = 1, window_s = 60 }]\n'
    )
    at = (H0 + 600) * 1_000_000_000
    tie = [
        logpush_record(Timestamp=at, LogId="a", Metadata={"user": "ana"}),
        logpush_record(Timestamp=at, LogId="b", Metadata={"user": "bob"}),
    ]
    later = (H0 + 1200) * 1_000_000_000
    attempts = [
        logpush_record(Timestamp=later, LogId=f"e{step}", EventId="e", Step=step) for step in (0, 1)
    ]
    refused = []
    for name, records in (("alone", tie), ("folded", tie + attempts)):
        db = tmp_path / f"{name}.duckdb"
        load(db, tmp_path / name, records, "a")
        refresh(db, SETTINGS)
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute("SELECT hash('b') < hash('a')").fetchone() == (True,)
        users = whatif_limits(db, SETTINGS, gateway, since=SINCE, until=UNTIL).users
        refused.append(users.select("user", "refused_requests").rows())
    assert refused == [[("ana", 1)], [("ana", 1)]]


def test_the_refresh_lists_the_keys_that_repeat(tmp_path: Path) -> None:
    """Event "e"'s two attempts (00:05, 00:06) and event "f"'s first (00:50), refreshed
    in full; "f"'s second (01:10) loaded and refreshed incrementally: both keys are
    listed, so a window holding any of their rows folds (``keys_repeat``), and a window
    without them (02:00-03:00) reads as is."""
    db, source = tmp_path / "w.duckdb", tmp_path / "logs"
    first = batch(7, 40, H0 + 7200, 3600)  # 02:00-03:00, keys of their own

    def attempt(at: int, event: str, step: int) -> dict[str, Any]:
        return logpush_record(
            Timestamp=at * 1_000_000_000, LogId=f"{event}{step}", EventId=event, Step=step
        )

    first += [attempt(H0 + 300, "e", 0), attempt(H0 + 360, "e", 1), attempt(H0 + 3000, "f", 0)]
    load(db, source, first, "a")
    assert refresh(db, SETTINGS).full
    load(db, source, [attempt(H0 + 4200, "f", 1)], "b")
    assert not refresh(db, SETTINGS).full
    hour = timedelta(hours=1)
    with open_warehouse(db, read_only=True) as opened:
        con = opened.con
        listed = con.execute("SELECT request_key FROM replay_repeats ORDER BY ALL").fetchall()
        assert (
            listed
            == con.execute("SELECT hash('e') UNION ALL SELECT hash('f') ORDER BY ALL").fetchall()
        )
        assert keys_repeat(con, since=SINCE, until=SINCE + hour)  # e's two, f's first
        assert keys_repeat(con, since=SINCE + hour, until=SINCE + 2 * hour)  # f's second alone
        assert not keys_repeat(con, since=SINCE + 2 * hour, until=SINCE + 3 * hour)
    with duckdb.connect(str(db)) as con:  # a warehouse where no key repeats lists none
        con.execute("DELETE FROM requests WHERE event_id IS NOT NULL")
    assert refresh(db, SETTINGS, full=True).full
    with open_warehouse(db, read_only=True) as opened:
        assert opened.con.execute("SELECT count(*) FROM replay_repeats").fetchone() == (0,)
        assert not keys_repeat(opened.con, since=SINCE, until=UNTIL)


def test_a_v13_warehouse_gains_the_list_and_its_next_refresh_fills_it(
    warehouse: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path
) -> None:
    """A warehouse from before v14 (the list dropped, the version set back): opening it
    adds the empty list and forgets the rollup state, so the replay reads ``requests``
    (stale) until the next refresh, a full one, which fills the list; the answer is the
    same throughout."""
    db, _ = warehouse
    gateway = tmp_path / "gateway.toml"
    gateway.write_text(GATEWAY)
    copy = tmp_path / "v13.duckdb"
    copy.write_bytes(db.read_bytes())
    before = _replayed(copy, gateway)
    with open_warehouse(copy) as opened:
        opened.con.execute("DROP TABLE replay_repeats")
        opened.con.execute("DELETE FROM schema_migrations WHERE version >= 14")
    with open_warehouse(copy) as opened:
        assert opened.con.execute("SELECT count(*) FROM replay_repeats").fetchone() == (0,)
        assert opened.con.execute("SELECT count(*) FROM rollup_state").fetchone() == (0,)
    assert _replayed(copy, gateway) == before
    assert refresh(copy, SETTINGS).full
    assert _replayed(copy, gateway) == before
