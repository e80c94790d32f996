"""OTLP spans onto looplab spans: pure functions, no I/O.

Reads the OpenTelemetry GenAI semantic conventions (attributes, the older per-message span
events, the newer ``gen_ai.input.messages``/``gen_ai.output.messages`` JSON) and OpenInference's
attributes (``openinference.span.kind``, flattened ``llm.input_messages.N.message.*``,
``input.value``, ``retrieval.documents.N.document.*``, ...) into looplab's columns: kind, model,
provider, params, input and output, tokens, cost, status and error.

What lands in a column is not repeated in the span's attributes JSON; every other attribute is
kept there under its own key, with OpenTelemetry's own span fields under ``otel.*`` keys (span
kind, instrumentation scope, events other than messages, links, trace state, the resource's
attributes). Embedding vectors are the exception: they are counted, not stored.

A span that cannot be stored (ids missing or malformed, no start or end time, end before start)
is rejected on its own with a reason; the rest of the batch is unaffected.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as OtlpStatus

from looplab.otlp import attributes as A
from looplab.otlp.decode import SpanPosition
from looplab.tracing.pricing import PRICING_SOURCE, cost_usd

SENDER_PRICING = "sender"
_MAX_NAME = 255
_SPAN_KINDS = {
    OtlpSpan.SPAN_KIND_SERVER: "server",
    OtlpSpan.SPAN_KIND_CLIENT: "client",
    OtlpSpan.SPAN_KIND_PRODUCER: "producer",
    OtlpSpan.SPAN_KIND_CONSUMER: "consumer",
}


@dataclass(slots=True)
class MappedSpan:
    """One OTLP span as looplab columns, plus the trace-level fields it carries."""

    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    name: str
    start_ns: int
    end_ns: int
    input: Any = None
    output: Any = None
    provider: str | None = None
    model: str | None = None
    params: dict[str, Any] | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    pricing_source: str | None = None
    ttft_ms: float | None = None
    status: str = "ok"
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # The resource's attributes, shared by the spans under it; stored as attributes["otel.resource"].
    resource: dict[str, Any] | None = None
    # Trace-level fields (session, user, tags, ...) this span names; the root's win.
    session_id: str | None = None
    user_id: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    release: str | None = None
    environment: str | None = None

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class Mapped:
    """The spans of an export request that can be stored, and why the others cannot."""

    spans: list[MappedSpan] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


class SpanRejected(ValueError):
    """This span alone cannot be stored; the message says why."""


def map_request(request: ExportTraceServiceRequest, id_errors: dict[SpanPosition, str] | None = None) -> Mapped:
    """Every span of ``request`` mapped, or rejected with a reason; never raises for one bad span."""
    out = Mapped()
    id_errors = id_errors or {}
    for r, resource_spans in enumerate(request.resource_spans):
        resource = attribute_dict(resource_spans.resource.attributes)
        context = _ResourceContext(resource)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope
            scope_info: dict[str, Any] | None = {"name": scope.name} if scope.name else None
            if scope_info is not None and scope.version:
                scope_info["version"] = scope.version
            if scope_info is not None and scope.attributes:
                scope_info["attributes"] = attribute_dict(scope.attributes)
            for i, span in enumerate(scope_spans.spans):
                try:
                    problem = id_errors.get((r, s, i))
                    if problem:
                        raise SpanRejected(problem)
                    out.spans.append(map_span(span, context, scope_info))
                except SpanRejected as err:
                    out.rejected.append(f"span {_describe(span)}: {err}")
    return out


class _ResourceContext:
    """What a resource gives every span under it: its attributes and the trace-level fields they name."""

    __slots__ = ("attributes", "environment", "release", "service")

    def __init__(self, resource: dict[str, Any]) -> None:
        self.attributes = resource or None
        self.service = _text(resource.get(A.SERVICE_NAME))
        self.release = _text(resource.get(A.SERVICE_VERSION))
        self.environment = next((_text(resource[k]) for k in A.DEPLOYMENT_ENVIRONMENT if k in resource), None)


def _describe(span: OtlpSpan) -> str:
    span_id = span.span_id.hex() or "(no id)"
    return f"{span_id} ({span.name[:80]!r})" if span.name else span_id


# --- attribute values ------------------------------------------------------------------------


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as plain Python (bytes as base64 text, so it stays JSON)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attribute_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def attribute_dict(key_values: Iterable[Any]) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict (the last value of a repeated key wins, as in the SDKs)."""
    return {kv.key: any_value(kv.value) for kv in key_values}


