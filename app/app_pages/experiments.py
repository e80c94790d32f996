"""Experiments: coming with issue #5."""

import streamlit as st

st.title("Experiments")
st.info("Run a prompt, model or retrieval variant over a dataset against a baseline, and compare the runs item by item.", icon=":material/construction:")
st.caption("Coming with the experiments step of the loop (issue #5). Until then, start from **Monitoring** and **Traces**.")
