"""Errors the gateway answers itself, and the JSON body they are sent with.

The body has the shape both SDKs read an error message from: OpenAI's ``error.message`` and
Anthropic's ``{"type": "error", "error": {...}}``.
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from looplab.errors import LooplabError


class GatewayError(LooplabError):
    """A request the gateway refuses or cannot serve; the message is meant for the caller."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def error_response(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer of the gateway's own."""
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status_code=status,
                        headers=headers)
