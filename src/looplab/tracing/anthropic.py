"""``wrap_anthropic``: trace an ``anthropic.Anthropic`` / ``AsyncAnthropic`` client's calls.

Traced: ``messages.create`` (plain, ``stream=True``, tool use), ``messages.parse`` and the
``messages.stream(...)`` helper, sync and async. The client is changed in place and returned;
other clients (including copies made with ``with_options``), ``client.beta.messages`` and
``with_raw_response`` are not touched.

``messages.stream(...)`` returns the SDK's ``MessageStreamManager``, which sends the request only
when entered, by calling a private request function (``__api_request``: a ``partial`` of
``_post`` in the sync manager, an un-awaited ``_post`` coroutine in the async one) and wrapping
the raw ``Stream`` it returns in a ``MessageStream``. The wrapper replaces that one attribute on
the manager it hands back by a request traced exactly like ``messages.create(stream=True)``
(``patch_method``): the span opens when the manager is entered, a failed request is recorded and
re-raised, and the raw ``Stream`` is instrumented in place (``streams``). The ``MessageStream``
reads events from that raw stream and its ``close()`` closes it, so full reads, early exits and
errors all end the span there, while the caller keeps the SDK's own manager, ``MessageStream``,
``text_stream`` and ``get_final_message()``. Should a future SDK rename that attribute, ``stream``
calls go untraced (with a warning) rather than break.

Token counts: Anthropic's ``usage.input_tokens`` leaves out cache reads and cache writes; a span's
``input_tokens`` includes both (looplab's convention, which pricing relies on) and its
``cached_tokens`` are the cache reads. The SDK's own numbers stay in ``attributes["usage"]``.
The output keeps text and ``tool_use`` blocks; thinking and server-tool blocks are not recorded.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import types
from typing import Any, TypeVar

from looplab.tracing.calls import Call, patch_method, snapshot_request, split_looplab_kwargs
from looplab.tracing.digest import get_field, pick
from looplab.tracing.records import SpanRecord

ClientT = TypeVar("ClientT")
PROVIDER = "anthropic"
_PAYLOAD_KWARGS = ("messages", "system")
_STREAM_REQUEST_ATTR = {False: "_MessageStreamManager__api_request", True: "_AsyncMessageStreamManager__api_request"}

log = logging.getLogger("looplab")
_untraced_warned: set[str] = set()


# --- request ------------------------------------------------------------------------------------


def _given(value: Any) -> bool:
    from anthropic import NotGiven, Omit

    return value is not None and not isinstance(value, (NotGiven, Omit))


def _input(kwargs: dict[str, Any]) -> list[Any]:
    messages: list[Any] = []
    system = kwargs.get("system")
    if _given(system) and system:
        messages.append({"role": "system", "content": system})
    given = kwargs.get("messages")
    if _given(given):
        messages.extend(given)
    return messages


def _params(kwargs: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _PAYLOAD_KWARGS or not _given(value):
            continue
        # ``output_format`` is a class (a pydantic model, say): its name says what was asked for.
        params[key] = value.__name__ if isinstance(value, type) else value
    return params


# --- response -----------------------------------------------------------------------------------


def _set_usage(record: SpanRecord, usage: dict[str, Any]) -> None:
    uncached = usage.get("input_tokens")
    read = usage.get("cache_read_input_tokens")
    written = usage.get("cache_creation_input_tokens")
    if uncached is not None:
        record.input_tokens = uncached + (read or 0) + (written or 0)
        record.cached_tokens = read or 0
        record.cache_write_tokens = written
    record.output_tokens = usage.get("output_tokens")
    record.attributes = {**(record.attributes or {}), "usage": {k: v for k, v in usage.items() if v is not None}}


def _usage_numbers(usage: Any) -> dict[str, Any]:
    return {
        "input_tokens": get_field(usage, "input_tokens"),
        "cache_read_input_tokens": get_field(usage, "cache_read_input_tokens"),
        "cache_creation_input_tokens": get_field(usage, "cache_creation_input_tokens"),
        "output_tokens": get_field(usage, "output_tokens"),
    }


def _output(text: list[str], tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    output: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if tool_calls:
        output["tool_calls"] = tool_calls
    return output


def _extract_message(record: SpanRecord, message: Any) -> None:
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in get_field(message, "content") or []:
        block_type = get_field(block, "type")
        if block_type == "text":
            text.append(get_field(block, "text") or "")
        elif block_type == "tool_use":
            tool_calls.append({"id": get_field(block, "id"), "name": get_field(block, "name"), "arguments": get_field(block, "input")})
    record.output = _output(text, tool_calls)
    parsed = get_field(message, "parsed_output")  # ``messages.parse``
    if parsed is not None:
        record.output["parsed"] = parsed
    record.model = get_field(message, "model") or record.model
    record.finish_reason = get_field(message, "stop_reason")
    usage = get_field(message, "usage")
    if usage is not None:
        _set_usage(record, _usage_numbers(usage))
    record.attributes = {**(record.attributes or {}), "response_id": get_field(message, "id")}


def _tool_arguments(block: dict[str, Any]) -> Any:
    if not block["json"]:
        return block["input"]
    try:
        return json.loads(block["json"])
    except ValueError:  # cut off by an early stop: keep what arrived
        return block["json"]


def _extract_stream(record: SpanRecord, events: list[Any]) -> None:
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    response_id = None
    for event in events:
        event_type = get_field(event, "type")
        if event_type == "content_block_delta":
            delta = get_field(event, "delta")
            slot = blocks.setdefault(get_field(event, "index", 0), {"type": None, "text": "", "json": ""})
            delta_type = get_field(delta, "type")
            if delta_type == "text_delta":
                slot["text"] += get_field(delta, "text") or ""
            elif delta_type == "input_json_delta":
                slot["json"] += get_field(delta, "partial_json") or ""
        elif event_type == "content_block_start":
            block = get_field(event, "content_block")
            blocks[get_field(event, "index", 0)] = {
                "type": get_field(block, "type"), "text": get_field(block, "text") or "", "json": "",
                "id": get_field(block, "id"), "name": get_field(block, "name"), "input": get_field(block, "input"),
            }
        elif event_type == "message_start":
            message = get_field(event, "message")
            response_id = get_field(message, "id")
            record.model = get_field(message, "model") or record.model
            usage = _usage_numbers(get_field(message, "usage"))
        elif event_type == "message_delta":
            record.finish_reason = get_field(get_field(event, "delta"), "stop_reason") or record.finish_reason
            # Counts here are cumulative; the input ones are only sometimes repeated.
            usage.update({k: v for k, v in _usage_numbers(get_field(event, "usage")).items() if v is not None})
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for index in sorted(blocks):
        block = blocks[index]
        if block["type"] == "tool_use":
            tool_calls.append({"id": block["id"], "name": block["name"], "arguments": _tool_arguments(block)})
        elif block["type"] in ("text", None):
            text.append(block["text"])
    record.output = _output([t for t in text if t], tool_calls)
    if usage:
        _set_usage(record, usage)
    record.attributes = {**(record.attributes or {}), "response_id": response_id, "stream": True,
                         "stream_chunks": len(events)}
    if record.raw.stopped_early:
        record.attributes["stream_stopped_early"] = True


def _extract_messages(record: SpanRecord) -> None:
    call: Call = record.raw
    kwargs = call.kwargs
    record.input = _input(kwargs)
    record.params = _params(kwargs)
    record.model = kwargs.get("model")
    if call.items is not None:
        _extract_stream(record, call.items)
    elif call.response is not None:
        _extract_message(record, call.response)


# --- wrapping -----------------------------------------------------------------------------------


def _is_stream(result: Any) -> bool:
    import anthropic

    return isinstance(result, (anthropic.Stream, anthropic.AsyncStream))


def _traced_stream_request(api_request: Any, is_async: bool) -> Any:
    """A stand-in for a stream manager's request, traced like ``messages.create(stream=True)``.

    It takes the ``stream(...)`` arguments only so that the span records them.
    """
    if is_async:

        async def send(**_request: Any) -> Any:
            return await api_request

    else:

        def send(**_request: Any) -> Any:
            return api_request()

    holder = types.SimpleNamespace(send=send)
    patch_method(holder, "send", kind="llm", name="anthropic.messages.stream", provider=PROVIDER,
                 extract=_extract_messages, is_stream=_is_stream, digest=_digest_message,
                         digest_item=_digest_event, is_content=_is_content)
    return holder.send


def _patch_stream(messages: Any, is_async: bool) -> None:
    original = messages.stream
    if getattr(original, "__looplab_wrapped__", False):
        return
    attr = _STREAM_REQUEST_ATTR[is_async]

    @functools.wraps(original)
    def stream(*args: Any, **kwargs: Any) -> Any:
        # Taken now, with looplab's own arguments, for the span that opens when the manager is entered.
        request_kwargs = snapshot_request(kwargs)
        split_looplab_kwargs(kwargs)
        manager = original(*args, **kwargs)
        api_request = vars(manager).get(attr)
        if api_request is None:
            if attr not in _untraced_warned:
                _untraced_warned.add(attr)
                log.warning("looplab: messages.stream() of this anthropic SDK is not traced (no %s)", attr)
            return manager
        send = _traced_stream_request(api_request, is_async)
        # The async manager awaits its request: a coroutine, which opens the span when awaited.
        setattr(manager, attr, send(**request_kwargs) if is_async else functools.partial(send, **request_kwargs))
        return manager

    stream.__looplab_wrapped__ = True  # type: ignore[attr-defined]
    messages.stream = stream


# --- digests: what the extractors above read, taken on the caller's thread ------------------------

_USAGE_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
_BLOCK_FIELDS = ("type", "text", "id", "name", "input")


def _digest_message(message: Any) -> dict[str, Any]:
    return {
        "id": get_field(message, "id"), "model": get_field(message, "model"),
        "stop_reason": get_field(message, "stop_reason"), "usage": pick(get_field(message, "usage"), *_USAGE_FIELDS),
        "content": [pick(block, *_BLOCK_FIELDS) for block in get_field(message, "content") or ()],
        "parsed_output": get_field(message, "parsed_output"),
    }


def _digest_event(event: Any) -> dict[str, Any]:
    event_type = get_field(event, "type")
    digest: dict[str, Any] = {"type": event_type, "index": get_field(event, "index")}
    if event_type == "content_block_delta":
        digest["delta"] = pick(get_field(event, "delta"), "type", "text", "partial_json")
    elif event_type == "content_block_start":
        digest["content_block"] = pick(get_field(event, "content_block"), *_BLOCK_FIELDS)
    elif event_type == "message_start":
        message = get_field(event, "message")
        digest["message"] = {"id": get_field(message, "id"), "model": get_field(message, "model"),
                             "usage": pick(get_field(message, "usage"), *_USAGE_FIELDS)}
    elif event_type == "message_delta":
        digest["delta"] = pick(get_field(event, "delta"), "stop_reason")
        digest["usage"] = pick(get_field(event, "usage"), *_USAGE_FIELDS)
    return digest


def _is_content(event: Any) -> bool:
    return getattr(event, "type", None) == "content_block_delta"


def wrap_anthropic(client: ClientT) -> ClientT:
    """Trace this Anthropic client's calls and return the same client.

    Each call becomes an ``llm`` span: a child of the active ``trace`` or ``observe`` span, or a
    one-span trace of its own. The SDK's result or exception reaches the caller unchanged.
    Wrapping twice is harmless.
    """
    messages = client.messages  # type: ignore[attr-defined]
    is_async = inspect.iscoroutinefunction(inspect.unwrap(messages.create))  # beneath the SDK's sync decorator
    for method in ("create", "parse"):
        if hasattr(messages, method):
            patch_method(messages, method, kind="llm", name=f"anthropic.messages.{method}", provider=PROVIDER,
                         extract=_extract_messages, is_stream=_is_stream, digest=_digest_message,
                         digest_item=_digest_event, is_content=_is_content)
    if hasattr(messages, "stream"):
        _patch_stream(messages, is_async)
    return client
