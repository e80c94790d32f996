"""``POST /v1/traces``: OTLP/HTTP trace export into a looplab store, as Starlette routes.

The answers follow the OTLP/HTTP specification: 200 with an ``ExportTraceServiceResponse`` (its
``partial_success`` counting and explaining the spans that were not stored) in the request's
encoding; 400 with a ``google.rpc.Status`` saying what was wrong when the body cannot be read at
all (nothing of it is stored); 413 for a body over ``max_body_bytes`` (before or after gunzip);
415 for a content type or encoding other than protobuf/JSON and gzip; 503 when the database
cannot be written (exporters retry on 503).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from looplab.config import Redactor
from looplab.errors import ConfigError, StoreError
from looplab.otlp.decode import (
    JSON,
    PayloadError,
    check_encoding,
    decode,
    encode_response,
    encode_status,
    gunzip,
    media_type,
)
from looplab.otlp.mapping import map_request
from looplab.otlp.pool import ExportPool, can_send
from looplab.otlp.store import store_spans

log = logging.getLogger("looplab")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
TRACES_PATH = "/v1/traces"
# How many rejection reasons an answer spells out; the count covers them all.
_MAX_REASONS = 10
# google.rpc.Code values for the Status bodies of failed requests.
_RPC_CODES = {400: 3, 413: 8, 415: 3, 503: 14}  # INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE


@dataclass
class ExportResult:
    """The outcome of one export request: spans stored, spans rejected and why."""

    stored: int
    rejected: int
    message: str


def otlp_routes(database_url: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                redact: Redactor | None = None, pool: ExportPool | None = None) -> list[Route]:
    """Starlette routes serving OTLP/HTTP trace export (``POST /v1/traces``) into ``database_url``.

    ``max_body_bytes`` bounds a request body, both as received and once decompressed; spans'
    inputs and outputs go through ``redact`` before they are stored. Exports run in ``pool``'s
    processes when one is given (its owner closes it), else on this process's threads.
    """
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")
    if pool is not None and not can_send(redact):
        raise ConfigError("The redact hook cannot be handed to the OTLP export processes: define it at the top "
                          "level of a module (as LOOPLAB_REDACT names it).")

    async def export_traces(request: Request) -> Response:
        encoding = None
        try:
            encoding = media_type(request.headers.get("content-type"))
            gzipped = check_encoding(request.headers.get("content-encoding"))
            body = await read_body(request, max_body_bytes)
            # Decoding, mapping and storing hold the GIL or wait on the database: off the event loop.
            job = (database_url, body, encoding, gzipped, max_body_bytes, redact)
            result = await (pool.run(export, *job) if pool is not None else run_in_threadpool(export, *job))
        except PayloadError as err:
            log.info("looplab: OTLP export refused (%d): %s", err.status, err.message)
            return _status_response(err.status, err.message, encoding)
        except StoreError as err:
            log.warning("looplab: OTLP export not stored: %s", err)
            return _status_response(503, str(err), encoding)
        response = ExportTraceServiceResponse()
        if result.rejected or result.message:
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = result.message
        return Response(encode_response(response, encoding), media_type=encoding)

    return [Route(TRACES_PATH, export_traces, methods=["POST"])]


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``max_bytes`` (not read to the end)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadError(413, f"The body ({declared} bytes) is larger than the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadError(413, f"The body is larger than the limit of {max_bytes} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise PayloadError(400, f"The body ended after {size} bytes: the client disconnected") from None
    return b"".join(chunks)


def export(database_url: str, body: bytes, encoding: str, gzipped: bool,
           max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, redact: Redactor | None = None) -> ExportResult:
    """Decode, map and store one export request body (blocking).

    Raises ``PayloadError`` when the body cannot be read at all (nothing is stored) and
    ``StoreError`` when the database cannot be written.
    """
    if gzipped:
        body = gunzip(body, max_body_bytes)
    decoded = decode(body, encoding)
    mapped = map_request(decoded.request, decoded.id_errors)
    stored = store_spans(database_url, mapped.spans, redact)
    reasons = mapped.rejected + stored.rejected
    problems = reasons + stored.problems
    message = ""
    if problems:
        message = "; ".join(problems[:_MAX_REASONS])
        if len(problems) > _MAX_REASONS:
            message += f"; and {len(problems) - _MAX_REASONS} more"
        log.warning("looplab: OTLP export: %d of %d spans rejected: %s", len(reasons),
                    len(mapped.spans) + len(mapped.rejected), message)
    return ExportResult(stored=stored.stored, rejected=len(reasons), message=message)


def _status_response(status: int, message: str, encoding: str | None) -> Response:
    # A 415 has no usable request encoding: it is answered in JSON.
    encoding = encoding or JSON
    body = encode_status(_RPC_CODES.get(status, 2), message, encoding)
    return Response(body, status_code=status, media_type=encoding)
