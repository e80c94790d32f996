"""The background writer: the only place tracing touches the database.

The caller's thread appends a record to a bounded deque and returns; this thread wakes on a timer
(or when a batch's worth is waiting) and turns records into rows, and a second one inserts each
batch in one transaction, so that converting the next batch (Python, holding the GIL) overlaps
with SQLite inserting the last one (C, GIL released). Waking per record would cost the caller
~130 µs of thread switching on 2 cores (shared/NOTES.md).

Failures never reach the caller: rows that storage refuses are kept (bounded) and retried with
backoff; a batch that fails on bad data is retried row by row in savepoints so one bad row does
not sink the rest; everything is counted in ``stats()``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from itertools import chain
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from looplab.config import Settings
from looplab.errors import StoreError
from looplab.store.engine import get_engine
from looplab.store.stale_days import forget_days_of_calls, forget_days_of_traces
from looplab.tracing.records import ScoreRecord, SpanRecord
from looplab.tracing.rows import (
    ID_POSITION,
    SCORE_COLUMNS,
    SPAN_COLUMNS,
    TAG_COLUMNS,
    TRACE_COLUMNS,
    RowBuilder,
    Rows,
    SqliteTime,
    naive_utc,
)

log = logging.getLogger("looplab")

_MAX_BACKOFF = 5.0
# Records converted between two hand-overs of the GIL (about half a millisecond of converting).
_YIELD_EVERY = 32


class _FlushRequest:
    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


def _answer(flushes: list[_FlushRequest], ok: bool) -> None:
    for request in flushes:
        request.ok = ok
        request.done.set()


class _Write:
    """One write handed to the insert thread; its flush requests are answered when it is done."""

    __slots__ = ("done", "flushes", "force", "ok", "write")

    def __init__(self, write: Callable[[bool], bool], force: bool, flushes: list[_FlushRequest]) -> None:
        self.write = write
        self.force = force
        self.flushes = flushes
        self.done = threading.Event()
        self.ok = False

    def run(self) -> None:
        try:
            self.ok = self.write(self.force)
        except Exception:  # a bug here must not leave flush() waiting
            log.exception("looplab: unexpected error in the trace writer")
            self.ok = False
        finally:
            _answer(self.flushes, self.ok)
            self.done.set()

    def wait(self) -> bool:
        self.done.wait()
        return self.ok


class _WriteThread:
    """A second background thread that runs the writes, one at a time, in the order given.

    When it cannot be started (no threads left), writes run in line on the writer thread.
    """

    def __init__(self) -> None:
        self._jobs: deque[_Write | None] = deque()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    def start(self, write: Callable[[bool], bool], force: bool, flushes: list[_FlushRequest]) -> _Write:
        job = _Write(write, force, flushes)
        if self._thread is None and not self._failed:
            thread = threading.Thread(target=self._run, name="looplab-writer-sql", daemon=True)
            try:
                thread.start()
            except RuntimeError as err:
                log.debug("looplab: could not start the insert thread, writing in line: %s", err)
                self._failed = True
            else:
                self._thread = thread
        if self._thread is None:
            job.run()
            return job
        self._jobs.append(job)
        self._ready.set()
        return job

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.append(None)
            self._ready.set()

    def _run(self) -> None:
        _lower_this_threads_priority()
        jobs = self._jobs
        while True:
            self._ready.wait()
            self._ready.clear()
            while jobs:
                job = jobs.popleft()
                if job is None:
                    return
                job.run()


class Checkpointer:
    """Copies SQLite's write-ahead log into the database file from a thread of its own.

    Left to SQLite, the connection whose commit takes the log past 1,000 pages copies them there
    and waits for two fsyncs: in the trace writer that was a third of its insert thread's time,
    spent with the next batch waiting. Here a separate connection runs passive checkpoints (they
    never block the writer nor wait for it) after every few hundred records written, so the
    copying and the fsyncs overlap with inserting. SQLite's own checkpoint stays on as the
    bound on the log's size: when it comes, most pages are already copied and synced.
    """

    _EVERY = 500  # records written between checkpoints

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._off = False
        self._since = 0

    def written(self, records: int) -> None:
        """Note records just committed; wake the thread when enough have been since it last ran."""
        self._since += records
        if self._since < self._EVERY or self._off:
            return
        self._since = 0
        if self._thread is None:
            thread = threading.Thread(target=self._run, name="looplab-writer-checkpoint", daemon=True)
            try:
                thread.start()
            except RuntimeError as err:  # no threads left: SQLite checkpoints on its own, as before
                log.debug("looplab: could not start the checkpoint thread: %s", err)
                self._off = True
                return
            self._thread = thread
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _run(self) -> None:
        _lower_this_threads_priority()
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    if conn is None:
                        # mode=rw: never create a database that has gone away.
                        conn = sqlite3.connect(f"file:{urllib.parse.quote(self._path)}?mode=rw", uri=True,
                                               isolation_level=None, check_same_thread=False)
                        conn.execute("PRAGMA synchronous=NORMAL")
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as err:  # SQLite's own checkpoints still run; nothing is lost
                    log.debug("looplab: background checkpoint failed: %s", err)
                    if conn is not None:
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                conn.close()


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL, or ``None`` for another database (or one not named by a plain path)."""
    try:
        parsed = make_url(url)
    except Exception:  # a bad URL is reported when the writer first tries to open it
        return None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return os.path.abspath(os.path.expanduser(database))


