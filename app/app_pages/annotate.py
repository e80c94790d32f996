"""Annotate: coming with issue #4."""

import streamlit as st

st.title("Annotate")
st.info("Domain experts will work through queues of traces here, score them on your rubric, correct answers, and turn them into dataset items.", icon=":material/construction:")
st.caption("Coming with the annotation queues step of the loop (issue #4). Until then, start from **Monitoring** and **Traces**.")
