"""Entry script of the aigw dashboard: ``streamlit run app/dashboard/main.py``.

``aigw dashboard`` starts it with its settings in the environment (the edge):
``AIGW_DB`` (warehouse, default ``./data/aigw.duckdb``), ``AIGW_CONFIG`` (aigw.toml),
``AIGW_BUDGETS`` (budgets.toml) and ``AIGW_NOW`` (an ISO time: "as of" for
month-to-date, budgets and anomalies; default the end of the newest data). It draws
the global filters, runs the chosen page, and says when data is stale because a
writer holds the warehouse.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import streamlit as st

import app.dashboard.queries  # noqa: F401 - registers the named queries
from app.dashboard.data import (
    DashboardSettings,
    PageContext,
    fetch,
    reset_run,
    set_context,
    settings_for,
    stale_since,
)
from app.dashboard.filters import (
    filter_chips,
    filter_dimensions,
    ignored_notice,
    sidebar_filters,
)
from app.settings import load_settings
from core.errors import AigwError
from core.lake import DEFAULT_DB_PATH
from core.settings import DEFAULT_BUDGETS, budgets_file, config_file

_VIEWS = Path(__file__).parent / "views"
# The tab icon is a file of ours: a named icon makes the browser fetch it from Google's
# font servers, and nothing may leave the machine.
FAVICON = Path(__file__).parent / "favicon.png"
_PAGES = (
    ("overview", "Overview", ":material/dashboard:"),
    ("attribution", "Cost attribution", ":material/pie_chart:"),
    ("cache", "Cache", ":material/cached:"),
    ("anomalies", "Agents and anomalies", ":material/smart_toy:"),
    ("budgets", "Budgets and alerts", ":material/savings:"),
    ("savings", "Savings", ":material/trending_down:"),
    ("policy", "Policy events", ":material/policy:"),
    ("explorer", "Request explorer", ":material/search:"),
    ("health", "Data health", ":material/monitor_heart:"),
)
# URL parameters a page owns besides the global filters (kept in a shared link).
_PAGE_KEYS = {
    "attribution": frozenset({"by"}),
    "anomalies": frozenset({"scope"}),
    "explorer": frozenset({"status", "id"}),
}


def _settings() -> DashboardSettings:
    env = os.environ
    config = config_file(None, env)
    now = env.get("AIGW_NOW")
    moment = datetime.fromisoformat(now) if now else None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    budgets = budgets_file(None, env) or DEFAULT_BUDGETS
    edge = load_settings(config, env)
    return DashboardSettings(
        db_path=edge.warehouse_for(Path(env.get("AIGW_DB") or DEFAULT_DB_PATH)),
        config_path=config,
        budgets_path=budgets,
        now=moment,
        unit_key=edge.outcomes.unit_key,
        whatif=edge.whatif,
    )


def main() -> None:
    st.set_page_config(page_title="aigw", page_icon=str(FAVICON), layout="wide")

    reset_run()
    settings = _settings()
    pages = [
        st.Page(_VIEWS / f"{name}.py", title=title, icon=icon, url_path=name)
        for name, title, icon in _PAGES[1:]
    ]
    name, title, icon = _PAGES[0]
    page = st.navigation(
        [
            # The first page is served at the root; the same view also answers at
            # /overview (a hidden page), so a link naming it is not "Page not found".
            st.Page(_VIEWS / f"{name}.py", title=title, icon=icon, url_path="home", default=True),
            *pages,
            st.Page(
                _VIEWS / f"{name}.py", title=title, icon=icon, url_path=name, visibility="hidden"
            ),
        ]
    )
    banner = st.empty()
    try:
        models = settings_for(settings)
        span = fetch(settings, "bounds")
        if span is None:
            st.info(
                f"The warehouse {settings.warehouse_name} holds no rolled-up data yet: "
                "run `aigw ingest` first."
            )
            return
        first, end = span
        as_of = settings.now or end
        options = fetch(settings, "options")
        last_day = (end - timedelta(microseconds=1)).date()  # `end` is exclusive
        filters = sidebar_filters(
            filter_dimensions(models.all_dimensions),
            options,
            first.date(),
            last_day,
            page_keys=_PAGE_KEYS.get(page.url_path, frozenset()),
        )
        set_context(PageContext(settings, models, filters, first, as_of))
        filter_chips(filters)
        ignored_notice()
        st.sidebar.caption(
            f"Data {first:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC · as of "
            f"{as_of:%Y-%m-%d %H:%M} UTC"
        )
        page.run()
        # An empty marker drawn last: browsers (the end-to-end test, the benchmark) wait
        # for it to know the page's run is complete.
        name = next((n for n, title, _ in _PAGES if title == page.title), "page")
        st.container(key=f"aigw_rendered_{name}", height=1, border=False)
    except AigwError as error:
        st.error(str(error))
    stale = stale_since()
    if stale is not None:
        banner.warning(
            f"The warehouse is busy (another aigw process is writing): some numbers are as "
            f"of {stale:%H:%M:%S} UTC and refresh when it is free.",
            icon=":material/hourglass_top:",
        )


main()
