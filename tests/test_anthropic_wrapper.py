"""wrap_anthropic with the real anthropic SDK against the fake LLM server: what lands in the store,
and that the caller sees exactly what the SDK gives."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import anthropic
import pydantic
import pytest
from anthropic.lib.streaming import AsyncMessageStream, MessageStream

import looplab
from tests.fakes.llm_server import FakeLLM, Reply
from tests.stored import only_span, stored_spans, stored_traces

API_KEY = "sk-ant-test-0123456789abcdefghijklmnop"
# Priced by genai-prices and not deprecated (the SDK warns about claude-sonnet-4-5).
MODEL = "claude-sonnet-4-6"
TOOLS = [{"name": "lookup_order", "description": "Find an order.",
          "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}}}]


@pytest.fixture
def client(fake_llm: FakeLLM) -> anthropic.Anthropic:
    return looplab.wrap_anthropic(anthropic.Anthropic(base_url=fake_llm.anthropic_base_url, api_key=API_KEY,
                                                      max_retries=0))


@pytest.fixture
def async_client(fake_llm: FakeLLM) -> anthropic.AsyncAnthropic:
    return looplab.wrap_anthropic(
        anthropic.AsyncAnthropic(base_url=fake_llm.anthropic_base_url, api_key=API_KEY, max_retries=0)
    )


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def run_with(client: anthropic.AsyncAnthropic, coroutine: Any) -> Any:
    """Run on a fresh event loop and close the client's connections before the loop closes."""

    async def main() -> Any:
        async with client:
            return await coroutine

    return asyncio.run(main())


# --- messages.create ----------------------------------------------------------------------------


def test_message_records_the_full_call(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(text="Tomorrow.", usage={"input_tokens": 150, "cached_tokens": 800,
                                                    "cache_creation_tokens": 50, "output_tokens": 20}))
    messages = user("Where is my parcel?")
    response = client.messages.create(model=MODEL, max_tokens=256, system="Be brief.", messages=messages,
                                      stop_sequences=["END"])

    assert isinstance(response, anthropic.types.Message)
    messages.append({"role": "assistant", "content": "appended after the call"})
    span = only_span(traced)
    assert span["kind"] == "llm" and span["provider"] == "anthropic" and span["model"] == MODEL
    assert span["name"] == "anthropic.messages.create"
    assert span["input_json"] == [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Where is my parcel?"}]
    assert span["output_json"] == {"role": "assistant", "content": "Tomorrow."}
    assert span["params_json"] == {"model": MODEL, "max_tokens": 256, "stop_sequences": ["END"]}
    assert span["finish_reason"] == "end_turn"
    # looplab's input tokens include Anthropic's cache reads and writes; the SDK's numbers are kept.
    assert (span["input_tokens"], span["cached_tokens"], span["output_tokens"]) == (1000, 800, 20)
    assert span["attributes_json"]["usage"] == {"input_tokens": 150, "cache_read_input_tokens": 800,
                                                "cache_creation_input_tokens": 50, "output_tokens": 20}
    assert span["attributes_json"]["response_id"] == response.id
    assert span["cost_usd"] is not None and span["cost_usd"] > 0
    assert span["pricing_source"].startswith("genai-prices")
    assert span["status"] == "ok" and span["duration_ms"] > 0 and span["ttft_ms"] is None
    trace = stored_traces(traced)[0]
    assert trace["id"] == span["trace_id"] and span["parent_id"] is None
    assert trace["cost_usd"] == pytest.approx(span["cost_usd"]) and trace["input_tokens"] == 1000


def test_cache_reads_are_priced_lower(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(usage={"input_tokens": 1000, "output_tokens": 10}),
                     Reply(usage={"input_tokens": 200, "cached_tokens": 800, "output_tokens": 10}))
    for _ in range(2):
        client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
    assert looplab.flush()
    uncached, cached = stored_spans(traced)
    assert uncached["input_tokens"] == cached["input_tokens"] == 1000
    assert cached["cost_usd"] < uncached["cost_usd"]


def test_system_prompt_as_text_blocks(traced: str, client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "You are a support agent.", "cache_control": {"type": "ephemeral"}}]
    client.messages.create(model=MODEL, max_tokens=64, system=system, messages=user("hi"))
    span = only_span(traced)
    assert span["input_json"][0] == {"role": "system", "content": system}
    assert "system" not in span["params_json"]


