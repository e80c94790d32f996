"""``openai:`` and ``openai-compatible:`` models through the ``openai`` SDK's chat completions.

``max_tokens`` is sent as ``max_completion_tokens`` to OpenAI itself (its reasoning models refuse
``max_tokens``) and as is to OpenAI-compatible servers (which may know only ``max_tokens``).
``json_output`` sends ``response_format={"type": "json_object"}``. Costs come from the tracing
pricing table for ``openai:`` models; an OpenAI-compatible server's model has no known price
(``None``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from looplab.errors import ConfigError
from looplab.providers.endpoints import Endpoint, resolve, safe_url
from looplab.providers.failures import to_provider_error, unreadable
from looplab.providers.models import OPENAI_PARAMS, Completion, ModelRef, check_params
from looplab.tracing.pricing import SELF_HOSTED, cost_usd

_lock = threading.Lock()
_clients: dict[tuple[str | None, str | None, float, str], Any] = {}


def _sdk() -> Any:
    try:
        import openai
    except ImportError:
        raise ConfigError("OpenAI models need the openai package: pip install 'looplab[openai]'.") from None
    return openai


def client_for(endpoint: Endpoint, timeout: float, provider: str = "openai") -> Any:
    """A traced ``OpenAI`` client for this base URL, key and timeout, made once and shared; its
    spans record ``provider``."""
    key = (endpoint.base_url, endpoint.api_key, timeout, provider)
    client = _clients.get(key)
    if client is not None:
        return client
    openai = _sdk()
    import looplab

    with _lock:
        client = _clients.get(key)
        if client is None:
            client = looplab.wrap_openai(
                openai.OpenAI(api_key=endpoint.api_key, base_url=endpoint.base_url, timeout=timeout, max_retries=0),
                provider=provider,
            )
            _clients[key] = client
    return client


def request_kwargs(ref: ModelRef, messages: list[dict[str, Any]], params: dict[str, Any] | None,
                   json_output: bool) -> dict[str, Any]:
    """The chat completion's arguments."""
    given = check_params(ref.provider, params, OPENAI_PARAMS)
    if ref.provider == "openai" and "max_tokens" in given and "max_completion_tokens" not in given:
        given["max_completion_tokens"] = given.pop("max_tokens")
    kwargs: dict[str, Any] = {"model": ref.name, "messages": messages, **given}
    if json_output:
        kwargs["response_format"] = {"type": "json_object"}
    return kwargs


def complete_openai(ref: ModelRef, model: str, messages: list[dict[str, Any]], params: dict[str, Any] | None,
                    timeout: float, json_output: bool) -> Completion:
    kwargs = request_kwargs(ref, messages, params, json_output)
    endpoint = resolve(ref)
    # A model on the user's own server is shown under its endpoint's name and never priced as OpenAI's.
    client = client_for(endpoint, timeout, "openai" if ref.provider == "openai" else f"{SELF_HOSTED}:{ref.endpoint}")
    openai = _sdk()
    where = safe_url(endpoint.base_url) or ("OpenAI" if ref.provider == "openai" else None)
    started = time.perf_counter()
    try:
        response = client.chat.completions.create(**kwargs)
    except openai.OpenAIError as exc:
        raise to_provider_error(exc, openai, model, where, timeout, endpoint.api_key) from exc
    except ValueError as exc:  # a body that is not JSON (a cut-off proxy, an HTML error page)
        raise unreadable(model, where, "the body is not valid JSON") from exc
    latency_ms = (time.perf_counter() - started) * 1000.0
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        # The SDK hands back the raw text when the body is not JSON.
        raise unreadable(model, where, "not a chat completion")
    if not choices:
        raise unreadable(model, where, "no choices")
    choice = choices[0]
    text = getattr(choice.message, "content", None) or ""
    usage = getattr(response, "usage", None)
    input_tokens = getattr(usage, "prompt_tokens", None)
    output_tokens = getattr(usage, "completion_tokens", None)
    cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
    cost = cost_usd("openai", ref.name, input_tokens, output_tokens, cached) if ref.provider == "openai" else None
    return Completion(text=text, model=model, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost,
                      latency_ms=latency_ms, finish_reason=getattr(choice, "finish_reason", None))
