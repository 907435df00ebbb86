"""The Savings page under Streamlit's AppTest on the small what-if warehouse: the same
items and figures as ``aigw report savings`` over the page's range, and each item's link
opens cost attribution filtered to its scope."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from streamlit.testing.v1 import AppTest

from app.dashboard.ui import usd
from tests.app.dashboard_fixtures import ENTRY
from tests.conftest import run_aigw

LINK = re.compile(r"\]\((attribution\?[^)]+)\)$")


@pytest.fixture
def app(whatif_warehouse: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    """The dashboard's entry script on the what-if warehouse and its aigw.toml."""
    db, config = whatif_warehouse
    monkeypatch.setenv("AIGW_DB", str(db))
    monkeypatch.setenv("AIGW_CONFIG", str(config))
    monkeypatch.setenv("AIGW_BUDGETS", str(config.parent / "budgets.toml"))
    monkeypatch.delenv("AIGW_NOW", raising=False)
    monkeypatch.chdir(db.parent)
    yield AppTest.from_file(ENTRY, default_timeout=60)


def _open(app: AppTest, page: str, **params: str) -> AppTest:
    app.query_params.update(params)
    app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [error.message for error in app.exception]
    return app


def _report(warehouse: tuple[Path, Path], *args: str) -> dict[str, Any]:
    db, config = warehouse
    result = run_aigw(
        "report", "savings", *args, "--db", str(db), "--config", str(config), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


def _links(app: AppTest) -> list[str]:
    found = [LINK.search(block.value) for block in app.markdown]
    return [match.group(1) for match in found if match]


def test_the_savings_page_lists_what_aigw_report_savings_lists(
    app: AppTest, whatif_warehouse: tuple[Path, Path]
) -> None:
    """The default range is 2026-04-18, cut at the end of the data (12:00): the CLI over
    the same window lists gpt-4o -> gpt-4o-mini ($14.98 a month), the batch API and a
    5-minute cache ($4.68 each)."""
    _open(app, "savings")
    report = _report(whatif_warehouse, "--since", "2026-04-18T00:00", "--until", "2026-04-18T12:00")
    rows = report["rows"]
    assert [row["saving_per_month_usd"] for row in rows] == [14.976, 4.68, 4.68]
    shown = {metric.label: metric.value for metric in app.metric}
    assert shown["Opportunities"] == "3"
    assert shown["Biggest saving per month"] == "$14.98"
    assert shown["Measured over"] == "2 hours"  # 10:00 to 12:00
    kinds = {"model": "Model switch", "cache": "Response cache", "batch": "Batch API"}
    items = [(metric.label, metric.value) for metric in app.metric if metric.label[0].isdigit()]
    assert items == [
        (f"{number}. {kinds[row['kind']]}: {row['scope']}", usd(row["saving_per_month_usd"]))
        for number, row in enumerate(rows, start=1)
    ]
    assert [block.value for block in app.code] == [row["change"] for row in rows]
    evidence = [
        block.value.replace("\\", "") for block in app.markdown if "Evidence" in block.value
    ]
    assert len(evidence) == 3
    for text, row in zip(evidence, rows, strict=True):
        assert row["evidence"] in text
        assert f"{row['requests']:,} requests" in text
    assert evidence[0].endswith("$0.0416 saved over 2 hours, $14.98 per month.")
    assert "aigw report savings --since 2026-04-18T00:00 --until 2026-04-18T12:00" in (
        app.caption[0].value
    )


def test_each_item_links_to_attribution_filtered_to_its_scope(
    app: AppTest, whatif_warehouse: tuple[Path, Path]
) -> None:
    """The endpoint is no filter: the cache item's link filters the gateway and breaks the
    spend down by endpoint; the others break down by the first metadata dimension."""
    _open(app, "savings")
    links = _links(app)
    assert links == [
        "attribution?from=2026-04-18&to=2026-04-18&provider=openai&model=gpt-4o&by=team",
        "attribution?from=2026-04-18&to=2026-04-18&interactive=false&by=team",
        "attribution?from=2026-04-18&to=2026-04-18&gateway=prod&by=endpoint",
    ]
    params = dict(parse_qsl(urlsplit(links[0]).query))
    attribution = _open(AppTest.from_file(ENTRY, default_timeout=60), "attribution", **params)
    assert attribution.selectbox(key="f_provider").value == "openai"
    assert attribution.selectbox(key="f_model").value == "gpt-4o"
    assert attribution.selectbox(key="by").value == "team"
    shown = {metric.label: metric.value for metric in attribution.metric}
    # the gpt-4o requests of 2026-04-18: $0.013 + $0.013 + $0.020
    assert shown["Total spend, 1 values of team"] == "$0.05"
    assert not [block for block in attribution.warning if "Ignored" in block.value]
    cache = dict(parse_qsl(urlsplit(links[2]).query))
    routes = _open(AppTest.from_file(ENTRY, default_timeout=60), "attribution", **cache)
    assert routes.selectbox(key="f_gateway").value == "prod"
    assert routes.selectbox(key="by").value == "endpoint"
    assert not [block for block in routes.warning if "Ignored" in block.value]


def test_dimension_filters_do_not_narrow_the_savings_and_the_page_says_so(app: AppTest) -> None:
    _open(app, "savings", team="search")
    assert any("do not apply here" in block.value for block in app.info)
    assert len(_links(app)) == 3
