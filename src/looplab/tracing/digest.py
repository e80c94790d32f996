"""Reading SDK objects: the few fields a span needs, taken as plain data.

A digest keeps the SDK's own field names (as dict keys), so the provider's ``extract`` reads a
digest and an SDK object alike through ``get_field``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

# The few fields of an SDK response (or stream item) that ``extract`` reads, as plain dicts with
# the SDK's own field names. Taken on the caller's thread so the SDK's object graph is freed when
# the caller drops it: held until the writer ran, those objects outlived the young generation and
# set off full garbage collections of the whole app (about 100 ms each, every ~1,000 calls).
Digest = Callable[[Any], Any]

log = logging.getLogger("looplab")
_digest_failures: set[str] = set()


def safe_digest(digest: Digest, value: Any, what: str) -> Any:
    """``digest(value)``, or ``None`` (logged once per kind) when the SDK handed over a new shape."""
    try:
        return digest(value)
    except Exception:
        if what not in _digest_failures:
            _digest_failures.add(what)
            log.exception("looplab: could not read a %s; such spans are recorded without it", what)
        return None


def get_field(obj: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from an SDK object or a plain dict (streams and tests hand over either).

    Missing names are answered without asking the object: pydantic models raise and catch an
    AttributeError for them, which cost microseconds each on the caller's thread.
    """
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    fields = getattr(obj, "__dict__", None)
    if fields is None:
        return getattr(obj, name, default)
    if name in fields:
        return fields[name]
    if hasattr(type(obj), name):  # a property or other class attribute
        return getattr(obj, name, default)
    extra = getattr(obj, "__pydantic_extra__", None)  # fields the SDK does not declare (yet)
    return extra.get(name, default) if extra else default


def pick(obj: Any, *names: str) -> dict[str, Any] | None:
    """The named fields of ``obj`` as a dict (``None`` for no object): a digest's building block."""
    if obj is None:
        return None
    return {name: get_field(obj, name) for name in names}
