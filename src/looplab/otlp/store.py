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
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from looplab.errors import StoreError
from looplab.otlp.mapping import MappedSpan
from looplab.store.engine import get_engine
from looplab.store.models import Span, Trace, TraceTag
from looplab.tracing.payloads import dump_json, to_storable
from looplab.tracing.rows import SqliteTime, naive_utc
from looplab.tracing.writer import insert_rows, is_storage_failure

log = logging.getLogger("looplab")

_sqlite_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


@dataclass
class StoreResult:
    """What became of a batch: spans written (or already there), the spans the database refused
    (one reason each), and other problems (a trace's summary row refused)."""

    stored: int = 0
    rejected: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def store_spans(url: str, spans: list[MappedSpan]) -> StoreResult:
    """Store ``spans`` and upsert their traces in one transaction.

    A span the database refuses is rejected on its own (the batch is retried span by span, each
    in a savepoint). Raises ``StoreError`` when the database cannot be written at all.
    """
    result = StoreResult()
    if not spans:
        return result
    spans = _first_of_each(spans)
    engine = get_engine(url)
    is_sqlite = engine.dialect.name == "sqlite"
    # SqliteTime caches the formatted second: one per call, as requests run on several threads.
    to_db = SqliteTime() if is_sqlite else naive_utc
    rows = [_span_row(span, to_db) for span in spans]
    try:
        with _database_lock(url) if is_sqlite else nullcontext():
            try:
                with engine.begin() as conn:
                    _lock_traces(conn, spans)
                    insert_rows(conn, "new_spans", rows)
                    _upsert_traces(conn, spans)
                result.stored = len(spans)
            except SQLAlchemyError as err:
                if is_storage_failure(err):
                    raise
                log.warning("looplab: an OTLP batch was refused (%s); storing its spans one by one",
                            getattr(err, "orig", None) or err)
                with engine.begin() as conn:
                    _lock_traces(conn, spans)
                    kept = _insert_one_by_one(conn, spans, rows, result)
                    _upsert_traces(conn, kept, problems=result.problems)
                result.stored = len(kept)
    except SQLAlchemyError as err:
        raise StoreError(f"Cannot store OTLP spans: {getattr(err, 'orig', None) or err}") from err
    return result


def _first_of_each(spans: list[MappedSpan]) -> list[MappedSpan]:
    """One span per (trace id, span id): a span repeated in a batch is stored once, the first."""
    seen: dict[tuple[str, str], MappedSpan] = {}
    for span in spans:
        seen.setdefault((span.trace_id, span.span_id), span)
    return list(seen.values()) if len(seen) != len(spans) else spans


@contextmanager
def _database_lock(url: str) -> Iterator[None]:
    lock = _sqlite_locks.get(url)
    if lock is None:
        with _locks_lock:
            lock = _sqlite_locks.setdefault(url, threading.Lock())
    with lock:
        yield


def _span_row(span: MappedSpan, to_db: Any) -> tuple[Any, ...]:
    """The span as a row tuple in ``looplab.tracing.rows.SPAN_COLUMNS`` order; payloads masked."""
    return (
        span.trace_id, span.span_id, span.parent_id, span.kind, span.name, to_db(span.start_ns), to_db(span.end_ns),
        span.duration_ms, dump_json(span.input), dump_json(span.output), span.provider, span.model,
        dump_json(span.params) if span.params else None, span.finish_reason, span.input_tokens, span.output_tokens,
        span.cached_tokens, span.cost_usd, span.pricing_source, span.ttft_ms, span.status, span.error,
        dump_json(span.attributes) if span.attributes else None,
    )


def _lock_traces(conn: Connection, spans: list[MappedSpan]) -> None:
    if conn.dialect.name != "postgresql":
        return
    # The last 16 hex digits of a trace id are random in OpenTelemetry's ids and in looplab's own;
    # two traces sharing a key only wait for each other.
    keys = sorted({int.from_bytes(bytes.fromhex(s.trace_id[-16:]), "big", signed=True) for s in spans})
    conn.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"), {"keys": keys})


def _insert_one_by_one(conn: Connection, spans: list[MappedSpan], rows: list[tuple[Any, ...]],
                       result: StoreResult) -> list[MappedSpan]:
    kept = []
    for span, row in zip(spans, rows):
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
            kept.append(span)
    return kept


# --- the traces rows -----------------------------------------------------------------------------

_IDS = bindparam("ids", expanding=True)
_TOTALS = (
    select(Span.trace_id, func.count(), func.sum(case((Span.status == "error", 1), else_=0)),
           func.sum(Span.input_tokens), func.sum(Span.output_tokens), func.sum(Span.cost_usd),
           func.min(Span.start_time), func.max(Span.end_time))
    .where(Span.trace_id.in_(_IDS))
    .group_by(Span.trace_id)
)
_ROOTS = (
    select(Span.trace_id, Span.id, Span.name, Span.status, Span.error)
    .where(Span.trace_id.in_(_IDS), Span.parent_id.is_(None))
    .order_by(Span.start_time)
)
_TAGS = select(TraceTag.trace_id, TraceTag.tag).where(TraceTag.trace_id.in_(_IDS)).order_by(TraceTag.tag)
_MERGED = ("session_id", "user_id", "release", "environment", "metadata_json", "tags_json", "input_json",
           "output_json")