def test_unknown_model_has_no_cost_rather_than_zero(traced: str, client: anthropic.Anthropic) -> None:
    client.messages.create(model="our-claude-proxy", max_tokens=64, messages=user("hi"))
    span = only_span(traced)
    assert span["model"] == "our-claude-proxy"
    assert span["cost_usd"] is None and span["input_tokens"] is not None


def test_tool_use_is_recorded(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(text="Let me look.",
                           tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "A17"}}]))
    response = client.messages.create(model=MODEL, max_tokens=256, messages=user("order A17?"), tools=TOOLS,
                                      tool_choice={"type": "auto"})
    tool_use = response.content[1]
    assert tool_use.type == "tool_use"
    span = only_span(traced)
    assert span["output_json"] == {
        "role": "assistant", "content": "Let me look.",
        "tool_calls": [{"id": tool_use.id, "name": "lookup_order", "arguments": {"order_id": "A17"}}],
    }
    assert span["finish_reason"] == "tool_use"
    assert span["params_json"]["tools"] == TOOLS and span["params_json"]["tool_choice"] == {"type": "auto"}


def test_parse_records_the_parsed_output(traced: str, client: anthropic.Anthropic) -> None:
    class Answer(pydantic.BaseModel):
        answer: str

    response = client.messages.parse(model=MODEL, max_tokens=64, messages=user("hi"), output_format=Answer)
    assert response.parsed_output == Answer(answer="Echo: hi")
    span = only_span(traced)
    assert span["name"] == "anthropic.messages.parse"
    assert span["output_json"]["parsed"] == {"answer": "Echo: hi"}
    assert json.loads(span["output_json"]["content"]) == {"answer": "Echo: hi"}


# --- messages.create(stream=True) ---------------------------------------------------------------


def test_cache_writes_are_priced_higher(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(usage={"input_tokens": 1000, "output_tokens": 10}),
                     Reply(usage={"input_tokens": 200, "cache_creation_tokens": 800, "output_tokens": 10}))
    for _ in range(2):
        client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
    assert looplab.flush()
    plain, written = stored_spans(traced)
    assert plain["input_tokens"] == written["input_tokens"] == 1000
    assert written["cost_usd"] > plain["cost_usd"]


def test_stream_is_the_sdk_object_and_is_recorded(traced: str, client: anthropic.Anthropic,
                                                  fake_llm: FakeLLM) -> None:
    fake_llm.chunk_delay = 0.01
    fake_llm.enqueue(Reply(text="Once upon a time there was a parcel.", usage={"input_tokens": 20, "cached_tokens": 5}))
    stream = client.messages.create(model=MODEL, max_tokens=256, system="Tell stories.",
                                    messages=user("tell me a story"), stream=True)
    assert isinstance(stream, anthropic.Stream)
    assert stream.response.status_code == 200
    events = list(stream)
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "Once upon a time there was a parcel."
    span = only_span(traced)
    assert span["output_json"] == {"role": "assistant", "content": text}
    assert span["input_json"][0] == {"role": "system", "content": "Tell stories."}
    assert span["ttft_ms"] is not None and 0 < span["ttft_ms"] < span["duration_ms"]
    assert span["ttft_ms"] >= 20  # to the first text, not to message_start (events are 10 ms apart)
    assert (span["input_tokens"], span["cached_tokens"], span["output_tokens"]) == (25, 5, 8)
    assert span["cost_usd"] is not None and span["finish_reason"] == "end_turn"
    attributes = span["attributes_json"]
    assert attributes["stream"] is True and attributes["stream_chunks"] == len(events)
    assert attributes["response_id"] == events[0].message.id and "stream_stopped_early" not in attributes
    assert span["params_json"]["stream"] is True


