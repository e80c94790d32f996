"""Settings: where looplab stores data, how tracing is configured, which providers are set up."""

import streamlit as st

from components.empty_state import FIRST_TRACE_CODE
from components.store import database_url
from looplab import __version__
from looplab.config import configured_providers, settings_from_env
from looplab.overview import store_info

url = database_url()
info = store_info(url)
settings = settings_from_env()

st.title("Settings")
st.caption(f"looplab {__version__}")

st.subheader("Database")
left, mid, right = st.columns(3)
left.metric("Traces", f"{info.traces:,}")
mid.metric("Spans", f"{info.spans:,}")
right.metric("Scores", f"{info.scores:,}")
st.markdown(f"**URL** `{info.url}` · **backend** {info.backend} · **schema** {info.schema_revision}"
            + (f" · **on disk** {info.file_bytes / 1e6:,.1f} MB" if info.file_bytes is not None else ""))
st.caption("Set `LOOPLAB_DATABASE_URL` (or `looplab ui --db URL`) to use another database; "
           "PostgreSQL: `postgresql+psycopg://user:password@host/dbname`.")

st.subheader("Tracing")
st.caption("Your app's tracing reads these `LOOPLAB_*` variables (or `looplab.configure(...)` arguments).")
st.dataframe(
    [
        {"setting": "sample_rate", "variable": "LOOPLAB_SAMPLE_RATE", "value": str(settings.sample_rate)},
        {"setting": "environment", "variable": "LOOPLAB_ENVIRONMENT", "value": settings.environment or "–"},
        {"setting": "release", "variable": "LOOPLAB_RELEASE", "value": settings.release or "–"},
        {"setting": "enabled", "variable": "LOOPLAB_ENABLED", "value": str(settings.enabled)},
        {"setting": "max_queue_size", "variable": "LOOPLAB_MAX_QUEUE_SIZE", "value": f"{settings.max_queue_size:,}"},
        {"setting": "flush_interval", "variable": "LOOPLAB_FLUSH_INTERVAL", "value": f"{settings.flush_interval} s"},
        {"setting": "batch_size", "variable": "LOOPLAB_BATCH_SIZE", "value": f"{settings.batch_size:,}"},
    ],
    hide_index=True,
)
with st.expander("Send a trace from your app"):
    st.code(FIRST_TRACE_CODE, language="python")

st.subheader("Model providers")
st.caption("Keys are read from the environment, never stored in the database nor shown here.")
st.dataframe([{"provider": name, "configured": ok} for name, ok in configured_providers().items()], hide_index=True)
st.caption("Connection tests and OpenAI-compatible endpoints come with experiments (issue #5).")
