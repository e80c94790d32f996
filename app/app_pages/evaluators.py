"""Evaluators: coming with issue #5."""

import streamlit as st

st.title("Evaluators")
st.info("Code checks and LLM judges that score experiments and production traces, checked against human labels.", icon=":material/construction:")
st.caption("Coming with the evaluators step of the loop (issue #5). Until then, start from **Monitoring** and **Traces**.")
