"""Monitoring metrics: series over time, KPIs against the previous period, breakdowns, filter values.

Every figure is computed by the database; nothing here reads the rows of a window into Python.
Results are plain, JSON-ready data (lists of dicts, aware UTC datetimes) for the page to chart.

**Percentiles** are nearest-rank: the p-th percentile of n values is the value of rank
``ceil(p/100 * n)`` in ascending order (PostgreSQL's ``percentile_disc``), always a value that
was observed. SQLite has no percentile function and its window functions cost about 2 µs a row,
so each percentile is read as ``ORDER BY x LIMIT 1 OFFSET k`` over the bucket's (or group's)
index range, ascending up to the median and descending above it: the database keeps a heap of
``k`` rows instead of sorting the window (5% of them for a p95). The counts that give ``k`` come
first, from one aggregate per bucket over the same index range. A middle percentile of a large
window (a month's median and p95) is read from brackets found on a sample (``_bracketed``), exact too.
Buckets are ``UNION ALL`` terms, one per bucket, so no statement sorts or groups the window; the
same SQL runs on SQLite and PostgreSQL. The indexes of migration 0004 carry every column these
statements read, so they never touch a trace or span row and its payloads.

**Which rows.** Trace metrics cover the traces ``TraceFilter`` selects (started in the window).
Span metrics (time to first token, the ``model`` breakdown) cover LLM spans that *started* in
the window; a ``models``/``providers`` filter applies to the span itself, and the other
attribute filters select the traces the spans belong to, whenever those started. Scores are
counted at their trace's start time, so a label given days later still describes the traffic it
judged.

**Rollups.** Breakdowns by model, name and release, and the daily counts of LLM calls, read a
window's closed days from per-day sums (``looplab.monitoring.rollups``, kept true by triggers)
and only the rest from the rows.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.visitors import InternalTraversal

from looplab.errors import ConfigError
from looplab.monitoring import rollups
from looplab.store.engine import read_session
from looplab.store.filters import TraceFilter
from looplab.store.models import SPAN_KINDS, Score, Span, Trace, TraceTag, utc_day
from looplab.store.types import UTCDateTime

log = logging.getLogger(__name__)

# Bucket sizes offered, smallest first; the smallest that gives at most MAX_POINTS buckets wins:
# 1h -> 1 min (60 points), 24h -> 15 min (96), 7d -> 3 h (56), 30d -> 1 day (30), 90d -> 1 day.
BUCKET_SIZES: tuple[timedelta, ...] = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
    timedelta(hours=3), timedelta(hours=6), timedelta(days=1), timedelta(days=7),
)
MAX_POINTS = 100
LATENCY_PERCENTILES = (50, 95, 99)
TTFT_PERCENTILES = (50, 95)
BREAKDOWNS = ("model", "name", "release", "user")
BREAKDOWN_LIMIT = 50
OPTIONS_LIMIT = 200  # values offered per filter list (users and sessions: the busiest ones)
LLM = "llm"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FAR = datetime(9999, 1, 1, tzinfo=timezone.utc)
_MONDAY = datetime(1970, 1, 5, tzinfo=timezone.utc)  # weeks start on Monday, UTC
# SQLite refuses compound statements of more than 500 terms; stay well below.
_TERMS_PER_STATEMENT = 200
SOURCE_LABELS = {"human": "human", "llm_judge": "LLM judge", "code": "code", "user_feedback": "user"}


# --- Windows and buckets ------------------------------------------------------------------------


def bucket_for(flt: TraceFilter) -> timedelta:
    """The bucket size for charts of ``flt``'s window: the smallest of ``BUCKET_SIZES`` giving at
    most ``MAX_POINTS`` buckets (1 day when the window is open-ended)."""
    length = flt.span
    if length is None:
        return timedelta(days=1)
    for size in BUCKET_SIZES:
        if length / size <= MAX_POINTS:
            return size
    return BUCKET_SIZES[-1]


def bucket_starts(start: datetime, end: datetime, size: timedelta) -> list[datetime]:
    """Starts of the UTC-aligned buckets of ``size`` that overlap ``[start, end)``.

    Buckets are aligned to the epoch (whole minutes, hours, UTC days); weeks start on Monday.
    The first bucket may begin before ``start``: it then counts only what is in the window.
    """
    if size <= timedelta(0):
        raise ConfigError("A bucket must be longer than zero.")
    anchor = _MONDAY if size % timedelta(days=7) == timedelta(0) else _EPOCH
    first = anchor + ((start - anchor) // size) * size
    starts = []
    moment = first
    while moment < end:
        starts.append(moment)
        moment += size
    return starts


def _resolved(session: Session, flt: TraceFilter) -> TraceFilter:
    """``flt`` with an open start replaced by the first trace's start and an open end by now."""
    end = flt.end or datetime.now(timezone.utc)
    start = flt.start
    if start is None:
        first = session.scalar(select(func.min(Trace.start_time)))
        start = first if first is not None and first < end else end - timedelta(days=1)
    return replace(flt, start=start, end=end)


def _ranges(flt: TraceFilter, size: timedelta) -> list[tuple[datetime, datetime, datetime]]:
    """(bucket start, first moment counted, end counted) for each bucket of the resolved window."""
    assert flt.start is not None and flt.end is not None
    if size > timedelta(0) and (flt.end - flt.start) / size > 10_000:
        raise ConfigError(f"A {size} bucket makes too many points for this window; pick a larger bucket.")
    return [(b, max(b, flt.start), min(b + size, flt.end)) for b in bucket_starts(flt.start, flt.end, size)]


# --- Which rows: traces and LLM spans ------------------------------------------------------------
#
# The window bounds below may be values or bind parameters: the per-bucket statements are built
# once per (query, number of buckets, attribute filters) with parameters for the bounds, cached,
# and run with new bounds as the window moves (building a few hundred subqueries costs more in
# Python than running them).


def _attributes(flt: TraceFilter) -> TraceFilter:
    """``flt`` without its window: the part of a filter a cached statement is built for."""
    return replace(flt, start=None, end=None, range_key="custom")


def _trace_where(flt: TraceFilter, start: Any, end: Any, spans_until: Any = None) -> list[ColumnElement[bool]]:
    """Traces that started in ``[start, end)`` and match ``flt``'s attributes.

    ``TraceFilter`` tests "has a span of this model" per trace, which on SQLite reads every span
    row of every trace. Here it is an index range over the spans of that model that started in
    ``[start, spans_until)``: a span starts at or after its trace, and before the trace ends, so
    ``spans_until`` = ``end`` + the longest trace duration loses nothing.
    """
    where = [Trace.start_time >= start, Trace.start_time < end,
             *replace(_attributes(flt), models=(), providers=()).conditions()]
    for values, column in ((flt.models, Span.model), (flt.providers, Span.provider)):
        if values:
            spans = select(Span.trace_id).where(column.in_(values), Span.start_time >= start)
            if spans_until is not None:
                spans = spans.where(Span.start_time < spans_until)
            if column is Span.provider:  # no index leads with provider: walk the kind index, every kind
                spans = spans.where(Span.kind.in_(SPAN_KINDS))
            where.append(_not_a_driver(Trace.id).in_(spans))
    return where


