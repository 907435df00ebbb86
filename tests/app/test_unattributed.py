"""Encrypted Metadata without a key, as the user sees it: the ingest summary line and the
attribution page's warning count the requests whose team, user and agent are unknown."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.dashboard_fixtures import ENTRY
from tests.conftest import run_aigw

FIXTURE = Path(__file__).parents[1] / "ingest" / "fixtures" / "cloudflare_shapes.jsonl"
LINE = "1 requests without attribution: Metadata is encrypted; pass --private-key"


@pytest.fixture
def fixture_db(tmp_path: Path) -> Path:
    """The Cloudflare shapes fixture (one record with encrypted Metadata) ingested."""
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(FIXTURE, logs / FIXTURE.name)
    db = tmp_path / "aigw.duckdb"
    ingest = run_aigw("ingest", str(logs), "--db", str(db))
    assert ingest.returncode == 0, ingest.stderr
    assert f"attribution: {LINE}" in ingest.stdout
    return db


def test_the_attribution_page_warns_of_requests_without_attribution(
    fixture_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 requests on 2026-11-20, one with encrypted Metadata: the page says so."""
    monkeypatch.setenv("AIGW_DB", str(fixture_db))
    monkeypatch.delenv("AIGW_CONFIG", raising=False)
    monkeypatch.delenv("AIGW_BUDGETS", raising=False)
    monkeypatch.delenv("AIGW_NOW", raising=False)
    monkeypatch.chdir(fixture_db.parent)
    app = AppTest.from_file(ENTRY, default_timeout=60)
    app.switch_page("views/attribution.py").run()
    assert not app.exception, [error.message for error in app.exception]
    assert [w.value for w in app.warning if "attribution" in w.value] == [
        f"{LINE} to `aigw ingest`."
    ]
