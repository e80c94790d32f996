"""Users and roles: password hashing, sign-in, OIDC users, and ``looplab users ...``."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from looplab.annotation.users import (
    LOCAL_ADMIN,
    Viewer,
    add_user,
    authenticate,
    get_user,
    hash_password,
    list_users,
    remove_user,
    set_password,
    set_role,
    users_configured,
    verify_password,
    viewer_for_oidc,
    viewer_for_username,
)
from looplab.cli import app
from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session
from looplab.store.models import User


def stored_hash(url: str, username: str) -> str | None:
    with read_session(url) as session:
        return session.scalar(select(User.password_hash).where(User.username == username))


# --- Hashing --------------------------------------------------------------------------------------


def test_a_password_hash_is_salted_versioned_scrypt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # a new salt each time
    scheme, version, log2_n, r, p, salt, key = first.split("$")
    assert (scheme, version) == ("scrypt", "1")
    assert int(log2_n) >= 14 and int(r) >= 8 and int(p) >= 1
    assert "correct horse" not in first
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsE", first)
    assert not verify_password("", first)


@pytest.mark.parametrize("stored", [None, "", "plain", "bcrypt$1$x", "scrypt$9$15$8$1$AAAA$AAAA",
                                    "scrypt$1$99$8$1$AAAA$AAAA", "scrypt$1$x$8$1$AAAA$AAAA"])
def test_an_unknown_or_broken_hash_never_matches(stored: str | None) -> None:
    assert not verify_password("anything", stored)


# --- Users ----------------------------------------------------------------------------------------


def test_users_are_added_listed_and_signed_in(db_url: str) -> None:
    assert not users_configured(db_url)
    added = add_user(db_url, " Ada@Example.com ", "s3cret-enough", "admin", display_name="Ada Lovelace")
    add_user(db_url, "bob", "bobs-password", "annotator")
    assert users_configured(db_url)
    assert added.username == "ada@example.com" and added.has_password
    assert [(u.username, u.role) for u in list_users(db_url)] == [("ada@example.com", "admin"), ("bob", "annotator")]

    assert authenticate(db_url, "ADA@example.com", "s3cret-enough") == Viewer("ada@example.com", "Ada Lovelace", "admin")
    assert authenticate(db_url, "bob", "bobs-password") == Viewer("bob", "bob", "annotator")
    assert authenticate(db_url, "bob", "wrong-password") is None
    assert authenticate(db_url, "nobody", "bobs-password") is None
    assert authenticate(db_url, "", "") is None


def test_the_password_is_never_stored_in_clear(db_url: str) -> None:
    add_user(db_url, "bob", "bobs-password", "engineer")
    stored = stored_hash(db_url, "bob")
    assert stored and stored.startswith("scrypt$1$") and "bobs-password" not in stored


@pytest.mark.parametrize(("username", "password", "role", "message"), [
    ("ada", "long-enough", "boss", "Unknown role 'boss'"),
    ("ada", "", "admin", "password is empty"),
    ("ada", "   ", "admin", "password is empty"),
    ("ada", "short", "admin", "too short"),
    ("adalovelace", "AdaLovelace", "admin", "must not be the username"),
    ("", "long-enough", "admin", "username is empty"),
    ("ada lovelace", "long-enough", "admin", "not a valid username"),
    ("local", "long-enough", "admin", "reserved"),
])
def test_bad_users_get_clear_errors(db_url: str, username: str, password: str, role: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        add_user(db_url, username, password, role)
    assert list_users(db_url, include_disabled=True) == []


def test_a_username_is_taken_once(db_url: str) -> None:
    add_user(db_url, "ada", "long-enough", "admin")
    with pytest.raises(ConfigError, match="already a user 'ada'"):
        add_user(db_url, "ADA", "other-password", "annotator")


def test_removing_a_user_disables_them_and_keeps_the_row(db_url: str) -> None:
    add_user(db_url, "ada", "long-enough", "admin")
    add_user(db_url, "bob", "bobs-password", "annotator")
    remove_user(db_url, "bob")
    assert [u.username for u in list_users(db_url)] == ["ada"]
    bob = get_user(db_url, "bob")
    assert bob.disabled and not bob.has_password
    assert authenticate(db_url, "bob", "bobs-password") is None
    assert viewer_for_username(db_url, "bob") is None
    with pytest.raises(ConfigError, match="There is no user 'bob' \\(they were removed\\)"):
        remove_user(db_url, "bob")
    # Adding them again brings the same row back, with the new role and password.
    again = add_user(db_url, "bob", "new-password", "engineer")
    assert again.created_at == bob.created_at and not again.disabled
    assert authenticate(db_url, "bob", "new-password") == Viewer("bob", "bob", "engineer")


def test_unknown_users_get_clear_errors(db_url: str) -> None:
    with pytest.raises(ConfigError, match="There is no user 'ghost'"):
        remove_user(db_url, "ghost")
    with pytest.raises(ConfigError, match="There is no user 'ghost'"):
        set_password(db_url, "ghost", "long-enough")
    with pytest.raises(NotFound):
        get_user(db_url, "ghost")


def test_the_last_admin_cannot_be_removed_while_others_remain(db_url: str) -> None:
    add_user(db_url, "ada", "long-enough", "admin")
    add_user(db_url, "bob", "bobs-password", "annotator")
    with pytest.raises(ConfigError, match="last admin"):
        remove_user(db_url, "ada")
    remove_user(db_url, "bob")
    remove_user(db_url, "ada")  # nobody left: back to single-user mode
    assert not users_configured(db_url)


def test_set_password_and_role(db_url: str) -> None:
    add_user(db_url, "bob", "bobs-password", "annotator")
    set_password(db_url, "bob", "a-new-password")
    assert authenticate(db_url, "bob", "bobs-password") is None
    assert authenticate(db_url, "bob", "a-new-password") is not None
    with pytest.raises(ConfigError, match="too short"):
        set_password(db_url, "bob", "tiny")
    set_role(db_url, "bob", "engineer")
    assert viewer_for_username(db_url, "bob") == Viewer("bob", "bob", "engineer")
    set_password(db_url, "bob", None)
    assert authenticate(db_url, "bob", "a-new-password") is None


def test_oidc_lets_in_only_listed_users(db_url: str) -> None:
    add_user(db_url, "ada@example.com", None, "engineer")
    assert not get_user(db_url, "ada@example.com").has_password
    assert authenticate(db_url, "ada@example.com", "") is None  # no password: OIDC only
    assert viewer_for_oidc(db_url, "Ada@Example.com", "Ada L.") == Viewer("ada@example.com", "Ada L.", "engineer")
    with pytest.raises(NotFound, match="eve@example.com is not a looplab user.*looplab users add eve@example.com"):
        viewer_for_oidc(db_url, "eve@example.com", "Eve")
    with pytest.raises(NotFound, match="did not share an e-mail"):
        viewer_for_oidc(db_url, None)
    add_user(db_url, "root", "long-enough", "admin")
    remove_user(db_url, "ada@example.com")
    with pytest.raises(NotFound, match="not a looplab user any more"):
        viewer_for_oidc(db_url, "ada@example.com")


def test_the_local_admin() -> None:
    assert LOCAL_ADMIN.is_admin and not LOCAL_ADMIN.is_annotator
    assert Viewer("x", "X", "annotator").is_annotator
    with pytest.raises(ValueError):
        Viewer("x", "X", "boss")


# --- looplab users ... ----------------------------------------------------------------------------


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.output


def test_cli_add_list_remove(db_url: str) -> None:
    code, out = run("users", "add", "Ada", "--role", "admin", "--name", "Ada L.", "--password-stdin", "--db", db_url,
                    input="long-enough\n")
    assert code == 0, out
    assert "Added ada (admin)" in out
    assert authenticate(db_url, "ada", "long-enough") is not None
    assert "long-enough" not in (stored_hash(db_url, "ada") or "")

    # The hidden prompt asks twice.
    code, out = run("users", "add", "bob", "--role", "annotator", "--db", db_url, input="bobs-password\nbobs-password\n")
    assert code == 0, out
    assert authenticate(db_url, "bob", "bobs-password") is not None
    assert "bobs-password" not in out

    code, out = run("users", "add", "carol@example.com", "--role", "engineer", "--no-password", "--db", db_url)
    assert code == 0 and "through OIDC only" in out

    code, out = run("users", "list", "--db", db_url)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["ada", "admin", "password"], ["bob", "annotator", "password"], ["carol@example.com", "engineer", "OIDC"]]
    assert "Ada L." in lines[0]

    code, out = run("users", "remove", "bob", "--db", db_url)
    assert code == 0 and "Removed bob" in out
    code, out = run("users", "list", "--db", db_url)
    assert "bob" not in out
    code, out = run("users", "list", "--all", "--db", db_url)
    assert "bob" in out and "removed" in out

    code, out = run("users", "set-password", "ada", "--password-stdin", "--db", db_url, input="another-password\n")
    assert code == 0, out
    assert authenticate(db_url, "ada", "another-password") is not None


def test_cli_errors_are_messages(db_url: str) -> None:
    code, out = run("users", "add", "ada", "--role", "admin", "--password-stdin", "--db", db_url, input="short\n")
    assert code == 2 and "Error: The password is too short" in out
    code, out = run("users", "add", "ada", "--role", "boss", "--no-password", "--db", db_url)
    assert code == 2 and "boss" in out
    code, out = run("users", "add", "ada", "--role", "admin", "--db", db_url, input="long-enough\ndifferent-one\n")
    assert code != 0 and list_users(db_url) == []
    code, out = run("users", "remove", "ghost", "--db", db_url)
    assert code == 2 and "Error: There is no user 'ghost'" in out
    code, out = run("users", "list", "--db", db_url)
    assert code == 0 and "single-user mode" in out
