"""Writing whole traces given as dicts: the shape ``looplab export traces`` produces, read back.

Used by ``looplab seed`` (sample data), by imports, and by tests that need a known history
without running an app. Traces already in the store (same id) are left alone, so loading the
same file twice adds nothing.

Every record is checked before anything is written, so a malformed trace is a ``ConfigError``
that names it and what is wrong, never a constraint violation from the database halfway through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from itertools import islice
from typing import Any
from uuid import uuid4

from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from looplab.errors import ConfigError, StoreError
from looplab.store.engine import write_session
from looplab.store.models import (
    SCORE_SOURCES,
    SPAN_KINDS,
    STATUSES,
    Score,
    ScoreConfig,
    Span,
    Trace,
    TraceTag,
)
from looplab.store.stale_days import forget_days_of_calls, forget_days_of_traces

CHUNK = 500

# (table, rows key) in the order rows are inserted; Core inserts: the rows are plain dicts already.
_TABLES = ((Trace.__table__, "traces"), (Span.__table__, "spans"), (TraceTag.__table__, "tags"),
           (Score.__table__, "scores"))


def insert_traces(url: str, traces: Iterable[Mapping[str, Any]]) -> int:
    """Store each trace with its spans and scores; returns how many traces were new.

    A trace is a dict with the keys of ``looplab export traces`` (``trace_id``, ``name``,
    ``start_time``, ..., ``spans``) plus optional ``scores``: dicts with ``name``, ``value``
    and/or ``label``, ``source``, ``comment``, ``author``, ``span_id``, ``created_at``,
    ``metadata`` and optionally ``score_id``. A score is linked to the score config of the same
    name, if there is one. Times are ISO 8601 strings (UTC unless they carry an offset) or
    datetimes.

    Each chunk of ``CHUNK`` traces is one transaction: a malformed trace raises ``ConfigError``
    naming it, and nothing of its chunk is stored (earlier chunks stay). A database that cannot be
    written raises ``StoreError``.
    """
    added = 0
    iterator = iter(traces)
    while chunk := list(islice(iterator, CHUNK)):
        ids = [_trace_id(t) for t in chunk]
        try:
            with write_session(url) as session:
                existing = set(session.scalars(select(Trace.id).where(Trace.id.in_(ids))))
                configs: dict[str, int] = {}
                if any(t.get("scores") for t in chunk):
                    configs = dict(session.execute(  # type: ignore[arg-type]
                        select(ScoreConfig.name, ScoreConfig.id).where(ScoreConfig.archived_at.is_(None))
                    ).all())
                rows: dict[str, list[dict[str, Any]]] = {"traces": [], "spans": [], "tags": [], "scores": []}
                for trace_id, trace in zip(ids, chunk):
                    if trace_id in existing:
                        continue
                    existing.add(trace_id)  # the same id twice in one input: the first wins
                    try:
                        _rows(trace_id, trace, rows, configs)
                    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
                        raise ConfigError(f"Trace {trace_id!r} is malformed: {exc}") from None
                for table, key in _TABLES:
                    if rows[key]:
                        session.execute(insert(table), rows[key])
                forget_days_of_calls(session.connection(), ((s["kind"], s["start_time"]) for s in rows["spans"]))
                forget_days_of_traces(session.connection(), ((t["id"], t["start_time"]) for t in rows["traces"]))
        except SQLAlchemyError as err:
            raise StoreError(f"Cannot store traces in {_display(url)}: {getattr(err, 'orig', None) or err}") from err
        added += len(rows["traces"])
    return added


def _display(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _trace_id(trace: Any) -> str:
    if not isinstance(trace, Mapping):
        raise ConfigError(f"A trace must be a JSON object, not {type(trace).__name__}: {str(trace)[:200]}")
    value = trace.get("trace_id")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"A trace has no 'trace_id' (a non-empty string): {str(dict(trace))[:200]}")
    return value


def _required(record: Mapping[str, Any], key: str, what: str) -> Any:
    value = record.get(key)
    if value in (None, ""):
        raise ConfigError(f"{what} has no {key!r}")
    return value


def _time(value: Any, what: str) -> datetime | None:
    """An ISO 8601 string or a datetime as an aware UTC datetime (naive means UTC)."""
    if value is None:
        return None
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if not isinstance(moment, datetime):
        raise ConfigError(f"{what} {value!r} is not an ISO 8601 time (e.g. 2026-11-01T10:00:00Z)")
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _number(record: Mapping[str, Any], key: str, what: str, *, integer: bool = False) -> Any:
    value = record.get(key)
    if value is None:
        return None
    # bool is an int in Python; a score of True is fine, a token count of True is a mistake.
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or (integer and isinstance(value, bool)):
        raise ConfigError(f"{what} has {key}={value!r}; it must be a {'whole ' if integer else ''}number")
    return value


def _one_of(record: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str, what: str) -> str:
    value = record.get(key) or default
    if value not in allowed:
        raise ConfigError(f"{what} has {key}={value!r}; use one of {', '.join(allowed)}")
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{what} must be a list, not {type(value).__name__}")
    return list(value)


def _rows(trace_id: str, trace: Mapping[str, Any], rows: dict[str, list[dict[str, Any]]],
          configs: Mapping[str, int]) -> None:
    """Append the trace's rows (trace, spans, tags, scores) to ``rows``; raises on anything malformed."""
    start, end = _time(_required(trace, "start_time", "The trace"), "start_time"), _time(trace.get("end_time"), "end_time")
    span_list = [_mapping(s, "Each span") for s in _list(trace.get("spans"), "spans")]
    seen: set[str] = set()
    spans = []
    for span in span_list:
        span_id = _required(span, "span_id", "A span")
        what = f"Span {span_id!r}"
        if not isinstance(span_id, str):
            raise ConfigError(f"{what} has a span_id that is not a string")
        if span_id in seen:
            raise ConfigError(f"{what} appears twice")
        seen.add(span_id)
        span_start, span_end = _time(_required(span, "start_time", what), "start_time"), _time(span.get("end_time"), "end_time")
        latency = _number(span, "latency_ms", what)
        if latency is None and span_end is not None:
            latency = (span_end - span_start).total_seconds() * 1000
        attributes = span.get("attributes")
        spans.append({
            "trace_id": trace_id, "id": span_id, "parent_id": span.get("parent_id"),
            "kind": _one_of(span, "kind", SPAN_KINDS, "span", what), "name": span.get("name") or "span",
            "start_time": span_start, "end_time": span_end, "duration_ms": latency,
            "input_json": span.get("input"), "output_json": span.get("output"),
            "provider": span.get("provider"), "model": span.get("model"),
            "params_json": _mapping(span["params"], f"{what}'s params") if span.get("params") else None,
            "finish_reason": span.get("finish_reason"),
            "input_tokens": _number(span, "input_tokens", what, integer=True),
            "output_tokens": _number(span, "output_tokens", what, integer=True),
            "cached_tokens": _number(span, "cached_tokens", what, integer=True),
            "cost_usd": _number(span, "cost_usd", what), "pricing_source": span.get("pricing_source"),
            "ttft_ms": _number(span, "ttft_ms", what), "status": _one_of(span, "status", STATUSES, "ok", what),
            "error": span.get("error"),
            "attributes_json": _mapping(attributes, f"{what}'s attributes") if attributes else None,
        })
    trace_tags = list(dict.fromkeys(str(t) for t in _list(trace.get("tags"), "tags")))
    metadata = trace.get("metadata")
    rows["traces"].append({
        "id": trace_id, "name": trace.get("name"), "start_time": start, "end_time": end,
        "duration_ms": (end - start).total_seconds() * 1000 if end is not None else None,
        "session_id": trace.get("session_id"), "user_id": trace.get("user_id"), "release": trace.get("release"),
        "environment": trace.get("environment"), "tags_json": trace_tags or None,
        "metadata_json": _mapping(metadata, "metadata") if metadata else None, "input_json": trace.get("input"),
        "output_json": trace.get("output"), "status": _one_of(trace, "status", STATUSES, "ok", "The trace"),
        "error": trace.get("error"), "span_count": len(spans) or 1,
        "error_count": sum(s["status"] == "error" for s in spans),
        # An export carries the trace's own totals (even None); without them, the spans' sums.
        "input_tokens": _number(trace, "input_tokens", "The trace", integer=True)
        if "input_tokens" in trace else _total(spans, "input_tokens"),
        "output_tokens": _number(trace, "output_tokens", "The trace", integer=True)
        if "output_tokens" in trace else _total(spans, "output_tokens"),
        "cost_usd": _number(trace, "cost_usd", "The trace") if "cost_usd" in trace else _total(spans, "cost_usd"),
    })
    rows["spans"].extend(spans)
    rows["tags"].extend({"trace_id": trace_id, "tag": tag} for tag in trace_tags)
    for score in _list(trace.get("scores"), "scores"):
        score = _mapping(score, "Each score")
        name = _required(score, "name", "A score")
        what = f"Score {name!r}"
        score_metadata = score.get("metadata")
        rows["scores"].append({
            "id": score.get("score_id") or uuid4().hex, "trace_id": trace_id, "span_id": score.get("span_id"),
            "name": name, "value": _number(score, "value", what), "label": score.get("label"),
            "comment": score.get("comment"), "source": _one_of(score, "source", SCORE_SOURCES, "human", what),
            "author": score.get("author"), "config_id": configs.get(name),
            "created_at": _time(score.get("created_at"), "created_at") or end or start,
            "metadata_json": _mapping(score_metadata, f"{what}'s metadata") if score_metadata else None,
        })


def _total(spans: list[dict[str, Any]], key: str) -> Any:
    values = [s[key] for s in spans if s.get(key) is not None]
    return sum(values) if values else None
