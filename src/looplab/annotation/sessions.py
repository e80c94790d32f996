"""Staying signed in with a local password: signed session tokens the app keeps in a cookie.

Who signed in with a password lives in Streamlit's session state, and every full page load (a
reload, a shared link, a link the app renders) starts a new session. So on a successful sign-in the
app also gives the browser a cookie holding a token made here, and a new session that brings a valid
token signs its owner in again (``app/components/auth.py``).

A token is ``v1.<username, base64url>.<expiry, Unix seconds>.<HMAC-SHA256, base64url>``. The MAC's
key is derived from a server secret *and the user's current password hash*, so a token

- cannot be forged or altered without the server secret (changing the username or the expiry
  breaks the MAC);
- stops working at its expiry (``LOOPLAB_SESSION_HOURS``, 12 hours by default), and when the user's
  password changes or the user is removed (removing clears the password hash);
- carries no role: the role is looked up again on every run, like any signed-in user's.

The server secret (``session_secret``), first found of:

1. ``LOOPLAB_SECRET_KEY`` (at least 32 characters; set the same value on every replica);
2. Streamlit's ``server.cookieSecret`` option when it is set explicitly (the app passes it in);
3. a random secret generated on first use and kept in a file readable only by its owner: next to
   the SQLite database (``looplab.db.secret`` for ``looplab.db``), or for other databases
   ``$XDG_CONFIG_HOME/looplab/secret`` (``~/.config/looplab/secret``). Restarts keep sessions;
   deleting the file signs everybody out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url

from looplab.annotation.users import Viewer
from looplab.errors import ConfigError
from looplab.store.engine import read_session
from looplab.store.models import User

COOKIE_NAME = "looplab_session"
SESSION_HOURS_ENV = "LOOPLAB_SESSION_HOURS"
SECRET_KEY_ENV = "LOOPLAB_SECRET_KEY"
DEFAULT_SESSION_HOURS = 12.0
MIN_SECRET_LENGTH = 32

_VERSION = "v1"
_MAX_TOKEN_LENGTH = 1024
_KEY_CONTEXT = b"looplab session key v1\x00"


@dataclass(frozen=True)
class IssuedSession:
    """A token for the session cookie, and how long the browser should keep it."""

    token: str
    expires_at: int  # Unix seconds
    max_age: int  # seconds, for the cookie's Max-Age


# --- Settings -------------------------------------------------------------------------------------


def session_hours() -> float:
    """How long a password sign-in lasts in a browser, in hours (``LOOPLAB_SESSION_HOURS``, default 12)."""
    raw = os.environ.get(SESSION_HOURS_ENV, "").strip()
    if not raw:
        return DEFAULT_SESSION_HOURS
    try:
        hours = float(raw)
    except ValueError:
        raise ConfigError(f"{SESSION_HOURS_ENV}={raw!r} is not a number of hours; set it to e.g. 12.") from None
    if not 0 < hours <= 24 * 366:
        raise ConfigError(f"{SESSION_HOURS_ENV}={raw!r} must be more than 0 and at most a year (8784 hours).")
    return hours


def secret_file(url: str) -> Path:
    """Where the generated server secret is kept for the database at ``url`` (see the module's docstring)."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - a bad URL fails elsewhere with its own message
        parsed = None
    database = parsed.database if parsed is not None and parsed.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not database.startswith("file:"):
        path = Path(database).expanduser()
        return path.with_name(path.name + ".secret")
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "looplab" / "secret"


def load_or_create_secret(path: Path) -> bytes:
    """The secret in ``path``; creates it (random, mode 0600) when there is none yet.

    Safe when several processes start at once: the file appears complete or not at all, and every
    process ends up with the one that was written first.
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # atomic; fails when another process was first
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < MIN_SECRET_LENGTH:
        raise ConfigError(f"The session secret in {path} is empty or too short; delete the file and looplab "
                          "makes a new one (everyone signed in on a browser signs in again).")
    return text.encode("utf-8")


def session_secret(url: str, configured: str | None = None) -> bytes:
    """The server secret that signs session tokens: ``LOOPLAB_SECRET_KEY``, else ``configured`` (the
    app passes Streamlit's ``server.cookieSecret`` when it is set), else the generated file's."""
    from_env = os.environ.get(SECRET_KEY_ENV, "").strip()
    if from_env:
        if len(from_env) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{SECRET_KEY_ENV} is too short ({len(from_env)} characters); use at least "
                              f"{MIN_SECRET_LENGTH}, e.g. the output of: python -c 'import secrets; "
                              "print(secrets.token_hex(32))'")
        return from_env.encode("utf-8")
    if configured:
        return configured.encode("utf-8")
    return load_or_create_secret(secret_file(url))


# --- Tokens ---------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, password_hash: str, username: str, expires_at: int) -> bytes:
    key = hmac.new(secret, _KEY_CONTEXT + password_hash.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, f"{_VERSION}\x00{username}\x00{expires_at}".encode(), hashlib.sha256).digest()


def make_token(username: str, password_hash: str, secret: bytes, expires_at: int) -> str:
    """A token saying ``username`` is signed in until ``expires_at`` (Unix seconds)."""
    if not password_hash:
        raise ValueError("a session token needs the user's password hash")
    mac = _mac(secret, password_hash, username, expires_at)
    return ".".join((_VERSION, _b64(username.encode("utf-8")), str(expires_at), _b64(mac)))


def parse_token(token: str) -> tuple[str, int, bytes] | None:
    """``(username, expires_at, mac)`` from a token's text, ``None`` when it is not one (unverified)."""
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
        return None
    try:
        username = _unb64(parts[1]).decode("utf-8")
        mac = _unb64(parts[3])
    except (binascii.Error, ValueError):
        return None
    return (username, int(parts[2]), mac) if username else None


def check_token(token: str, password_hash: str | None, secret: bytes, now: float | None = None,
                max_hours: float | None = None) -> str | None:
    """The username ``token`` vouches for when it is genuine, unexpired and made with this
    ``password_hash``; ``None`` otherwise. ``max_hours`` also refuses tokens that would outlive a
    session of that length (after ``LOOPLAB_SESSION_HOURS`` was lowered)."""
    parsed = parse_token(token)
    if parsed is None or not password_hash:
        return None
    username, expires_at, mac = parsed
    now = time.time() if now is None else now
    if expires_at <= now:
        return None
    if max_hours is not None and expires_at > now + max_hours * 3600 + 60:
        return None
    if not hmac.compare_digest(mac, _mac(secret, password_hash, username, expires_at)):
        return None
    return username


# --- Sessions against the users table ------------------------------------------------------------


def _password_user(session, username: str) -> User | None:  # type: ignore[no-untyped-def]
    user = session.scalar(select(User).where(User.username == username, User.disabled_at.is_(None)))
    return user if user is not None and user.password_hash else None


def issue_session(url: str, username: str, secret: bytes, hours: float | None = None,
                  now: float | None = None) -> IssuedSession | None:
    """A session token for an active user with a password (``None`` for anyone else), valid for
    ``hours`` (``session_hours()`` by default)."""
    hours = session_hours() if hours is None else hours
    now = time.time() if now is None else now
    with read_session(url) as session:
        user = _password_user(session, (username or "").strip().lower())
        if user is None:
            return None
        name, password_hash = user.username, user.password_hash
    max_age = max(1, int(hours * 3600))
    expires_at = int(now) + max_age
    return IssuedSession(make_token(name, password_hash, secret, expires_at), expires_at, max_age)


def viewer_for_session(url: str, token: str, secret: bytes, now: float | None = None,
                       max_hours: float | None = None) -> Viewer | None:
    """The viewer a session token signs in (with their current role), or ``None`` when the token is
    forged, altered, expired, or the user was removed or changed their password since."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    with read_session(url) as session:
        user = _password_user(session, parsed[0])
        if user is None:
            return None
        password_hash, viewer = user.password_hash, Viewer(
            username=user.username, display_name=user.display_name or user.username, role=user.role)
    if check_token(token, password_hash, secret, now=now, max_hours=max_hours) != viewer.username:
        return None
    return viewer
