"""`aigw reconcile invoice` as a user runs it: the three export formats against a small
real DuckDB warehouse, exact numbers per cell, re-imports that replace, bad files that
import nothing, and the Budgets page's gateway vs invoice per month."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.dashboard_fixtures import ENTRY
from tests.app.test_report_cli import D1, D2, SONNET, ingest, request, write_config
from tests.conftest import logpush_record, run_aigw, write_ndjson
from tests.lake_fixtures import lake_config

BILLS = Path(__file__).parents[1] / "models" / "invoices"
FILES = [
    str(BILLS / "openai_costs.json"),
    str(BILLS / "anthropic_cost_report.json"),
    str(BILLS / "other_bill.csv"),
]
HOUSE = {"Provider": "workers-ai", "Model": "@cf/acme/house-model-v2"}
RECORDS = [
    request(D1, "search", 1_000, 500),  # openai gpt-4o-mini $0.002
    request(D1 + 120, "platform", 10_000, 1_000),  # $0.012
    request(D2 + 3_600, "search", 2_000, 1_000),  # $0.004
    request(D1 + 60, "support", 1_000, 100, **SONNET),  # $0.0045
    # no price for this model: its cost is what the gateway logged
    logpush_record(
        Timestamp=D1 + 180, Metrics={"cost": 0.0015, "durationMs": 90, "tokensIn": 100}, **HOUSE
    ),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reconcile")
    config = write_config(root)
    write_ndjson(root / "logs" / "a.log.gz", RECORDS)
    db = root / "aigw.duckdb"
    ingest(root / "logs", db, config)
    return db, config


def reconcile(warehouse: tuple[Path, Path], *args: str) -> Any:
    db, config = warehouse
    result = run_aigw(
        "reconcile", "invoice", *args, "--db", str(db), "--config", str(config),
        "--tolerance", "0.0001", "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def stored(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT provider, model, round(sum(amount_usd), 9), count(*) FROM provider_costs "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def test_three_bills_against_the_gateway(warehouse: tuple[Path, Path]) -> None:
    """A matched day per provider, a model that bypassed the gateway, a cost without a
    model, and an unpriced model; the bills are stored once however often imported."""
    document = reconcile(warehouse, *FILES)
    cells = [
        (
            row["day"], row["provider"], row["model"], row["requests"],
            round(row["invoice_usd"], 9), round(row["cost_usd"], 9),
            round(row["difference_usd"], 9), row["cause"],
        )
        for row in document["cells"]
    ]  # fmt: skip
    assert cells == [
        ("2026-04-18", "anthropic", "claude-sonnet-4", 1, 0.0045, 0.0045, 0.0, "matched"),
        ("2026-04-18", "anthropic", None, 0, 0.125, 0.0, 0.125, "bypass"),
        ("2026-04-18", "openai", "gpt-4.1", 0, 1.25, 0.0, 1.25, "bypass"),
        ("2026-04-18", "openai", "gpt-4o-mini", 2, 0.014, 0.014, 0.0, "matched"),
        ("2026-04-19", "openai", "gpt-4o-mini", 1, 0.004, 0.004, 0.0, "matched"),
        (
            "2026-04-18", "workers-ai", "@cf/acme/house-model-v2", 1,
            0.0025, 0.0015, 0.001, "unpriced",
        ),
    ]  # fmt: skip
    summary = {key: round(value, 9) for key, value in document["summary"].items() if key[0] != "d"}
    assert summary == {
        "invoice_usd": 1.4,  # 1.268 + 0.1295 + 0.0025
        "cost_usd": 0.0240,  # 0.014 + 0.004 + 0.0045 + 0.0015
        "cost_logged": 0.0015,
        "matched_usd": 0.0225,
    }
    assert round(document["summary"]["difference_usd"], 9) == 1.376
    db, _ = warehouse
    expected = [
        ("anthropic", "claude-sonnet-4", 0.0045, 1),
        ("anthropic", None, 0.125, 1),
        ("openai", "gpt-4.1", 1.25, 1),
        ("openai", "gpt-4o-mini", 0.018, 2),
        ("workers-ai", "@cf/acme/house-model-v2", 0.0025, 1),
    ]
    assert stored(db) == expected
    reconcile(warehouse, FILES[0])  # again: replaces, never adds
    assert stored(db) == expected


def test_a_bad_file_imports_nothing(warehouse: tuple[Path, Path], tmp_path: Path) -> None:
    db, _ = warehouse
    before = stored(db)
    bad = tmp_path / "azure.csv"
    bad.write_text("date,provider,model,amount_usd\n2026-04-18,azure,gpt-4o,12,5\n")
    result = run_aigw("reconcile", "invoice", FILES[0], str(bad), "--db", str(db))
    assert result.returncode == 2
    assert result.stderr == f"error: {bad}: line 2: 5 fields, expected 4\n"
    assert stored(db) == before


def test_the_table_says_the_totals(warehouse: tuple[Path, Path]) -> None:
    db, config = warehouse
    result = run_aigw(
        "reconcile", "invoice", FILES[2], "--db", str(db), "--config", str(config),
        "--tolerance", "0.0001",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "unpriced" in result.stdout
    assert result.stdout.splitlines()[-2:] == [
        "imported 1 rows from 1 files; invoice $0.0025, gateway $0.0015 (logged $0.0015), "
        "matched $0.0000, difference $0.0010",
        "  unpriced: $0.0010",
    ]


def test_an_iceberg_warehouse_says_it_cannot_store_bills(tmp_path: Path) -> None:
    result = run_aigw("reconcile", "invoice", FILES[2], "--config", str(lake_config(tmp_path)))
    assert result.returncode == 2
    assert result.stderr == (
        "error: an Iceberg warehouse cannot store provider bills yet; "
        "reconcile against a DuckDB warehouse (--db FILE)\n"
    )
    assert not (tmp_path / "lake").exists()


def test_the_budgets_page_shows_gateway_vs_invoice_per_month(
    warehouse: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The imported bills per month and provider against the gateway, as the command
    computes them (default tolerance: a cent)."""
    db, config = warehouse
    result = run_aigw("reconcile", "invoice", *FILES, "--db", str(db), "--config", str(config))
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("AIGW_DB", str(db))
    monkeypatch.setenv("AIGW_CONFIG", str(config))
    monkeypatch.setenv("AIGW_BUDGETS", str(db.parent / "no-budgets.toml"))
    monkeypatch.delenv("AIGW_NOW", raising=False)
    monkeypatch.chdir(db.parent)
    app = AppTest.from_file(ENTRY, default_timeout=60)
    app.switch_page("views/budgets.py").run()
    assert not app.exception, [error.message for error in app.exception]
    shown = app.dataframe[0].value
    assert [
        (str(month)[:10], provider, *(round(float(v), 9) for v in values))
        for month, provider, *values in shown.itertuples(index=False)
    ] == [
        # provider, invoice, gateway, difference, matched (within a cent: all but bypass)
        ("2026-04-01", "anthropic", 0.1295, 0.0045, 0.125, 0.0045),
        ("2026-04-01", "openai", 1.268, 0.018, 1.25, 0.018),
        ("2026-04-01", "workers-ai", 0.0025, 0.0015, 0.001, 0.0025),
    ]
