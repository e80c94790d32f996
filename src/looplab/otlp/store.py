"""Writing mapped OTLP spans: one transaction per export request, each trace's row upserted.

Spans go in with the tracing writer's multi-row inserts, skipping any (trace id, span id) already
stored: an exporter that retries a batch adds nothing. The ``traces`` row is then rebuilt from
the trace's stored spans (count, errors, tokens, cost, first start, last end), so a trace whose
spans come in several batches, in any order, ends with the same totals as if they had come in
one. Fields only some spans carry are merged: the root span (no parent) names the trace and gives
its status, input and output; session, user, release, environment, metadata and tags are kept
from earlier batches when a later one does not name them.

Concurrency: on SQLite one write transaction runs at a time anyway (``BEGIN IMMEDIATE``); a lock
per database keeps this process's requests queued on it rather than polling SQLite's busy
handler. On PostgreSQL, each transaction takes an advisory lock per trace it touches (in sorted
order, so two requests never deadlock) before inserting, so the rebuild of a trace's row always
sees the spans of every request committed before it.
"""

from __future__ import annotations

import logging
import threading

try:
    import fcntl
except ImportError:  # Windows: SQLite's own locking alone
    fcntl = None  # type: ignore[assignment]
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from looplab.config import Redactor
from looplab.errors import StoreError
from looplab.explorer.traces import refresh_indexed_traces
from looplab.otlp.attributes import OTEL_RESOURCE
from looplab.otlp.mapping import MappedSpan
from looplab.store.engine import IDS_PER_QUERY, get_engine
from looplab.store.stale_days import forget_days_of_traces
from looplab.tracing.payloads import dump_json
from looplab.tracing.rows import SPAN_COLUMNS, SqliteTime, naive_utc, payload_json
from looplab.tracing.writer import (
    Checkpointer,
    insert_rows,
    is_storage_failure,
    sqlite_path,
)

log = logging.getLogger("looplab")

_sqlite_locks: dict[str, threading.Lock] = {}
_lock_files: dict[str, BinaryIO] = {}
_checkpointers: dict[str, Checkpointer | None] = {}
_locks_lock = threading.Lock()


@dataclass
class StoreResult:
    """What became of a batch: spans written (or already there), the spans the database refused
    (one reason each), and other problems (a trace's summary row refused)."""

    stored: int = 0
    rejected: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def store_spans(url: str, spans: list[MappedSpan], redact: Redactor | None = None) -> StoreResult:
    """Store ``spans`` and upsert their traces in one transaction.

    Inputs and outputs go through ``redact`` (the user's hook, as for spans recorded in code)
    before they are stored. A span the database refuses is rejected on its own (the batch is
    retried span by span, each in a savepoint). Raises ``StoreError`` when the database cannot be
    written at all.
    """
    result = StoreResult()
    if not spans:
        return result
    spans = _first_of_each(spans)
    engine = get_engine(url)
    is_sqlite = engine.dialect.name == "sqlite"
    # SqliteTime caches the formatted second: one per call, as requests run on several threads.
    to_db = SqliteTime() if is_sqlite else naive_utc
    resources: dict[int, str] = {}
    rows = [_span_row(span, to_db, resources, redact) for span in spans]
    try:
        with _database_lock(url) if is_sqlite else nullcontext():
            try:
                with engine.begin() as conn:
                    _lock_traces(conn, spans)
                    fresh = _fresh_traces(conn, spans)
                    insert_rows(conn, "new_spans", rows)
                    _upsert_traces(conn, spans, rows, fresh=fresh)
                result.stored = len(spans)
                _checkpoint(url, len(spans))
            except SQLAlchemyError as err:
                if is_storage_failure(err):
                    raise
                log.warning("looplab: an OTLP batch was refused (%s); storing its spans one by one",
                            getattr(err, "orig", None) or err)
                with engine.begin() as conn:
                    _lock_traces(conn, spans)
                    fresh = _fresh_traces(conn, spans)
                    kept = _insert_one_by_one(conn, spans, rows, result)
                    _upsert_traces(conn, [spans[i] for i in kept], [rows[i] for i in kept], fresh=fresh,
                                   problems=result.problems)
                result.stored = len(kept)
    except SQLAlchemyError as err:
        raise StoreError(f"Cannot store OTLP spans: {getattr(err, 'orig', None) or err}") from err
    return result


def _checkpoint(url: str, written: int) -> None:
    """Let the tracing writer's checkpointer copy SQLite's log into the database off this thread.

    Left to SQLite, a commit now and then copies a 16 MB log and waits for its fsyncs while every
    other request queues behind it (see ``looplab.tracing.writer.Checkpointer``).
    """
    checkpointer = _checkpointers.get(url, False)
    if checkpointer is False:
        path = sqlite_path(url)
        with _locks_lock:
            checkpointer = _checkpointers.setdefault(url, Checkpointer(path) if path else None)
    if checkpointer is not None:
        checkpointer.written(written)  # type: ignore[union-attr]