class _Unindexed(ColumnElement[Any]):
    """A column that no index may answer: ``+column`` on SQLite (its documented way), the column itself
    elsewhere (PostgreSQL plans ``IN`` subqueries as hash joins on its own)."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(_Unindexed)
def _compile_unindexed(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_Unindexed, "sqlite")
def _compile_unindexed_sqlite(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


def _not_a_driver(column: Any) -> Any:
    """``column`` for an ``IN`` test that must not drive the query.

    With statistics (after ``ANALYZE``) SQLite likes to start from the ids an ``IN`` subquery
    lists and fetch each row by its key: a trace's or span's row, payloads and all, for tens of
    thousands of ids (a 30-day model breakdown filtered by name took 5 s). Written this way the
    window's range in a covering index stays the driver, whatever the statistics say.
    """
    return _Unindexed(column)


def trace_conditions(flt: TraceFilter) -> list[ColumnElement[bool]]:
    """SQL conditions selecting the traces of ``flt`` (as ``flt.conditions()``), index-friendly."""
    return _trace_where(flt, flt.start or _EPOCH, flt.end or _FAR)


def _llm_where(flt: TraceFilter, start: Any, end: Any, traces_from: Any = None,
               matched: bool = False, day: bool = False) -> list[ColumnElement[bool]]:
    """LLM spans that started in ``[start, end)`` and match ``flt`` (see the module's docstring).

    The trace attributes select traces that started in ``[traces_from, end)``: ``traces_from`` is
    the window's start, or later when a span's trace cannot have started earlier. With
    ``matched`` they are the ids ``_match_traces`` listed for the whole window instead.

    With ``day`` (``[start, end)`` is one whole UTC day) the window is written as that day, for
    ``ix_spans_llm_day_ttft`` (partial: ``kind = 'llm'`` must be written as that literal) to
    give the day's times to first token in order; no other index may answer the filters then.
    """
    if day:
        where: list[ColumnElement[bool]] = [Span.kind == literal_column(f"'{LLM}'"),
                                            utc_day(Span.start_time) == utc_day(start)]
    else:
        where = [Span.kind == LLM, Span.start_time >= start, Span.start_time < end]
    if flt.models:
        where.append((_not_a_driver(Span.model) if day else Span.model).in_(flt.models))
    if flt.providers:
        where.append(Span.provider.in_(flt.providers))
    rest = replace(_attributes(flt), models=(), providers=())
    if matched:
        where.append(_not_a_driver(Span.trace_id).in_(select(_MATCHED.c.id)))
    elif rest.attribute_count():
        where.append(_not_a_driver(Span.trace_id).in_(select(Trace.id).where(
            Trace.start_time >= traces_from, Trace.start_time < end, *rest.conditions())))
    return where


# The traces a span query's trace attributes select, listed once per query (SQLite): an ``IN``
# subquery repeated in each term of a statement (each bucket, each model, each percentile) is
# built again by each term (a month filtered by name: 70,000 ids, 15 times for a model
# breakdown); ``IN (SELECT id FROM temp table)`` probes the temporary table's key instead.
# PostgreSQL plans those subqueries as hash joins, and refuses to create tables in a read-only
# transaction: it keeps the subqueries.
_MATCHED = Table("looplab_matched_traces", MetaData(), Column("id", String(64), primary_key=True),
                 prefixes=["TEMPORARY"])


# Trace filters that a trace's own index entry cannot answer (a tag; a model or provider of its
# spans): a trace statement tests them by a probe per trace of its range (a few µs each), again in
# each percentile's term. Trace metrics with such a filter list the window's traces once instead.
_PROBED = ("tags", "models", "providers")


@contextmanager
def _match_traces(session: Session, flt: TraceFilter, whole: bool = False) -> Iterator[bool]:
    """Lists the ids of the traces ``flt``'s trace attributes select in its (resolved) window in
    ``_MATCHED``; yields whether it did (SQLite, with such attributes) and empties it after.

    With ``whole``, for trace metrics: the traces all of ``flt``'s attributes select, models and
    providers included, listed only when one of ``_PROBED`` is among them."""
    assert flt.start is not None and flt.end is not None
    rest = replace(_attributes(flt), models=(), providers=())
    if whole:
        wanted = any(getattr(flt, name) for name in _PROBED)
    else:
        wanted = bool(rest.attribute_count())
    if session.get_bind().dialect.name != "sqlite" or not wanted:
        yield False
        return
    if whole:
        conditions = _trace_where(flt, flt.start, flt.end, flt.end + _longest_trace(session))
    else:
        conditions = [Trace.start_time >= flt.start, Trace.start_time < flt.end, *rest.conditions()]
    _MATCHED.create(session.connection(), checkfirst=True)
    session.execute(_MATCHED.delete())
    session.execute(_MATCHED.insert().from_select(["id"], select(Trace.id).where(*conditions)))
    try:
        yield True
    finally:
        session.execute(_MATCHED.delete())


def _matched_traces(start: Any, end: Any) -> list[ColumnElement[bool]]:
    """The traces ``_match_traces(whole=True)`` listed that started in ``[start, end)``."""
    return [Trace.start_time >= start, Trace.start_time < end, _not_a_driver(Trace.id).in_(select(_MATCHED.c.id))]


def llm_span_conditions(flt: TraceFilter, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """SQL conditions selecting the LLM spans of ``flt`` that started in ``[start, end)``."""
    return _llm_where(flt, start, end, flt.start if flt.start is not None else _EPOCH)


def _longest_trace(session: Session) -> timedelta:
    """How long the longest trace lasted, plus a second (one seek on the duration index)."""
    longest = session.scalar(select(func.max(Trace.duration_ms)))
    return timedelta(milliseconds=float(longest or 0)) + timedelta(seconds=1)


_MOST = 0.4  # from this share of the traces, reading them all in user order beats sorting the window's


def window_share(session: Session, flt: TraceFilter) -> float:
    """The share of the stored traces ``flt``'s (resolved) window holds, estimated from its part
    of the time between the first and the last trace (two index seeks); 1 when they are one moment."""
    assert flt.start is not None and flt.end is not None
    # Two scalar subqueries: SQLite answers a lone min() or max() with one seek, not both at once.
    first, last = session.execute(select(select(func.min(Trace.start_time)).scalar_subquery(),
                                         select(func.max(Trace.start_time)).scalar_subquery())).one()
    if first is None or last is None or last <= first:
        return 1.0
    return max(0.0, (min(flt.end, last) - max(flt.start, first)) / (last - first))


def _by_user_index(session: Session, flt: TraceFilter) -> bool:
    """Whether grouping ``flt``'s traces by user should read the whole user index in order (SQLite).

    Grouping the window's traces by user sorts them (0.5 µs a trace); walking the index that
    leads with the user reads every trace of the table in user order without sorting (0.2 µs).
    The second wins when the window holds most of the traces (a month here).
    """
    if session.get_bind().dialect.name != "sqlite" or flt.attribute_count():
        return False
    return window_share(session, flt) >= _MOST


def _in_user_order(flt: TraceFilter) -> list[ColumnElement[bool]]:
    """``flt``'s window, written so no index can answer it: the planner then reads the traces from
    the index that gives the ``GROUP BY user_id`` its order (``ix_traces_user_start``, covering)."""
    return [_not_a_driver(Trace.start_time) >= flt.start, _not_a_driver(Trace.start_time) < flt.end]


# --- Percentiles and unions of per-bucket terms ----------------------------------------------------


def _rank(p: int, n: int) -> int:
    """The 1-based rank of the nearest-rank p-th percentile of n values."""
    return max(1, -(-p * n // 100))


def _offset(p: int, n: int) -> int:
    """The OFFSET that reads the p-th percentile of n values in ``_nth_value``'s order."""
    if n <= 0:
        return 0
    return _rank(p, n) - 1 if p <= 50 else n - _rank(p, n)


def _nth_value(value: Any, where: Sequence[ColumnElement[bool]], p: int, offset: Any, in_order: bool = False) -> Any:
    """A scalar subquery: the value at ``offset`` in ascending order (p <= 50) or descending order.

    Reading from the nearer end keeps the database's bounded heap small (5% of the rows for a
    p95). "+ 0" keeps SQLite from walking an index on the value itself (in value order, fetching
    every row to test the window) instead of the range index. With ``in_order`` the conditions
    are written for an index that holds the rows in value order (a day's, or a window tested in
    the index entry): the database walks ``offset`` entries of it and sorts nothing.
    """
    key = value if in_order else value + 0
    order = key.asc() if p <= 50 else key.desc()
    return (select(value).where(*where, key.is_not(None)).order_by(order)
            .limit(1).offset(offset).scalar_subquery())


def _key(i: int) -> Any:
    return literal(i, Integer).label("k")


_BRACKET_MIN = 20_000  # from this many values a group's percentiles are read from brackets


class _Sampled(ColumnElement[bool]):
    """True for about one row in 16 of ``table``: ``rowid % 16 = 0`` on SQLite (read from any index
    entry, as cheap as a test gets), the trace id ending in "0" elsewhere (ids are hex)."""

    inherit_cache = True
    _traverse_internals = [("ids", InternalTraversal.dp_clauseelement)]

    def __init__(self, ids: Any) -> None:
        self.ids = ids
        self.type = Boolean()


@compiles(_Sampled)
def _compile_sampled(element: _Sampled, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.ids.like("%0"), **kw)


@compiles(_Sampled, "sqlite")
def _compile_sampled_sqlite(element: _Sampled, compiler: Any, **kw: Any) -> str:
    return f"({element.ids.table.name}.rowid % 16 = 0)"


def _sample(session: Session, value: Any, where: Sequence[Any], params: Mapping[str, Any]) -> list[Any]:
    """The non-null values of ``value`` on the sampled rows (``_Sampled``), in order."""
    return sorted(session.scalars(select(value).where(*where, (value + 0).is_not(None), _Sampled(
        Trace.id if value.class_ is Trace else Span.trace_id)), dict(params)).all())


def _brackets(sample: Sequence[Any], percentiles: Sequence[int]) -> dict[int, tuple[Any, Any]]:
    """{p: (low, high)}: two values of ``sample`` four standard errors around each percentile (None:
    no bound on that side); empty when the sample is too small to tell."""
    size = len(sample)
    if size < 100:
        return {}
    bounds: dict[int, tuple[Any, Any]] = {}
    for p in percentiles:
        spread = 4 * (p * (100 - p)) ** 0.5 / 100 / size ** 0.5  # four standard errors, as a fraction
        low_index = int(max(0.0, p / 100 - spread) * size)
        high_index = int(min(1.0, p / 100 + spread) * size) + 1
        bounds[p] = (sample[low_index] if low_index > 0 else None, sample[high_index] if high_index < size else None)
    return bounds


def _bracket_counts(value: Any, bounds: Mapping[int, tuple[Any, Any]]) -> list[Any]:
    """Aggregates counting, for each bracket, the values below it and up to its end (None: all)."""
    key = value + 0
    sums: list[Any] = []
    for low, high in bounds.values():
        sums.append(func.coalesce(func.sum(case((key < low, 1), else_=0)), 0) if low is not None else literal(0))
        sums.append(func.coalesce(func.sum(case((key <= high, 1), else_=0)), 0) if high is not None
                    else literal(None))
    return sums


def _inside(value: Any, bounds: Mapping[int, tuple[Any, Any]]) -> ColumnElement[bool]:
    key = value + 0
    ranges = []
    for low, high in bounds.values():
        tests = [t for t in (key >= low if low is not None else None, key <= high if high is not None else None)
                 if t is not None]
        ranges.append(and_(*tests) if tests else literal(True))
    return or_(*ranges)


def _pick(bounds: Mapping[int, tuple[Any, Any]], counts: Sequence[Any], inside: Sequence[Any],
          n: int) -> dict[int, float | None]:
    """The percentiles whose rank falls inside their bracket, read from the values inside."""
    found: dict[int, float | None] = {}
    for j, (p, (low, high)) in enumerate(bounds.items()):
        below, rank = int(counts[2 * j]), _rank(p, n)
        upto = n if counts[2 * j + 1] is None else int(counts[2 * j + 1])
        if below < rank <= upto:
            between = sorted(v for v in inside if (low is None or v >= low) and (high is None or v <= high))
            if rank - below - 1 < len(between):
                found[p] = _float(between[rank - below - 1])
    return found


def _bracketed(session: Session, value: Any, where: Sequence[Any], params: Mapping[str, Any], n: int,
               percentiles: Sequence[int]) -> dict[int, float | None]:
    """Percentiles of a large group, each read between two values found on a sample: {p: value}.

    The heap behind ``ORDER BY .. LIMIT 1 OFFSET k`` grows with k (SQLite's costs 1.3 µs a row
    for the median of 200,000 values) and each percentile is one more pass. Here, three passes
    whatever the percentiles: a sample (one row in 16, ``_Sampled``) ordered here gives two
    values safely around each percentile (four standard errors); one aggregate counts the values
    below and up to each bracket; the values inside the brackets (a few percent of the group) are
    read and ordered here. When the wanted rank falls inside its bracket (it nearly always does)
    the value is exact; a percentile it does not is left out, for the caller to read the plain way.
    """
    bounds = _brackets(_sample(session, value, where, params), percentiles)
    if not bounds:
        return {}
    key = value + 0
    counts = session.execute(select(*_bracket_counts(value, bounds)).where(*where, key.is_not(None)),
                             dict(params)).one()
    inside = session.scalars(select(value).where(*where, key.is_not(None), _inside(value, bounds)), dict(params)).all()
    return _pick(bounds, counts, inside, n)


def _statements(terms: Sequence[Select[Any]]) -> list[Any]:
    """``terms`` (each starting with an integer key column) as few ``UNION ALL`` statements."""
    chunks = [terms[i:i + _TERMS_PER_STATEMENT] for i in range(0, len(terms), _TERMS_PER_STATEMENT)]
    return [chunk[0] if len(chunk) == 1 else union_all(*chunk) for chunk in chunks]


def _run(session: Session, statements: Sequence[Any], params: Mapping[str, Any] | None = None) -> list[Any]:
    rows: list[Any] = []
    for statement in statements:
        rows.extend(session.execute(statement, dict(params or {})).all())
    return rows


_CACHE_SIZE = 64
_cache: OrderedDict[Hashable, list[Any]] = OrderedDict()
_cache_lock = threading.Lock()


def _cached(key: Hashable, build: Callable[[], Sequence[Select[Any]]]) -> list[Any]:
    """The statements for ``key``, built by ``build`` the first time (a small LRU per process)."""
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    built = _statements(build())
    with _cache_lock:
        _cache[key] = built
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return built


def _param(name: str, type_: Any = None) -> Any:
    return bindparam(name, type_=type_ if type_ is not None else UTCDateTime())


def _percentile_rows(
    session: Session,
    value: Any,
    groups: Sequence[tuple[int, Sequence[ColumnElement[bool]], int]],
    percentiles: Sequence[int],
) -> dict[int, dict[int, float | None]]:
    """For each (key, conditions, count of non-null values) group: {key: {p: percentile}}."""
    result: dict[int, dict[int, float | None]] = {key: dict.fromkeys(percentiles) for key, _, _ in groups}
    plain: dict[int, list[int]] = {}
    for key, where, n in groups:
        middle = [p for p in percentiles if 10 < p < 90]  # a p95 of a group: its heap is small enough
        bracketed = _bracketed(session, value, where, {}, n, middle) if middle and n >= _BRACKET_MIN else {}
        result[key].update(bracketed)
        plain[key] = [p for p in percentiles if p not in bracketed]
    plain = {key: wanted for key, wanted in plain.items() if wanted}
    by_key = {key: (where, n) for key, where, n in groups}
    terms = [
        select(_key(key), *[_nth_value(value, by_key[key][0], p, _offset(p, by_key[key][1])) for p in wanted],
               *[literal(None)] * (len(percentiles) - len(wanted)))
        for key, wanted in plain.items() if by_key[key][1] > 0
    ]
    for row in _run(session, _statements(terms)):
        result[row[0]].update({p: _float(v) for p, v in zip(plain[row[0]], row[1:])})
    return result


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# --- Per-bucket statements --------------------------------------------------------------------------


class _Buckets:
    """The window's buckets as bind parameters: ``lo{i}``, ``hi{i}`` and the narrowing bounds."""

    def __init__(self, session: Session, flt: TraceFilter, ranges: Sequence[tuple[datetime, datetime, datetime]]):
        self.flt, self.ranges, self.attributes = flt, ranges, _attributes(flt)
        self.matched = False  # whether llm_spans (or traces) reads the ids _match_traces listed
        # Buckets that are whole UTC days (not clipped by the window): a day index answers them.
        self.days = tuple(i for i, (b, lo, hi) in enumerate(ranges)
                          if lo == b and hi - lo == timedelta(days=1) and b == _day_start(b))
        self.params: dict[str, Any] = {}
        longest = _longest_trace(session) if flt.attribute_count() else timedelta(0)
        assert flt.start is not None
        for i, (_, lo, hi) in enumerate(ranges):
            self.params.update({f"lo{i}": lo, f"hi{i}": hi, f"su{i}": hi + longest,
                                f"tf{i}": lo - longest})

    def traces(self, i: int) -> list[ColumnElement[bool]]:
        if self.matched:  # listed by _match_traces(whole=True)
            return _matched_traces(_param(f"lo{i}"), _param(f"hi{i}"))
        return _trace_where(self.attributes, _param(f"lo{i}"), _param(f"hi{i}"), _param(f"su{i}"))

    def llm_spans(self, i: int) -> list[ColumnElement[bool]]:
        return _llm_where(self.attributes, _param(f"lo{i}"), _param(f"hi{i}"), _param(f"tf{i}"), self.matched)

    def trace_day(self, i: int) -> list[ColumnElement[bool]]:
        """Bucket ``i`` (a whole day) for ``ix_traces_day_duration``: only without attribute
        filters, which that index cannot test."""
        assert not self.attributes.attribute_count()
        return [utc_day(Trace.start_time) == utc_day(_param(f"lo{i}"))]

    def llm_day(self, i: int) -> list[ColumnElement[bool]]:
        """Bucket ``i`` (a whole day) for ``ix_spans_llm_day_ttft``."""
        return _llm_where(self.attributes, _param(f"lo{i}"), _param(f"hi{i}"), _param(f"tf{i}"), self.matched,
                          day=True)

    def window_in_order(self, i: int) -> list[ColumnElement[bool]]:
        """Bucket ``i``'s window tested in each entry of an index in value order (none drives)."""
        return [_not_a_driver(Trace.start_time) >= _param(f"lo{i}"), _not_a_driver(Trace.start_time) < _param(f"hi{i}")]

    def key(self, name: str, *more: Hashable) -> Hashable:
        return (name, len(self.ranges), self.attributes, self.matched, *more)

    def percentiles(self, session: Session, name: str, value: Any, where: Callable[[int], Sequence[Any]],
                    counts: Sequence[int], percentiles: Sequence[int],
                    by_day: Callable[[int], Sequence[Any]] | None = None,
                    in_order: Callable[[int], Sequence[Any]] | None = None) -> list[dict[int, float | None]]:
        """Per bucket {p: percentile of ``value``}, given each bucket's count of non-null values.

        ``by_day`` gives a whole-day bucket's conditions for an index holding each day's values in
        order; ``in_order`` (one bucket) the window's conditions for an index in value order
        that carries the start time: both read the percentile by walking that index, no sort.
        """
        if in_order is not None and len(self.ranges) == 1:
            statements = _cached(self.key(name + " in order", tuple(percentiles)), lambda: [
                select(_key(0), *[_nth_value(value, in_order(0), p, bindparam(f"o0_{p}", type_=Integer), True)
                                  for p in percentiles])])
            params = {**self.params, **{f"o0_{p}": _offset(p, counts[0]) for p in percentiles}}
            [row] = _run(session, statements, params)
            return [{p: _float(v) if counts[0] else None for p, v in zip(percentiles, row[1:])}]
        days = self.days if by_day is not None else ()
        bracketed: dict[int, float | None] = {}
        if len(self.ranges) == 1 and counts[0] >= _BRACKET_MIN:  # one large window (a summary): brackets
            bracketed = _bracketed(session, value, where(0), self.params, counts[0], percentiles)
            if len(bracketed) == len(percentiles):
                return [bracketed]
            percentiles = [p for p in percentiles if p not in bracketed]
        statements = _cached(self.key(name, tuple(percentiles), days), lambda: [
            select(_key(i), *[_nth_value(value, by_day(i) if i in days and by_day else where(i), p,
                                         bindparam(f"o{i}_{p}", type_=Integer), i in days).label(f"p{p}")
                              for p in percentiles])
            for i in range(len(self.ranges))
        ])
        params = dict(self.params)
        for i, n in enumerate(counts):
            params.update({f"o{i}_{p}": _offset(p, n) for p in percentiles})
        found = {row[0]: row[1:] for row in _run(session, statements, params)}
        return [{**bracketed, **{p: _float(v) if counts[i] else None for p, v in zip(percentiles, found[i])}}
                for i in range(len(self.ranges))]


# --- Time series ------------------------------------------------------------------------------------


def _day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


_IN_ORDER = 0.2  # from this share of the traces, a window's percentiles walk the duration index


def _trace_totals() -> list[Any]:
    return rollups.measures(Trace.status, Trace.duration_ms, (Trace.input_tokens, Trace.output_tokens, Trace.cost_usd))


def _buckets(session: Session, flt: TraceFilter, bucket: timedelta | None) -> _Buckets:
    flt = _resolved(session, flt)
    return _Buckets(session, flt, _ranges(flt, bucket or bucket_for(flt)))


def timeseries(url: str, flt: TraceFilter, bucket: timedelta | None = None) -> list[dict[str, Any]]:
    """Requests, errors, latency percentiles, tokens and cost per time bucket, oldest first.

    One dict a bucket, every bucket of the window present: ``bucket`` (its UTC start),
    ``requests``, ``errors``, ``error_rate`` (None without requests), ``latency_p50_ms``,
    ``latency_p95_ms``, ``latency_p99_ms`` (trace duration; None without finished traces),
    ``input_tokens``, ``output_tokens``, ``cost_usd`` (0 in empty buckets).
    """
    with read_session(url) as session:
        buckets = _buckets(session, flt, bucket)
        with _match_traces(session, buckets.flt, whole=True) as buckets.matched:
            statements = _cached(buckets.key("trace totals"), lambda: [
                select(_key(i), *_trace_totals()).where(*buckets.traces(i)) for i in range(len(buckets.ranges))
            ])
            totals = {row[0]: row[1:] for row in _run(session, statements, buckets.params)}
            latency = buckets.percentiles(
                session, "latency", Trace.duration_ms, buckets.traces,
                [_int(totals[i][2]) for i in range(len(buckets.ranges))], LATENCY_PERCENTILES,
                by_day=None if buckets.attributes.attribute_count() else buckets.trace_day)
    rows = []
    for i, (start, _, _) in enumerate(buckets.ranges):
        requests, errors, _, input_tokens, output_tokens, cost = totals[i]
        requests, errors = _int(requests), _int(errors)
        rows.append({
            "bucket": start, "requests": requests, "errors": errors, "error_rate": _ratio(errors, requests),
            **{f"latency_p{p}_ms": latency[i][p] for p in LATENCY_PERCENTILES},
            "input_tokens": _int(input_tokens), "output_tokens": _int(output_tokens), "cost_usd": float(cost or 0),
        })
    return rows


def ttft_timeseries(url: str, flt: TraceFilter, bucket: timedelta | None = None) -> list[dict[str, Any]]:
    """Time to first token of LLM spans per time bucket, oldest first.

    One dict a bucket: ``bucket``, ``llm_calls`` (LLM spans started in it), ``ttft_p50_ms`` and
    ``ttft_p95_ms`` (over the spans that recorded a time to first token; None when none did).
    """
    with read_session(url) as session:
        flt = _resolved(session, flt)
    assert flt.start is not None and flt.end is not None
    days = _rolled_days(url, flt, ("names", "models")) if (bucket or bucket_for(flt)) == timedelta(days=1) else []
    with read_session(url) as session:
        buckets = _buckets(session, flt, bucket)
        # A span's trace may have started before the window (as a day's rollup counts it).
        traces_from = flt.start - _longest_trace(session) if flt.attribute_count() else flt.start
        with _match_traces(session, replace(buckets.flt, start=traces_from)) as buckets.matched:
            # Closed days' counts from their rollups; the other buckets' from the calls.
            rolled = rollups.read_call_days(session, days, flt.names, flt.models)
            counts = {i: rolled[b.date()] for i, (b, _, _) in enumerate(buckets.ranges)
                      if i in buckets.days and b.date() in rolled}
            live = tuple(i for i in range(len(buckets.ranges)) if i not in counts)
            statements = _cached(buckets.key("llm counts", live), lambda: [
                select(_key(i), func.count(), func.count(Span.ttft_ms)).where(*buckets.llm_spans(i)) for i in live
            ]) if live else []
            counts.update({row[0]: row[1:] for row in _run(session, statements, buckets.params)})
            ttft = buckets.percentiles(session, "ttft", Span.ttft_ms, buckets.llm_spans,
                                       [_int(counts[i][1]) for i in range(len(buckets.ranges))], TTFT_PERCENTILES,
                                       by_day=buckets.llm_day)
    return [
        {"bucket": start, "llm_calls": _int(counts[i][0]),
         **{f"ttft_p{p}_ms": ttft[i][p] for p in TTFT_PERCENTILES}}
        for i, (start, _, _) in enumerate(buckets.ranges)
    ]


def _score_term(i: int, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
    return (select(_key(i), Score.name, Score.source, func.avg(Score.value), func.count(Score.value))
            .select_from(Trace).join(Score, Score.trace_id == Trace.id)
            .where(*where, Score.value.is_not(None)).group_by(Score.name, Score.source))


def score_series_label(name: str, source: str) -> str:
    """How a (score name, source) series is named in legends: ``correctness (LLM judge)``."""
    return f"{name} ({SOURCE_LABELS.get(source, source)})"


def score_timeseries(url: str, flt: TraceFilter, bucket: timedelta | None = None) -> list[dict[str, Any]]:
    """Mean numeric score per time bucket, per score name and source, oldest first.

    One dict per bucket and (name, source) seen in the window: ``bucket``, ``name``, ``source``
    (``human``, ``llm_judge``, ``code``, ``user_feedback``), ``series`` (a legend label),
    ``mean`` (None in a bucket without such scores) and ``count``. Scores without a numeric
    value (labels only) are left out. Sorted by series, then time.
    """
    with read_session(url) as session:
        buckets = _buckets(session, flt, bucket)
        with _match_traces(session, buckets.flt, whole=True) as buckets.matched:
            statements = _cached(buckets.key("scores"), lambda: [
                _score_term(i, buckets.traces(i)) for i in range(len(buckets.ranges))
            ])
            found = _run(session, statements, buckets.params)
    cells = {(row[0], row[1], row[2]): (_float(row[3]), _int(row[4])) for row in found}
    series = sorted({(name, source) for _, name, source in cells})
    return [
        {"bucket": start, "name": name, "source": source, "series": score_series_label(name, source),
         "mean": cells.get((i, name, source), (None, 0))[0], "count": cells.get((i, name, source), (None, 0))[1]}
        for name, source in series
        for i, (start, _, _) in enumerate(buckets.ranges)
    ]


# --- Summary (KPIs) ---------------------------------------------------------------------------------

KPIS = ("requests", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "cost_usd",
        "input_tokens", "output_tokens", "total_tokens")


def _kpis(session: Session, flt: TraceFilter) -> tuple[dict[str, Any], dict[tuple[str, str], tuple[float | None, int]]]:
    assert flt.start is not None and flt.end is not None
    window = _Buckets(session, flt, [(flt.start, flt.start, flt.end)])
    with _match_traces(session, flt, whole=True) as window.matched:
        return _window_kpis(session, flt, window)


def _window_kpis(session: Session, flt: TraceFilter,
                 window: _Buckets) -> tuple[dict[str, Any], dict[tuple[str, str], tuple[float | None, int]]]:
    totals = _cached(window.key("summary totals"), lambda: [select(_key(0), *_trace_totals()).where(*window.traces(0))])
    [(_, requests, errors, finished, input_tokens, output_tokens, cost)] = _run(session, totals, window.params)
    # A window holding much of the table: walk the duration index in order, testing the window
    # in each entry (a month's median: 100,000 entries, no sort, no sample).
    in_order = window.window_in_order if (not flt.attribute_count() and _int(finished) >= _BRACKET_MIN
                                          and window_share(session, flt) >= _IN_ORDER) else None
    latency = window.percentiles(session, "latency", Trace.duration_ms, window.traces, [_int(finished)], (50, 95),
                                 in_order=in_order)[0]
    requests, errors, input_tokens, output_tokens = map(_int, (requests, errors, input_tokens, output_tokens))
    kpis = {
        "requests": requests, "errors": errors, "error_rate": _ratio(errors, requests),
        "latency_p50_ms": latency[50], "latency_p95_ms": latency[95], "cost_usd": float(cost or 0),
        "input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens,
    }
    statements = _cached(window.key("summary scores"), lambda: [_score_term(0, window.traces(0))])
    scores = {(row[1], row[2]): (_float(row[3]), _int(row[4])) for row in _run(session, statements, window.params)}
    return kpis, scores


def change(current: float | None, previous: float | None) -> tuple[float | None, float | None]:
    """(absolute, relative) change from ``previous`` to ``current``; relative is None from 0 or nothing."""
    if current is None or previous is None:
        return None, None
    absolute = current - previous
    return absolute, (absolute / previous if previous else None)


def summary(url: str, flt: TraceFilter, compare: bool = True) -> dict[str, Any]:
    """The window's KPIs and mean scores, with the previous period of the same length to compare.

    Returns ``{"start", "end", "previous_start", "previous_end", "kpis", "scores"}``:

    - ``kpis``: one dict per name of ``KPIS`` (requests, errors, error_rate, latency_p50_ms,
      latency_p95_ms, cost_usd, input_tokens, output_tokens, total_tokens), each
      ``{"value", "previous", "change", "change_pct"}``;
    - ``scores``: a list of ``{"name", "source", "series", "mean", "count", "previous",
      "previous_count", "change", "change_pct"}``, one per score name and source seen in either
      period.

    ``change`` is value minus previous, ``change_pct`` that over previous (a fraction: 0.25 is
    +25%); both are None when a side is missing, ``change_pct`` also when previous is 0. Without
    ``compare`` (or for an open-ended window) the previous fields are None.
    """
    with read_session(url) as session:
        flt = _resolved(session, flt)
        kpis, scores = _kpis(session, flt)
        before = flt.previous_period() if compare else None
        previous_kpis, previous_scores = _kpis(session, before) if before else ({}, {})
    result_kpis = {}
    for name in KPIS:
        value, previous = kpis[name], previous_kpis.get(name)
        absolute, relative = change(value, previous)
        result_kpis[name] = {"value": value, "previous": previous, "change": absolute, "change_pct": relative}
    result_scores = []
    for key in sorted(set(scores) | set(previous_scores)):
        mean, count = scores.get(key, (None, 0))
        previous_mean, previous_count = previous_scores.get(key, (None, 0))
        absolute, relative = change(mean, previous_mean)
        result_scores.append({
            "name": key[0], "source": key[1], "series": score_series_label(*key), "mean": mean, "count": count,
            "previous": previous_mean if before else None, "previous_count": previous_count if before else None,
            "change": absolute, "change_pct": relative,
        })
    return {
        "start": flt.start, "end": flt.end,
        "previous_start": before.start if before else None, "previous_end": before.end if before else None,
        "kpis": result_kpis, "scores": result_scores,
    }


# --- Breakdowns ---------------------------------------------------------------------------------------

_TRACE_GROUPS = {"name": Trace.name, "release": Trace.release, "user": Trace.user_id}
_MAX_GROUP_TERMS = 200


def _equals(column: Any, value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def breakdown(url: str, flt: TraceFilter, by: str, limit: int = BREAKDOWN_LIMIT) -> list[dict[str, Any]]:
    """Volume, errors, p95 latency, cost, tokens and mean scores per model, trace name, release or user.

    ``by`` is one of ``BREAKDOWNS``. ``model`` groups LLM calls (their own latency, cost and
    tokens; ``requests`` counts calls); the others group traces. Rows, busiest first, at most
    ``limit``: ``{"key", "requests", "errors", "error_rate", "latency_p95_ms", "cost_usd",
    "input_tokens", "output_tokens", "scores"}`` where ``key`` is None for traces without a value
    (no release, no user) and ``scores`` maps each score name to the mean of its numeric values
    (of the traces in the group; for a model, of the traces that called it, a trace counted once
    for each UTC day on which it did).

    Model, name and release breakdowns read a window's closed days from per-day rollups
    (``looplab.monitoring.rollups``) when the filter is one they carry (names and models for
    the model breakdown; names, releases, environments and statuses for the others), and the rest
    of the window (today, a clipped first day, days not built) from the rows themselves.
    """
    if by not in BREAKDOWNS:
        raise ConfigError(f"Cannot break down by {by!r}; use one of {', '.join(BREAKDOWNS)}.")
    with read_session(url) as session:
        flt = _resolved(session, flt)
    assert flt.start is not None and flt.end is not None
    carried = _ROLLED_FILTERS.get(by)
    days = _rolled_days(url, flt, carried) if carried is not None else []
    with read_session(url) as session, ExitStack() as stack:
        if by == "model":
            grouping = _calls_grouping(session, stack, flt, days)
        else:
            grouping = _traces_grouping(session, stack, flt, by, days)
        rolled = grouping.rolled
        live = rollups.uncovered(flt.start, flt.end, rolled.days)
        sums = rolled.groups
        for key, row in _live_totals(session, grouping, live):
            sums.setdefault(key, rollups.Sums()).add(*row)
        groups = sorted(((key, t) for key, t in sums.items() if t.count),
                        key=lambda g: (-g[1].count, g[0] is None, g[0] or ""))[:limit]
        p95 = _group_p95(session, grouping, grouping.where(flt.start, flt.end),
                         [grouping.where(lo, hi) for lo, hi in live], groups)
        # A model's traces count once a day (what a day's rollup can add up): its live scores too.
        pieces = rollups.day_pieces(live) if by == "model" else live
        scores = _group_scores(session, grouping, [grouping.where(lo, hi) for lo, hi in pieces], groups)
    return [_breakdown_row(key, t.count, t.errors, p95[key], t.input_tokens, t.output_tokens, t.cost_usd,
                           scores.get(key, {})) for key, t in groups]


def _rolled_days(url: str, flt: TraceFilter, carried: Sequence[str]) -> list[Any]:
    """The closed days of ``flt``'s (resolved) window, their rollups built, when the rollups carry
    every filter of ``flt`` (``carried``: ``TraceFilter`` field names); none otherwise."""
    assert flt.start is not None and flt.end is not None
    if replace(_attributes(flt), **dict.fromkeys(carried, ())).attribute_count():
        return []
    days = rollups.closed_days(flt.start, flt.end)
    try:
        rollups.ensure_days(url, days)
    except SQLAlchemyError as err:  # a database this process may only read: every row is read instead
        log.warning("looplab: could not build the monitoring rollups (%s); reading the rows instead",
                    getattr(err, "orig", None) or err)
    return days


def _breakdown_row(key: Any, requests: Any, errors: Any, p95: float | None, input_tokens: Any, output_tokens: Any,
                   cost: Any, scores: dict[str, float]) -> dict[str, Any]:
    requests, errors = _int(requests), _int(errors)
    return {"key": key, "requests": requests, "errors": errors, "error_rate": _ratio(errors, requests),
            "latency_p95_ms": p95, "cost_usd": float(cost or 0), "input_tokens": _int(input_tokens),
            "output_tokens": _int(output_tokens), "scores": scores}


# Which filters the rollups carry, per breakdown (none for users: too many to sum up per day).
_ROLLED_FILTERS = {"model": ("names", "models"), "name": ("names", "releases", "environments", "statuses"),
                   "release": ("names", "releases", "environments", "statuses")}
_MAX_INSIDE = 20_000  # values a p95 bracket may hold before the heap is the cheaper way


@dataclass
class _Grouping:
    """What one breakdown groups and how: the column, the latency, the totals, the rows of a range
    (``where(start, end)``), one group's rows, and what the rollups of its closed days say.
    ``grouped(start, end)``: a range's rows as a ``GROUP BY`` reads them best, when there are too
    many groups for one statement term each."""

    column: Any
    value: Any
    totals: list[Any]
    where: Callable[[Any, Any], list[ColumnElement[bool]]]
    of_group: Callable[[Sequence[ColumnElement[bool]], Any], list[ColumnElement[bool]]]
    rolled: rollups.RolledUp
    grouped: Callable[[Any, Any], list[ColumnElement[bool]]] | None = None


def _calls_grouping(session: Session, stack: ExitStack, flt: TraceFilter, days: Sequence[Any]) -> _Grouping:
    """LLM calls per model. A trace filter selects the calls of the traces it matches, whenever
    those started (as a day's rollup knows them): from the longest trace before the window."""
    assert flt.start is not None
    traces_from = flt.start - _longest_trace(session) if flt.attribute_count() else flt.start
    matched = stack.enter_context(_match_traces(session, replace(flt, start=traces_from)))

    def of_model(where: Sequence[ColumnElement[bool]], key: Any) -> list[ColumnElement[bool]]:
        # For calls without a model, ix_spans_model_start's "model IS NULL" range would hold every
        # span that is not an LLM call (600,000 in a month of the benchmark, for usually no row
        # at all); the window's range of LLM calls in ix_spans_kind_start is read instead.
        if key is None:
            return [*where, _not_a_driver(Span.model).is_(None)]
        return [*where, Span.model == key]

    return _Grouping(
        Span.model, Span.duration_ms,
        rollups.measures(Span.status, Span.duration_ms, (Span.input_tokens, Span.output_tokens, Span.cost_usd)),
        lambda start, end: _llm_where(flt, start, end, traces_from, matched), of_model,
        rollups.read_calls(session, days, flt.names, flt.models),
    )


def _traces_grouping(session: Session, stack: ExitStack, flt: TraceFilter, by: str, days: Sequence[Any]) -> _Grouping:
    """Traces per name, release or user."""
    column = _TRACE_GROUPS[by]
    matched = stack.enter_context(_match_traces(session, flt, whole=True))

    def traces(start: Any, end: Any) -> list[ColumnElement[bool]]:
        return _matched_traces(start, end) if matched else trace_conditions(replace(flt, start=start, end=end))

    rolled = (rollups.read_traces(session, days, by, {"name": flt.names, "release": flt.releases,
                                                      "environment": flt.environments, "status": flt.statuses})
              if by in _ROLLED_FILTERS else rollups.RolledUp(set(), {}))
    return _Grouping(
        column, Trace.duration_ms, _trace_totals(),
        traces, lambda where, key: [*where, _equals(column, key)],
        rolled,
        # A month of users: reading every trace in user order beats sorting the window's.
        grouped=(lambda start, end: _in_user_order(replace(flt, start=start, end=end)))
        if by == "user" and _by_user_index(session, flt) else None,
    )


def _live_totals(session: Session, grouping: _Grouping,
                 ranges: Sequence[tuple[datetime, datetime]]) -> list[tuple[Any, Any]]:
    """(group key, totals row) for each group seen in each of ``ranges``."""
    if not ranges:
        return []
    column = grouping.column
    candidates = _distinct_by_skipping(session, column) if column is not Trace.user_id else None
    if candidates is None or len(candidates) >= _MAX_GROUP_TERMS:
        found = []
        for start, end in ranges:
            where = (grouping.grouped or grouping.where)(start, end)
            found += [(row[0], row[1:]) for row in
                      session.execute(select(column, *grouping.totals).where(*where).group_by(column))]
        return found
    # Few values with an index leading on them (models, names, releases): one index range a
    # value, instead of sorting the window to group it.
    candidates.append(None)
    width = len(candidates)
    ranges_where = [grouping.where(start, end) for start, end in ranges]
    rows = _run(session, _statements([
        select(_key(i * width + j), *grouping.totals).where(*grouping.of_group(where, key))
        for i, where in enumerate(ranges_where) for j, key in enumerate(candidates)
    ]))
    return [(candidates[row[0] % width], row[1:]) for row in rows if row[1]]


def _group_p95(session: Session, grouping: _Grouping, window: Sequence[ColumnElement[bool]],
               live: Sequence[Sequence[ColumnElement[bool]]],
               groups: Sequence[tuple[Any, rollups.Sums]]) -> dict[Any, float | None]:
    """Each group's p95 latency over the ``window``: read between two bounds of its rollups'
    histogram where they have one (the few values inside, and the values below counted from the
    histogram and the ``live`` ranges), the plain way otherwise."""
    value, found = grouping.value, {key: None for key, _ in groups}
    brackets: dict[int, tuple[Any, float | None, float | None, int]] = {}
    for i, (key, sums) in enumerate(groups):
        counted = int(sums.histogram.sum())
        if not sums.finished or not counted:
            continue
        rank, unknown = _rank(95, sums.finished), sums.finished - counted
        bounds = rollups.bracket(sums.histogram, unknown, rank)
        if bounds is None:
            continue
        low, high = bounds
        low_count = rollups.below(sums.histogram, low)
        high_count = counted if high is None else rollups.below(sums.histogram, high)
        if high_count - low_count + unknown <= _MAX_INSIDE:
            brackets[i] = (key, low, high, rank - low_count)

    def between(where: Sequence[ColumnElement[bool]], low: float | None, high: float | None) -> list[Any]:
        tests = [value.is_not(None)]
        tests += [] if low is None else [value + 0 >= low]
        tests += [] if high is None else [value + 0 < high]
        # The bracket first: SQLite tests the terms in the order written, so a trace filter's
        # probe then runs for the few rows inside the bracket only.
        return [*tests, *where]

    inside: dict[int, list[float]] = {i: [] for i in brackets}
    for i, v in _run(session, _statements([
        select(_key(i), value).where(*between(grouping.of_group(window, key), low, high))
        for i, (key, low, high, _) in brackets.items()
    ])):
        inside[i].append(v)
    live_below: dict[int, int] = {}
    for i, count in _run(session, _statements([
        select(_key(i), func.count()).where(value + 0 < low, *grouping.of_group(where, key))
        for i, (key, low, _, _) in brackets.items() if low is not None for where in live
    ])):
        live_below[i] = live_below.get(i, 0) + int(count)
    plain = []
    for i, (key, sums) in enumerate(groups):
        if i in brackets:
            wanted = brackets[i][3] - live_below.get(i, 0)  # the rank among the values inside
            values = sorted(inside[i])
            if 1 <= wanted <= len(values):
                found[key] = float(values[wanted - 1])
                continue
        if sums.finished:
            plain.append((i, grouping.of_group(window, key), sums.finished))
    for i, p in _percentile_rows(session, value, plain, (95,)).items():
        found[groups[i][0]] = p[95]
    return found


def _group_scores(session: Session, grouping: _Grouping, pieces: Sequence[Sequence[ColumnElement[bool]]],
                  groups: Sequence[tuple[Any, rollups.Sums]]) -> dict[Any, dict[str, float]]:
    """{group key: {score name: mean}}: the rollups' sums plus those of each live piece (added to
    the groups' ``Sums``)."""
    sums = dict(groups)
    keys = list(sums)
    column = grouping.column
    rows: list[Any] = []
    if keys and column is Span.model:
        # A trace may call several models: one term a model, over the traces that called it.
        found = _run(session, _statements([
            select(_key(i * len(keys) + j), Score.name, func.sum(Score.value), func.count(Score.value))
            .where(Score.trace_id.in_(select(Span.trace_id).where(*grouping.of_group(where, key))),
                   Score.value.is_not(None)).group_by(Score.name)
            for i, where in enumerate(pieces) for j, key in enumerate(keys)
        ]))
        rows = [(keys[k % len(keys)], *rest) for k, *rest in found]
    elif keys:
        for where in pieces:
            rows += session.execute(
                select(column, Score.name, func.sum(Score.value), func.count(Score.value))
                .select_from(Trace).join(Score, Score.trace_id == Trace.id)
                .where(*where, _in(column, keys), Score.value.is_not(None)).group_by(column, Score.name)).all()
    for key, name, total, count in rows:
        sums[key].add_score(name, total, count)
    return {key: {name: total / count for name, (total, count) in group.scores.items() if count}
            for key, group in sums.items()}


def _in(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    values = list(values)
    present = [v for v in values if v is not None]
    tests = [column.in_(present)] if present else []
    if len(present) < len(values):
        tests.append(column.is_(None))
    return or_(*tests) if tests else literal(False)


# --- Values for the filter widgets -------------------------------------------------------------------


def _distinct_by_skipping(session: Session, column: Any, where: Sequence[ColumnElement[bool]] = ()) -> list[Any]:
    """Distinct non-null values of an indexed ``column``, by jumping from one to the next.

    Each step is one index seek (``min(column) where column > previous``), so listing the 6 names
    of a million traces costs 7 seeks instead of a scan.
    """
    seen = select(func.min(column).label("v")).where(column.is_not(None), *where).cte("seen", recursive=True)
    step = select(func.min(column)).where(column > seen.c.v, *where).scalar_subquery()
    seen = seen.union_all(select(step.label("v")).where(seen.c.v.is_not(None)))
    values = session.scalars(select(seen.c.v).where(seen.c.v.is_not(None)).limit(OPTIONS_LIMIT * 10)).all()
    return list(values)


def filter_options(url: str, flt: TraceFilter) -> dict[str, list[str]]:
    """The values each filter widget offers, keyed by ``TraceFilter`` field name.

    ``names``, ``models``, ``providers``, ``releases``, ``environments`` and ``statuses``: the
    values seen in ``flt``'s window (its attribute filters are ignored, so more values stay
    selectable), sorted. ``user_ids`` and ``session_ids``: the ``OPTIONS_LIMIT`` busiest in the
    window. ``tags``: every tag stored (tags are few and have no time of their own).
    """
    with read_session(url) as session:
        flt = _resolved(session, TraceFilter(start=flt.start, end=flt.end))
        assert flt.start is not None and flt.end is not None
        window = [Trace.start_time >= flt.start, Trace.start_time < flt.end]
        names = [n for n in _distinct_by_skipping(session, Trace.name) if session.scalar(
            select(literal(1)).where(select(Trace.id).where(Trace.name == n, *window).exists()))]
        span_window = [Span.start_time >= flt.start, Span.start_time < flt.end]
        models = [m for m in _distinct_by_skipping(session, Span.model) if session.scalar(
            select(literal(1)).where(select(Span.id).where(Span.model == m, *span_window).exists()))]
        with_provider = [Span.provider.is_not(None)]  # ix_spans_provider_start is partial on it
        providers = [p for p in _distinct_by_skipping(session, Span.provider, with_provider) if session.scalar(
            select(literal(1)).where(select(literal(1)).where(Span.provider == p, *with_provider, *span_window).exists()))]
        tags = _distinct_by_skipping(session, TraceTag.tag)
        combos = session.execute(select(Trace.release, Trace.environment, Trace.status).where(*window).distinct()).all()
        busiest: dict[str, list[str]] = {}
        by_user_index = _by_user_index(session, flt)
        for key, column in (("user_ids", Trace.user_id), ("session_ids", Trace.session_id)):
            volume = func.count().label("volume")
            busiest[key] = list(session.scalars(
                select(column).where(*(_in_user_order(flt) if by_user_index else window),
                                     column.is_not(None)).group_by(column)
                .order_by(volume.desc(), column).limit(OPTIONS_LIMIT)
            ))
    return {
        "names": sorted(names)[:OPTIONS_LIMIT],
        "models": sorted(models)[:OPTIONS_LIMIT],
        "providers": sorted(p for p in providers if p),
        "tags": sorted(tags)[:OPTIONS_LIMIT],
        "user_ids": busiest["user_ids"],
        "session_ids": busiest["session_ids"],
        "releases": sorted({r for r, _, _ in combos if r}),
        "environments": sorted({e for _, e, _ in combos if e}),
        "statuses": sorted({s for _, _, s in combos if s}),
    }
