"""How the pages show tables and Altair charts; value formats come from ``app.display``.

Contracts every page relies on:

* Times are UTC on every chart, whatever the browser's zone: axes use UTC scales and
  UTC time units, and their titles say "(UTC)". Hourly grain for ranges of up to
  ``HOURLY_UP_TO``, else daily (``grain_for``); a daily axis has one label per day.
  The last period is drawn lighter and named below the chart when ``as_of`` falls
  inside it (a partial day is not a drop).
* Charts render as SVG (``usermeta.embedOptions.renderer``): their text is text.
* Tables: money with ``$``, counts with separators, ratios as %, labels as a reader
  says them, missing values as ``NONE``; numbers stay numbers, so columns sort.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import altair as alt
import polars as pl
import streamlit as st

from app.display import (
    NONE,
    change,
    column_kind,
    column_label,
    count,
    format_value,
    ms,
    pct,
    usd,
    usd_exact,
)

__all__ = [
    "CATEGORY_COLORS",
    "HOURLY_UP_TO",
    "NONE",
    "Grain",
    "area_chart",
    "bar_chart",
    "change",
    "count",
    "fields",
    "grain_for",
    "line_chart",
    "ms",
    "partial_period",
    "pct",
    "render",
    "series_scale",
    "table",
    "time_axis",
    "time_tooltip",
    "usd",
    "usd_exact",
]

Grain = Literal["hour", "day"]
HOURLY_UP_TO: Final = timedelta(days=3)
_STEP: Final[dict[str, timedelta]] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Hour ticks read 09:00; the midnight tick names its day, so a two-day axis stays dated.
_HOUR_LABEL: Final = (
    "utchours(datum.value) == 0 && utcminutes(datum.value) == 0"
    " ? utcFormat(datum.value, '%b %d') : utcFormat(datum.value, '%H:%M')"
)
_EMPTY: Final = "Nothing in this range."
# A series' colour says what it is, whatever else shares the chart: money spent blue,
# money saved and cache hits green, failures red, plain volume grey.
_SERIES_COLORS: Final[dict[str, str]] = {
    "cost_usd": "#1f77b4",
    "saved_usd": "#2ca02c",
    "requests": "#7f7f7f",
    "cached_requests": "#2ca02c",
    "errors": "#d62728",
    "request_hit_ratio": "#2ca02c",
    "cost_hit_ratio": "#1f77b4",
}
_OTHER_COLORS: Final = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
# Teams, agents, models...: colours that carry no verdict. Vega's default puts red
# (bad) and green (good) on the 4th and 3rd names; these skip both, as far as 10 names
# (then they repeat).
CATEGORY_COLORS: Final = (
    "#4c78a8",  # blue
    "#72b7b2",  # teal
    "#b279a2",  # purple
    "#9d755d",  # brown
    "#eeca3b",  # yellow
    "#f58518",  # orange
    "#79706e",  # grey
    "#d4a6c8",  # mauve
    "#9ecae9",  # light blue
    "#3b4a6b",  # slate
)
# Long identifiers and messages get a fixed width (cut, whole in the cell's tooltip) so
# that a table fits a 1400 px window.
_WIDTHS: Final[dict[str, int]] = {
    "log_id": 220,
    "object_key": 280,
    "source_file": 280,
    "reason": 280,
    "error": 280,
    "last_error": 220,
}


def grain_for(since: datetime, until: datetime) -> Grain:
    """``hour`` for ranges of up to three days (a first day is 24 points, not one), else ``day``."""
    return "hour" if until - since <= HOURLY_UP_TO else "day"


def time_axis(column: str, grain: Grain, *, title: str | None = None) -> alt.X:
    """The x encoding of a time column in UTC: one ordinal band per UTC day, or an
    hourly UTC time scale."""
    if grain == "day":
        return alt.X(
            f"utcyearmonthdate({column}):O",
            title=title or "Day (UTC)",
            axis=alt.Axis(format="%b %d", labelAngle=0, labelOverlap=True),
        )
    return alt.X(
        f"{column}:T",
        title=title or "Hour (UTC)",
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(labelExpr=_HOUR_LABEL, labelAngle=0),
    )


def time_tooltip(column: str, grain: Grain) -> alt.Tooltip:
    unit = "utcyearmonthdate" if grain == "day" else "utcyearmonthdatehoursminutes"
    return alt.Tooltip(f"{unit}({column}):T", title="Day (UTC)" if grain == "day" else "UTC")


def partial_period(
    frame: pl.DataFrame, column: str, grain: Grain, as_of: datetime | None
) -> datetime | None:
    """The start of the last period of ``frame`` when ``as_of`` falls inside it."""
    if as_of is None or frame.is_empty():
        return None
    last = frame[column].max()
    if not isinstance(last, datetime):
        return None
    return last if last < as_of < last + _STEP[grain] else None


def _partial_note(start: datetime | None, grain: Grain, as_of: datetime | None) -> None:
    if start is None or as_of is None:
        return
    label = f"{start:%b %d}" if grain == "day" else f"{start:%b %d %H:00}"
    st.caption(
        f"The last {grain} ({label} UTC, drawn lighter) is partial: data up to "
        f"{as_of:%Y-%m-%d %H:%M} UTC."
    )


def render(chart: alt.Chart | alt.LayerChart) -> None:
    """Draw ``chart`` across the page as SVG."""
    st.altair_chart(
        chart.properties(usermeta={"embedOptions": {"renderer": "svg"}}), width="stretch"
    )


def _with_partial(frame: pl.DataFrame, x: str, start: datetime | None) -> pl.DataFrame:
    flag = pl.col(x) == start if start is not None else pl.lit(value=False)
    return frame.with_columns(flag.alias("partial"))


def _opacity() -> Any:
    return alt.condition("datum.partial", alt.value(0.4), alt.value(1.0))


def bar_chart(
    frame: pl.DataFrame,
    *,
    x: str,
    y: str,
    grain: Grain,
    color: str | None = None,
    title: str = "",
    as_of: datetime | None = None,
    y_format: str = "$,.2f",
) -> None:
    """Bars per period (``x`` a UTC datetime), stacked by ``color``."""
    if frame.is_empty():
        st.caption(_EMPTY)
        return
    partial = partial_period(frame, x, grain, as_of)
    data = _with_partial(frame, x, partial)
    tooltip = [time_tooltip(x, grain), alt.Tooltip(f"{y}:Q", title=title, format=y_format)]
    encoding: dict[str, Any] = {
        "x": time_axis(x, grain),
        "y": alt.Y(f"{y}:Q", title=title, axis=alt.Axis(format=y_format)),
        "opacity": _opacity(),
    }
    if color:
        data = data.with_columns(pl.col(color).fill_null(NONE))
        encoding["color"] = alt.Color(
            f"{color}:N", title=column_label(color), scale=alt.Scale(range=list(CATEGORY_COLORS))
        )
        tooltip.insert(0, alt.Tooltip(f"{color}:N", title=column_label(color)))
    render(alt.Chart(data.to_arrow()).mark_bar().encode(**encoding, tooltip=tooltip))
    _partial_note(partial, grain, as_of)


def area_chart(
    frame: pl.DataFrame, *, x: str, y: str, color: str, grain: Grain, title: str = ""
) -> None:
    if frame.is_empty():
        st.caption(_EMPTY)
        return
    render(
        alt.Chart(frame.with_columns(pl.col(color).fill_null(NONE)).to_arrow())
        .mark_area()
        .encode(
            x=time_axis(x, grain),
            y=alt.Y(f"{y}:Q", title=title, stack=True),
            color=alt.Color(
                f"{color}:N",
                title=column_label(color),
                scale=alt.Scale(range=list(CATEGORY_COLORS)),
            ),
            tooltip=[f"{color}:N", time_tooltip(x, grain), alt.Tooltip(f"{y}:Q", format=",.2f")],
        )
    )


def line_chart(
    frame: pl.DataFrame,
    *,
    x: str,
    y: list[str],
    grain: Grain,
    title: str = "",
    y_format: str = ",.2f",
    as_of: datetime | None = None,
) -> None:
    """One line per column of ``y`` over time, labelled as a reader says the column."""
    if frame.is_empty():
        st.caption(_EMPTY)
        return
    partial = partial_period(frame, x, grain, as_of)
    long = (
        frame.select(x, *y)
        .rename({name: column_label(name) for name in y})
        .unpivot(index=x, variable_name="series", value_name="value")
    )
    data = _with_partial(long, x, partial)
    base = alt.Chart(data.to_arrow()).encode(
        x=time_axis(x, grain),
        y=alt.Y("value:Q", title=title, axis=alt.Axis(format=y_format)),
        color=alt.Color("series:N", title=None, scale=series_scale(y)),
        tooltip=["series:N", time_tooltip(x, grain), alt.Tooltip("value:Q", format=y_format)],
    )
    render(base.mark_line() + base.mark_point(filled=True).encode(opacity=_opacity()))
    _partial_note(partial, grain, as_of)


def series_scale(columns: Sequence[str]) -> alt.Scale:
    """The colours of ``columns``' lines, in their order (``_SERIES_COLORS``)."""
    others = iter(_OTHER_COLORS)
    return alt.Scale(
        domain=[column_label(name) for name in columns],
        range=[_SERIES_COLORS.get(name) or next(others) for name in columns],
    )


