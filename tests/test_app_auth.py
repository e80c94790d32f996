"""Sign-in, roles and the Score configs page, driven through Streamlit's AppTest on real databases."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from looplab.annotation.score_configs import (
    create_score_config,
    get_score_config,
    list_score_configs,
)
from looplab.annotation.sessions import make_token
from looplab.annotation.users import (
    add_user,
    get_user,
    list_users,
    remove_user,
    set_password,
    set_role,
)
from looplab.store.engine import read_session
from looplab.store.ingest import insert_traces
from looplab.store.models import Score

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
EVERY_PAGE = ["overview", "monitoring", "traces", "annotate", "datasets", "experiments", "evaluators",
              "score_configs", "settings"]
OIDC_SECRETS = {"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32,
                         "client_id": "looplab", "client_secret": "s", "server_metadata_url":
                         "http://127.0.0.1:9/.well-known/openid-configuration"}}


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    # The session secret of a PostgreSQL database is generated under $XDG_CONFIG_HOME: not the home folder.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("LOOPLAB_SECRET_KEY", raising=False)
    monkeypatch.delenv("LOOPLAB_SESSION_HOURS", raising=False)
    yield db_url


@pytest.fixture
def team(app_db: str) -> str:
    """Three people, one of each role (passwords: the username twice)."""
    add_user(app_db, "ada", "adaada-pw", "admin", display_name="Ada")
    add_user(app_db, "eng", "engeng-pw", "engineer")
    add_user(app_db, "ann", "annann-pw", "annotator", display_name="Ann")
    return app_db


def start(**setup: dict) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=30)
    for name, value in setup.items():
        setattr(at, name, value)
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader")
             for e in at.get(kind) if isinstance(getattr(e, "value", None), str)]
    return "\n".join(parts)


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="auth_form_username").input(username)
    at.text_input(key="auth_form_password").input(password)
    return at.button[0].click().run()


def can_open(at: AppTest, page: str) -> bool:
    """Whether the navigation serves ``page``; when it does, opens it and checks it ran cleanly."""
    try:
        at.switch_page(f"app_pages/{page}.py").run()
    except ValueError:  # not a page of this viewer's navigation
        return False
    assert not at.exception, at.exception
    return True


# --- Modes ----------------------------------------------------------------------------------------


def test_without_users_everyone_is_the_local_admin(app_db: str) -> None:
    at = start()
    assert not at.exception
    assert any("Local single-user mode: everyone is admin" in c.value for c in at.sidebar.caption)
    assert at.session_state["viewer"].username == "local"
    assert [p for p in EVERY_PAGE if can_open(at, p)] == EVERY_PAGE
    at.switch_page("app_pages/settings.py").run()
    assert "local single-user mode" in texts(at)
    assert any(s.value == "Users" for s in at.subheader)


def test_with_users_the_app_asks_to_sign_in(team: str) -> None:
    at = start()
    assert not at.exception
    assert at.title[0].value == "Sign in to looplab"
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert "Monitoring" not in texts(at) and "viewer" not in at.session_state
    for page in ("settings", "traces"):
        assert not can_open(at, page)


@pytest.mark.parametrize(("username", "password"), [("ann", "wrong-password"), ("nobody", "annann-pw"), ("", "")])
def test_a_failed_sign_in_says_so_without_saying_which(team: str, username: str, password: str) -> None:
    at = sign_in(start(), username, password)
    assert not at.exception
    assert [e.value for e in at.error] == ["Wrong username or password."]
    assert at.title[0].value == "Sign in to looplab"
    assert "auth_username" not in at.session_state


def test_an_annotator_gets_only_annotate(team: str) -> None:
    at = sign_in(start(), "ann", "annann-pw")
    assert not at.exception
    assert at.title[0].value == "Annotate"
    assert at.session_state["viewer"].role == "annotator"
    assert any("Signed in as **Ann (ann)** · annotator" in c.value for c in at.sidebar.caption)
    assert [p for p in EVERY_PAGE if can_open(at, p)] == ["annotate"]
    assert not at.exception


def test_an_engineer_gets_everything_but_user_administration(team: str) -> None:
    at = sign_in(start(), "eng", "engeng-pw")
    assert [p for p in EVERY_PAGE if can_open(at, p)] == EVERY_PAGE
    at.switch_page("app_pages/settings.py").run()
    assert "local users with passwords" in texts(at)
    assert not any(s.value == "Users" for s in at.subheader)
    assert "ada" not in [str(v) for d in at.dataframe for v in d.value.to_numpy().ravel()]


def test_an_admin_manages_users(team: str) -> None:
    at = sign_in(start(), "ada", "adaada-pw")
    at.switch_page("app_pages/settings.py").run()
    assert any(s.value == "Users" for s in at.subheader)
    users = next(d.value for d in at.dataframe if "username" in d.value.columns)
    assert list(users["username"]) == ["ada", "ann", "eng"]

    at.text_input(key="settings_new_username").input("Zoe")
    at.selectbox(key="settings_new_role").set_value("engineer")
    at.text_input(key="settings_new_password").input("short")
    at.button(key="FormSubmitter:settings_add_user-Add user").click().run()
    assert any("too short" in e.value for e in at.error)
    assert [u.username for u in list_users(team)] == ["ada", "ann", "eng"]

    at.text_input(key="settings_new_username").input("Zoe")
    at.selectbox(key="settings_new_role").set_value("engineer")
    at.text_input(key="settings_new_password").input("zoe-password")
    at.button(key="FormSubmitter:settings_add_user-Add user").click().run()
    assert not at.exception
    assert "Added zoe (engineer)." in texts(at)
    assert get_user(team, "zoe").role == "engineer"

    at.selectbox(key="settings_remove_username").set_value("eng").run()
    at.button(key="settings_remove_button").click().run()
    assert "Removed eng." in texts(at)
    assert get_user(team, "eng").disabled


def test_sign_out_and_removal(team: str) -> None:
    at = sign_in(start(), "eng", "engeng-pw")
    at.sidebar.button(key="auth_sign_out").click().run()
    assert at.title[0].value == "Sign in to looplab"
    at = sign_in(at, "eng", "engeng-pw")
    assert at.title[0].value != "Sign in to looplab"
    remove_user(team, "eng")  # takes effect at their next click
    at.run()
    assert at.title[0].value == "Sign in to looplab"
    assert any("removed" in w.value for w in at.warning)


# --- Staying signed in: the session cookie -------------------------------------------------------
# AppTest cannot send cookies (st.context.cookies is empty there), so these tests stand in for the
# browser: they read the cookie script the app shows and hand its token to a new session through a
# patched st.context.cookies. tests/test_browser_auth.py checks that a real browser keeps the cookie.


def browser_cookies(monkeypatch: pytest.MonkeyPatch, cookies: dict[str, str]) -> None:
    """What the browser sends when a new session connects (a reload, a link, a new tab)."""
    from streamlit.runtime.context import ContextProxy, StreamlitCookies

    monkeypatch.setattr(ContextProxy, "cookies", property(lambda self: StreamlitCookies(dict(cookies))))


def cookie_scripts(at: AppTest) -> list[str]:
    return [e.proto.body for e in at.get("html") if "document.cookie" in e.proto.body]


def session_token(at: AppTest) -> str:
    (script,) = cookie_scripts(at)
    match = re.search(r"looplab_session=([^;]+); Path=/; Max-Age=(\d+); SameSite=Strict", script)
    assert match, script
    return match.group(1)


def test_signing_in_keeps_a_new_session_signed_in(team: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = sign_in(start(), "ann", "annann-pw")
    assert at.title[0].value == "Annotate"
    (script,) = cookie_scripts(at)
    assert "Max-Age=43200; SameSite=Strict" in script and "'; Secure'" in script
    token = session_token(at)
    assert cookie_scripts(at.run()) == []  # given once

    browser_cookies(monkeypatch, {"looplab_session": token, "_streamlit_xsrf": "x"})
    again = start()  # a reload: a new session, with the cookie
    assert not again.exception
    assert again.title[0].value == "Annotate"
    assert again.session_state["viewer"].username == "ann"
    assert any("Signed in as **Ann (ann)** · annotator" in c.value for c in again.sidebar.caption)
    assert cookie_scripts(again) == []

    set_role(team, "ann", "engineer")  # the role comes from the users table, not the cookie
    assert [p for p in EVERY_PAGE if can_open(start(), p)] == EVERY_PAGE


def test_signing_out_clears_the_cookie(team: str, monkeypatch: pytest.MonkeyPatch) -> None:
    token = session_token(sign_in(start(), "eng", "engeng-pw"))
    browser_cookies(monkeypatch, {"looplab_session": token})
    at = start()
    assert at.session_state["viewer"].username == "eng"
    at.sidebar.button(key="auth_sign_out").click().run()
    assert at.title[0].value == "Sign in to looplab"
    (script,) = cookie_scripts(at)
    assert "looplab_session=; Path=/; Max-Age=0" in script
    # This session still holds the cookie it connected with: it must not sign them back in.
    at.run()
    assert at.title[0].value == "Sign in to looplab" and "viewer" not in at.session_state
    at = sign_in(at, "eng", "engeng-pw")  # signing in again in the same session gives a new cookie
    assert at.session_state["viewer"].username == "eng" and session_token(at)


@pytest.mark.parametrize("change", ["tampered", "password", "removed", "expired", "other secret"])
def test_a_cookie_no_longer_valid_asks_to_sign_in(team: str, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    token = session_token(sign_in(start(), "ann", "annann-pw"))
    if change == "tampered":
        admin = make_token("ada", "anything", b"guess", int(time.time()) + 3600).split(".")[1]
        token = ".".join([token.split(".")[0], admin, *token.split(".")[2:]])
    elif change == "password":
        set_password(team, "ann", "a-new-password")
    elif change == "removed":
        remove_user(team, "ann")
    elif change == "expired":
        later = time.time() + 12 * 3600 + 1
        monkeypatch.setattr("looplab.annotation.sessions.time", SimpleNamespace(time=lambda: later))
    else:
        monkeypatch.setenv("LOOPLAB_SECRET_KEY", "another-secret-" * 3)
    browser_cookies(monkeypatch, {"looplab_session": token})
    at = start()
    assert not at.exception
    assert at.title[0].value == "Sign in to looplab" and "viewer" not in at.session_state
    assert "Your sign-in on this browser expired or your account changed" in texts(at)
    (script,) = cookie_scripts(at)
    assert "Max-Age=0" in script
    assert not can_open(at, "annotate")


def test_session_length_and_secret_settings(team: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLAB_SESSION_HOURS", "1.5")
    at = sign_in(start(), "ada", "adaada-pw")
    assert "Max-Age=5400;" in cookie_scripts(at)[0]
    monkeypatch.setenv("LOOPLAB_SECRET_KEY", "too-short")
    at = sign_in(start(), "ada", "adaada-pw")  # signed in all the same, only not remembered
    assert at.session_state["viewer"].username == "ada" and cookie_scripts(at) == []
    assert any("will not stay signed in after a reload" in w.value and "LOOPLAB_SECRET_KEY" in w.value
               for w in at.sidebar.warning)


def test_a_deep_link_survives_the_sign_in_screen(team: str) -> None:
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.query_params["dataset"] = "golden"
    at.run()
    assert at.title[0].value == "Sign in to looplab"
    at = sign_in(at, "eng", "engeng-pw")
    assert not at.exception
    assert at.query_params["dataset"] == "golden"  # the page is kept too: tests/test_browser_auth.py


# --- OIDC -----------------------------------------------------------------------------------------


def test_oidc_users_get_their_role(team: str) -> None:
    add_user(team, "grace@example.com", None, "annotator")
    at = start(secrets=OIDC_SECRETS, user={"is_logged_in": True, "email": "Grace@example.com", "name": "Grace H."})
    assert not at.exception
    assert at.session_state["viewer"].username == "grace@example.com"
    assert [p for p in EVERY_PAGE if can_open(at, p)] == ["annotate"]


def test_oidc_refuses_people_who_are_not_users(team: str) -> None:
    at = start(secrets=OIDC_SECRETS, user={"is_logged_in": True, "email": "eve@example.com"})
    assert not at.exception
    assert "eve@example.com is not a looplab user" in at.error[0].value
    assert not can_open(at, "traces")


def test_oidc_asks_to_sign_in(team: str) -> None:
    at = start(secrets=OIDC_SECRETS, user={"is_logged_in": False})
    assert not at.exception
    assert "Sign in with your organisation's account" in texts(at)
    # No Authlib in this environment: the app says how to install it instead of failing.
    if not any(b.label == "Sign in" for b in at.button):
        assert "looplab[auth]" in at.error[0].value
    assert not can_open(at, "settings")


# --- Score configs page ---------------------------------------------------------------------------


def submit(at: AppTest, form: str, label: str) -> AppTest:
    return at.button(key=f"FormSubmitter:{form}-{label}").click().run()


def test_score_configs_page_creates_edits_and_archives(team: str) -> None:
    at = sign_in(start(), "eng", "engeng-pw")
    at.switch_page("app_pages/score_configs.py").run()
    assert not at.exception
    assert "No score configs yet" in texts(at)

    # A numeric config with a bad range: a clear message, nothing written.
    at.text_input(key="sc_new_name").input("helpfulness")
    at.number_input(key="sc_new_min").set_value(5)
    at.number_input(key="sc_new_max").set_value(1)
    submit(at, "sc_new_form", "Create")
    assert not at.exception
    assert any("minimum (5) must be less than the maximum (1)" in e.value for e in at.error)
    assert list_score_configs(team, include_archived=True) == []

    at.text_input(key="sc_new_name").input("helpfulness")
    at.number_input(key="sc_new_min").set_value(1)
    at.number_input(key="sc_new_max").set_value(5)
    at.number_input(key="sc_new_step").set_value(1)
    at.text_area(key="sc_new_rubric").input("5: resolves it; 1: harmful.")
    submit(at, "sc_new_form", "Create")
    assert "Created helpfulness." in texts(at)
    config = get_score_config(team, "helpfulness")
    assert (config.min_value, config.max_value, config.step, config.description) == (
        1, 5, 1, "5: resolves it; 1: harmful.")

    # A categorical config through the options editor; one option only is refused.
    at.segmented_control(key="sc_new_type").set_value("categorical").run()
    at.text_input(key="sc_new_name").input("tone")
    at.session_state["sc_new_options"] = {
        "edited_rows": {0: {"label": "friendly"}}, "added_rows": [], "deleted_rows": [1]}
    submit(at, "sc_new_form", "Create")
    assert any("at least two options; it has 1" in e.value for e in at.error)
    at.text_input(key="sc_new_name").input("tone")
    at.session_state["sc_new_options"] = {
        "edited_rows": {0: {"label": "friendly"}, 1: {"label": "curt"}},
        "added_rows": [{"label": "neutral"}], "deleted_rows": []}
    submit(at, "sc_new_form", "Create")
    assert "Created tone." in texts(at), texts(at)
    assert get_score_config(team, "tone").labels == ["friendly", "curt", "neutral"]

    # Edit: widen the range; a bad step is refused.
    at.selectbox(key="sc_edit_pick").set_value(config.id).run()
    form = f"sc_edit_{config.id}"
    at.number_input(key=f"{form}_step").set_value(-1)
    submit(at, f"{form}_form", "Save changes")
    assert any("step must be greater than 0" in e.value for e in at.error)
    at.number_input(key=f"{form}_max").set_value(10)
    at.number_input(key=f"{form}_step").set_value(1)
    submit(at, f"{form}_form", "Save changes")
    assert "Saved helpfulness." in texts(at)
    assert get_score_config(team, "helpfulness").max_value == 10

    # Archive, then it is only listed with "Show archived"; unarchive.
    at.selectbox(key="sc_edit_pick").set_value(config.id).run()
    at.button(key=f"sc_archive_{config.id}").click().run()
    assert "Archived helpfulness." in texts(at)
    assert get_score_config(team, "helpfulness").archived
    listed = next(d.value for d in at.dataframe if "name" in d.value.columns)
    assert list(listed["name"]) == ["tone"]
    at.toggle(key="sc_show_archived").set_value(True).run()
    listed = next(d.value for d in at.dataframe if "name" in d.value.columns)
    assert list(listed["name"]) == ["helpfulness", "tone"]
    at.selectbox(key="sc_edit_pick").set_value(config.id).run()
    at.button(key=f"sc_unarchive_{config.id}").click().run()
    assert not get_score_config(team, "helpfulness").archived
    assert not at.exception


# --- Score inputs and the manual score form -------------------------------------------------------


def score_form_app() -> None:
    import os

    import streamlit as st

    from app.components.score_input import manual_score_form, score_inputs
    from looplab.annotation.score_configs import list_score_configs
    from looplab.annotation.users import Viewer

    url = os.environ["LOOPLAB_DATABASE_URL"]
    st.session_state["entered"] = score_inputs(list_score_configs(url), "t", values={"tone": "curt"})
    st.session_state["saved"] = manual_score_form(url, "a" * 32, Viewer("ada", "Ada", "admin"))


def test_score_inputs_and_the_manual_score_form(app_db: str) -> None:
    now = datetime.now(timezone.utc)
    insert_traces(app_db, [{"trace_id": "a" * 32, "name": "chat", "start_time": now.isoformat(),
                            "end_time": (now + timedelta(seconds=1)).isoformat(), "spans": []}])
    create_score_config(app_db, "stars", "numeric", min_value=1, max_value=5, step=1, description="**5**: perfect")
    create_score_config(app_db, "helpfulness", "numeric", min_value=0, max_value=1, step=0.01)
    create_score_config(app_db, "tone", "categorical", categories=["friendly", "curt"])
    create_score_config(app_db, "thumbs", "boolean")
    create_score_config(app_db, "notes", "text")
    at = AppTest.from_function(score_form_app, default_timeout=30).run()
    assert not at.exception, at.exception
    assert at.session_state["entered"] == {"helpfulness": None, "notes": None, "stars": None, "thumbs": None,
                                           "tone": "curt"}
    assert any(e.label == "Rubric: stars" for e in at.expander)
    at.pills(key="t_stars").set_value(4.0)
    at.number_input(key="t_helpfulness").set_value(0.25)
    at.segmented_control(key="t_thumbs").set_value(False)
    at.text_area(key="t_notes").input("made up a date")
    at.run()
    assert at.session_state["entered"] == {"helpfulness": 0.25, "notes": "made up a date", "stars": 4.0,
                                           "thumbs": False, "tone": "curt"}

    # The manual form: pick a config, enter a value, save; the score records who made it.
    prefix = "manual_score_" + "a" * 32
    at.selectbox(key=f"{prefix}_config").set_value("tone").run()
    at.pills(key=f"{prefix}_tone_value").set_value("friendly")
    at.text_input(key=f"{prefix}_comment").input("warm")
    at.button(key=f"FormSubmitter:{prefix}_form-Save score").click().run()
    assert not at.exception
    assert any("Saved tone for this trace, by Ada." in s.value for s in at.success)
    # An empty value is refused with a message.
    at.button(key=f"FormSubmitter:{prefix}_form-Save score").click().run()
    assert any("tone: no value given." in e.value for e in at.error)
    with read_session(app_db) as session:
        rows = [(s.name, s.label, s.comment, s.author, s.source) for s in session.scalars(select(Score))]
    assert rows == [("tone", "friendly", "warm", "ada", "human")]
