"""The sidebar's time range and trace filters, shared by Monitoring and Traces and kept in the URL.

A link that names a filter wins; otherwise the filter last used in this session carries over from
page to page. The filter lives in ``st.session_state.flt_params`` (its URL form); the ``flt_*``
widgets are filled from it before each render and write it back from their ``on_change``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import streamlit as st

from looplab.errors import ConfigError
from looplab.monitoring.metrics import filter_options
from looplab.store.filters import LIST_PARAMS, RANGE_LABELS, RANGE_PRESETS, TraceFilter

_WINDOW_PARAMS = ("range", "from", "to")
FILTER_PARAMS = (*_WINDOW_PARAMS, *LIST_PARAMS)
_LIST_LABELS = {
    "name": "Trace name", "model": "Model", "provider": "Provider", "tag": "Tag", "user": "User",
    "session": "Session", "release": "Release", "env": "Environment", "status": "Status",
}
# Lists whose values are too many to offer in full: typed values are accepted too.
_OPEN_LISTS = {"user", "session"}


def _url_filter_params() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in FILTER_PARAMS if st.query_params.get_all(k)}


def _load_into_widgets(flt: TraceFilter) -> None:
    st.session_state.flt_range = flt.range_key if flt.range_key in RANGE_PRESETS else "custom"
    today = datetime.now(timezone.utc).date()
    st.session_state.flt_from = flt.start.date() if flt.start is not None else today - timedelta(days=7)
    # A custom end is exclusive at midnight: show the last day it includes.
    st.session_state.flt_to = (flt.end - timedelta(microseconds=1)).date() if flt.end is not None else today
    for param, name in LIST_PARAMS.items():
        st.session_state[f"flt_{param}"] = list(getattr(flt, name))


def _from_widgets() -> TraceFilter:
    lists = {name: st.session_state.get(f"flt_{param}") or () for param, name in LIST_PARAMS.items()}
    range_key = st.session_state.get("flt_range", "7d")
    if range_key in RANGE_PRESETS:
        return TraceFilter.last(range_key, **lists)
    first: date = st.session_state.get("flt_from") or (datetime.now(timezone.utc) - timedelta(days=7)).date()
    last: date = st.session_state.get("flt_to") or datetime.now(timezone.utc).date()
    if last < first:
        first, last = last, first
    start = datetime.combine(first, time(), tzinfo=timezone.utc)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=timezone.utc)
    return TraceFilter(start=start, end=end, range_key="custom", **{k: tuple(v) for k, v in lists.items()})


@st.cache_data(ttl=60, show_spinner=False)
def _options(url: str, range_key: str, start: datetime | None, end: datetime | None) -> dict[str, list[str]]:
    # Keyed by the window rounded to the minute, so a preset's moving "now" still hits the cache.
    offered = filter_options(url, TraceFilter(start=start, end=end, range_key=range_key))
    return {param: list(offered.get(name, ())) for param, name in LIST_PARAMS.items()}


def _minute(moment: datetime | None) -> datetime | None:
    return moment.replace(second=0, microsecond=0) if moment else None


def sidebar_filter(url: str) -> TraceFilter:
    """Render the time range and filters in the sidebar; return the filter they describe.

    The values offered are those seen in the chosen window (``status`` always offers ok and error).
    """
    url_params = _url_filter_params()
    if url_params and repr(sorted(url_params.items())) != st.session_state.get("flt_signature"):
        try:
            st.session_state.flt_params = TraceFilter.from_query_params(url_params).to_query_params()
        except ConfigError as err:
            st.sidebar.warning(f"The link's filter was not understood: {err} Showing the last 7 days instead.")
            st.session_state.flt_params = {"range": "7d"}
    flt = TraceFilter.from_query_params(st.session_state.get("flt_params") or {})
    # Widget state does not survive a page switch; the filter lives in flt_params and is written
    # into the widgets before each render (their on_change callbacks write it back).
    _load_into_widgets(flt)

    sidebar = st.sidebar
    sidebar.selectbox("Time range", list(RANGE_LABELS), format_func=RANGE_LABELS.__getitem__, key="flt_range",
                      on_change=_widgets_changed)
    if st.session_state.flt_range == "custom":
        left, right = sidebar.columns(2)
        left.date_input("From", key="flt_from", on_change=_widgets_changed)
        right.date_input("To", key="flt_to", on_change=_widgets_changed)
    options = _options(url, flt.range_key, _minute(flt.start), _minute(flt.end))
    options["status"] = ["ok", "error"]
    with sidebar.expander("Filters", expanded=flt.attribute_count() > 0):
        for param in LIST_PARAMS:
            chosen: list[str] = st.session_state.get(f"flt_{param}") or []
            offered = list(dict.fromkeys([*options.get(param, ()), *chosen]))
            kwargs: dict[str, Any] = {"accept_new_options": True} if param in _OPEN_LISTS else {}
            st.multiselect(_LIST_LABELS[param], offered, key=f"flt_{param}", placeholder="Any",
                           on_change=_widgets_changed, **kwargs)
        if flt.attribute_count():
            st.button("Clear filters", on_click=_clear_filters, key="flt_clear")
    _write_url(flt)
    return flt


def _widgets_changed() -> None:
    st.session_state.flt_params = _from_widgets().to_query_params()


def _clear_filters() -> None:
    current = TraceFilter.from_query_params(st.session_state.get("flt_params") or {})
    window = {k: v for k, v in current.to_query_params().items() if k in _WINDOW_PARAMS}
    st.session_state.flt_params = window


def _write_url(flt: TraceFilter) -> None:
    params = flt.to_query_params()
    for key in FILTER_PARAMS:
        if key not in params and key in st.query_params:
            del st.query_params[key]
    for key, value in params.items():
        if st.query_params.get_all(key) != (value if isinstance(value, list) else [value]):
            st.query_params[key] = value
    st.session_state.flt_signature = repr(sorted(_url_filter_params().items()))
