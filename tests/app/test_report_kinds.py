"""Cloudflare's record shapes (``tests/ingest/fixtures/cloudflare_shapes.jsonl``) through
``aigw ingest`` and the reports: spend by request and model type (as logged, else the
kind of the endpoint) and cache savings estimated for hits logged without token counts,
shown apart."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.dashboard_fixtures import ENTRY
from tests.conftest import run_aigw
from tests.ingest.test_cloudflare_shapes import FIXTURE


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's 10 records ingested (catalogue prices) and rolled up."""
    root = tmp_path_factory.mktemp("kinds")
    (root / "logs").mkdir()
    shutil.copy(FIXTURE, root / "logs" / "cloudflare_shapes.jsonl")
    (root / "aigw.toml").write_text("[models]\n")
    db = root / "aigw.duckdb"
    result = run_aigw(
        "ingest", str(root / "logs"), "--db", str(db), "--config", str(root / "aigw.toml"),
        "--quality", "off",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return db


def _json(db: Path, *args: str, stderr: str = "") -> Any:
    """The command's JSON output; it must succeed with ``stderr`` on stderr."""
    result = run_aigw(*args, "--db", str(db), "--config", str(db.parent / "aigw.toml"),
                      "--format", "json")  # fmt: skip
    assert (result.returncode, result.stderr) == (0, stderr)
    return orjson.loads(result.stdout)


def test_spend_by_request_and_model_type_has_exact_totals_per_kind(warehouse: Path) -> None:
    """REST records keep their logged types (``universal`` requests of chat models); Logpush
    records on ``chat/completions`` are chat; the embeddings record is embeddings. Costs:
    universal $0.00045 + $0.001391 (Workers AI's catalogue price) + $0.0018 + $0.0002
    (custom) + $0.004; chat $0.00045 + $0.0123 (logged) and two free hits."""
    note = "note: $0.0126 of saved_usd is estimated (cache hits logged without token counts; "
    rows = _json(
        warehouse,
        "report",
        "cost",
        "--by",
        "request_type,model_type",
        stderr=note + "docs/costs.md)\n",
    )
    got = [
        (
            row["request_type"],
            row["model_type"],
            row["requests"],
            row["cached_requests"],
            round(row["cost_usd"], 9),
            round(row["saved_usd"], 9),
        )
        for row in rows
    ]
    assert got == [
        ("chat", "chat", 4, 2, 0.01275, 0.012625),
        ("universal", "chat", 5, 0, 0.007841, 0.0),
        ("embeddings", "embeddings", 1, 0, 0.0001, 0.0),
    ]
    [embeddings] = _json(
        warehouse, "report", "cost", "--by", "model", "--where", "request_type=embeddings"
    )
    assert (embeddings["model"], embeddings["requests"]) == ("text-embedding-3-small", 1)


def test_hits_without_tokens_save_an_estimate_shown_apart(warehouse: Path) -> None:
    """The gpt-4o hit saves its key's $0.0123 miss; the gpt-4o-mini hit, with no body to
    match, the median of that model's two misses that day ($0.0002 and $0.00045:
    $0.000325). Both are estimated, and the table says so under it."""
    report = _json(warehouse, "report", "cache", "--by", "model", "--candidates", "0")
    saved = {
        row["model"]: (round(row["saved_usd"], 9), round(row["saved_estimated_usd"], 9))
        for row in report["summary"]
        if row["cached_requests"]
    }
    assert saved == {"gpt-4o": (0.0123, 0.0123), "gpt-4o-mini": (0.000325, 0.000325)}
    table = run_aigw(
        "report", "cache", "--db", str(warehouse), "--config", str(warehouse.parent / "aigw.toml")
    )
    assert table.returncode == 0, table.stderr
    assert "of which estimated: $0.0126 of $0.0126 saved" in table.stdout


def test_the_dashboards_cache_page_says_how_much_of_the_savings_is_estimated(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Cache page's note under its figures names the estimated part ($0.012625: $0.01)."""
    monkeypatch.setenv("AIGW_DB", str(warehouse))
    monkeypatch.setenv("AIGW_CONFIG", str(warehouse.parent / "aigw.toml"))
    monkeypatch.delenv("AIGW_BUDGETS", raising=False)
    monkeypatch.delenv("AIGW_NOW", raising=False)
    monkeypatch.chdir(warehouse.parent)
    app = AppTest.from_file(ENTRY, default_timeout=60)
    app.switch_page("views/cache.py").run()
    assert not app.exception, [error.message for error in app.exception]
    assert {metric.label: metric.value for metric in app.metric}["Savings"] == "$0.01"
    notes = [caption.value for caption in app.caption if "estimated" in caption.value]
    assert notes == [
        "Of the savings, $0.01 is estimated: cache hits logged without token counts saved "
        "what the same request cost when a provider answered it, else the median cost of "
        "that model's answers that day (docs/costs.md)."
    ]
