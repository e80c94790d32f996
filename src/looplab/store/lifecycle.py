"""Data lifecycle: retention (``prune_traces``) and erasing one user's data (``delete_user``).

What goes with a trace
----------------------
Removing a trace removes everything that only means something with it: its spans, tags, scores
(those attached to it or its spans), its row in the SQLite search index (``trace_search``, keyed
by the trace's ``rowid``), and its annotation queue items with their annotations. What has a life
of its own is kept and loses only its link: a dataset item made from the trace keeps its input
and expected output (its ``source_trace_id``/``source_span_id`` become null and the
``source_trace_id`` key leaves its metadata, in every version of the item: an erasure is the one
edit made in place); an experiment item keeps its output, cost, latency and scores, its
``trace_id`` becomes null. Scores of experiment items (not of traces) are never touched.

Retention also removes old *orphan* spans: spans that started before the cut-off and whose trace
row never arrived (an app that crashed before its root span ended). Telemetry tables have no
foreign keys (spans may arrive before their trace), so nothing else would ever remove them.

Transactions: one per batch, each batch whole traces
----------------------------------------------------
The work runs in batches of ``batch_size`` traces. Each batch is one transaction that removes its
traces *whole*, the trace row last, with everything above: a crash, a ``kill -9`` or a database
error at any point leaves every trace either entirely there or entirely gone, never a trace row
without its spans or a dataset item still pointing at a deleted trace. A failed run raises
``IncompleteRemoval`` saying how much was already removed; both operations are idempotent, so
running the same command again finishes the job.

One transaction for the whole removal was the alternative, and the wrong one here: on SQLite it
would hold the single write lock for as long as a million spans take to delete, while the tracing
writer, the gateway and annotators wait on a 30 s busy timeout and then fail (new traces lost to
delete old ones), and the WAL would grow by the size of everything deleted. PostgreSQL would
cope, but one behaviour on both databases is easier to reason about. Batches also keep memory
flat: a batch holds at most ``batch_size`` trace ids; spans are deleted by the database, never
loaded. On SQLite a short pause between batches lets waiting writers take their turn.

Dry runs count with the same predicates in one read transaction and delete nothing.

Space
-----
PostgreSQL reuses the space of deleted rows after autovacuum. A SQLite file keeps its size: the
freed pages (``reclaimable_bytes``) are reused by new rows. looplab creates databases with
``auto_vacuum`` off, so ``PRAGMA incremental_vacuum`` would do nothing; shrinking the file takes
a ``VACUUM`` (it rewrites the file and locks out writers while it runs), which is left to the
operator.

``delete_user`` erases for real on SQLite: it turns on ``PRAGMA secure_delete`` for its own
connection, so the erased rows' bytes are overwritten rather than left in free pages, and when it
removed search index rows it merges the index (FTS5 ``optimize``, about 1.5 s for 50,000 traces
on a 2-core machine, holding the write lock), since FTS5 keeps deleted terms in its segments
until they are merged. Once the WAL is checkpointed, none of the user's words is left in the
file. Retention does neither: old traces are not secrets, and the cost would recur every run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.sql import column, table

from looplab.errors import ConfigError, StoreError
from looplab.store.engine import get_engine
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

log = logging.getLogger("looplab")

BATCH_SIZE = 500
# On SQLite, sleep this fraction of a batch's time before the next one, so writers waiting on the
# lock get their turn instead of starving behind a long prune.
PAUSE = 0.25

Progress = Callable[[int, int], None]

_DELETE_SEARCH_ROWS = text("DELETE FROM trace_search WHERE rowid IN :rowids").bindparams(
    bindparam("rowids", expanding=True))
_MERGE_SEARCH_INDEX = text("INSERT INTO trace_search(trace_search) VALUES ('optimize')")
_DATASET_ITEMS = DatasetItem.__table__
_SEARCH = table("trace_search", column("rowid"))  # the FTS5 index (SQLite), keyed by the traces' rowid


@dataclass(frozen=True)
class Removed:
    """What a removal removed (or, in a dry run, would remove), counted per kind of row."""

    traces: int = 0
    spans: int = 0
    tags: int = 0
    scores: int = 0
    search_rows: int = 0
    queue_items: int = 0
    annotations: int = 0
    # Kept, with their link to the trace cleared. Dataset items are counted once per item, not
    # per version.
    dataset_items_unlinked: int = 0
    experiment_items_unlinked: int = 0

    def __add__(self, other: Removed) -> Removed:
        return Removed(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def nothing(self) -> bool:
        """Whether there is nothing to remove or unlink."""
        return not any(getattr(self, f.name) for f in fields(self))

    def lines(self) -> list[str]:
        """One line per kind, for people: traces always, the other kinds when there are any."""
        def count(n: int, one: str, many: str) -> str:
            return f"{n:,} {one if n == 1 else many}"

        out = [count(self.traces, "trace", "traces")]
        for n, one, many in (
            (self.spans, "span", "spans"),
            (self.tags, "tag", "tags"),
            (self.scores, "score", "scores"),
            (self.search_rows, "search index entry", "search index entries"),
            (self.queue_items, "annotation queue item", "annotation queue items"),
            (self.annotations, "annotation", "annotations"),
        ):
            if n:
                out.append(count(n, one, many))
        for n, one, many, kept in (
            (self.dataset_items_unlinked, "dataset item", "dataset items", "content kept"),
            (self.experiment_items_unlinked, "experiment item", "experiment items", "results kept"),
        ):
            if n:
                out.append(f"{count(n, one, many)} unlinked from {'its trace' if n == 1 else 'their traces'} ({kept})")
        return out


class IncompleteRemoval(StoreError):
    """A removal failed part way; ``removed`` is what earlier, committed batches removed.

    Every trace is either removed whole or kept whole; running the removal again finishes it.
    """

    def __init__(self, message: str, removed: Removed) -> None:
        super().__init__(message)
        self.removed = removed


def prune_traces(
    url: str,
    older_than: datetime,
    dry_run: bool = False,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Removed:
    """Remove the traces that started before ``older_than`` (an aware datetime) with everything
    hanging off them, and orphan spans that started before it; returns the counts.

    With ``dry_run`` nothing is removed and the counts say what would be. ``progress(done,
    total)`` is called with traces removed so far after each batch. Raises ``IncompleteRemoval``
    when the database fails part way (see the module docstring), ``StoreError`` when it cannot be
    opened, ``ConfigError`` for a naive ``older_than``.
    """
    if older_than.tzinfo is None:
        raise ConfigError("older_than must be an aware datetime (UTC); a naive one is ambiguous.")
    return _Removal(url, Trace.start_time < older_than, orphan_spans_before=older_than, erase=False,
                    batch_size=batch_size, progress=progress).run(dry_run)


def delete_user(
    url: str,
    user_id: str,
    dry_run: bool = False,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Removed:
    """Erase the traces of end user ``user_id`` (the traces' ``user_id``) with their spans,
    scores and everything else hanging off them; returns the counts.

    Dataset items made from those traces keep their content (it may still hold the user's data:
    the count of unlinked items says where to look). ``dry_run`` and ``progress`` as for
    ``prune_traces``. Raises ``ConfigError`` for an empty ``user_id``, ``IncompleteRemoval`` when
    the database fails part way.
    """
    if not user_id or not user_id.strip():
        raise ConfigError("The user id is empty; give the user_id their traces were recorded with.")
    return _Removal(url, Trace.user_id == user_id, orphan_spans_before=None, erase=True,
                    batch_size=batch_size, progress=progress).run(dry_run)


def reclaimable_bytes(url: str) -> int | None:
    """Bytes of free pages inside a SQLite database file (reused by new rows; a ``VACUUM`` gives
    them back to the disk); ``None`` for other databases."""
    engine = get_engine(url)
    if engine.dialect.name != "sqlite":
        return None
    with engine.execution_options(looplab_read_only=True).connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        page_size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    return int(pages) * int(page_size)


class _Removal:
    """One prune or erasure: the traces matching ``where``, in batches (see the module docstring)."""

    def __init__(self, url: str, where: ColumnElement[bool], *, orphan_spans_before: datetime | None, erase: bool,
                 batch_size: int, progress: Progress | None) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1.")
        self.url = url
        self.where = where
        self.orphan_spans_before = orphan_spans_before
        self.erase = erase
        self.batch_size = batch_size
        self.progress = progress
        self.removed = Removed()  # what committed batches removed so far: what an error part way reports

    def run(self, dry_run: bool) -> Removed:
        engine = get_engine(self.url)
        search_index = _search_index_usable(engine)
        if dry_run:
            try:
                return self.count(engine, search_index)
            except SQLAlchemyError as err:
                raise StoreError(f"Cannot count in {_display(self.url)}: {getattr(err, 'orig', None) or err}") from err
        try:
            total = self.count_traces(engine) if self.progress else 0
            with engine.connect() as conn:
                secure = self.erase and engine.dialect.name == "sqlite"
                if secure:
                    _set_secure_delete(conn, True)
                try:
                    self._remove_traces(conn, search_index, total)
                    if self.orphan_spans_before is not None:
                        self._remove_orphan_spans(conn)
                    if secure and self.removed.search_rows:
                        with conn.begin():
                            # FTS5 deletes leave the old terms in the index's segments until they
                            # are merged: merge them all now, so the erased words are gone.
                            conn.execute(_MERGE_SEARCH_INDEX)
                finally:
                    if secure:
                        _set_secure_delete(conn, False)
        except SQLAlchemyError as err:
            reason = getattr(err, "orig", None) or err
            if self.removed.nothing:
                raise IncompleteRemoval(f"Nothing was removed from {_display(self.url)}: {reason}",
                                        self.removed) from err
            raise IncompleteRemoval(
                f"Stopped after removing {', '.join(self.removed.lines())} from {_display(self.url)}: {reason}. "
                "Each trace was removed whole or kept whole; run the same command again to remove the rest.",
                self.removed,
            ) from err
        return self.removed

    def _remove_traces(self, conn: Connection, search_index: bool, total: int) -> None:
        # Oldest first, locked on PostgreSQL so that two concurrent runs take the rows in one order.
        batch_query = (select(Trace.id).where(self.where).order_by(Trace.start_time, Trace.id)
                       .limit(self.batch_size).with_for_update())
        while True:
            started = time.perf_counter()
            with conn.begin():
                ids = list(conn.execute(batch_query).scalars())
                if not ids:
                    return
                batch = _remove_batch(conn, ids, search_index)
            self.removed += batch  # committed
            if self.progress:
                self.progress(self.removed.traces, max(total, self.removed.traces))
            self._pause(conn, started)

    def _remove_orphan_spans(self, conn: Connection) -> None:
        before = self.orphan_spans_before
        assert before is not None
        orphans = (select(Span.trace_id).where(Span.start_time < before, ~exists().where(Trace.id == Span.trace_id))
                   .distinct().limit(self.batch_size))
        while True:
            started = time.perf_counter()
            with conn.begin():
                trace_ids = list(conn.execute(orphans).scalars())
                if not trace_ids:
                    return
                spans = conn.execute(
                    delete(Span).where(Span.trace_id.in_(trace_ids), Span.start_time < before)).rowcount
            self.removed += Removed(spans=spans)
            self._pause(conn, started)

    def _pause(self, conn: Connection, started: float) -> None:
        if conn.dialect.name == "sqlite":
            time.sleep(min((time.perf_counter() - started) * PAUSE, 1.0))

    def count_traces(self, engine: Engine) -> int:
        with engine.execution_options(looplab_read_only=True).connect() as conn:
            return conn.execute(select(func.count()).select_from(Trace).where(self.where)).scalar_one()

    def count(self, engine: Engine, search_index: bool) -> Removed:
        """What a run would remove now, counted with the predicates the batches use."""
        options: dict[str, Any] = {"looplab_read_only": True}
        if engine.dialect.name == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"  # one snapshot for all the counts
        scope = select(Trace.id).where(self.where)
        with engine.execution_options(**options).connect() as conn, conn.begin():
            def n(query: Any) -> int:
                return int(conn.execute(query).scalar_one())

            spans = n(select(func.count()).select_from(Span).where(Span.trace_id.in_(scope)))
            if self.orphan_spans_before is not None:
                spans += n(select(func.count()).select_from(Span).where(
                    Span.start_time < self.orphan_spans_before, ~exists().where(Trace.id == Span.trace_id)))
            search_rows = 0
            if search_index:
                rowids = select(literal_column("traces.rowid")).select_from(Trace).where(self.where)
                search_rows = n(select(func.count()).select_from(_SEARCH).where(_SEARCH.c.rowid.in_(rowids)))
            return Removed(
                traces=n(select(func.count()).select_from(Trace).where(self.where)),
                spans=spans,
                tags=n(select(func.count()).select_from(TraceTag).where(TraceTag.trace_id.in_(scope))),
                scores=n(select(func.count()).select_from(Score).where(Score.trace_id.in_(scope),
                                                                      Score.experiment_item_id.is_(None))),
                search_rows=search_rows,
                queue_items=n(select(func.count()).select_from(QueueItem).where(QueueItem.trace_id.in_(scope))),
                annotations=n(select(func.count()).select_from(Annotation).where(Annotation.trace_id.in_(scope))),
                dataset_items_unlinked=n(select(func.count(DatasetItem.item_id.distinct()))
                                         .where(DatasetItem.source_trace_id.in_(scope))),
                experiment_items_unlinked=n(select(func.count()).select_from(ExperimentItem)
                                            .where(ExperimentItem.trace_id.in_(scope))),
            )


def _remove_batch(conn: Connection, ids: Sequence[str], search_index: bool) -> Removed:
    """Remove traces ``ids`` whole, inside the caller's transaction; the trace rows go last."""
    search_rows = 0
    if search_index:
        rowids = list(conn.execute(
            select(literal_column("rowid")).select_from(Trace).where(Trace.id.in_(ids))).scalars())
        if rowids:
            search_rows = conn.execute(_DELETE_SEARCH_ROWS, {"rowids": rowids}).rowcount
    spans = conn.execute(delete(Span).where(Span.trace_id.in_(ids))).rowcount
    tags = conn.execute(delete(TraceTag).where(TraceTag.trace_id.in_(ids))).rowcount
    scores = conn.execute(delete(Score).where(Score.trace_id.in_(ids), Score.experiment_item_id.is_(None))).rowcount
    # A score of an experiment item belongs to the item; should one also name the trace, only
    # that link goes.
    conn.execute(update(Score).where(Score.trace_id.in_(ids), Score.experiment_item_id.is_not(None))
                 .values(trace_id=None, span_id=None))
    # Annotations would also go by the foreign key's cascade; deleting them first counts them.
    annotations = conn.execute(delete(Annotation).where(Annotation.trace_id.in_(ids))).rowcount
    queue_items = conn.execute(delete(QueueItem).where(QueueItem.trace_id.in_(ids))).rowcount
    dataset_items = _unlink_dataset_items(conn, ids)
    experiment_items = conn.execute(update(ExperimentItem).where(ExperimentItem.trace_id.in_(ids))
                                    .values(trace_id=None)).rowcount
    traces = conn.execute(delete(Trace).where(Trace.id.in_(ids))).rowcount
    return Removed(traces=traces, spans=spans, tags=tags, scores=scores, search_rows=search_rows,
                   queue_items=queue_items, annotations=annotations, dataset_items_unlinked=dataset_items,
                   experiment_items_unlinked=experiment_items)


def _unlink_dataset_items(conn: Connection, ids: Sequence[str]) -> int:
    """Clear the link of dataset items (every version) made from traces ``ids``; returns how many
    items (not versions). ``add_trace_to_dataset`` writes the link twice: the ``source_trace_id``
    column and the same key in the metadata; both go, the rest of the metadata stays."""
    t = _DATASET_ITEMS
    rows = conn.execute(select(t.c.id, t.c.item_id, t.c.source_trace_id, t.c.metadata_json)
                        .where(t.c.source_trace_id.in_(ids))).all()
    if not rows:
        return 0
    edits = [
        {"row_id": row.id, "metadata": {k: v for k, v in row.metadata_json.items() if k != "source_trace_id"} or None}
        for row in rows
        if isinstance(row.metadata_json, dict) and row.metadata_json.get("source_trace_id") == row.source_trace_id
    ]
    if edits:
        conn.execute(update(t).where(t.c.id == bindparam("row_id")).values(metadata_json=bindparam("metadata")), edits)
    conn.execute(update(t).where(t.c.source_trace_id.in_(ids)).values(source_trace_id=None, source_span_id=None))
    return len({row.item_id for row in rows})


def _search_index_usable(engine: Engine) -> bool:
    """Whether the database has the SQLite FTS5 search index and this SQLite can write it."""
    if engine.dialect.name != "sqlite":
        return False
    with engine.execution_options(looplab_read_only=True).connect() as conn:
        if not conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'trace_search'")
                            ).scalar():
            return False
        try:
            conn.execute(text("SELECT rowid FROM trace_search LIMIT 0")).all()
        except OperationalError:
            # Made by a SQLite with FTS5, opened by one without: its rows cannot be removed here.
            log.warning("The search index of %s cannot be opened by this SQLite (no FTS5); the removed traces' "
                        "entries stay in it until a SQLite with FTS5 prunes them.", _display(str(engine.url)))
            return False
    return True


def _set_secure_delete(conn: Connection, on: bool) -> None:
    # Outside any transaction, on the driver's connection: the setting is the connection's, not a
    # transaction's, and must not outlive this run in the pool.
    conn.connection.dbapi_connection.execute(f"PRAGMA secure_delete = {'ON' if on else 'OFF'}")  # type: ignore[union-attr]


def _display(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url

