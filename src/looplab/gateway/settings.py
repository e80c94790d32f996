"""What the gateway needs to know: where to listen, where to forward, where to record."""

from __future__ import annotations

import os
from dataclasses import dataclass

from looplab.config import DEFAULT_DATABASE_URL
from looplab.errors import ConfigError

OPENAI_BASE_URL = "https://api.openai.com/v1"
ANTHROPIC_BASE_URL = "https://api.anthropic.com"


@dataclass(frozen=True)
class GatewaySettings:
    """The gateway's settings; ``from_env`` fills those not given from ``LOOPLAB_*`` variables.

    ``openai_base_url`` ends with the API's version (``.../v1``), as the ``openai`` SDK's base URL
    does; ``anthropic_base_url`` does not, as the ``anthropic`` SDK's does not.
    """

    host: str = "127.0.0.1"
    port: int = 4000
    openai_base_url: str = OPENAI_BASE_URL
    anthropic_base_url: str = ANTHROPIC_BASE_URL
    database_url: str = DEFAULT_DATABASE_URL
    # When set, every route but /healthz needs it in the `x-looplab-api-key` header.
    api_key: str | None = None
    # Seconds to open a connection to an upstream (and to wait for a free pooled one).
    connect_timeout: float = 10.0
    # Seconds to wait for a non-streamed answer; the SDKs' own default is 600 s.
    read_timeout: float | None = 600.0
    # Longest silence tolerated inside a streamed answer (None: no limit). Reasoning models can
    # think for minutes before the next event, and the caller decides when to give up.
    stream_read_timeout: float | None = None
    # Response bodies kept for the trace, per call; the caller always gets the whole body.
    max_recorded_bytes: int = 16 * 1024 * 1024
    # Connections open to the upstreams at once, over all callers.
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("openai_base_url", "anthropic_base_url"):
            url = getattr(self, name)
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{name} must be an http:// or https:// URL; got {url!r}.")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("LOOPLAB_API_KEY is set but empty; unset it or give it a value.")
        for name in ("connect_timeout", "read_timeout", "stream_read_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds (or unset for no limit); got {value}.")
        if self.max_connections < 1 or self.max_recorded_bytes < 0:
            raise ConfigError("max_connections must be at least 1 and max_recorded_bytes not negative.")

    @property
    def upstreams(self) -> dict[str, str]:
        """Provider name to base URL, without a trailing slash."""
        return {"openai": self.openai_base_url.rstrip("/"), "anthropic": self.anthropic_base_url.rstrip("/")}


def api_key_from_env() -> str | None:
    """The ingest key from ``LOOPLAB_API_KEY`` (unset or empty: no key required)."""
    return os.environ.get("LOOPLAB_API_KEY") or None
