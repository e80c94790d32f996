"""Session tokens for staying signed in with a local password (looplab.annotation.sessions)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from looplab.annotation.sessions import (
    check_token,
    issue_session,
    load_or_create_secret,
    make_token,
    parse_token,
    secret_file,
    session_hours,
    session_secret,
    viewer_for_session,
)
from looplab.annotation.users import add_user, remove_user, set_password, set_role
from looplab.errors import ConfigError

SECRET = b"s" * 64
NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def _no_session_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLAB_SECRET_KEY", raising=False)
    monkeypatch.delenv("LOOPLAB_SESSION_HOURS", raising=False)


# --- Tokens alone ---------------------------------------------------------------------------------


def test_a_token_names_its_user_until_it_expires() -> None:
    token = make_token("ada@example.com", "scrypt$hash-1", SECRET, int(NOW) + 3600)
    assert parse_token(token)[:2] == ("ada@example.com", int(NOW) + 3600)
    assert check_token(token, "scrypt$hash-1", SECRET, now=NOW) == "ada@example.com"
    assert check_token(token, "scrypt$hash-1", SECRET, now=NOW + 3599) == "ada@example.com"
    assert check_token(token, "scrypt$hash-1", SECRET, now=NOW + 3600) is None  # expired


def test_a_token_is_refused_with_another_secret_or_password_hash() -> None:
    token = make_token("ada", "scrypt$hash-1", SECRET, int(NOW) + 3600)
    assert check_token(token, "scrypt$hash-1", b"t" * 64, now=NOW) is None
    assert check_token(token, "scrypt$hash-2", SECRET, now=NOW) is None  # the password changed
    assert check_token(token, None, SECRET, now=NOW) is None  # no password any more


def test_an_altered_token_is_refused() -> None:
    token = make_token("ann", "scrypt$hash-1", SECRET, int(NOW) + 3600)
    version, user, expiry, mac = token.split(".")
    admin = make_token("ada", "scrypt$hash-1", SECRET, int(NOW) + 3600).split(".")[1]
    altered = [
        f"{version}.{admin}.{expiry}.{mac}",  # someone else's name
        ".".join((version, user, str(int(expiry) + 86_400), mac)),  # a later expiry
        ".".join((version, user, expiry, mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB"))),  # another MAC
        f"v2.{user}.{expiry}.{mac}",
        token + ".x", "", "v1...", "v1.!!!.1.AAAA", "v1.YWRh.-5.AAAA", "x" * 5000,
    ]
    for bad in altered:
        assert check_token(bad, "scrypt$hash-1", SECRET, now=NOW) is None, bad


def test_a_token_longer_than_the_session_length_is_refused() -> None:
    token = make_token("ada", "scrypt$hash-1", SECRET, int(NOW) + 48 * 3600)
    assert check_token(token, "scrypt$hash-1", SECRET, now=NOW) == "ada"
    assert check_token(token, "scrypt$hash-1", SECRET, now=NOW, max_hours=12) is None


# --- Settings -------------------------------------------------------------------------------------


def test_session_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    assert session_hours() == 12
    monkeypatch.setenv("LOOPLAB_SESSION_HOURS", "0.5")
    assert session_hours() == 0.5
    for bad in ("soon", "0", "-3", "100000"):
        monkeypatch.setenv("LOOPLAB_SESSION_HOURS", bad)
        with pytest.raises(ConfigError, match="LOOPLAB_SESSION_HOURS"):
            session_hours()


def test_the_secret_file_sits_next_to_the_sqlite_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert secret_file(f"sqlite:///{tmp_path / 'looplab.db'}") == tmp_path / "looplab.db.secret"
    assert secret_file("sqlite:///looplab.db") == Path("looplab.db.secret")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert secret_file("postgresql+psycopg://u:p@db/looplab") == tmp_path / "config" / "looplab" / "secret"


def test_a_generated_secret_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "folder" / "looplab.db.secret"
    first = load_or_create_secret(path)
    assert len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first  # a restart keeps sessions
    assert sorted(p.name for p in path.parent.iterdir()) == ["looplab.db.secret"]  # no temporary left


def test_processes_starting_at_once_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "looplab.db.secret"
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(load_or_create_secret(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 8


def test_an_empty_secret_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "looplab.db.secret"
    path.write_text("")
    with pytest.raises(ConfigError, match="delete the file"):
        load_or_create_secret(path)


def test_which_secret_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'looplab.db'}"
    generated = session_secret(url)
    assert generated == (tmp_path / "looplab.db.secret").read_text().strip().encode()
    assert session_secret(url, configured="streamlit-cookie-secret") == b"streamlit-cookie-secret"
    monkeypatch.setenv("LOOPLAB_SECRET_KEY", "k" * 40)
    assert session_secret(url, configured="streamlit-cookie-secret") == b"k" * 40
    monkeypatch.setenv("LOOPLAB_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="LOOPLAB_SECRET_KEY is too short"):
        session_secret(url)


# --- Against the users table ----------------------------------------------------------------------


@pytest.fixture
def team(db_url: str) -> str:
    add_user(db_url, "ada", "adaada-pw", "admin", display_name="Ada")
    add_user(db_url, "ann", "annann-pw", "annotator")
    add_user(db_url, "sso@example.com", None, "engineer")  # OIDC only: no password
    return db_url


def test_a_session_signs_its_user_in_with_their_current_role(team: str) -> None:
    issued = issue_session(team, "Ada", SECRET, hours=12, now=NOW)
    assert issued is not None and issued.max_age == 12 * 3600 and issued.expires_at == int(NOW) + 12 * 3600
    who = viewer_for_session(team, issued.token, SECRET, now=NOW + 60)
    assert (who.username, who.display_name, who.role) == ("ada", "Ada", "admin")
    set_role(team, "ada", "engineer")  # the role is looked up, never carried in the token
    assert viewer_for_session(team, issued.token, SECRET, now=NOW + 60).role == "engineer"
    assert viewer_for_session(team, issued.token, SECRET, now=NOW + 12 * 3600) is None  # expired
    assert viewer_for_session(team, issued.token, os.urandom(32), now=NOW + 60) is None


def test_a_password_change_or_removal_ends_the_session(team: str) -> None:
    ann = issue_session(team, "ann", SECRET, hours=1, now=NOW)
    ada = issue_session(team, "ada", SECRET, hours=1, now=NOW)
    set_password(team, "ann", "a-new-password")
    assert viewer_for_session(team, ann.token, SECRET, now=NOW) is None
    assert viewer_for_session(team, issue_session(team, "ann", SECRET, hours=1, now=NOW).token, SECRET,
                              now=NOW).username == "ann"
    remove_user(team, "ann")
    assert viewer_for_session(team, ada.token, SECRET, now=NOW).username == "ada"
    add_user(team, "ann", "annann-pw", "annotator")  # back, with the same password: a new hash
    assert viewer_for_session(team, ann.token, SECRET, now=NOW) is None


def test_no_session_for_unknown_removed_or_password_less_users(team: str) -> None:
    remove_user(team, "ann")
    assert issue_session(team, "ann", SECRET, now=NOW) is None
    assert issue_session(team, "nobody", SECRET, now=NOW) is None
    assert issue_session(team, "sso@example.com", SECRET, now=NOW) is None
    with pytest.raises(ValueError):
        make_token("sso@example.com", "", SECRET, int(NOW) + 60)
    assert viewer_for_session(team, "v1.c3NvQGV4YW1wbGUuY29t.1800000060.AAAA", SECRET, now=NOW) is None
