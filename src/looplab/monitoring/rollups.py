"""Per-day rollups of traces and LLM calls: what a breakdown over weeks adds up instead of
reading every trace or call of the window again.

Each closed UTC day is summed up once (migration 0008 has the tables):

- its traces per (name, release, environment, status): count, finished, tokens, cost, a latency
  histogram, and the numeric scores of those traces (sum and count per score name);
- its LLM calls per (trace name, model): calls, errors, finished, tokens, cost, a latency
  histogram, and the numeric scores of the traces that called the model that day (a trace
  counted once a day).

``rollup_days`` lists the days whose sums are true. A day's row is deleted when anything its sums
depend on changes: by the triggers of migration 0008 for changes and deletions, by looplab's
writers for the spans and traces they insert (``looplab.store.stale_days``). ``ensure_days``
builds such a day again when a breakdown next needs it.

Only days that ended ``SETTLE`` ago or more are built: the writers report rows of the days before
today, and the hour covers a transaction still writing into the day that just ended and a little
difference between the clocks.

The histogram's buckets grow by 1%: bucket ``b`` holds ``BOUNDS[b] <= ms < BOUNDS[b + 1]``,
compared with the same floats the database compares, so the count of a day's values below any
bound is exact. A window's percentile is then read between two bounds (``bracket``): exact, from
a handful of values instead of a heap of 5% of the window. A histogram is stored as bytes (the
first bucket, then the counts up to the last one, little-endian) and added up with numpy: a month
of them is hundreds of rows of a few hundred buckets.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, case, delete, func, insert, select, text
from sqlalchemy.orm import Session

from looplab.store.engine import read_session, write_session
from looplab.store.models import (
    LlmRollup,
    LlmScoreRollup,
    RollupDay,
    Score,
    Span,
    Trace,
    TraceRollup,
    TraceScoreRollup,
)
from looplab.store.types import utcnow

SETTLE = timedelta(hours=1)
DAY = timedelta(days=1)
LLM = "llm"


def _bounds(first: float = 0.01, growth: float = 1.01, count: int = 2200) -> tuple[float, ...]:
    # Multiplied step by step, not ``first * growth ** i``: IEEE multiplication rounds the same on
    # every machine, pow() need not, and the bounds must agree wherever rollups are read.
    bounds = [first]
    for _ in range(count - 1):
        bounds.append(bounds[-1] * growth)
    return tuple(bounds)


BOUNDS = _bounds()  # 0.01 ms up to about nine hours; the last bucket is open above


def bucket_of(ms: float) -> int:
    """The histogram bucket of a latency: -1 below ``BOUNDS[0]`` (zero, negative), else the ``b``
    with ``BOUNDS[b] <= ms < BOUNDS[b + 1]``."""
    return bisect_right(BOUNDS, ms) - 1


def _bucket_low(b: int) -> float | None:
    return None if b < 0 else BOUNDS[b]


def _bucket_high(b: int) -> float | None:
    return BOUNDS[b + 1] if b + 1 < len(BOUNDS) else None


_SLOTS = len(BOUNDS) + 1  # a histogram array's slot i counts bucket i - 1 (slot 0: below BOUNDS[0])
_HEAD = np.dtype("<i4")
_COUNTS = np.dtype("<u4")


def empty_histogram() -> np.ndarray:
    """A histogram array with nothing counted."""
    return np.zeros(_SLOTS, dtype=np.int64)


def histogram_bytes(counts: Counter[int]) -> bytes:
    """``{bucket: count}`` as stored: the first bucket, then each count up to the last bucket."""
    if not counts:
        return b""
    first, last = min(counts), max(counts)
    dense = np.zeros(last - first + 1, dtype=_COUNTS)
    for b, n in counts.items():
        dense[b - first] = n
    return np.array([first], dtype=_HEAD).tobytes() + dense.tobytes()


def add_histogram(histogram: np.ndarray, stored: bytes) -> None:
    """Add a stored histogram to a histogram array, in place."""
    if not stored:
        return
    first = int(np.frombuffer(stored, dtype=_HEAD, count=1)[0])
    dense = np.frombuffer(stored, dtype=_COUNTS, offset=_HEAD.itemsize)
    histogram[first + 1:first + 1 + len(dense)] += dense


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def closed_days(start: datetime, end: datetime, now: datetime | None = None) -> list[date]:
    """The whole UTC days inside ``[start, end)`` that ended ``SETTLE`` before ``now`` or earlier."""
    until = min(end, (now or datetime.now(timezone.utc)) - SETTLE)
    day = start.astimezone(timezone.utc).date()
    if _midnight(day) < start:
        day += DAY
    days = []
    while _midnight(day) + DAY <= until:
        days.append(day)
        day += DAY
    return days


# --- Building ----------------------------------------------------------------------------------------


def ensure_days(url: str, days: Sequence[date]) -> int:
    """Build the rollups of those ``days`` that have no true ones; returns how many it built.

    Each day is one write transaction. On PostgreSQL it first locks ``rollup_days`` against the
    deletes of triggers and writers, so a call written while the day is read waits and then
    deletes the new row; SQLite's write lock does the same for the whole transaction.
    """
    if not days:
        return 0
    with read_session(url) as session:
        built = _true_days(session, days)
    count = 0
    for day in days:
        if day in built:
            continue
        with write_session(url) as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("LOCK TABLE rollup_days IN SHARE ROW EXCLUSIVE MODE"))
            if session.get(RollupDay, day) is not None:  # another process built it meanwhile
                continue
            build_day(session, day)
            count += 1
    return count


def build_day(session: Session, day: date) -> None:
    """Sum ``day``'s traces and LLM calls up (in ``session``'s transaction, which must hold the lock)."""
    # This day's old sums, and those of any day the triggers forgot and nobody built again (a
    # pruned month): only days listed in rollup_days keep theirs.
    for table in (LlmRollup, LlmScoreRollup, TraceRollup, TraceScoreRollup):
        session.execute(delete(table).where(table.day.not_in(select(RollupDay.day))))
    start = _midnight(day)
    _build_calls(session, day, [Span.kind == LLM, Span.start_time >= start, Span.start_time < start + DAY])
    _build_traces(session, day, [Trace.start_time >= start, Trace.start_time < start + DAY])
    session.add(RollupDay(day=day, built_at=utcnow()))


def measures(status: Any, value: Any, tokens: Sequence[Any]) -> list[Any]:
    """The aggregates a breakdown adds up, in ``Sums.add``'s order: rows, errors (``status`` is
    "error"), finished (``value``, the latency, recorded), then the sums of ``tokens`` (input
    tokens, output tokens, cost)."""
    return [func.count(), func.coalesce(func.sum(case((status == "error", 1), else_=0)), 0), func.count(value),
            *[func.coalesce(func.sum(t), 0) for t in tokens]]


def _histograms(session: Session, statement: Any) -> dict[tuple[Any, ...], Counter[int]]:
    """{key: Counter of buckets} from rows of (*key, value in ms)."""
    histograms: dict[tuple[Any, ...], Counter[int]] = {}
    for *key, ms in session.execute(statement):
        histograms.setdefault(tuple(key), Counter())[bucket_of(ms)] += 1
    return histograms


def _build_calls(session: Session, day: date, calls: list[ColumnElement[bool]]) -> None:
    # A call's trace name is its trace row's; a trace not written yet has none.
    named = (select(Trace.name, Span.model).select_from(Span)
             .outerjoin(Trace, Trace.id == Span.trace_id).where(*calls))
    totals = session.execute(named.add_columns(
        *measures(Span.status, Span.duration_ms, (Span.input_tokens, Span.output_tokens, Span.cost_usd)),
        func.count(Span.ttft_ms),
    ).group_by(Trace.name, Span.model)).all()
    histograms = _histograms(session, named.add_columns(Span.duration_ms).where(Span.duration_ms.is_not(None)))
    if totals:
        session.execute(insert(LlmRollup), [
            {"day": day, "trace_name": name, "model": model, "calls": n, "errors": errors, "finished": finished,
             "input_tokens": input_tokens, "output_tokens": output_tokens, "cost_usd": float(cost),
             "with_ttft": with_ttft, "latency_histogram": histogram_bytes(histograms.get((name, model), Counter()))}
            for name, model, n, errors, finished, input_tokens, output_tokens, cost, with_ttft in totals])
    pairs = select(Span.trace_id, Span.model).where(*calls).distinct().subquery()
    scores = session.execute(
        select(Trace.name, pairs.c.model, Score.name, func.sum(Score.value), func.count(Score.value))
        .select_from(pairs).join(Score, Score.trace_id == pairs.c.trace_id)
        .outerjoin(Trace, Trace.id == pairs.c.trace_id).where(Score.value.is_not(None))
        .group_by(Trace.name, pairs.c.model, Score.name)
    ).all()
    if scores:
        session.execute(insert(LlmScoreRollup), [
            {"day": day, "trace_name": name, "model": model, "score_name": score_name, "total": float(total),
             "count": n} for name, model, score_name, total, n in scores])


def _build_traces(session: Session, day: date, traces: list[ColumnElement[bool]]) -> None:
    keys = (Trace.name, Trace.release, Trace.environment, Trace.status)
    totals = session.execute(select(
        *keys, *measures(Trace.status, Trace.duration_ms, (Trace.input_tokens, Trace.output_tokens, Trace.cost_usd)),
    ).where(*traces).group_by(*keys)).all()
    histograms = _histograms(session, select(*keys, Trace.duration_ms).where(*traces, Trace.duration_ms.is_not(None)))
    if totals:
        session.execute(insert(TraceRollup), [
            {"day": day, **dict(zip(TRACE_KEYS, key)), "traces": n, "finished": finished,
             "input_tokens": input_tokens, "output_tokens": output_tokens, "cost_usd": float(cost),
             "latency_histogram": histogram_bytes(histograms.get(tuple(key), Counter()))}
            for *key, n, _, finished, input_tokens, output_tokens, cost in totals])  # errors: the status key
    scores = session.execute(
        select(*keys, Score.name, func.sum(Score.value), func.count(Score.value)).select_from(Trace)
        .join(Score, Score.trace_id == Trace.id).where(*traces, Score.value.is_not(None)).group_by(*keys, Score.name)
    ).all()
    if scores:
        session.execute(insert(TraceScoreRollup), [
            {"day": day, **dict(zip(TRACE_KEYS, key)), "score_name": score_name, "total": float(total), "count": n}
            for *key, score_name, total, n in scores])


# --- Reading -----------------------------------------------------------------------------------------


@dataclass
class Sums:
    """A group's sums over some days (or live ranges): what a breakdown adds up."""

    count: int = 0
    errors: int = 0
    finished: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    histogram: np.ndarray = field(default_factory=empty_histogram)
    scores: dict[str, list[float]] = field(default_factory=dict)  # score name -> [total, count]

    def add(self, count: Any, errors: Any, finished: Any, input_tokens: Any, output_tokens: Any, cost: Any) -> None:
        self.count += int(count or 0)
        self.errors += int(errors or 0)
        self.finished += int(finished or 0)
        self.input_tokens += int(input_tokens or 0)
        self.output_tokens += int(output_tokens or 0)
        self.cost_usd += float(cost or 0)

    def add_score(self, name: str, total: Any, count: Any) -> None:
        kept = self.scores.setdefault(name, [0.0, 0])
        kept[0] += float(total or 0)
        kept[1] += int(count or 0)