def test_streamed_tool_use_is_assembled(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    arguments = {"order_id": "A17", "note": "a fairly long note to split over several deltas"}
    fake_llm.enqueue(Reply(tool_calls=[{"name": "lookup_order", "arguments": arguments}]))
    with client.messages.create(model=MODEL, max_tokens=256, messages=user("order?"), tools=TOOLS,
                                stream=True) as stream:
        events = list(stream)
    assert sum(e.type == "content_block_delta" for e in events) > 2
    span = only_span(traced)
    call = span["output_json"]["tool_calls"][0]
    assert call["name"] == "lookup_order" and call["arguments"] == arguments and call["id"].startswith("toolu_")
    assert span["output_json"]["content"] is None and span["finish_reason"] == "tool_use"


def test_stream_abandoned_half_way_is_recorded_once(traced: str, client: anthropic.Anthropic) -> None:
    stream = client.messages.create(model=MODEL, max_tokens=256, messages=user("a b c d e f g h i j k l"),
                                    stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            first_text = event.delta.text
            break
    stream.close()
    stream.close()
    del stream, event
    gc.collect()
    span = only_span(traced)
    assert span["status"] == "ok" and span["error"] is None
    assert span["attributes_json"]["stream_stopped_early"] is True
    assert span["output_json"]["content"] == first_text != "Echo: a b c d e f g h i j k l"
    assert span["finish_reason"] is None


def test_stream_dropped_without_close_is_recorded_by_finalizer(traced: str, client: anthropic.Anthropic) -> None:
    def read_one() -> None:
        stream = client.messages.create(model=MODEL, max_tokens=256, messages=user("a b c d e f"), stream=True)
        for _ in stream:
            break

    read_one()
    gc.collect()
    span = only_span(traced)
    assert span["attributes_json"]["stream_stopped_early"] is True


def test_error_mid_stream_reaches_caller_and_is_recorded(traced: str, client: anthropic.Anthropic,
                                                         fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(text="one two three four five six", stream_error_after=1))
    stream = client.messages.create(model=MODEL, max_tokens=256, messages=user("x"), stream=True)
    received = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in stream:
            received.append(event)
    assert received
    span = only_span(traced)
    assert span["status"] == "error" and type(caught.value).__name__ in span["error"]
    assert "Overloaded" in span["error"]
    assert span["output_json"]["content"] == "one two "  # what arrived before the error


# --- messages.stream(...) -----------------------------------------------------------------------


def test_stream_helper_get_final_message(traced: str, client: anthropic.Anthropic) -> None:
    manager = client.messages.stream(model=MODEL, max_tokens=256, system="Be brief.", messages=user("hello there"),
                                     looplab_name="greet")
    assert isinstance(manager, anthropic.MessageStreamManager)
    with manager as stream:
        assert isinstance(stream, MessageStream)
        message = stream.get_final_message()
    assert message.content[0].text == "Echo: hello there"
    span = only_span(traced)
    assert span["name"] == "greet"
    assert span["input_json"] == [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "hello there"}]
    assert span["output_json"] == {"role": "assistant", "content": "Echo: hello there"}
    assert span["params_json"] == {"model": MODEL, "max_tokens": 256}
    assert span["input_tokens"] == message.usage.input_tokens and span["output_tokens"] == message.usage.output_tokens
    assert span["finish_reason"] == message.stop_reason == "end_turn"
    assert span["attributes_json"]["response_id"] == message.id
    assert span["ttft_ms"] is not None and span["cost_usd"] is not None


def test_stream_helper_text_stream(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    fake_llm.chunk_delay = 0.005
    with client.messages.stream(model=MODEL, max_tokens=256, messages=user("one two three four five")) as stream:
        pieces = list(stream.text_stream)
        final_text = stream.get_final_text()
    assert len(pieces) > 1 and "".join(pieces) == final_text
    span = only_span(traced)
    assert span["name"] == "anthropic.messages.stream"
    assert span["output_json"]["content"] == final_text
    assert span["ttft_ms"] is not None and "stream_stopped_early" not in span["attributes_json"]


def test_stream_helper_left_early_is_recorded_once(traced: str, client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=256, messages=user("a b c d e f g h")) as stream:
        first = next(iter(stream.text_stream))
    gc.collect()
    span = only_span(traced)
    assert span["attributes_json"]["stream_stopped_early"] is True
    assert span["output_json"]["content"] == first


def test_stream_helper_request_error(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(status=529, text="busy"))
    manager = client.messages.stream(model=MODEL, max_tokens=256, messages=user("hi"))
    with pytest.raises(anthropic.OverloadedError):
        with manager:
            pass
    span = only_span(traced)
    assert span["status"] == "error" and "busy" in span["error"]
    assert span["input_json"] == user("hi")


def test_stream_helper_not_entered_records_nothing(traced: str, client: anthropic.Anthropic,
                                                   fake_llm: FakeLLM) -> None:
    client.messages.stream(model=MODEL, max_tokens=256, messages=user("hi"))
    assert looplab.flush()
    assert stored_spans(traced) == [] and fake_llm.requests == []


# --- async --------------------------------------------------------------------------------------


def test_async_plain_and_stream(traced: str, async_client: anthropic.AsyncAnthropic) -> None:
    async def run() -> tuple[anthropic.types.Message, str]:
        message = await async_client.messages.create(model=MODEL, max_tokens=64, system="Be kind.",
                                                     messages=user("a"))
        stream = await async_client.messages.create(model=MODEL, max_tokens=64, messages=user("b c d"),
                                                    stream=True)
        assert isinstance(stream, anthropic.AsyncStream)
        text = "".join([e.delta.text async for e in stream if e.type == "content_block_delta"])
        return message, text

    message, text = run_with(async_client, run())
    assert looplab.flush()
    plain, streamed = stored_spans(traced)
    assert plain["input_json"][0] == {"role": "system", "content": "Be kind."}
    assert plain["output_json"]["content"] == message.content[0].text == "Echo: a"
    assert plain["input_tokens"] == message.usage.input_tokens and plain["cost_usd"] is not None
    assert streamed["output_json"]["content"] == text == "Echo: b c d"
    assert streamed["ttft_ms"] is not None and streamed["output_tokens"] == 4


def test_async_stream_helper(traced: str, async_client: anthropic.AsyncAnthropic) -> None:
    async def run() -> tuple[list[str], anthropic.types.Message]:
        manager = async_client.messages.stream(model=MODEL, max_tokens=64, messages=user("q r s"))
        assert isinstance(manager, anthropic.AsyncMessageStreamManager)
        async with manager as stream:
            assert isinstance(stream, AsyncMessageStream)
            pieces = [t async for t in stream.text_stream]
            return pieces, await stream.get_final_message()

    pieces, message = run_with(async_client, run())
    span = only_span(traced)
    assert span["name"] == "anthropic.messages.stream"
    assert span["output_json"]["content"] == "".join(pieces) == message.content[0].text
    assert span["output_tokens"] == message.usage.output_tokens and span["ttft_ms"] is not None


def test_async_error_reaches_caller_and_is_recorded(traced: str, async_client: anthropic.AsyncAnthropic,
                                                    fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(status=500, text="upstream says no"), Reply(status=500, text="again"))

    async def run() -> None:
        with pytest.raises(anthropic.InternalServerError):
            await async_client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
        with pytest.raises(anthropic.InternalServerError):
            async with async_client.messages.stream(model=MODEL, max_tokens=64, messages=user("hi")):
                pass

    run_with(async_client, run())
    assert looplab.flush()
    spans = stored_spans(traced)
    assert [s["status"] for s in spans] == ["error", "error"]
    assert "upstream says no" in spans[0]["error"] and "again" in spans[1]["error"]


# --- errors, nesting, secrets, wrapping ---------------------------------------------------------


def test_sdk_error_reaches_caller_unchanged_and_is_recorded(traced: str, client: anthropic.Anthropic,
                                                            fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(status=500, text="upstream says no"))
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
    assert type(caught.value) is anthropic.InternalServerError and caught.value.status_code == 500
    assert caught.value.body["error"]["message"] == "upstream says no"
    span = only_span(traced)
    assert span["status"] == "error" and span["error"].startswith("InternalServerError")
    assert "upstream says no" in span["error"]
    assert span["input_json"] == user("hi") and span["model"] == MODEL and span["output_json"] is None
    assert stored_traces(traced)[0]["status"] == "error"


def test_calls_inside_a_trace_are_its_children(traced: str, client: anthropic.Anthropic) -> None:
    with looplab.trace("support-chat", user_id="u1") as t:
        client.messages.create(model=MODEL, max_tokens=64, messages=user("refund?"))
        with client.messages.stream(model=MODEL, max_tokens=64, messages=user("thanks")) as stream:
            stream.until_done()
    assert looplab.flush()
    [trace] = stored_traces(traced)
    assert trace["id"] == t.trace_id and trace["name"] == "support-chat" and trace["span_count"] == 3
    children = [s for s in stored_spans(traced, t.trace_id) if s["parent_id"] == t.span_id]
    assert [s["name"] for s in children] == ["anthropic.messages.create", "anthropic.messages.stream"]
    assert trace["input_tokens"] == sum(s["input_tokens"] for s in children)
    assert trace["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in children))


def test_api_key_never_reaches_storage(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    client.messages.create(model=MODEL, max_tokens=64, messages=user(f"my key is {API_KEY}"),
                           extra_headers={"x-api-key": API_KEY, "X-Custom": "1"}, extra_body={"api_key": API_KEY})
    with client.messages.stream(model=MODEL, max_tokens=64, messages=user("hi"),
                                extra_headers={"x-api-key": API_KEY}) as stream:
        stream.until_done()
    fake_llm.enqueue(Reply(status=401, text="bad key"))
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
    assert fake_llm.requests[0].headers["x-api-key"] == API_KEY  # the SDK did send it
    assert looplab.flush()
    rows = stored_spans(traced) + stored_traces(traced)
    assert len(rows) == 6
    for row in rows:
        for column, value in row.items():
            assert API_KEY not in json.dumps(value, default=str), column
    assert "[REDACTED]" in json.dumps(rows, default=str)


def test_wrapping_twice_records_each_call_once(traced: str, client: anthropic.Anthropic) -> None:
    assert looplab.wrap_anthropic(client) is client
    client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
    with client.messages.stream(model=MODEL, max_tokens=64, messages=user("hi")) as stream:
        stream.until_done()
    assert looplab.flush()
    assert [s["name"] for s in stored_spans(traced)] == ["anthropic.messages.create", "anthropic.messages.stream"]


def test_own_keyword_arguments_are_not_sent_to_the_sdk(traced: str, client: anthropic.Anthropic,
                                                       fake_llm: FakeLLM) -> None:
    client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"),
                           looplab_name="classify-intent", looplab_metadata={"step": 2})
    with client.messages.stream(model=MODEL, max_tokens=64, messages=user("hi"), looplab_metadata={"step": 3}) as s:
        s.until_done()
    assert all("looplab_name" not in r.body and "looplab_metadata" not in r.body for r in fake_llm.requests)
    assert looplab.flush()
    created, streamed = stored_spans(traced)
    assert created["name"] == "classify-intent" and created["attributes_json"]["step"] == 2
    assert streamed["attributes_json"]["step"] == 3
    assert "looplab_metadata" not in streamed["params_json"]


def test_other_clients_are_not_traced(traced: str, client: anthropic.Anthropic, fake_llm: FakeLLM) -> None:
    raw = anthropic.Anthropic(base_url=fake_llm.anthropic_base_url, api_key=API_KEY, max_retries=0)
    raw.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
    assert looplab.flush()
    assert stored_spans(traced) == []
