"""The gateway's upstream transport: httpx2's client API over aiohttp's pool and C HTTP parser.

The proxy speaks httpx2 (requests, responses, streams, errors, the same client the ``openai`` and
``anthropic`` SDKs use); this transport carries its requests. httpx2's own transport, httpcore2,
parses HTTP in Python and goes through anyio for each socket operation: on a 2-core machine it
was 73% of the gateway's time per call. aiohttp's pool with its C parser halves the latency the
gateway adds (``bench/README.md``, gateway section).

What httpx2 would do on its own is kept: bodies arrive as sent (httpx2 decodes the content
encoding it asked for, aiohttp does not decode), no cookies, no redirects, and failures surface
as httpx2's exceptions (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``ReadError``,
``RemoteProtocolError``), so the proxy answers 502 and 504 as before.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import httpx2

# Headers aiohttp would add on its own; httpx2 has already set the ones the request needs.
_NOT_ADDED = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` async transport sending through one pooled ``aiohttp`` session.

    ``max_connections`` bounds the connections open at once. ``trust_env`` honours the
    ``HTTP(S)_PROXY`` and ``NO_PROXY`` variables (and ``.netrc``) as httpx2 does by default; by
    default it is on only when a proxy is configured: aiohttp then reads them on every request,
    which cost 1.5 ms of the gateway's 3.5 at p50 (``bench.gateway``).
    """

    def __init__(self, max_connections: int = 1000, keepalive_seconds: float = 15.0,
                 trust_env: bool | None = None) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._trust_env = bool(urllib.request.getproxies()) if trust_env is None else trust_env
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the event loop that made it.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0,
                                             keepalive_timeout=self._keepalive_seconds, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                  cookie_jar=aiohttp.DummyCookieJar(), trust_env=self._trust_env)
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` and return its response with the body still to be read."""
        session = self._open()
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.get("pool"),
                                        sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read"))
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            response = await session.request(
                request.method, str(request.url), headers=headers, data=request.content, timeout=timeout,
                allow_redirects=False, skip_auto_headers=_NOT_ADDED, compress=None)
        except _FAILURES as err:
            raise _httpx_error(err, request, connecting=True) from err
        return httpx2.Response(
            response.status, headers=list(response.raw_headers), stream=_Body(response, request), request=request,
            extensions={"http_version": f"HTTP/{response.version.major}.{response.version.minor}".encode(),
                        "reason_phrase": (response.reason or "").encode("latin-1", "replace")})

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body(httpx2.AsyncByteStream):
    """An aiohttp response body as httpx2 reads it: chunks as they arrive off the socket."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _FAILURES as err:
            raise _httpx_error(err, self._request, connecting=False) from err

    async def aclose(self) -> None:
        # A body read to its end returns the connection to the pool; one left early closes it.
        self._response.release()


# What aiohttp raises when the upstream cannot be reached or read (its timeouts are asyncio's too).
_FAILURES = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def _httpx_error(err: BaseException, request: httpx2.Request, connecting: bool) -> httpx2.TransportError:
    """``err`` (one of ``_FAILURES``) as the httpx2 exception httpx2's own transport raises."""
    message = str(err) or type(err).__name__
    if isinstance(err, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(message, request=request)
    if isinstance(err, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return httpx2.ReadTimeout(message, request=request)
    if isinstance(err, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(message, request=request)
    if isinstance(err, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return httpx2.RemoteProtocolError(message, request=request)
    error: type[httpx2.TransportError] = httpx2.ConnectError if connecting else httpx2.ReadError
    return error(message, request=request)
