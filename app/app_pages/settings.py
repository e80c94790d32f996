"""Settings: where looplab stores data, how tracing is configured, which providers are set up,
how people sign in and (for admins) who they are."""

import streamlit as st

from components.auth import MODES, sign_in_mode, viewer
from components.empty_state import FIRST_TRACE_CODE
from components.store import database_url
from looplab import __version__
from looplab.annotation.users import add_user, list_users, remove_user
from looplab.errors import LooplabError
from looplab.store.models import ROLES
from looplab.config import settings_from_env
from looplab.overview import store_info
from looplab.providers import available_providers, check_connection

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
st.caption("Keys are read from the environment or `.streamlit/secrets.toml`, never stored in the database nor "
           "shown here. Experiments and LLM judges name models as `openai:<model>`, `anthropic:<model>`, "
           "`openai-compatible:<endpoint>/<model>` or `mock:<name>` (offline).")
provider_statuses = available_providers()
st.dataframe(
    [{"provider": p.label, "configured": p.configured, "SDK installed": p.installed,
      "base URL": p.base_url or "default", "settings": p.source} for p in provider_statuses],
    hide_index=True,
)
for status in (p for p in provider_statuses if p.usable):
    name_col, model_col, button_col = st.columns([2, 3, 2], vertical_alignment="bottom")
    name_col.markdown(f"**{status.label}**")
    example = status.example_model
    test_model = model_col.text_input(
        "Model", key=f"settings_provider_model_{status.provider}", value="" if "<" in example else example,
        placeholder=example, label_visibility="collapsed",
    )
    clicked = button_col.button("Test connection", key=f"settings_provider_test_{status.provider}",
                                disabled=not test_model.strip())
    if clicked:
        with st.spinner(f"Calling {test_model}..."):
            try:
                st.success(check_connection(test_model.strip()))
            except LooplabError as err:
                st.error(str(err))

st.subheader("Sign-in")
mode = sign_in_mode(url)
st.markdown(f"**Mode:** {MODES[mode]}.")
if mode == "single-user":
    st.caption("Add users with `looplab users add USERNAME --role admin` (or below) to make people sign in; "
               "add an `[auth]` section to `.streamlit/secrets.toml` for OIDC sign-in (see the README).")

me = viewer()
if me.is_admin:
    st.subheader("Users")
    if "settings_users_flash" in st.session_state:
        st.success(st.session_state.pop("settings_users_flash"))
    show_removed = st.toggle("Show removed users", key="settings_users_removed")
    users = list_users(url, include_disabled=show_removed)
    if users:
        st.dataframe(
            [{"username": u.username, "name": u.display_name or "", "role": u.role,
              "sign-in": "password" if u.has_password else ("OIDC only" if not u.disabled else "–"),
              "removed": u.disabled_at.strftime("%Y-%m-%d") if u.disabled_at else ""} for u in users],
            hide_index=True,
        )
    else:
        st.caption("No users yet.")
    add_col, remove_col = st.columns(2)
    with add_col, st.form("settings_add_user", clear_on_submit=True):
        st.markdown("**Add a user**")
        new_name = st.text_input("Username", key="settings_new_username", placeholder="ada or ada@example.com")
        new_display = st.text_input("Display name", key="settings_new_display")
        new_role = st.selectbox("Role", ROLES, index=ROLES.index("annotator"), key="settings_new_role")
        new_password = st.text_input("Password", type="password", key="settings_new_password",
                                     help="Leave empty for a user who signs in through OIDC only.")
        if mode == "single-user":
            st.caption("The first user switches the app out of single-user mode: make it an admin with a "
                       "password, and sign in with it.")
        add_clicked = st.form_submit_button("Add user", icon=":material/person_add:")
    if add_clicked:
        try:
            if mode == "single-user" and (new_role != "admin" or not new_password):
                raise LooplabError("The first user must be an admin with a password, or nobody could sign in "
                                   "to manage users.")
            added = add_user(url, new_name, new_password or None, new_role, display_name=new_display or None)
        except LooplabError as err:
            add_col.error(str(err))
        else:
            st.session_state["settings_users_flash"] = f"Added {added.username} ({added.role})."
            st.rerun()
    active = [u.username for u in users if not u.disabled]
    with remove_col:
        st.markdown("**Remove a user**")
        st.caption("They can no longer sign in; what they labelled keeps their name.")
        gone = st.selectbox("User", active, index=None, key="settings_remove_username", placeholder="choose")
        if st.button("Remove", key="settings_remove_button", disabled=gone is None, icon=":material/person_remove:"):
            try:
                remove_user(url, gone)
            except LooplabError as err:
                st.error(str(err))
            else:
                if gone == me.username:
                    st.session_state.pop("auth_username", None)
                st.session_state["settings_users_flash"] = f"Removed {gone}."
                st.rerun()
