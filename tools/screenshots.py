"""Screenshots of the dashboards for docs/: ``python tools/screenshots.py URL [OUT]``.

Drives a running ``aigw dashboard`` (``make demo``'s, say on http://127.0.0.1:8501)
with Debian's headless Chromium at 1400 px, in a non-UTC browser zone (the charts must
not care), and writes one PNG per page to OUT (default ``docs/screenshots``), as tall as
the page (Streamlit scrolls inside its main block, so a full-page shot would stop at the
window: the window is grown to the content instead). Nothing is downloaded: Playwright
drives the system's ``chromium``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HEIGHT = 1700
# the page's content height in CSS pixels, plus the header's
_CONTENT_HEIGHT = """() => {
    const block = document.querySelector('[data-testid="stMainBlockContainer"]');
    return block ? Math.ceil(block.scrollHeight) + 120 : 0;
}"""
# (file name, path and query, the page's marker name)
SHOTS = (
    ("overview", "", "overview"),
    ("attribution", "attribution?by=team", "attribution"),
    ("cache", "cache", "cache"),
    ("anomalies", "anomalies", "anomalies"),
    ("budgets", "budgets", "budgets"),
    ("savings", "savings", "savings"),
    ("policy", "policy", "policy"),
    ("explorer", "explorer", "explorer"),
    ("health", "health", "health"),
)


def main(url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(
                viewport={"width": 1400, "height": HEIGHT}, timezone_id="America/New_York"
            )
            for name, path, marker in SHOTS:
                page.goto(f"{url.rstrip('/')}/{path}")
                page.locator(f".st-key-aigw_rendered_{marker}").wait_for(timeout=120_000)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                    timeout=120_000,
                )
                page.wait_for_timeout(2500)  # charts and grids draw after the run
                tall = page.evaluate(_CONTENT_HEIGHT)
                page.set_viewport_size({"width": 1400, "height": max(HEIGHT, tall)})
                page.wait_for_timeout(1500)  # charts re-layout to the new size
                page.screenshot(path=str(out / f"{name}.png"))
                page.set_viewport_size({"width": 1400, "height": HEIGHT})
                print(out / f"{name}.png")
        finally:
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/screenshots"))
