"""Data lifecycle: ``looplab prune`` (retention) and ``looplab delete --user-id`` (erasure), on
real SQLite and PostgreSQL databases built with the services the app uses."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from typer.testing import CliRunner, Result

from looplab.annotation.queues import add_traces, create_queue, next_item, submit_label
from looplab.annotation.score_configs import create_score_config
from looplab.cli import app
from looplab.datasets import add_trace_to_dataset, item_history
from looplab.explorer.traces import list_traces, update_search_index
from looplab.store.engine import dispose_engines, get_engine, read_session
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces
from looplab.store.lifecycle import IncompleteRemoval, Removed, delete_user, prune_traces
from looplab.store.models import (
    Annotation,
    DatasetItem,
    ExperimentItem,
    QueueItem,
    Score,
    Span,
    Trace,
    TraceTag,
)
from tests.experiment_rows import insert_dataset, insert_experiment

NOW = datetime.now(UTC).replace(microsecond=0)
CUTOFF = NOW - timedelta(days=90)
OLD = ["old-1", "old-2", "t-exp-i1"]  # t-exp-i1: the trace of experiment "exp"'s item "i1"
RECENT = ["new-1", "new-2"]


def trace(trace_id: str, days_ago: float, user: str, word: str, spans: int = 3) -> dict[str, Any]:
    start = NOW - timedelta(days=days_ago)
    return {
        "trace_id": trace_id, "name": "support-chat", "start_time": start, "end_time": start + timedelta(seconds=2),
        "user_id": user, "tags": ["beta", f"tag-{trace_id}"], "input": {"question": f"Where is my {word}?"},
        "output": f"Your {word} ships tomorrow.",
        "spans": [{"span_id": f"{trace_id}-s{n}", "kind": "llm" if n else "span", "name": f"step {n}",
                   "start_time": start + timedelta(milliseconds=10 * n), "output": f"{word} answer {n}"}
                  for n in range(spans)],
        "scores": [{"name": "thumbs", "value": 1, "source": "user_feedback"},
                   {"name": "grounded", "value": 0.5, "source": "code", "span_id": f"{trace_id}-s1"}],
    }


@pytest.fixture
def store(db_url: str) -> str:
    """Three old traces (one of them an experiment item's), two recent ones, an orphan span of each
    age, a queue with a labelled old trace and a pending recent one, dataset items from an old and
    a recent trace, and the SQLite search index caught up."""
    insert_traces(db_url, [
        trace("old-1", 200, "u1", "zebrafish"),
        trace("old-2", 100, "u2", "zebrafish"),
        trace("t-exp-i1", 95, "u2", "zebrafish", spans=1),
        trace("new-1", 1, "u1", "marmalade"),
        trace("new-2", 10, "u2", "marmalade"),
    ])
    with get_engine(db_url).begin() as conn:
        # Spans whose trace row never came (the app died before its root span ended).
        conn.execute(insert(Span), [
            {"trace_id": trace_id, "id": span_id, "kind": "llm", "name": "lost",
             "start_time": NOW - timedelta(days=days)}
            for trace_id, span_id, days in (("ghost-old", "g1", 150), ("ghost-old", "g2", 150), ("ghost-new", "g3", 1))
        ])
    create_score_config(db_url, "quality", "numeric", min_value=0, max_value=1)
    queue = create_queue(db_url, "review", score_configs=["quality"])
    add_traces(db_url, queue.id, ["old-1", "new-1"])
    lease = next_item(db_url, queue.id, "ada")
    assert lease is not None and lease.trace_id == "old-1"
    submit_label(db_url, lease.item_id, "ada", {"quality": 0.9}, comment="fine")
    add_trace_to_dataset(db_url, "golden", "old-1", labels={"quality": 0.9}, author="ada", create_if_missing=True)
    add_trace_to_dataset(db_url, "golden", "new-1", create_if_missing=True)
    dataset_id, rows = insert_dataset(db_url, "exp-data", {"i1": ("question", "answer")})
    insert_experiment(db_url, "exp", dataset_id, {"i1": {"output": "the answer", "cost_usd": 0.01,
                                                          "scores": {"correct": 1.0}}}, row_ids=rows)
    update_search_index(db_url, pause=0)
    return db_url


def count(url: str, model: Any, *where: Any) -> int:
    with read_session(url) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def trace_ids(url: str) -> list[str]:
    with read_session(url) as session:
        return sorted(session.scalars(select(Trace.id)))


def everything(url: str) -> dict[str, Any]:
    """Every row of every table lifecycle touches, to compare before and after."""
    with read_session(url) as session:
        return {model.__tablename__: sorted(map(tuple, session.execute(select(model.__table__)).all()), key=repr)
                for model in (Trace, Span, TraceTag, Score, QueueItem, Annotation, DatasetItem, ExperimentItem)}


def found(url: str, word: str) -> list[str]:
    """Trace ids the explorer's search finds (over the full-text index on SQLite)."""
    page = list_traces(url, TraceFilter(), search=word, page_size=100)
    return sorted(row.id for row in page.rows)


def search_index_ids(url: str) -> list[str] | None:
    """The trace ids the SQLite search index holds rows for; ``None`` without an index."""
    if get_engine(url).dialect.name != "sqlite":
        return None
    with get_engine(url).connect() as conn:
        return sorted(conn.execute(text("SELECT trace_id FROM trace_search")).scalars())


EXPECTED_PRUNE = Removed(
    traces=3,
    spans=3 + 3 + 1 + 2,  # old-1, old-2, t-exp-i1 and the old orphan's two spans
    tags=6,
    scores=3 * 2 + 1,  # two per trace, and ada's label of old-1
    queue_items=1,
    annotations=1,
    dataset_items_unlinked=1,
    experiment_items_unlinked=1,
)


def with_search_rows(expected: Removed, url: str, rows: int) -> Removed:
    """``expected`` with the search index rows SQLite removes too (PostgreSQL has no index)."""
    if get_engine(url).dialect.name != "sqlite":
        return expected
    return expected + Removed(search_rows=rows)


def test_prune_removes_the_old_traces_whole_and_keeps_the_recent_ones(store: str) -> None:
    assert found(store, "zebrafish") == OLD

    removed = prune_traces(store, CUTOFF)

    assert removed == with_search_rows(EXPECTED_PRUNE, store, 3)
    assert trace_ids(store) == sorted(RECENT)
    assert count(store, Span, Span.trace_id.in_(OLD + ["ghost-old"])) == 0
    assert count(store, Span) == 3 + 3 + 1  # new-1, new-2, and the recent orphan span stays
    assert count(store, TraceTag, TraceTag.trace_id.in_(OLD)) == 0
    assert count(store, TraceTag) == 4
    assert count(store, Score, Score.trace_id.in_(OLD)) == 0
    assert count(store, Score, Score.trace_id.in_(RECENT)) == 4
    assert count(store, QueueItem) == 1 and count(store, QueueItem, QueueItem.trace_id == "new-1") == 1
    assert count(store, Annotation) == 0
    # Search no longer finds the removed traces, and their words left the index.
    assert found(store, "zebrafish") == []
    assert found(store, "marmalade") == sorted(RECENT)
    assert search_index_ids(store) in (None, sorted(RECENT))
    # Running it again finds nothing more to do.
    assert prune_traces(store, CUTOFF) == Removed()


def test_pruned_traces_leave_dataset_items_with_their_content_and_no_link(store: str) -> None:
    [before] = [i for i in item_history(store, _item_id(store, "old-1"))]

    prune_traces(store, CUTOFF)

    [after] = item_history(store, before.item_id)
    assert (after.input, after.expected_output) == (before.input, before.expected_output)
    assert after.source_trace_id is None and after.source_span_id is None
    assert after.metadata == {"labels": {"quality": 0.9}, "added_by": "ada"}  # the link left the metadata too
    [recent] = item_history(store, _item_id(store, "new-1"))
    assert recent.metadata["source_trace_id"] == "new-1"


def test_pruned_experiment_traces_leave_the_items_results_and_scores(store: str) -> None:
    prune_traces(store, CUTOFF)

    with read_session(store) as session:
        item = session.scalars(select(ExperimentItem)).one()
        assert (item.trace_id, item.output_json, item.cost_usd) == (None, "the answer", 0.01)
        scores = session.execute(select(Score.name, Score.value).where(Score.experiment_item_id == item.id)).all()
    assert scores == [("correct", 1.0)]


def test_a_dry_run_counts_what_a_run_removes_and_removes_nothing(store: str) -> None:
    before = everything(store)

    preview = prune_traces(store, CUTOFF, dry_run=True)
    user_preview = delete_user(store, "u1", dry_run=True)

    assert everything(store) == before
    assert preview == with_search_rows(EXPECTED_PRUNE, store, 3)
    assert user_preview == delete_user(store, "u1")


def test_small_batches_remove_the_same_and_report_progress(store: str) -> None:
    calls: list[tuple[int, int]] = []

    removed = prune_traces(store, CUTOFF, batch_size=1, progress=lambda done, total: calls.append((done, total)))

    assert removed == with_search_rows(EXPECTED_PRUNE, store, 3)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert trace_ids(store) == sorted(RECENT)


def test_delete_user_erases_their_traces_and_scores_only(store: str) -> None:
    removed = delete_user(store, "u1")

    assert removed == with_search_rows(Removed(
        traces=2, spans=6, tags=4, scores=2 * 2 + 1, queue_items=2, annotations=1, dataset_items_unlinked=2,
    ), store, 2)
    assert trace_ids(store) == ["new-2", "old-2", "t-exp-i1"]
    assert count(store, Span, Span.trace_id.in_(["old-1", "new-1"])) == 0
    assert count(store, Score, Score.trace_id.in_(["old-1", "new-1"])) == 0
    assert count(store, Score, Score.trace_id.is_not(None)) == 3 * 2
    assert count(store, QueueItem) == 0
    assert count(store, DatasetItem, DatasetItem.source_trace_id.is_not(None)) == 0
    assert count(store, DatasetItem) == 3  # two from the user's traces, content kept; the experiment's one
    assert found(store, "marmalade") == ["new-2"]
    assert found(store, "zebrafish") == ["old-2", "t-exp-i1"]
    assert delete_user(store, "nobody") == Removed()


def test_delete_user_leaves_none_of_their_words_in_the_sqlite_file(sqlite_url: str, tmp_path: Path) -> None:
    """Erasure, not just hiding: deleted rows are overwritten and the search index merged, so once
    the WAL is checkpointed the file holds no byte of what the user sent."""
    insert_traces(sqlite_url, [trace(f"t{n}", 1, "erase-me" if n == 7 else "u1", "xylophonist" if n == 7 else "parcel")
                               for n in range(50)])
    assert update_search_index(sqlite_url, pause=0) == 50
    assert found(sqlite_url, "xylophonist") == ["t7"]

    removed = delete_user(sqlite_url, "erase-me")

    assert (removed.traces, removed.search_rows) == (1, 1)
    dispose_engines()
    with closing(sqlite3.connect(tmp_path / "looplab.db")) as conn:
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy: done
    files = [p.read_bytes() for p in tmp_path.glob("looplab.db*")]
    assert files and not any(b"xylophonist" in data for data in files)
    assert len(found(sqlite_url, "parcel")) == 49


def test_delete_user_refuses_an_empty_user_id(store: str) -> None:
    with pytest.raises(Exception, match="user id is empty"):
        delete_user(store, "  ")


def test_a_failure_part_way_leaves_every_trace_whole_and_a_rerun_finishes(store: str) -> None:
    """The database refuses to delete old-2 (the second old trace by start time) in the middle
    of its batch, after its spans, scores and links went: that batch rolls back whole."""
    engine = get_engine(store)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("CREATE FUNCTION looplab_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                              "IF OLD.id = 'old-2' THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN OLD; END $$"))
            conn.execute(text("CREATE TRIGGER refuse BEFORE DELETE ON traces FOR EACH ROW "
                              "EXECUTE FUNCTION looplab_test_refuse()"))
        else:
            conn.execute(text("CREATE TRIGGER refuse BEFORE DELETE ON traces WHEN old.id = 'old-2' "
                              "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"))
    old_2 = {name: rows for name, rows in everything(store).items()}
    try:
        with pytest.raises(IncompleteRemoval, match="disk on fire") as failure:
            prune_traces(store, CUTOFF, batch_size=1)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse ON traces" if postgres else "DROP TRIGGER refuse"))
            if postgres:
                conn.execute(text("DROP FUNCTION looplab_test_refuse()"))

    # old-1 (older) went whole in its own batch; old-2 is exactly as it was, t-exp-i1 untouched.
    assert failure.value.removed.traces == 1
    assert "run the same command again" in str(failure.value)
    assert trace_ids(store) == ["new-1", "new-2", "old-2", "t-exp-i1"]
    after = everything(store)
    for table in ("spans", "trace_tags", "scores"):
        assert [r for r in after[table] if "old-2" in r] == [r for r in old_2[table] if "old-2" in r]
    assert count(store, Span, Span.trace_id == "old-1") == 0
    assert count(store, DatasetItem, DatasetItem.source_trace_id.is_not(None)) == 1  # new-1's
    assert count(store, ExperimentItem, ExperimentItem.trace_id == "t-exp-i1") == 1
    assert found(store, "zebrafish") == ["old-2", "t-exp-i1"]

    rest = prune_traces(store, CUTOFF)
    assert failure.value.removed + rest == with_search_rows(EXPECTED_PRUNE, store, 3)
    assert trace_ids(store) == sorted(RECENT)


def test_prune_needs_an_aware_time(store: str) -> None:
    with pytest.raises(Exception, match="aware"):
        prune_traces(store, CUTOFF.replace(tzinfo=None))


# --- the command line -----------------------------------------------------------------------------


def looplab(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def test_prune_command_reports_counts(store: str) -> None:
    result = looplab("prune", "--older-than", "90d", "--db", store, "--yes")

    assert result.exit_code == 0, result.output
    assert "Removed traces that started before" in result.stdout
    for line in ("3 traces", "9 spans", "6 tags", "7 scores", "1 annotation queue item", "1 annotation",
                 "1 dataset item unlinked from its trace (content kept)",
                 "1 experiment item unlinked from its trace (results kept)"):
        assert f"  {line}\n" in result.stdout
    assert trace_ids(store) == sorted(RECENT)


def test_prune_command_dry_run_and_a_declined_prompt_remove_nothing(store: str) -> None:
    before = everything(store)

    dry = looplab("prune", "--older-than", "13w", "--db", store, "--dry-run")
    declined = looplab("prune", "--older-than", "2160h", "--db", store, input="n\n")

    assert dry.exit_code == 0, dry.output
    assert "Would remove traces that started before" in dry.stdout
    assert "  3 traces\n" in dry.stdout and "Dry run: nothing was removed." in dry.stdout
    assert declined.exit_code == 1
    assert "  3 traces\n" in declined.stdout and "Remove them? This cannot be undone." in declined.stdout
    assert everything(store) == before


def test_delete_command_asks_then_erases(store: str) -> None:
    result = looplab("delete", "--user-id", "u1", "--db", store, input="y\n")

    assert result.exit_code == 0, result.output
    assert "About to remove traces of user 'u1'" in result.stdout
    assert "Removed traces of user 'u1'" in result.stdout and "  2 traces\n" in result.stdout
    assert "may still hold this user's data" in result.stdout
    assert trace_ids(store) == ["new-2", "old-2", "t-exp-i1"]
    again = looplab("delete", "--user-id", "u1", "--db", store, "--yes")
    assert again.exit_code == 0 and "nothing removed" in again.stdout


@pytest.mark.parametrize("value, says", [
    ("banana", "is not an age in hours, days or weeks (12h, 90d, 2w) or a date"),
    ("3m", "would count minutes"),
    ("-5d", "is not an age"),
    ("99999999999d", "too far back"),
])
def test_prune_command_explains_a_bad_age(sqlite_url: str, value: str, says: str) -> None:
    result = looplab("prune", "--older-than", value, "--db", sqlite_url, "--yes")

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --older-than") and says in result.stderr


def test_prune_accepts_a_date(store: str) -> None:
    date = (NOW - timedelta(days=150)).strftime("%Y-%m-%d")
    result = looplab("prune", "--older-than", date, "--db", store, "--yes")

    assert result.exit_code == 0, result.output
    assert trace_ids(store) == ["new-1", "new-2", "old-2", "t-exp-i1"]


def test_commands_refuse_a_missing_sqlite_file_and_an_empty_user(tmp_path: Any) -> None:
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    result = looplab("prune", "--older-than", "90d", "--db", missing, "--yes")
    assert result.exit_code == 2 and "There is no looplab database" in result.stderr
    assert not (tmp_path / "nope.db").exists()
    empty = looplab("delete", "--user-id", " ", "--db", missing, "--yes")
    assert empty.exit_code == 2 and "--user-id is empty" in empty.stderr


def _item_id(url: str, trace_id: str) -> str:
    with read_session(url) as session:
        return session.scalars(select(DatasetItem.item_id).where(DatasetItem.source_trace_id == trace_id)).one()
