"""Forwarding OpenAI- and Anthropic-compatible calls to their upstream, recording each one.

The caller's headers (its own API key included) go upstream as they came, less hop-by-hop
headers and looplab's own ``x-looplab-*``; nothing of them is recorded. Streamed answers are
relayed chunk by chunk as they arrive; other answers are read whole and sent with their length.
"""

from __future__ import annotations

import logging
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import anyio
import httpx2
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from looplab.gateway import recording
from looplab.gateway.errors import GatewayError, error_response
from looplab.gateway.recording import ENDPOINTS, Endpoint, Exchange, RecentTraces
from looplab.gateway.settings import GatewaySettings
from looplab.gateway.transport import AiohttpTransport
from looplab.tracing.records import SpanRecord, TraceInfo

log = logging.getLogger("looplab.gateway")

TRACE_ID_HEADER = "x-looplab-trace-id"
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer", b"trailers",
    b"transfer-encoding", b"upgrade",
})
# Host and length are the upstream request's own. Accept-Encoding is left to the client library,
# which then asks only for encodings it can decode: the gateway decodes what it records, and
# answers the caller uncompressed.
_NOT_FORWARDED = _HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding"}
_NOT_RETURNED = _HOP_BY_HOP | {b"content-length", b"content-encoding"}


class _NoCookies(DefaultCookiePolicy):
    """Never keep a cookie: one pooled client serves every caller, who must not share cookies."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


def new_client(settings: GatewaySettings) -> httpx2.AsyncClient:
    """The one pooled client for every upstream call (httpx2's API over aiohttp's pool)."""
    return httpx2.AsyncClient(
        transport=AiohttpTransport(max_connections=settings.max_connections),
        timeout=httpx2.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        cookies=httpx2.Cookies(CookieJar(policy=_NoCookies())),
        follow_redirects=False,
        trust_env=False,  # proxies from the environment are the transport's to apply, not httpx2's own
    )


def _header(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    # Headers arrive as latin-1; a UTF-8 sender's accents are restored, anything else kept as sent.
    try:
        value = value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    return value.strip() or None


def trace_info_from_headers(request: Request, default_name: str) -> TraceInfo:
    """The trace's name, session, user, tags and metadata from ``x-looplab-*`` headers.

    Raises ``GatewayError`` (400) when ``x-looplab-metadata`` is not a JSON object.
    """
    tags_header = _header(request, "x-looplab-tags")
    tags = [tag.strip() for tag in tags_header.split(",") if tag.strip()] if tags_header else None
    metadata_header = _header(request, "x-looplab-metadata")
    metadata: dict[str, Any] | None = None
    if metadata_header is not None:
        try:
            parsed = orjson.loads(metadata_header)
        except orjson.JSONDecodeError as err:
            raise GatewayError(400, f"x-looplab-metadata is not valid JSON ({err}); send a JSON object, "
                                    'e.g. {"plan": "pro"}.') from None
        if not isinstance(parsed, dict):
            raise GatewayError(400, f"x-looplab-metadata must be a JSON object; got {type(parsed).__name__}.")
        metadata = parsed
    return TraceInfo(
        name=_header(request, "x-looplab-trace-name") or default_name,
        user_id=_header(request, "x-looplab-user-id"),
        session_id=_header(request, "x-looplab-session-id"),
        tags=tags,
        metadata=metadata,
    )


def _wants_stream(body: bytes) -> bool:
    # A plain substring test first: most calls do not mention streaming at all.
    if b'"stream"' not in body:
        return False
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and parsed.get("stream") is True


class Proxy:
    """The proxy routes and the pooled upstream client they share (opened by the app's lifespan)."""

    def __init__(self, settings: GatewaySettings, recent: RecentTraces) -> None:
        self.settings = settings
        self.recent = recent
        self.client: httpx2.AsyncClient | None = None
        upstreams = settings.upstreams
        self._stream_timeout = httpx2.Timeout(settings.read_timeout, connect=settings.connect_timeout,
                                              read=settings.stream_read_timeout, pool=settings.connect_timeout)
        self._plain_timeout = httpx2.Timeout(settings.read_timeout, connect=settings.connect_timeout,
                                             pool=settings.connect_timeout)
        # OpenAI's base URL carries the version (/v1) the gateway's paths start with; Anthropic's does not.
        self._targets = {
            path: upstreams["openai"] + path.removeprefix("/v1") if endpoint.provider == "openai"
            else upstreams["anthropic"] + path
            for path, endpoint in ENDPOINTS.items()
        }

    def routes(self) -> list[Route]:
        """One ``POST`` route per proxied API."""
        return [Route(path, self.forward, methods=["POST"], name=f"proxy:{path}") for path in ENDPOINTS]

    async def open(self) -> None:
        """Create the pooled upstream client."""
        self.client = new_client(self.settings)

    async def close(self) -> None:
        """Close the upstream client and its pooled connections."""
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def forward(self, request: Request) -> Response:
        """Send the call upstream and relay the answer; record it as a trace."""
        endpoint = ENDPOINTS[request.url.path]
        info = trace_info_from_headers(request, endpoint.span_name)
        body = await request.body()
        exchange = Exchange(body)
        record = recording.start(endpoint, info, exchange, self.recent)
        trace_headers = {TRACE_ID_HEADER: record.trace_id} if record is not None else {}
        client = self.client
        assert client is not None, "the gateway's lifespan opens the upstream client"
        url = self._targets[endpoint.path]
        if request.url.query:
            url = f"{url}?{request.url.query}"
        headers = [(k, v) for k, v in request.headers.raw if k not in _NOT_FORWARDED and not k.startswith(b"x-looplab-")]
        stream = _wants_stream(body)
        upstream_request = client.build_request(
            "POST", url, content=body, headers=headers, timeout=self._stream_timeout if stream else self._plain_timeout
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx2.HTTPError as err:
            return self._failed(endpoint, err, record, trace_headers)
        exchange.status = upstream.status_code
        exchange.request_id = upstream.headers.get("x-request-id") or upstream.headers.get("request-id")
        response_headers = [(k, v) for k, v in upstream.headers.raw if k.lower() not in _NOT_RETURNED]
        if record is not None:
            response_headers.append((TRACE_ID_HEADER.encode(), record.trace_id.encode()))
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            return _Relay(upstream, response_headers, exchange, record, self.settings.max_recorded_bytes)
        try:
            content = await upstream.aread()
        except httpx2.HTTPError as err:
            return self._failed(endpoint, err, record, trace_headers)
        finally:
            await upstream.aclose()
        if len(content) <= self.settings.max_recorded_bytes:
            exchange.body = content
        else:
            exchange.truncated = True
        recording.finish(record)
        return _Whole(upstream.status_code, response_headers, content)

    def _failed(self, endpoint: Endpoint, err: httpx2.HTTPError, record: SpanRecord | None,
                headers: dict[str, str]) -> Response:
        """The answer when the upstream could not be reached or did not answer in time."""
        base = self.settings.upstreams[endpoint.provider]
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        if isinstance(err, httpx2.TimeoutException):
            status, kind = 504, "upstream_timeout"
            message = f"looplab gateway: the {endpoint.provider} upstream at {base} did not answer in time ({detail})."
        else:
            status, kind = 502, "upstream_unreachable"
            message = f"looplab gateway: could not reach the {endpoint.provider} upstream at {base} ({detail})."
        log.warning("%s", message)
        recording.finish(record, message)
        return error_response(status, message, kind, headers)


class _Whole(Response):
    """An upstream's whole answer, with its own headers (less hop-by-hop ones) and its length."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> None:
        self.status_code = status
        self.body = content
        self.raw_headers = [*headers, (b"content-length", str(len(content)).encode())]
        self.background = None


class _Relay(Response):
    """Relays an upstream stream chunk by chunk as it arrives, then records the call.

    Written out rather than a ``StreamingResponse`` over a generator: the upstream must be closed
    and the span ended exactly once, whether the stream ends, breaks or the caller leaves, and a
    generator abandoned on a caller's disconnect would only be closed by the garbage collector.
    """

    def __init__(self, upstream: httpx2.Response, headers: list[tuple[bytes, bytes]], exchange: Exchange,
                 record: SpanRecord | None, limit: int) -> None:
        self.status_code = upstream.status_code
        self.raw_headers = headers
        self.background = None
        self._upstream = upstream
        self._exchange = exchange
        self._record = record
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = self._exchange
        error: str | None = None
        left = False
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async with anyio.create_task_group() as group:

                async def watch_for_disconnect() -> None:
                    nonlocal left
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    left = True
                    group.cancel_scope.cancel()

                group.start_soon(watch_for_disconnect)
                # Failures are told apart here, inside the group: leaving it, they come wrapped
                # in an exception group.
                try:
                    # Each chunk goes out as it comes in; httpx2 yields what the socket read, decoded.
                    async for chunk in self._upstream.aiter_bytes():
                        exchange.add_chunk(chunk, self._limit)
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:  # ASGI 2.4 servers report a caller that left this way
                    left = True
                except httpx2.HTTPError as err:
                    # The status line is gone already: the caller learns of it from the broken stream.
                    error = f"the upstream stream broke off: {type(err).__name__}: {err}"
                    log.warning("looplab gateway: %s", error)
                    raise
                finally:
                    group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()
            exchange.stopped_early = left
            recording.finish(self._record, error)