def _first_of_each(spans: list[MappedSpan]) -> list[MappedSpan]:
    """One span per (trace id, span id): a span repeated in a batch is stored once, the first."""
    seen: dict[tuple[str, str], MappedSpan] = {}
    for span in spans:
        seen.setdefault((span.trace_id, span.span_id), span)
    return list(seen.values()) if len(seen) != len(spans) else spans


@contextmanager
def _database_lock(url: str) -> Iterator[None]:
    """Hold the right to write OTLP spans into a SQLite file, in this process and across processes.

    SQLite lets one write transaction run at a time; one left waiting polls with sleeps of 1 to
    100 ms, so two gateway workers writing into one file spent much of their time asleep. A lock
    file next to the database hands the turn over as soon as the holder commits.
    """
    lock = _sqlite_locks.get(url)
    if lock is None:
        with _locks_lock:
            lock = _sqlite_locks.setdefault(url, threading.Lock())
    with lock:
        handle = _lock_files.get(url)
        if handle is None and fcntl is not None:
            path = sqlite_path(url)
            if path is not None:
                try:
                    handle = _lock_files[url] = open(f"{path}-otlp.lock", "a+b")  # noqa: SIM115 (kept open)
                except OSError:
                    handle = None  # e.g. a read-only folder: SQLite's own locking still holds
        if handle is None:
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _attributes_json(span: MappedSpan, resources: dict[int, str]) -> str | None:
    """The span's attributes as JSON, with its resource's attributes under ``otel.resource``.

    Spans of a request share their resource: it is serialised once and spliced in.
    """
    text = dump_json(span.attributes) if span.attributes else None
    if not span.resource:
        return text
    resource = resources.get(id(span.resource))
    if resource is None:
        resource = resources[id(span.resource)] = dump_json(span.resource) or "{}"
    tail = f'"{OTEL_RESOURCE}":{resource}}}'
    return f"{text[:-1]},{tail}" if text and text != "{}" else "{" + tail


def _span_row(span: MappedSpan, to_db: Any, resources: dict[int, str], redact: Redactor | None) -> tuple[Any, ...]:
    """The span as a row tuple in ``looplab.tracing.rows.SPAN_COLUMNS`` order; payloads masked
    (and redacted)."""
    return (
        span.trace_id, span.span_id, span.parent_id, span.kind, span.name, to_db(span.start_ns), to_db(span.end_ns),
        span.duration_ms, payload_json(span.input, redact)[0], payload_json(span.output, redact)[0], span.provider,
        span.model,
        dump_json(span.params) if span.params else None, span.finish_reason, span.input_tokens, span.output_tokens,
        span.cached_tokens, span.cost_usd, span.pricing_source, span.ttft_ms, span.status, span.error,
        _attributes_json(span, resources),
    )


def _lock_traces(conn: Connection, spans: list[MappedSpan]) -> None:
    if conn.dialect.name != "postgresql":
        return
    # The last 16 hex digits of a trace id are random in OpenTelemetry's ids and in looplab's own;
    # two traces sharing a key only wait for each other.
    keys = sorted({int.from_bytes(bytes.fromhex(s.trace_id[-16:]), "big", signed=True) for s in spans})
    conn.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"), {"keys": keys})


def _insert_one_by_one(conn: Connection, spans: list[MappedSpan], rows: list[tuple[Any, ...]],
                       result: StoreResult) -> list[int]:
    """Insert span by span, each in a savepoint; the indexes of those stored."""
    kept = []
    for index, (span, row) in enumerate(zip(spans, rows)):
        try:
            with conn.begin_nested():
                insert_rows(conn, "new_spans", [row])
        except SQLAlchemyError as err:
            if is_storage_failure(err):
                raise
            reason = str(getattr(err, "orig", None) or err).splitlines()[0]
            log.warning("looplab: OTLP span %s of trace %s refused by the database: %s", span.span_id,
                        span.trace_id, reason)
            result.rejected.append(f"span {span.span_id}: refused by the database: {reason}")
        else:
            kept.append(index)
    return kept


# --- the traces rows -----------------------------------------------------------------------------
#
# Plain SQL that SQLite (3.24+) and PostgreSQL both take, run through the driver: SQLAlchemy's
# per-value processing of a few hundred trace rows a request cost more than the database did.

