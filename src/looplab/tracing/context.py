"""The active span, carried in a ContextVar so threads and asyncio tasks each see their own.

``trace`` and ``observe`` open spans that become the parent of whatever runs inside them; SDK
wrappers open leaf spans with ``open_span`` and never touch the context (cheaper on the hot path).
"""

from __future__ import annotations

import functools
import inspect
import random
import time
from contextvars import ContextVar, Token
from typing import Any, Callable, TypeVar, overload

from looplab.tracing import runtime
from looplab.tracing.ids import new_span_id, new_trace_id
from looplab.tracing.records import SpanRecord, TraceInfo

F = TypeVar("F", bound=Callable[..., Any])


class _Unsampled:
    """Marks a trace that sampling left out, so nothing inside it starts a trace of its own."""

    __slots__ = ()


_UNSAMPLED = _Unsampled()
_current: ContextVar[SpanRecord | _Unsampled | None] = ContextVar("looplab_current_span", default=None)


def open_span(kind: str, name: str, trace_info: TraceInfo | None = None) -> SpanRecord | None:
    """Start a span under the active one (or as the root of a new trace), without activating it.

    Returns ``None`` when nothing is to be recorded: tracing disabled, or the trace not sampled.
    """
    settings = runtime.settings()
    if not settings.enabled:
        return None
    parent = _current.get()
    if parent is _UNSAMPLED:
        return None
    if parent is None:
        if settings.sample_rate < 1.0 and random.random() >= settings.sample_rate:
            return None
        record = SpanRecord(new_span_id(), new_trace_id(), None, kind, name)
        info = trace_info or TraceInfo(name=name)
        info.release = info.release or settings.release
        info.environment = info.environment or settings.environment
        record.trace = info
    else:
        assert isinstance(parent, SpanRecord)
        record = SpanRecord(new_span_id(), parent.trace_id, parent.span_id, kind, name)
    record.start_ns = time.time_ns()
    record.perf_start = time.perf_counter()
    return record


def finish_span(record: SpanRecord, error: BaseException | None = None) -> None:
    """End a span (with its error, if any) and hand it to the writer."""
    duration = time.perf_counter() - record.perf_start
    record.duration_ms = duration * 1000.0
    record.end_ns = record.start_ns + int(duration * 1e9)
    if error is not None:
        record.status = "error"
        record.error = error_message(error)
    runtime.writer().submit(record)


