"""Turning queued records into table rows, on the writer thread.

This is where SDK objects are read, payloads serialised, secrets masked, the user's redaction
applied, cost computed, and a trace's totals rolled up from its spans.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from looplab.tracing.pricing import PRICING_SOURCE, cost_usd
from looplab.tracing.records import ScoreRecord, SpanRecord
from looplab.tracing.redaction import to_storable

log = logging.getLogger("looplab")

_MAX_OPEN_TRACES = 100_000
REDACTION_FAILED = "[redaction failed]"


@dataclass
class Rows:
    """Rows for one insert transaction, table by table."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    traces: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        """How many records these rows stand for (trace and tag rows are derived from spans)."""
        return len(self.spans) + len(self.scores)

    def extend(self, other: "Rows") -> None:
        self.spans.extend(other.spans)
        self.traces.extend(other.traces)
        self.tags.extend(other.tags)
        self.scores.extend(other.scores)


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


class _Totals:
    __slots__ = ("spans", "errors", "input_tokens", "output_tokens", "cost")

    def __init__(self) -> None:
        self.spans = 0
        self.errors = 0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cost: float | None = None


class RowBuilder:
    """Converts records to rows; keeps each open trace's running totals until its root arrives."""

    def __init__(self, redact: Callable[[Any], Any] | None) -> None:
        self._redact = redact
        self._open: OrderedDict[str, _Totals] = OrderedDict()
        self.redaction_failures = 0

    def _payload(self, value: Any) -> Any:
        if value is None:
            return None
        stored = to_storable(value)
        if self._redact is None:
            return stored
        try:
            # Masked again: the user's function may return new objects.
            return to_storable(self._redact(stored))
        except Exception:
            self.redaction_failures += 1
            log.exception("looplab: the redact function raised; the payload is not stored")
            return REDACTION_FAILED

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
                            record.cached_tokens)
            pricing = PRICING_SOURCE if cost is not None else None
        input_payload = self._payload(record.input)
        output_payload = self._payload(record.output)
        rows.spans.append(
            {
                "id": record.span_id,
                "trace_id": record.trace_id,
                "parent_id": record.parent_id,
                "kind": record.kind,
                "name": record.name[:255],
                "start_time": _utc(record.start_ns),
                "end_time": _utc(record.end_ns),
                "duration_ms": record.duration_ms,
                "input_json": input_payload,
                "output_json": output_payload,
                "provider": record.provider,
                "model": record.model,
                "params_json": to_storable(record.params) if record.params else None,
                "finish_reason": record.finish_reason,
                "input_tokens": record.input_tokens,
                "output_tokens": record.output_tokens,
                "cached_tokens": record.cached_tokens,
                "cost_usd": cost,
                "pricing_source": pricing,
                "ttft_ms": record.ttft_ms,
                "status": record.status,
                "error": record.error,
                "attributes_json": to_storable(record.attributes) if record.attributes else None,
            }
        )
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
        rows.traces.append(
            {
                "id": record.trace_id,
                "name": (info.name or record.name)[:255],
                "start_time": _utc(record.start_ns),
                "end_time": _utc(record.end_ns),
                "duration_ms": record.duration_ms,
                "session_id": info.session_id,
                "user_id": info.user_id,
                "release": info.release,
                "environment": info.environment,
                "tags_json": list(info.tags) if info.tags else None,
                "metadata_json": to_storable(info.metadata) if info.metadata else None,
                "input_json": input_payload,
                "output_json": output_payload,
                "status": record.status,
                "error": record.error,
                "span_count": totals.spans,
                "error_count": totals.errors,
                "input_tokens": totals.input_tokens,
                "output_tokens": totals.output_tokens,
                "cost_usd": totals.cost,
            }
        )
        for tag in dict.fromkeys(info.tags or ()):
            rows.tags.append({"trace_id": record.trace_id, "tag": str(tag)[:255]})

    def _score_row(self, record: ScoreRecord) -> dict[str, Any]:
        return {
            "id": record.score_id,
            "trace_id": record.trace_id,
            "span_id": record.span_id,
            "name": record.name,
            "value": record.value,
            "label": record.label,
            "comment": record.comment,
            "source": record.source,
            "author": record.author,
            "created_at": record.created_at,
            "metadata_json": to_storable(record.metadata) if record.metadata else None,
        }