class Writer:
    """Writes queued records to the database named by the settings, off the caller's thread."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.database_url
        self._max = settings.max_queue_size
        self._batch = settings.batch_size
        self._interval = settings.flush_interval
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._closing = False
        self._writes = _WriteThread()
        try:
            is_sqlite = make_url(self._url).get_backend_name() == "sqlite"
        except Exception:  # a bad URL is reported when the writer first tries to open it
            is_sqlite = False
        path = sqlite_path(self._url)
        self._checkpointer = Checkpointer(path) if path else None
        self._builder = RowBuilder(settings.redact, SqliteTime() if is_sqlite else naive_utc)
        self._pending = Rows()  # converted rows storage refused so far
        self._failing_since: float | None = None
        self._retry_at = 0.0
        self._backoff = 0.25
        self._written = 0
        self._dropped = 0
        self._rejected = 0
        self._write_failures = 0
        self._last_error: str | None = None

    # --- the caller's side: cheap, never blocks, never raises -----------------------------------

    def submit(self, record: SpanRecord | ScoreRecord) -> None:
        """Queue a record; when the queue is full the record is dropped and counted."""
        queue = self._queue
        if len(queue) >= self._max or self._closing:
            with self._count_lock:
                self._dropped += 1
            return
        queue.append(record)
        if self._thread is None:
            self._start()
        elif len(queue) == self._batch:
            self._wake.set()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every record queued before this call is written; False if some could not be."""
        if self._thread is None and self._queue and not self._closing:
            # Another thread queued the first record and is still starting the writer: start it (or
            # wait for that start) here rather than report its record as unwritten.
            self._start()
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._queue and not len(self._pending)
        request = _FlushRequest()
        self._queue.append(request)
        self._wake.set()
        if not request.done.wait(timeout):
            return False
        return request.ok

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (within ``timeout``) and stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self.flush(timeout=timeout)
        self._closing = True
        self._wake.set()
        thread.join(timeout=1.0)
        unwritten = len(self._queue) + len(self._pending)
        if unwritten:
            log.warning("looplab: %d trace records could not be written before exit", unwritten)

    def stats(self) -> dict[str, Any]:
        """Counters since start: waiting, held for retry, written, dropped, rejected, failures, last error."""
        return {
            "queued": len(self._queue),
            "pending_retry": len(self._pending),
            "written": self._written,
            "dropped": self._dropped,
            "rejected": self._rejected,
            "write_failures": self._write_failures,
            "redaction_failures": self._builder.redaction_failures,
            "last_error": self._last_error,
        }

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="looplab-writer", daemon=True)
                thread.start()
                self._thread = thread

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        _lower_this_threads_priority()
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # a bug here must not kill the thread and silently stop recording
                log.exception("looplab: unexpected error in the trace writer")
            if self._closing and not self._queue:
                self._writes.stop()
                if self._checkpointer is not None:
                    self._checkpointer.stop()
                return

    def _drain(self) -> None:
        """Convert and write batch after batch; converting the next batch while the last is written.

        Converting is Python (it holds the GIL) while most of an insert is SQLite's C code (it
        releases the GIL), so on two cores the two overlap. Only one write runs at a time, and the
        state it touches (pending rows, retry timing, counters) is left alone here until it is done.
        """
        queue = self._queue
        running: _Write | None = None
        try:
            while queue or (running is None and len(self._pending) and time.monotonic() >= self._retry_at):
                rows, flushes = self._convert(queue)
                if running is not None:
                    ok = running.wait()
                    failed_alone = not ok and not running.flushes
                    running = None
                    if failed_alone:
                        # Storage is down: keep these rows, write now only if a flush asks, and
                        # otherwise wait for the timer rather than spin.
                        self._hold(rows)
                        if flushes:
                            _answer(flushes, self._write_pending(force=True))
                        return
                self._hold(rows)
                running = self._writes.start(self._write_pending, bool(flushes), flushes)
                if len(rows) >= _YIELD_EVERY:
                    time.sleep(0)  # let the insert thread take the GIL and start, before converting on
                if not running.flushes and running.done.is_set() and not running.ok:
                    running = None
                    return  # storage is down (written in line): wait for the timer rather than spin
        finally:
            if running is not None:
                running.wait()

    def _convert(self, queue: deque[Any]) -> tuple[Rows, list[_FlushRequest]]:
        """The next batch of queued records as rows, and the flush requests met on the way."""
        rows = Rows()
        flushes: list[_FlushRequest] = []
        converted = 0
        batch = self._batch
        while queue and len(rows) < batch:
            converted += 1
            if converted % _YIELD_EVERY == 0:
                # Converting is pure Python and holds the GIL: let the insert thread and the
                # app's threads have it rather than wait out the interpreter's 5 ms switch
                # interval. A short sleep, not os.sched_yield(): a thread waiting for the GIL
                # is woken by every release but, with a core to itself, this thread takes the
                # GIL back before the waiter runs, and each wake-up restarts the waiter's 5 ms
                # (an insert thread beside such a yielding loop went 6 times slower than beside
                # one that never yields). Sleeping, the waiter gets the GIL; Linux's timer
                # slack makes each sleep ~50-100 µs, about 5% of the time between two.
                time.sleep(0)
            record = queue.popleft()
            if isinstance(record, _FlushRequest):
                flushes.append(record)
                continue
            try:
                self._builder.add(record, rows)
            except Exception:
                with self._count_lock:
                    self._rejected += 1
                log.exception("looplab: could not convert a trace record; it is dropped")
        return rows, flushes

    def _hold(self, rows: Rows) -> None:
        if len(self._pending) + len(rows) > self._max:
            # Storage has been refusing writes for a while: keep the oldest, drop what is new.
            with self._count_lock:
                self._dropped += len(rows)
            return
        self._pending.extend(rows)

    def _write_pending(self, force: bool) -> bool:
        pending = self._pending
        if not len(pending):
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        try:
            engine = get_engine(self._url)
            try:
                with engine.begin() as conn:
                    _insert_all(conn, pending)
            except SQLAlchemyError as err:
                if is_storage_failure(err):
                    raise
                # Some row is bad: find it in a fresh transaction, row by row.
                with engine.begin() as conn:
                    self._insert_row_by_row(conn, pending)
        except (SQLAlchemyError, StoreError, OSError) as err:
            self._storage_failed(err)
            return False
        self._written += len(pending)
        if self._checkpointer is not None:
            self._checkpointer.written(len(pending))
        self._pending = Rows()
        if self._failing_since is not None:
            log.warning("looplab: storage is back after %.1f s; recording resumed",
                        time.monotonic() - self._failing_since)
            self._failing_since = None
        self._backoff = 0.25
        return True

    def _storage_failed(self, err: BaseException) -> None:
        self._write_failures += 1
        message = str(getattr(err, "orig", None) or err)
        self._last_error = message
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            # Logged once per outage, not once per retry.
            log.warning("looplab: cannot write traces (%s); keeping up to %d records and retrying", message, self._max)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF)

    def _insert_row_by_row(self, conn: Connection, rows: Rows) -> None:
        kept = Rows()
        for key in ("spans", "traces", "scores"):
            for row in getattr(rows, key):
                try:
                    with conn.begin_nested():
                        _insert(conn, key, [row])
                    getattr(kept, key).append(row)
                except SQLAlchemyError as err:
                    if is_storage_failure(err):
                        raise
                    with self._count_lock:
                        self._rejected += 1
                    log.warning("looplab: %s %s rejected by the database: %s", key[:-1], row[ID_POSITION[key]],
                                getattr(err, "orig", None) or err)
        if rows.tags:
            _insert(conn, "tags", rows.tags)
        rows.spans, rows.traces, rows.scores = kept.spans, kept.traces, kept.scores


