"""Who is using the app: sign-in, sign-out, and the viewer every page can ask for.

Three modes, decided on every run (``sign_in_mode``):

- ``oidc``: ``.streamlit/secrets.toml`` has an ``[auth]`` section. People sign in with Streamlit's
  ``st.login()`` (needs Authlib: ``pip install 'looplab[auth]'``); the users table decides their
  role, and someone signed in who is not an active user there is refused (see
  ``looplab.annotation.users.viewer_for_oidc``).
- ``local``: users exist in the database. A username/password form; on success the username is
  kept in this browser session and looked up again on every run (a removed user or a changed
  role takes effect at the next click). The browser also gets a cookie (``looplab_session``)
  with a signed token (``looplab.annotation.sessions``), so a reload, a shared link or a link the
  app renders (each a new Streamlit session) keeps them signed in until it expires
  (``LOOPLAB_SESSION_HOURS``, 12 by default), they sign out, or their password changes.
- ``single-user``: no users at all. Nobody signs in; everyone is ``LOCAL_ADMIN``.

Session state keys (pages read the viewer through ``viewer()``, never these keys directly):

- ``"viewer"`` (``VIEWER_KEY``): the ``Viewer`` of the current run, set by ``current_viewer``
  (called by ``app/main.py`` before any page runs).
- ``"auth_username"`` (``USERNAME_KEY``): who signed in with a local password in this session.
- ``"auth_signed_out"`` (``SIGNED_OUT_KEY``): this session signed out, so the session cookie the
  browser sent when it connected (``st.context.cookies`` never changes within a session) is ignored.
- ``"auth_cookie_script"`` (``COOKIE_SCRIPT_KEY``): JavaScript that sets or clears the cookie, shown
  by the next run (a run that ends in ``st.rerun()`` would never deliver it).
- ``"auth_cookie_problem"`` (``COOKIE_PROBLEM_KEY``): why no cookie could be made (a bad secret
  setting, an unwritable secret file), shown by the next run; the sign-in itself still works.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Callable, NoReturn

import streamlit as st

from looplab.annotation.sessions import (
    COOKIE_NAME,
    issue_session,
    session_hours,
    session_secret,
    viewer_for_session,
)
from looplab.annotation.users import (
    LOCAL_ADMIN,
    Viewer,
    authenticate,
    users_configured,
    viewer_for_oidc,
    viewer_for_username,
)
from looplab.errors import LooplabError

VIEWER_KEY = "viewer"
USERNAME_KEY = "auth_username"
SIGNED_OUT_KEY = "auth_signed_out"
COOKIE_SCRIPT_KEY = "auth_cookie_script"
COOKIE_PROBLEM_KEY = "auth_cookie_problem"
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
    _deliver_cookie_script(st.sidebar)
    return who


def viewer() -> Viewer:
    """Who is using the app in this run (set by ``app/main.py``); for pages and components."""
    who = st.session_state.get(VIEWER_KEY)
    if isinstance(who, Viewer):
        return who
    from components.store import database_url  # a page run on its own, outside main.py

    return current_viewer(database_url())


def sign_out() -> None:
    """Forget who signed in, in this session and (local sign-in) in this browser's cookie; in OIDC
    mode the caller also signs out of the identity provider with ``st.logout()``."""
    if st.session_state.pop(USERNAME_KEY, None) is not None or COOKIE_NAME in st.context.cookies:
        st.session_state[COOKIE_SCRIPT_KEY] = _cookie_script("", 0)
    st.session_state[SIGNED_OUT_KEY] = True
    st.session_state.pop(VIEWER_KEY, None)


# --- The session cookie (local sign-in) -----------------------------------------------------------


def _configured_secret() -> str | None:
    """Streamlit's ``server.cookieSecret`` when someone set it (its default is random per process)."""
    from streamlit import config

    return config.get_option("server.cookieSecret") if config.is_manually_set("server.cookieSecret") else None


def _cookie_script(value: str, max_age: int) -> str:
    """JavaScript setting (``max_age`` > 0) or deleting the session cookie on this page's origin."""
    cookie = f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; SameSite=Strict"
    return ("<script>document.cookie = " + json.dumps(cookie)
            + " + (window.location.protocol === 'https:' ? '; Secure' : '');</script>")


