"""Turning queued records into table rows, on the writer thread.

This is where SDK objects are read, payloads serialised, secrets masked, the user's redaction
applied, cost computed, and a trace's totals rolled up from its spans. Rows are tuples in the
column order below, ready for the driver's ``executemany``: at tens of thousands of spans a
second, per-value processing by the ORM cost more than the database itself.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from looplab.tracing.payloads import dump_json, to_storable
from looplab.tracing.pricing import PRICING_SOURCE, cost_usd
from looplab.tracing.records import ScoreRecord, SpanRecord

log = logging.getLogger("looplab")

_MAX_OPEN_TRACES = 100_000
REDACTION_FAILED = "[redaction failed]"

SPAN_COLUMNS = (
    "trace_id", "id", "parent_id", "kind", "name", "start_time", "end_time", "duration_ms", "input_json",
    "output_json", "provider", "model", "params_json", "finish_reason", "input_tokens", "output_tokens",
    "cached_tokens", "cost_usd", "pricing_source", "ttft_ms", "status", "error", "attributes_json",
)
TRACE_COLUMNS = (
    "id", "name", "start_time", "end_time", "duration_ms", "session_id", "user_id", "release", "environment",
    "tags_json", "metadata_json", "input_json", "output_json", "status", "error", "span_count", "error_count",
    "input_tokens", "output_tokens", "cost_usd",
)
TAG_COLUMNS = ("trace_id", "tag")
SCORE_COLUMNS = (
    "id", "trace_id", "span_id", "name", "value", "label", "comment", "source", "author", "created_at",
    "metadata_json",
)
# Where each table's row id sits, for naming a row the database refused.
ID_POSITION = {"spans": 1, "traces": 0, "scores": 0}

TimeToDb = Callable[[int], Any]


class SqliteTime:
    """Nanoseconds since the epoch as the UTC text SQLAlchemy's SQLite DateTime reads back.

    Spans of a batch mostly share their second, so its formatted part is cached: formatting a
    datetime each time was the writer's largest single cost.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, ns: int) -> str:
        second, rest = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{rest // 1000:06d}"


def naive_utc(ns: int) -> datetime:
    """Nanoseconds since the epoch as a UTC time without tzinfo, as ``UTCDateTime`` stores it."""
    return datetime(1970, 1, 1) + timedelta(microseconds=ns // 1000)


@dataclass
class Rows:
    """Rows for one insert transaction, table by table."""

    spans: list[tuple[Any, ...]] = field(default_factory=list)
    traces: list[tuple[Any, ...]] = field(default_factory=list)
    tags: list[tuple[Any, ...]] = field(default_factory=list)
    scores: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        """How many records these rows stand for (trace and tag rows are derived from spans)."""
        return len(self.spans) + len(self.scores)

    def extend(self, other: "Rows") -> None:
        self.spans.extend(other.spans)
        self.traces.extend(other.traces)
        self.tags.extend(other.tags)
        self.scores.extend(other.scores)


class _Totals:
    __slots__ = ("spans", "errors", "input_tokens", "output_tokens", "cost")

    def __init__(self) -> None:
        self.spans = 0
        self.errors = 0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cost: float | None = None


def payload_json(value: Any, redact: Callable[[Any], Any] | None) -> tuple[str | None, bool]:
    """A payload as stored JSON, through the user's ``redact`` function when there is one, and
    whether that function raised (the payload is then stored as ``REDACTION_FAILED``, never as
    it was). Secrets are masked either way."""
    if value is None:
        return None, False
    if redact is None:
        return dump_json(value), False
    try:
        # Masked again afterwards: the user's function may return new objects.
        return dump_json(redact(to_storable(value))), False
    except Exception:
        log.exception("looplab: the redact function raised; the payload is not stored")
        return dump_json(REDACTION_FAILED), True


class RowBuilder:
    """Converts records to rows; keeps each open trace's running totals until its root arrives."""

    def __init__(self, redact: Callable[[Any], Any] | None, time_to_db: TimeToDb) -> None:
        self._redact = redact
        self._time = time_to_db
        self._open: OrderedDict[str, _Totals] = OrderedDict()
        self.redaction_failures = 0

    def _payload(self, value: Any) -> str | None:
        text, failed = payload_json(value, self._redact)
        self.redaction_failures += failed
        return text

    def add(self, record: SpanRecord | ScoreRecord, rows: Rows) -> None:
        """Append the rows for one record."""
        if isinstance(record, ScoreRecord):
            rows.scores.append(self._score_row(record))
            return
        if record.extract is not None:
            try:
                record.extract(record)
            except Exception:
                # The call itself succeeded; keep what is known rather than lose the span.
                log.exception("looplab: could not read the SDK response of span %s", record.span_id)
                record.attributes = {**(record.attributes or {}), "looplab.extract_failed": True}
        cost = record.cost_usd
        pricing = None
        if cost is None and record.kind in ("llm", "embedding"):
            cost = cost_usd(record.provider, record.model, record.input_tokens, record.output_tokens,
                            record.cached_tokens, record.cache_write_tokens)
            pricing = PRICING_SOURCE if cost is not None else None
        input_json = self._payload(record.input)
        output_json = self._payload(record.output)
        start = self._time(record.start_ns)
        end = self._time(record.end_ns)
        rows.spans.append((
            record.trace_id, record.span_id, record.parent_id, record.kind, record.name[:255], start, end,
            record.duration_ms, input_json, output_json, record.provider, record.model,
            dump_json(record.params) if record.params else None, record.finish_reason, record.input_tokens,
            record.output_tokens, record.cached_tokens, cost, pricing, record.ttft_ms, record.status, record.error,
            dump_json(record.attributes) if record.attributes else None,
        ))
        totals = self._open.pop(record.trace_id, None) or _Totals()
        totals.spans += 1
        totals.errors += record.status == "error"
        if record.input_tokens is not None:
            totals.input_tokens = (totals.input_tokens or 0) + record.input_tokens
        if record.output_tokens is not None:
            totals.output_tokens = (totals.output_tokens or 0) + record.output_tokens
        if cost is not None:
            totals.cost = (totals.cost or 0.0) + cost
        if record.parent_id is not None or record.trace is None:
            self._open[record.trace_id] = totals
            if len(self._open) > _MAX_OPEN_TRACES:
                self._open.popitem(last=False)
            return
        info = record.trace
        tags = [str(tag)[:255] for tag in dict.fromkeys(info.tags or ())]
        rows.traces.append((
            record.trace_id, (info.name or record.name)[:255], start, end, record.duration_ms, info.session_id,
            info.user_id, info.release, info.environment, dump_json(tags) if tags else None,
            dump_json(info.metadata) if info.metadata else None, input_json, output_json, record.status,
            record.error, totals.spans, totals.errors, totals.input_tokens, totals.output_tokens, totals.cost,
        ))
        rows.tags.extend((record.trace_id, tag) for tag in tags)

    def _score_row(self, record: ScoreRecord) -> tuple[Any, ...]:
        return (
            record.score_id, record.trace_id, record.span_id, record.name, record.value, record.label,
            record.comment, record.source, record.author, self._time(record.created_ns),
            dump_json(record.metadata) if record.metadata else None,
        )
