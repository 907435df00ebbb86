"""The global filters in the sidebar, mirrored in the URL query string and shown as chips.

A shared link reproduces the view: ``?from=2026-11-12&to=2026-11-20&provider=openai&team=search``.
``from`` and ``to`` are UTC days (``to`` included); each other parameter is a report
dimension (``gateway``, ``provider``, ``model``, ``api_key``, ``request_type``,
``model_type`` or a named metadata key) and holds one value. The URL seeds the widgets
when a session starts; from then on the widgets win and every run writes them back to
the URL. A link value that cannot apply (a day that is not a date, a value the warehouse
never saw, an unknown parameter) is ignored and the page says so (``ignored_notice``),
never silently $0.
The default range is the last ``DEFAULT_DAYS`` days of data. Every active filter is
a chip at the top of the page; clicking it removes that filter (``filter_chips``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final, NoReturn
from urllib.parse import urlencode

import streamlit as st

from app.dashboard.data import Filters, context

__all__ = [
    "ALL",
    "DEFAULT_DAYS",
    "filter_chips",
    "filter_dimensions",
    "ignored_notice",
    "open_filtered",
    "shared_link",
    "sidebar_filters",
]

ALL: Final = "(all)"
DEFAULT_DAYS: Final = 30
_STATE: Final = "_aigw_filters_seeded"
_IGNORED: Final = "_aigw_ignored"
_DEFAULT_RANGE: Final = "_aigw_default_range"
_PENDING: Final = "_aigw_pending_filters"
_VIEWS: Final = Path(__file__).parent / "views"


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


def _seed(
    dimensions: list[str],
    options: dict[str, list[str]],
    first: date,
    last: date,
    page_keys: frozenset[str],
) -> None:
    """Set the widgets' state from the URL, once per session; remember what was ignored."""
    default = (max(first, last - timedelta(days=DEFAULT_DAYS - 1)), last)
    st.session_state[_DEFAULT_RANGE] = default
    if st.session_state.get(_STATE):
        return
    params = st.query_params
    ignored: list[str] = []
    days: list[date] = []
    for name, fallback in (("from", default[0]), ("to", default[1])):
        text = params.get(name)
        day = _parse_day(text)
        if text and day is None:
            ignored.append(f"{name}={text} (not a YYYY-MM-DD day)")
        days.append(day or fallback)
    st.session_state["f_range"] = (min(days), max(days))
    for name in dimensions:
        value = params.get(name)
        if value and value not in options.get(name, []):
            ignored.append(f"{name}={value} (no such {name.replace('_', ' ')} in the data)")
            value = None
        st.session_state[f"f_{name}"] = value or ALL
    known = {"from", "to", *dimensions, *page_keys}
    ignored += [
        f"{name}={text} (not a filter)" for name, text in params.items() if name not in known
    ]
    st.session_state[_IGNORED] = ignored
    st.session_state[_STATE] = True


def ignored_notice() -> None:
    """Say, on the run after the link was read, which of its values were ignored."""
    ignored = st.session_state.pop(_IGNORED, None)
    if ignored:
        st.warning("Ignored from the link: " + "; ".join(ignored) + ".", icon=":material/link_off:")


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
    _seed(dimensions, options, first, last, page_keys)
    _apply_pending(dimensions)
    sidebar = st.sidebar
    picked = sidebar.date_input("Date range (UTC)", key="f_range", format="YYYY-MM-DD")
    days = list(picked) if isinstance(picked, tuple | list) else [picked]
    start = days[0] if days else first
    end = days[1] if len(days) > 1 else start
    where: list[tuple[str, str]] = []
    metadata: st.delta_generator.DeltaGenerator | None = None
    # the expander opens by itself when one of its filters is set (a shared link)
    hidden_active = any(
        st.session_state.get(f"f_{name}", ALL) != ALL
        for name in dimensions
        if name not in ("gateway", "provider", "model")
    )
    for name in dimensions:
        choices = [ALL, *options.get(name, [])]
        if st.session_state.get(f"f_{name}", ALL) not in choices:
            st.session_state[f"f_{name}"] = ALL
        target = sidebar
        if name not in ("gateway", "provider", "model"):
            if metadata is None:  # below the built-in ones
                metadata = sidebar.expander("Metadata and keys", expanded=hidden_active)
            target = metadata
        value = target.selectbox(name.replace("_", " "), choices, key=f"f_{name}")
        if value and value != ALL:
            where.append((name, str(value)))
    _write_url(start, end, where, page_keys)
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return Filters(since=since, until=until, where=tuple(where))


