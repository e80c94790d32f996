"""Telling the monitoring rollups that a closed day changed, from the writers of traces and spans.

Triggers (migration 0008) forget a day's rollups when its LLM calls change or are deleted, its
traces are deleted, or their scores change. Traces and spans are inserted by looplab's writers
only (the tracing writer, OTLP ingest, imports), and on SQLite a trigger on the table makes every
insert statement keep a statement journal (a copy of each 16 KB page it touches; one-row OTLP
trace upserts paid it for every trace): a tenth of the ingest throughput. Those writers call the
functions below instead; nearly every row they write is of today, which costs one comparison.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Connection, delete, or_, select

from looplab.store.engine import IDS_PER_QUERY
from looplab.store.models import RollupDay, Span, utc_day


def forget_days_of_traces(conn: Connection, traces: Iterable[tuple[str, Any]]) -> None:
    """Forget the rollups of the closed UTC days these ``(trace id, start time)`` rows touch: the
    day each trace started and the days of its LLM calls. Start times are datetimes (naive UTC or
    aware) or ISO text; call it after the rows are written, in the same transaction."""
    today = datetime.now(timezone.utc).date()
    old: dict[str, date] = {}
    for trace_id, start in traces:
        day = _day(start)
        if day is not None and day < today:
            old[trace_id] = day
    ids = list(old)
    for i in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[i:i + IDS_PER_QUERY]
        calls = select(utc_day(Span.start_time)).where(Span.trace_id.in_(chunk), Span.kind == "llm")
        conn.execute(delete(RollupDay).where(or_(RollupDay.day.in_({old[t] for t in chunk}),
                                                 RollupDay.day.in_(calls))))


def forget_days_of_calls(conn: Connection, calls: Iterable[tuple[str, Any]]) -> None:
    """Forget the rollups of the closed UTC days on which these ``(kind, start time)`` span rows
    started, for LLM calls (start times as for ``forget_days_of_traces``)."""
    today = datetime.now(timezone.utc).date()
    days = {day for kind, start in calls if kind == "llm" and (day := _day(start)) is not None and day < today}
    if days:
        conn.execute(delete(RollupDay).where(RollupDay.day.in_(days)))


def _day(start: Any) -> date | None:
    if isinstance(start, datetime):
        return (start.astimezone(timezone.utc) if start.tzinfo else start).date()
    if isinstance(start, str) and len(start) >= 10:
        return date.fromisoformat(start[:10])
    return None
