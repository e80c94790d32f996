"""The looplab gateway: an HTTP proxy for OpenAI- and Anthropic-compatible calls that records
each call as a trace, and the scores API (``POST /api/scores``) for feedback from production apps.

Start it with ``looplab gateway``; build the ASGI app in code with ``create_app(GatewaySettings(...))``.
"""

from looplab.gateway.app import create_app
from looplab.gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
