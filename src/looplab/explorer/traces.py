"""The trace explorer's services: a page of traces (filtered, searched, sorted), one trace with its
span tree, one span's payloads. The Traces page calls these; it never builds SQL.

Listing reads in two steps: the page's trace ids (an index walk, with ``LIMIT``/``OFFSET``),
then those traces' columns and the start and end of their inputs and outputs for the previews.
The total is counted up to ``count_limit`` rows (``total_exact`` says whether it is exact), so
the cost of a page does not grow with the size of the database.

Search
------
On SQLite (with FTS5, checked at run time) search uses ``trace_search``, an FTS5 table that
migration 0003 creates. No trigger fills it, so the tracing writer pays nothing: a search first
catches the index up with the traces written since the last one, keyed by the traces table's
``rowid`` (new rows get higher ones), in short write transactions of ``SEARCH_CHUNK`` traces.
Each trace contributes its input, its output and error, and ``steps``: the outputs of its LLM
spans (answers and tool calls) and its spans' errors. Only JSON string values are indexed
(``json_tree``), not keys or roles. Search words match words that start with them, in any
order; ``"quoted words"`` match as a phrase. Matches are joined back to ``traces``, so a deleted
trace is never returned; index rows of deleted traces are dropped when the oldest traces go
(retention), and when the newest indexed trace is gone (its ``rowid`` may be reused, or a
``VACUUM`` renumbered rows) the index is checked back to the last row that still matches.

On PostgreSQL, and on a SQLite without FTS5, each word must occur (case-insensitively, as a
substring) in the trace's input, output or error: ``ILIKE`` on the JSON as text. It adds no
index for the writer to maintain and needs no extension; it scans the traces of the filter's
time window, newest first, and stops at the page (the count stops at ``count_limit``).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.sql import column, table
from sqlalchemy.sql.visitors import replacement_traverse

from looplab.errors import ConfigError
from looplab.explorer.render import preview_json_text
from looplab.store.engine import IDS_PER_QUERY, get_engine, read_session
from looplab.store.filters import TraceFilter
from looplab.store.models import Score, Span, Trace

log = logging.getLogger("looplab")

SORT_KEYS = ("start_time", "duration_ms", "cost_usd", "total_tokens", "name", "status")
MAX_PAGE_SIZE = 1000
COUNT_LIMIT = 10_000
SLOW_COUNT_LIMIT = 1_000
MAX_SPAN_LIMIT = 5000
PREVIEW_CHARS = 200
# Previews read a stored payload whole up to this many characters; longer ones only their first
# and last PREVIEW_PART characters (a chat's last question sits at its end).
PREVIEW_WHOLE = 32_000
PREVIEW_PART = 8_000
SEARCH_CHUNK = 500
# SQLite plans: with more matching traces than this, walk the sort's index and check the window
# on each row; with fewer, find the rows first (by time window, or by the search index) and sort.
_FEW_ROWS = 5_000
# A search in a window of at most this many traces tests each of them against the matches.
_NARROW_WINDOW = 10_000
# At most this many ids in one IN list (SQLite before 3.32 allows 999 parameters).
_FEW_IDS = 900

_traces = Trace.__table__
_fts = table("trace_search", column("rowid"), column("trace_id"))


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSummary:
    """The scores of one name on a trace: how many, their mean value, their most common label."""

    name: str
    count: int
    mean: float | None = None
    label: str | None = None


@dataclass(frozen=True)
class TraceRow:
    """One trace as the list shows it (previews are plain text, at most ~200 characters)."""

    id: str
    name: str | None
    start_time: datetime
    end_time: datetime | None
    duration_ms: float | None
    status: str
    error: str | None
    user_id: str | None
    session_id: str | None
    release: str | None
    environment: str | None
    tags: tuple[str, ...]
    span_count: int
    error_count: int
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    input_preview: str
    output_preview: str
    scores: tuple[ScoreSummary, ...] = ()

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


@dataclass(frozen=True)
class TracePage:
    """One page of traces, and where it sits in all the traces that match.

    ``total`` counts matching traces up to the count limit; when more match, ``total_exact`` is
    false and ``total`` is that limit (show it as "10,000+"). ``search_mode`` is ``"fts"``
    (SQLite full-text index), ``"substring"`` (``LIKE``/``ILIKE`` on the JSON text) or ``None``
    (no search).
    """

    rows: list[TraceRow]
    total: int
    total_exact: bool
    page: int
    page_size: int
    sort: str
    descending: bool
    search: str | None = None
    search_mode: str | None = None

    @property
    def page_count(self) -> int:
        """Pages of the counted traces (at least 1)."""
        return max(1, -(-self.total // self.page_size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.total or (not self.total_exact and len(self.rows) == self.page_size)

    @property
    def first_index(self) -> int:
        """1-based position of the page's first row (0 for an empty page)."""
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return (self.page - 1) * self.page_size + len(self.rows)


