"""End to end: ``aigw dashboard`` on 127.0.0.1 driven by headless Chromium (Debian's
``chromium``, through Playwright's driver; no browser is downloaded) through every page,
with one filter changed in the sidebar; a screenshot of each page is saved. The browser
runs in Los Angeles time: axis labels must still be UTC. No request may leave 127.0.0.1.

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
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

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
    ("savings", "Savings"),
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


def _metric_cards(page: Page, label: str) -> Locator:
    return page.locator('[data-testid="stMetric"]').filter(
        has=page.locator(
            '[data-testid="stMetricLabel"]', has_text=re.compile(f"^{re.escape(label)}$")
        )
    )


def _metric_value(page: Page, label: str) -> Locator:
    value = _metric_cards(page, label).locator('[data-testid="stMetricValue"]')
    expect(value).to_have_count(1, timeout=30_000)  # a re-run's stale card goes first
    return value


def _metric(page: Page, label: str) -> str:
    return str(_metric_value(page, label).inner_text()).strip()


def _axis_labels(page: Page, chart: int = 0) -> list[str]:
    """The text of chart ``chart``'s SVG (axis labels, titles, legend), in order."""
    svg = page.locator('[data-testid="stVegaLiteChart"]').nth(chart).locator("svg text")
    svg.first.wait_for(state="attached", timeout=30_000)  # Vega draws after the run
    return [str(text) for text in svg.evaluate_all("els => els.map(e => e.textContent)")]


def _click_first_row(page: Page, key: str, column: int = 1) -> str:
    """Select the first row of table ``key`` (its row marker); the text of its cell
    ``column`` (1: the first data column), read from the grid's accessible table."""
    grid = page.locator(f".st-key-{key} [data-testid='stDataFrame']")
    grid.scroll_into_view_if_needed()
    cells = grid.locator("[role=row]").nth(1).locator("[role=gridcell]")
    cells.first.wait_for(state="attached", timeout=30_000)
    text = str(cells.nth(column - 1).text_content())
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)  # header 35 px, then row 1's marker
    return text


