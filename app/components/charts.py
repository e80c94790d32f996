"""Altair charts over time, built from the rows the monitoring services return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st


def _long(rows: Sequence[Mapping[str, Any]], x: str, series: Mapping[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=[x, *series])
    frame[x] = pd.to_datetime(frame[x], utc=True)
    long = frame.melt(id_vars=[x], value_vars=list(series), var_name="series", value_name="value")
    long["series"] = long["series"].map(series)
    return long


def time_chart(
    rows: Sequence[Mapping[str, Any]],
    series: Mapping[str, str],
    *,
    title: str,
    unit: str = "",
    x: str = "bucket",
    mark: str = "line",
    height: int = 220,
    value_format: str = ",.2f",
) -> None:
    """One chart of ``series`` (column -> legend label) over ``x``; bars stack, lines join points."""
    long = _long(rows, x, series)
    base = alt.Chart(long, title=title, height=height)
    encode = {
        "x": alt.X(f"{x}:T", title=None),
        "y": alt.Y("value:Q", title=unit or None, stack=mark != "line" or None),
        "color": alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom"),
                           sort=list(series.values())),
        "tooltip": [alt.Tooltip(f"{x}:T", title="time (UTC)", format="%Y-%m-%d %H:%M"), "series:N",
                    alt.Tooltip("value:Q", format=value_format)],
    }
    if mark == "bar":
        chart = base.mark_bar().encode(**encode)
    elif mark == "area":
        chart = base.mark_area(opacity=0.6).encode(**encode)
    else:
        chart = base.mark_line(point=alt.OverlayMarkDef(size=12)).encode(**encode)
    st.altair_chart(chart, width="stretch")


def grouped_time_chart(
    rows: Sequence[Mapping[str, Any]], *, x: str, y: str, group: str, title: str, unit: str = "", height: int = 240
) -> None:
    """A line a group (e.g. one per score name and source) of ``y`` over ``x``."""
    frame = pd.DataFrame(list(rows), columns=[x, y, group])
    frame[x] = pd.to_datetime(frame[x], utc=True)
    chart = alt.Chart(frame, title=title, height=height).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X(f"{x}:T", title=None),
        y=alt.Y(f"{y}:Q", title=unit or None),
        color=alt.Color(f"{group}:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip(f"{x}:T", title="time (UTC)", format="%Y-%m-%d %H:%M"), f"{group}:N",
                 alt.Tooltip(f"{y}:Q", format=",.3f")],
    )
    st.altair_chart(chart, width="stretch")
