"""The fake LLM server speaks the wire formats the real ``openai`` / ``anthropic`` SDKs parse.

Every test drives a real SDK client against ``tests.fakes.llm_server``: if a fixture drifts from
what the SDK expects, the SDK's own parsing (typed models, stream accumulators) fails here.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import openai
import pytest

from tests.fakes.llm_server import FakeLLM, Reply

ROOT = Path(__file__).resolve().parents[1]
USER = [{"role": "user", "content": "what is the weather"}]
WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "units": ["c", "f"]}}


@pytest.fixture
def fake(fake_llm: FakeLLM) -> FakeLLM:
    return fake_llm


@pytest.fixture
def oai(fake: FakeLLM) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def ant(fake: FakeLLM) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="test", max_retries=0) as client:
        yield client


# ------------------------------------------------------------------------------------------
# OpenAI chat completions
# ------------------------------------------------------------------------------------------


def test_chat_plain_echoes_and_counts_tokens(fake: FakeLLM, oai: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "be brief"}, *USER]
    completion = oai.chat.completions.create(model="gpt-fake", messages=messages)

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-fake"
    choice = completion.choices[0]
    assert choice.message.content == "Echo: what is the weather"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2 + 4 + 3  # words incl. system, + 3
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == 14
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body["messages"] == messages
    assert request.headers["authorization"] == "Bearer test"
    assert request.headers["content-type"] == "application/json"


def test_chat_stream_chunks_and_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-fake", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    with stream:
        chunks = list(stream)

    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1  # several content chunks, so time-to-first-token is observable
    assert "".join(pieces) == "Echo: what is the weather"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 5


def test_chat_stream_without_include_usage_has_no_usage_chunk(oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(model="gpt-fake", messages=USER, stream=True) as stream:
        chunks = list(stream)
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_chat_tool_calls_plain(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(tool_calls=[WEATHER, {"name": "noop", "arguments": {}}]))
    completion = oai.chat.completions.create(model="gpt-fake", messages=USER)

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "noop"]
    assert all(c.id.startswith("call_") and c.type == "function" for c in calls)
    assert json.loads(calls[0].function.arguments) == WEATHER["arguments"]
    assert completion.usage is not None and completion.usage.completion_tokens == 2


def test_chat_tool_calls_streamed(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(tool_calls=[WEATHER]))
    arguments: dict[int, str] = {}
    ids: dict[int, str] = {}
    finish = None
    deltas = 0
    with oai.chat.completions.create(model="gpt-fake", messages=USER, stream=True) as stream:
        for chunk in stream:
            choice = chunk.choices[0]
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                if call.id:
                    ids[call.index] = call.id
                if call.function and call.function.arguments:
                    arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
                    deltas += 1
    assert finish == "tool_calls"
    assert ids[0].startswith("call_")
    assert deltas > 1  # arguments arrive as several deltas
    assert json.loads(arguments[0]) == WEATHER["arguments"]


def test_chat_stream_helper_accumulates_tool_calls(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(text="Let me check.", tool_calls=[WEATHER]))
    with oai.chat.completions.stream(model="gpt-fake", messages=USER) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls is not None
    assert json.loads(message.tool_calls[0].function.arguments) == WEATHER["arguments"]


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
    ],
)
def test_chat_json_response_format(oai: openai.OpenAI, response_format: dict) -> None:
    completion = oai.chat.completions.create(
        model="gpt-fake", messages=USER, response_format=response_format  # type: ignore[arg-type]
    )
    assert json.loads(completion.choices[0].message.content or "") == {"answer": "Echo: what is the weather"}


def test_scripted_text_overrides_json_mode_and_usage(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(text="not json", usage={"input_tokens": 100, "output_tokens": 7, "cached_tokens": 40}))
    completion = oai.chat.completions.create(
        model="gpt-fake", messages=USER, response_format={"type": "json_object"}
    )
    assert completion.choices[0].message.content == "not json"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 7, 107)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 40


# ------------------------------------------------------------------------------------------
# OpenAI responses and embeddings
# ------------------------------------------------------------------------------------------


def test_responses_plain_with_string_and_list_input(fake: FakeLLM, oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="gpt-r", input="hello there", instructions="be kind")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "gpt-r"
    assert response.output_text == "Echo: hello there"
    assert response.output[0].type == "message"
    assert response.usage is not None
    assert response.usage.input_tokens == 2 + 2 + 3
    assert response.usage.output_tokens == 3
    assert response.usage.total_tokens == 10
    assert response.usage.input_tokens_details.cached_tokens == 0

    listed = oai.responses.create(
        model="gpt-r",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "input_text", "text": "second one"}]},
        ],
    )
    assert listed.output_text == "Echo: second one"
    assert fake.requests[-1].path == "/v1/responses"


def test_responses_function_calls(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(tool_calls=[WEATHER], usage={"cached_tokens": 5}))
    response = oai.responses.create(model="gpt-r", input="weather?")
    [item] = response.output
    assert item.type == "function_call"
    assert item.name == "get_weather"
    assert item.call_id.startswith("call_")
    assert json.loads(item.arguments) == WEATHER["arguments"]
    assert response.usage is not None and response.usage.input_tokens_details.cached_tokens == 5


def test_responses_stream_events(oai: openai.OpenAI) -> None:
    with oai.responses.create(model="gpt-r", input="stream me please", stream=True) as stream:
        events = list(stream)

    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == "Echo: stream me please"
    seq = [e.sequence_number for e in events]
    assert seq == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "Echo: stream me please"
    assert completed.response.usage is not None and completed.response.usage.output_tokens == 4


def test_responses_stream_helper_with_function_call(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(text="Checking.", tool_calls=[WEATHER]))
    with oai.responses.stream(model="gpt-r", input="weather?") as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in types
    assert final.output_text == "Checking."
    call = final.output[1]
    assert call.type == "function_call"
    assert json.loads(call.arguments) == WEATHER["arguments"]


def test_embeddings_deterministic(fake: FakeLLM, oai: openai.OpenAI) -> None:
    many = oai.embeddings.create(model="emb-fake", input=["alpha beta", "gamma"])
    assert [d.index for d in many.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in many.data)
    assert many.data[0].embedding != many.data[1].embedding
    assert many.usage.prompt_tokens == 3 and many.usage.total_tokens == 3
    # The SDK asks for base64 by default and decodes it; an explicit float request gets floats.
    assert fake.requests[0].body["encoding_format"] == "base64"
    one = oai.embeddings.create(model="emb-fake", input="alpha beta", encoding_format="float")
    assert one.data[0].embedding == many.data[0].embedding
    assert one.model == "emb-fake"


# ------------------------------------------------------------------------------------------
# Anthropic messages
# ------------------------------------------------------------------------------------------


def test_anthropic_plain(fake: FakeLLM, ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(
        model="claude-fake",
        max_tokens=50,
        system=[{"type": "text", "text": "you are terse"}],
        messages=USER,
    )
    assert message.type == "message"
    assert message.model == "claude-fake"
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Echo: what is the weather"  # type: ignore[union-attr]
    assert message.usage.input_tokens == 3 + 4 + 3
    assert message.usage.output_tokens == 5
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0

    [request] = fake.requests
    assert request.path == "/v1/messages"
    # anthropic 2.x sends the API key as a Bearer token; older versions used x-api-key.
    assert request.headers.get("x-api-key") == "test" or request.headers.get("authorization") == "Bearer test"
    assert "anthropic-version" in request.headers


def test_anthropic_stream_events(fake: FakeLLM, ant: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(usage={"cached_tokens": 11}))
    with ant.messages.create(model="claude-fake", max_tokens=50, messages=USER, stream=True) as stream:
        events = list(stream)

    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert len(text) > 1
    assert "".join(text) == "Echo: what is the weather"
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.cache_read_input_tokens == 11
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 5


def test_anthropic_tool_use_plain(fake: FakeLLM, ant: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(text="Let me look.", tool_calls=[WEATHER]))
    message = ant.messages.create(model="claude-fake", max_tokens=50, messages=USER)
    assert message.stop_reason == "tool_use"
    text, tool = message.content
    assert text.type == "text" and text.text == "Let me look."
    assert tool.type == "tool_use"
    assert tool.id.startswith("toolu_")
    assert (tool.name, tool.input) == ("get_weather", WEATHER["arguments"])


def test_anthropic_tool_use_streamed_input_json_delta(fake: FakeLLM, ant: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(tool_calls=[WEATHER]))
    with ant.messages.create(model="claude-fake", max_tokens=50, messages=USER, stream=True) as stream:
        events = list(stream)
    partial = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(partial) > 2
    assert json.loads("".join(partial)) == WEATHER["arguments"]
    assert [e.delta.stop_reason for e in events if e.type == "message_delta"] == ["tool_use"]


def test_anthropic_stream_helper_final_message(fake: FakeLLM, ant: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(text="Looking it up now.", tool_calls=[WEATHER]))
    with ant.messages.stream(model="claude-fake", max_tokens=50, messages=USER) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == "Looking it up now."
    assert final.stop_reason == "tool_use"
    assert final.content[1].type == "tool_use"
    assert final.content[1].input == WEATHER["arguments"]  # type: ignore[union-attr]
    assert final.usage.output_tokens == 4 + 1


# ------------------------------------------------------------------------------------------
# Async clients
# ------------------------------------------------------------------------------------------


def test_async_openai_chat_and_stream(fake: FakeLLM) -> None:
    async def run() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0) as client:
            plain, stream = await asyncio.gather(
                client.chat.completions.create(model="gpt-fake", messages=USER),
                client.chat.completions.create(model="gpt-fake", messages=USER, stream=True),
            )
            pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return plain.choices[0].message.content or "", "".join(pieces)

    plain, streamed = asyncio.run(run())
    assert plain == streamed == "Echo: what is the weather"
    assert fake.requests[0].headers["x-stainless-async"].startswith("async")


def test_async_anthropic_stream_helper(fake: FakeLLM) -> None:
    async def run() -> str:
        client = anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="test", max_retries=0)
        async with client:
            async with client.messages.stream(model="claude-fake", max_tokens=50, messages=USER) as stream:
                message = await stream.get_final_message()
            return message.content[0].text  # type: ignore[union-attr]

    assert asyncio.run(run()) == "Echo: what is the weather"


# ------------------------------------------------------------------------------------------
# Errors, retries, malformed bodies
# ------------------------------------------------------------------------------------------


def test_openai_retries_429_then_succeeds(fake: FakeLLM) -> None:
    fake.enqueue(Reply(status=429), Reply(text="finally"))
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=1) as client:
        start = time.perf_counter()
        completion = client.chat.completions.create(model="gpt-fake", messages=USER)
        elapsed = time.perf_counter() - start
    assert completion.choices[0].message.content == "finally"
    # `retry-after-ms: 1` makes the retry immediate; the SDK's own backoff is at least 0.375 s.
    assert elapsed < 0.3
    assert len(fake.requests) == 2
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1"]


def test_anthropic_retries_429_then_succeeds(fake: FakeLLM) -> None:
    fake.enqueue(Reply(status=429))
    with anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="test", max_retries=1) as client:
        message = client.messages.create(model="claude-fake", max_tokens=5, messages=USER)
    assert message.content[0].text == "Echo: what is the weather"  # type: ignore[union-attr]
    assert len(fake.requests) == 2


def test_openai_429_without_retries_is_rate_limit_error(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(status=429))
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(model="gpt-fake", messages=USER)
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == "0"


def test_openai_500_is_internal_server_error(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(status=500, text="boom"))
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model="gpt-fake", messages=USER)
    assert info.value.status_code == 500
    assert info.value.message.endswith("boom")
    assert info.value.type == "server_error"


def test_anthropic_errors_use_native_body(fake: FakeLLM, ant: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(status=500), Reply(status=529), Reply(status=400, text="bad"))
    with pytest.raises(anthropic.InternalServerError) as info:
        ant.messages.create(model="claude-fake", max_tokens=5, messages=USER)
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        ant.messages.create(model="claude-fake", max_tokens=5, messages=USER)
    assert overloaded.value.status_code == 529
    with pytest.raises(anthropic.BadRequestError) as bad:
        ant.messages.create(model="claude-fake", max_tokens=5, messages=USER)
    assert bad.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad"},
        "request_id": bad.value.request_id,
    }


def test_malformed_body_raises(fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    # Neither SDK wraps a JSON decoding failure: it surfaces as json.JSONDecodeError.
    fake.enqueue(Reply(malformed=True), Reply(malformed=True), Reply(malformed=True), Reply(malformed=True))
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model="gpt-fake", messages=USER)
    with pytest.raises(json.JSONDecodeError):
        with oai.chat.completions.create(model="gpt-fake", messages=USER, stream=True) as stream:
            list(stream)
    with pytest.raises(json.JSONDecodeError):
        ant.messages.create(model="claude-fake", max_tokens=5, messages=USER)
    with pytest.raises(json.JSONDecodeError):
        with ant.messages.create(model="claude-fake", max_tokens=5, messages=USER, stream=True) as events:
            list(events)


def test_openai_stream_error_after_raises_mid_stream(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(text="one two three four five six", stream_error_after=2))
    received: list[str] = []
    with pytest.raises(openai.APIError, match="interrupted"):
        with oai.chat.completions.create(model="gpt-fake", messages=USER, stream=True) as stream:
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one two three four "


def test_anthropic_stream_error_after_raises_mid_stream(fake: FakeLLM, ant: anthropic.Anthropic) -> None:
    fake.enqueue(Reply(stream_error_after=1))
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        with ant.messages.stream(model="claude-fake", max_tokens=5, messages=USER) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert received == ["Echo: what "]


def test_responses_stream_error_is_native_error_event(fake: FakeLLM, oai: openai.OpenAI) -> None:
    # The Responses API reports mid-stream failures as events; the SDK yields them, not raises.
    fake.enqueue(Reply(stream_error_after=1))
    with oai.responses.create(model="gpt-r", input="a b c d e f", stream=True) as stream:
        events = list(stream)
    types = [e.type for e in events]
    assert types.count("response.output_text.delta") == 1
    assert types[-2:] == ["error", "response.failed"]
    assert "response.completed" not in types


def test_unknown_path_is_404(fake: FakeLLM, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.models.list()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        conn.request("POST", "/v1/nope", body="{}", headers={"anthropic-version": "2023-06-01"})
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 404
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert [r.path for r in fake.requests] == ["/v1/models", "/v1/nope"]


# ------------------------------------------------------------------------------------------
# Knobs, concurrency, standalone mode
# ------------------------------------------------------------------------------------------


def test_latency_and_chunk_delay(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.latency = 0.15
    start = time.perf_counter()
    oai.chat.completions.create(model="gpt-fake", messages=USER)
    assert time.perf_counter() - start >= 0.15

    fake.enqueue(Reply(delay=0.0))  # per-reply override beats fake.latency
    start = time.perf_counter()
    oai.chat.completions.create(model="gpt-fake", messages=USER)
    assert time.perf_counter() - start < 0.15

    fake.latency = 0
    fake.chunk_delay = 0.05
    arrivals: list[float] = []
    start = time.perf_counter()
    with oai.chat.completions.create(model="gpt-fake", messages=USER, stream=True) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 3
    assert arrivals[-1] - arrivals[0] >= 0.09  # content chunks were spread out


def test_request_is_recorded_before_the_reply(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.latency = 0.3
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(oai.chat.completions.create, model="m", messages=USER)
        deadline = time.monotonic() + 2
        while not fake.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(fake.requests) == 1 and not pending.done()
        assert pending.result(timeout=5).choices[0].message.content


def test_reply_validation() -> None:
    with pytest.raises(ValueError, match="name"):
        Reply(tool_calls=[{"arguments": {}}])
    with pytest.raises(ValueError, match="prompt_tokens"):
        Reply(usage={"prompt_tokens": 1})


def test_queue_is_fifo_and_reset_clears(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply(text="first"), Reply(text="second"))
    texts = [oai.chat.completions.create(model="m", messages=USER).choices[0].message.content for _ in range(3)]
    assert texts == ["first", "second", "Echo: what is the weather"]
    fake.enqueue(Reply(text="left over"))
    fake.latency = 1.0
    fake.reset()
    assert fake.requests == [] and fake.latency == 0
    assert oai.chat.completions.create(model="m", messages=USER).choices[0].message.content != "left over"


def test_many_sequential_and_concurrent_requests(fake: FakeLLM, oai: openai.OpenAI) -> None:
    for i in range(30):
        content = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": f"n{i}"}])
        assert content.choices[0].message.content == f"Echo: n{i}"

    def call(i: int) -> str:
        messages = [{"role": "user", "content": f"s{i}"}]
        if i % 2:
            with oai.chat.completions.create(model="m", messages=messages, stream=True) as stream:
                return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        return oai.chat.completions.create(model="m", messages=messages).choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(80)))
    assert results == [f"Echo: s{i}" for i in range(80)]
    assert len(fake.requests) == 110


def test_standalone_module_prints_ready_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.llm_server", "--port", "0", "--latency", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        with openai.OpenAI(base_url=url + "/v1", api_key="test", max_retries=0) as client:
            assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0  # SIGTERM is handled as a clean shutdown
