"""Dashboard benchmark: how long each page takes to render over a large warehouse.

    python bench/dashboard.py [--requests 10000000] [--out bench/out] [--runs 3] [--no-browser]

1. Builds a warehouse of N synthetic requests in SQL (30 days, 6 models, 4 teams,
   200 users, 5 agents, with aigw gateway fields: ~3% DLP and ~2% guardrail findings,
   ~2% failover attempts, cache key hashes), rolls it up, once (reused later).
2. Renders every page with Streamlit's AppTest: cold (caches cleared: every query
   reads the warehouse) and warm (served from ``st.cache_data``); best of ``--runs``.
3. Unless ``--no-browser``: serves ``aigw dashboard`` and times each page in headless
   Chromium from the click on its sidebar link until the marker the entry script draws
   last is on screen (a first, cold visit: the server's caches are empty for that page).

Prints milliseconds per page. Not a test; the README records the numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Run as `python bench/dashboard.py`, this folder comes first on sys.path; the
# packages live one level up.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest import open_warehouse  # noqa: E402 - after the sys.path fix above
from models import ModelsSettings, refresh_rollups  # noqa: E402

sys.path.append(str(Path(__file__).parent))  # this folder's helpers, for one import
from synthetic_requests import build_requests, fill_sql, fresh  # noqa: E402

sys.path.pop()  # names here (ingest.py, models.py, proxy.py) shadow the packages

PAGES = {
    "overview": "Overview",
    "attribution": "Cost attribution",
    "cache": "Cache",
    "anomalies": "Agents and anomalies",
    "budgets": "Budgets and alerts",
    "policy": "Policy events",
    "explorer": "Request explorer",
    "health": "Data health",
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_FILL = fill_sql(
    "bench",
    extra={
        "step": "CASE WHEN i % 53 = 0 THEN 1 ELSE 0 END",
        "event_id": "'evt-' || $batch || '-' || i",
        "route": "'route-' || (i % 3)",
        "api_key_id": "'key-' || (i % 20)",
        "dlp_action": "CASE WHEN i % 37 = 0 THEN 'redact' END",
        "dlp_categories": "CASE WHEN i % 37 = 0 THEN ['EMAIL'] END",
        "guardrail_action": "CASE WHEN i % 47 = 0 THEN 'monitor' END",
        "guardrail_categories": "CASE WHEN i % 47 = 0 THEN ['jailbreak'] END",
        "cache_key_hash": "'h' || ((i * 2654435761) % 5000000)",
    },
)
BUDGETS = """
timezone = "UTC"
[channels.outbox]
type = "outbox"
folder = "{folder}"
[[budget]]
name = "monthly-total"
amount_usd = 5000.0
period = "monthly"
thresholds = [0.5, 0.8, 1.0]
forecast = true
channels = ["outbox"]
[[budget]]
name = "daily-per-agent"
amount_usd = 50.0
period = "daily"
split_by = "agent"
thresholds = [1.0]
channels = ["outbox"]
"""


def build(path: Path, count: int) -> None:
    """A rolled-up warehouse of ``count`` synthetic requests over 30 days."""
    fresh(path)
    with open_warehouse(path) as warehouse:
        build_requests(warehouse.con, _FILL, count)
        refresh_rollups(warehouse, ModelsSettings(), full=True)


def app_test_times(db: Path, budgets: Path, runs: int) -> dict[str, tuple[float, float]]:
    """(cold, warm) seconds per page under AppTest, best of ``runs``."""
    import streamlit as st  # noqa: PLC0415 - imported once the warehouse exists
    from streamlit.testing.v1 import AppTest  # noqa: PLC0415

    os.environ["AIGW_DB"] = str(db)
    os.environ["AIGW_BUDGETS"] = str(budgets)
    entry = REPO / "app" / "dashboard" / "main.py"
    times: dict[str, tuple[float, float]] = {}
    for page in PAGES:
        cold, warm = [], []
        for _ in range(runs):
            st.cache_data.clear()
            st.cache_resource.clear()
            app = AppTest.from_file(entry, default_timeout=120).switch_page(f"views/{page}.py")
            started = time.perf_counter()
            app.run()
            cold.append(time.perf_counter() - started)
            if app.exception:  # a benchmark of a broken page would time nothing
                raise RuntimeError(f"{page}: {app.exception[0].message}")
            started = time.perf_counter()
            app.run()
            warm.append(time.perf_counter() - started)
        times[page] = (min(cold), min(warm))
    return times


def browser_times(db: Path, budgets: Path) -> dict[str, float]:
    """Seconds from the sidebar click to the end of the page's run, per page, in Chromium."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, "-m", "app", "dashboard", "--db", str(db), "--budgets"]
    server = subprocess.Popen(
        [*command, str(budgets), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    times: dict[str, float] = {}
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):  # noqa: S310 - 127.0.0.1
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=CHROMIUM_FLAGS,
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # Load the app on the health page (a full page load, timed apart), then switch
            # to every other page from the sidebar as a user does.
            started = time.perf_counter()
            page.goto(f"{url}/health")
            page.locator(".st-key-aigw_rendered_health").wait_for(timeout=120_000)
            times["health (full page load)"] = time.perf_counter() - started
            for name, title in PAGES.items():
                if name == "health":
                    continue
                started = time.perf_counter()
                page.get_by_role("link", name=title, exact=True).click()
                page.locator(f".st-key-aigw_rendered_{name}").wait_for(timeout=120_000)
                times[name] = time.perf_counter() - started
            browser.close()
    finally:
        server.terminate()
        server.wait()
    return times


def main() -> None:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    db = args.out / f"dashboard-{args.requests}.duckdb"
    if not db.exists():
        started = time.perf_counter()
        build(db, args.requests)
        seconds = time.perf_counter() - started
        print(f"built and rolled up {args.requests:,} requests in {seconds:.0f} s")
    budgets = args.out / "dashboard-budgets.toml"
    budgets.write_text(BUDGETS.format(folder=args.out / "outbox"))
    for page, (cold, warm) in app_test_times(db, budgets, args.runs).items():
        print(f"page {page}: {cold * 1000:,.0f} ms cold, {warm * 1000:,.0f} ms cached (AppTest)")
    if not args.no_browser:
        for page, seconds in browser_times(db, budgets).items():
            print(f"page {page}: {seconds * 1000:,.0f} ms in Chromium (sidebar click, first visit)")


if __name__ == "__main__":
    main()
