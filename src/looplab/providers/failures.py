"""SDK exceptions (``openai`` and ``anthropic`` share their shapes) as ``ProviderError``."""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any

from looplab.providers.models import ProviderError

# Retryable statuses, as the SDKs themselves retry them: timeout, lock conflict, rate limit, 5xx.
RETRYABLE_STATUSES = frozenset({408, 409, 429})

_KEYISH = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|sk-ant-[A-Za-z0-9_\-*]{6,})")

_STATUS_WORDS = {
    400: "rejected the request",
    401: "refused the API key",
    403: "denied access",
    404: "does not know this model or URL",
    408: "timed out",
    409: "reported a conflict",
    413: "found the request too large",
    422: "could not process the request",
    429: "is rate limiting",
    500: "had an internal error",
    502: "is unreachable behind its gateway",
    503: "is unavailable",
    504: "timed out behind its gateway",
    529: "is overloaded",
}


def scrub(text: str, secret: str | None) -> str:
    """Remove the key (and anything that looks like one) from a message."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return _KEYISH.sub("sk-***", text)


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    try:
        raw_ms = headers.get("retry-after-ms")
        if raw_ms is not None:
            return max(float(raw_ms) / 1000.0, 0.0)
    except (TypeError, ValueError):
        pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _body_message(error: Any) -> str | None:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = inner.get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
    return None


def to_provider_error(error: Exception, sdk: Any, model: str, where: str | None, timeout: float,
                      secret: str | None) -> ProviderError:
    """The ``ProviderError`` for an exception raised by the ``sdk`` module's client."""
    place = f" at {where}" if where else ""
    if isinstance(error, sdk.APITimeoutError):
        message = f"{model}: no answer{place} within {timeout:g} s (timed out)."
        return ProviderError(scrub(message, secret), retryable=True)
    if isinstance(error, sdk.APIConnectionError):
        cause = error.__cause__ or error.__context__
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        target = f" to {where}" if where else ""
        message = f"{model}: could not connect{target}{detail}. Is the server running and the base URL right?"
        return ProviderError(scrub(message, secret), retryable=True)
    if isinstance(error, sdk.APIStatusError):
        status = error.status_code
        response = getattr(error, "response", None)
        wait = retry_after(getattr(response, "headers", None))
        retryable = status in RETRYABLE_STATUSES or status >= 500
        words = _STATUS_WORDS.get(status, "answered with an error")
        detail = _body_message(error) or ""
        message = f"{model}: the provider {words} (HTTP {status})" + (f": {detail}" if detail else ".")
        if not message.endswith((".", "!", "?")):
            message += "."
        if retryable and wait is not None:
            message += f" Retry after {wait:g} s."
        return ProviderError(scrub(message, secret), status=status, retryable=retryable, retry_after=wait)
    if isinstance(error, sdk.APIResponseValidationError):
        status = getattr(error, "status_code", None)
        message = f"{model}: the provider's answer{place} could not be read (not the expected format)."
        return ProviderError(scrub(message, secret), status=status, retryable=True)
    # Anything else the SDK raises (a body that is not JSON, a client-side check).
    message = f"{model}: the call failed{place}: {type(error).__name__}: {error}"
    return ProviderError(scrub(message, secret), retryable=False)


def unreadable(model: str, where: str | None, what: str) -> ProviderError:
    """The answer arrived but is not what the SDK promises (e.g. a truncated or non-JSON body)."""
    place = f" from {where}" if where else ""
    return ProviderError(f"{model}: the answer{place} could not be read ({what}).", retryable=True)
