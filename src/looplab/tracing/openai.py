"""``wrap_openai``: trace an ``openai.OpenAI`` / ``AsyncOpenAI`` client's calls.

Traced: ``chat.completions.create`` and ``.parse``, ``responses.create`` and ``embeddings.create``
(sync and async, streams included). The client is changed in place and returned; other clients
(including copies made with ``with_options``) are not touched.
"""

from __future__ import annotations

from typing import Any, TypeVar

from looplab.tracing.calls import Call, patch_method
from looplab.tracing.records import SpanRecord

ClientT = TypeVar("ClientT")
PROVIDER = "openai"


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _params(kwargs: dict[str, Any], *payload_keys: str) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in payload_keys and v is not None}


def _set_usage(record: SpanRecord, usage: Any, input_key: str, output_key: str, details_key: str) -> None:
    if usage is None:
        return
    record.input_tokens = _get(usage, input_key)
    record.output_tokens = _get(usage, output_key)
    record.cached_tokens = _get(_get(usage, details_key), "cached_tokens")


# --- chat completions ---------------------------------------------------------------------------


def _tool_calls_from_message(message: Any) -> list[dict[str, Any]] | None:
    calls = _get(message, "tool_calls")
    if not calls:
        return None
    return [
        {"id": _get(c, "id"), "name": _get(_get(c, "function"), "name"),
         "arguments": _get(_get(c, "function"), "arguments")}
        for c in calls
    ]


def _chat_message(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"role": _get(message, "role") or "assistant", "content": _get(message, "content")}
    tool_calls = _tool_calls_from_message(message)
    if tool_calls:
        out["tool_calls"] = tool_calls
    refusal = _get(message, "refusal")
    if refusal:
        out["refusal"] = refusal
    parsed = _get(message, "parsed")
    if parsed is not None:
        out["parsed"] = parsed
    return out


def _extract_chat(record: SpanRecord) -> None:
    call: Call = record.raw
    kwargs = call.kwargs
    record.input = kwargs.get("messages")
    record.params = _params(kwargs, "messages")
    record.model = kwargs.get("model")
    if call.items is not None:
        _extract_chat_stream(record, call.items)
        return
    response = call.response
    if response is None:
        return
    record.model = _get(response, "model") or record.model
    choices = _get(response, "choices") or []
    if choices:
        record.output = _chat_message(_get(choices[0], "message"))
        record.finish_reason = _get(choices[0], "finish_reason")
        if len(choices) > 1:
            record.attributes = {**(record.attributes or {}),
                                 "choices": [_chat_message(_get(c, "message")) for c in choices]}
    _set_usage(record, _get(response, "usage"), "prompt_tokens", "completion_tokens", "prompt_tokens_details")
    record.attributes = {**(record.attributes or {}), "response_id": _get(response, "id")}


