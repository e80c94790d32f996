"""``anthropic:`` models through the ``anthropic`` SDK's messages API.

System messages (all of them, joined by a blank line) become ``system=``; the others keep their
order. ``max_tokens``, which Anthropic requires, defaults to 1024. ``stop`` (a string or a list)
is sent as ``stop_sequences``; ``seed`` is not supported by Anthropic and is left out, so one
params set fits both providers. ``temperature``, ``top_p`` and ``top_k`` go in the request body
even where the installed SDK no longer lists them (2.x SDKs dropped them from ``messages.create``):
the API then accepts them or says why not. ``json_output`` changes nothing in the request: the
prompt must ask for JSON. Input tokens include cache reads and writes (looplab's convention, as on spans).
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from typing import Any

from looplab.errors import ConfigError
from looplab.providers.endpoints import Endpoint, resolve, safe_url
from looplab.providers.failures import to_provider_error, unreadable
from looplab.providers.models import (
    ANTHROPIC_PARAMS,
    Completion,
    ModelRef,
    check_params,
    content_text,
)
from looplab.tracing.pricing import cost_usd

DEFAULT_MAX_TOKENS = 1024

_lock = threading.Lock()
_clients: dict[tuple[str | None, str | None, float], Any] = {}


def _sdk() -> Any:
    try:
        import anthropic
    except ImportError:
        raise ConfigError("Anthropic models need the anthropic package: pip install 'looplab[anthropic]'.") from None
    return anthropic


def client_for(endpoint: Endpoint, timeout: float) -> Any:
    """A traced ``Anthropic`` client for this base URL, key and timeout, made once and shared."""
    key = (endpoint.base_url, endpoint.api_key, timeout)
    client = _clients.get(key)
    if client is not None:
        return client
    anthropic = _sdk()
    import looplab

    with _lock:
        client = _clients.get(key)
        if client is None:
            client = looplab.wrap_anthropic(
                anthropic.Anthropic(api_key=endpoint.api_key, base_url=endpoint.base_url, timeout=timeout,
                                    max_retries=0)
            )
            _clients[key] = client
    return client


_SAMPLING = ("temperature", "top_p", "top_k")


@functools.cache
def _sdk_arguments() -> frozenset[str]:
    anthropic = _sdk()
    try:
        return frozenset(inspect.signature(anthropic.resources.messages.Messages.create).parameters)
    except (AttributeError, TypeError, ValueError):  # another SDK layout: assume it takes them
        return frozenset(_SAMPLING)


def request_kwargs(ref: ModelRef, messages: list[dict[str, Any]], params: dict[str, Any] | None) -> dict[str, Any]:
    """The messages call's arguments."""
    given = check_params("anthropic", params, ANTHROPIC_PARAMS)
    extra_body = {k: given.pop(k) for k in _SAMPLING if k in given and k not in _sdk_arguments()}
    if extra_body:
        given["extra_body"] = extra_body
    given.pop("seed", None)
    stop = given.pop("stop", None)
    if stop is not None and "stop_sequences" not in given:
        given["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    given.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    system = [content_text(m["content"]) for m in messages if m["role"] == "system"]
    chat = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"]
    if not chat:
        raise ConfigError("Anthropic models need at least one user message besides the system prompt.")
    kwargs: dict[str, Any] = {"model": ref.name, "messages": chat, **given}
    if system:
        kwargs["system"] = "\n\n".join(system)
    return kwargs


def complete_anthropic(ref: ModelRef, model: str, messages: list[dict[str, Any]], params: dict[str, Any] | None,
                       timeout: float, json_output: bool) -> Completion:
    kwargs = request_kwargs(ref, messages, params)
    endpoint = resolve(ref)
    client = client_for(endpoint, timeout)
    anthropic = _sdk()
    where = safe_url(endpoint.base_url) or "Anthropic"
    started = time.perf_counter()
    try:
        response = client.messages.create(**kwargs)
    except anthropic.AnthropicError as exc:
        raise to_provider_error(exc, anthropic, model, where, timeout, endpoint.api_key) from exc
    except ValueError as exc:  # a body that is not JSON (a cut-off proxy, an HTML error page)
        raise unreadable(model, where, "the body is not valid JSON") from exc
    latency_ms = (time.perf_counter() - started) * 1000.0
    blocks = getattr(response, "content", None)
    if not isinstance(blocks, list):
        raise unreadable(model, where, "not a message")
    text = "".join(getattr(b, "text", "") or "" for b in blocks if getattr(b, "type", None) == "text")
    usage = getattr(response, "usage", None)
    uncached = getattr(usage, "input_tokens", None)
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    input_tokens = uncached + read + written if uncached is not None else None
    output_tokens = getattr(usage, "output_tokens", None)
    cost = cost_usd("anthropic", ref.name, input_tokens, output_tokens, read, written)
    return Completion(text=text, model=model, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost,
                      latency_ms=latency_ms, finish_reason=getattr(response, "stop_reason", None))
