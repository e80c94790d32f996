"""What a page shows when there is nothing to show yet: how to send the first trace."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import make_url

FIRST_TRACE_CODE = '''\
import looplab
from openai import OpenAI

client = looplab.wrap_openai(OpenAI())   # or looplab.wrap_anthropic(Anthropic())
with looplab.trace("support-chat", user_id="u42"):
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is my parcel?"}]
    )
looplab.flush()
'''


def no_traces_yet(database_url: str, *, filtered: bool = False) -> None:
    """Explain why nothing is shown and what to do next (send a trace, or widen the filter)."""
    if filtered:
        st.info("No traces match this time range and these filters. Widen the range or clear a filter in the sidebar.")
        return
    st.info("No traces yet. Send your first one: wrap your client and make a call.")
    st.code(FIRST_TRACE_CODE, language="python")
    st.caption(
        f"Point the app at the same database (`LOOPLAB_DATABASE_URL`, now `{_safe(database_url)}`), "
        "or load the sample history with `looplab seed`."
    )


def _safe(url: str) -> str:
    # database_url() already proved the URL readable.
    return make_url(url).render_as_string(hide_password=True)
