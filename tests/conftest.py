"""Shared fixtures: a real database per test (SQLite file, and PostgreSQL when configured),
tracing pointed at it, and the fake LLM server.

``LOOPLAB_TEST_POSTGRES_URL`` names a PostgreSQL database to run the ``postgres`` half of every
store-backed test against; with ``LOOPLAB_REQUIRE_POSTGRES=1`` (CI) a missing server is a failure,
not a skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import looplab
from looplab.config import Settings
from looplab.store.engine import dispose_engines, get_engine
from looplab.store.models import Base
from looplab.tracing import runtime
from tests.fakes.llm_server import FakeLLM

POSTGRES_URL = os.environ.get("LOOPLAB_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("LOOPLAB_REQUIRE_POSTGRES") == "1"


def _worker_database_name() -> str:
    """A database name of this test run and xdist worker: two runs against one server (two
    developers, or a developer and CI) never empty each other's tables."""
    assert POSTGRES_URL
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"{os.getpid():x}")[:8]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{make_url(POSTGRES_URL).database}_{run}_{worker}"


def _admin_sql(statement: str) -> None:
    admin = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


@pytest.fixture(autouse=True)
def _no_app_state_leaks_between_tests() -> Iterator[None]:
    """Undo what a Streamlit AppTest leaves in the process.

    AppTest runs the page as ``__main__`` and leaves ``sys.modules["__main__"]`` pointing at the
    script: a later test's spawned process (multiprocessing "spawn") would then re-run the app
    script in the child and never start. Streamlit's caches are process-wide and keyed by
    arguments: a PostgreSQL test database keeps its URL from test to test (its tables emptied), so
    a result cached by one test (or the once-per-database set-up of default rules) would leak into
    the next.
    """
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main
    if "streamlit" in sys.modules:
        import streamlit as st

        st.cache_data.clear()
        st.cache_resource.clear()


@pytest.fixture(autouse=True)
def _no_tracing_leaks_between_tests() -> Iterator[None]:
    """Each test starts with tracing off and leaves no writer of its own behind."""
    runtime.install(Settings(enabled=False))
    yield
    runtime.install(Settings(enabled=False))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """This worker's own PostgreSQL database, created for the run and dropped after it."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("LOOPLAB_REQUIRE_POSTGRES=1 but LOOPLAB_TEST_POSTGRES_URL is not set")
        pytest.skip("set LOOPLAB_TEST_POSTGRES_URL to run against PostgreSQL")
    name = _worker_database_name()
    _admin_sql(f'DROP DATABASE IF EXISTS "{name}"')
    _admin_sql(f'CREATE DATABASE "{name}"')
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    dispose_engines()
    _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_postgres(url: str) -> None:
    engine = get_engine(url)  # migrates on first use
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty looplab database: a SQLite file, then the PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'looplab.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        _empty_postgres(url)
    yield url
    looplab.flush(timeout=10)
    dispose_engines()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite database file, for tests about SQLite itself."""
    yield f"sqlite:///{tmp_path / 'looplab.db'}"
    looplab.flush(timeout=10)
    dispose_engines()


@pytest.fixture
def traced(db_url: str) -> Iterator[str]:
    """Tracing configured to record into ``db_url``; yields the URL."""
    runtime.install(Settings(database_url=db_url, flush_interval=0.02))
    yield db_url
    looplab.flush(timeout=10)


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> FakeLLM:
    """The fake LLM server, with its knobs and recorded requests reset."""
    fake_llm_server.reset()
    return fake_llm_server
