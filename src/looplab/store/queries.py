"""Read-side query functions the CLI and the UI share: they return plain, JSON-ready data.

Large results stream: traces are read in pages by keyset pagination on ``(start_time, id)`` and
each page's spans come in one ``IN`` query, so memory stays bounded by one page whatever the
size of the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from looplab.store.engine import read_session
from looplab.store.models import Span, Trace
from looplab.timeparse import iso_utc

EXPORT_PAGE_SIZE = 500

TRACE_EXPORT_KEYS = (
    "trace_id", "name", "start_time", "end_time", "session_id", "user_id", "tags", "metadata", "release",
    "environment", "input", "output", "status", "error", "cost_usd", "input_tokens", "output_tokens", "spans",
)
SPAN_EXPORT_KEYS = (
    "span_id", "parent_id", "kind", "name", "provider", "model", "input", "output", "input_tokens",
    "output_tokens", "cached_tokens", "cost_usd", "latency_ms", "ttft_ms", "status", "error", "start_time",
    "end_time", "attributes",
)
# One CSV row a trace: the trace-level fields, JSON payloads as JSON text, and the span count.
TRACE_CSV_COLUMNS = (*TRACE_EXPORT_KEYS[:-1], "span_count")
_JSON_CSV_COLUMNS = frozenset({"tags", "metadata", "input", "output"})


# --- Trace export ---------------------------------------------------------------------------------


def iter_traces_for_export(
    url: str,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = EXPORT_PAGE_SIZE,
    *,
    with_spans: bool = True,
) -> Iterator[dict[str, Any]]:
    """Every trace that started at or after ``since`` and before ``until``, oldest first.

    Each trace is a JSON-ready dict with the keys of ``TRACE_EXPORT_KEYS``; ``spans`` lists the
    trace's spans by start time (keys of ``SPAN_EXPORT_KEYS``). With ``with_spans=False`` the
    spans are not read and ``span_count`` replaces ``spans``. Times are ISO 8601 UTC strings.
    Each page is read in its own short transaction, so a long export never holds one open.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    window = []
    if since is not None:
        window.append(Trace.start_time >= since)
    if until is not None:
        window.append(Trace.start_time < until)
    after: tuple[datetime, str] | None = None
    while True:
        query = select(Trace.__table__).where(*window).order_by(Trace.start_time, Trace.id).limit(page_size)
        if after is not None:
            last_start, last_id = after
            # The ">=" bound lets the start_time index seek to the page; "OR" then skips the ties already read.
            query = query.where(
                Trace.start_time >= last_start, or_(Trace.start_time > last_start, Trace.id > last_id)
            )
        with read_session(url) as session:
            traces = session.execute(query).all()
            if not traces:
                return
            ids = [t.id for t in traces]
            if with_spans:
                spans = _spans_by_trace(session.execute(
                    select(Span.__table__).where(Span.trace_id.in_(ids)).order_by(Span.start_time, Span.id)
                ).all())
            else:
                counts = dict(session.execute(
                    select(Span.trace_id, func.count()).where(Span.trace_id.in_(ids)).group_by(Span.trace_id)
                ).all())
        for trace in traces:
            exported = _trace_dict(trace)
            if with_spans:
                exported["spans"] = [_span_dict(s) for s in spans.get(trace.id, ())]
            else:
                exported["span_count"] = counts.get(trace.id, 0)
            yield exported
        if len(traces) < page_size:
            return
        after = (traces[-1].start_time, traces[-1].id)


def _spans_by_trace(rows: Sequence[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.trace_id, []).append(row)
    return grouped


def _trace_dict(row: Any) -> dict[str, Any]:
    return {
        "trace_id": row.id,
        "name": row.name,
        "start_time": iso_utc(row.start_time),
        "end_time": iso_utc(row.end_time),
        "session_id": row.session_id,
        "user_id": row.user_id,
        "tags": row.tags_json or [],
        "metadata": row.metadata_json or {},
        "release": row.release,
        "environment": row.environment,
        "input": row.input_json,
        "output": row.output_json,
        "status": row.status,
        "error": row.error,
        "cost_usd": row.cost_usd,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
    }


def _span_dict(row: Any) -> dict[str, Any]:
    return {
        "span_id": row.id,
        "parent_id": row.parent_id,
        "kind": row.kind,
        "name": row.name,
        "provider": row.provider,
        "model": row.model,
        "input": row.input_json,
        "output": row.output_json,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cached_tokens": row.cached_tokens,
        "cost_usd": row.cost_usd,
        "latency_ms": row.duration_ms,
        "ttft_ms": row.ttft_ms,
        "status": row.status,
        "error": row.error,
        "start_time": iso_utc(row.start_time),
        "end_time": iso_utc(row.end_time),
        "attributes": row.attributes_json or {},
    }


def trace_csv_row(trace: dict[str, Any]) -> list[Any]:
    """A trace from ``iter_traces_for_export`` as the cells of ``TRACE_CSV_COLUMNS``.

    Tags, metadata, input and output are JSON text; missing values are empty cells.
    """
    row = {**trace, "span_count": trace["span_count"] if "span_count" in trace else len(trace["spans"])}
    cells = []
    for column in TRACE_CSV_COLUMNS:
        value = row[column]
        if column in _JSON_CSV_COLUMNS:
            cells.append("" if value is None else json.dumps(value, ensure_ascii=False))
        else:
            cells.append("" if value is None else value)
    return cells
