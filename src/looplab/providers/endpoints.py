"""Where each provider's calls go and with which key: the environment first, then
``.streamlit/secrets.toml`` in the working directory. Keys are never stored in the database,
never logged and never shown back (``ProviderStatus`` has no key field).

==========================  ========================================  =====================================
provider                    environment                               ``.streamlit/secrets.toml``
==========================  ========================================  =====================================
``openai``                  ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``   ``[openai]`` ``api_key``, ``base_url``
``anthropic``               ``ANTHROPIC_API_KEY``,                    ``[anthropic]`` ``api_key``,
                            ``ANTHROPIC_BASE_URL``                    ``base_url``
``openai-compatible:<e>/``  ``LOOPLAB_OPENAI_COMPATIBLE_<E>_BASE_URL``  ``[openai_compatible.<e>]``
                            and optional ``..._API_KEY``              ``base_url``, ``api_key``
==========================  ========================================  =====================================

``<E>`` is the endpoint name upper-cased with ``-`` as ``_`` (``openai-compatible:my-vllm/...``
reads ``LOOPLAB_OPENAI_COMPATIBLE_MY_VLLM_BASE_URL``). The environment wins over the file, field
by field. An OpenAI-compatible endpoint without a key sends a placeholder one: never
``OPENAI_API_KEY``, which must not leak to another server.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from looplab.errors import ConfigError
from looplab.providers.models import ModelRef, ProviderStatus

SECRETS_PATH = Path(".streamlit") / "secrets.toml"
COMPATIBLE_PREFIX = "LOOPLAB_OPENAI_COMPATIBLE_"
NO_KEY = "no-key-set"  # what an OpenAI-compatible endpoint without a key receives as its key

_secrets_lock = threading.Lock()
_secrets_cache: dict[Path, tuple[int, dict[str, Any]]] = {}


@dataclass(frozen=True)
class Endpoint:
    """Where to send one provider's calls. ``api_key`` is for the SDK client only."""

    provider: str  # "openai" | "anthropic" | "openai-compatible"
    base_url: str | None  # None: the SDK's default
    api_key: str | None
    source: str  # e.g. "environment", ".streamlit/secrets.toml"

    def __repr__(self) -> str:  # never print the key
        return f"Endpoint(provider={self.provider!r}, base_url={safe_url(self.base_url)!r}, source={self.source!r})"


def safe_url(url: str | None) -> str | None:
    """A URL fit to show: user and password removed, query and fragment dropped."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unreadable URL)"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def read_secrets(path: Path | None = None) -> dict[str, Any]:
    """The secrets file's tables (``{}`` when there is none); ConfigError if it is not valid TOML."""
    path = (path or Path.cwd() / SECRETS_PATH).resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return {}
    with _secrets_lock:
        cached = _secrets_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # The parser's message names the line, never a value.
        raise ConfigError(f"{SECRETS_PATH} cannot be read: {exc}.") from None
    with _secrets_lock:
        _secrets_cache[path] = (mtime, data)
    return data


