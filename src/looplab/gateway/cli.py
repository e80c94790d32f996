"""``looplab gateway``: serve the gateway with uvicorn.

``gateway_command`` is a plain Typer command function; the ``looplab`` command registers it
(``app.command("gateway")(gateway_command)``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from looplab.cli_options import DbOption
from looplab.config import DEFAULT_DATABASE_URL, settings_from_env
from looplab.errors import ConfigError, StoreError
from looplab.gateway.settings import (
    ANTHROPIC_BASE_URL,
    OPENAI_BASE_URL,
    GatewaySettings,
    api_key_from_env,
)

log = logging.getLogger("looplab.gateway")

# With several workers, uvicorn starts each from an import string: the settings travel in here.
_WORKER_SETTINGS = "LOOPLAB_GATEWAY_WORKER_SETTINGS"


def gateway_app(settings: GatewaySettings, otlp_max_body_bytes: int, otlp_processes: int) -> Any:
    """The app ``looplab gateway`` serves: the gateway, with the OpenTelemetry ingest (``POST
    /v1/traces``) when its dependencies are installed, its exports run in ``otlp_processes``
    processes (0: on the app's threads) that the app's shutdown stops."""
    from looplab.gateway.app import create_app

    if importlib.util.find_spec("google.protobuf") is None or importlib.util.find_spec("opentelemetry.proto") is None:
        log.warning("looplab gateway: OTLP ingest (/v1/traces) is off: it needs opentelemetry-proto and protobuf "
                    "(pip install 'looplab[gateway]')")
        return create_app(settings)
    from looplab.otlp.http import otlp_routes
    from looplab.otlp.pool import ExportPool

    pool = ExportPool(otlp_processes) if otlp_processes else None
    # LOOPLAB_REDACT's hook, as the proxy's recording applies it.
    routes = otlp_routes(settings.database_url, max_body_bytes=otlp_max_body_bytes, redact=settings_from_env().redact,
                         pool=pool)
    return create_app(settings, routes, on_shutdown=[pool.close] if pool else [])


def worker_app() -> Any:
    """The gateway app of one uvicorn worker process (``--workers`` above 1), built from the
    settings the command left in the environment."""
    given = json.loads(os.environ[_WORKER_SETTINGS])
    return gateway_app(GatewaySettings(**given["settings"]), given["otlp_max_body_bytes"], given["otlp_processes"])


def gateway_command(
    db: DbOption = DEFAULT_DATABASE_URL,
    host: Annotated[str, typer.Option(help="Address to listen on; keep 127.0.0.1 unless you mean to share it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4000,
    openai_base_url: Annotated[str, typer.Option(
        envvar="LOOPLAB_GATEWAY_OPENAI_BASE_URL",
        help="Where OpenAI-compatible calls go, with the version (…/v1): OpenAI, Azure, vLLM, Ollama…")] = OPENAI_BASE_URL,
    anthropic_base_url: Annotated[str, typer.Option(
        envvar="LOOPLAB_GATEWAY_ANTHROPIC_BASE_URL",
        help="Where Anthropic calls (/v1/messages) go, without the version.")] = ANTHROPIC_BASE_URL,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for a non-streamed answer before answering 504.")] = 600.0,
    stream_timeout: Annotated[float | None, typer.Option(
        help="Longest silence (seconds) tolerated inside a streamed answer; default: no limit.")] = None,
    connect_timeout: Annotated[float, typer.Option(
        help="Seconds to connect to an upstream before answering 504.")] = 10.0,
    otlp_max_body_bytes: Annotated[int, typer.Option(
        help="Largest OTLP export accepted on /v1/traces (bytes, as sent and unzipped); larger ones get 413.")
    ] = 16 * 1024 * 1024,
    otlp_processes: Annotated[int | None, typer.Option(
        min=0, show_default="one a CPU core (at most 4), shared out among the workers",
        help="Processes that decode and store OTLP exports (started with the first one), per worker; 0 runs them "
             "on the gateway's threads.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Server processes, each with its own OTLP export processes; one is enough unless proxied "
                    "calls alone keep a core busy.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log one line per request.")] = False,
) -> None:
    """Start the gateway: an OpenAI/Anthropic-compatible proxy that traces every call, OTLP ingest, the scores API.

    Point a client's base URL at it (http://HOST:PORT/v1 for openai, http://HOST:PORT for
    anthropic). With LOOPLAB_API_KEY set, requests need it in the x-looplab-api-key header.
    """
    if any(importlib.util.find_spec(name) is None for name in ("uvicorn", "starlette", "aiohttp", "httpx2")):
        raise ConfigError("The gateway needs the gateway extra: pip install 'looplab[gateway]'.")
    import uvicorn

    from looplab.otlp.pool import default_processes
    from looplab.store.engine import get_engine

    settings = GatewaySettings(
        host=host, port=port, openai_base_url=openai_base_url, anthropic_base_url=anthropic_base_url,
        database_url=db, api_key=api_key_from_env(), read_timeout=timeout, stream_read_timeout=stream_timeout,
        connect_timeout=connect_timeout,
    )
    try:
        shown = make_url(db).render_as_string(hide_password=True)
    except ArgumentError:
        shown = db  # reported as a warning just below
    try:
        get_engine(db)  # opened (and migrated) now, so that a problem is seen at start
    except StoreError as err:
        # Still serve: recording never stops calls, and the writer keeps retrying.
        typer.echo(f"Warning: {err} Calls are proxied; their traces are kept in memory (bounded) and retried.",
                   err=True)
    if settings.api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"Warning: listening on {host} without LOOPLAB_API_KEY: anyone who reaches it can record "
                   "traces and scores.", err=True)
    processes = f" ({workers} worker processes)" if workers > 1 else ""
    typer.echo(f"looplab gateway on http://{host}:{port}{processes} recording into {shown}; Ctrl+C stops it.")
    options = {"host": host, "port": port, "access_log": access_log, "log_level": "info",
               "timeout_graceful_shutdown": 10, "server_header": False}
    if otlp_processes is None:  # the cores shared out among the workers
        otlp_processes = max(1, default_processes() // workers)
    if workers == 1:
        uvicorn.run(gateway_app(settings, otlp_max_body_bytes, otlp_processes), **options)
        return
    os.environ[_WORKER_SETTINGS] = json.dumps({"settings": dataclasses.asdict(settings),
                                               "otlp_max_body_bytes": otlp_max_body_bytes,
                                               "otlp_processes": otlp_processes})
    uvicorn.run("looplab.gateway.cli:worker_app", factory=True, workers=workers, **options)
