"""The gateway's ASGI app: the proxy routes, the scores API, ``/healthz`` and any extra routes
(the OpenTelemetry ingest), behind the optional ingest key.
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from looplab.config import Settings, settings_from_env
from looplab.gateway.errors import GatewayError, error_response
from looplab.gateway.proxy import Proxy
from looplab.gateway.recording import RecentTraces
from looplab.gateway.scores_api import score_routes
from looplab.gateway.settings import GatewaySettings
from looplab.tracing import runtime

log = logging.getLogger("looplab.gateway")

API_KEY_HEADER = "x-looplab-api-key"
_OPEN_PATHS = frozenset({"/healthz"})


class ApiKeyMiddleware:
    """Answers 401 to any request but ``/healthz`` that lacks the ingest key.

    The key travels in its own header: a caller's ``Authorization`` header is the upstream's.
    """

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == API_KEY_HEADER.encode()), None)
        if given is None or not hmac.compare_digest(given, self._key):
            message = (f"looplab gateway: {'a wrong' if given is not None else 'no'} {API_KEY_HEADER} header; "
                       f"this gateway requires its ingest key (LOOPLAB_API_KEY) in that header.")
            await error_response(401, message, "authentication_error")(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _gateway_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc.status, str(exc), exc.kind)


def create_app(settings: GatewaySettings, extra_routes: Sequence[BaseRoute] = (), *,
               tracing: Settings | None = None, on_shutdown: Sequence[Callable[[], None]] = ()) -> Starlette:
    """The gateway as an ASGI app; ``extra_routes`` are served beside its own, behind the same key.

    On start-up the app points looplab's process-wide tracing at ``settings.database_url``
    (``tracing`` gives the writer's other settings; default: from ``LOOPLAB_*`` variables), so
    run one gateway app per process. On shutdown it writes what is still queued, then calls
    each of ``on_shutdown`` (e.g. closing the OTLP export processes) in turn.
    """
    recent = RecentTraces()
    proxy = Proxy(settings, recent)
    tracing_settings = (tracing or settings_from_env()).with_changes(database_url=settings.database_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        runtime.install(tracing_settings)
        await proxy.open()
        # What start-up built lives as long as the process: moved out of the collector's sight,
        # so that its full collections do not walk it while calls wait.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await proxy.close()
            if not await anyio.to_thread.run_sync(runtime.flush, 10.0):
                log.warning("looplab gateway: some traces could not be written before exit: %s", runtime.stats())
            for close in on_shutdown:
                await anyio.to_thread.run_sync(close)

    routes: list[BaseRoute] = [
        Route("/healthz", _healthz, methods=["GET"], name="healthz"),
        *proxy.routes(),
        *score_routes(settings.database_url, recent),
        *extra_routes,
    ]
    middleware = [Middleware(ApiKeyMiddleware, api_key=settings.api_key)] if settings.api_key else []
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={GatewayError: _gateway_error})
