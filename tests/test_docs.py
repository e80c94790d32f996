"""Documentation and schema cannot drift: every CLI command is in the README, every option has
help, there is one migration head, and the migrated schema matches the models."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import typer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text
from typer.core import TyperCommand, TyperGroup, TyperOption

from looplab.cli import app
from looplab.store.engine import MIGRATIONS_DIR, migrate
from looplab.store.models import Base

Command = TyperCommand | TyperGroup  # typer 0.29 vendors click: these are not click classes
README = Path(__file__).resolve().parent.parent / "README.md"


def walk_commands(command: Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every visible command and group below ``command``, with its path of names."""
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in sorted(command.commands.items()):
            if not sub.hidden:
                yield from walk_commands(sub, (*path, name))


def cli_commands() -> list[tuple[tuple[str, ...], Command]]:
    return list(walk_commands(typer.main.get_command(app)))


def leaf_command_paths() -> list[str]:
    return [" ".join(path) for path, command in cli_commands() if path and not isinstance(command, TyperGroup)]


def test_the_cli_has_the_first_commands() -> None:
    assert {"db upgrade", "export traces"} <= set(leaf_command_paths())


def test_every_cli_command_is_in_the_readme() -> None:
    commands = leaf_command_paths()
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    missing = [c for c in commands if not re.search(rf"looplab {re.escape(c)}(?![\w-])", text)]
    where = "README.md" if README.exists() else "README.md (which does not exist yet)"
    assert not missing, f"{where} does not mention: " + ", ".join(f"`looplab {c}`" for c in missing)


def test_every_command_and_option_has_help() -> None:
    undocumented = []
    for path, command in cli_commands():
        name = " ".join(("looplab", *path))
        if not (command.help or command.short_help):
            undocumented.append(name)
        for param in command.params:
            if isinstance(param, TyperOption) and not param.help:
                undocumented.append(f"{name} {param.opts[0]}")
    assert not undocumented, "no help text: " + ", ".join(undocumented)


def test_migrations_have_one_head() -> None:
    heads = ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()
    assert len(heads) == 1, f"migration heads {heads}: merge them into one"


def virtual_tables(conn: Connection) -> set[str]:
    """SQLite's virtual tables (the FTS5 search index) and their shadow tables: no model describes them."""
    if conn.dialect.name != "sqlite":
        return set()
    return {row.name for row in conn.execute(text("PRAGMA table_list")) if row.type in ("virtual", "shadow")}


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            ignored = virtual_tables(conn)
            context = MigrationContext.configure(conn, opts={
                "include_name": lambda name, type_, _parents: not (type_ == "table" and name in ignored)})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert not differences, "models and migrations disagree (add a migration):\n" + "\n".join(
        map(repr, differences)
    )
