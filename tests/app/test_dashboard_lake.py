"""The dashboards on an Iceberg warehouse (named by aigw.toml): each page shows what it
shows on the DuckDB warehouse loaded from the same logs, to the cent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.dashboard_fixtures import ENTRY, DashboardWarehouse
from tests.conftest import run_aigw
from tests.lake_fixtures import lake_config

PAGES = ("overview", "attribution", "cache", "anomalies")


@pytest.fixture(scope="module")
def lake_toml(
    tmp_path_factory: pytest.TempPathFactory, dashboard_warehouse: DashboardWarehouse
) -> Path:
    """An Iceberg warehouse loaded from the DuckDB dashboard warehouse's logs."""
    config = lake_config(tmp_path_factory.mktemp("lake-dashboard"))
    loaded = run_aigw(
        "ingest",
        str(dashboard_warehouse.logs),
        "--quality",
        "off",
        env={"AIGW_CONFIG": str(config)},
    )
    assert loaded.returncode == 1, loaded.stderr  # the broken object fails, as on DuckDB
    return config


def _shown(page: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The page's metrics and tables as a user reads them."""
    for name in ("AIGW_DB", "AIGW_CONFIG", "AIGW_NOW"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = AppTest.from_file(ENTRY, default_timeout=60)
    app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [error.message for error in app.exception]
    shown: dict[str, object] = {metric.label: metric.value for metric in app.metric}
    for number, table in enumerate(app.dataframe):
        columns = table.value.to_dict(orient="list")
        # sums of floats in another order differ in the last bits, never in a cent
        shown[f"table {number}"] = {
            name: [round(v, 9) if isinstance(v, float) else v for v in values]
            for name, values in columns.items()
        }
    return shown


@pytest.fixture
def budgets(
    dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("AIGW_BUDGETS", str(dashboard_warehouse.budgets))
    monkeypatch.chdir(dashboard_warehouse.db.parent)
    yield


@pytest.mark.usefixtures("budgets")
@pytest.mark.parametrize("page", PAGES)
def test_a_page_shows_the_same_numbers_on_both_warehouse_kinds(
    page: str,
    lake_toml: Path,
    dashboard_warehouse: DashboardWarehouse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_duckdb = _shown(page, {"AIGW_DB": str(dashboard_warehouse.db)}, monkeypatch)
    on_iceberg = _shown(page, {"AIGW_CONFIG": str(lake_toml)}, monkeypatch)
    assert len(on_duckdb) >= 2  # the page shows numbers to compare (metrics, tables)
    assert on_iceberg == on_duckdb


@pytest.mark.usefixtures("budgets")
def test_the_data_health_page_counts_the_objects_of_the_manifest(
    lake_toml: Path, dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers of an Iceberg warehouse copy the manifest only when a page shows it: the
    data-health page does, and counts the same objects as on the DuckDB warehouse."""
    metrics = ("Objects loaded", "Objects failed", "Rejected records")
    on_duckdb = _shown("health", {"AIGW_DB": str(dashboard_warehouse.db)}, monkeypatch)
    on_iceberg = _shown("health", {"AIGW_CONFIG": str(lake_toml)}, monkeypatch)
    assert [on_iceberg[name] for name in metrics] == [on_duckdb[name] for name in metrics]
    assert on_iceberg["Objects failed"] == "1"  # the broken object
    assert on_iceberg["Objects loaded"] != "0"
