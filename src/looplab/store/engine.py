"""Opening a store: one engine per database URL, migrated to the current schema on open.

SQLite is set up for many writers (WAL, busy_timeout, ``BEGIN IMMEDIATE`` for writes, see
shared/NOTES.md); PostgreSQL serialises migrations with an advisory lock so that several
processes opening a fresh database at once migrate it exactly once.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session

from looplab.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Values bound in one IN list: SQLite before 3.32 takes at most 999 in a statement, PostgreSQL 65,535.
IDS_PER_QUERY = 500
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
        # Only takes effect on a new database (before WAL is on). Rows carry kilobytes of JSON:
        # 16 KB pages made bulk inserts a third faster than the 4 KB default.
        cursor.execute("PRAGMA page_size=16384")
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
        # A server that does not answer must not hold the writer for the OS's two-minute TCP timeout.
        connect_args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except NoSuchModuleError:
        raise StoreError(
            f"{parsed.drivername!r} is not a database looplab knows; use sqlite:///path/to/looplab.db or "
            "postgresql+psycopg://user:pass@host/dbname."
        ) from None
    except (ImportError, ModuleNotFoundError) as err:
        raise StoreError(
            f"The database driver for {parsed.drivername} is not installed ({err}); "
            "for PostgreSQL install looplab[postgres]."
        ) from None


def migrate(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the database's schema up to the newest migration; a no-op when it already is.

    Returns the revision before (``None`` for an empty database) and after. Raises ``StoreError``
    for a database this looplab cannot open or does not know (migrated by a newer looplab).
    """
    from alembic import command
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            before = MigrationContext.configure(conn).get_current_revision()
            if before is not None and before not in _known_revisions():
                raise StoreError(
                    f"The database at {url} is at schema revision {before}, which this version of looplab "
                    "does not know (a newer looplab upgraded it); upgrade looplab."
                )
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            after = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as err:
        raise StoreError(f"Cannot open the database at {url}: {getattr(err, 'orig', None) or err}") from err
    except CommandError as err:
        raise StoreError(f"Cannot migrate the database at {url}: {err}") from err
    return before, after


def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR))


def _known_revisions() -> set[str]:
    return {s.revision for s in _script().walk_revisions()}


def newest_revision() -> str | None:
    """The schema revision this version of looplab migrates to."""
    return _script().get_current_head()


def upgrade(url: str) -> tuple[str | None, str | None, list[str]]:
    """Migrate the database at ``url`` to the newest schema, creating it when new.

    Returns the revision before (``None`` for an empty database), the revision after, and one line
    (``"<revision>: <message>"``) for each migration applied, oldest first.
    """
    engine = _create_engine(url)
    try:
        before, after = migrate(engine)
    finally:
        engine.dispose()
    applied = []
    if after is not None and after != before:
        for revision in reversed(list(_script().iterate_revisions(after, before))):
            applied.append(f"{revision.revision}: {revision.doc}")
    return before, after, applied


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
            except StoreError:
                engine.dispose()
                raise
            _engines[url] = engine
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (after a fork, or when tests switch databases)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


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