@dataclass(frozen=True)
class TreeNode:
    """A span's place in its trace's tree: ``index`` is its position in the input order."""

    index: int
    id: str
    parent_id: str | None
    depth: int
    child_count: int
    orphan: bool  # it names a parent the trace does not hold, so it is shown at the root


@dataclass(frozen=True)
class SpanRow:
    """One span as the tree and the waterfall show it; ``start_ms``/``end_ms`` are from the trace's start."""

    id: str
    parent_id: str | None
    depth: int
    child_count: int
    orphan: bool
    kind: str
    name: str
    start_time: datetime
    end_time: datetime | None
    start_ms: float
    end_ms: float | None
    duration_ms: float | None
    status: str
    error: str | None
    model: str | None
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    ttft_ms: float | None
    finish_reason: str | None


@dataclass(frozen=True)
class SpanPayload:
    """What a span received and returned, and its parameters and attributes, as stored."""

    trace_id: str
    span_id: str
    input: Any
    output: Any
    params: dict[str, Any] | None
    attributes: dict[str, Any] | None


@dataclass(frozen=True)
class ScoreRow:
    id: str
    name: str
    value: float | None
    label: str | None
    comment: str | None
    source: str
    author: str | None
    span_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class TraceDetail:
    """One trace: its row, payloads, scores, and one page of its spans in tree order.

    ``spans`` holds the spans ``span_offset`` to ``span_offset + span_limit`` of the whole tree
    (parents before their children, siblings by start time), so depths are right on every page.
    ``payloads`` has the page's span payloads when asked for (``with_payloads=True``); otherwise
    the page loads one at a time with ``span_payload``.
    """

    trace: TraceRow
    input: Any
    output: Any
    metadata: dict[str, Any]
    scores: list[ScoreRow]
    span_count: int
    spans: list[SpanRow]
    span_offset: int
    span_limit: int
    payloads: dict[str, SpanPayload] = field(default_factory=dict)

    @property
    def has_more_spans(self) -> bool:
        return self.span_offset + len(self.spans) < self.span_count


# --- listing ---------------------------------------------------------------------------------------


