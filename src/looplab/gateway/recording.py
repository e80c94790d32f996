"""Recording a proxied call as a one-span trace, through looplab's own background writer.

The request path only keeps references: the request's bytes, the response's bytes (or its
stream's chunks with their arrival times) and the status. Parsing JSON and SSE, reading usage,
pricing and serialising all happen in ``extract``, which the writer thread runs, with the same
readers the SDK wrappers use (``looplab.tracing.openai`` / ``anthropic``): they read plain dicts
through ``get_field`` exactly as they read the SDKs' objects, so a call through the gateway and
the same call through ``wrap_openai`` make the same span.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from looplab.tracing import anthropic as anthropic_spans
from looplab.tracing import openai as openai_spans
from looplab.tracing.calls import Call
from looplab.tracing.context import finish_span, open_span
from looplab.tracing.digest import get_field
from looplab.tracing.records import SpanRecord, TraceInfo

log = logging.getLogger("looplab.gateway")

_MAX_ERROR_CHARS = 2_000


@dataclass(frozen=True)
class Endpoint:
    """One proxied API: where it goes, and how its span is named and read."""

    path: str
    provider: str
    kind: str
    span_name: str
    extract: Callable[[SpanRecord, Exchange, dict[str, Any]], None]


class Exchange:
    """The raw material of one proxied call, filled on the request path and read by the writer."""

    __slots__ = (
        "body",
        "chunks",
        "kept_bytes",
        "request_body",
        "request_id",
        "status",
        "stopped_early",
        "times",
        "truncated",
    )

    def __init__(self, request_body: bytes) -> None:
        self.request_body = request_body
        self.status: int | None = None
        self.body: bytes | None = None
        # A stream's chunks as they arrived, with each chunk's perf_counter() time.
        self.chunks: list[bytes] | None = None
        self.times: list[float] | None = None
        self.kept_bytes = 0
        self.truncated = False
        self.stopped_early = False
        self.request_id: str | None = None

    def add_chunk(self, chunk: bytes, limit: int) -> None:
        """Keep a streamed chunk and when it arrived (up to ``limit`` bytes in all)."""
        if self.chunks is None:
            self.chunks, self.times = [], []
        if self.kept_bytes + len(chunk) > limit:
            self.truncated = True
            return
        self.kept_bytes += len(chunk)
        self.chunks.append(chunk)
        self.times.append(time.perf_counter())  # type: ignore[union-attr]


class RecentTraces:
    """Trace ids this process recorded lately, which may still wait in the writer's queue.

    The scores API accepts a score for one of them without finding it in the database: the
    score is queued behind the trace's span, so the writer stores the trace first.
    """

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._spans: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, trace_id: str, span_id: str) -> None:
        with self._lock:
            self._spans[trace_id] = span_id
            if len(self._spans) > self._size:
                self._spans.popitem(last=False)

    def span_of(self, trace_id: str) -> str | None:
        """The span id of a recent trace of this process, or ``None`` when it is not one."""
        with self._lock:
            return self._spans.get(trace_id)


def start(endpoint: Endpoint, info: TraceInfo, exchange: Exchange, recent: RecentTraces) -> SpanRecord | None:
    """Open the call's span (the root of a new trace); ``None`` when tracing is off or unsampled."""
    try:
        record = open_span(endpoint.kind, endpoint.span_name, info)
        if record is None:
            return None
        record.provider = endpoint.provider
        record.raw = exchange
        record.extract = _extractor(endpoint)
        recent.add(record.trace_id, record.span_id)
        return record
    except Exception:  # recording never fails the request
        log.exception("looplab gateway: could not start recording a call; it is proxied untraced")
        return None


def finish(record: SpanRecord | None, error: str | None = None) -> None:
    """Hand the span to the writer, as an error span when ``error`` (or the upstream status) says so."""
    if record is None:
        return
    try:
        exchange: Exchange = record.raw
        if error is not None:
            record.status = "error"
            record.error = error
        elif exchange.status is not None and exchange.status >= 400:
            # Refined with the upstream's own message when the writer reads the body.
            record.status = "error"
            record.error = f"HTTP {exchange.status}"
        finish_span(record)
    except Exception:  # recording never fails the request
        log.exception("looplab gateway: could not record a call")


# --- the writer thread's side -------------------------------------------------------------------


def _extractor(endpoint: Endpoint) -> Callable[[SpanRecord], None]:
    def extract(record: SpanRecord) -> None:
        exchange: Exchange = record.raw
        request = _json(exchange.request_body)
        if not isinstance(request, dict):
            request = {}
            record.attributes = {**(record.attributes or {}), "request_not_json": True}
        endpoint.extract(record, exchange, request)
        attributes = {**(record.attributes or {}), "gateway": True, "http_status": exchange.status}
        if exchange.request_id:
            attributes["upstream_request_id"] = exchange.request_id
        if exchange.truncated:
            attributes["response_truncated"] = True
        record.attributes = attributes
        if exchange.status is not None and exchange.status >= 400:
            record.error = f"HTTP {exchange.status}: {_error_message(exchange.body)}"

    return extract


