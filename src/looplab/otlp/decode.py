"""OTLP/HTTP request bodies into ``ExportTraceServiceRequest`` messages, and responses back out.

Two encodings (protobuf, and OTLP's JSON mapping of the same messages) and optional gzip. OTLP
JSON differs from protobuf's canonical JSON in one way that matters: trace and span ids are hex
strings, not base64, so they are converted before ``json_format`` reads the document. An id that
is not hex does not fail the request: its span alone is rejected later (``id_errors``).

Anything wrong with the body as a whole raises ``PayloadError`` carrying the HTTP status to
answer (400, 413, 415) and a message saying what was wrong.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from looplab.errors import LooplabError

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Some senders use the registered name without the "x-".
_PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})

# (resource index, scope index, span index) -> why the span's ids cannot be read.
SpanPosition = tuple[int, int, int]


class PayloadError(LooplabError):
    """The request body cannot be accepted at all; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in an export process (``looplab.otlp.pool``) and re-raised in the server's.
        return PayloadError, (self.status, self.message)


@dataclass
class Decoded:
    """A decoded export request, its encoding, and the spans whose JSON ids were not hex."""

    request: ExportTraceServiceRequest
    encoding: str  # PROTOBUF or JSON
    id_errors: dict[SpanPosition, str] = field(default_factory=dict)


def media_type(content_type: str | None) -> str:
    """The encoding named by a Content-Type header (PROTOBUF or JSON); raises 415 otherwise."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    if value in _PROTOBUF_TYPES:
        return PROTOBUF
    if value == JSON:
        return JSON
    shown = value or "none"
    raise PayloadError(415, f"Content-Type {shown!r} is not supported: send {PROTOBUF} or {JSON}")


def check_encoding(content_encoding: str | None) -> bool:
    """Whether the body is gzipped (per Content-Encoding); raises 415 for another encoding."""
    value = (content_encoding or "").strip().lower()
    if value in ("", "identity"):
        return False
    if value in ("gzip", "x-gzip"):
        return True
    raise PayloadError(415, f"Content-Encoding {value!r} is not supported: send gzip or no encoding")


def gunzip(body: bytes, max_bytes: int) -> bytes:
    """The gzipped ``body`` decompressed; 413 past ``max_bytes`` (a small body may inflate hugely)."""
    inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer expected
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as err:
        raise PayloadError(400, f"The body is not valid gzip: {err}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadError(413, f"The body is larger than {max_bytes} bytes once decompressed")
    if not inflater.eof:
        raise PayloadError(400, "The gzip body is truncated (no end of stream)")
    if inflater.unused_data:
        # Concatenated gzip members are legal but no OTLP exporter sends them; refuse rather than drop.
        raise PayloadError(400, "The body has data after the end of its gzip stream")
    return out


def decode(body: bytes, encoding: str) -> Decoded:
    """Parse a (decompressed) body in ``encoding``; raises ``PayloadError`` (400) when it cannot."""
    if encoding == PROTOBUF:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as err:
            raise PayloadError(400, f"The body is not a valid OTLP protobuf ExportTraceServiceRequest: {err}") from None
        return Decoded(request, PROTOBUF)
    return _decode_json(body)


def _decode_json(body: bytes) -> Decoded:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise PayloadError(400, f"The body is not valid JSON: {err}") from None
    if not isinstance(document, dict):
        raise PayloadError(400, f"The body must be a JSON object (ExportTraceServiceRequest), not {type(document).__name__}")
    id_errors: dict[SpanPosition, str] = {}
    try:
        _hex_ids_to_base64(document, id_errors)
    except (TypeError, AttributeError) as err:
        raise PayloadError(400, f"The JSON body is not an OTLP ExportTraceServiceRequest: {err}") from None
    request = ExportTraceServiceRequest()
    try:
        # Unknown fields are ignored, as OTLP asks of receivers (newer senders may add some).
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as err:
        raise PayloadError(400, f"The JSON body is not an OTLP ExportTraceServiceRequest: {err}") from None
    return Decoded(request, JSON, id_errors)


def _items(parent: dict[str, Any], camel: str, snake: str) -> list[Any]:
    """A repeated field of a JSON message, under its camelCase or snake_case name."""
    value = parent.get(camel, parent.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{camel} must be a list, not {type(value).__name__}")
    return value


_ID_FIELDS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))


def _hex_ids_to_base64(document: dict[str, Any], id_errors: dict[SpanPosition, str]) -> None:
    """Rewrite the hex ids of spans and links in place as the base64 protobuf's JSON expects."""
    for r, resource_spans in enumerate(_items(document, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for i, span in enumerate(_items(scope_spans, "spans", "spans")):
                problem = _convert_ids(span)
                for link in _items(span, "links", "links"):
                    problem = problem or _convert_ids(link, "link ")
                if problem:
                    id_errors[(r, s, i)] = problem


def _convert_ids(message: dict[str, Any], what: str = "") -> str | None:
    problem = None
    for camel, snake in _ID_FIELDS:
        key = camel if camel in message else snake if snake in message else None
        if key is None:
            continue
        value = message[key]
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            raw = None
        if raw is None:
            problem = problem or f"{what}{camel} {value!r} is not a hex string"
            message[key] = ""
        else:
            message[key] = base64.b64encode(raw).decode()
    return problem


def encode_response(response: ExportTraceServiceResponse, encoding: str) -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's encoding."""
    if encoding == PROTOBUF:
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode()


def encode_status(code: int, message: str, encoding: str) -> bytes:
    """A ``google.rpc.Status`` (what OTLP/HTTP answers a failed request with) in ``encoding``.

    Encoded by hand (two fields) rather than through googleapis-common-protos, which
    opentelemetry-proto does not depend on.
    """
    if encoding == PROTOBUF:
        text = message.encode()
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
    return orjson.dumps({"code": code, "message": message})


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)