def error_message(error: BaseException) -> str:
    """How an exception is shown in the UI: its type and message."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _activate(record: SpanRecord | _Unsampled) -> Token[SpanRecord | _Unsampled | None]:
    return _current.set(record)


def current_trace_id() -> str | None:
    """The id of the trace being recorded in this thread or task, or ``None`` outside any."""
    active = _current.get()
    return active.trace_id if isinstance(active, SpanRecord) else None


def current_span_id() -> str | None:
    """The id of the active span, or ``None`` outside any."""
    active = _current.get()
    return active.span_id if isinstance(active, SpanRecord) else None


class TraceHandle:
    """What ``with looplab.trace(...) as t`` gives: the ids, and a way to set the output."""

    def __init__(self, kind: str, name: str, input: Any, info: TraceInfo | None) -> None:
        self._kind = kind
        self._name = name
        self._input = input
        self._info = info
        self._record: SpanRecord | None = None
        self._token: Token[SpanRecord | _Unsampled | None] | None = None

    @property
    def trace_id(self) -> str | None:
        return self._record.trace_id if self._record else None

    @property
    def span_id(self) -> str | None:
        return self._record.span_id if self._record else None

    def update(self, *, output: Any = None, metadata: dict[str, Any] | None = None, **attributes: Any) -> None:
        """Set the output, add trace metadata or span attributes before the block ends."""
        record = self._record
        if record is None:
            return
        if output is not None:
            record.output = output
        if metadata:
            if record.trace is not None:
                record.trace.metadata = {**(record.trace.metadata or {}), **metadata}
            else:
                record.attributes = {**(record.attributes or {}), **metadata}
        if attributes:
            record.attributes = {**(record.attributes or {}), **attributes}

    def __enter__(self) -> "TraceHandle":
        record = open_span(self._kind, self._name, self._info)
        if record is None:
            # Disabled tracing is not sampling: only an unsampled trace hides its children.
            if runtime.settings().enabled and _current.get() is None:
                self._token = _activate(_UNSAMPLED)
            return self
        record.input = self._input
        self._record = record
        self._token = _activate(record)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._token is not None:
            _current.reset(self._token)
        if self._record is not None:
            finish_span(self._record, exc)

    async def __aenter__(self) -> "TraceHandle":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


def trace(
    name: str,
    *,
    input: Any = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    release: str | None = None,
    environment: str | None = None,
) -> TraceHandle:
    """Group everything inside the block into one trace (a child span when a trace is already active).

    Use as ``with looplab.trace("support-chat", user_id="u1") as t:`` (or ``async with``).
    """
    info = TraceInfo(name, user_id, session_id, list(tags) if tags else None, metadata, release, environment)
    return TraceHandle("span", name, input, info)


def _capture_input(signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if signature is None:
        return {"args": list(args), "kwargs": dict(kwargs)}
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": dict(kwargs)}
    arguments = dict(bound.arguments)
    for skip in ("self", "cls"):
        arguments.pop(skip, None)
    return arguments


_MAX_GENERATOR_ITEMS = 1000


def _active_marker(
    record: SpanRecord | None, token: Token[SpanRecord | _Unsampled | None] | None
) -> SpanRecord | _Unsampled | None:
    """Leave the context as it was and return what to activate around each step of a generator.

    A generator's body runs at each ``next()`` in the caller's context, so its span is made
    active only for the duration of each step.
    """
    if token is None:
        return None
    _current.reset(token)
    return record if record is not None else _UNSAMPLED


def _generator_output(items: list[Any]) -> Any:
    if items and all(isinstance(i, str) for i in items):
        return "".join(items)
    return items


@overload
def observe(func: F) -> F: ...
@overload
def observe(
    func: None = None, *, kind: str = "span", name: str | None = None, capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def observe(
    func: Callable[..., Any] | None = None,
    *,
    kind: str = "span",
    name: str | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """Record each call of the decorated function as a span (a trace of its own at top level).

    Works bare (``@observe``) and called (``@observe(kind="retrieval")``), on sync and async
    functions and generators; the function's result or exception reaches the caller unchanged.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        span_name = name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "function")
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[SpanRecord | None, Any]:
            record = open_span(kind, span_name)
            if record is None:
                if runtime.settings().enabled and _current.get() is None:
                    return None, _activate(_UNSAMPLED)
                return None, None
            if capture_input:
                record.input = _capture_input(signature, args, kwargs)
            return record, _activate(record)

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                record, token = start(args, kwargs)
                active = _active_marker(record, token)
                agen = fn(*args, **kwargs)
                items: list[Any] = []
                error: BaseException | None = None
                try:
                    while True:
                        token = _activate(active) if active is not None else None
                        try:
                            item = await agen.__anext__()
                        except StopAsyncIteration:
                            break
                        finally:
                            if token is not None:
                                _current.reset(token)
                        if capture_output and len(items) < _MAX_GENERATOR_ITEMS:
                            items.append(item)
                        yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    await agen.aclose()
                    if record is not None:
                        if capture_output:
                            record.output = _generator_output(items)
                        finish_span(record, error if not isinstance(error, GeneratorExit) else None)

            return async_gen_wrapper

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                record, token = start(args, kwargs)
                active = _active_marker(record, token)
                gen = fn(*args, **kwargs)
                items: list[Any] = []
                error: BaseException | None = None
                try:
                    while True:
                        token = _activate(active) if active is not None else None
                        try:
                            item = next(gen)
                        except StopIteration as stop:
                            if capture_output and stop.value is not None:
                                items.append(stop.value)
                            return stop.value
                        finally:
                            if token is not None:
                                _current.reset(token)
                        if capture_output and len(items) < _MAX_GENERATOR_ITEMS:
                            items.append(item)
                        yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    gen.close()
                    if record is not None:
                        if capture_output:
                            record.output = _generator_output(items)
                        finish_span(record, error if not isinstance(error, GeneratorExit) else None)

            return gen_wrapper

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                record, token = start(args, kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    if record is not None:
                        finish_span(record, exc)
                    raise
                finally:
                    if token is not None:
                        _current.reset(token)
                if record is not None:
                    if capture_output:
                        record.output = result
                    finish_span(record)
                return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            record, token = start(args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                if record is not None:
                    finish_span(record, exc)
                raise
            finally:
                if token is not None:
                    _current.reset(token)
            if record is not None:
                if capture_output:
                    record.output = result
                finish_span(record)
            return result

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate
