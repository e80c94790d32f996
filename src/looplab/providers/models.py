"""The provider interface's types: what a completion returns, how a model is named, what fails.

Model strings name a provider and a model, separated by the first colon:

* ``openai:<model>`` (e.g. ``openai:gpt-4o-mini``)
* ``anthropic:<model>`` (e.g. ``anthropic:claude-3-5-haiku-latest``)
* ``openai-compatible:<endpoint>/<model>`` (e.g. ``openai-compatible:local/llama3.1:8b``): any
  server speaking OpenAI's chat completions API, configured under ``<endpoint>`` (see
  ``looplab.providers.endpoints``)
* ``mock:<name>`` (e.g. ``mock:support``, ``mock:echo``, ``mock:judge``): offline, deterministic
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from looplab.errors import ConfigError, LooplabError

PROVIDERS = ("openai", "anthropic", "openai-compatible", "mock")

ACCEPTED_FORMS = (
    "openai:<model> (e.g. openai:gpt-4o-mini), anthropic:<model> (e.g. anthropic:claude-3-5-haiku-latest), "
    "openai-compatible:<endpoint>/<model> (e.g. openai-compatible:local/llama3.1:8b), "
    "mock:<name> (e.g. mock:support, mock:echo, mock:judge)"
)

_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Completion:
    """One model answer, whatever the provider."""

    text: str  # the assistant's text ('' if none)
    model: str  # the model string asked for, e.g. "openai:gpt-4o-mini"
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None  # None when unknown, never 0 for unknown (the mock is free: 0.0)
    latency_ms: float
    finish_reason: str | None = None


class ProviderError(LooplabError):
    """A model call failed; the message is fit for users (it never holds a key).

    ``retryable`` is true for rate limits (429), overload and server errors (408, 409, 5xx),
    timeouts, connection errors and unreadable responses: the caller may try again, after
    ``retry_after`` seconds when the provider said so.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class ModelRef:
    """A parsed model string: ``provider``, the model ``name`` sent to it, and for
    ``openai-compatible`` the configured ``endpoint`` it goes to."""

    provider: str
    name: str
    endpoint: str | None = None

    def __str__(self) -> str:
        if self.endpoint is not None:
            return f"{self.provider}:{self.endpoint}/{self.name}"
        return f"{self.provider}:{self.name}"


@dataclass(frozen=True)
class ProviderStatus:
    """Whether a provider can be used here, for the Settings page: never holds a key."""

    provider: str  # "openai", "anthropic", "openai-compatible:<endpoint>", "mock"
    label: str  # "OpenAI", "Anthropic", "local (OpenAI-compatible)", "mock (offline)"
    configured: bool  # a key / base URL is set (the mock always is)
    installed: bool  # its SDK can be imported
    source: str  # where the settings come from, or what to set
    base_url: str | None  # where calls go (credentials in the URL removed), None for the default
    example_model: str  # a model string to try, e.g. "openai:gpt-4o-mini"

    @property
    def usable(self) -> bool:
        return self.configured and self.installed


def _suggest(model: str) -> str:
    lowered = model.lower()
    if lowered.startswith(("gpt", "o1", "o3", "o4", "chatgpt", "text-embedding")):
        return f" Did you mean openai:{model}?"
    if lowered.startswith("claude"):
        return f" Did you mean anthropic:{model}?"
    return ""


def parse_model(model: str) -> ModelRef:
    """Split a model string into provider and model; ConfigError naming the accepted forms if bad."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"No model given. Name one as {ACCEPTED_FORMS}.")
    model = model.strip()
    provider, sep, rest = model.partition(":")
    provider = provider.strip().lower()
    rest = rest.strip()
    if not sep:
        raise ConfigError(f"Model {model!r} names no provider.{_suggest(model)} Accepted forms: {ACCEPTED_FORMS}.")
    if provider not in PROVIDERS:
        raise ConfigError(f"Unknown provider {provider!r} in model {model!r}. Accepted forms: {ACCEPTED_FORMS}.")
    if provider == "openai-compatible":
        endpoint, slash, name = rest.partition("/")
        if not slash or not endpoint or not name.strip():
            raise ConfigError(
                f"Model {model!r}: an OpenAI-compatible model is written openai-compatible:<endpoint>/<model>, "
                "e.g. openai-compatible:local/llama3.1:8b, with the endpoint configured by "
                "LOOPLAB_OPENAI_COMPATIBLE_<ENDPOINT>_BASE_URL."
            )
        if not _ENDPOINT_NAME.match(endpoint):
            raise ConfigError(
                f"Model {model!r}: the endpoint name {endpoint!r} may hold only letters, digits, '-' and '_'."
            )
        return ModelRef(provider, name.strip(), endpoint.lower())
    if not rest:
        raise ConfigError(f"Model {model!r} names no model after {provider!r}. Accepted forms: {ACCEPTED_FORMS}.")
    return ModelRef(provider, rest)


# --- params ---------------------------------------------------------------------------------------

# Parameters every provider understands (passed through where the provider supports them).
COMMON_PARAMS = frozenset({"temperature", "max_tokens", "top_p", "seed", "stop"})
OPENAI_PARAMS = COMMON_PARAMS | {
    "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias", "reasoning_effort", "user",
    "service_tier",
}
ANTHROPIC_PARAMS = COMMON_PARAMS | {"top_k", "stop_sequences"}
MOCK_PARAMS = OPENAI_PARAMS | ANTHROPIC_PARAMS | {"quality", "latency_ms"}


def check_params(provider: str, params: dict[str, Any] | None, allowed: frozenset[str]) -> dict[str, Any]:
    """A copy of ``params`` without ``None`` values; ConfigError naming unknown keys."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ConfigError(f"params must be a mapping of parameter names to values, got {type(params).__name__}.")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(
            f"Unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for {provider} models; "
            f"accepted: {', '.join(sorted(allowed))}."
        )
    return {k: v for k, v in params.items() if v is not None}


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Messages must be OpenAI-style ``[{"role": "system"|"user"|"assistant", "content": ...}]``."""
    if not isinstance(messages, list) or not messages:
        raise ConfigError("messages must be a non-empty list like [{'role': 'user', 'content': 'Hello'}].")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise ConfigError(
                f"messages[{i}] must be a dict with a role of 'system', 'user' or 'assistant' and a content."
            )
        if message.get("content") is None:
            raise ConfigError(f"messages[{i}] ({message['role']}) has no content.")
    return messages


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return "" if content is None else str(content)
