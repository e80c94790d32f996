"""``looplab users ...``: manage who can sign in to the app and with which role."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from looplab.annotation.users import add_user, check_password_strength, list_users, remove_user, set_password
from looplab.cli_options import DbOption
from looplab.config import DEFAULT_DATABASE_URL
from looplab.errors import ConfigError

users_app = typer.Typer(help="Manage the app's users: add, list and remove them.", no_args_is_help=True)


class Role(str, Enum):
    admin = "admin"
    engineer = "engineer"
    annotator = "annotator"


PasswordStdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of standard input (for scripts)."),
]
NoPasswordOption = Annotated[
    bool,
    typer.Option("--no-password", help="No password: the user signs in only through OIDC (the auth section of .streamlit/secrets.toml)."),
]


def _read_password(username: str, from_stdin: bool) -> str:
    """The new password, from stdin or a hidden prompt asked twice; checked for strength."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"Password for {username}", hide_input=True, confirmation_prompt=True)
    return check_password_strength(password, username)


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="The username (lower-case; an e-mail address for OIDC sign-in).")],
    role: Annotated[Role, typer.Option(help="admin: everything; engineer: all but user administration; "
                                            "annotator: only Annotate.")],
    name: Annotated[Optional[str], typer.Option("--name", help="Display name shown in the app.")] = None,
    password_stdin: PasswordStdinOption = False,
    no_password: NoPasswordOption = False,
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Add a user who can sign in to the app; asks for their password (hidden, twice)."""
    if password_stdin and no_password:
        raise ConfigError("Give either --password-stdin or --no-password, not both.")
    password = None if no_password else _read_password(username, password_stdin)
    user = add_user(db, username, password, role.value, display_name=name)
    how = "through OIDC only" if password is None else "with a password"
    typer.echo(f"Added {user.username} ({user.role}), who signs in {how}.")


@users_app.command("list")
def users_list(
    all_: Annotated[bool, typer.Option("--all", help="Also list removed (disabled) users.")] = False,
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """List the users: username, role, display name, how they sign in."""
    users = list_users(db, include_disabled=all_)
    if not users:
        typer.echo("No users: the app runs in local single-user mode (everyone is admin). "
                   "Add one with: looplab users add USERNAME --role admin")
        return
    width = max(len(u.username) for u in users)
    for user in users:
        sign_in = "-" if user.disabled else "password" if user.has_password else "OIDC only"
        state = f"  removed {user.disabled_at:%Y-%m-%d}" if user.disabled_at else ""
        typer.echo(f"{user.username:<{width}}  {user.role:<9}  {sign_in:<9}  {user.display_name or ''}{state}".rstrip())


@users_app.command("remove")
def users_remove(
    username: Annotated[str, typer.Argument(help="The user to remove.")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Remove a user: they can no longer sign in; their labels keep their username."""
    remove_user(db, username)
    typer.echo(f"Removed {username.strip().lower()}; what they labelled keeps their name.")


@users_app.command("set-password")
def users_set_password(
    username: Annotated[str, typer.Argument(help="The user whose password to change.")],
    password_stdin: PasswordStdinOption = False,
    no_password: NoPasswordOption = False,
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Give a user a new password (asked hidden, twice), or none with --no-password."""
    if password_stdin and no_password:
        raise ConfigError("Give either --password-stdin or --no-password, not both.")
    password = None if no_password else _read_password(username, password_stdin)
    set_password(db, username, password)
    typer.echo(f"{'Changed' if password else 'Removed'} the password of {username.strip().lower()}.")