def open_filtered(
    page: str,
    where: Mapping[str, str],
    *,
    day: date | None = None,
    params: Mapping[str, str] | None = None,
) -> NoReturn:
    """Drill through: open ``page`` (a view's name) with ``where`` added to the current
    filters, the range narrowed to ``day`` if given, and the page's own ``params``."""
    # The range travels too: a page switch drops the date widget's state.
    current = context().filters
    days = (
        (day, day)
        if day is not None
        else (current.since.date(), (current.until - timedelta(days=1)).date())
    )
    st.session_state[_PENDING] = (dict(where), days)
    st.switch_page(_VIEWS / f"{page}.py", query_params=dict(params or {}))


def shared_link(
    page: str,
    where: Mapping[str, str],
    first: date,
    last: date,
    *,
    params: Mapping[str, str] | None = None,
    dimensions: Sequence[str] | None = None,
) -> str:
    """The relative URL that opens ``page`` (a view's name) with the days ``first`` to
    ``last`` (UTC, included), the filters ``where`` and the page's own ``params``: the
    query string ``sidebar_filters`` reads when a link opens a session. With
    ``dimensions`` (the filter dimensions), a pair of ``where`` that is not one of them is
    left out (the page would ignore it)."""
    kept = {
        name: value for name, value in where.items() if dimensions is None or name in dimensions
    }
    query = {"from": first.isoformat(), "to": last.isoformat(), **kept, **dict(params or {})}
    return f"{page}?{urlencode(query)}"


def _apply_pending(dimensions: list[str]) -> None:
    pending = st.session_state.pop(_PENDING, None)
    if pending is None:
        return
    where, days = pending
    for name, value in where.items():
        if name in dimensions:
            st.session_state[f"f_{name}"] = value
    if days is not None:
        st.session_state["f_range"] = days


def _remove(name: str) -> None:
    if name == "range":
        st.session_state["f_range"] = st.session_state[_DEFAULT_RANGE]
    else:
        st.session_state[f"f_{name}"] = ALL


def filter_chips(filters: Filters) -> None:
    """The active filters as chips above the page; a click removes one (the range chip
    goes back to the default range, and has no remove mark while it is the default)."""
    row = st.container(horizontal=True, gap="small", key="aigw_filter_chips")
    last = filters.until - timedelta(days=1)
    default = st.session_state.get(_DEFAULT_RANGE)
    is_default = default == (filters.since.date(), last.date())
    label = f"{filters.since:%Y-%m-%d} to {last:%Y-%m-%d} (UTC)"
    row.button(
        label if is_default else f"{label} ✕",
        key="chip_range",
        icon=":material/calendar_month:",
        disabled=is_default,
        on_click=_remove,
        args=("range",),
        help=None if is_default else "Back to the default range",
    )
    for name, value in filters.where:
        row.button(
            f"{name.replace('_', ' ')}: {value} ✕",
            key=f"chip_{name}",
            icon=":material/filter_alt:",
            on_click=_remove,
            args=(name,),
            help=f"Remove the {name} filter",
        )


def _write_url(
    start: date, end: date, where: list[tuple[str, str]], page_keys: frozenset[str]
) -> None:
    wanted = {"from": start.isoformat(), "to": end.isoformat(), **dict(where)}
    keep = {key: value for key, value in st.query_params.items() if key in page_keys}
    if dict(st.query_params) != {**wanted, **keep}:
        st.query_params.from_dict({**wanted, **keep})