def list_traces(
    url: str,
    flt: TraceFilter,
    *,
    search: str | None = None,
    sort: str = "start_time",
    descending: bool = True,
    page: int = 1,
    page_size: int = 50,
    count_limit: int | None = None,
) -> TracePage:
    """The traces ``flt`` selects (and ``search`` finds), sorted, one page of them.

    ``sort`` is one of ``SORT_KEYS``; ties are broken by insertion order, so pages are stable.
    The total is counted up to ``count_limit`` traces: by default ``COUNT_LIMIT``, or
    ``SLOW_COUNT_LIMIT`` when each trace costs more to test (a search, a model or provider
    filter, which look at spans). Raises ``ConfigError`` for an unknown sort key or a page
    number or size out of range.
    """
    if sort not in SORT_KEYS:
        raise ConfigError(f"Cannot sort traces by {sort!r}; use one of {', '.join(SORT_KEYS)}.")
    if not isinstance(page, int) or page < 1:
        raise ConfigError(f"Page {page!r} does not exist; pages start at 1.")
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ConfigError(f"A page holds 1 to {MAX_PAGE_SIZE} traces, not {page_size!r}.")
    search = _CONTROL.sub(" ", search or "").strip() or None  # PostgreSQL refuses NUL in text
    sqlite = get_engine(url).dialect.name == "sqlite"
    terms = parse_search(search) if search else []
    fts_query = fts_query_text(terms) if sqlite else None
    mode = None
    if search:
        mode = "fts" if fts_query is not None and search_index_available(url) else "substring"
    if mode == "fts":
        try:
            update_search_index(url)
        except SQLAlchemyError:  # e.g. a read-only database file: search what is indexed
            log.warning("looplab: could not update the trace search index of %s", url, exc_info=True)
    if count_limit is None:
        count_limit = SLOW_COUNT_LIMIT if search or flt.models or flt.providers else COUNT_LIMIT
    limit = max(count_limit, 0)
    empty = TracePage([], 0, True, page, page_size, sort, descending, search, mode)
    if search and not terms:  # nothing but quotes
        return empty

    where = replace(flt, start=None, end=None).conditions()
    if sqlite:
        # "Traces with a span of this model": look each trace's spans up by trace id. Left to
        # itself (no ANALYZE statistics) SQLite reads every span of the model for each trace.
        where = _hidden_from_planner(where, Span.__table__, keep=("trace_id",))
    if mode == "substring":
        where.append(_substring_condition(terms, sqlite))
    query = _TraceQuery(_window(flt), where, _match(fts_query) if mode == "fts" and fts_query else None,
                        _order(sort, descending, sqlite))
    offset = (page - 1) * page_size
    with read_session(url) as session:

        def count(select_: Select[Any], cap: int) -> int:
            return session.execute(select(func.count()).select_from(select_.limit(cap + 1).subquery())).scalar_one()

        found: list[str] | None = None
        ordered: list[str] | None = None
        if mode == "substring":
            # Testing a trace is the expensive part: count by collecting the matching ids, and
            # when they are few, sort those instead of testing every trace a second time.
            found = list(session.scalars(query.select([_traces.c.id]).limit(limit + 1)))
            total = len(found)
        elif mode == "fts":
            window = select(literal(1)).select_from(_traces).where(*query.window)
            narrow = count(window, _NARROW_WINDOW) <= _NARROW_WINDOW
            if narrow:
                # Test the window's traces against the matches, once: they come back sorted, so
                # the count and the page are read together.
                want = max(limit, offset + page_size) + 1
                ordered = list(session.scalars(
                    query.select([_traces.c.id], fts="test").order_by(*query.order).limit(want)))
                total = len(ordered)
            else:
                # Count by reading the matches, newest first, and looking their traces up (it
                # stops at the limit; windows mostly end now).
                total = count(query.select([literal(1)], fts="drive").order_by(_fts.c.rowid.desc()), limit)
        else:
            total = count(query.select([literal(1)]), limit)
        total_exact = total <= limit
        total = min(total, limit)
        if total == 0 and total_exact:
            return empty

        if ordered is not None:
            ids = ordered[offset:offset + page_size]
        else:
            # On SQLite, when many traces match, a sort other than by time reads best by walking
            # the sort's own index (or the table) and testing each row: hide the filter's columns
            # from the planner, which would otherwise find every matching row first and sort them.
            walk = sqlite and sort != "start_time" and not (total_exact and total <= _FEW_ROWS)
            # PostgreSQL cannot tell how many traces a substring test keeps and guesses few: it
            # would test them all and sort. When many match, walking an index in the sort's order
            # and stopping at the page is far cheaper; turning explicit sorts off makes it choose
            # that (where an index has that order: nulls last is its order ascending only).
            steer = not sqlite and found is not None and not total_exact and (
                sort in ("start_time", "status") or not descending)
            ids = _page_ids(session, query, found, total_exact, walk, steer, page_size, offset)
        rows = _trace_rows(session, ids, sqlite)
    return TracePage(rows, total, total_exact, page, page_size, sort, descending, search, mode)


def _page_ids(session: Any, query: _TraceQuery, found: list[str] | None, total_exact: bool, walk: bool,
              steer: bool, page_size: int, offset: int) -> list[str]:
    """The ids of one page. ``found``: the ids a substring search collected while counting."""
    if found is not None and total_exact and len(found) <= _FEW_IDS:
        page_query = select(_traces.c.id).where(_traces.c.id.in_(found))
    elif query.matches is not None:
        # All search matches counted (few): read them and sort. Many: walk the traces.
        fts = "drive" if total_exact else "test"
        page_query = query.select([_traces.c.id], fts=fts, walk=walk and fts == "test")
    else:
        page_query = query.select([_traces.c.id], walk=walk)
    if steer:
        session.execute(text("SET LOCAL enable_sort = off"))
    ids = list(session.scalars(page_query.order_by(*query.order).limit(page_size).offset(offset)))
    if steer:
        session.execute(text("SET LOCAL enable_sort = on"))
    return ids


