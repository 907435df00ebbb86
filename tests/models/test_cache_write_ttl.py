"""Every billed token at its own rate: 1-hour prompt-cache writes (2x the input rate on
Anthropic) apart from 5-minute ones (1.25x), in prices, costs, the gateway's pricer, FOCUS
meters, reports and the v8 -> v9 migration. Rates: claude-sonnet-4 in the catalogue, $3
input, $3.75 5-minute writes, $6 1-hour writes per million tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import calc_price

from app.service import refresh
from core.warehouse import MIGRATIONS, SCHEMA_VERSION, open_warehouse
from models import ModelsSettings, load_price_file, price_table, with_cost
from models.focus import focus_rows, priced_requests
from models.pricing import catalog_prices
from models.reports import REPORT_MEASURES, read_rollup, spend_by
from models.request_pricing import RequestPricer, Usage
from models.rollups import hourly_rollup

NOON = datetime(2026, 4, 18, 12, tzinfo=UTC)
SONNET = ("anthropic", "claude-sonnet-4")


def _requests(*rows: dict[str, Any]) -> pl.LazyFrame:
    """Anthropic requests at noon: 1,000 uncached input tokens plus the given cache writes."""
    base: dict[str, Any] = {
        "log_id": "a",
        "ts": NOON,
        "gateway": "prod",
        "provider": SONNET[0],
        "model": SONNET[1],
        "api_key": "k",
        "status_code": 200,
        "cached": False,
        "rate_limited": False,
        "tokens_out": 0,
        "cache_read_tokens": 0,
        "cost": None,
        "duration_ms": 1.0,
    }
    full = [
        {**base, **row, "tokens_in": 1_000 + row["cache_write_tokens"]}
        for row in ({"cache_write_1h_tokens": None} | row for row in rows)
    ]
    schema = {
        "ts": pl.Datetime("us", "UTC"),
        "status_code": pl.Int32,
        "cache_write_tokens": pl.Int64,
        "cache_write_1h_tokens": pl.Int64,
        "cost": pl.Float64,
    }
    return pl.DataFrame(full, schema_overrides=schema).lazy()


def test_the_catalogue_rate_prices_1h_writes_and_the_multiplier_fills_its_gaps(
    tmp_path: Path,
) -> None:
    """claude-sonnet-4's 1-hour rate is the catalogue's $6 (2 x $3); claude-2, which the
    catalogue gives none, gets 2 x its $8 input; a price file's Anthropic entry without
    ``cache_write_1h`` gets 2 x its input, an OpenAI one none (the 5-minute rate applies)."""
    table = price_table([SONNET, ("anthropic", "claude-2")])
    rates = dict(table.filter(pl.col("rank") == 0).select("model", "cache_write_1h_mtok").rows())
    assert rates == {"claude-sonnet-4": 6.0, "claude-2": 16.0}
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[price]]\nprovider = "anthropic"\nmodel = "house"\ninput = 4\noutput = 20\n'
        '[[price]]\nprovider = "openai"\nmodel = "house"\ninput = 4\noutput = 20\n'
        '[[price]]\nprovider = "anthropic"\nmodel = "deal"\ninput = 4\noutput = 20\n'
        "cache_write_1h = 5\n"
    )
    loaded = load_price_file(path).select("provider", "model", "cache_write_1h_mtok").rows()
    assert loaded == [
        ("anthropic", "house", 8.0),
        ("openai", "house", None),
        ("anthropic", "deal", 5.0),
    ]


def test_1000_one_hour_writes_cost_twice_the_input_rate_and_5_minute_ones_1_25x() -> None:
    """1,000 1-hour writes: $3 x 2 x 1,000 / 1M = $0.006; 1,000 5-minute writes: $3.75 x
    1,000 / 1M = $0.00375; with 1,000 uncached input tokens ($0.003) the request costs
    $0.01275, what genai-prices computes for the same usage."""
    frame = _requests({"cache_write_tokens": 2_000, "cache_write_1h_tokens": 1_000})
    row = with_cost(frame, price_table([SONNET])).collect().row(0, named=True)
    assert (row["input_usd"], row["cache_write_usd"], row["cache_write_1h_usd"]) == (
        0.003,
        0.00375,
        0.006,
    )
    assert row["cost_usd"] == pytest.approx(0.01275, abs=1e-15)
    usage = CatalogueUsage(
        input_tokens=3_000, cache_write_tokens=2_000, cache_write_1h_tokens=1_000, output_tokens=0
    )
    reference = calc_price(usage, SONNET[1], provider_id="anthropic", genai_request_timestamp=NOON)
    assert row["cost_usd"] == pytest.approx(float(reference.total_price), rel=1e-12)


def test_writes_without_a_1h_count_are_all_5_minute_ones_and_the_count_is_capped() -> None:
    """No 1-hour count (a row from before v9): 1,000 writes at $3.75/M = $0.00375. A 1-hour
    count above the writes (5,000 of 1,000) prices the 1,000 writes at $6/M = $0.006."""
    frame = _requests(
        {"log_id": "old", "cache_write_tokens": 1_000},
        {"log_id": "odd", "cache_write_tokens": 1_000, "cache_write_1h_tokens": 5_000},
    )
    rows = with_cost(frame, price_table([SONNET])).collect()
    assert rows.select("cache_write_usd", "cache_write_1h_usd").rows() == [
        (0.00375, 0.0),
        (0.0, 0.006),
    ]


def test_the_gateway_prices_1h_writes_as_the_warehouse_does() -> None:
    """The gateway's pricer: 1,000 uncached + 1,000 5-minute + 1,000 1-hour writes cost
    $0.003 + $0.00375 + $0.006 = $0.01275."""
    usage = Usage(tokens_in=3_000, cache_write=2_000, cache_write_1h=1_000)
    cost = RequestPricer().cost(*SONNET, NOON, usage)
    assert cost == pytest.approx(0.01275, abs=1e-15)


def test_focus_has_a_1h_cache_write_meter_priced_at_its_own_rate() -> None:
    """The 1-hour writes are their own FOCUS row: 1,000 tokens at $6/M, ListCost $0.006 =
    ListUnitPrice x PricingQuantity; the 5-minute row has its 1,000 at $3.75/M."""
    frame = _requests({"cache_write_tokens": 2_000, "cache_write_1h_tokens": 1_000})
    table = price_table([SONNET])
    rows = focus_rows(priced_requests(frame, table, catalog_prices([SONNET])))
    meters = {
        row["SkuMeter"]: (
            row["ConsumedQuantity"],
            row["ListUnitPrice"],
            row["PricingQuantity"],
            row["ListCost"],
        )
        for row in rows.iter_rows(named=True)
    }
    assert meters == {
        "input": (1000.0, 3.0, 0.001, 0.003),
        "cache write": (1000.0, 3.75, 0.001, 0.00375),
        "cache write 1h": (1000.0, 6.0, 0.001, 0.006),
    }
    one_hour = rows.filter(pl.col("SkuMeter") == "cache write 1h").row(0, named=True)
    assert one_hour["ListCost"] == one_hour["ListUnitPrice"] * one_hour["PricingQuantity"]
    assert one_hour["SkuPriceId"] == "claude-sonnet-4-0#cache_write_1h"


def test_the_cost_report_shows_1_hour_writes_apart() -> None:
    """Two requests, 2,000 + 500 writes of which 1,000 + 0 with a 1-hour TTL: the report
    says 2,500 write tokens, of which 1,000 with a 1-hour TTL (the rest, 1,500, 5-minute)."""
    frame = _requests(
        {"log_id": "a", "cache_write_tokens": 2_000, "cache_write_1h_tokens": 1_000},
        {"log_id": "b", "cache_write_tokens": 500},
    )
    rollup = hourly_rollup(with_cost(frame, price_table([SONNET])), ("provider", "model"))
    report = spend_by(rollup, ["model"])
    assert report.columns == ["model", *REPORT_MEASURES]
    assert report.select("cache_write_tokens", "cache_write_1h_tokens").row(0) == (2_500, 1_000)


def _v8_warehouse(path: Path) -> None:
    """A warehouse as aigw left it at schema v8: one Anthropic request with 1,000 cache
    writes (uncounted by TTL) and a rollup state that says it is priced."""
    con = duckdb.connect(str(path))
    for version in range(1, 9):
        con.execute(MIGRATIONS[version])
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
    con.execute(
        "INSERT INTO requests (log_id, ts, provider, model, status_code, tokens_in, tokens_out, "
        "cache_read_tokens, cache_write_tokens, log_format, source_file, source_line, "
        "ingested_at) VALUES ('r1', ?, 'anthropic', 'claude-sonnet-4', 200, 2000, 0, 0, 1000, "
        "'logpush', 'f', 1, ?)",
        [NOON, NOON],
    )
    con.execute("INSERT INTO rollup_state VALUES ('rollup_hourly', 'old', ?, ?)", [NOON, NOON])
    con.close()


def test_the_v9_migration_keeps_rows_as_5_minute_writes_and_reprices(tmp_path: Path) -> None:
    """After v9 the old row is kept (1-hour count NULL: all 5-minute writes, $0.003 input +
    $0.00375 writes) and the next refresh is a full one; told 1,000 were 1-hour writes,
    it costs $0.003 + $0.006."""
    path = tmp_path / "aigw.duckdb"
    _v8_warehouse(path)
    with open_warehouse(path) as warehouse:
        con = warehouse.con
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            SCHEMA_VERSION,
        )
        assert con.execute("SELECT log_id, cache_write_1h_tokens FROM requests").fetchall() == [
            ("r1", None)
        ]
        assert con.execute("SELECT count(*) FROM rollup_state").fetchone() == (0,)
    assert refresh(path, ModelsSettings()).full
    with open_warehouse(path) as warehouse:
        con = warehouse.con
        cost = con.execute("SELECT effective_cost_usd FROM request_costs").fetchone()
        assert cost is not None and cost[0] == pytest.approx(0.00675, abs=1e-15)
        con.execute("UPDATE requests SET cache_write_1h_tokens = 1000")
    refresh(path, ModelsSettings(), full=True)
    with open_warehouse(path) as warehouse:
        cost = warehouse.con.execute("SELECT effective_cost_usd FROM request_costs").fetchone()
        assert cost is not None and cost[0] == pytest.approx(0.009, abs=1e-15)


def test_a_rollup_built_before_v9_reads_0_one_hour_writes_until_rebuilt() -> None:
    """A rollup table without ``cache_write_1h_tokens`` (not yet refreshed after the
    upgrade) reads 0 of them, whole or summed by model: reports do not fail."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE rollup_hourly AS SELECT TIMESTAMPTZ '2026-04-18 12:00:00+00' AS hour, "
        "'m' AS model, 1::BIGINT AS requests, 500::BIGINT AS cache_write_tokens"
    )
    whole = read_rollup(con).collect()
    assert whole.select("cache_write_tokens", "cache_write_1h_tokens").row(0) == (500, 0)
    summed = read_rollup(
        con, by=["model"], measures=("cache_write_tokens", "cache_write_1h_tokens")
    )
    assert summed.collect().select("cache_write_tokens", "cache_write_1h_tokens").row(0) == (500, 0)