def _extract_chat_stream(record: SpanRecord, chunks: list[Any]) -> None:
    text: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    response_id = None
    for chunk in chunks:
        response_id = response_id or _get(chunk, "id")
        record.model = _get(chunk, "model") or record.model
        usage = _get(chunk, "usage")
        if usage is not None:
            _set_usage(record, usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details")
        for choice in _get(chunk, "choices") or []:
            if _get(choice, "index", 0) != 0:
                continue
            delta = _get(choice, "delta")
            content = _get(delta, "content")
            if content:
                text.append(content)
            for tool_delta in _get(delta, "tool_calls") or []:
                slot = tools.setdefault(_get(tool_delta, "index", 0), {"id": None, "name": None, "arguments": ""})
                slot["id"] = slot["id"] or _get(tool_delta, "id")
                function = _get(tool_delta, "function")
                slot["name"] = slot["name"] or _get(function, "name")
                slot["arguments"] += _get(function, "arguments") or ""
            record.finish_reason = _get(choice, "finish_reason") or record.finish_reason
    output: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if tools:
        output["tool_calls"] = [tools[i] for i in sorted(tools)]
    record.output = output
    record.attributes = {**(record.attributes or {}), "response_id": response_id, "stream": True,
                         "stream_chunks": len(chunks)}
    if record.raw.stopped_early:
        record.attributes["stream_stopped_early"] = True


# --- responses ----------------------------------------------------------------------------------


def _responses_input(kwargs: dict[str, Any]) -> list[Any]:
    messages: list[Any] = []
    instructions = kwargs.get("instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    given = kwargs.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif given is not None:
        messages.extend(given)
    return messages


def _response_output(response: Any) -> dict[str, Any]:
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for item in _get(response, "output") or []:
        item_type = _get(item, "type")
        if item_type == "message":
            for part in _get(item, "content") or []:
                if _get(part, "type") == "output_text":
                    text.append(_get(part, "text") or "")
        elif item_type == "function_call":
            tool_calls.append({"id": _get(item, "call_id"), "name": _get(item, "name"),
                               "arguments": _get(item, "arguments")})
    output: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if tool_calls:
        output["tool_calls"] = tool_calls
    return output


def _extract_response_object(record: SpanRecord, response: Any) -> None:
    record.model = _get(response, "model") or record.model
    record.output = _response_output(response)
    record.finish_reason = _get(response, "status")
    _set_usage(record, _get(response, "usage"), "input_tokens", "output_tokens", "input_tokens_details")
    record.attributes = {**(record.attributes or {}), "response_id": _get(response, "id")}


def _extract_responses(record: SpanRecord) -> None:
    call: Call = record.raw
    kwargs = call.kwargs
    record.input = _responses_input(kwargs)
    record.params = _params(kwargs, "input", "instructions")
    record.model = kwargs.get("model")
    if call.items is None:
        if call.response is not None:
            _extract_response_object(record, call.response)
        return
    final = None
    deltas: list[str] = []
    for event in call.items:
        event_type = _get(event, "type")
        if event_type in ("response.completed", "response.incomplete", "response.failed"):
            final = _get(event, "response")
        elif event_type == "response.output_text.delta":
            deltas.append(_get(event, "delta") or "")
        elif event_type == "error":
            # The SDK yields a failed stream's error as an event instead of raising it.
            record.status = "error"
            record.error = _get(event, "message") or "error event in the response stream"
    if _get(final, "status") == "failed" and record.status != "error":
        record.status = "error"
        record.error = _get(_get(final, "error"), "message") or "response failed"
    if final is not None:
        _extract_response_object(record, final)
    else:
        record.output = {"role": "assistant", "content": "".join(deltas) if deltas else None}
    record.attributes = {**(record.attributes or {}), "stream": True, "stream_chunks": len(call.items)}
    if call.stopped_early:
        record.attributes["stream_stopped_early"] = True


# --- embeddings ---------------------------------------------------------------------------------


def _extract_embeddings(record: SpanRecord) -> None:
    call: Call = record.raw
    kwargs = call.kwargs
    record.input = kwargs.get("input")
    record.params = _params(kwargs, "input")
    record.model = kwargs.get("model")
    response = call.response
    if response is None:
        return
    record.model = _get(response, "model") or record.model
    data = _get(response, "data") or []
    first = _get(data[0], "embedding") if data else None
    # Vectors are not stored: they are large and nobody reads them in a trace.
    record.output = {"embeddings": len(data), "dimensions": len(first) if isinstance(first, list) else None}
    usage = _get(response, "usage")
    record.input_tokens = _get(usage, "prompt_tokens")
    record.output_tokens = 0 if record.input_tokens is not None else None


def _chat_chunk_has_content(chunk: Any) -> bool:
    for choice in _get(chunk, "choices") or ():
        delta = _get(choice, "delta")
        if _get(delta, "content") or _get(delta, "tool_calls"):
            return True
    return False


def _response_event_has_content(event: Any) -> bool:
    return _get(event, "type") in ("response.output_text.delta", "response.function_call_arguments.delta")


def wrap_openai(client: ClientT) -> ClientT:
    """Trace this OpenAI client's calls and return the same client.

    Each call becomes an ``llm`` (or ``embedding``) span: a child of the active ``trace`` or
    ``observe`` span, or a one-span trace of its own. The SDK's result or exception reaches the
    caller unchanged. Wrapping twice is harmless.
    """
    import openai

    def is_stream(result: Any) -> bool:
        return isinstance(result, (openai.Stream, openai.AsyncStream))

    completions = client.chat.completions  # type: ignore[attr-defined]
    for method in ("create", "parse"):
        if hasattr(completions, method):
            patch_method(completions, method, kind="llm", name=f"openai.chat.completions.{method}",
                         provider=PROVIDER, extract=_extract_chat, is_stream=is_stream,
                         is_content=_chat_chunk_has_content)
    patch_method(client.responses, "create", kind="llm", name="openai.responses.create",  # type: ignore[attr-defined]
                 provider=PROVIDER, extract=_extract_responses, is_stream=is_stream,
                 is_content=_response_event_has_content)
    patch_method(client.embeddings, "create", kind="embedding", name="openai.embeddings.create",  # type: ignore[attr-defined]
                 provider=PROVIDER, extract=_extract_embeddings, is_stream=is_stream)
    return client