@dataclass(frozen=True)
class _TraceQuery:
    """The conditions of one listing, and ways to select the traces that meet them."""

    window: list[ColumnElement[bool]]
    where: list[ColumnElement[bool]]
    matches: ColumnElement[bool] | None  # the FTS5 MATCH, when searching the index
    order: list[Any]

    def select(self, columns: Sequence[Any], fts: str | None = None, walk: bool = False) -> Select[Any]:
        """``fts="drive"`` reads the search matches and looks their traces up; ``fts="test"``
        goes through the traces and tests each against the set of matches. ``walk`` hides the
        conditions from SQLite's planner (see ``_hidden_from_planner``)."""
        query = select(*columns).select_from(_traces)
        conditions = [*self.window, *self.where]
        if fts == "drive":
            query = query.join(_fts, _fts.c.rowid == literal_column("traces.rowid")).where(self.matches)
        elif fts == "test":
            conditions.append(literal_column("+traces.rowid").in_(select(_fts.c.rowid).where(self.matches)))
        if walk:
            conditions = _hidden_from_planner(conditions, _traces)
        return query.where(*conditions)


def _window(flt: TraceFilter) -> list[ColumnElement[bool]]:
    where = []
    if flt.start is not None:
        where.append(_traces.c.start_time >= flt.start)
    if flt.end is not None:
        where.append(_traces.c.start_time < flt.end)
    return where


def _hidden_from_planner(conditions: Sequence[ColumnElement[bool]], table_: Table,
                         keep: Sequence[str] = ()) -> list[ColumnElement[bool]]:
    """``conditions`` with the columns of ``table_`` (but ``keep``) written ``+table.column``:
    the same test, but SQLite no longer looks for an index on them."""

    def swap(element: Any) -> Any:
        if isinstance(element, Column) and element.table is table_ and element.name not in keep:
            return literal_column(f"+{table_.name}.{element.name}", element.type)
        return None

    return [replacement_traverse(c, {}, swap) for c in conditions]


def _sort_key(sort: str) -> ColumnElement[Any]:
    c = _traces.c
    if sort == "total_tokens":
        return func.coalesce(c.input_tokens + c.output_tokens, c.input_tokens, c.output_tokens)
    return c[sort]


def _order(sort: str, descending: bool, sqlite: bool) -> list[Any]:
    c = _traces.c
    key = _sort_key(sort)
    tie = literal_column("traces.rowid") if sqlite else c.id

    def direction(expr: Any, nullable: bool) -> Any:
        ordered = expr.desc() if descending else expr.asc()
        return ordered.nulls_last() if nullable else ordered

    order = [direction(key, sort not in ("start_time", "status"))]
    if sort in ("name", "status"):
        order.append(direction(c.start_time, False))
    order.append(direction(tie, False))
    return order


def _json_text(column_: Any, sqlite: bool) -> Any:
    return type_coerce(column_, Text) if sqlite else cast(column_, Text)


def _preview_columns(column_: Any, label: str, sqlite: bool) -> list[Any]:
    textual = _json_text(column_, sqlite)
    length = func.length(textual)
    tail = func.substr(textual, -PREVIEW_PART) if sqlite else func.right(textual, PREVIEW_PART)
    return [
        case((length <= PREVIEW_WHOLE, textual), else_=func.substr(textual, 1, PREVIEW_PART)).label(f"{label}_head"),
        case((length > PREVIEW_WHOLE, tail), else_=None).label(f"{label}_tail"),
    ]


_ROW_COLUMNS = ("id", "name", "start_time", "end_time", "duration_ms", "status", "error", "user_id", "session_id",
                "release", "environment", "tags_json", "span_count", "error_count", "input_tokens", "output_tokens",
                "cost_usd")


def _trace_rows(session: Any, ids: list[str], sqlite: bool) -> list[TraceRow]:
    if not ids:
        return []
    c = _traces.c
    columns = [c[name] for name in _ROW_COLUMNS]
    columns += _preview_columns(c.input_json, "input", sqlite) + _preview_columns(c.output_json, "output", sqlite)
    found = {r.id: r for r in session.execute(select(*columns).where(c.id.in_(ids)))}
    scores = _score_summaries(session, ids)
    return [_trace_row(found[i], scores.get(i, ())) for i in ids if i in found]


def _trace_row(r: Any, scores: Sequence[ScoreSummary]) -> TraceRow:
    tags = r.tags_json if isinstance(r.tags_json, list) else []
    return TraceRow(
        id=r.id, name=r.name, start_time=r.start_time, end_time=r.end_time, duration_ms=r.duration_ms,
        status=r.status, error=r.error, user_id=r.user_id, session_id=r.session_id, release=r.release,
        environment=r.environment, tags=tuple(str(t) for t in tags), span_count=r.span_count or 0,
        error_count=r.error_count or 0, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
        cost_usd=r.cost_usd,
        input_preview=preview_json_text(r.input_head, r.input_tail, PREVIEW_CHARS),
        output_preview=preview_json_text(r.output_head, r.output_tail, PREVIEW_CHARS),
        scores=tuple(scores),
    )