_TRACE_COLUMNS = ("id", "name", "start_time", "end_time", "duration_ms", "session_id", "user_id", "release",
                  "environment", "tags_json", "metadata_json", "input_json", "output_json", "status", "error",
                  "span_count", "error_count", "input_tokens", "output_tokens", "cost_usd")
# Rebuilt from the stored spans: replace what is stored.
_TOTALS = ("start_time", "end_time", "duration_ms", "span_count", "error_count", "input_tokens", "output_tokens",
           "cost_usd")
# Not every batch carries them: a NULL keeps the stored value.
_MERGED = ("session_id", "user_id", "release", "environment", "metadata_json", "tags_json", "input_json",
           "output_json")
_statements: dict[tuple[str, str], str] = {}
# Where a span row tuple (``SPAN_COLUMNS`` order) holds what the trace row is built from.
_PARENT, _START, _END, _INPUT, _OUTPUT, _INPUT_TOKENS, _OUTPUT_TOKENS, _COST, _STATUS = (
    SPAN_COLUMNS.index(c) for c in ("parent_id", "start_time", "end_time", "input_json", "output_json", "input_tokens",
                                    "output_tokens", "cost_usd", "status"))
# How a batch's trace row is merged, by what is known of the trace's root span (no parent).
ROOT_IN_BATCH, ROOT_STORED, NO_ROOT = "root_in_batch", "root_stored", "no_root"


def _upsert_sql(conn: Connection, mode: str) -> str:
    """INSERT ... ON CONFLICT (id) DO UPDATE for one trace row.

    The root span names the trace and gives its status and error: with the root in this batch
    they are replaced; with the root stored by an earlier batch they stay; with no root yet the
    name first given stays, the status says whether any span failed and a failed span's error
    is kept.
    """
    dialect = conn.dialect
    key = (dialect.name, mode)
    sql = _statements.get(key)
    if sql is None:
        marker = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
        updates = [f"{c} = excluded.{c}" for c in _TOTALS]
        updates += [f"{c} = COALESCE(excluded.{c}, traces.{c})" for c in _MERGED]
        if mode == ROOT_IN_BATCH:
            updates += ["name = excluded.name", "status = excluded.status", "error = excluded.error"]
        elif mode == NO_ROOT:
            updates += ["name = COALESCE(traces.name, excluded.name)", "status = excluded.status",
                        "error = COALESCE(excluded.error, traces.error)"]
        sql = _statements[key] = (
            f"INSERT INTO traces ({', '.join(_TRACE_COLUMNS)}) VALUES ({', '.join([marker] * len(_TRACE_COLUMNS))}) "
            f"ON CONFLICT (id) DO UPDATE SET {', '.join(updates)}"
        )
    return sql


def _rows_for_traces(conn: Connection, sql: str, ids: tuple[str, ...]) -> list[Any]:
    """The rows of ``sql`` (its ``{ids}`` is the ``IN`` list) for ``ids``, asked for a few hundred
    ids at a time (an export of 16 MB can name tens of thousands of traces); rows of one trace
    come from one query."""
    marker = "?" if conn.dialect.paramstyle in ("qmark", "numeric") else "%s"
    rows: list[Any] = []
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start:start + IDS_PER_QUERY]
        rows += conn.exec_driver_sql(sql.format(ids=f"({', '.join([marker] * len(chunk))})"), chunk).all()
    return rows


def _moment(value: Any) -> datetime:
    # SQLite hands timestamps back as the text they were stored as; PostgreSQL as datetimes.
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _fresh_traces(conn: Connection, spans: list[MappedSpan]) -> set[str]:
    """The traces of ``spans`` with no span stored yet (read before inserting, under the lock that
    keeps other writers of these traces out): their totals are those of the batch alone."""
    ids = tuple(sorted({s.trace_id for s in spans}))
    stored = {row[0] for row in _rows_for_traces(conn, "SELECT DISTINCT trace_id FROM spans WHERE trace_id IN {ids}",
                                                 ids)}
    return set(ids) - stored


