"""Traces: search, filter, sort and page through traces; `?trace=<id>` opens one."""

import streamlit as st

from components.empty_state import no_traces_yet
from components.filter_bar import sidebar_filter
from components.auth import viewer
from components.formatting import duration, money, plain
from components.queue_admin import add_filter_to_queue, add_search_to_queue
from components.store import database_url
from components.trace_view import trace_page
from looplab.errors import ConfigError
from looplab.explorer import SORT_KEYS, list_traces
from looplab.overview import has_traces

SORT_LABELS = {"start_time": "Start time", "duration_ms": "Latency", "cost_usd": "Cost", "total_tokens": "Tokens",
               "name": "Name", "status": "Status"}
PAGE_SIZES = (25, 50, 100, 250)

url = database_url()
flt = sidebar_filter(url)

trace_id = st.query_params.get("trace")
if trace_id:
    trace_page(url, trace_id, viewer())
    st.stop()

st.title("Traces")
if not has_traces(url):
    no_traces_yet(url)
    st.stop()

# Search, sort and page live in the URL too, so a list view can be shared like a filter.
st.session_state.setdefault("trc_q", st.query_params.get("q", ""))
st.session_state.setdefault("trc_sort", st.query_params.get("sort", "start_time")
                            if st.query_params.get("sort") in SORT_KEYS else "start_time")
search_col, sort_col, order_col, size_col = st.columns([4, 1.3, 1.3, 1])
search = search_col.text_input("Search inputs and outputs", key="trc_q", placeholder='refund "order 1234"',
                               help='Words match words that start with them; "quoted words" match a phrase.')
sort = sort_col.selectbox("Sort by", SORT_KEYS, format_func=SORT_LABELS.__getitem__, key="trc_sort")
descending = order_col.selectbox("Order", ["descending", "ascending"], key="trc_order") == "descending"
page_size = size_col.selectbox("Per page", PAGE_SIZES, index=1, key="trc_size")
st.session_state.setdefault("trc_page", 1)
view = (search, sort, descending, page_size, repr(flt.to_query_params()))
if st.session_state.get("trc_view") != view:  # a new question starts at its first page
    st.session_state.trc_view = view
    st.session_state.trc_page = 1

try:
    result = list_traces(url, flt, search=search or None, sort=sort, descending=descending,
                         page=st.session_state.trc_page, page_size=page_size)
except ConfigError as err:
    st.error(plain(err))
    st.stop()

for key, value in (("q", search), ("sort", sort if sort != "start_time" else "")):
    if value:
        st.query_params[key] = value
    elif key in st.query_params:
        del st.query_params[key]

if not result.rows:
    if search:
        st.info("No trace in this range matches the search. Try fewer or shorter words, or widen the time range.")
    else:
        no_traces_yet(url, filtered=True)
    st.stop()

total = f"{result.total:,}" if result.total_exact else f"more than {result.total:,}"
st.caption(f"Traces {result.first_index:,}–{result.last_index:,} of {total}"
           + (" · full-text search" if result.search_mode == "fts" else "")
           + " · select a row to open it")
event = st.dataframe(
    [{"open": f"/traces?trace={row.id}", "started": row.start_time, "name": row.name, "status": row.status,
      "latency": duration(row.duration_ms), "cost": money(row.cost_usd),
      "tokens": (row.input_tokens or 0) + (row.output_tokens or 0) or None, "user": row.user_id,
      "input": row.input_preview, "output": row.output_preview,
      "scores": ", ".join(f"{s.name} {s.mean:.2f}" if s.mean is not None else f"{s.name} {s.label or ''}"
                          for s in row.scores),
      "tags": ", ".join(row.tags)} for row in result.rows],
    hide_index=True, on_select="rerun", selection_mode="single-row", key="trc_table",
    column_config={
        "open": st.column_config.LinkColumn("link", display_text="open", width="small",
                                            help="A link to this trace you can share"),
        "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss", timezone="UTC"),
        "input": st.column_config.TextColumn(width="large"),
        "output": st.column_config.TextColumn(width="large"),
    },
)
if event.selection.rows:
    st.query_params["trace"] = result.rows[event.selection.rows[0]].id
    st.session_state.pop("trc_table", None)  # coming back to the list starts with no row selected
    st.rerun()

previous, where, following = st.columns([1, 3, 1])
previous.button("← Previous", disabled=not result.has_previous, key="trc_prev",
                on_click=lambda: st.session_state.update(trc_page=result.page - 1))
where.caption(f"Page {result.page:,} of {result.page_count:,}{'' if result.total_exact else '+'}")
following.button("Next →", disabled=not result.has_next, key="trc_next",
                 on_click=lambda: st.session_state.update(trc_page=result.page + 1))

if not viewer().is_annotator:
    with st.expander("Send to an annotation queue", icon=":material/playlist_add:"):
        if search:
            st.caption("Every trace the search finds in this filter is sent, not only this page's.")
            add_search_to_queue(url, flt, search, total, "trc_queue_search")
        else:
            add_filter_to_queue(url, flt, result.total, "trc_queue_all")
