"""Building OTLP export requests for the OTLP ingest tests: protobuf messages and OTLP JSON."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import (
    ResourceSpans,
    ScopeSpans,
    Span,
    Status,
)

from looplab.otlp.decode import PROTOBUF

# The headers of a protobuf export.
PB = {"content-type": PROTOBUF}


def new_trace_id() -> bytes:
    return os.urandom(16)


def new_span_id() -> bytes:
    return os.urandom(8)


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, (list, tuple)):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(key_values(value))
        return out
    raise TypeError(type(value))


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def span(
    trace_id: bytes,
    span_id: bytes,
    name: str = "span",
    parent_id: bytes = b"",
    start_ns: int | None = None,
    duration_ns: int = 5_000_000,
    attributes: dict[str, Any] | None = None,
    error: str | None = None,
    events: list[tuple[str, dict[str, Any]]] | None = None,
) -> Span:
    start = start_ns if start_ns is not None else time.time_ns()
    out = Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent_id, name=name,
               kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start, end_time_unix_nano=start + duration_ns)
    out.attributes.extend(key_values(attributes or {}))
    if error is not None:
        out.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    for event_name, event_attributes in events or ():
        event = out.events.add(name=event_name, time_unix_nano=start)
        event.attributes.extend(key_values(event_attributes))
    return out


def request(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    resource_spans = ResourceSpans()
    resource_spans.resource.attributes.extend(key_values(resource or {"service.name": "tests"}))
    scope_spans = ScopeSpans()
    scope_spans.scope.name = "tests"
    scope_spans.spans.extend(spans)
    resource_spans.scope_spans.append(scope_spans)
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def genai_chat_attributes(model: str = "gpt-4o-mini", input_tokens: int = 100, output_tokens: int = 20,
                          question: str = "What is OTLP?") -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": question}]}]),
        "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "text", "content": "A protocol."}],'
                                  ' "finish_reason": "stop"}]',
    }
