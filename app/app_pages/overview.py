"""Overview: the loop at a glance, one tile a step, each with its live numbers and a link."""

import streamlit as st

from components.empty_state import no_traces_yet
from components.filter_bar import sidebar_filter
from components.store import database_url
from looplab.overview import loop_status

url = database_url()
flt = sidebar_filter(url)
status = loop_status(url, flt)
window = flt.to_query_params()

st.title("looplab")
st.caption("Trace → monitor → label → experiment → evaluate: where each step of the loop stands.")
if status.stored_traces == 0:
    no_traces_yet(url)

tiles = st.columns(5, border=True)
with tiles[0]:
    st.markdown("**1 · Traces**")
    st.metric("Traces in range", f"{status.traces:,}", help="Traces that started in the selected time range.")
    rate = f"{status.errors / status.traces:.1%}" if status.traces else "–"
    st.caption(f"{status.errors:,} errors ({rate}) · cost ${status.cost_usd or 0:,.2f}")
    st.page_link("app_pages/traces.py", label="Explore traces", icon=":material/arrow_forward:", query_params=window)
with tiles[1]:
    st.markdown("**2 · Monitoring**")
    st.metric("Need attention", f"{status.attention:,}", help="Traces surfaced by the Needs attention rules.")
    st.caption("Errors, slow calls, negative feedback, low scores, cost outliers.")
    st.page_link("app_pages/monitoring.py", label="Open Monitoring", icon=":material/arrow_forward:",
                 query_params=window)
with tiles[2]:
    st.markdown("**3 · Annotate**")
    st.metric("Queue backlog", f"{status.queue_backlog:,}", help="Items waiting in open annotation queues.")
    st.caption(f"{status.queues:,} open queues")
    st.page_link("app_pages/annotate.py", label="Open queues", icon=":material/arrow_forward:")
with tiles[3]:
    st.markdown("**3 · Datasets**")
    st.metric("Datasets", f"{status.datasets:,}")
    st.caption(f"{status.dataset_items:,} current items")
    st.page_link("app_pages/datasets.py", label="Open datasets", icon=":material/arrow_forward:")
with tiles[4]:
    st.markdown("**4–5 · Experiments**")
    latest = status.latest_experiment
    st.metric("Latest experiment", latest["name"] if latest else "none yet")
    st.caption(f"{latest['status']} · {latest['created_at']:%Y-%m-%d %H:%M} UTC" if latest
               else "Run a variant over a dataset against a baseline.")
    st.page_link("app_pages/experiments.py", label="Open experiments", icon=":material/arrow_forward:")
