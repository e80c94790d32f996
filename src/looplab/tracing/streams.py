"""Instrumenting an SDK's own stream object in place.

The caller gets the very object the SDK returned (``isinstance``, ``.response``, ``with``, and
``close`` all behave as before). Both SDKs iterate through ``stream._iterator``, so that iterator
is replaced by one that notes each item and the time to the first; ``close`` is wrapped; and a
finalizer covers a stream the caller drops half-way. Whichever comes first ends the span; it is
ended exactly once, and nothing raised while ending it reaches the caller's loop.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, AsyncIterator, Callable, Iterator

from looplab.tracing.context import finish_span
from looplab.tracing.digest import safe_digest
from looplab.tracing.records import SpanRecord

log = logging.getLogger("looplab")


class _StreamSpan:
    __slots__ = ("record", "items", "done", "lock", "is_content", "digest_item")

    def __init__(
        self, record: SpanRecord, is_content: Callable[[Any], bool] | None, digest_item: Callable[[Any], Any] | None
    ) -> None:
        self.record = record
        self.is_content = is_content
        self.digest_item = digest_item
        self.items: list[Any] = []
        self.done = False
        self.lock = threading.Lock()
        record.raw.items = self.items

    def note(self, item: Any) -> None:
        record = self.record
        if record.ttft_ms is None and (self.is_content is None or self.is_content(item)):
            record.ttft_ms = (time.perf_counter() - record.perf_start) * 1000.0
        digest = self.digest_item
        self.items.append(item if digest is None else safe_digest(digest, item, record.name))

    def end(self, error: BaseException | None = None, stopped_early: bool = False) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        try:
            self.record.raw.stopped_early = stopped_early
            finish_span(self.record, error)
        except Exception:  # never into the caller's loop
            log.exception("looplab: could not record the end of a stream")


def instrument_stream(
    stream: Any,
    record: SpanRecord,
    is_content: Callable[[Any], bool] | None = None,
    digest_item: Callable[[Any], Any] | None = None,
) -> Any:
    """Trace a sync SDK stream in place and return it."""
    span = _StreamSpan(record, is_content, digest_item)
    original: Iterator[Any] = stream._iterator

    def traced() -> Iterator[Any]:
        try:
            for item in original:
                span.note(item)
                yield item
        except GeneratorExit:
            span.end(stopped_early=True)
            raise
        except BaseException as exc:
            span.end(exc)
            raise
        span.end()

    stream._iterator = traced()
    close_on_class = type(stream).close
    stream_ref = weakref.ref(stream)  # a strong reference would keep the stream alive in a cycle

    def close() -> None:
        try:
            target = stream_ref()
            if target is not None:
                close_on_class(target)
        finally:
            span.end(stopped_early=True)

    stream.close = close
    weakref.finalize(stream, span.end, None, True)
    return stream


def instrument_async_stream(
    stream: Any,
    record: SpanRecord,
    is_content: Callable[[Any], bool] | None = None,
    digest_item: Callable[[Any], Any] | None = None,
) -> Any:
    """Trace an async SDK stream in place and return it."""
    span = _StreamSpan(record, is_content, digest_item)
    original: AsyncIterator[Any] = stream._iterator

    async def traced() -> AsyncIterator[Any]:
        try:
            async for item in original:
                span.note(item)
                yield item
        except GeneratorExit:
            span.end(stopped_early=True)
            raise
        except BaseException as exc:
            span.end(exc)
            raise
        span.end()

    stream._iterator = traced()
    close_on_class = type(stream).close
    stream_ref = weakref.ref(stream)

    async def close() -> None:
        try:
            target = stream_ref()
            if target is not None:
                await close_on_class(target)
        finally:
            span.end(stopped_early=True)

    stream.close = close
    weakref.finalize(stream, span.end, None, True)
    return stream
