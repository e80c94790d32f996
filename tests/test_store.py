"""Opening a store: settings of SQLite, clear errors, and the writer's column lists kept in step
with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from looplab.errors import StoreError
from looplab.store.engine import get_engine
from looplab.store.models import Score, Span, Trace, TraceTag
from looplab.tracing.rows import SCORE_COLUMNS, SPAN_COLUMNS, TAG_COLUMNS, TRACE_COLUMNS


@pytest.mark.parametrize(("table", "columns"), [(Span, SPAN_COLUMNS), (Trace, TRACE_COLUMNS),
                                                (TraceTag, TAG_COLUMNS), (Score, SCORE_COLUMNS)])
def test_the_writer_fills_every_column_but_links_made_later(table, columns) -> None:
    later = {"experiment_item_id", "config_id", "evaluator_id", "evaluator_version"}  # set by services
    assert set(columns) == {c.name for c in table.__table__.columns} - later
    assert len(columns) == len(set(columns))


def test_sqlite_is_set_up_for_concurrent_writers(sqlite_url: str) -> None:
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


@pytest.mark.parametrize("url", ["not a url", "sqlite://", "sqlite:///:memory:"])
def test_unusable_urls_say_what_to_do(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        get_engine(url)
    assert "sqlite:///" in str(caught.value)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        get_engine(f"sqlite:///{tmp_path / 'nope' / 'looplab.db'}")


def test_opening_twice_migrates_once(sqlite_url: str) -> None:
    first = get_engine(sqlite_url)
    assert get_engine(sqlite_url) is first
    with first.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
