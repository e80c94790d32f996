"""Options and helpers shared by the ``looplab`` command's sub-apps (``cli.py`` and the
``*cli.py`` modules of each area)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Annotated, Any, Callable, Iterator

import typer

# Options shared by commands that open the database.
DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="LOOPLAB_DATABASE_URL",
        help="Database URL (SQLAlchemy), e.g. sqlite:///looplab.db or postgresql+psycopg://user@host/db.",
    ),
]


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a bar on stderr, opened once the total is known."""
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            if total == 0:
                return
            bar = typer.progressbar(length=total, label=label, file=sys.stderr).__enter__()
        bar.update(done - bar.pos)

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
