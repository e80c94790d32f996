"""The database the app shows, opened once per URL, with a clear message when it cannot be."""

from __future__ import annotations

import streamlit as st

from looplab.config import settings_from_env
from looplab.errors import LooplabError
from looplab.monitoring.attention import ensure_default_rules
from looplab.store.engine import get_engine


@st.cache_resource(show_spinner=False)
def _opened(url: str) -> bool:
    # Once per database and server process: migrate, and give a new store its default rules.
    get_engine(url)
    ensure_default_rules(url)
    return True


def database_url() -> str:
    """The configured database URL, opened and migrated; stops the page with a message if it can't be."""
    url = settings_from_env().database_url
    try:
        _opened(url)
    except LooplabError as err:
        st.error(f"**looplab cannot open its database.** {err}")
        st.markdown(
            "Set `LOOPLAB_DATABASE_URL` to a database looplab can open (for example "
            "`sqlite:///looplab.db`) and start the app again: `looplab ui --db sqlite:///looplab.db`."
        )
        st.stop()
    return url
