"""Who is using the app: sign-in, sign-out, and the viewer every page can ask for.

Three modes, decided on every run (``sign_in_mode``):

- ``oidc``: ``.streamlit/secrets.toml`` has an ``[auth]`` section. People sign in with Streamlit's
  ``st.login()`` (needs Authlib: ``pip install 'looplab[auth]'``); the users table decides their
  role, and someone signed in who is not an active user there is refused (see
  ``looplab.annotation.users.viewer_for_oidc``).
- ``local``: users exist in the database. A username/password form; on success the username is
  kept in this browser session and looked up again on every run (a removed user or a changed
  role takes effect at the next click).
- ``single-user``: no users at all. Nobody signs in; everyone is ``LOCAL_ADMIN``.

Session state keys (pages read the viewer through ``viewer()``, never these keys directly):

- ``"viewer"`` (``VIEWER_KEY``): the ``Viewer`` of the current run, set by ``current_viewer``
  (called by ``app/main.py`` before any page runs).
- ``"auth_username"`` (``USERNAME_KEY``): who signed in with a local password in this session.
"""

from __future__ import annotations

import importlib.util
from typing import Callable, NoReturn

import streamlit as st

from looplab.annotation.users import LOCAL_ADMIN, Viewer, authenticate, users_configured, viewer_for_oidc, viewer_for_username
from looplab.errors import LooplabError

VIEWER_KEY = "viewer"
USERNAME_KEY = "auth_username"
SIGN_IN_FAILED = "Wrong username or password."
SINGLE_USER_NOTE = "Local single-user mode: everyone is admin. Add users with `looplab users add`."
MODES = {
    "oidc": "OIDC sign-in (the [auth] section of .streamlit/secrets.toml); roles from the users table",
    "local": "local users with passwords (looplab users add/list/remove)",
    "single-user": "local single-user mode: no users, nobody signs in, everyone is admin",
}


def oidc_configured() -> bool:
    """Whether ``.streamlit/secrets.toml`` (or the test's secrets) has an ``[auth]`` section."""
    try:
        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception as err:  # noqa: BLE001 - a broken secrets file must be reported, not crash every page
        st.error(f"**Cannot read .streamlit/secrets.toml:** {err}")
        st.stop()
        raise  # unreachable: st.stop() raises


def sign_in_mode(url: str) -> str:
    """``"oidc"``, ``"local"`` or ``"single-user"`` (see the module's docstring)."""
    if oidc_configured():
        return "oidc"
    return "local" if users_configured(url) else "single-user"


def current_viewer(url: str) -> Viewer:
    """The signed-in viewer, stored under ``VIEWER_KEY``; shows the sign-in screen and stops the run
    when nobody is signed in yet. Adds who is signed in and a Sign out button to the sidebar."""
    mode = sign_in_mode(url)
    if mode == "oidc":
        who = _oidc_viewer(url)
    elif mode == "local":
        who = _local_viewer(url)
    else:
        who = LOCAL_ADMIN
        st.sidebar.caption(SINGLE_USER_NOTE)
    st.session_state[VIEWER_KEY] = who
    if mode != "single-user":
        _sidebar_account(who, mode)
    return who


def viewer() -> Viewer:
    """Who is using the app in this run (set by ``app/main.py``); for pages and components."""
    who = st.session_state.get(VIEWER_KEY)
    if isinstance(who, Viewer):
        return who
    from components.store import database_url  # a page run on its own, outside main.py

    return current_viewer(database_url())


def sign_out() -> None:
    """Forget who signed in (and sign out of the identity provider in OIDC mode)."""
    st.session_state.pop(USERNAME_KEY, None)
    st.session_state.pop(VIEWER_KEY, None)


# --- The modes ------------------------------------------------------------------------------------


def _only(render: Callable[[], None], title: str) -> NoReturn:
    """Show ``render`` as the app's only page (so no other page is served, whatever the URL) and stop."""
    st.navigation([st.Page(render, title=title, url_path="sign-in", default=True)], position="hidden").run()
    st.stop()
    raise AssertionError("unreachable: st.stop() raises")


def _oidc_viewer(url: str) -> Viewer:
    if not st.user.get("is_logged_in", False):
        _only(_oidc_sign_in, "Sign in")
    email, name = st.user.get("email"), st.user.get("name")
    try:
        return viewer_for_oidc(url, str(email) if email else None, str(name) if name else None)
    except LooplabError as err:
        message = str(err)

    def refused() -> None:
        st.title("looplab")
        st.error(f"**You are signed in, but not let in.** {message}")
        if st.button("Sign out", key="auth_oidc_refused_sign_out", icon=":material/logout:"):
            sign_out()
            st.logout()

    _only(refused, "Not let in")


def _oidc_sign_in() -> None:
    st.title("looplab")
    st.write("Sign in with your organisation's account to continue.")
    if importlib.util.find_spec("authlib") is None:
        st.error("**OIDC sign-in is configured but Authlib is not installed.** "
                 "Install it with `pip install 'looplab[auth]'` and restart the app.")
    elif st.button("Sign in", type="primary", key="auth_oidc_sign_in", icon=":material/login:"):
        st.login()


def _local_viewer(url: str) -> Viewer:
    username = st.session_state.get(USERNAME_KEY)
    removed = False
    if username:
        who = viewer_for_username(url, username)
        if who is not None:
            return who
        sign_out()  # removed since they signed in
        removed = True

    def sign_in() -> None:
        if removed:
            st.warning("Your account was removed or changed; sign in again.")
        st.title("Sign in to looplab")
        with st.form("auth_sign_in", clear_on_submit=True):
            name = st.text_input("Username", key="auth_form_username", autocomplete="username")
            password = st.text_input("Password", type="password", key="auth_form_password",
                                     autocomplete="current-password")
            submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
        if submitted:
            who = authenticate(url, name, password) if name and password else None
            if who is not None:
                st.session_state[USERNAME_KEY] = who.username
                st.session_state[VIEWER_KEY] = who
                st.rerun()
            st.error(SIGN_IN_FAILED)
        st.caption("No account? Ask an admin: `looplab users add USERNAME --role annotator`.")

    _only(sign_in, "Sign in")


def _sidebar_account(who: Viewer, mode: str) -> None:
    with st.sidebar:
        name = who.username if who.display_name == who.username else f"{who.display_name} ({who.username})"
        st.caption(f"Signed in as **{name}** · {who.role}")
        if st.button("Sign out", key="auth_sign_out", icon=":material/logout:"):
            sign_out()
            if mode == "oidc":
                st.logout()
            st.rerun()
