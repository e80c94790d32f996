"""Turning payloads (inputs, outputs, attributes) into stored JSON text, secrets masked.

API keys and Authorization headers never reach storage: values under secret-looking keys and
strings shaped like provider keys or bearer tokens are replaced by ``[REDACTED]``.

``to_storable`` is the reference: it walks a value and builds a JSON-ready copy. ``dump_json``
gets the same result faster for the common case (plain JSON data with nothing to mask), which
orjson serialises in C; anything else (SDK objects, secrets, huge values) takes the walk.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from datetime import date, datetime
from enum import Enum
from typing import Any

import orjson

REDACTED = "[REDACTED]"
SECRET_KEYS = frozenset(
    {"api_key", "apikey", "api-key", "x-api-key", "authorization", "proxy-authorization", "password",
     "secret", "client_secret", "access_token", "refresh_token", "openai_api_key", "anthropic_api_key"}
)
_SECRET_PATTERN = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-~+/]{16,}=*|AKIA[0-9A-Z]{16})"
)
MAX_STRING_CHARS = 200_000
MAX_ITEMS = 10_000
MAX_DEPTH = 40


def _mask(text: str) -> str:
    if len(text) > MAX_STRING_CHARS:
        text = f"{text[:MAX_STRING_CHARS]}…[truncated {len(text) - MAX_STRING_CHARS} chars]"
    if len(text) >= 20 and ("sk-" in text or "Bearer" in text or "AKIA" in text):
        text = _SECRET_PATTERN.sub(REDACTED, text)
    return text


def to_storable(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of ``value``: SDK models dumped, secrets masked, huge values truncated."""
    if value is None or value is True or value is False or isinstance(value, int):
        return value
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or infinity
    if depth > MAX_DEPTH:
        return "…[nested too deep]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ITEMS:
                out["…"] = f"[{len(value) - MAX_ITEMS} more keys]"
                break
            key = key if isinstance(key, str) else str(key)
            out[key] = REDACTED if key.lower() in SECRET_KEYS and item else to_storable(item, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        out_list = [to_storable(item, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            out_list.append(f"…[{len(items) - MAX_ITEMS} more items]")
        return out_list
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        try:
            return to_storable(model_dump(mode="json", exclude_unset=True, warnings=False), depth + 1)
        except Exception:
            pass
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_storable(value.value, depth + 1)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_storable(dataclasses.asdict(value), depth + 1)
    return _mask(repr(value))


# A secret-named key, searched for in the lowered text: one pass, where listing every key and
# lowering each cost three times as much (a superset of what the walk masks: it only walks more).
_SECRET_KEY = re.compile('"(?:' + "|".join(map(re.escape, sorted(SECRET_KEYS))) + ')":')


def _needs_walk(text: str) -> bool:
    """Whether serialised JSON may hold a secret (a key-shaped string or a secret-named key)."""
    # A one-character test (memchr, ~30 ns a kilobyte) before each substring search (~700 ns):
    # exact, and it skips the search when the text lacks that character. What it saves depends on
    # the text: all three searches for text without "-", "B" and "K", none for English prose with
    # a hyphen, a capital B and a capital K in it.
    if ("-" in text and "sk-" in text) or ("B" in text and "Bearer" in text) or ("K" in text and "AKIA" in text):
        return True
    return _SECRET_KEY.search(text.lower()) is not None


_MAX_FAST_CHARS = MAX_STRING_CHARS


def _not_plain(value: Any) -> Any:
    raise TypeError  # not plain JSON data: take the walk


def dump_json(value: Any) -> str | None:
    """``value`` as stored JSON text (``None`` stays ``None``): the same as dumping ``to_storable(value)``."""
    if value is None:
        return None
    try:
        text = orjson.dumps(value, default=_not_plain, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = None
    if text is None or len(text) > _MAX_FAST_CHARS or _needs_walk(text):
        stored = to_storable(value)
        try:
            return orjson.dumps(stored).decode()
        except TypeError:  # an integer beyond 64 bits
            return json.dumps(stored)
    return text
