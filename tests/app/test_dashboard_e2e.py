"""End to end: ``aigw dashboard`` on 127.0.0.1 driven by headless Chromium (Debian's
``chromium``, through Playwright's driver; no browser is downloaded) through every page,
with one filter changed in the sidebar; a screenshot of each page is saved.

Set ``AIGW_SCREENSHOTS=DIR`` to also copy the screenshots there (for the README).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from app.service import cost_report
from models import ModelsSettings
from tests.app.dashboard_fixtures import DashboardWarehouse
from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium's own connections get refused here.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = (
    ("", "Overview"),
    ("attribution", "Cost attribution"),
    ("cache", "Cache"),
    ("anomalies", "Agents and anomalies"),
    ("budgets", "Budgets and alerts"),
    ("policy", "Policy events"),
    ("explorer", "Request explorer"),
    ("health", "Data health"),
)

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no Chromium: install Debian's chromium package (make test installs it where apt can)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dashboard_url(dashboard_warehouse: DashboardWarehouse, tmp_path: Path) -> Iterator[str]:
    """``aigw dashboard`` serving the test warehouse; its URL once it answers."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIGW_")}
    log = (tmp_path / "dashboard.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "dashboard",
            "--db",
            str(dashboard_warehouse.db),
            "--budgets",
            str(dashboard_warehouse.budgets),
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as answer:  # noqa: S310 - 127.0.0.1 only
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, (tmp_path / "dashboard.log").read_text()
                assert time.monotonic() < deadline, "aigw dashboard did not answer in 30 s"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _wait_rendered(page: Page) -> None:
    """Until the script run is over (Streamlit shows a status widget while it runs)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000
    )
    page.wait_for_timeout(300)


def _metric(page: Page, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator(
            '[data-testid="stMetricLabel"]', has_text=re.compile(f"^{re.escape(label)}$")
        )
    )
    return str(card.locator('[data-testid="stMetricValue"]').inner_text()).strip()


def test_every_page_renders_in_chromium_and_a_filter_lands_in_url_and_numbers(
    dashboard_url: str, dashboard_warehouse: DashboardWarehouse, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            for path, title in PAGES:
                page.goto(f"{dashboard_url}/{path}")
                page.get_by_role("heading", name=title, level=1).wait_for(timeout=30_000)
                page.locator(f".st-key-aigw_rendered_{path or 'overview'}").wait_for()
                _wait_rendered(page)
                assert page.locator('[data-testid="stException"]').count() == 0, path
                assert "from=2026-11-01" in page.url
                page.screenshot(path=str(shots / f"{path or 'overview'}.png"), full_page=True)

            page.goto(dashboard_url)
            _wait_rendered(page)
            page.locator('[data-testid="stSelectbox"]').filter(has_text="provider").click()
            page.get_by_role("option", name="anthropic", exact=True).click()
            page.wait_for_url(re.compile(r"provider=anthropic"), timeout=30_000)
            _wait_rendered(page)
            first = datetime(2026, 11, 1, tzinfo=UTC)
            report = cost_report(
                dashboard_warehouse.db,
                ModelsSettings(),
                by=[],
                since=first,
                until=first + timedelta(days=9),
                filters={"provider": "anthropic"},
            ).table
            assert _metric(page, "Spend") == f"${report['cost_usd'][0]:,.2f}"
            page.screenshot(path=str(shots / "overview-anthropic.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    assert len(list(shots.glob("*.png"))) == len(PAGES) + 1
    keep = os.environ.get("AIGW_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