# a period column reads as its period, not as the instant it starts at
_TIME_FORMATS: Final = {"month": "YYYY-MM", "day": "YYYY-MM-DD", "week": "YYYY-MM-DD"}


def _column_config(
    frame: pl.DataFrame, exact: Iterable[str]
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The frame ready to show (ratios scaled to percent, lists joined) and its config."""
    config: dict[str, Any] = {}
    exact = set(exact)
    scaled: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        label = column_label(name)
        if dtype.is_temporal():
            config[name] = st.column_config.DatetimeColumn(
                f"{label} (UTC)", format=_TIME_FORMATS.get(name, "YYYY-MM-DD HH:mm"), timezone="UTC"
            )
            continue
        if isinstance(dtype, pl.List):
            scaled.append(pl.col(name).list.join(", "))
            config[name] = st.column_config.TextColumn(label)
            continue
        if dtype == pl.Boolean or not dtype.is_numeric():
            config[name] = st.column_config.Column(label, width=_WIDTHS.get(name))
            continue
        kind = "usd_exact" if name in exact else column_kind(name, integer=dtype.is_integer())
        if kind == "pct":
            scaled.append(pl.col(name) * 100)
        number_format = {
            "usd": "dollar",
            "usd_exact": "$%.6f",
            "pct": "%.1f%%",
            "pct_points": "%.1f%%",
            "count": "localized",
            "ms": "%.0f ms",
            "score": "%.1f",
            "text": "%.2f",
        }[kind]
        config[name] = st.column_config.NumberColumn(label, format=number_format)
    return frame.with_columns(scaled), config


def table(
    frame: pl.DataFrame,
    *,
    key: str | None = None,
    height: int | None = None,
    columns: Sequence[str] | None = None,
    share_of: str | None = None,
    exact: Iterable[str] = (),
    select: bool = False,
) -> int | None:
    """``frame`` as a formatted, sortable table; ``columns`` picks and orders the ones
    shown, ``share_of`` adds a "Share" column after it (its share of the column's total),
    ``exact`` names money columns shown to the millionth. With ``select`` a row can be
    clicked: returns its index in ``frame`` (None when none is selected)."""
    if frame.is_empty():
        st.caption(_EMPTY)
        return None
    shown = frame.select(columns) if columns is not None else frame
    if share_of is not None:
        total = shown[share_of].sum() or 0.0
        share = (pl.col(share_of) / total) if total else pl.lit(None, pl.Float64)
        at = shown.columns.index(share_of) + 1
        shown = shown.insert_column(at, shown.select(share.alias("share")).to_series())
    shown, config = _column_config(shown, exact)
    options: dict[str, Any] = {
        "hide_index": True,
        "width": "stretch",
        "column_config": config,
        "placeholder": NONE,
    }
    if height is not None:
        options["height"] = height
    if not select:
        st.dataframe(shown, key=key, **options)
        return None
    state = st.dataframe(shown, key=key, on_select="rerun", selection_mode="single-row", **options)
    rows = state.selection.rows
    return int(rows[0]) if rows else None


def fields(record: Mapping[str, object], *, skip: Iterable[str] = ()) -> None:
    """One record as labelled fields (a two-column table), empty ones left out."""
    skip = set(skip)
    labels: list[str] = []
    values: list[str] = []
    for name, raw in record.items():
        if name in skip or raw is None or raw in ("", [], {}):
            continue
        value = raw
        if isinstance(raw, list | tuple):
            value = ", ".join(str(item) for item in raw)
        if isinstance(raw, datetime):
            value = f"{raw:%Y-%m-%d %H:%M:%S} UTC"
        integer = isinstance(value, int) and not isinstance(value, bool)
        labels.append(column_label(name))
        values.append(format_value(value, column_kind(name, integer=integer)))
    if not labels:
        st.caption(NONE)
        return
    st.table(pl.DataFrame({"Field": labels, "Value": values}), hide_index=True)
