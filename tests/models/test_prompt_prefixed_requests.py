"""``prompt_prefixed_requests``: what the rollup refresh keeps for the prompt-caching
what-if, on real warehouse files. The replay read from it equals the replay read the long
way (the requests scanned and priced again), by several groupings and filters, for the
what-if (the rollups' totals) and for the savings report (the prefixed requests alone);
an incremental refresh (late records in an old hour, a new hour) leaves the table as a
full rebuild would; a stale warehouse is read the long way; a v11 warehouse gains the
table and its next refresh, a full one, fills it; an Iceberg warehouse reads the long
way, with the same answer."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from app.service import refresh, savings_report, whatif_prompt_cache
from app.service.prompt_cache import prompt_cache_replay
from core.warehouse import open_warehouse
from models import ModelsSettings, WhatIf, WhatIfSettings, read_rollup
from tests.conftest import logpush_record
from tests.lake_fixtures import lake_spec
from tests.models.kept_fixtures import load

H0 = 1_776_470_400  # 2026-04-18T00:00:00Z, unix seconds
SINCE = datetime(2026, 4, 18, tzinfo=UTC)
UNTIL = SINCE + timedelta(hours=4)
SETTINGS = ModelsSettings(dimensions={"team": "team"})
# a model with cache read and write rates, one with a read rate only, one without a price
MODELS = (
    ("anthropic", "claude-sonnet-4-5", "messages"),
    ("openai", "gpt-4o-mini", "chat/completions"),
    ("custom", "in-house-llm", "chat/completions"),
)
PREFIXED = 569  # of the 800 requests below, those that carry a prefix hash


def record(rng: random.Random, at_ms: int, serial: int) -> dict[str, Any]:
    """A request on one of ``MODELS``, 2 gateways and 3 keys; most with one of 3 prompt
    prefixes (some under 1,024 tokens); some refused, failed, response-cache hits, or
    already reading the prompt cache."""
    provider, model, endpoint = rng.choice(MODELS)
    status = rng.choice([200] * 8 + [429, 500])
    metrics: dict[str, Any] = {
        "cost": 0.001 * rng.randrange(1, 9),
        "tokensIn": rng.randrange(3000, 8000),
        "tokensOut": rng.randrange(10, 500),
        "durationMs": 100,
    }
    if rng.random() < 0.15:
        metrics["cacheReadTokens"] = rng.randrange(1, 2000)
    prefix: dict[str, Any] = {}
    if rng.random() < 0.7:
        prefix = {
            "PromptPrefixHash": f"prefix-{rng.randrange(3)}",
            "PromptPrefixTokens": rng.choice([800, 1500, 2500]),
        }
    return logpush_record(
        Timestamp=at_ms * 1_000_000,
        Gateway=rng.choice(["prod", "staging"]),
        Provider=provider,
        Model=model,
        RequestedModel=model,
        Endpoint=endpoint,
        StatusCode=status,
        RateLimited=status == 429,
        Cached=status == 200 and rng.random() < 0.1,
        Metrics=metrics,
        Metadata={"team": rng.choice(["search", "ads"])},
        LogId=f"r{serial}",
        ApiKeyId=rng.choice(["k1", "k2", "k3"]),
        **prefix,
    )


def batch(seed: int, count: int, first: int, span: int) -> list[dict[str, Any]]:
    """``count`` requests in ``span`` seconds from ``first``, at distinct milliseconds (a
    chain's order, and so which request writes, must not depend on a tie)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    times = sorted(rng.sample(range(span * 100), count))
    # the batch's seed as the last millisecond digit: no two batches share a time
    return [
        record(rng, first * 1000 + at * 10 + seed, seed * 100_000 + n) for n, at in enumerate(times)
    ]


def everything() -> list[dict[str, Any]]:
    """The fixture warehouse's 800 requests."""
    late = batch(2, 100, H0, 3600) + batch(3, 100, H0 + 3 * 3600, 3600)
    return batch(1, 600, H0, 3 * 3600) + late


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 requests over 3 hours, then 200 more: late ones in the first hour and a new
    fourth hour, each load followed by a refresh (the second one incremental)."""
    root = tmp_path_factory.mktemp("prefixed")
    db, source = root / "w.duckdb", root / "logs"
    load(db, source, batch(1, 600, H0, 3 * 3600), "a")
    assert refresh(db, SETTINGS).full
    late = batch(2, 100, H0, 3600) + batch(3, 100, H0 + 3 * 3600, 3600)
    load(db, source, late, "b")
    assert not refresh(db, SETTINGS).full
    return db


def replays(
    db: Path, *, by: list[str], filters: dict[str, str], totals: bool
) -> tuple[WhatIf, WhatIf]:
    """The replay from ``prompt_prefixed_requests`` and the replay read the long way: with
    the rollups' totals (``aigw whatif``) or of the prefixed requests alone (the savings
    report's)."""
    with open_warehouse(db, read_only=True) as opened:
        scope = None
        if totals:
            scope = read_rollup(
                opened.con,
                since=SINCE,
                until=UNTIL,
                by=[*by, *filters],
                measures=("requests", "cost_usd"),
            )
        fast, slow = (
            prompt_cache_replay(
                opened,
                SETTINGS,
                SINCE,
                UNTIL,
                by=by,
                filters=filters,
                prefixed_only=not totals,
                scope=scope,
                current=current,
            )
            for current in (True, False)
        )
    return fast, slow


@pytest.mark.parametrize("totals", [True, False], ids=["whatif", "savings"])
@pytest.mark.parametrize(
    ("by", "filters"),
    [
        (["provider", "model"], {}),
        (["gateway", "endpoint"], {}),
        (["model"], {"gateway": "prod"}),
        (["api_key"], {"provider": "anthropic", "endpoint": "messages"}),
    ],
)
def test_the_kept_requests_replay_as_the_requests_read_again(
    warehouse: Path, by: list[str], filters: dict[str, str], totals: bool
) -> None:
    fast, slow = replays(warehouse, by=by, filters=filters, totals=totals)
    assert fast.change == slow.change
    assert fast.notes == slow.notes
    assert_frame_equal(fast.table, slow.table, check_exact=False, abs_tol=1e-12)
    counts = fast.table.select(pl.col("cache_write_requests", "cache_read_requests").sum())
    assert all(count > 0 for count in counts.row(0))  # writes and reads both happen here
    assert any("already read the prompt cache" in note for note in fast.notes)


def test_the_table_holds_each_prefixed_request_at_the_refresh_cost(warehouse: Path) -> None:
    expected = sorted(
        (r["Timestamp"] // 1000, r["PromptPrefixHash"])
        for r in everything()
        if "PromptPrefixHash" in r
    )
    assert len(expected) == PREFIXED
    with open_warehouse(warehouse, read_only=True) as opened:
        con = opened.con
        kept = con.execute(
            "SELECT epoch_us(ts), prompt_prefix_hash FROM prompt_prefixed_requests ORDER BY 1"
        ).fetchall()
        costs = "SELECT ts, cost_usd, cost_source FROM prompt_prefixed_requests ORDER BY ts"
        stored = (
            "SELECT ts, effective_cost_usd, cost_source FROM requests "
            "JOIN request_costs USING (ts, log_id) WHERE prompt_prefix_hash IS NOT NULL "
            "ORDER BY ts"
        )
        assert con.execute(costs).fetchall() == con.execute(stored).fetchall()
    assert kept == expected


def test_an_incremental_refresh_keeps_what_a_full_rebuild_would(
    warehouse: Path, tmp_path: Path
) -> None:
    query = "SELECT * FROM prompt_prefixed_requests ORDER BY ts"
    with open_warehouse(warehouse, read_only=True) as opened:
        incremental = opened.con.execute(query).pl()
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    assert refresh(copy, SETTINGS, full=True).full
    with open_warehouse(copy, read_only=True) as opened:
        rebuilt = opened.con.execute(query).pl()
    assert incremental.height == PREFIXED
    assert_frame_equal(incremental, rebuilt)


def _sonnet(answer: WhatIf) -> dict[str, Any]:
    rows = answer.table.filter(pl.col("model") == "claude-sonnet-4-5").to_dicts()
    assert len(rows) == 1
    return rows[0]


def test_the_whatif_reads_the_kept_requests_while_the_rollups_are_current(
    warehouse: Path, tmp_path: Path
) -> None:
    """Emptied (the rollups still current), the table leaves nothing to replay: the
    what-if read it, not the requests."""
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    before = _sonnet(whatif_prompt_cache(copy, SETTINGS, since=SINCE, until=UNTIL))
    with open_warehouse(copy) as opened:
        opened.con.execute("DELETE FROM prompt_prefixed_requests")
    emptied = _sonnet(whatif_prompt_cache(copy, SETTINGS, since=SINCE, until=UNTIL))
    counts = ("affected_requests", "cache_write_requests", "cache_read_requests")
    assert [before[name] for name in counts] == [75, 36, 39]
    assert emptied["affected_requests"] == 0
    assert emptied["requests"] == before["requests"]  # the totals come from the rollups


def test_a_stale_warehouse_is_replayed_from_its_requests(warehouse: Path, tmp_path: Path) -> None:
    """Rows loaded after the refresh are not in the table yet: the what-if reads the
    requests (and says the rollups are stale), so it still sees them."""
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    fresh = _sonnet(whatif_prompt_cache(copy, SETTINGS, since=SINCE, until=UNTIL))
    extra = [
        logpush_record(
            Timestamp=(H0 + 3 * 3600 + 1800 + n) * 1_000_000_000,
            Provider="anthropic",
            Model="claude-sonnet-4-5",
            RequestedModel="claude-sonnet-4-5",
            Endpoint="messages",
            LogId=f"late{n}",
            PromptPrefixHash="prefix-late",
            PromptPrefixTokens=5000,
            Metrics={"tokensIn": 6000, "tokensOut": 500},
        )
        for n in range(3)
    ]
    load(copy, tmp_path / "more", extra, "c")
    answer = whatif_prompt_cache(copy, SETTINGS, since=SINCE, until=UNTIL)
    assert answer.notes[-1].startswith("the rollups are behind")
    stale = _sonnet(answer)
    # one write and two reads of the new prefix: the long read found them
    assert stale["cache_write_requests"] == fresh["cache_write_requests"] + 1
    assert stale["cache_read_requests"] == fresh["cache_read_requests"] + 2


def test_a_v11_warehouse_gains_the_table_and_its_next_refresh_fills_it(
    warehouse: Path, tmp_path: Path
) -> None:
    """A warehouse from before v12 (the table dropped, the version set back, the rollups
    current): opening it adds the empty table and forgets the rollup state, so the
    what-if reads the requests (stale) until the next refresh, a full one, fills it."""
    copy = tmp_path / "v11.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    before = whatif_prompt_cache(copy, SETTINGS, since=SINCE, until=UNTIL).table
    with open_warehouse(copy) as opened:
        opened.con.execute("DROP TABLE prompt_prefixed_requests")
        opened.con.execute("DELETE FROM schema_migrations WHERE version >= 12")  # v13's after
    with open_warehouse(copy) as opened:
        count = "SELECT count(*) FROM prompt_prefixed_requests"
        assert opened.con.execute(count).fetchone() == (0,)
        assert opened.con.execute("SELECT count(*) FROM rollup_state").fetchone() == (0,)
    stale = whatif_prompt_cache(copy, SETTINGS, since=SINCE, until=UNTIL)
    assert stale.notes[-1].startswith("the rollups are behind")
    assert_frame_equal(stale.table, before, check_exact=False, abs_tol=1e-12)
    assert refresh(copy, SETTINGS).full
    with open_warehouse(copy, read_only=True) as opened:
        assert opened.con.execute(count).fetchone() == (PREFIXED,)
    after = whatif_prompt_cache(copy, SETTINGS, since=SINCE, until=UNTIL).table
    assert_frame_equal(after, before, check_exact=False, abs_tol=1e-12)


def test_the_savings_report_lists_the_same_items_either_way(
    warehouse: Path, tmp_path: Path
) -> None:
    """The report from the kept requests (current rollups) equals the report read the long
    way (the same warehouse, its rollup state set behind), and names the prompt cache."""
    whatif = WhatIfSettings()
    kept = savings_report(warehouse, SETTINGS, whatif, since=SINCE, until=UNTIL)
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    with open_warehouse(copy) as opened:
        opened.con.execute("UPDATE rollup_state SET watermark = watermark - INTERVAL 1 SECOND")
    again = savings_report(copy, SETTINGS, whatif, since=SINCE, until=UNTIL)
    assert again.notes[-1].startswith("the rollups are behind")
    assert kept.notes == again.notes[:-1]
    assert_frame_equal(kept.table, again.table, check_exact=False, abs_tol=1e-12)
    items = kept.table.filter(pl.col("kind") == "prompt-cache").select("scope", "saving_usd")
    assert items.rows() == [
        ("provider=anthropic, model=claude-sonnet-4-5", pytest.approx(0.1491)),
        ("provider=openai, model=gpt-4o-mini", pytest.approx(0.0051)),
    ]


def test_an_iceberg_warehouse_reads_the_requests_with_the_same_answer(
    warehouse: Path, tmp_path: Path
) -> None:
    """Iceberg readers keep no copy: the what-if reads the requests there."""
    spec = lake_spec(tmp_path)
    load(spec, tmp_path / "logs", everything(), "all")
    refresh(spec, SETTINGS)
    with open_warehouse(spec, read_only=True) as opened:
        tables = opened.con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_name = 'prompt_prefixed_requests'"
        ).fetchone()
    assert tables == (0,)
    lake = whatif_prompt_cache(spec, SETTINGS, since=SINCE, until=UNTIL)
    duck = whatif_prompt_cache(warehouse, SETTINGS, since=SINCE, until=UNTIL)
    assert lake.notes == duck.notes
    assert_frame_equal(lake.table, duck.table, check_exact=False, abs_tol=1e-12)