def _batch_totals(rows: list[tuple[Any, ...]], indexes: list[int]) -> tuple[Any, ...]:
    """What the totals query answers for a trace whose stored spans are exactly ``rows[indexes]``:
    count, errors, input/output tokens and cost (None when no span has one, as SQL's sum),
    first start, last end, whether one is a root."""
    mine = [rows[i] for i in indexes]
    return (
        len(mine), sum(1 for r in mine if r[_STATUS] == "error"),
        *(_sum(r[column] for r in mine) for column in (_INPUT_TOKENS, _OUTPUT_TOKENS, _COST)),
        min(r[_START] for r in mine), max(r[_END] for r in mine), int(any(r[_PARENT] is None for r in mine)),
    )


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _upsert_traces(conn: Connection, spans: list[MappedSpan], rows: list[tuple[Any, ...]], *,
                   fresh: set[str], problems: list[str] | None = None) -> None:
    """Rebuild the ``traces`` rows of the traces ``spans`` belong to, from all their stored spans.

    ``rows`` are the spans' row tuples (their payloads already serialised and masked). The totals
    of ``fresh`` traces (no span stored before this transaction) come from ``rows``; the others'
    from the database.
    """
    by_trace: dict[str, list[int]] = {}
    for index, span in enumerate(spans):
        by_trace.setdefault(span.trace_id, []).append(index)
    if not by_trace:
        return
    ids = tuple(sorted(by_trace))
    tag_rows = list(dict.fromkeys((s.trace_id, tag) for s in spans for tag in s.tags or ()))
    tags: dict[str, list[str]] = {}
    if tag_rows:
        insert_rows(conn, "tags", tag_rows)
        tagged = tuple(sorted({t for t, _ in tag_rows}))
        for trace_id, tag in _rows_for_traces(
                conn, "SELECT trace_id, tag FROM trace_tags WHERE trace_id IN {ids} ORDER BY tag", tagged):
            tags.setdefault(trace_id, []).append(tag)
    by_mode: dict[str, list[tuple[Any, ...]]] = {ROOT_IN_BATCH: [], ROOT_STORED: [], NO_ROOT: []}
    totals = [(trace_id, *_batch_totals(rows, by_trace[trace_id])) for trace_id in ids if trace_id in fresh]
    stored = tuple(trace_id for trace_id in ids if trace_id not in fresh)
    if stored:
        totals += _rows_for_traces(
            conn, "SELECT trace_id, count(*), sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END), sum(input_tokens), "
            "sum(output_tokens), sum(cost_usd), min(start_time), max(end_time), "
            "max(CASE WHEN parent_id IS NULL THEN 1 ELSE 0 END) FROM spans WHERE trace_id IN {ids} GROUP BY trace_id",
            stored)
    for trace_id, count, errors, input_tokens, output_tokens, cost, start, end, has_root in totals:
        indexes = by_trace[trace_id]
        batch = [spans[i] for i in indexes]
        # Several parentless spans (rare): the first to start is the root.
        root_index = min((i for i in indexes if spans[i].parent_id is None), key=lambda i: spans[i].start_ns,
                         default=None)
        root = spans[root_index] if root_index is not None else None
        # The root's own value first, else the first span of the batch naming one.
        ordered = [root, *batch] if root is not None else batch
        session_id, user_id, release, environment, metadata = (
            next((v for s in ordered if (v := getattr(s, name))), None)
            for name in ("session_id", "user_id", "release", "environment", "metadata")
        )
        if root is not None:
            mode, name, status, error = ROOT_IN_BATCH, root.name, root.status, root.error
        else:
            # Without the root here, name, status and error are only used for a new row or
            # (NO_ROOT) merged as the statement says.
            mode = ROOT_STORED if has_root else NO_ROOT
            name = min(batch, key=lambda s: s.start_ns).name
            status = "error" if errors else "ok"
            error = next((s.error for s in batch if s.status == "error"), None)
        duration = (_moment(end) - _moment(start)).total_seconds() * 1000 if end is not None else None
        trace_tags = tags.get(trace_id)
        by_mode[mode].append((
            trace_id, name, start, end, duration, session_id, user_id, release, environment,
            dump_json(trace_tags) if trace_tags else None, dump_json(metadata) if metadata else None,
            rows[root_index][_INPUT] if root_index is not None else None,
            rows[root_index][_OUTPUT] if root_index is not None else None,
            status, error, count, errors, input_tokens, output_tokens, cost,
        ))
    forget = [(row[0], row[2]) for trace_rows in by_mode.values() for row in trace_rows]  # id, start_time
    for mode, trace_rows in by_mode.items():
        if not trace_rows:
            continue
        sql = _upsert_sql(conn, mode)
        if problems is None:
            conn.exec_driver_sql(sql, trace_rows)
            continue
        for row in trace_rows:  # after a refused batch: one trace row the database refuses loses only itself
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(sql, row)
            except SQLAlchemyError as err:
                if is_storage_failure(err):
                    raise
                reason = str(getattr(err, "orig", None) or err).splitlines()[0]
                log.warning("looplab: OTLP trace %s refused by the database: %s", row[0], reason)
                problems.append(f"trace {row[0]}: its summary row was refused by the database: {reason}")
    forget_days_of_traces(conn, forget)  # a late batch of a closed day: its rollups are stale
    # A trace searched before this export came in was indexed as it stood then.
    refresh_indexed_traces(conn, ids)
