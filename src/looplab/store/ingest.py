"""Writing whole traces given as dicts: the shape ``looplab export traces`` produces, read back.

Used by ``looplab seed`` (sample data), by imports, and by tests that need a known history
without running an app. Traces already in the store (same id) are left alone, so loading the
same file twice adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from itertools import islice
from typing import Any
from uuid import uuid4

from sqlalchemy import insert, select

from looplab.errors import ConfigError
from looplab.store.engine import write_session
from looplab.store.models import Score, Span, Trace, TraceTag
from looplab.timeparse import parse_when

CHUNK = 500


def insert_traces(url: str, traces: Iterable[Mapping[str, Any]]) -> int:
    """Store each trace with its spans and scores; returns how many traces were new.

    A trace is a dict with the keys of ``looplab export traces`` (``trace_id``, ``name``,
    ``start_time``, ..., ``spans``) plus optional ``scores``: dicts with ``name``, ``value``
    and/or ``label``, ``source``, ``comment``, ``author``, ``span_id``, ``created_at``. Times are
    ISO 8601 strings or datetimes. Each chunk of traces is one transaction; a malformed trace
    raises ``ConfigError`` naming it and its chunk is not stored.
    """
    added = 0
    iterator = iter(traces)
    while chunk := list(islice(iterator, CHUNK)):
        ids = [_required(t, "trace_id") for t in chunk]
        with write_session(url) as session:
            existing = set(session.scalars(select(Trace.id).where(Trace.id.in_(ids))))
            trace_rows, span_rows, tag_rows, score_rows = [], [], [], []
            for trace in chunk:
                if trace["trace_id"] in existing:
                    continue
                existing.add(trace["trace_id"])
                try:
                    _rows(trace, trace_rows, span_rows, tag_rows, score_rows)
                except (KeyError, TypeError, ValueError, ConfigError) as exc:
                    raise ConfigError(f"Trace {trace['trace_id']!r} is malformed: {exc}") from None
            for model, rows in ((Trace, trace_rows), (Span, span_rows), (TraceTag, tag_rows), (Score, score_rows)):
                if rows:
                    session.execute(insert(model), rows)
            added += len(trace_rows)
    return added


def _required(record: Mapping[str, Any], key: str) -> Any:
    value = record.get(key)
    if value in (None, ""):
        raise ConfigError(f"A record has no {key!r}: {str(dict(record))[:200]}")
    return value


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return parse_when(str(value), datetime.now())


def _rows(trace: Mapping[str, Any], traces: list, spans: list, tags: list, scores: list) -> None:
    trace_id = trace["trace_id"]
    start, end = _time(_required(trace, "start_time")), _time(trace.get("end_time"))
    span_list = trace.get("spans") or []
    for span in span_list:
        span_start, span_end = _time(_required(span, "start_time")), _time(span.get("end_time"))
        latency = span.get("latency_ms")
        if latency is None and span_end is not None and span_start is not None:
            latency = (span_end - span_start).total_seconds() * 1000
        spans.append({
            "trace_id": trace_id, "id": _required(span, "span_id"), "parent_id": span.get("parent_id"),
            "kind": span.get("kind") or "span", "name": span.get("name") or "span",
            "start_time": span_start, "end_time": span_end, "duration_ms": latency,
            "input_json": span.get("input"), "output_json": span.get("output"),
            "provider": span.get("provider"), "model": span.get("model"), "params_json": span.get("params"),
            "finish_reason": span.get("finish_reason"), "input_tokens": span.get("input_tokens"),
            "output_tokens": span.get("output_tokens"), "cached_tokens": span.get("cached_tokens"),
            "cost_usd": span.get("cost_usd"), "pricing_source": span.get("pricing_source"),
            "ttft_ms": span.get("ttft_ms"), "status": span.get("status") or "ok", "error": span.get("error"),
            "attributes_json": span.get("attributes") or None,
        })
    trace_tags = list(dict.fromkeys(str(t) for t in trace.get("tags") or ()))
    traces.append({
        "id": trace_id, "name": trace.get("name"), "start_time": start, "end_time": end,
        "duration_ms": (end - start).total_seconds() * 1000 if end is not None and start is not None else None,
        "session_id": trace.get("session_id"), "user_id": trace.get("user_id"), "release": trace.get("release"),
        "environment": trace.get("environment"), "tags_json": trace_tags or None,
        "metadata_json": trace.get("metadata") or None, "input_json": trace.get("input"),
        "output_json": trace.get("output"), "status": trace.get("status") or "ok", "error": trace.get("error"),
        "span_count": len(span_list) or 1,
        "error_count": sum(s.get("status") == "error" for s in span_list),
        "input_tokens": trace.get("input_tokens", _total(span_list, "input_tokens")),
        "output_tokens": trace.get("output_tokens", _total(span_list, "output_tokens")),
        "cost_usd": trace.get("cost_usd", _total(span_list, "cost_usd")),
    })
    tags.extend({"trace_id": trace_id, "tag": tag} for tag in trace_tags)
    for score in trace.get("scores") or ():
        scores.append({
            "id": score.get("score_id") or uuid4().hex, "trace_id": trace_id, "span_id": score.get("span_id"),
            "name": _required(score, "name"), "value": score.get("value"), "label": score.get("label"),
            "comment": score.get("comment"), "source": score.get("source") or "human",
            "author": score.get("author"), "created_at": _time(score.get("created_at")) or end or start,
            "metadata_json": score.get("metadata") or None,
        })


def _total(spans: list[Mapping[str, Any]], key: str) -> Any:
    values = [s[key] for s in spans if s.get(key) is not None]
    return sum(values) if values else None
