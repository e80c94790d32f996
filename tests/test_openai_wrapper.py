"""wrap_openai with the real openai SDK against the fake LLM server: what lands in the store,
and that the caller sees exactly what the SDK gives."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref

import openai
import pytest

import looplab
from tests.fakes.llm_server import FakeLLM, Reply
from tests.stored import only_span, stored_spans, stored_traces

API_KEY = "sk-test-0123456789abcdefghijklmnop"


@pytest.fixture
def client(fake_llm: FakeLLM) -> openai.OpenAI:
    return looplab.wrap_openai(openai.OpenAI(base_url=fake_llm.openai_base_url, api_key=API_KEY, max_retries=0))


@pytest.fixture
def async_client(fake_llm: FakeLLM) -> openai.AsyncOpenAI:
    return looplab.wrap_openai(
        openai.AsyncOpenAI(base_url=fake_llm.openai_base_url, api_key=API_KEY, max_retries=0)
    )


def test_chat_completion_records_the_full_call(traced: str, client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my parcel?"}]
    response = client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.2)

    assert isinstance(response, openai.types.chat.ChatCompletion)
    messages.append({"role": "assistant", "content": "appended after the call"})
    span = only_span(traced)
    assert span["kind"] == "llm" and span["provider"] == "openai" and span["model"] == "gpt-4o-mini"
    assert span["input_json"] == messages[:2]  # as sent, system included, not as later mutated
    assert span["output_json"]["content"] == response.choices[0].message.content
    assert span["params_json"]["temperature"] == 0.2
    assert span["finish_reason"] == "stop"
    assert span["input_tokens"] == response.usage.prompt_tokens
    assert span["output_tokens"] == response.usage.completion_tokens
    assert span["cost_usd"] is not None and span["cost_usd"] > 0
    assert span["pricing_source"].startswith("genai-prices")
    assert span["status"] == "ok" and span["duration_ms"] > 0
    trace = stored_traces(traced)[0]
    assert trace["id"] == span["trace_id"] and span["parent_id"] is None
    assert trace["cost_usd"] == pytest.approx(span["cost_usd"])


def test_the_sdk_response_is_freed_when_the_caller_drops_it(traced: str, client: openai.OpenAI) -> None:
    # Held until the writer ran, SDK objects outlived the young GC generation and set off full
    # collections of the app: looplab keeps a digest, not the response.
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    content = response.choices[0].message.content
    dropped = weakref.ref(response)
    del response
    assert dropped() is None  # before the writer has run
    assert only_span(traced)["output_json"]["content"] == content


def test_unknown_model_has_no_cost_rather_than_zero(traced: str, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="our-finetune-7b", messages=[{"role": "user", "content": "hi"}])
    span = only_span(traced)
    assert span["cost_usd"] is None and span["input_tokens"] is not None


def test_cached_tokens_are_recorded_and_priced_lower(traced: str, client: openai.OpenAI, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(usage={"input_tokens": 1000, "output_tokens": 10, "cached_tokens": 0}),
                     Reply(usage={"input_tokens": 1000, "output_tokens": 10, "cached_tokens": 800}))
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert looplab.flush()
    uncached, cached = stored_spans(traced)
    assert cached["cached_tokens"] == 800
    assert cached["cost_usd"] < uncached["cost_usd"]


def test_tool_calls_are_recorded(traced: str, client: openai.OpenAI, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(tool_calls=[{"name": "lookup_order", "arguments": {"order_id": "A17"}}]))
    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "order A17?"}], tools=tools
    )
    assert response.choices[0].message.tool_calls[0].function.name == "lookup_order"
    span = only_span(traced)
    call = span["output_json"]["tool_calls"][0]
    assert call["name"] == "lookup_order" and json.loads(call["arguments"]) == {"order_id": "A17"}
    assert span["finish_reason"] == "tool_calls"
    assert span["params_json"]["tools"][0]["function"]["name"] == "lookup_order"


def test_json_response_format(traced: str, client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
    )
    span = only_span(traced)
    assert json.loads(span["output_json"]["content"]) == json.loads(response.choices[0].message.content)
    assert span["params_json"]["response_format"] == {"type": "json_object"}


def test_stream_is_the_sdk_object_and_is_recorded(traced: str, client: openai.OpenAI, fake_llm: FakeLLM) -> None:
    fake_llm.chunk_delay = 0.01
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "tell me a long story"}], stream=True,
        stream_options={"include_usage": True},
    )
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    span = only_span(traced)
    assert span["output_json"]["content"] == text
    assert span["ttft_ms"] is not None and 0 < span["ttft_ms"] < span["duration_ms"]
    assert span["input_tokens"] and span["output_tokens"] and span["cost_usd"]
    assert span["attributes_json"]["stream"] is True


def test_stream_used_as_context_manager(traced: str, client: openai.OpenAI) -> None:
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "one two three four"}], stream=True
    ) as stream:
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    span = only_span(traced)
    assert span["output_json"]["content"] == "".join(pieces)
    assert span["input_tokens"] is None and span["cost_usd"] is None  # no usage chunk was asked for


def test_stream_abandoned_half_way_is_recorded_once(traced: str, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c d e f g h i j k l"}], stream=True
    )
    first = next(iter(stream))
    assert first.choices
    for _ in stream:
        break
    stream.close()
    stream.close()
    del stream
    gc.collect()
    span = only_span(traced)
    assert span["status"] == "ok"
    assert span["attributes_json"]["stream_stopped_early"] is True
    assert span["output_json"]["content"]  # what was received before stopping


def test_stream_dropped_without_close_is_recorded_by_finalizer(traced: str, client: openai.OpenAI) -> None:
    def read_one() -> None:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c d e f"}], stream=True
        )
        for _ in stream:
            break

    read_one()
    gc.collect()
    span = only_span(traced)
    assert span["attributes_json"]["stream_stopped_early"] is True


def test_error_mid_stream_reaches_caller_and_is_recorded(traced: str, client: openai.OpenAI,
                                                         fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(text="one two three four five six", stream_error_after=2))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                            stream=True)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received
    span = only_span(traced)
    assert span["status"] == "error" and "APIError" in span["error"]


@pytest.mark.parametrize(("status", "error_type"), [(500, openai.InternalServerError),
                                                    (429, openai.RateLimitError),
                                                    (400, openai.BadRequestError)])
def test_sdk_errors_reach_caller_unchanged_and_are_recorded(traced: str, client: openai.OpenAI, fake_llm: FakeLLM,
                                                            status: int, error_type: type) -> None:
    fake_llm.enqueue(Reply(status=status, text="upstream says no"))
    with pytest.raises(error_type) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == status
    span = only_span(traced)
    assert span["status"] == "error" and "upstream says no" in span["error"]
    assert span["input_json"] == [{"role": "user", "content": "hi"}]
    assert stored_traces(traced)[0]["status"] == "error"


def test_malformed_response_error_is_the_sdks(traced: str, client: openai.OpenAI, fake_llm: FakeLLM) -> None:
    raw = openai.OpenAI(base_url=fake_llm.openai_base_url, api_key=API_KEY, max_retries=0)
    fake_llm.enqueue(Reply(malformed=True), Reply(malformed=True))
    outcomes = []
    for c in (raw, client):
        try:
            outcomes.append(("ok", type(c.chat.completions.create(model="m", messages=[]))))
        except Exception as exc:  # the wrapped client must behave exactly like the raw one
            outcomes.append(("raised", type(exc)))
    assert outcomes[0] == outcomes[1]


def test_retries_of_the_sdk_are_one_span(traced: str, fake_llm: FakeLLM) -> None:
    client = looplab.wrap_openai(openai.OpenAI(base_url=fake_llm.openai_base_url, api_key=API_KEY, max_retries=2))
    fake_llm.enqueue(Reply(status=429), Reply(text="finally"))
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert response.choices[0].message.content == "finally"
    assert len(fake_llm.requests) == 2
    span = only_span(traced)
    assert span["status"] == "ok" and span["output_json"]["content"] == "finally"


def test_responses_api_plain_and_streaming(traced: str, client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", instructions="Be kind.", input="How do refunds work?")
    events = list(client.responses.create(model="gpt-4o-mini", input="Stream please", stream=True))
    assert looplab.flush()
    plain, streamed = stored_spans(traced)
    assert plain["input_json"] == [{"role": "system", "content": "Be kind."},
                                   {"role": "user", "content": "How do refunds work?"}]
    assert plain["output_json"]["content"] == response.output_text
    assert plain["input_tokens"] == response.usage.input_tokens and plain["cost_usd"] is not None
    completed = [e for e in events if e.type == "response.completed"][0]
    assert streamed["output_json"]["content"] == completed.response.output_text
    assert streamed["output_tokens"] == completed.response.usage.output_tokens
    assert streamed["ttft_ms"] is not None


def test_failed_response_stream_is_an_error_span(traced: str, client: openai.OpenAI, fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(text="one two three four", stream_error_after=1))
    events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert any(e.type == "response.failed" for e in events)  # the SDK yields it, it does not raise
    span = only_span(traced)
    assert span["status"] == "error" and span["error"]


def test_embeddings(traced: str, client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["refund policy", "shipping"])
    assert len(result.data) == 2
    span = only_span(traced)
    assert span["kind"] == "embedding"
    assert span["input_json"] == ["refund policy", "shipping"]
    assert span["output_json"] == {"embeddings": 2, "dimensions": len(result.data[0].embedding)}
    assert span["input_tokens"] == result.usage.prompt_tokens and span["cost_usd"] is not None


def test_async_client_plain_and_stream(traced: str, async_client: openai.AsyncOpenAI) -> None:
    async def run() -> str:
        await async_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
        stream = await async_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "b c d"}], stream=True
        )
        assert isinstance(stream, openai.AsyncStream)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    text = asyncio.run(run())
    assert looplab.flush()
    plain, streamed = stored_spans(traced)
    assert plain["output_json"]["content"] == "Echo: a"
    assert streamed["output_json"]["content"] == text and streamed["ttft_ms"] is not None


def test_calls_inside_a_trace_are_its_children(traced: str, client: openai.OpenAI) -> None:
    @looplab.observe(kind="retrieval")
    def retrieve(question: str) -> list[str]:
        return ["Refunds take 5 days."]

    with looplab.trace("support-chat", user_id="u1", session_id="s1", tags=["beta"], metadata={"plan": "pro"}) as t:
        docs = retrieve("refund?")
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": f"{docs[0]} refund?"}])
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "thanks"}])
    assert looplab.flush()
    [trace] = stored_traces(traced)
    assert trace["id"] == t.trace_id and trace["name"] == "support-chat"
    assert (trace["user_id"], trace["session_id"], trace["tags_json"]) == ("u1", "s1", ["beta"])
    assert trace["metadata_json"] == {"plan": "pro"}
    spans = stored_spans(traced, t.trace_id)
    root = [s for s in spans if s["parent_id"] is None]
    assert len(root) == 1 and root[0]["id"] == t.span_id
    assert {s["kind"] for s in spans if s["parent_id"] == t.span_id} == {"retrieval", "llm"}
    assert trace["span_count"] == 4
    llm_costs = [s["cost_usd"] for s in spans if s["kind"] == "llm"]
    assert trace["cost_usd"] == pytest.approx(sum(llm_costs))
    assert trace["input_tokens"] == sum(s["input_tokens"] for s in spans if s["kind"] == "llm")


def test_api_key_never_reaches_storage(traced: str, fake_llm: FakeLLM, client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"my key is {API_KEY}"}],
        extra_headers={"Authorization": f"Bearer {API_KEY}", "X-Custom": "1"}, extra_body={"api_key": API_KEY},
    )
    assert fake_llm.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"  # the SDK did send it
    assert looplab.flush()
    stored = json.dumps([stored_spans(traced), stored_traces(traced)], default=str)
    assert API_KEY not in stored
    assert "[REDACTED]" in stored


def test_wrapping_twice_records_each_call_once(traced: str, client: openai.OpenAI) -> None:
    assert looplab.wrap_openai(client) is client
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    only_span(traced)


def test_own_keyword_arguments_are_not_sent_to_the_sdk(traced: str, client: openai.OpenAI, fake_llm: FakeLLM) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                   looplab_name="classify-intent", looplab_metadata={"step": 2})
    assert "looplab_name" not in fake_llm.requests[-1].body
    span = only_span(traced)
    assert span["name"] == "classify-intent" and span["attributes_json"]["step"] == 2