def _remember(url: str, username: str) -> None:
    """After a password sign-in: have the next run give this browser a session cookie."""
    st.session_state.pop(SIGNED_OUT_KEY, None)
    try:
        issued = issue_session(url, username, session_secret(url, _configured_secret()), hours=session_hours())
    except (LooplabError, OSError) as err:
        st.session_state[COOKIE_PROBLEM_KEY] = f"This browser will not stay signed in after a reload: {err}"
        return
    if issued is not None:
        st.session_state[COOKIE_SCRIPT_KEY] = _cookie_script(issued.token, issued.max_age)


def _viewer_from_cookie(url: str) -> tuple[Viewer | None, bool]:
    """Who this browser's session cookie signs in, and whether it brought one that is no longer
    valid (expired, altered, or the user was removed or changed their password); such a cookie is
    cleared by the next run."""
    token = st.context.cookies.get(COOKIE_NAME)
    if not token or st.session_state.get(SIGNED_OUT_KEY):
        return None, False
    try:
        who = viewer_for_session(url, token, session_secret(url, _configured_secret()), max_hours=session_hours())
    except (LooplabError, OSError):  # no secret to check with (unreadable file, bad setting): keep the cookie
        return None, False
    if who is None:
        st.session_state[SIGNED_OUT_KEY] = True
        st.session_state[COOKIE_SCRIPT_KEY] = _cookie_script("", 0)
        return None, True
    return who, False


def _deliver_cookie_script(where) -> None:  # type: ignore[no-untyped-def]
    """Show the pending cookie script (if any) in ``where`` and forget it."""
    script = st.session_state.pop(COOKIE_SCRIPT_KEY, None)
    if script:
        where.html(script, unsafe_allow_javascript=True)
    problem = st.session_state.pop(COOKIE_PROBLEM_KEY, None)
    if problem:
        where.warning(problem)


# --- The modes ------------------------------------------------------------------------------------


def _requested_page() -> str:
    """The URL path of the page this run was asked for (``"traces"`` for ``/traces?trace=...``), or
    ``""`` for the default page. From Streamlit's own page resolution: the name in the URL on a
    page load, else the page of the previous run the browser is on (a rerun sends only its hash)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        pages = get_script_run_ctx().pages_manager  # type: ignore[union-attr]
        name = pages.intended_page_name or ""
        if not name and pages.intended_page_script_hash:
            name = (pages.get_pages().get(pages.intended_page_script_hash) or {}).get("url_pathname") or ""
    except Exception:  # noqa: BLE001 - Streamlit internals moved: fall back to the plain sign-in page
        return ""
    name = str(name).strip("/")
    return name if name and "/" not in name and name != "sign-in" else ""


def _only(render: Callable[[], None], title: str) -> NoReturn:
    """Show ``render`` as the app's only page (so no other page is served, whatever the URL) and stop.

    It is also served under the path that was asked for, so a deep link (``/traces?trace=...``)
    keeps its URL while someone signs in (no "Page not found") and, as the page's hash is that of
    the real page, the rerun after signing in opens the page and query the link named."""
    pages = [st.Page(render, title=title, url_path="sign-in", default=True)]
    requested = _requested_page()
    if requested:
        pages.append(st.Page(render, title=title, url_path=requested))
    st.navigation(pages, position="hidden").run()
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
    removed = stale = False
    if username:
        who = viewer_for_username(url, username)
        if who is not None:
            return who
        sign_out()  # removed since they signed in
        removed = True
    else:
        who, stale = _viewer_from_cookie(url)
        if who is not None:  # signed in on this browser before: a reload, a link, a new tab
            st.session_state[USERNAME_KEY] = who.username
            return who

    def sign_in() -> None:
        _deliver_cookie_script(st)
        if removed:
            st.warning("Your account was removed or changed; sign in again.")
        elif stale:
            st.info("Your sign-in on this browser expired or your account changed; sign in again.")
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
                _remember(url, who.username)
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