def _open(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.locator(f".st-key-aigw_rendered_{name}").wait_for(timeout=60_000)
    _wait_rendered(page)


def test_every_page_renders_in_chromium_and_a_filter_lands_in_url_and_numbers(
    dashboard_url: str, dashboard_warehouse: DashboardWarehouse, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(
                viewport={"width": 1400, "height": 1000}, timezone_id="America/Los_Angeles"
            )
            errors: list[str] = []
            hosts: set[str] = set()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
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
            # the filtered re-run may not have begun when the URL changed, and while it runs
            # the stale card shows beside the new one: wait for one card, with the value
            expected = f"${report['cost_usd'][0]:,.2f}"
            spend = _metric_cards(page, "Spend")
            showing = page.locator(
                '[data-testid="stMetricValue"]', has_text=re.compile(f"^{re.escape(expected)}$")
            )
            expect(spend.filter(has=showing)).to_have_count(1, timeout=30_000)
            expect(spend).to_have_count(1, timeout=30_000)
            page.screenshot(path=str(shots / "overview-anthropic.png"), full_page=True)
            assert not errors, errors
            assert hosts == {urlsplit(dashboard_url).netloc}, hosts  # nothing leaves the machine
        finally:
            browser.close()
    assert len(list(shots.glob("*.png"))) == len(PAGES) + 1
    keep = os.environ.get("AIGW_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)


def _drill_through(page: Page, url: str) -> None:
    """From the hourly attribution page: a top consumer, a flagged hour and a policy
    event, each clicked, open the explorer filtered to it."""
    # A click on a top consumer opens its requests in the explorer
    top = _click_first_row(page, "top_table")
    page.wait_for_url(re.compile(rf"/explorer\?.*team={top}"), timeout=30_000)
    page.locator(".st-key-aigw_rendered_explorer").wait_for(timeout=60_000)
    assert "from=2026-11-08&to=2026-11-08" in page.url
    # A flagged hour opens that agent's requests of that day
    _open(page, f"{url}/anomalies", "anomalies")
    _click_first_row(page, "flags")
    page.wait_for_url(re.compile(r"/explorer\?.*agent=summarizer"), timeout=30_000)
    assert "from=2026-11-09&to=2026-11-09" in page.url
    # A policy event opens its request
    _open(page, f"{url}/policy", "policy")
    newest = _click_first_row(page, "recent", column=2)
    page.wait_for_url(re.compile(rf"/explorer\?.*id={newest}"), timeout=30_000)
    page.locator(".st-key-aigw_rendered_explorer").wait_for(timeout=60_000)
    page.get_by_text(f"Log id {newest}").wait_for()


def test_charts_are_utc_in_a_los_angeles_browser_and_filters_are_visible(
    dashboard_url: str,
) -> None:
    """UTC axis labels, labelled tables, drill-through, chips, /overview, ignored link
    values, and no request to a host other than 127.0.0.1."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(
                viewport={"width": 1400, "height": 1000}, timezone_id="America/Los_Angeles"
            )
            errors: list[str] = []
            hosts: set[str] = set()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))

            # /overview is the Overview, not "Page not found"
            _open(page, f"{dashboard_url}/overview", "overview")
            page.get_by_role("heading", name="Overview", level=1).wait_for()
            assert page.get_by_text("Page not found").count() == 0

            # Daily bars: one label per UTC day although the browser is 8 hours behind
            _open(
                page,
                f"{dashboard_url}/attribution?from=2026-11-02&to=2026-11-05&by=team",
                "attribution",
            )
            assert _axis_labels(page)[:5] == ["Nov 02", "Nov 03", "Nov 04", "Nov 05", "Day (UTC)"]
            # One day: hourly bars, ticks on UTC hours, the UTC midnight named by its day
            _open(
                page,
                f"{dashboard_url}/attribution?from=2026-11-08&to=2026-11-08&by=team",
                "attribution",
            )
            labels = _axis_labels(page)
            hours = labels[1 : labels.index("Hour (UTC)")]
            assert labels[0] == "Nov 08", labels  # the UTC midnight tick names its day
            assert len(hours) >= 6 and all(re.fullmatch(r"\d\d:00", hour) for hour in hours)
            assert hours[:3] in (["01:00", "02:00", "03:00"], ["02:00", "04:00", "06:00"])
            # The table's columns as a reader says them, with a share of the total
            grid = page.locator(".st-key-top_table [data-testid='stDataFrame']")
            grid.scroll_into_view_if_needed()
            grid.locator("[role=columnheader]").first.wait_for(state="attached", timeout=30_000)
            headers = grid.locator("[role=columnheader]").all_text_contents()
            assert headers[:4] == ["Team", "Cost", "Share", "Requests"]
            _drill_through(page, dashboard_url)

            # Active filters are chips; a click removes one
            _open(page, f"{dashboard_url}/cache?team=search", "cache")
            chip = page.get_by_role("button", name="team: search ✕")
            chip.wait_for()
            chip.click()
            page.wait_for_url(lambda url: "team=" not in url, timeout=30_000)

            # A link's invalid values are named, not silently $0.00
            _open(page, f"{dashboard_url}/?from=2026-13-45&provider=nosuch", "overview")
            warning = page.locator('[data-testid="stAlert"]').first.inner_text()
            assert "Ignored from the link: from=2026-13-45 (not a YYYY-MM-DD day); " in warning
            assert _metric(page, "Spend") != "$0.00"
            assert not errors, errors
            assert hosts == {urlsplit(dashboard_url).netloc}, hosts  # nothing leaves the machine
        finally:
            browser.close()


def test_a_savings_item_links_to_attribution_filtered_to_its_scope(dashboard_url: str) -> None:
    """In the browser: the first opportunity's link is a URL of this dashboard whose query
    opens Cost attribution with the scope's filters set (their chips shown, none ignored)."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open(page, f"{dashboard_url}/savings", "savings")
            link = page.get_by_role("link", name=re.compile("^Open in cost attribution")).first
            href = str(link.evaluate("element => element.href"))
            assert href.startswith(f"{dashboard_url}/attribution?from=2026-11-01&to="), href
            filters = {
                name: value
                for name, value in parse_qsl(urlsplit(href).query)
                if name not in ("from", "to", "by")
            }
            assert filters, href
            _open(page, href, "attribution")
            for name, value in filters.items():
                chip = page.locator(f".st-key-chip_{name}")
                expect(chip).to_contain_text(f"{name.replace('_', ' ')}: {value}")
            assert page.get_by_text("Ignored from the link").count() == 0
        finally:
            browser.close()
