"""Settings read from the environment, in one place.

Every setting has an environment variable (``LOOPLAB_*``) and a default that works on a fresh
machine; ``looplab.configure(...)`` overrides them in process.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass, replace
from typing import Any, Callable

from looplab.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///looplab.db"

Redactor = Callable[[Any], Any]


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to a number like {default}.") from None


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to a number like {default}.") from None


@dataclass(frozen=True)
class Settings:
    """What looplab needs to know to record and show traces."""

    database_url: str = DEFAULT_DATABASE_URL
    sample_rate: float = 1.0
    environment: str | None = None
    release: str | None = None
    redact: Redactor | None = None
    enabled: bool = True
    # The writer's queue: records beyond this many waiting are dropped (and counted), never blocking.
    max_queue_size: int = 100_000
    # How often the background writer wakes up to write what has accumulated, in seconds.
    flush_interval: float = 0.1
    # Write as soon as this many records wait, without waiting for the timer.
    batch_size: int = 1_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be between 0 and 1, got {self.sample_rate}.")
        if self.max_queue_size < 1 or self.batch_size < 1:
            raise ConfigError("max_queue_size and batch_size must be at least 1.")
        if self.flush_interval <= 0:
            raise ConfigError("flush_interval must be a positive number of seconds.")

    def with_changes(self, **changes: Any) -> "Settings":
        """Return a copy with the given fields changed (``None`` values leave a field as it is)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@functools.lru_cache(maxsize=8)
def load_redactor(spec: str) -> Redactor:
    """The function ``spec`` names, as ``package.module:function``: the redact hook of processes
    configured by environment (``LOOPLAB_REDACT``), such as ``looplab gateway``.

    Raises ``ConfigError`` saying what is wrong when it cannot be imported or is not callable.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"LOOPLAB_REDACT={spec!r} must name a function as package.module:function, "
                          "e.g. myapp.privacy:scrub.")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # any import failure of the user's module is reported the same way
        raise ConfigError(f"LOOPLAB_REDACT: cannot import {module_name!r} ({type(err).__name__}: {err}); "
                          "is it on the Python path of this process?") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigError(f"LOOPLAB_REDACT: {module_name!r} has no function {attribute!r}.")
    return function  # type: ignore[no-any-return]


def settings_from_env() -> Settings:
    """Build settings from ``LOOPLAB_*`` environment variables, defaults elsewhere."""
    redact = os.environ.get("LOOPLAB_REDACT") or None
    return Settings(
        database_url=os.environ.get("LOOPLAB_DATABASE_URL") or DEFAULT_DATABASE_URL,
        redact=load_redactor(redact) if redact else None,
        sample_rate=_float_env("LOOPLAB_SAMPLE_RATE", 1.0),
        environment=os.environ.get("LOOPLAB_ENVIRONMENT") or None,
        release=os.environ.get("LOOPLAB_RELEASE") or None,
        enabled=os.environ.get("LOOPLAB_ENABLED", "1").lower() not in ("0", "false", "no", "off"),
        max_queue_size=_int_env("LOOPLAB_MAX_QUEUE_SIZE", 100_000),
        flush_interval=_float_env("LOOPLAB_FLUSH_INTERVAL", 0.1),
        batch_size=_int_env("LOOPLAB_BATCH_SIZE", 1_000),
    )


def configured_providers() -> dict[str, bool]:
    """Which model providers have a key or a base URL in the environment (the SDKs' own variables)."""
    return {
        "OpenAI": bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")),
        "Anthropic": bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_BASE_URL")),
        "mock (offline)": True,
    }