@dataclass
class RolledUp:
    """What the true rollups of a window's closed days say: the days they cover, and per group."""

    days: set[date]
    groups: dict[Any, Sums]


TRACE_KEYS = ("name", "release", "environment", "status")


def read_calls(session: Session, days: Sequence[date], names: Iterable[str] = (),
               models: Iterable[str] = ()) -> RolledUp:
    """The LLM call rollups of those ``days`` that are true in ``session``'s snapshot, summed per
    model (only calls of traces named one of ``names`` and of ``models``, when given)."""
    return _read(session, days, LlmRollup, LlmScoreRollup, "model",
                 {"trace_name": names, "model": models}, LlmRollup.calls, LlmRollup.errors)


def read_call_days(session: Session, days: Sequence[date], names: Iterable[str] = (),
                   models: Iterable[str] = ()) -> dict[date, tuple[int, int]]:
    """{day: (LLM calls, calls that recorded a time to first token)} for those ``days`` whose
    rollups are true in ``session``'s snapshot (only calls of traces named one of ``names`` and of
    ``models``, when given)."""
    true_days = _true_days(session, days)
    found = dict.fromkeys(true_days, (0, 0))
    if not true_days:
        return found
    for day, calls, with_ttft in session.execute(
        select(LlmRollup.day, func.sum(LlmRollup.calls), func.sum(LlmRollup.with_ttft))
        .where(*_kept(LlmRollup, true_days, {"trace_name": names, "model": models})).group_by(LlmRollup.day)
    ):
        found[day] = (int(calls or 0), int(with_ttft or 0))
    return found