def _lower_this_threads_priority() -> None:
    """Make the OS prefer the app's threads over this one when cores are scarce.

    On Linux, niceness is per thread; elsewhere this does nothing. Writing traces is background
    work: it may wait, the app's requests should not.
    """
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:
        return
    try:
        setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except OSError as err:  # not permitted here: the writer runs at normal priority
        log.debug("looplab: could not lower the writer thread's priority: %s", err)


def is_storage_failure(err: SQLAlchemyError) -> bool:
    """Whether the database is unreachable or unwritable, as opposed to refusing this data."""
    if isinstance(err, OperationalError):
        return True
    return isinstance(err, DBAPIError) and bool(err.connection_invalidated)


def _insert_all(conn: Connection, rows: Rows) -> None:
    for key in ("spans", "traces", "tags", "scores"):
        batch = getattr(rows, key)
        if batch:
            _insert(conn, key, batch)


_COLUMNS = {"spans": ("spans", SPAN_COLUMNS), "traces": ("traces", TRACE_COLUMNS),
            "tags": ("trace_tags", TAG_COLUMNS), "scores": ("scores", SCORE_COLUMNS),
            # Spans that may already be stored (an OTLP exporter retrying a batch): those are skipped.
            "new_spans": ("spans", SPAN_COLUMNS)}
