"""People who use the app and what their role lets them do.

Three roles: ``admin`` (everything, including managing users), ``engineer`` (everything but user
administration) and ``annotator`` (only the Annotate page and the queues assigned to them).

How people sign in (the app decides, see ``app/components/auth.py``):

- **OIDC** (an ``[auth]`` section in ``.streamlit/secrets.toml``): the identity provider says who
  someone is; the ``users`` table says what they may do. A signed-in person is let in only when
  their e-mail address is a username here and not disabled (``viewer_for_oidc``): an identity
  provider proves identity, not membership of your team, and many (Google, GitHub...) let anyone
  sign in. Add them with ``looplab users add ada@example.com --role annotator --no-password``.
- **Local users** (users exist, no OIDC): username and password, checked by ``authenticate``.
- **Local single-user mode** (no users at all): nobody signs in and everyone is ``LOCAL_ADMIN``.

Usernames are stored lower-case (an e-mail address is a fine username). Removing a user disables
them rather than deleting the row: labels and scores keep their author's username as text, and
the row keeps saying who that was; ``add_user`` with a disabled user's name brings them back.

Passwords are stored only as a salted scrypt hash in a versioned string
(``scrypt$1$<log2 n>$<r>$<p>$<salt>$<key>``, base64 without padding), so the cost can be raised
later without breaking stored hashes, and checked with a constant-time comparison.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session, write_session
from looplab.store.models import ROLES, User
from looplab.store.types import utcnow

LOCAL_USERNAME = "local"
MIN_PASSWORD_LENGTH = 8

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,254}$")

# scrypt at n=2**15, r=8, p=1: about 0.1 s and 32 MiB a hash on a small server.
_HASH_SCHEME = "scrypt"
_HASH_VERSION = "1"
_LOG2_N, _R, _P = 15, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32


@dataclass(frozen=True)
class Viewer:
    """Who is using the app right now: their username (what labels record as author), name and role."""

    username: str
    display_name: str
    role: str  # one of ROLES: admin, engineer, annotator

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_annotator(self) -> bool:
        """Annotators only label: they see Annotate and the queues assigned to them, nothing else."""
        return self.role == "annotator"


# Local single-user mode (no users configured): everyone is this admin.
LOCAL_ADMIN = Viewer(username=LOCAL_USERNAME, display_name="Local user", role="admin")


@dataclass(frozen=True)
class UserInfo:
    """A row of the users table as the CLI and the Settings page list it (never the password hash)."""

    username: str
    display_name: str | None
    role: str
    has_password: bool
    created_at: datetime
    disabled_at: datetime | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def viewer(self) -> Viewer:
        """This user as the app's ``Viewer``."""
        return Viewer(username=self.username, display_name=self.display_name or self.username, role=self.role)


# --- Passwords ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int, length: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=128 * r * n * p + 1024 * 1024)


def hash_password(password: str) -> str:
    """A new salted scrypt hash of ``password`` as a versioned string, fit for ``users.password_hash``."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, _LOG2_N, _R, _P, _KEY_BYTES)
    return "$".join((_HASH_SCHEME, _HASH_VERSION, str(_LOG2_N), str(_R), str(_P), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (from ``hash_password``); False for no or an unknown hash."""
    if not stored:
        return False
    parts = stored.split("$")
    if len(parts) != 7 or parts[0] != _HASH_SCHEME or parts[1] != _HASH_VERSION:
        return False
    try:
        log2_n, r, p = int(parts[2]), int(parts[3]), int(parts[4])
        salt, key = _unb64(parts[5]), _unb64(parts[6])
    except ValueError:
        return False
    if not (1 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16 and key):
        return False
    candidate = _scrypt(password, salt, log2_n, r, p, len(key))
    return hmac.compare_digest(candidate, key)


# Checked when the username is unknown, so that a wrong username takes as long as a wrong password.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(16))
    return _DUMMY_HASH


def check_password_strength(password: str | None, username: str | None = None) -> str:
    """``password`` if it is acceptable; raises ``ConfigError`` saying why not otherwise."""
    if password is None or not password.strip():
        raise ConfigError("The password is empty; choose one of at least "
                          f"{MIN_PASSWORD_LENGTH} characters.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"The password is too short ({len(password)} characters); use at least "
                          f"{MIN_PASSWORD_LENGTH}.")
    if username is not None and password.strip().lower() == username.strip().lower():
        raise ConfigError("The password must not be the username.")
    return password


# --- Users ----------------------------------------------------------------------------------------


def normalize_username(username: str) -> str:
    """``username`` as stored (trimmed, lower-case); raises ``ConfigError`` when it is not usable."""
    name = (username or "").strip().lower()
    if not name:
        raise ConfigError("The username is empty.")
    if not _USERNAME.match(name):
        raise ConfigError(
            f"{username!r} is not a valid username: use letters, digits and . _ @ + - "
            "(an e-mail address works), starting with a letter or digit, at most 255 characters."
        )
    if name == LOCAL_USERNAME:
        raise ConfigError(f"{LOCAL_USERNAME!r} is reserved for local single-user mode; choose another username.")
    return name


def check_role(role: str) -> str:
    """``role`` if it is one of ``ROLES``; raises ``ConfigError`` otherwise."""
    if role not in ROLES:
        raise ConfigError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    return role


def _info(user: User) -> UserInfo:
    return UserInfo(username=user.username, display_name=user.display_name, role=user.role,
                    has_password=bool(user.password_hash), created_at=user.created_at,
                    disabled_at=user.disabled_at)