def read_traces(session: Session, days: Sequence[date], by: str, where: Mapping[str, Iterable[str]]) -> RolledUp:
    """The trace rollups of those ``days`` that are true in ``session``'s snapshot, summed per
    value of ``by`` (one of ``TRACE_KEYS``); ``where`` maps some of ``TRACE_KEYS`` to the values
    kept (none: all)."""
    errors = case((TraceRollup.status == "error", TraceRollup.traces), else_=0)
    return _read(session, days, TraceRollup, TraceScoreRollup, by, where, TraceRollup.traces, errors)


def _read(session: Session, days: Sequence[date], table: Any, score_table: Any, by: str,
          where: Mapping[str, Iterable[str]], count: Any, errors: Any) -> RolledUp:
    true_days = _true_days(session, days)
    if not true_days:
        return RolledUp(set(), {})
    groups: dict[Any, Sums] = {}
    for key, *totals, histogram in session.execute(select(
        getattr(table, by), count, errors, table.finished, table.input_tokens, table.output_tokens, table.cost_usd,
        table.latency_histogram,
    ).where(*_kept(table, true_days, where))):
        sums = groups.setdefault(key, Sums())
        sums.add(*totals)
        add_histogram(sums.histogram, histogram)
    column = getattr(score_table, by)
    for key, score_name, total, n in session.execute(
        select(column, score_table.score_name, func.sum(score_table.total), func.sum(score_table.count))
        .where(*_kept(score_table, true_days, where)).group_by(column, score_table.score_name)
    ):
        groups.setdefault(key, Sums()).add_score(score_name, total, n)
    return RolledUp(true_days, groups)


