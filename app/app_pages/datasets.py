"""Datasets: coming with issue #4."""

import streamlit as st

st.title("Datasets")
st.info("Versioned collections of test cases, built from labelled traces or imported from JSONL and CSV, will live here.", icon=":material/construction:")
st.caption("Coming with the datasets step of the loop (issue #4). Until then, start from **Monitoring** and **Traces**.")
