"""The sidebar's time range and trace filters, shared by Monitoring and Traces and kept in the URL.

The URL is the source of truth when it names a filter (a shared link); otherwise the filter last
used in this session carries over from page to page. Widgets are keyed ``flt_*`` and written into
``st.session_state`` before they render, so a link always wins over stale widget state.
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
    if flt.start is not None:
        st.session_state.flt_from = flt.start.date()
    if flt.end is not None:
        # A custom end is exclusive at midnight: show the last day it includes.
        st.session_state.flt_to = (flt.end - timedelta(microseconds=1)).date()
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
    signature = repr(sorted(url_params.items()))
    if url_params and st.session_state.get("flt_signature") != signature:
        try:
            _load_into_widgets(TraceFilter.from_query_params(url_params))
        except ConfigError as err:
            st.sidebar.warning(f"The link's filter was not understood: {err} Showing the last 7 days instead.")
            _load_into_widgets(TraceFilter.last("7d"))
    elif "flt_range" not in st.session_state:
        _load_into_widgets(TraceFilter.last("7d"))

    sidebar = st.sidebar
    sidebar.selectbox("Time range", list(RANGE_LABELS), format_func=RANGE_LABELS.__getitem__, key="flt_range")
    if st.session_state.flt_range == "custom":
        today = datetime.now(timezone.utc).date()
        st.session_state.setdefault("flt_from", today - timedelta(days=7))
        st.session_state.setdefault("flt_to", today)
        left, right = sidebar.columns(2)
        left.date_input("From", key="flt_from")
        right.date_input("To", key="flt_to")
    window = _from_widgets()
    options = _options(url, window.range_key, _minute(window.start), _minute(window.end))
    options["status"] = ["ok", "error"]
    with sidebar.expander("Filters", expanded=any(st.session_state.get(f"flt_{p}") for p in LIST_PARAMS)):
        for param in LIST_PARAMS:
            chosen: list[str] = st.session_state.get(f"flt_{param}") or []
            offered = list(dict.fromkeys([*options.get(param, ()), *chosen]))
            kwargs: dict[str, Any] = {"accept_new_options": True} if param in _OPEN_LISTS else {}
            st.multiselect(_LIST_LABELS[param], offered, key=f"flt_{param}", placeholder="Any", **kwargs)

    flt = _from_widgets()
    _write_url(flt)
    return flt


def _write_url(flt: TraceFilter) -> None:
    params = flt.to_query_params()
    for key in FILTER_PARAMS:
        if key not in params and key in st.query_params:
            del st.query_params[key]
    for key, value in params.items():
        if st.query_params.get_all(key) != (value if isinstance(value, list) else [value]):
            st.query_params[key] = value
    st.session_state.flt_signature = repr(sorted(_url_filter_params().items()))