def _true_days(session: Session, days: Sequence[date]) -> set[date]:
    """Those of ``days`` whose rollups are true in ``session``'s snapshot."""
    return set(session.scalars(select(RollupDay.day).where(RollupDay.day.in_(days)))) if days else set()


def _kept(table: Any, days: Iterable[date], where: Mapping[str, Iterable[str]]) -> list[ColumnElement[bool]]:
    """A rollup table's rows of ``days`` whose columns hold the values ``where`` keeps (none: all)."""
    return [table.day.in_(sorted(days)),
            *[getattr(table, column).in_(list(values)) for column, values in where.items() if values]]


def uncovered(start: datetime, end: datetime, days: Iterable[date]) -> list[tuple[datetime, datetime]]:
    """The ranges of ``[start, end)`` that ``days`` (whole UTC days inside it) leave out, in order."""
    ranges, moment = [], start
    for day in sorted(days):
        if moment < _midnight(day):
            ranges.append((moment, _midnight(day)))
        moment = max(moment, _midnight(day) + DAY)
    if moment < end:
        ranges.append((moment, end))
    return ranges


def day_pieces(ranges: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """``ranges`` cut at each UTC midnight."""
    pieces = []
    for start, end in ranges:
        moment = start
        while moment < end:
            cut = min(end, _midnight(moment.astimezone(timezone.utc).date()) + DAY)
            pieces.append((moment, cut))
            moment = cut
    return pieces


def bracket(histogram: np.ndarray, unknown: int, rank: int) -> tuple[float | None, float | None] | None:
    """Two bucket bounds ``(low, high)`` such that, of the values the ``histogram`` counts plus
    ``unknown`` values not in it, fewer than ``rank`` lie below ``low`` and at least ``rank`` below
    ``high`` (None: no bound on that side); None when the histogram cannot place the rank."""
    upto = np.cumsum(histogram)  # upto[i]: values in slots 0..i
    if not len(upto) or int(upto[-1]) + unknown < rank:
        return None
    before = upto - histogram  # before[i]: values in the slots below slot i
    # The last slot below which fewer than `rank` lie even if every unknown value does too.
    low_slot = int(np.searchsorted(before, rank - unknown, side="left")) - 1
    high_slot = int(np.searchsorted(upto, rank, side="left"))  # the first slot that reaches `rank`
    low = _bucket_low(low_slot - 1) if low_slot >= 0 else None
    high = _bucket_high(high_slot - 1) if high_slot < len(upto) else None
    return low, high


def below(histogram: np.ndarray, bound: float | None) -> int:
    """How many of the ``histogram``'s values lie below ``bound`` (a bucket bound; None: none)."""
    if bound is None:
        return 0
    return int(histogram[:bucket_of(bound) + 1].sum())
