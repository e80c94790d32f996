"""The one mechanism every SDK wrapper uses: patch a client's method on that client only.

The patched method opens a leaf span, calls the SDK, and hands back the SDK's own result (a stream
is instrumented in place, see ``streams``). Reading the request and response is left to the
provider's ``extract`` function, which runs on the writer thread.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from looplab.tracing.context import finish_span, open_span
from looplab.tracing.digest import Digest, safe_digest
from looplab.tracing.records import SpanRecord
from looplab.tracing.streams import instrument_async_stream, instrument_stream

Extract = Callable[[SpanRecord], None]
IsStream = Callable[[Any], bool]
# Whether a stream item carries generated content: time to first token is measured to the first
# such item, not to the stream's opening bookkeeping events.
IsContent = Callable[[Any], bool]

# Request arguments that are transport details, never stored (headers often carry keys).
_TRANSPORT_KWARGS = ("extra_headers", "extra_query", "timeout")


class Call:
    """The raw material of an LLM span: request arguments, then the response or stream items."""

    __slots__ = ("kwargs", "response", "items", "stopped_early")

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.response: Any = None
        self.items: list[Any] | None = None
        self.stopped_early = False


def split_looplab_kwargs(kwargs: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """Remove looplab's own arguments (``looplab_name``, ``looplab_metadata``) from an SDK call's kwargs."""
    name = kwargs.pop("looplab_name", None)
    metadata = kwargs.pop("looplab_metadata", None)
    return name, metadata


def snapshot_request(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request's arguments as sent: lists copied, transport details (headers) left out."""
    # Copy the lists callers commonly append to after the call (a chat loop's messages), so the
    # writer serialises the request as it was sent.
    copy = dict(kwargs)
    for key in ("messages", "input", "tools"):
        value = copy.get(key)
        if type(value) is list:
            copy[key] = value.copy()
    for key in _TRANSPORT_KWARGS:
        copy.pop(key, None)
    return copy


def _start(kind: str, name: str, provider: str, extract: Extract, kwargs: dict[str, Any]) -> SpanRecord | None:
    own_name, metadata = split_looplab_kwargs(kwargs)
    record = open_span(kind, own_name or name)
    if record is None:
        return None
    record.provider = provider
    record.raw = Call(snapshot_request(kwargs))
    record.extract = extract
    if metadata:
        record.attributes = dict(metadata)
    return record


def patch_method(
    owner: Any,
    attr: str,
    *,
    kind: str,
    name: str,
    provider: str,
    extract: Extract,
    is_stream: IsStream,
    digest: Digest,
    digest_item: Digest | None = None,
    is_content: IsContent | None = None,
) -> None:
    """Replace ``owner.attr`` (a bound SDK method) on this instance by a traced version."""
    original = getattr(owner, attr)
    if getattr(original, "__looplab_wrapped__", False):
        return

    # The SDKs decorate their async methods with plain wrappers, so look beneath them.
    if inspect.iscoroutinefunction(inspect.unwrap(original)):

        @functools.wraps(original)
        async def traced_async(*args: Any, **kwargs: Any) -> Any:
            record = _start(kind, name, provider, extract, kwargs)
            if record is None:
                return await original(*args, **kwargs)
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                finish_span(record, exc)
                raise
            if is_stream(result):
                return instrument_async_stream(result, record, is_content, digest_item)
            record.raw.response = safe_digest(digest, result, name)
            finish_span(record)
            return result

        traced_async.__looplab_wrapped__ = True  # type: ignore[attr-defined]
        setattr(owner, attr, traced_async)
        return

    @functools.wraps(original)
    def traced(*args: Any, **kwargs: Any) -> Any:
        record = _start(kind, name, provider, extract, kwargs)
        if record is None:
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            finish_span(record, exc)
            raise
        if is_stream(result):
            return instrument_stream(result, record, is_content, digest_item)
        record.raw.response = safe_digest(digest, result, name)
        finish_span(record)
        return result

    traced.__looplab_wrapped__ = True  # type: ignore[attr-defined]
    setattr(owner, attr, traced)
