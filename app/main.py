"""looplab's app: the loop's steps as pages. Run with `looplab ui` or `streamlit run app/main.py`."""

import streamlit as st

st.set_page_config(page_title="looplab", page_icon=":material/all_inclusive:", layout="wide")

PAGES = {
    "Observe": [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("app_pages/monitoring.py", title="Monitoring", icon=":material/monitoring:", url_path="monitoring"),
        st.Page("app_pages/traces.py", title="Traces", icon=":material/account_tree:", url_path="traces"),
    ],
    "Improve": [
        st.Page("app_pages/annotate.py", title="Annotate", icon=":material/rate_review:", url_path="annotate"),
        st.Page("app_pages/datasets.py", title="Datasets", icon=":material/dataset:", url_path="datasets"),
        st.Page("app_pages/experiments.py", title="Experiments", icon=":material/science:", url_path="experiments"),
        st.Page("app_pages/evaluators.py", title="Evaluators", icon=":material/gavel:", url_path="evaluators"),
    ],
    "Settings": [
        st.Page("app_pages/settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
    ],
}

st.navigation(PAGES).run()
