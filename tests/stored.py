"""Reading back what tracing stored, as plain dicts, for assertions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

import looplab
from looplab.store.engine import read_session
from looplab.store.models import Score, Span, Trace


def _as_dict(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


def stored_traces(url: str) -> list[dict[str, Any]]:
    """Every stored trace, oldest first."""
    with read_session(url) as session:
        return [_as_dict(t) for t in session.scalars(select(Trace).order_by(Trace.start_time, Trace.id))]


def stored_spans(url: str, trace_id: str | None = None) -> list[dict[str, Any]]:
    """Every stored span (of one trace if given), in start order."""
    query = select(Span).order_by(Span.start_time, Span.id)
    if trace_id is not None:
        query = query.where(Span.trace_id == trace_id)
    with read_session(url) as session:
        return [_as_dict(s) for s in session.scalars(query)]


def stored_scores(url: str) -> list[dict[str, Any]]:
    """Every stored score."""
    with read_session(url) as session:
        return [_as_dict(s) for s in session.scalars(select(Score).order_by(Score.created_at))]


def only_span(url: str) -> dict[str, Any]:
    """Flush, then the one span stored (failing if there is not exactly one)."""
    assert looplab.flush()
    spans = stored_spans(url)
    assert len(spans) == 1, spans
    return spans[0]
