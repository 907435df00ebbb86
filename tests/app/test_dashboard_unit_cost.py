"""The Cost attribution page's cost per unit of work under Streamlit's AppTest on a real
warehouse: the key from ``[outcomes] unit_key`` or typed in, and the numbers of
``aigw report unit-cost`` (the service's ``unit_cost_report``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.dashboard.ui import count, usd
from app.service import unit_cost_report
from models import ModelsSettings
from tests.app.dashboard_fixtures import ENTRY, DashboardWarehouse


def _attribution(
    warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch, config: Path | None
) -> AppTest:
    monkeypatch.setenv("AIGW_DB", str(warehouse.db))
    monkeypatch.setenv("AIGW_BUDGETS", str(warehouse.budgets))
    if config is None:
        monkeypatch.delenv("AIGW_CONFIG", raising=False)
    else:
        monkeypatch.setenv("AIGW_CONFIG", str(config))
    monkeypatch.delenv("AIGW_NOW", raising=False)
    monkeypatch.chdir(warehouse.db.parent)
    app = AppTest.from_file(ENTRY, default_timeout=60)
    app.query_params.update({"from": "2026-11-02", "to": "2026-11-05"})
    app.switch_page("views/attribution.py").run()
    assert not app.exception, [error.message for error in app.exception]
    return app


def test_cost_per_unit_follows_outcomes_unit_key_and_matches_the_report(
    dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "aigw.toml"
    config.write_text('[outcomes]\nunit_key = "user"\n')
    app = _attribution(dashboard_warehouse, monkeypatch, config)
    assert app.text_input(key="unit_key").value == "user"
    report = unit_cost_report(
        dashboard_warehouse.db,
        ModelsSettings(),
        unit_key="user",
        since=datetime(2026, 11, 2, tzinfo=UTC),
        until=datetime(2026, 11, 6, tzinfo=UTC),  # "to" is the last day shown
    )
    summary = report.costs.summary.row(0, named=True)
    shown = {metric.label: metric.value for metric in app.metric}
    assert summary["units"] > 1
    assert shown["Units (user)"] == count(summary["units"])
    assert shown["Mean per unit"] == usd(summary["mean_usd"])
    assert shown["p50 per unit"] == usd(summary["p50_usd"])
    assert shown["p95 per unit"] == usd(summary["p95_usd"])
    assert shown["Max per unit"] == usd(summary["max_usd"])


def test_without_a_key_the_section_says_how_to_name_one(
    dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _attribution(dashboard_warehouse, monkeypatch, None)
    assert app.text_input(key="unit_key").value == ""
    assert not any(metric.label.startswith("Units (") for metric in app.metric)
    assert any("Name the metadata key" in caption.value for caption in app.caption)
    app.text_input(key="unit_key").input("agent").run()
    assert not app.exception, [error.message for error in app.exception]
    labels = {metric.label for metric in app.metric}
    assert "Units (agent)" in labels
