"""The looplab gateway: an HTTP proxy for OpenAI- and Anthropic-compatible calls that records
each call as a trace, and the scores API (``POST /api/scores``) for feedback from production apps.

Start it with ``looplab gateway``; build the ASGI app in code with ``create_app(GatewaySettings(...))``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GatewaySettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the `looplab` command imports this package for `looplab gateway`, and
    # the rest of the CLI must work without the gateway extra (Starlette, uvicorn) installed.
    if name == "create_app":
        from looplab.gateway.app import create_app

        return create_app
    if name == "GatewaySettings":
        from looplab.gateway.settings import GatewaySettings

        return GatewaySettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
