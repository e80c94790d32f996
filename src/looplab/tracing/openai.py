"""``wrap_openai``: trace an ``openai.OpenAI`` / ``AsyncOpenAI`` client's calls.

Traced: ``chat.completions.create`` and ``.parse``, ``responses.create`` and ``embeddings.create``
(sync and async, streams included). The client is changed in place and returned; other clients
(including copies made with ``with_options``) are not touched.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from looplab.tracing.calls import Call, patch_method
from looplab.tracing.digest import get_field, pick
from looplab.tracing.records import SpanRecord

ClientT = TypeVar("ClientT")
PROVIDER = "openai"


def _params(kwargs: dict[str, Any], *payload_keys: str) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in payload_keys and v is not None}


def _set_usage(record: SpanRecord, usage: Any, input_key: str, output_key: str, details_key: str) -> None:
    if usage is None:
        return
    record.input_tokens = get_field(usage, input_key)
    record.output_tokens = get_field(usage, output_key)
    record.cached_tokens = get_field(get_field(usage, details_key), "cached_tokens")


# --- chat completions ---------------------------------------------------------------------------


def _tool_calls_from_message(message: Any) -> list[dict[str, Any]] | None:
    calls = get_field(message, "tool_calls")
    if not calls:
        return None
    return [
        {"id": get_field(c, "id"), "name": get_field(get_field(c, "function"), "name"),
         "arguments": get_field(get_field(c, "function"), "arguments")}
        for c in calls
    ]


def _chat_message(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"role": get_field(message, "role") or "assistant", "content": get_field(message, "content")}
    tool_calls = _tool_calls_from_message(message)
    if tool_calls:
        out["tool_calls"] = tool_calls
    refusal = get_field(message, "refusal")
    if refusal:
        out["refusal"] = refusal
    parsed = get_field(message, "parsed")
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
    record.model = get_field(response, "model") or record.model
    choices = get_field(response, "choices") or []
    if choices:
        record.output = _chat_message(get_field(choices[0], "message"))
        record.finish_reason = get_field(choices[0], "finish_reason")
        if len(choices) > 1:
            record.attributes = {**(record.attributes or {}),
                                 "choices": [_chat_message(get_field(c, "message")) for c in choices]}
    _set_usage(record, get_field(response, "usage"), "prompt_tokens", "completion_tokens", "prompt_tokens_details")
    record.attributes = {**(record.attributes or {}), "response_id": get_field(response, "id")}


def _extract_chat_stream(record: SpanRecord, chunks: list[Any]) -> None:
    text: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    response_id = None
    for chunk in chunks:
        response_id = response_id or get_field(chunk, "id")
        record.model = get_field(chunk, "model") or record.model
        usage = get_field(chunk, "usage")
        if usage is not None:
            _set_usage(record, usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details")
        for choice in get_field(chunk, "choices") or []:
            if get_field(choice, "index", 0) != 0:
                continue
            delta = get_field(choice, "delta")
            content = get_field(delta, "content")
            if content:
                text.append(content)
            for tool_delta in get_field(delta, "tool_calls") or []:
                slot = tools.setdefault(get_field(tool_delta, "index", 0), {"id": None, "name": None, "arguments": ""})
                slot["id"] = slot["id"] or get_field(tool_delta, "id")
                function = get_field(tool_delta, "function")
                slot["name"] = slot["name"] or get_field(function, "name")
                slot["arguments"] += get_field(function, "arguments") or ""
            record.finish_reason = get_field(choice, "finish_reason") or record.finish_reason
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
    for item in get_field(response, "output") or []:
        item_type = get_field(item, "type")
        if item_type == "message":
            for part in get_field(item, "content") or []:
                if get_field(part, "type") == "output_text":
                    text.append(get_field(part, "text") or "")
        elif item_type == "function_call":
            tool_calls.append({"id": get_field(item, "call_id"), "name": get_field(item, "name"),
                               "arguments": get_field(item, "arguments")})
    output: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if tool_calls:
        output["tool_calls"] = tool_calls
    return output


def _extract_response_object(record: SpanRecord, response: Any) -> None:
    record.model = get_field(response, "model") or record.model
    record.output = _response_output(response)
    record.finish_reason = get_field(response, "status")
    _set_usage(record, get_field(response, "usage"), "input_tokens", "output_tokens", "input_tokens_details")
    record.attributes = {**(record.attributes or {}), "response_id": get_field(response, "id")}


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
        event_type = get_field(event, "type")
        if event_type in ("response.completed", "response.incomplete", "response.failed"):
            final = get_field(event, "response")
        elif event_type == "response.output_text.delta":
            deltas.append(get_field(event, "delta") or "")
        elif event_type == "error":
            # The SDK yields a failed stream's error as an event instead of raising it.
            record.status = "error"
            record.error = get_field(event, "message") or "error event in the response stream"
    if get_field(final, "status") == "failed" and record.status != "error":
        record.status = "error"
        record.error = get_field(get_field(final, "error"), "message") or "response failed"
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
    record.model = get_field(response, "model") or record.model
    # Vectors are not stored: they are large and nobody reads them in a trace.
    record.output = {"embeddings": get_field(response, "count"), "dimensions": get_field(response, "dimensions")}
    usage = get_field(response, "usage")
    record.input_tokens = get_field(usage, "prompt_tokens")
    record.output_tokens = 0 if record.input_tokens is not None else None


def _chat_chunk_has_content(chunk: Any) -> bool:
    for choice in get_field(chunk, "choices") or ():
        delta = get_field(choice, "delta")
        if get_field(delta, "content") or get_field(delta, "tool_calls"):
            return True
    return False


def _response_event_has_content(event: Any) -> bool:
    return get_field(event, "type") in ("response.output_text.delta", "response.function_call_arguments.delta")


# --- digests: what the extractors above read, taken on the caller's thread ------------------------


def _digest_usage(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    # Read through __dict__: a missing attribute makes pydantic raise and catch an AttributeError,
    # which cost microseconds each on the caller's thread (chat and Responses usage differ).
    fields = vars(usage)
    prompt_details = fields.get("prompt_tokens_details")
    input_details = fields.get("input_tokens_details")
    return {
        "prompt_tokens": fields.get("prompt_tokens"),
        "completion_tokens": fields.get("completion_tokens"),
        "input_tokens": fields.get("input_tokens"),
        "output_tokens": fields.get("output_tokens"),
        "prompt_tokens_details": {"cached_tokens": getattr(prompt_details, "cached_tokens", None)},
        "input_tokens_details": {"cached_tokens": getattr(input_details, "cached_tokens", None)},
    }


def _digest_tool_calls(calls: Any) -> list[dict[str, Any]] | None:
    if not calls:
        return None
    return [
        {"index": getattr(c, "index", None), "id": getattr(c, "id", None),
         "function": pick(getattr(c, "function", None), "name", "arguments")}
        for c in calls
    ]


def _digest_chat(response: Any) -> dict[str, Any]:
    # Plain getattr, not get_field: this runs on the caller's thread, on SDK objects only.
    choices = []
    for choice in response.choices or ():
        message = choice.message
        choices.append({
            "finish_reason": choice.finish_reason,
            "message": {
                "role": message.role, "content": message.content,
                "refusal": getattr(message, "refusal", None), "parsed": vars(message).get("parsed"),
                "tool_calls": _digest_tool_calls(message.tool_calls),
            },
        })
    return {"id": response.id, "model": response.model, "choices": choices, "usage": _digest_usage(response.usage)}


def _digest_chat_chunk(chunk: Any) -> dict[str, Any]:
    choices = []
    for choice in get_field(chunk, "choices") or ():
        delta = get_field(choice, "delta")
        choices.append({
            "index": get_field(choice, "index", 0), "finish_reason": get_field(choice, "finish_reason"),
            "delta": {"content": get_field(delta, "content"),
                      "tool_calls": _digest_tool_calls(get_field(delta, "tool_calls"))},
        })
    return {"id": get_field(chunk, "id"), "model": get_field(chunk, "model"), "choices": choices,
            "usage": _digest_usage(get_field(chunk, "usage"))}


def _digest_response(response: Any) -> dict[str, Any]:
    output = []
    for item in get_field(response, "output") or ():
        digest = pick(item, "type", "call_id", "name", "arguments")
        assert digest is not None
        digest["content"] = [pick(part, "type", "text") for part in get_field(item, "content") or ()]
        output.append(digest)
    return {"id": get_field(response, "id"), "model": get_field(response, "model"),
            "status": get_field(response, "status"), "error": pick(get_field(response, "error"), "message"),
            "output": output, "usage": _digest_usage(get_field(response, "usage"))}


def _digest_response_event(event: Any) -> dict[str, Any]:
    event_type = get_field(event, "type")
    digest = {"type": event_type}
    if event_type in ("response.completed", "response.incomplete", "response.failed"):
        digest["response"] = _digest_response(get_field(event, "response"))
    elif event_type == "response.output_text.delta":
        digest["delta"] = get_field(event, "delta")
    elif event_type == "error":
        digest["message"] = get_field(event, "message")
    return digest


def _digest_embeddings(response: Any) -> dict[str, Any]:
    """The model, count and size of the vectors, and the usage, of an embeddings response (the
    SDK's object, or the JSON the gateway relays)."""
    data = get_field(response, "data") or []
    first = get_field(data[0], "embedding") if data else None
    return {"model": get_field(response, "model"), "count": len(data), "dimensions": _dimensions(first),
            "usage": pick(get_field(response, "usage"), "prompt_tokens")}


def _dimensions(vector: Any) -> int | None:
    if isinstance(vector, list):
        return len(vector)
    if isinstance(vector, str):  # on the wire the SDKs ask for base64-packed float32 by default
        try:
            return len(base64.b64decode(vector)) // 4
        except (binascii.Error, ValueError):
            return None
    return None


def wrap_openai(client: ClientT, *, provider: str = PROVIDER) -> ClientT:
    """Trace this OpenAI client's calls and return the same client.

    Each call becomes an ``llm`` (or ``embedding``) span: a child of the active ``trace`` or
    ``observe`` span, or a one-span trace of its own. The SDK's result or exception reaches the
    caller unchanged. Wrapping twice is harmless.

    ``provider`` is what the spans record as their provider. For a client pointed at a server of
    your own that speaks OpenAI's API (vLLM, Ollama...), name it ``openai-compatible`` (or
    ``openai-compatible:<name>``): its calls are then shown under that name and not priced at
    OpenAI's rates.
    """
    import openai

    stream_types = (openai.Stream, openai.AsyncStream)

    def is_stream(result: Any) -> bool:
        return isinstance(result, stream_types)

    completions = client.chat.completions  # type: ignore[attr-defined]
    for method in ("create", "parse"):
        if hasattr(completions, method):
            patch_method(completions, method, kind="llm", name=f"openai.chat.completions.{method}",
                         provider=provider, extract=_extract_chat, is_stream=is_stream, digest=_digest_chat,
                         digest_item=_digest_chat_chunk, is_content=_chat_chunk_has_content)
    patch_method(client.responses, "create", kind="llm", name="openai.responses.create",  # type: ignore[attr-defined]
                 provider=provider, extract=_extract_responses, is_stream=is_stream, digest=_digest_response,
                 digest_item=_digest_response_event, is_content=_response_event_has_content)
    patch_method(client.embeddings, "create", kind="embedding", name="openai.embeddings.create",  # type: ignore[attr-defined]
                 provider=provider, extract=_extract_embeddings, is_stream=is_stream, digest=_digest_embeddings)
    return client