def _json(data: bytes | None) -> Any:
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _error_message(body: bytes | None) -> str:
    parsed = _json(body)
    message = get_field(get_field(parsed, "error"), "message") if isinstance(parsed, dict) else None
    if isinstance(message, str) and message:
        return message[:_MAX_ERROR_CHARS]
    text = (body or b"").decode("utf-8", "replace").strip()
    return text[:_MAX_ERROR_CHARS] or "(empty body)"


def sse_events(chunks: list[bytes], times: list[float]) -> list[tuple[str | None, str, float]]:
    """Server-sent events of a stream as ``(event name, data, time the event was complete)``."""
    events: list[tuple[str | None, str, float]] = []
    buffer = b""
    for chunk, at in zip(chunks, times):
        buffer += chunk
        # Normalise CRLF (allowed by the SSE format) so one separator does.
        buffer = buffer.replace(b"\r\n", b"\n")
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            block, buffer = buffer[:end], buffer[end + 2:]
            name: str | None = None
            data: list[str] = []
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    name = line[6:].strip()
            if data:
                events.append((name, "\n".join(data), at))
    return events


def _stream_items(record: SpanRecord, exchange: Exchange, is_content: Callable[[Any], bool]) -> list[Any]:
    """The stream's JSON events; sets the time to first token and flags provider error events."""
    items: list[Any] = []
    for name, data, at in sse_events(exchange.chunks or [], exchange.times or []):
        if data == "[DONE]":
            continue
        item = _json(data.encode())
        if not isinstance(item, dict):
            record.attributes = {**(record.attributes or {}), "stream_unparsed_events": True}
            continue
        if record.ttft_ms is None and is_content(item):
            record.ttft_ms = (at - record.perf_start) * 1000.0
        error = item.get("error") if name in (None, "error") else None
        if isinstance(error, dict):  # OpenAI chat's and Anthropic's error event in a stream
            record.status = "error"
            record.error = str(error.get("message") or "error event in the stream")[:_MAX_ERROR_CHARS]
        items.append(item)
    return items


def _call(record: SpanRecord, exchange: Exchange, request: dict[str, Any], is_content: Callable[[Any], bool],
          response: Any = None) -> Call:
    """A ``Call`` as the SDK wrappers' readers expect it, over the request's and response's JSON."""
    call = Call(request)
    call.stopped_early = exchange.stopped_early
    if exchange.chunks is not None:
        call.items = _stream_items(record, exchange, is_content)
    elif exchange.status is not None and exchange.status < 400:
        call.response = response if response is not None else _json(exchange.body)
    record.raw = call
    return call


def extract_openai_chat(record: SpanRecord, exchange: Exchange, request: dict[str, Any]) -> None:
    """``POST /v1/chat/completions``: read like ``wrap_openai``'s ``chat.completions.create``."""
    _call(record, exchange, request, openai_spans._chat_chunk_has_content)
    openai_spans._extract_chat(record)


def extract_openai_responses(record: SpanRecord, exchange: Exchange, request: dict[str, Any]) -> None:
    """``POST /v1/responses``: read like ``wrap_openai``'s ``responses.create``."""
    _call(record, exchange, request, openai_spans._response_event_has_content)
    openai_spans._extract_responses(record)


def extract_openai_embeddings(record: SpanRecord, exchange: Exchange, request: dict[str, Any]) -> None:
    """``POST /v1/embeddings``: the count and size of the vectors, never the vectors."""
    response = _json(exchange.body) if exchange.status is not None and exchange.status < 400 else None
    digest = openai_spans._digest_embeddings(response) if isinstance(response, dict) else None
    _call(record, exchange, request, _never, digest)
    openai_spans._extract_embeddings(record)


def extract_anthropic_messages(record: SpanRecord, exchange: Exchange, request: dict[str, Any]) -> None:
    """``POST /v1/messages``: read like ``wrap_anthropic``'s ``messages.create``."""
    call = _call(record, exchange, request, _anthropic_is_content)
    messages: list[Any] = []
    system = request.get("system")
    if system:
        messages.append({"role": "system", "content": system})
    if isinstance(request.get("messages"), list):
        messages.extend(request["messages"])
    record.input = messages
    record.params = {k: v for k, v in request.items() if k not in ("messages", "system") and v is not None}
    record.model = request.get("model")
    if call.items is not None:
        anthropic_spans._extract_stream(record, call.items)
    elif call.response is not None:
        anthropic_spans._extract_message(record, call.response)


def _anthropic_is_content(event: Any) -> bool:
    return get_field(event, "type") == "content_block_delta"


def _never(_item: Any) -> bool:
    return False


ENDPOINTS: dict[str, Endpoint] = {
    endpoint.path: endpoint
    for endpoint in (
        Endpoint("/v1/chat/completions", "openai", "llm", "openai.chat.completions", extract_openai_chat),
        Endpoint("/v1/responses", "openai", "llm", "openai.responses", extract_openai_responses),
        Endpoint("/v1/embeddings", "openai", "embedding", "openai.embeddings", extract_openai_embeddings),
        Endpoint("/v1/messages", "anthropic", "llm", "anthropic.messages", extract_anthropic_messages),
    )
}
