"""Model clients for experiments and LLM judges: one ``complete()`` over every provider.

::

    from looplab.providers import complete, ProviderError
    answer = complete("openai:gpt-4o-mini", [{"role": "user", "content": "Hi"}], params={"temperature": 0})
    answer.text, answer.input_tokens, answer.cost_usd, answer.latency_ms

Model strings: ``openai:<model>``, ``anthropic:<model>``, ``openai-compatible:<endpoint>/<model>``
and ``mock:<name>`` (offline, deterministic: see ``looplab.providers.mock``). ``complete`` never
retries: the caller retries when ``ProviderError.retryable`` says so (after ``retry_after``).

Real calls go through ``looplab.wrap_openai``/``wrap_anthropic`` clients (one per base URL, key
and timeout, shared between threads), so with tracing configured each call is an ``llm`` span
under the caller's ``looplab.trace(...)``; mock calls are recorded the same way. Where keys and
base URLs come from: ``looplab.providers.endpoints``. The ``openai``/``anthropic`` packages are
imported only when their provider is used (``pip install 'looplab[openai]'``).
"""

from __future__ import annotations

from typing import Any

from looplab.errors import ConfigError
from looplab.providers.models import (
    ACCEPTED_FORMS,
    Completion,
    ModelRef,
    ProviderError,
    ProviderStatus,
    check_messages,
    parse_model,
)

__all__ = [
    "ACCEPTED_FORMS",
    "Completion",
    "ModelRef",
    "ProviderError",
    "ProviderStatus",
    "available_providers",
    "check_connection",
    "complete",
    "parse_model",
]


def complete(
    model: str,
    messages: list[dict[str, Any]],
    *,
    params: dict[str, Any] | None = None,
    timeout: float = 60.0,
    json_output: bool = False,
) -> Completion:
    """Ask ``model`` for the assistant's answer to OpenAI-style ``messages``.

    ``params`` (temperature, max_tokens, top_p, seed, stop, ...) are passed through where the
    provider supports them; unknown keys raise ConfigError naming them. ``json_output`` asks for
    a JSON object (OpenAI ``response_format``; for Anthropic the prompt must ask for it).
    Raises ProviderError when the call fails (never retried here), ConfigError when the model or
    its provider is not set up.
    """
    ref = parse_model(model)
    check_messages(messages)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    if ref.provider == "mock":
        from looplab.providers.mock import complete_mock

        return complete_mock(ref, model, messages, params, json_output)
    if ref.provider == "anthropic":
        from looplab.providers.anthropic_api import complete_anthropic

        return complete_anthropic(ref, model, messages, params, float(timeout), json_output)
    from looplab.providers.openai_api import complete_openai

    return complete_openai(ref, model, messages, params, float(timeout), json_output)


def available_providers() -> list[ProviderStatus]:
    """Every provider and whether it is configured here (from the environment and
    ``.streamlit/secrets.toml``); never a key."""
    from looplab.providers.endpoints import provider_statuses

    return provider_statuses()


def check_connection(model: str) -> str:
    """Make a tiny call to ``model``; a human message on success, ProviderError (or ConfigError) if not."""
    answer = complete(
        model, [{"role": "user", "content": "Reply with the single word OK."}], params={"max_tokens": 16},
        timeout=20.0,
    )
    said = " ".join(answer.text.split())
    said = said if len(said) <= 60 else said[:57] + "..."
    reply = f"it answered “{said}”" if said else f"it answered with no text (finish reason {answer.finish_reason})"
    return f"Connected to {model} in {answer.latency_ms:,.0f} ms; {reply}."
