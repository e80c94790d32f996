"""Opening a store: one engine per database URL, migrated to the current schema on open.

SQLite is set up for many writers (WAL, busy_timeout, ``BEGIN IMMEDIATE`` for writes, see
shared/NOTES.md); PostgreSQL serialises migrations with an advisory lock so that several
processes opening a fresh database at once migrate it exactly once.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from looplab.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_KEY = 0x100F1AB  # any constant shared by every looplab process

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event decide how transactions start (pysqlite would otherwise
        # start them lazily and run SELECTs outside them, losing read-modify-write updates).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-32000")  # 32 MB: index pages stay cached during bulk inserts
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("looplab_read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"{url!r} is not a database URL. Use e.g. sqlite:///looplab.db or "
            "postgresql+psycopg://user:pass@host/dbname."
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StoreError("looplab needs a SQLite file, not an in-memory database: use sqlite:///path/to/looplab.db.")
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise StoreError(f"The folder {folder} for the SQLite database does not exist; create it or change the URL.")
        engine = create_engine(parsed, pool_pre_ping=False)
        _configure_sqlite(engine)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (ImportError, ModuleNotFoundError) as err:
        raise StoreError(
            f"The database driver for {parsed.drivername} is not installed ({err}); "
            "for PostgreSQL install looplab[postgres]."
        ) from None


def migrate(engine: Engine) -> None:
    """Bring the database's schema up to the newest migration; a no-op when it already is."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def get_engine(url: str) -> Engine:
    """Return the shared engine for ``url``, created and migrated on first use.

    Raises ``StoreError`` with a message fit for users when the database cannot be opened.
    """
    engine = _engines.get(url)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            try:
                migrate(engine)
            except SQLAlchemyError as err:
                engine.dispose()
                raise StoreError(f"Cannot open the database at {_safe_url(url)}: {err.orig or err}") from err
            _engines[url] = engine
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (after a fork, or when tests switch databases)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


@contextmanager
def write_session(url: str) -> Iterator[Session]:
    """A session whose transaction takes the write lock up front and commits on success."""
    with Session(get_engine(url)) as session, session.begin():
        yield session


@contextmanager
def read_session(url: str) -> Iterator[Session]:
    """A session for reads only: on SQLite it does not take the write lock."""
    engine = get_engine(url).execution_options(looplab_read_only=True)
    with Session(engine) as session, session.begin():
        yield session


def forget_engines_after_fork() -> None:
    """In a forked child: drop the parent's pooled connections without closing them under it."""
    global _engines_lock
    _engines_lock = threading.Lock()  # another thread may have held it at fork time
    for engine in list(_engines.values()):
        engine.dispose(close=False)
    _engines.clear()
