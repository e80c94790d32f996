"""looplab's app: the loop's steps as pages. Run with `looplab ui` or `streamlit run app/main.py`.

Who is signing in decides which pages exist for them (``components.auth``): annotators get only
Annotate, engineers and admins everything (user administration, on Settings, is for admins only).
``st.navigation`` serves only the pages it is given, so a page left out cannot be opened by URL.
"""

import streamlit as st

from components.auth import current_viewer
from components.store import database_url
from looplab.annotation.users import Viewer

st.set_page_config(page_title="looplab", page_icon=":material/all_inclusive:", layout="wide")


def pages_for(viewer: Viewer) -> dict[str, list[st.Page]]:
    """The navigation for ``viewer``'s role."""
    annotate = dict(title="Annotate", icon=":material/rate_review:", url_path="annotate")
    if viewer.is_annotator:
        return {"Improve": [st.Page("app_pages/annotate.py", **annotate, default=True)]}
    return {
        "Observe": [
            st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
            st.Page("app_pages/monitoring.py", title="Monitoring", icon=":material/monitoring:", url_path="monitoring"),
            st.Page("app_pages/traces.py", title="Traces", icon=":material/account_tree:", url_path="traces"),
        ],
        "Improve": [
            st.Page("app_pages/annotate.py", **annotate),
            st.Page("app_pages/datasets.py", title="Datasets", icon=":material/dataset:", url_path="datasets"),
            st.Page("app_pages/experiments.py", title="Experiments", icon=":material/science:", url_path="experiments"),
            st.Page("app_pages/evaluators.py", title="Evaluators", icon=":material/gavel:", url_path="evaluators"),
            st.Page("app_pages/score_configs.py", title="Score configs", icon=":material/tune:",
                    url_path="score-configs"),
        ],
        "Settings": [
            st.Page("app_pages/settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
        ],
    }


st.navigation(pages_for(current_viewer(database_url()))).run()
