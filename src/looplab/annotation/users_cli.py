"""``looplab users ...``: manage who can sign in to the app and with which role."""

from __future__ import annotations

import typer

users_app = typer.Typer(help="Manage the app's users: add, list and remove them.", no_args_is_help=True)
