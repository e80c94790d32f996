"""Traces: placeholder until the explorer lands."""

import streamlit as st

from components.empty_state import no_traces_yet
from components.filter_bar import sidebar_filter
from components.store import database_url
from looplab.overview import has_traces

url = database_url()
flt = sidebar_filter(url)
st.title("Traces")
if not has_traces(url):
    no_traces_yet(url)