# Keys whose rows are skipped when their primary key is already stored, instead of failing.
_SKIP_EXISTING = frozenset({"tags", "new_spans"})
_statements: dict[tuple[str, str, int], str] = {}
# Rows per multi-row INSERT on SQLite: powers of two, so a batch of n rows takes at most one
# statement per set bit of n (a 1,000-span batch: 6 for spans, 6 for its 250 traces) and the
# driver's statement cache (by text) holds at most 10 per table. Each statement is one round trip
# for the GIL, which another busy thread can hold for up to the 5 ms switch interval.
_SQLITE_CHUNKS = (512, 256, 128, 64, 32, 16, 8, 4, 2, 1)
_SQLITE_DEFAULT_MAX_VARIABLES = 999  # SQLite before 3.32 allowed no more bound values a statement
_NULL = bytearray()  # stands for NULL in SQLite inserts; never changed


def insert_rows(conn: Connection, key: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ready-made row tuples (columns as in ``looplab.tracing.rows``) the writer's fast way.

    ``key`` is ``"spans"``, ``"traces"``, ``"tags"``, ``"scores"``, or ``"new_spans"``: spans
    whose (trace id, span id) is already stored are skipped rather than failing the statement.
    """
    if rows:
        _insert(conn, key, rows)


def _insert(conn: Connection, key: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ready-made row tuples; spans and traces of a closed day make the monitoring rollups
    forget that day (``looplab.store.stale_days``, about 0.5 µs a span).

    On SQLite, many rows per ``INSERT ... VALUES (...), (...)``: the driver's ``executemany``
    releases and takes back the GIL around every row, and each time it must wait for the app's
    threads (up to the 5 ms switch interval); one statement for hundreds of rows takes it back
    once, and is faster too. Elsewhere, the driver's own ``executemany``.
    """
    _insert_rows_of(conn, key, rows)
    # After the rows are written (the traces' helper reads their calls' days).
    if key == "traces":
        forget_days_of_traces(conn, ((row[0], row[2]) for row in rows))  # id, start_time
    elif key in ("spans", "new_spans"):
        forget_days_of_calls(conn, ((row[3], row[5]) for row in rows))  # kind, start_time


def _insert_rows_of(conn: Connection, key: str, rows: list[tuple[Any, ...]]) -> None:
    dialect = conn.dialect
    if dialect.name != "sqlite":
        conn.exec_driver_sql(_statement(conn, key, 1), rows)
        return
    limit = _max_variables(conn)
    width = len(_COLUMNS[key][1])
    start, total = 0, len(rows)
    for size in _SQLITE_CHUNKS:
        if size > 1 and size * width > limit:
            continue
        if total - start < size:
            continue
        sql = _statement(conn, key, size)
        while total - start >= size:
            end = start + size
            # NULLs go in as the empty-blob marker the statement turns back into NULL (see _statement).
            conn.exec_driver_sql(sql, tuple([_NULL if v is None else v for v in chain.from_iterable(rows[start:end])]))
            start = end


def _statement(conn: Connection, key: str, count: int) -> str:
    dialect = conn.dialect
    sql = _statements.get((dialect.name, key, count))
    if sql is None:
        table, columns = _COLUMNS[key]
        quote = dialect.identifier_preparer.quote
        marker = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
        if dialect.name == "sqlite":
            # The stdlib driver binds None through its adapter lookup (a tuple built from a format
            # string, a dict probe, two failed attribute lookups whose AttributeError messages are
            # formatted and dropped): 400 ns a value against 25-120 for numbers and text, about 4 µs
            # of each span's insert, with the GIL held. _insert passes an empty bytearray (bound
            # directly, as a zero-length blob) instead, which NULLIF turns back into NULL. Nothing
            # looplab stores is an empty blob.
            marker = f"NULLIF({marker}, x'')"
        values = f"({', '.join([marker] * len(columns))})"
        # The same tag twice on one trace is one tag; a span sent twice is one span.
        conflict = " ON CONFLICT DO NOTHING" if key in _SKIP_EXISTING else ""
        # SQLite: OR FAIL, not the default OR ABORT. To undo just the failed statement, ABORT
        # makes every multi-row INSERT copy each page it touches into a statement journal (a
        # temporary file): three times the data the rows themselves write. A failed statement
        # here always rolls back its whole transaction (then rows go in one by one, each in a
        # savepoint), so the partial statement FAIL leaves behind is never committed.
        verb = "INSERT OR FAIL INTO" if dialect.name == "sqlite" else "INSERT INTO"
        sql = _statements[(dialect.name, key, count)] = (
            f"{verb} {quote(table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES {', '.join([values] * count)}{conflict}"
        )
    return sql


def _max_variables(conn: Connection) -> int:
    """How many values one SQLite statement may bind on this connection."""
    dbapi = conn.connection.dbapi_connection
    try:
        return int(dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[union-attr]
    except Exception:  # not the stdlib driver
        return _SQLITE_DEFAULT_MAX_VARIABLES
