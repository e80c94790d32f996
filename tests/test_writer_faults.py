"""Tracing never breaks the caller: storage that is missing, locked, full or refusing data is
logged and counted, and recording resumes when storage comes back."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import openai
import pytest
from sqlalchemy import event

import looplab
from looplab.config import Settings
from looplab.store.engine import dispose_engines, get_engine
from looplab.tracing import runtime
from looplab.tracing.records import SpanRecord
from tests.fakes.llm_server import FakeLLM
from tests.stored import stored_spans, stored_traces


@looplab.observe(name="work")
def work(x: int) -> int:
    return x * 2


def test_unopenable_database_never_reaches_the_caller(tmp_path: Path, fake_llm: FakeLLM,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    runtime.install(Settings(database_url=f"sqlite:///{a_file}/looplab.db", flush_interval=0.02))
    raw = openai.OpenAI(base_url=fake_llm.openai_base_url, api_key="k", max_retries=0)
    wrapped = looplab.wrap_openai(openai.OpenAI(base_url=fake_llm.openai_base_url, api_key="k", max_retries=0))
    with caplog.at_level(logging.WARNING, logger="looplab"):
        expected = raw.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        for _ in range(5):
            got = wrapped.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            assert got.choices[0].message.content == expected.choices[0].message.content
            assert work(2) == 4
        assert looplab.flush(timeout=5) is False
        assert looplab.flush(timeout=5) is False
    stats = looplab.stats()
    assert stats["write_failures"] >= 1 and "does not exist" in stats["last_error"]
    assert stats["pending_retry"] == 10  # kept for when storage comes back, not lost
    warnings = [r for r in caplog.records if "cannot write traces" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per retry


def test_full_disk_then_recovery_loses_nothing(sqlite_url: str) -> None:
    runtime.install(Settings(database_url=sqlite_url, flush_interval=0.02))
    engine = get_engine(sqlite_url)
    work(0)
    assert looplab.flush()

    def tiny_database(dbapi_connection, _record):  # SQLite answers "database or disk is full"
        dbapi_connection.execute("PRAGMA max_page_count=1")

    event.listen(engine, "connect", tiny_database)
    engine.dispose()
    for i in range(200):
        assert work(i) == i * 2
    assert looplab.flush(timeout=5) is False
    assert "full" in looplab.stats()["last_error"]

    event.remove(engine, "connect", tiny_database)
    engine.dispose()
    assert looplab.flush(timeout=10) is True
    assert len(stored_spans(sqlite_url)) == 201
    assert looplab.stats()["pending_retry"] == 0


def test_locked_database_does_not_block_the_caller(sqlite_url: str) -> None:
    runtime.install(Settings(database_url=sqlite_url, flush_interval=0.02))
    work(0)
    assert looplab.flush()  # the schema exists before the lock is taken
    path = sqlite_url.removeprefix("sqlite:///")
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(30)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert locked.wait(10)
    results = [work(i) for i in range(300)]
    finished_while_locked = not release.is_set()
    release.set()
    holder.join()
    assert finished_while_locked and results == [i * 2 for i in range(300)]
    assert looplab.flush(timeout=30)
    assert len(stored_spans(sqlite_url)) == 301


def test_full_queue_drops_and_counts_instead_of_blocking(sqlite_url: str) -> None:
    a_dir = Path(sqlite_url.removeprefix("sqlite:///")).parent / "a-directory.db"
    a_dir.mkdir()
    runtime.install(Settings(database_url=f"sqlite:///{a_dir}", max_queue_size=50, flush_interval=0.02))
    for i in range(500):
        assert work(i) == i * 2
    looplab.flush(timeout=2)
    stats = looplab.stats()
    assert stats["dropped"] >= 400
    assert stats["pending_retry"] + stats["queued"] <= 50


def test_rows_the_database_refuses_do_not_sink_the_batch(traced: str, caplog: pytest.LogCaptureFixture) -> None:
    work(1)
    assert looplab.flush()
    [first] = stored_spans(traced)
    duplicate = SpanRecord(first["id"], first["trace_id"], None, "span", "duplicate-id")
    duplicate.start_ns = duplicate.end_ns = 1
    with caplog.at_level(logging.WARNING, logger="looplab"):
        runtime.writer().submit(duplicate)
        for i in range(20):
            work(i)
        assert looplab.flush()
    assert len(stored_spans(traced)) == 21
    assert looplab.stats()["rejected"] == 1
    assert any(first["id"] in r.getMessage() for r in caplog.records)


def test_an_sdk_response_that_cannot_be_read_still_records_the_span(traced: str) -> None:
    def broken_extract(record: SpanRecord) -> None:
        raise KeyError("unexpected response shape")

    from looplab.tracing.context import finish_span, open_span

    record = open_span("llm", "new-sdk-method")
    assert record is not None
    record.extract = broken_extract
    finish_span(record)
    assert looplab.flush()
    [span] = stored_spans(traced)
    assert span["name"] == "new-sdk-method" and span["attributes_json"] == {"looplab.extract_failed": True}


def test_postgres_down_is_counted_and_the_caller_unaffected(postgres_url: str) -> None:
    runtime.install(Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
                             flush_interval=0.02))
    assert [work(i) for i in range(10)] == [i * 2 for i in range(10)]
    assert looplab.flush(timeout=10) is False
    assert looplab.stats()["write_failures"] >= 1
    dispose_engines()


def test_exit_flushes_what_is_queued(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'exit.db'}"
    script = (
        "import looplab\n"
        f"looplab.configure(database_url={url!r}, flush_interval=60)\n"
        "for i in range(100):\n"
        "    with looplab.trace('at-exit'):\n"
        "        pass\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert len(stored_traces(url)) == 100
    dispose_engines()


def test_a_sqlite_that_binds_few_values_per_statement_still_gets_every_row(sqlite_url: str) -> None:
    # Rows go in many to a statement; SQLite before 3.32 allowed only 999 values per statement.
    runtime.install(Settings(database_url=sqlite_url, flush_interval=0.02))
    engine = get_engine(sqlite_url)

    def old_limit(dbapi_connection, _record):
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    event.listen(engine, "connect", old_limit)
    engine.dispose()
    for i in range(301):
        with looplab.trace("few-values", tags=["a", "b"]):
            work(i)
    assert looplab.flush()
    assert len(stored_traces(sqlite_url)) == 301
    assert len(stored_spans(sqlite_url)) == 602
    assert looplab.stats()["rejected"] == 0
    event.remove(engine, "connect", old_limit)


def test_background_checkpoints_lose_nothing_and_stop_with_the_writer(sqlite_url: str) -> None:
    # Past a few hundred records a second connection copies the write-ahead log into the
    # database file from a thread of its own; it must not outlive its writer.
    runtime.install(Settings(database_url=sqlite_url, flush_interval=0.02))
    for i in range(1500):
        assert work(i) == i * 2
    assert looplab.flush()
    checkpoints = runtime.writer()._checkpointer._thread
    assert checkpoints is not None and checkpoints.name == "looplab-writer-checkpoint"
    runtime.install(Settings(database_url=sqlite_url))  # closes the writer
    checkpoints.join(timeout=30)
    assert not checkpoints.is_alive()
    assert len(stored_spans(sqlite_url)) == 1500
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_absent_values_are_stored_as_null_and_present_ones_as_given(sqlite_url: str) -> None:
    # On SQLite the writer binds an empty blob for None and the INSERT turns it back into NULL.
    runtime.install(Settings(database_url=sqlite_url, flush_interval=0.02))
    with looplab.trace("nulls", user_id="u1", tags=["t"]):
        work(3)
    assert looplab.flush()
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        kinds = conn.execute("SELECT typeof(parent_id), typeof(params_json), typeof(error), typeof(cost_usd), "
                             "typeof(input_json), typeof(duration_ms), typeof(name) FROM spans ORDER BY parent_id").fetchall()
        assert kinds == [("null", "null", "null", "null", "null", "real", "text"),
                         ("text", "null", "null", "null", "text", "real", "text")]
        assert conn.execute("SELECT typeof(user_id), typeof(session_id), typeof(span_count), typeof(tags_json) "
                            "FROM traces").fetchall() == [("text", "null", "integer", "text")]
        assert conn.execute("SELECT tag FROM trace_tags").fetchall() == [("t",)]


def test_flush_waits_for_a_record_whose_thread_is_still_starting_the_writer(sqlite_url: str) -> None:
    runtime.install(Settings(database_url=sqlite_url, flush_interval=0.02))
    writer = runtime.writer()
    results: list[bool] = []
    with writer._start_lock:  # the first record's thread is inside the writer's start, not done yet
        submitter = threading.Thread(target=work, args=(7,))
        submitter.start()
        deadline = time.monotonic() + 5
        while not writer._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer._queue  # queued, the writer not started
        flusher = threading.Thread(target=lambda: results.append(looplab.flush(timeout=10)))
        flusher.start()
        flusher.join(timeout=0.3)  # it used to return False at once here: "not written"
    submitter.join(timeout=10)
    flusher.join(timeout=10)
    assert results == [True]
    assert len(stored_spans(sqlite_url)) == 1
