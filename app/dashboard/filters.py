"""The global filters in the sidebar, mirrored in the URL query string.

A shared link reproduces the view: ``?from=2026-11-12&to=2026-11-20&provider=openai&team=search``.
``from`` and ``to`` are UTC days (``to`` included); each other parameter is a report
dimension (``gateway``, ``provider``, ``model``, ``api_key`` or a named metadata key)
and holds one value. The URL seeds the widgets when a session starts; from then on
the widgets win and every run writes them back to the URL. The default range is the
last ``DEFAULT_DAYS`` days of data.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

import streamlit as st

from app.dashboard.data import Filters

__all__ = ["ALL", "DEFAULT_DAYS", "filter_dimensions", "sidebar_filters"]

ALL: Final = "(all)"
DEFAULT_DAYS: Final = 30
_STATE: Final = "_aigw_filters_seeded"


def filter_dimensions(all_dimensions: tuple[str, ...]) -> list[str]:
    """The dimensions offered as global filters: all but ``endpoint``."""
    return [name for name in all_dimensions if name != "endpoint"]


def _parse_day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _seed(dimensions: list[str], first: date, last: date) -> None:
    """Set the widgets' state from the URL, once per session."""
    if st.session_state.get(_STATE):
        return
    params = st.query_params
    start = _parse_day(params.get("from")) or max(first, last - timedelta(days=DEFAULT_DAYS - 1))
    end = _parse_day(params.get("to")) or last
    st.session_state["f_range"] = (min(start, end), max(start, end))
    for name in dimensions:
        st.session_state[f"f_{name}"] = params.get(name) or ALL
    st.session_state[_STATE] = True


def sidebar_filters(
    dimensions: list[str],
    options: dict[str, list[str]],
    first: date,
    last: date,
    *,
    page_keys: frozenset[str] = frozenset(),
) -> Filters:
    """Draw the filters and return them; write them to the URL, keeping the current
    page's own parameters (``page_keys``) and dropping other pages' ones."""
    _seed(dimensions, first, last)
    sidebar = st.sidebar
    picked = sidebar.date_input("Date range (UTC)", key="f_range", format="YYYY-MM-DD")
    days = list(picked) if isinstance(picked, tuple | list) else [picked]
    start = days[0] if days else first
    end = days[1] if len(days) > 1 else start
    where: list[tuple[str, str]] = []
    metadata: st.delta_generator.DeltaGenerator | None = None
    for name in dimensions:
        values = options.get(name, [])
        current = st.session_state.get(f"f_{name}", ALL)
        choices = [ALL, *values]
        if current not in choices:  # a shared link may name a value this warehouse lacks
            choices.append(current)
        target = sidebar
        if name not in ("gateway", "provider", "model"):
            if metadata is None:  # below the built-in ones
                metadata = sidebar.expander("Metadata and keys", expanded=False)
            target = metadata
        value = target.selectbox(name.replace("_", " "), choices, key=f"f_{name}")
        if value and value != ALL:
            where.append((name, str(value)))
    _write_url(start, end, where, page_keys)
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return Filters(since=since, until=until, where=tuple(where))


def _write_url(
    start: date, end: date, where: list[tuple[str, str]], page_keys: frozenset[str]
) -> None:
    wanted = {"from": start.isoformat(), "to": end.isoformat(), **dict(where)}
    keep = {key: value for key, value in st.query_params.items() if key in page_keys}
    if dict(st.query_params) != {**wanted, **keep}:
        st.query_params.from_dict({**wanted, **keep})