def _table(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data if isinstance(data, dict) else {}


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _pick(env_name: str, table: dict[str, Any], key: str) -> tuple[str | None, str | None]:
    value = _env(env_name)
    if value is not None:
        return value, "environment"
    value = _str(table.get(key))
    return (value, str(SECRETS_PATH)) if value is not None else (None, None)


def env_name(endpoint: str) -> str:
    """The environment-variable stem of an OpenAI-compatible endpoint name."""
    return COMPATIBLE_PREFIX + endpoint.upper().replace("-", "_")


def resolve(ref: ModelRef) -> Endpoint:
    """The endpoint for a parsed model; ConfigError saying what to set when it is not configured."""
    secrets = read_secrets()
    if ref.provider == "openai":
        key, key_src = _pick("OPENAI_API_KEY", _table(secrets, "openai"), "api_key")
        url, url_src = _pick("OPENAI_BASE_URL", _table(secrets, "openai"), "base_url")
        if key is None:
            raise ConfigError(
                f"{ref} needs an OpenAI key: set OPENAI_API_KEY (and OPENAI_BASE_URL for another server), "
                f"or an [openai] table with api_key in {SECRETS_PATH}."
            )
        return Endpoint("openai", url, key, key_src or url_src or "environment")
    if ref.provider == "anthropic":
        key, key_src = _pick("ANTHROPIC_API_KEY", _table(secrets, "anthropic"), "api_key")
        url, url_src = _pick("ANTHROPIC_BASE_URL", _table(secrets, "anthropic"), "base_url")
        if key is None:
            raise ConfigError(
                f"{ref} needs an Anthropic key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for another "
                f"server), or an [anthropic] table with api_key in {SECRETS_PATH}."
            )
        return Endpoint("anthropic", url, key, key_src or url_src or "environment")
    if ref.provider == "openai-compatible":
        assert ref.endpoint is not None
        stem = env_name(ref.endpoint)
        table = _compatible_tables(secrets).get(ref.endpoint, {})
        url, url_src = _pick(stem + "_BASE_URL", table, "base_url")
        key, _ = _pick(stem + "_API_KEY", table, "api_key")
        if url is None:
            raise ConfigError(
                f"{ref}: the OpenAI-compatible endpoint {ref.endpoint!r} is not configured. Set {stem}_BASE_URL "
                f"(e.g. http://127.0.0.1:11434/v1) and optionally {stem}_API_KEY, or add "
                f"[openai_compatible.{ref.endpoint}] with base_url (and api_key) to {SECRETS_PATH}."
            )
        return Endpoint("openai-compatible", url, key or NO_KEY, url_src or "environment")
    raise ConfigError(f"{ref} is not a provider with an endpoint.")


def _compatible_tables(secrets: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tables = _table(secrets, "openai_compatible")
    return {str(name).lower(): table for name, table in tables.items() if isinstance(table, dict)}


def _compatible_names(secrets: dict[str, Any]) -> list[str]:
    names = set(_compatible_tables(secrets))
    for variable, value in os.environ.items():
        if variable.startswith(COMPATIBLE_PREFIX) and variable.endswith("_BASE_URL") and value.strip():
            stem = variable[len(COMPATIBLE_PREFIX) : -len("_BASE_URL")]
            if stem:
                names.add(stem.lower())
    return sorted(names)


def sdk_installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def provider_statuses() -> list[ProviderStatus]:
    """What ``available_providers()`` returns (see there)."""
    try:
        secrets = read_secrets()
        secrets_problem = None
    except ConfigError as exc:
        secrets, secrets_problem = {}, str(exc)
    statuses = []
    for provider, label, key_var, url_var, example in (
        ("openai", "OpenAI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "openai:gpt-4o-mini"),
        ("anthropic", "Anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "anthropic:claude-3-5-haiku-latest"),
    ):
        key, key_src = _pick(key_var, _table(secrets, provider), "api_key")
        url, url_src = _pick(url_var, _table(secrets, provider), "base_url")
        if key is not None:
            source = f"{key_var} from the environment" if key_src == "environment" else f"[{provider}] in {key_src}"
        else:
            source = f"set {key_var} (or [{provider}] api_key in {SECRETS_PATH})"
        if secrets_problem and key is None:
            source += f"; {secrets_problem}"
        statuses.append(ProviderStatus(provider, label, key is not None, sdk_installed(provider), source,
                                       safe_url(url), example))
    for name in _compatible_names(secrets):
        stem = env_name(name)
        table = _compatible_tables(secrets).get(name, {})
        url, url_src = _pick(stem + "_BASE_URL", table, "base_url")
        key, _ = _pick(stem + "_API_KEY", table, "api_key")
        where = f"{stem}_BASE_URL from the environment" if url_src == "environment" else \
            f"[openai_compatible.{name}] in {SECRETS_PATH}"
        source = where + ("" if key else " (no key)")
        statuses.append(ProviderStatus(f"openai-compatible:{name}", f"{name} (OpenAI-compatible)", url is not None,
                                       sdk_installed("openai"), source, safe_url(url),
                                       f"openai-compatible:{name}/<model>"))
    statuses.append(ProviderStatus("mock", "mock (offline)", True, True, "built in: deterministic, no key", None,
                                   "mock:support"))
    return statuses