def _score_summaries(session: Any, ids: list[str]) -> dict[str, list[ScoreSummary]]:
    rows = session.execute(
        select(Score.trace_id, Score.name, Score.label, func.count(), func.count(Score.value), func.sum(Score.value))
        .where(Score.trace_id.in_(ids)).group_by(Score.trace_id, Score.name, Score.label)
    ).all()
    grouped: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        grouped.setdefault((row[0], row[1]), []).append(row)
    out: dict[str, list[ScoreSummary]] = {}
    for (trace_id, name), parts in sorted(grouped.items()):
        count = sum(p[3] for p in parts)
        valued = sum(p[4] for p in parts)
        total = sum(p[5] or 0.0 for p in parts)
        labels = Counter({p[2]: p[3] for p in parts if p[2] is not None})
        out.setdefault(trace_id, []).append(ScoreSummary(
            name=name, count=count, mean=total / valued if valued else None,
            label=labels.most_common(1)[0][0] if labels else None))
    return out


# --- search ----------------------------------------------------------------------------------------

_TERM = re.compile(r'"([^"]*)"?|(\S+)')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_search(search: str) -> list[tuple[str, bool]]:
    """Search text as terms: ``(text, is_phrase)`` for each word and each ``"quoted phrase"``."""
    terms = []
    for match in _TERM.finditer(search or ""):
        phrase, word = match.group(1), match.group(2)
        if phrase is not None:
            if phrase.strip():
                terms.append((" ".join(phrase.split()), True))
        elif word:
            terms.append((word, False))
    return terms


def fts_query_text(terms: Iterable[tuple[str, bool]]) -> str | None:
    """An FTS5 query matching every term (words as prefixes, phrases exactly); ``None`` when no
    term has a letter or digit to search for. User text only ever appears inside quotes."""
    parts = []
    for term, phrase in terms:
        if not any(ch.isalnum() for ch in term):
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        if not phrase and sum(ch.isalnum() for ch in term) >= 3:
            quoted += "*"
        parts.append(quoted)
    return " AND ".join(parts) if parts else None


def _match(query: str) -> ColumnElement[bool]:
    return text("trace_search MATCH :fts_query").bindparams(fts_query=query)


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _substring_condition(terms: list[tuple[str, bool]], sqlite: bool) -> ColumnElement[bool]:
    c = _traces.c
    haystacks = [func.coalesce(_json_text(c.input_json, sqlite), ""), func.coalesce(_json_text(c.output_json, sqlite), ""),
                 func.coalesce(c.error, "")]
    return and_(*(
        or_(*(h.ilike(f"%{_escape_like(term)}%", escape="\\") for h in haystacks)) for term, _ in terms
    ))


def search_index_available(url: str) -> bool:
    """Whether the database has a usable FTS5 search index (SQLite built with FTS5, migrated)."""
    engine = get_engine(url)
    if engine.dialect.name != "sqlite":
        return False
    with engine.execution_options(looplab_read_only=True).connect() as conn:
        if not conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'trace_search'")).scalar():
            return False
        try:
            conn.execute(text("SELECT rowid FROM trace_search LIMIT 0")).all()
        except OperationalError:  # a SQLite without FTS5 opened a database made by one with it
            return False
    return True


# Keys whose values are markup, not words anyone searches for ("user", "text", "tool_use"...).
_KEYS_NOT_TEXT = "('role', 'type', 'call_id', 'tool_call_id', 'tool_use_id', 'signature', 'finish_reason', " \
                 "'object', 'media_type')"


def _text_of(json_column: str) -> str:
    """SQL for the string values of a JSON column, space-separated (keys, roles, ids, base64 left out)."""
    return f"""CASE WHEN json_valid({json_column}) THEN (
        SELECT group_concat(j.value, ' ') FROM json_tree({json_column}) AS j
        WHERE j.type = 'text' AND coalesce(j.key, '') NOT IN {_KEYS_NOT_TEXT}
          AND substr(j.value, 1, 5) != 'data:' AND NOT (length(j.value) > 200 AND instr(j.value, ' ') = 0)
    ) ELSE {json_column} END"""