def _text(value: Any, limit: int = 255) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


def _int(value: Any) -> int | None:
    """A token count: a non-negative whole number, given as int, integral float or digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _json(value: Any) -> Any:
    """A JSON-text attribute parsed; anything else (or text that is not JSON) as is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _payload(value: Any, mime_type: Any) -> Any:
    """``input.value``/``output.value``: parsed when its mime type says JSON."""
    if isinstance(value, str) and mime_type == "application/json":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


# --- flattened lists (llm.input_messages.0.message.role = "user") ----------------------------

_FLAT = (A.LLM_INPUT_MESSAGES, A.LLM_OUTPUT_MESSAGES, A.RETRIEVAL_DOCUMENTS, A.EMBEDDING_EMBEDDINGS, A.GEN_AI_PROMPT,
         A.GEN_AI_COMPLETION)
_FLAT_PREFIXES = tuple(f"{p}." for p in _FLAT)


def _split_flat(attrs: dict[str, Any], consumed: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The flattened lists among ``attrs``, each as a list of dicts in index order."""
    groups: dict[str, dict[int, dict[str, Any]]] = {}
    for key, value in attrs.items():
        if not key.startswith(_FLAT_PREFIXES):
            continue
        prefix = next(p for p in _FLAT_PREFIXES if key.startswith(p))
        index, _, sub = key[len(prefix):].partition(".")
        if not sub or not index.isdigit():
            continue  # e.g. gen_ai.prompt.name: not part of a list, kept as an attribute
        groups.setdefault(prefix[:-1], {}).setdefault(int(index), {})[sub] = value
        consumed.add(key)
    return {name: [items[i] for i in sorted(items)] for name, items in groups.items()}


def _sublist(item: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """A flattened list nested in one item (``message.tool_calls.0.tool_call.id``)."""
    lead = f"{prefix}."
    found: dict[int, dict[str, Any]] = {}
    for key, value in item.items():
        if key.startswith(lead):
            index, _, sub = key[len(lead):].partition(".")
            if sub and index.isdigit():
                found.setdefault(int(index), {})[sub] = value
    return [found[i] for i in sorted(found)]


def _openinference_message(item: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": item.get(A.MESSAGE_ROLE)}
    content = item.get(A.MESSAGE_CONTENT)
    if content is None:
        parts = _sublist(item, A.MESSAGE_CONTENTS)
        if parts:
            texts = [p.get(A.MESSAGE_CONTENT_TEXT) for p in parts]
            if all(isinstance(t, str) for t in texts):
                content = "\n".join(texts)  # type: ignore[arg-type]
            else:
                content = [{k.removeprefix("message_content."): v for k, v in p.items()} for p in parts]
    message["content"] = content
    if item.get(A.MESSAGE_NAME) is not None:
        message["name"] = item[A.MESSAGE_NAME]
    if item.get(A.MESSAGE_TOOL_CALL_ID) is not None:
        message["tool_call_id"] = item[A.MESSAGE_TOOL_CALL_ID]
    calls = _sublist(item, A.MESSAGE_TOOL_CALLS)
    if calls:
        message["tool_calls"] = [
            {"id": c.get(A.TOOL_CALL_ID), "type": "function",
             "function": {"name": c.get(A.TOOL_CALL_FUNCTION_NAME), "arguments": c.get(A.TOOL_CALL_FUNCTION_ARGUMENTS)}}
            for c in calls
        ]
    return message


def _traceloop_message(item: dict[str, Any]) -> dict[str, Any]:
    """gen_ai.prompt.N.* / gen_ai.completion.N.* (OpenLLMetry): role, content, tool_calls..."""
    message = {k: v for k, v in item.items() if "." not in k}
    calls = _sublist(item, "tool_calls")
    if calls:
        message["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": {"name": c.get("name"), "arguments": c.get("arguments")}}
            for c in calls
        ]
    return message


def _genai_message(message: Any) -> Any:
    """A GenAI ``{"role", "parts": [...]}`` message in the chat shape looplab shows (role, content,
    tool_calls); one with parts of other types (images, reasoning...) is kept as sent."""
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        return message
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    response = None
    for part in message["parts"]:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("content"), str):
            texts.append(part["content"])
        elif kind == "tool_call":
            arguments = part.get("arguments")
            calls.append({"id": part.get("id"), "type": "function",
                          "function": {"name": part.get("name"),
                                       "arguments": arguments if isinstance(arguments, str) or arguments is None
                                       else orjson.dumps(arguments).decode()}})
        elif kind == "tool_call_response" and response is None:
            response = part
        else:
            return message
    out: dict[str, Any] = {"role": message.get("role")}
    if response is not None:
        out["tool_call_id"] = response.get("id")
        out["content"] = response.get("response")
    else:
        out["content"] = "\n".join(texts) if texts else None
    if calls:
        out["tool_calls"] = calls
    if message.get("finish_reason") is not None:
        out["finish_reason"] = message["finish_reason"]
    return out


def _genai_messages(value: Any) -> list[Any] | None:
    value = _json(value)
    if not isinstance(value, list):
        return None
    return [_genai_message(m) for m in value]


def _system_instructions(value: Any) -> dict[str, Any] | None:
    value = _json(value)
    if isinstance(value, str):
        return {"role": "system", "content": value}
    if isinstance(value, list):
        message = _genai_message({"role": "system", "parts": value})
        return message if isinstance(message, dict) else None
    return None


# --- one span --------------------------------------------------------------------------------


class _Events:
    """What a span's events say: chat messages (older GenAI events), an exception, the rest."""

    __slots__ = ("details", "exception", "finish_reason", "input", "kept", "output")

    def __init__(self) -> None:
        self.input: list[Any] = []
        self.output: list[tuple[int, Any, Any]] = []
        self.finish_reason: Any = None
        self.exception: str | None = None
        self.details: dict[str, Any] = {}
        self.kept: list[dict[str, Any]] = []


def _read_events(span: OtlpSpan) -> _Events:
    events = _Events()
    for event in span.events:
        name = event.name
        attrs = attribute_dict(event.attributes)
        role = A.GEN_AI_MESSAGE_EVENTS.get(name)
        if role is not None:
            message: dict[str, Any] = {"role": attrs.get("role") or role, "content": _json(attrs.get("content"))}
            if attrs.get("tool_calls"):
                message["tool_calls"] = _json(attrs["tool_calls"])
            if role == "tool" and attrs.get("id") is not None:
                message["tool_call_id"] = attrs["id"]
            events.input.append(message)
            continue
        if name == A.GEN_AI_CHOICE_EVENT:
            index = _int(attrs.get("index")) or 0
            # A map in OTLP; JSON text from SDKs whose event attributes cannot hold maps (Python's).
            message = _json(attrs.get("message"))
            message = dict(message) if isinstance(message, dict) else {"role": "assistant", "content": message}
            events.output.append((index, message, attrs.get("finish_reason")))
            continue
        if name == A.GEN_AI_CONTENT_PROMPT_EVENT and A.GEN_AI_PROMPT in attrs:
            prompt = _json(attrs[A.GEN_AI_PROMPT])
            events.input.extend(prompt if isinstance(prompt, list) else [prompt])
            continue
        if name == A.GEN_AI_CONTENT_COMPLETION_EVENT and A.GEN_AI_COMPLETION in attrs:
            completion = _json(attrs[A.GEN_AI_COMPLETION])
            for index, message in enumerate(completion if isinstance(completion, list) else [completion]):
                events.output.append((index, message, None))
            continue
        if name == A.GEN_AI_OPERATION_DETAILS_EVENT:
            events.details.update(attrs)
            continue
        if name == A.EXCEPTION_EVENT:
            kind, text = attrs.get(A.EXCEPTION_TYPE), attrs.get(A.EXCEPTION_MESSAGE)
            events.exception = ": ".join(str(p) for p in (kind, text) if p) or events.exception
        kept: dict[str, Any] = {"name": name, "time_unix_nano": event.time_unix_nano}
        if attrs:
            kept["attributes"] = attrs
        events.kept.append(kept)
    return events


def _kind(attrs: dict[str, Any]) -> str:
    openinference = attrs.get(A.OPENINFERENCE_SPAN_KIND)
    if isinstance(openinference, str):
        kind = A.OPENINFERENCE_KINDS.get(openinference.upper())
        if kind is not None:
            return kind
    operation = attrs.get(A.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str):
        if operation in A.LLM_OPERATIONS:
            return "llm"
        if operation in A.EMBEDDING_OPERATIONS:
            return "embedding"
        if operation in A.TOOL_OPERATIONS:
            return "tool"
        if operation in A.RETRIEVAL_OPERATIONS:
            return "retrieval"
        return "span"  # invoke_agent, create_agent, invoke_workflow...
    if A.GEN_AI_REQUEST_MODEL in attrs or A.LLM_MODEL_NAME in attrs:
        return "llm"
    return "span"


def _first(attrs: dict[str, Any], keys: tuple[str, ...], consumed: set[str], convert: Any = None) -> Any:
    """The first of ``keys`` present (converted), marked consumed; ``None`` when none is."""
    for key in keys:
        if key in attrs:
            value = attrs[key] if convert is None else convert(attrs[key])
            if value is not None:
                consumed.add(key)
                return value
    return None


def _hex_id(raw: bytes, size: int, what: str, required: bool = True) -> str | None:
    if not raw:
        if required:
            raise SpanRejected(f"it has no {what}")
        return None
    if len(raw) != size:
        raise SpanRejected(f"its {what} has {len(raw)} bytes, not {size}")
    if not any(raw):
        if required:
            raise SpanRejected(f"its {what} is all zeros")
        return None
    return raw.hex()


def map_span(span: OtlpSpan, resource: _ResourceContext | None = None,
             scope: dict[str, Any] | None = None) -> MappedSpan:
    """One OTLP span as a ``MappedSpan``; raises ``SpanRejected`` when it cannot be stored."""
    trace_id = _hex_id(span.trace_id, 16, "trace id")
    span_id = _hex_id(span.span_id, 8, "span id")
    parent_id = _hex_id(span.parent_span_id, 8, "parent span id", required=False)
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if not start:
        raise SpanRejected("it has no start time")
    if not end:
        raise SpanRejected("it has no end time")
    if end < start:
        raise SpanRejected(f"it ends ({end} ns) before it starts ({start} ns)")
    assert trace_id is not None and span_id is not None

    attrs = attribute_dict(span.attributes)
    events = _read_events(span)
    if events.details:
        # The newest GenAI convention may put the messages on an event instead of the span.
        attrs = {**events.details, **attrs}
    consumed: set[str] = set()
    kind = _kind(attrs)
    mapped = MappedSpan(trace_id, span_id, parent_id, kind, (span.name or "span")[:_MAX_NAME], start, end)

    mapped.model = _text(_first(attrs, (A.GEN_AI_RESPONSE_MODEL, A.LLM_MODEL_NAME, A.GEN_AI_REQUEST_MODEL,
                                        A.EMBEDDING_MODEL_NAME), consumed))
    if A.GEN_AI_REQUEST_MODEL in attrs and attrs[A.GEN_AI_REQUEST_MODEL] != mapped.model:
        consumed.discard(A.GEN_AI_REQUEST_MODEL)  # asked for one model, answered by another: keep both
    mapped.provider = _text(_first(attrs, (A.GEN_AI_PROVIDER_NAME, A.GEN_AI_SYSTEM, A.LLM_PROVIDER, A.LLM_SYSTEM),
                                   consumed), 64)
    _usage(mapped, attrs, consumed)
    _params(mapped, attrs, consumed)
    _payloads(mapped, attrs, events, consumed)
    _status(mapped, span.status, events, attrs)
    ttft = _float(attrs.get(A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
    if ttft is not None:
        mapped.ttft_ms = ttft * 1000
        consumed.add(A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    _cost(mapped, attrs, consumed)
    _trace_fields(mapped, attrs, resource)

    kept = {k: v for k, v in attrs.items() if k not in consumed} if consumed else attrs
    if span.kind in _SPAN_KINDS:
        kept[A.OTEL_SPAN_KIND] = _SPAN_KINDS[span.kind]
    if scope is not None:
        kept[A.OTEL_SCOPE] = scope
    if events.kept:
        kept[A.OTEL_EVENTS] = events.kept
    if span.links:
        kept[A.OTEL_LINKS] = [
            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
             **({"attributes": attribute_dict(link.attributes)} if link.attributes else {})}
            for link in span.links
        ]
    if span.trace_state:
        kept[A.OTEL_TRACE_STATE] = span.trace_state
    if resource is not None:
        mapped.resource = resource.attributes
    mapped.attributes = kept
    return mapped


def _usage(mapped: MappedSpan, attrs: dict[str, Any], consumed: set[str]) -> None:
    mapped.input_tokens = _first(attrs, (A.GEN_AI_USAGE_INPUT_TOKENS, A.GEN_AI_USAGE_PROMPT_TOKENS,
                                         A.LLM_TOKEN_COUNT_PROMPT), consumed, _int)
    mapped.output_tokens = _first(attrs, (A.GEN_AI_USAGE_OUTPUT_TOKENS, A.GEN_AI_USAGE_COMPLETION_TOKENS,
                                          A.LLM_TOKEN_COUNT_COMPLETION), consumed, _int)
    mapped.cached_tokens = _first(attrs, (A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, A.LLM_TOKEN_COUNT_CACHE_READ),
                                  consumed, _int)
    if mapped.input_tokens is not None and A.LLM_TOKEN_COUNT_TOTAL in attrs:
        consumed.add(A.LLM_TOKEN_COUNT_TOTAL)  # the sum of the two columns
    if mapped.kind == "embedding" and mapped.input_tokens is not None and mapped.output_tokens is None:
        mapped.output_tokens = 0  # as looplab's own wrapper records embeddings (and so they are priced)


def _params(mapped: MappedSpan, attrs: dict[str, Any], consumed: set[str]) -> None:
    params: dict[str, Any] = {}
    for key in (A.LLM_INVOCATION_PARAMETERS, A.EMBEDDING_INVOCATION_PARAMETERS):
        value = _json(attrs.get(key))
        if isinstance(value, dict):
            params.update((k, v) for k, v in value.items() if k not in ("messages", "input"))
            consumed.add(key)
    for key, value in attrs.items():
        if key.startswith(A.GEN_AI_REQUEST_PREFIX) and key != A.GEN_AI_REQUEST_MODEL:
            params[key[len(A.GEN_AI_REQUEST_PREFIX):]] = value
            consumed.add(key)
    mapped.params = params or None
    reasons = attrs.get(A.GEN_AI_RESPONSE_FINISH_REASONS)
    if isinstance(reasons, list) and reasons:
        mapped.finish_reason = _text(reasons[0], 64)
        consumed.add(A.GEN_AI_RESPONSE_FINISH_REASONS)
    elif isinstance(attrs.get(A.LLM_FINISH_REASON), str):
        mapped.finish_reason = _text(attrs[A.LLM_FINISH_REASON], 64)
        consumed.add(A.LLM_FINISH_REASON)


def _value_payload(attrs: dict[str, Any], consumed: set[str], value_key: str, mime_key: str) -> Any:
    if value_key not in attrs:
        return None
    consumed.add(value_key)
    if mime_key in attrs:
        consumed.add(mime_key)
    return _payload(attrs[value_key], attrs.get(mime_key))


def _payloads(mapped: MappedSpan, attrs: dict[str, Any], events: _Events, consumed: set[str]) -> None:
    """Input and output: chat messages for LLM calls, documents for retrievals, else the values sent."""
    flat = _split_flat(attrs, consumed)
    kind = mapped.kind
    input_messages: list[Any] | None = None
    output_messages: list[Any] | None = None
    if A.LLM_INPUT_MESSAGES in flat:
        input_messages = [_openinference_message(m) for m in flat[A.LLM_INPUT_MESSAGES]]
    elif A.GEN_AI_INPUT_MESSAGES in attrs and (messages := _genai_messages(attrs[A.GEN_AI_INPUT_MESSAGES])) is not None:
        input_messages = messages
        consumed.add(A.GEN_AI_INPUT_MESSAGES)
    elif A.GEN_AI_PROMPT in flat:
        input_messages = [_traceloop_message(m) for m in flat[A.GEN_AI_PROMPT]]
    elif events.input:
        input_messages = events.input
    if A.GEN_AI_SYSTEM_INSTRUCTIONS in attrs:
        system = _system_instructions(attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS])
        if system is not None:
            input_messages = [system, *(input_messages or [])]
            consumed.add(A.GEN_AI_SYSTEM_INSTRUCTIONS)
    if A.LLM_OUTPUT_MESSAGES in flat:
        output_messages = [_openinference_message(m) for m in flat[A.LLM_OUTPUT_MESSAGES]]
    elif A.GEN_AI_OUTPUT_MESSAGES in attrs and (messages := _genai_messages(attrs[A.GEN_AI_OUTPUT_MESSAGES])) is not None:
        output_messages = messages
        consumed.add(A.GEN_AI_OUTPUT_MESSAGES)
        if mapped.finish_reason is None and messages and isinstance(messages[0], dict):
            mapped.finish_reason = _text(messages[0].get("finish_reason"), 64)
    elif A.GEN_AI_COMPLETION in flat:
        output_messages = [_traceloop_message(m) for m in flat[A.GEN_AI_COMPLETION]]
    elif events.output:
        events.output.sort(key=lambda choice: choice[0])
        output_messages = [message for _, message, _ in events.output]
        if mapped.finish_reason is None:
            mapped.finish_reason = _text(events.output[0][2], 64)

    if input_messages is not None:
        mapped.input = input_messages
        # The raw request the instrumentation also sent repeats the messages: not stored twice.
        _value_payload(attrs, consumed, A.INPUT_VALUE, A.INPUT_MIME_TYPE)
    elif kind == "embedding" and A.EMBEDDING_EMBEDDINGS in flat:
        mapped.input = [e.get(A.EMBEDDING_TEXT) for e in flat[A.EMBEDDING_EMBEDDINGS]]
        _value_payload(attrs, consumed, A.INPUT_VALUE, A.INPUT_MIME_TYPE)
    elif kind == "tool" and A.INPUT_VALUE not in attrs and A.GEN_AI_TOOL_CALL_ARGUMENTS in attrs:
        mapped.input = _json(attrs[A.GEN_AI_TOOL_CALL_ARGUMENTS])
        consumed.add(A.GEN_AI_TOOL_CALL_ARGUMENTS)
    elif kind == "retrieval" and A.INPUT_VALUE not in attrs and A.GEN_AI_RETRIEVAL_QUERY_TEXT in attrs:
        mapped.input = attrs[A.GEN_AI_RETRIEVAL_QUERY_TEXT]
        consumed.add(A.GEN_AI_RETRIEVAL_QUERY_TEXT)
    else:
        mapped.input = _value_payload(attrs, consumed, A.INPUT_VALUE, A.INPUT_MIME_TYPE)

    if output_messages:
        mapped.output = output_messages[0]
        if len(output_messages) > 1:
            attrs["choices"] = output_messages  # kept in the attributes, as looplab's own wrapper does
        _value_payload(attrs, consumed, A.OUTPUT_VALUE, A.OUTPUT_MIME_TYPE)
    elif kind == "retrieval" and A.RETRIEVAL_DOCUMENTS in flat:
        mapped.output = [{k.removeprefix(A.DOCUMENT_PREFIX): _json(v) if k.endswith("metadata") else v
                          for k, v in d.items()} for d in flat[A.RETRIEVAL_DOCUMENTS]]
        _value_payload(attrs, consumed, A.OUTPUT_VALUE, A.OUTPUT_MIME_TYPE)
    elif kind == "retrieval" and A.OUTPUT_VALUE not in attrs and A.GEN_AI_RETRIEVAL_DOCUMENTS in attrs:
        mapped.output = _json(attrs[A.GEN_AI_RETRIEVAL_DOCUMENTS])
        consumed.add(A.GEN_AI_RETRIEVAL_DOCUMENTS)
    elif kind == "embedding" and A.EMBEDDING_EMBEDDINGS in flat:
        vectors = [e.get(A.EMBEDDING_VECTOR) for e in flat[A.EMBEDDING_EMBEDDINGS]]
        dims = next((len(v) for v in vectors if isinstance(v, list)), None)
        # Vectors are counted, not stored (kilobytes each, and nothing in looplab reads them).
        mapped.output = {"embeddings": len(vectors), "dimensions": dims}
        _value_payload(attrs, consumed, A.OUTPUT_VALUE, A.OUTPUT_MIME_TYPE)
    elif kind == "tool" and A.OUTPUT_VALUE not in attrs and A.GEN_AI_TOOL_CALL_RESULT in attrs:
        mapped.output = _json(attrs[A.GEN_AI_TOOL_CALL_RESULT])
        consumed.add(A.GEN_AI_TOOL_CALL_RESULT)
    else:
        mapped.output = _value_payload(attrs, consumed, A.OUTPUT_VALUE, A.OUTPUT_MIME_TYPE)
    # Flattened lists not used above (e.g. documents on a span that is not a retrieval) stay attributes.
    for name in flat:
        used = ((name == A.LLM_INPUT_MESSAGES or name == A.GEN_AI_PROMPT) and input_messages is not None) or \
               ((name == A.LLM_OUTPUT_MESSAGES or name == A.GEN_AI_COMPLETION) and output_messages is not None) or \
               (name == A.RETRIEVAL_DOCUMENTS and kind == "retrieval" and not output_messages) or \
               (name == A.EMBEDDING_EMBEDDINGS and kind == "embedding")
        if not used:
            prefix = f"{name}."
            consumed.difference_update(k for k in attrs if k.startswith(prefix))


def _status(mapped: MappedSpan, status: OtlpStatus, events: _Events, attrs: dict[str, Any]) -> None:
    if status.code != OtlpStatus.STATUS_CODE_ERROR:
        return
    mapped.status = "error"
    # The status message first; an exception event or error.type when the sender gave none.
    mapped.error = status.message or events.exception or _text(attrs.get(A.ERROR_TYPE), 10_000) or "error"


def _cost(mapped: MappedSpan, attrs: dict[str, Any], consumed: set[str]) -> None:
    sent = _first(attrs, (A.LLM_COST_TOTAL, A.GEN_AI_USAGE_COST), consumed, _float)
    if sent is not None:
        mapped.cost_usd, mapped.pricing_source = sent, SENDER_PRICING
        return
    if mapped.kind not in ("llm", "embedding"):
        return
    provider = mapped.provider
    cache_write = _int(attrs.get(A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, attrs.get(A.LLM_TOKEN_COUNT_CACHE_WRITE)))
    args = (mapped.model, mapped.input_tokens, mapped.output_tokens, mapped.cached_tokens, cache_write)
    cost = cost_usd(A.PRICING_PROVIDERS.get(provider, provider) if provider else None, *args)
    if cost is None and provider:
        cost = cost_usd(None, *args)  # a provider name genai-prices does not know: match by model alone
    if cost is not None:
        mapped.cost_usd, mapped.pricing_source = cost, PRICING_SOURCE


def _trace_fields(mapped: MappedSpan, attrs: dict[str, Any], resource: _ResourceContext | None) -> None:
    mapped.session_id = _text(next((attrs[k] for k in (A.SESSION_ID, A.GEN_AI_CONVERSATION_ID, A.LANGFUSE_SESSION_ID)
                                    if attrs.get(k) not in (None, "")), None))
    mapped.user_id = _text(next((attrs[k] for k in (A.USER_ID, A.ENDUSER_ID, A.LANGFUSE_USER_ID)
                                 if attrs.get(k) not in (None, "")), None))
    tags = attrs.get(A.TAG_TAGS)
    if isinstance(tags, list) and tags:
        mapped.tags = list(dict.fromkeys(str(t)[:255] for t in tags if t not in (None, "")))
    metadata = _json(attrs.get(A.METADATA))
    mapped.metadata = dict(metadata) if isinstance(metadata, dict) else None
    if resource is not None:
        mapped.release, mapped.environment = resource.release, resource.environment
        if resource.service:
            mapped.metadata = {A.SERVICE_NAME: resource.service, **(mapped.metadata or {})}
