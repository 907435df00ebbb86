"""How the pages show tables and Altair charts; value formats come from ``app.display``."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from app.display import NONE, change, count, ms, pct, usd, usd_exact

__all__ = [
    "NONE",
    "area_chart",
    "bar_chart",
    "change",
    "count",
    "line_chart",
    "ms",
    "pct",
    "table",
    "usd",
    "usd_exact",
]


def table(frame: pl.DataFrame, *, key: str | None = None, height: int | None = None) -> None:
    """A frame as an interactive table (the frame as it is: numbers stay numbers)."""
    if frame.is_empty():
        st.caption("Nothing in this range.")
        return
    options: dict[str, Any] = {"hide_index": True, "width": "stretch"}
    if height is not None:
        options["height"] = height
    st.dataframe(frame, key=key, **options)


def _chart(chart: alt.Chart) -> None:
    st.altair_chart(chart, width="stretch")


def _time_axis(column: str) -> alt.X:
    return alt.X(f"{column}:T", title=None, axis=alt.Axis(format="%b %d", labelAngle=0))


def bar_chart(
    frame: pl.DataFrame, *, x: str, y: str, color: str | None = None, title: str = ""
) -> None:
    """Bars over time (``x`` a datetime), stacked by ``color``."""
    if frame.is_empty():
        st.caption("Nothing in this range.")
        return
    daily = bool(
        frame.select((pl.col(x).dt.hour() == 0).all() & (pl.col(x).dt.minute() == 0).all()).item()
    )
    axis = (
        alt.X(f"yearmonthdate({x}):O", title=None, axis=alt.Axis(format="%b %d", labelAngle=0))
        if daily
        else _time_axis(x)
    )
    encoding: dict[str, Any] = {"x": axis, "y": alt.Y(f"{y}:Q", title=title)}
    tooltip = [alt.Tooltip(f"{x}:T"), alt.Tooltip(f"{y}:Q", format=",.4f")]
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=color)
        tooltip.insert(0, alt.Tooltip(f"{color}:N"))
    _chart(alt.Chart(frame.to_arrow()).mark_bar().encode(**encoding, tooltip=tooltip))


def area_chart(frame: pl.DataFrame, *, x: str, y: str, color: str, title: str = "") -> None:
    if frame.is_empty():
        st.caption("Nothing in this range.")
        return
    _chart(
        alt.Chart(frame.to_arrow())
        .mark_area()
        .encode(
            x=_time_axis(x),
            y=alt.Y(f"{y}:Q", title=title, stack=True),
            color=alt.Color(f"{color}:N", title=color),
            tooltip=[f"{color}:N", alt.Tooltip(f"{x}:T"), alt.Tooltip(f"{y}:Q", format=",.4f")],
        )
    )


def line_chart(
    frame: pl.DataFrame,
    *,
    x: str,
    y: list[str],
    title: str = "",
    y_format: str = ",.2f",
) -> None:
    """One line per column of ``y`` over time."""
    if frame.is_empty():
        st.caption("Nothing in this range.")
        return
    long = frame.select(x, *y).unpivot(index=x, variable_name="series", value_name="value")
    _chart(
        alt.Chart(long.to_arrow())
        .mark_line(point=True)
        .encode(
            x=_time_axis(x),
            y=alt.Y("value:Q", title=title, axis=alt.Axis(format=y_format)),
            color=alt.Color("series:N", title=None),
            tooltip=["series:N", alt.Tooltip(f"{x}:T"), alt.Tooltip("value:Q", format=y_format)],
        )
    )