# "+s.kind": look the spans up by trace id (the primary key), not through the kind index.
def _index_sql(chosen: str) -> str:
    """Index the traces ``chosen`` (a condition on ``traces AS t``) into ``trace_search``."""
    return f"""
WITH new AS MATERIALIZED (
    SELECT t.rowid AS rid, t.id AS tid, t.error AS error,
           {_text_of('t.input_json')} AS input_text, {_text_of('t.output_json')} AS output_text
    FROM traces AS t WHERE {chosen}
)
INSERT INTO trace_search (rowid, trace_id, input, output, steps)
SELECT rid, tid, input_text, trim(coalesce(output_text, '') || ' ' || coalesce(error, '')),
       (SELECT group_concat(x, ' ') FROM (
            SELECT {_text_of('s.output_json')} AS x FROM spans AS s WHERE s.trace_id = tid AND +s.kind = 'llm'
            UNION ALL SELECT s.error FROM spans AS s WHERE s.trace_id = tid AND s.error IS NOT NULL
        ) WHERE x IS NOT NULL AND x != '' AND x IS NOT output_text)
FROM new ORDER BY rid
"""


_INDEX_SQL = text(_index_sql("t.rowid > :after ORDER BY t.rowid LIMIT :chunk"))


def refresh_indexed_traces(conn: Connection, trace_ids: Sequence[str]) -> int:
    """Index again those of ``trace_ids`` the search index already holds, inside the caller's
    transaction (SQLite; a no-op elsewhere or without the index); returns how many.

    The index adds traces by ``rowid`` after the newest it holds, so a trace row rewritten later
    (its root span arriving in a later OTLP export, say) would keep what it said when indexed.
    """
    if conn.dialect.name != "sqlite" or not trace_ids or not conn.execute(text(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'trace_search'")).scalar():
        return 0
    refreshed = 0
    for start in range(0, len(trace_ids), IDS_PER_QUERY):
        chunk = tuple(trace_ids[start:start + IDS_PER_QUERY])
        indexed = [row[0] for row in conn.exec_driver_sql(
            "SELECT rowid FROM trace_search WHERE rowid IN "
            f"(SELECT rowid FROM traces WHERE id IN ({', '.join('?' * len(chunk))}))", chunk)]
        if indexed:
            rowids = ", ".join(str(int(r)) for r in indexed)
            conn.exec_driver_sql(f"DELETE FROM trace_search WHERE rowid IN ({rowids})")
            conn.exec_driver_sql(_index_sql(f"t.rowid IN ({rowids})"))
            refreshed += len(indexed)
    return refreshed


def update_search_index(url: str, *, pause: float = 0.5) -> int:
    """Index the traces written since the last search; returns how many were added.

    A no-op (0) without a search index (PostgreSQL, SQLite without FTS5). Each chunk of
    ``SEARCH_CHUNK`` traces is its own short write transaction; between chunks it pauses for
    ``pause`` times as long as the chunk took, so that the tracing writer gets its turns while a
    large backlog (an upgraded or bulk-loaded database) is indexed. Safe to run from several
    processes at once: each chunk reads where the index stands inside its own transaction.
    """
    if not search_index_available(url):
        return 0
    engine = get_engine(url)
    with engine.execution_options(looplab_read_only=True).connect() as conn:
        if not _index_behind(conn):
            return 0
    added = 0
    while True:
        started = time.perf_counter()
        with engine.begin() as conn:
            after = _checked_high_water(conn)
            if added == 0:
                # The oldest traces went (retention): their index rows go too.
                conn.execute(text("DELETE FROM trace_search WHERE rowid < (SELECT min(rowid) FROM traces)"))
            conn.execute(_INDEX_SQL, {"after": after, "chunk": SEARCH_CHUNK})
            count = conn.execute(text("SELECT changes()")).scalar_one()  # no rowcount for "WITH ... INSERT"
        added += count
        if count < SEARCH_CHUNK:
            return added
        time.sleep((time.perf_counter() - started) * pause)


def _index_behind(conn: Connection) -> bool:
    newest = conn.execute(text("SELECT rowid, trace_id FROM trace_search ORDER BY rowid DESC LIMIT 1")).first()
    last_trace = conn.execute(text("SELECT max(rowid) FROM traces")).scalar()
    if newest is None:
        return last_trace is not None
    if last_trace is None or last_trace != newest[0]:
        return True
    if conn.execute(text("SELECT id FROM traces WHERE rowid = :r"), {"r": newest[0]}).scalar() != newest[1]:
        return True
    oldest = conn.execute(text("SELECT rowid FROM trace_search ORDER BY rowid LIMIT 1")).scalar()
    return oldest is not None and oldest < conn.execute(text("SELECT min(rowid) FROM traces")).scalar()


def _checked_high_water(conn: Connection) -> int:
    """The ``rowid`` up to which the index is right, dropping index rows above it.

    Normally the newest indexed row, still there with the same trace id: SQLite gives new rows a
    ``rowid`` above the largest one, so nothing below it can have changed. When that trace is
    gone, its ``rowid`` (and those of other deleted newest traces) may have been given to new
    traces, or a ``VACUUM`` renumbered the table: walk down to the newest row whose trace id
    still matches and re-index everything above it.
    """
    newest = conn.execute(text("SELECT rowid, trace_id FROM trace_search ORDER BY rowid DESC LIMIT 1")).first()
    if newest is None:
        return 0
    rowid, trace_id = newest
    if conn.execute(text("SELECT id FROM traces WHERE rowid = :r"), {"r": rowid}).scalar() == trace_id:
        return int(rowid)
    good = 0
    below = rowid
    while below > 0 and not good:
        batch = conn.execute(text(
            "SELECT t.rowid, t.id, f.trace_id FROM traces AS t LEFT JOIN trace_search AS f ON f.rowid = t.rowid "
            "WHERE t.rowid <= :below ORDER BY t.rowid DESC LIMIT 1000"), {"below": below}).all()
        if not batch:
            break
        for row in batch:
            if row[1] == row[2]:
                good = int(row[0])
                break
        below = int(batch[-1][0]) - 1
    conn.execute(text("DELETE FROM trace_search WHERE rowid > :good"), {"good": good})
    return good


# --- one trace -------------------------------------------------------------------------------------


def span_tree(spans: Iterable[tuple[str, str | None]]) -> list[TreeNode]:
    """Spans ``(id, parent_id)`` in start order, as a tree in display order.

    Parents come before their children, siblings keep the input order, and each node has its
    depth. A span whose parent is not among ``spans`` (it was never stored, or the trace was cut)
    is an orphan shown at the root; spans caught in a parent cycle are shown at the root too.
    """
    items = list(spans)
    ids = [item[0] for item in items]
    parents = [item[1] for item in items]
    order, depth, child_count = _tree_order(ids, parents)
    return [_node(i, ids, parents, depth, child_count) for i in order]


def _node(i: int, ids: list[str], parents: list[str | None], depth: list[int], child_count: list[int]) -> TreeNode:
    return TreeNode(i, ids[i], parents[i], depth[i], child_count[i], parents[i] is not None and depth[i] == 0)


def _tree_order(ids: list[str], parents: list[str | None]) -> tuple[list[int], list[int], list[int]]:
    """Display order (indexes into ``ids``), and each span's depth and number of children."""
    count = len(ids)
    position = {span_id: i for i, span_id in enumerate(ids)}
    children: dict[int, list[int]] = {}
    roots = []
    for i, parent_id in enumerate(parents):
        parent = position.get(parent_id, -1) if parent_id is not None else -1
        if parent < 0 or parent == i:
            roots.append(i)
        else:
            children.setdefault(parent, []).append(i)
    depth = [0] * count
    seen = bytearray(count)
    order: list[int] = []
    for start in [*roots, *range(count)]:  # after the roots, whatever only a cycle reaches
        if seen[start]:
            continue
        depth[start] = 0
        stack = [start]
        while stack:
            i = stack.pop()
            if seen[i]:
                continue
            seen[i] = 1
            order.append(i)
            kids = children.get(i)
            if kids:
                below = depth[i] + 1
                for kid in reversed(kids):
                    if not seen[kid]:
                        depth[kid] = below
                        stack.append(kid)
    child_count = [0] * count
    for parent, kids in children.items():
        child_count[parent] = len(kids)
    return order, depth, child_count


_SPAN_LIGHT = ("id", "parent_id", "kind", "name", "start_time", "end_time", "duration_ms", "status", "error",
               "model", "provider", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "ttft_ms",
               "finish_reason")
_SPAN_PAYLOAD = ("input_json", "output_json", "params_json", "attributes_json")


def trace_detail(
    url: str,
    trace_id: str,
    *,
    span_offset: int = 0,
    span_limit: int = 500,
    with_payloads: bool = False,
) -> TraceDetail | None:
    """One trace with its scores and one page of its spans in tree order; ``None`` if not stored.

    The whole tree is computed from the spans' ids and parents (so depths are right on every
    page); the other span columns are read for the page only, payloads only when
    ``with_payloads`` is true (else one span at a time through ``span_payload``).
    """
    if span_offset < 0 or not 1 <= span_limit <= MAX_SPAN_LIMIT:
        raise ConfigError(f"Spans are shown from offset 0, 1 to {MAX_SPAN_LIMIT} at a time.")
    sqlite = get_engine(url).dialect.name == "sqlite"
    c = _traces.c
    with read_session(url) as session:
        row = session.execute(
            select(*(c[name] for name in _ROW_COLUMNS), c.input_json, c.output_json, c.metadata_json,
                   *_preview_columns(c.input_json, "input", sqlite), *_preview_columns(c.output_json, "output", sqlite))
            .where(c.id == trace_id)
        ).first()
        if row is None:
            return None
        s = Span.__table__.c
        links = session.execute(
            select(s.id, s.parent_id).where(s.trace_id == trace_id).order_by(s.start_time, s.id)).all()
        ids = [link[0] for link in links]
        parents = [link[1] for link in links]
        order, depth, child_count = _tree_order(ids, parents)
        window = [_node(i, ids, parents, depth, child_count) for i in order[span_offset:span_offset + span_limit]]
        page_ids = [node.id for node in window]
        names = _SPAN_LIGHT + (_SPAN_PAYLOAD if with_payloads else ())
        span_rows = {}
        # Times as the driver gives them, parsed below: the SQLite dialect's own parsing cost
        # more than the rest of reading a page of spans.
        columns = [type_coerce(s[n], String).label(n) if n in ("start_time", "end_time") else s[n] for n in names]
        for chunk in _chunks(page_ids, 900):
            for r in session.execute(select(*columns).where(s.trace_id == trace_id, s.id.in_(chunk))):
                span_rows[r.id] = r
        scores = [ScoreRow(id=r.id, name=r.name, value=r.value, label=r.label, comment=r.comment, source=r.source,
                           author=r.author, span_id=r.span_id, created_at=r.created_at)
                  for r in session.execute(select(Score.__table__).where(Score.trace_id == trace_id)
                                           .order_by(Score.created_at, Score.id))]
        summaries = _score_summaries(session, [trace_id]).get(trace_id, [])
    start = row.start_time
    spans, payloads = [], {}
    for node in window:
        r = span_rows.get(node.id)
        if r is None:  # deleted between the two reads
            continue
        span_start, span_end = _utc(r.start_time), _utc(r.end_time)
        spans.append(SpanRow(
            id=r.id, parent_id=r.parent_id, depth=node.depth, child_count=node.child_count, orphan=node.orphan,
            kind=r.kind, name=r.name, start_time=span_start, end_time=span_end,
            start_ms=_ms(span_start - start), end_ms=_ms(span_end - start) if span_end is not None else None,
            duration_ms=r.duration_ms, status=r.status, error=r.error, model=r.model, provider=r.provider,
            input_tokens=r.input_tokens, output_tokens=r.output_tokens, cached_tokens=r.cached_tokens,
            cost_usd=r.cost_usd, ttft_ms=r.ttft_ms, finish_reason=r.finish_reason,
        ))
        if with_payloads:
            payloads[r.id] = SpanPayload(trace_id, r.id, r.input_json, r.output_json, r.params_json, r.attributes_json)
    return TraceDetail(
        trace=_trace_row(row, summaries), input=row.input_json, output=row.output_json,
        metadata=row.metadata_json if isinstance(row.metadata_json, dict) else {},
        scores=scores, span_count=len(ids), spans=spans, span_offset=span_offset, span_limit=span_limit,
        payloads=payloads,
    )


def span_payload(url: str, trace_id: str, span_id: str) -> SpanPayload | None:
    """One span's input, output, parameters and attributes; ``None`` if it is not stored."""
    s = Span.__table__.c
    with read_session(url) as session:
        r = session.execute(select(*(s[n] for n in _SPAN_PAYLOAD))
                            .where(s.trace_id == trace_id, s.id == span_id)).first()
    if r is None:
        return None
    return SpanPayload(trace_id, span_id, r.input_json, r.output_json, r.params_json, r.attributes_json)


def _utc(value: Any) -> Any:
    """A stored time (SQLite's text, PostgreSQL's naive datetime) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _ms(delta: Any) -> float:
    return delta.total_seconds() * 1000.0


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