def add_user(url: str, username: str, password: str | None, role: str,
             display_name: str | None = None) -> UserInfo:
    """Add a user who can sign in with ``role``; returns them.

    ``password`` ``None`` makes a user who signs in only through OIDC. Adding a disabled user's
    username again brings them back with the new role, name and password. Raises ``ConfigError``
    for a bad username or role, a weak password, or a username already in use.
    """
    name = normalize_username(username)
    check_role(role)
    password_hash = hash_password(check_password_strength(password, name)) if password is not None else None
    display = (display_name or "").strip() or None
    with write_session(url) as session:
        user = session.scalar(select(User).where(User.username == name))
        if user is not None and user.disabled_at is None:
            raise ConfigError(f"There is already a user {name!r}; remove them first or choose another username.")
        if user is None:
            user = User(username=name, created_at=utcnow())
            session.add(user)
        user.role, user.display_name, user.password_hash, user.disabled_at = role, display, password_hash, None
        session.flush()
        return _info(user)


def list_users(url: str, include_disabled: bool = False) -> list[UserInfo]:
    """The users by username; disabled (removed) ones only with ``include_disabled``."""
    with read_session(url) as session:
        query = select(User).order_by(User.username)
        if not include_disabled:
            query = query.where(User.disabled_at.is_(None))
        return [_info(u) for u in session.scalars(query)]


def get_user(url: str, username: str) -> UserInfo:
    """One user, disabled or not; raises ``NotFound`` when there is none of that name."""
    name = (username or "").strip().lower()
    with read_session(url) as session:
        user = session.scalar(select(User).where(User.username == name))
        if user is None:
            raise NotFound(f"There is no user {username!r}.")
        return _info(user)


def _active_user(session: Session, username: str) -> User:
    name = (username or "").strip().lower()
    user = session.scalar(select(User).where(User.username == name))
    if user is None or user.disabled_at is not None:
        raise ConfigError(f"There is no user {username!r}" + (" (they were removed)." if user else "."))
    return user


def remove_user(url: str, username: str) -> None:
    """Disable a user: they can no longer sign in, and what they labelled keeps their name.

    Raises ``ConfigError`` for an unknown (or already removed) user, and when this is the last
    admin while other users remain (nobody could manage users any more).
    """
    with write_session(url) as session:
        user = _active_user(session, username)
        if user.role == "admin":
            others = session.scalar(select(func.count()).select_from(User).where(
                User.disabled_at.is_(None), User.id != user.id))
            admins = session.scalar(select(func.count()).select_from(User).where(
                User.disabled_at.is_(None), User.id != user.id, User.role == "admin"))
            if others and not admins:
                raise ConfigError(f"{user.username!r} is the last admin; make someone else an admin first "
                                  "(looplab users add NAME --role admin).")
        user.disabled_at = utcnow()
        user.password_hash = None


def set_password(url: str, username: str, password: str | None) -> None:
    """Give a user a new password (``None``: OIDC sign-in only); raises ``ConfigError`` for an
    unknown user or a weak password."""
    with write_session(url) as session:
        user = _active_user(session, username)
        user.password_hash = (hash_password(check_password_strength(password, user.username))
                              if password is not None else None)


def set_role(url: str, username: str, role: str) -> None:
    """Change a user's role; raises ``ConfigError`` for an unknown user or role."""
    check_role(role)
    with write_session(url) as session:
        _active_user(session, username).role = role


def users_configured(url: str) -> bool:
    """Whether anyone is set up to sign in (an active user); if not, the app is in single-user mode."""
    with read_session(url) as session:
        return session.scalar(select(User.id).where(User.disabled_at.is_(None)).limit(1)) is not None


def authenticate(url: str, username: str, password: str) -> Viewer | None:
    """The viewer whose username and password these are, or ``None`` (unknown, removed, no
    password, or a wrong one: callers must not tell which)."""
    name = (username or "").strip().lower()
    with read_session(url) as session:
        user = session.scalar(select(User).where(User.username == name, User.disabled_at.is_(None))) if name else None
        info = _info(user) if user is not None else None
        stored = user.password_hash if user is not None else None
    if not verify_password(password or "", stored or _dummy_hash()) or info is None or not stored:
        return None
    return info.viewer()


def viewer_for_username(url: str, username: str) -> Viewer | None:
    """The viewer for an active user (their current role), ``None`` when removed or unknown.

    The app keeps only the username of whoever signed in and asks again on every run, so a
    removed user or a changed role takes effect at their next click.
    """
    name = (username or "").strip().lower()
    with read_session(url) as session:
        user = session.scalar(select(User).where(User.username == name, User.disabled_at.is_(None)))
        return _info(user).viewer() if user is not None else None


def viewer_for_oidc(url: str, email: str | None, name: str | None = None) -> Viewer:
    """The viewer for someone signed in through OIDC, by their e-mail address.

    Only listed users get in: raises ``NotFound`` (with what to do) when the address is not an
    active username. The display name is the one in the users table, else the provider's ``name``.
    """
    address = (email or "").strip().lower()
    if not address:
        raise NotFound("Your identity provider did not share an e-mail address, so looplab cannot tell who you "
                       "are. Ask an admin to check the OIDC settings (the scope must include 'email').")
    with read_session(url) as session:
        user = session.scalar(select(User).where(User.username == address))
        if user is None or user.disabled_at is not None:
            raise NotFound(
                f"{address} is not a looplab user{' any more' if user is not None else ''}. Ask an admin to add you: "
                f"looplab users add {address} --role annotator --no-password"
            )
        info = _info(user)
    viewer = info.viewer()
    if info.display_name is None and name:
        viewer = Viewer(username=viewer.username, display_name=name, role=viewer.role)
    return viewer
