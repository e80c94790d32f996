"""Cost in USD of an LLM call, from genai-prices' bundled price snapshot (never fetched online).

genai-prices takes 100+ µs a lookup, so a model's per-token rates are looked up once and cached;
models with tiered prices take the library's own (slower) path every time. An unknown model has
no cost (``None``), never 0.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from typing import Any

log = logging.getLogger(__name__)

try:
    PRICING_SOURCE: str | None = f"genai-prices {version('genai-prices')}"
except PackageNotFoundError:  # pragma: no cover - it is a dependency
    PRICING_SOURCE = None

# Spans of models on the user's own OpenAI-compatible server carry this provider (``openai-compatible:NAME``).
SELF_HOSTED = "openai-compatible"
_MISSING = object()
_cache: dict[tuple[str | None, str], Any] = {}
_lock = threading.Lock()


class _LinearRates:
    __slots__ = ("input", "output", "cache_read", "cache_write")

    def __init__(self, input: float, output: float, cache_read: float | None, cache_write: float | None) -> None:
        self.input = input
        self.output = output
        self.cache_read = cache_read
        self.cache_write = cache_write


def _lookup(provider: str | None, model: str) -> Any:
    from genai_prices.data_snapshot import get_snapshot

    try:
        _provider, model_info = get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError:
        return None
    from datetime import datetime, timezone

    prices = model_info.get_prices(datetime.now(timezone.utc))
    rates = (prices.input_mtok, prices.output_mtok, prices.cache_read_mtok, getattr(prices, "cache_write_mtok", None))
    if all(r is None or isinstance(r, Decimal) for r in rates) and rates[0] is not None and rates[1] is not None:
        return _LinearRates(*(float(r) / 1e6 if r is not None else None for r in rates))
    return prices  # tiered: priced by the library each time


def cost_usd(
    provider: str | None,
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None = None,
    cache_write_tokens: int | None = None,
) -> float | None:
    """The call's cost in USD, or ``None`` when the model or its usage is unknown, or the model runs
    on the user's own OpenAI-compatible server (``provider`` ``openai-compatible...``).

    ``input_tokens`` includes cached and cache-write tokens (OpenAI's convention); cached tokens
    are charged at the cache-read rate where the model has one.
    """
    if not model or input_tokens is None or output_tokens is None:
        return None
    if provider is not None and provider.startswith(SELF_HOSTED):
        return None  # a model served by the user's own server: a vendor's price for the same name would be wrong
    key = (provider, model)
    rates = _cache.get(key, _MISSING)
    if rates is _MISSING:
        try:
            rates = _lookup(provider, model)
        except Exception:  # a bug in the price data must not stop recording
            log.exception("looplab: price lookup failed for %s/%s", provider, model)
            rates = None
        with _lock:
            _cache[key] = rates
    if rates is None:
        return None
    cached = cached_tokens or 0
    written = cache_write_tokens or 0
    if isinstance(rates, _LinearRates):
        read_rate = rates.cache_read if rates.cache_read is not None else rates.input
        write_rate = rates.cache_write if rates.cache_write is not None else rates.input
        uncached = max(input_tokens - cached - written, 0)
        return uncached * rates.input + cached * read_rate + written * write_rate + output_tokens * rates.output
    from genai_prices import Usage

    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached or None,
                  cache_write_tokens=written or None)
    return float(rates.calc_price(usage)["total_price"])