_statements: dict[tuple[str, bool], Any] = {}


def _upsert_statement(dialect: str, rooted: bool) -> Any:
    """INSERT ... ON CONFLICT (id) DO UPDATE for the traces table, on SQLite or PostgreSQL.

    Totals are rebuilt from the stored spans, so they replace what is stored. Fields a batch may
    not carry keep their stored value when the new one is NULL. A trace whose root span is stored
    (``rooted``) takes its name, status and error from it; until then the name first given stays.
    """
    key = (dialect, rooted)
    statement = _statements.get(key)
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(Trace.__table__)
        new, old = statement.excluded, Trace.__table__.c
        updates: dict[str, Any] = {c: new[c] for c in ("start_time", "end_time", "duration_ms", "span_count",
                                                      "error_count", "input_tokens", "output_tokens", "cost_usd",
                                                      "status")}
        updates.update({c: func.coalesce(new[c], old[c]) for c in _MERGED})
        if rooted:
            updates["name"], updates["error"] = new.name, new.error
        else:
            updates["name"] = func.coalesce(old.name, new.name)
            updates["error"] = func.coalesce(new.error, old.error)
        statement = _statements[key] = statement.on_conflict_do_update(index_elements=["id"], set_=updates)
    return statement


def _upsert_traces(conn: Connection, spans: list[MappedSpan], problems: list[str] | None = None) -> None:
    """Rebuild the ``traces`` rows of the traces ``spans`` belong to, from all their stored spans."""
    by_trace: dict[str, list[MappedSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    if not by_trace:
        return
    ids = sorted(by_trace)
    tag_rows = list(dict.fromkeys((s.trace_id, tag) for s in spans for tag in s.tags or ()))
    if tag_rows:
        insert_rows(conn, "tags", tag_rows)
        tags: dict[str, list[str]] = {}
        for trace_id, tag in conn.execute(_TAGS, {"ids": sorted({t for t, _ in tag_rows})}):
            tags.setdefault(trace_id, []).append(tag)
    else:
        tags = {}
    roots: dict[str, Any] = {}
    for root in conn.execute(_ROOTS, {"ids": ids}):
        roots.setdefault(root.trace_id, root)  # several parentless spans: the first to start
    rooted: list[dict[str, Any]] = []
    partial: list[dict[str, Any]] = []
    for trace_id, count, errors, input_tokens, output_tokens, cost, start, end in conn.execute(_TOTALS, {"ids": ids}):
        batch = by_trace[trace_id]
        root = roots.get(trace_id)
        in_batch = next((s for s in batch if root is not None and s.span_id == root.id), None)
        row = {
            "id": trace_id, "start_time": start, "end_time": end,
            "duration_ms": (end - start).total_seconds() * 1000 if end is not None else None,
            "span_count": count, "error_count": errors, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "cost_usd": cost, "tags_json": tags.get(trace_id),
            "input_json": to_storable(in_batch.input) if in_batch is not None else None,
            "output_json": to_storable(in_batch.output) if in_batch is not None else None,
        }
        # The root's own value first, else the first span of the batch naming one.
        ordered = [in_batch, *batch] if in_batch is not None else batch
        for column, attribute in (("session_id", "session_id"), ("user_id", "user_id"), ("release", "release"),
                                  ("environment", "environment"), ("metadata_json", "metadata")):
            value = next((getattr(s, attribute) for s in ordered if getattr(s, attribute)), None)
            row[column] = to_storable(value) if column == "metadata_json" and value else value
        if root is not None:
            row.update(name=root.name, status=root.status, error=root.error)
            rooted.append(row)
        else:
            first = min(batch, key=lambda s: s.start_ns)
            failed = next((s.error for s in batch if s.status == "error"), None)
            row.update(name=first.name, status="error" if errors else "ok", error=failed)
            partial.append(row)
    dialect = conn.dialect.name
    for rows, is_rooted in ((rooted, True), (partial, False)):
        if not rows:
            continue
        statement = _upsert_statement(dialect, is_rooted)
        if problems is None:
            conn.execute(statement, rows)
            continue
        for row in rows:  # after a refused batch: one trace row the database refuses loses only itself
            try:
                with conn.begin_nested():
                    conn.execute(statement, [row])
            except SQLAlchemyError as err:
                if is_storage_failure(err):
                    raise
                reason = str(getattr(err, "orig", None) or err).splitlines()[0]
                log.warning("looplab: OTLP trace %s refused by the database: %s", row["id"], reason)
                problems.append(f"trace {row['id']}: its summary row was refused by the database: {reason}")
