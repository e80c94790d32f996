"""The gateway with the real openai and anthropic clients pointed at it, and the gateway pointed
at the fake LLM server: what the caller gets, and what lands in the store."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import uvicorn
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import looplab
from looplab.config import Settings
from looplab.gateway import GatewaySettings, create_app
from tests.fakes.llm_server import FakeLLM, Reply
from tests.stored import only_span, stored_spans, stored_traces

API_KEY = "sk-test-0123456789abcdefghijklmnop"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdefghijkl"


class Gateway:
    """A gateway served by uvicorn on a thread, on a free port of 127.0.0.1."""

    def __init__(self, url: str, settings: GatewaySettings) -> None:
        self.url = url
        self.settings = settings

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def openai(self, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.openai_base_url, api_key=API_KEY, max_retries=0, **options)

    def async_openai(self, **options: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.openai_base_url, api_key=API_KEY, max_retries=0, **options)

    def anthropic(self, **options: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=ANTHROPIC_KEY, max_retries=0, **options)

    def async_anthropic(self, **options: Any) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=ANTHROPIC_KEY, max_retries=0, **options)


@contextlib.contextmanager
def serve(settings: GatewaySettings, extra_routes: list[Any] | None = None,
          tracing: Settings | None = None, on_shutdown: list[Any] | None = None) -> Iterator[Gateway]:
    """Run the gateway app until the block ends (the server's lifespan included)."""
    app = create_app(settings, extra_routes or (), tracing=tracing or Settings(flush_interval=0.02),
                     on_shutdown=on_shutdown or ())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.01)
    try:
        yield Gateway(f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _settings(fake: FakeLLM, db_url: str, **changes: Any) -> GatewaySettings:
    return GatewaySettings(openai_base_url=fake.openai_base_url, anthropic_base_url=fake.anthropic_base_url,
                           database_url=db_url, **changes)


@pytest.fixture
def gateway(fake_llm: FakeLLM, db_url: str) -> Iterator[Gateway]:
    with serve(_settings(fake_llm, db_url)) as running:
        yield running


def recorded_spans(url: str, count: int) -> list[dict[str, Any]]:
    """The spans stored, once the gateway recorded ``count``: a stream's span is handed to the
    writer just after its last chunk went out, so the caller can be a moment ahead of it."""
    deadline = time.monotonic() + 5
    while True:
        looplab.flush()
        spans = stored_spans(url)
        if len(spans) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert looplab.flush()
    assert len(spans) == count, spans
    return spans


def streamed_span(url: str) -> dict[str, Any]:
    """The one span stored, once the gateway recorded it (see ``recorded_spans``)."""
    return recorded_spans(url, 1)[0]


def _trace_id(raw: Any) -> str:
    return raw.headers["x-looplab-trace-id"]


# --- OpenAI chat completions ----------------------------------------------------------------------


def test_chat_completion_through_the_gateway(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my parcel?"}]
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0.2)
    response = raw.parse()

    assert response.choices[0].message.content == "Echo: Where is my parcel?"
    # The caller's own key went upstream; looplab's headers did not.
    sent = fake_llm.requests[0]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert not any(name.startswith("x-looplab") for name in sent.headers)
    span = only_span(db_url)
    assert span["trace_id"] == _trace_id(raw)
    assert span["kind"] == "llm" and span["provider"] == "openai" and span["model"] == "gpt-4o-mini"
    assert span["name"] == "openai.chat.completions"
    assert span["input_json"] == messages
    assert span["output_json"] == {"role": "assistant", "content": "Echo: Where is my parcel?"}
    assert span["params_json"]["temperature"] == 0.2
    assert span["finish_reason"] == "stop"
    assert span["input_tokens"] == response.usage.prompt_tokens
    assert span["output_tokens"] == response.usage.completion_tokens
    assert span["cost_usd"] is not None and span["cost_usd"] > 0
    assert span["status"] == "ok" and span["duration_ms"] > 0 and span["ttft_ms"] is None
    assert span["attributes_json"]["gateway"] is True and span["attributes_json"]["http_status"] == 200
    # The key is nowhere in what was stored.
    assert API_KEY not in json.dumps([span, stored_traces(db_url)], default=str)
    trace = stored_traces(db_url)[0]
    assert trace["name"] == "openai.chat.completions" and trace["status"] == "ok"
    assert trace["cost_usd"] == pytest.approx(span["cost_usd"])


def test_cached_tokens_are_recorded(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.enqueue(Reply(usage={"input_tokens": 2000, "output_tokens": 10, "cached_tokens": 1500}))
    gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    span = only_span(db_url)
    assert (span["input_tokens"], span["output_tokens"], span["cached_tokens"]) == (2000, 10, 1500)


def test_tool_calls(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.enqueue(Reply(tool_calls=[{"name": "track_parcel", "arguments": {"id": "P-1"}}]))
    tools = [{"type": "function", "function": {"name": "track_parcel", "parameters": {"type": "object"}}}]
    response = gateway.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Where is P-1?"}], tools=tools)

    call = response.choices[0].message.tool_calls[0]
    assert call.function.name == "track_parcel"
    span = only_span(db_url)
    assert span["finish_reason"] == "tool_calls"
    assert span["output_json"]["tool_calls"] == [
        {"id": call.id, "name": "track_parcel", "arguments": '{"id": "P-1"}'}]
    assert span["params_json"]["tools"] == tools


def test_streamed_chunks_arrive_as_the_upstream_sends_them(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.chunk_delay = 0.15
    text = "one two three four five six seven eight"  # 4 content chunks of two words
    fake_llm.enqueue(Reply(text=text))
    started = time.perf_counter()
    stream = gateway.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True,
        stream_options={"include_usage": True})
    arrivals: list[float] = []
    pieces: list[str] = []
    for chunk in stream:
        arrivals.append(time.perf_counter() - started)
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)

    assert "".join(pieces) == text
    # 8 events, 0.15 s apart: relayed as they came, the first ones arrive long before the last.
    assert arrivals[-1] - arrivals[0] > 0.8
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(gap > 0.08 for gap in gaps) >= 5, gaps
    span = streamed_span(db_url)
    assert span["output_json"] == {"role": "assistant", "content": text}
    assert span["attributes_json"]["stream"] is True
    assert span["input_tokens"] is not None and span["output_tokens"] == 8
    assert span["finish_reason"] == "stop" and span["status"] == "ok"
    # Time to first token: the first content event, one delay after the opening one.
    assert 100 < span["ttft_ms"] < span["duration_ms"] - 500


def test_streamed_tool_calls_async(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.enqueue(Reply(tool_calls=[{"name": "lookup", "arguments": {"query": "parcel P-1 status"}}]))

    async def call() -> list[Any]:
        client = gateway.async_openai()
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "status?"}], stream=True)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(call())
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    span = streamed_span(db_url)
    assert span["output_json"]["tool_calls"][0]["name"] == "lookup"
    assert json.loads(span["output_json"]["tool_calls"][0]["arguments"]) == {"query": "parcel P-1 status"}
    assert span["finish_reason"] == "tool_calls"


def test_a_caller_leaving_a_stream_early_is_recorded(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.chunk_delay = 0.1
    fake_llm.enqueue(Reply(text="a b c d e f g h i j k l"))
    stream = gateway.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True)
    next(iter(stream))
    stream.close()
    span = streamed_span(db_url)
    assert span["attributes_json"]["stream_stopped_early"] is True
    assert span["status"] == "ok"


# --- OpenAI responses and embeddings --------------------------------------------------------------


def test_responses_api_plain_and_streamed(gateway: Gateway, db_url: str) -> None:
    client = gateway.openai()
    response = client.responses.create(model="gpt-4o-mini", instructions="Be brief.", input="Hello there")
    events = list(client.responses.create(model="gpt-4o-mini", input="Stream this", stream=True))

    assert response.output_text == "Echo: Hello there"
    assert events[-1].type == "response.completed"
    plain, streamed = recorded_spans(db_url, 2)
    assert plain["input_json"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    assert plain["output_json"]["content"] == "Echo: Hello there"
    assert plain["finish_reason"] == "completed" and plain["output_tokens"] == response.usage.output_tokens
    assert streamed["output_json"]["content"] == "Echo: Stream this"
    assert streamed["ttft_ms"] is not None and streamed["attributes_json"]["stream"] is True
    assert streamed["name"] == "openai.responses"


def test_embeddings(gateway: Gateway, db_url: str) -> None:
    result = gateway.openai().embeddings.create(model="text-embedding-3-small", input=["one", "two words"])

    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    span = only_span(db_url)
    assert span["kind"] == "embedding" and span["name"] == "openai.embeddings"
    assert span["input_json"] == ["one", "two words"]
    assert span["output_json"] == {"embeddings": 2, "dimensions": 8}  # the vectors are not stored
    assert span["input_tokens"] == 3 and span["output_tokens"] == 0


# --- Anthropic messages ---------------------------------------------------------------------------


def test_anthropic_message(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.enqueue(Reply(usage={"input_tokens": 100, "output_tokens": 5, "cached_tokens": 400}))
    raw = gateway.anthropic().messages.with_raw_response.create(
        model="claude-3-5-haiku-latest", max_tokens=100, system="Be brief.",
        messages=[{"role": "user", "content": "Hello Claude"}])
    message = raw.parse()

    assert message.content[0].text == "Echo: Hello Claude"
    sent = fake_llm.requests[0].headers  # the SDK sends its key as x-api-key or as a bearer token
    assert ANTHROPIC_KEY in (sent.get("x-api-key"), sent.get("authorization", "").removeprefix("Bearer "))
    span = only_span(db_url)
    assert span["trace_id"] == _trace_id(raw)
    assert span["provider"] == "anthropic" and span["name"] == "anthropic.messages"
    assert span["input_json"] == [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Hello Claude"}]
    assert span["output_json"] == {"role": "assistant", "content": "Echo: Hello Claude"}
    assert span["params_json"] == {"model": "claude-3-5-haiku-latest", "max_tokens": 100}
    # looplab's convention: input tokens include the cache reads.
    assert (span["input_tokens"], span["cached_tokens"], span["output_tokens"]) == (500, 400, 5)
    assert span["finish_reason"] == "end_turn" and span["cost_usd"] > 0
    assert ANTHROPIC_KEY not in json.dumps(span, default=str)


def test_anthropic_stream_async(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.chunk_delay = 0.05
    fake_llm.enqueue(Reply(text="streaming from the fake Claude"))

    async def call() -> tuple[str, float]:
        client = gateway.async_anthropic()
        started = time.perf_counter()
        async with client.messages.stream(model="claude-3-5-haiku-latest", max_tokens=50,
                                          messages=[{"role": "user", "content": "go"}]) as stream:
            first = None
            async for _text in stream.text_stream:
                first = first or time.perf_counter() - started
            final = await stream.get_final_message()
        assert first is not None
        return final.content[0].text, first

    text, first = asyncio.run(call())
    assert text == "streaming from the fake Claude"
    span = streamed_span(db_url)
    assert span["output_json"]["content"] == text
    assert span["finish_reason"] == "end_turn" and span["output_tokens"] == 5
    assert span["attributes_json"]["stream"] is True
    assert span["ttft_ms"] is not None and span["ttft_ms"] < span["duration_ms"]
    assert first < 0.5 * span["duration_ms"] / 1000 + 0.1


def test_anthropic_streamed_tool_use(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.enqueue(Reply(tool_calls=[{"name": "refund", "arguments": {"order": "A-7", "amount": 12}}]))
    with gateway.anthropic().messages.stream(
            model="claude-3-5-haiku-latest", max_tokens=50, messages=[{"role": "user", "content": "refund A-7"}],
            tools=[{"name": "refund", "input_schema": {"type": "object"}}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    span = streamed_span(db_url)
    assert span["output_json"]["tool_calls"][0]["name"] == "refund"
    assert span["output_json"]["tool_calls"][0]["arguments"] == {"order": "A-7", "amount": 12}


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500])
def test_upstream_errors_reach_the_caller_and_are_recorded(gateway: Gateway, fake_llm: FakeLLM, db_url: str,
                                                           status: int) -> None:
    fake_llm.enqueue(Reply(status=status, text=f"upstream says {status}"))
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    assert caught.value.status_code == status
    assert caught.value.body["message"] == f"upstream says {status}"  # the upstream's own body
    assert caught.value.response.headers.get("retry-after") == "0"  # and headers
    span = only_span(db_url)
    assert span["trace_id"] == caught.value.response.headers["x-looplab-trace-id"]
    assert span["status"] == "error" and span["error"] == f"HTTP {status}: upstream says {status}"
    assert span["input_json"] == [{"role": "user", "content": "hi"}] and span["output_json"] is None
    assert stored_traces(db_url)[0]["status"] == "error"


def test_anthropic_upstream_error(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.enqueue(Reply(status=529, text="Overloaded"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        gateway.anthropic().messages.create(model="claude-3-5-haiku-latest", max_tokens=10,
                                            messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert only_span(db_url)["error"] == "HTTP 529: Overloaded"


def test_an_error_event_inside_a_stream_is_an_error_span(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.enqueue(Reply(text="a b c d e f", stream_error_after=1))
    with pytest.raises(anthropic.APIStatusError), gateway.anthropic().messages.stream(
            model="claude-3-5-haiku-latest", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
        stream.until_done()
    span = streamed_span(db_url)
    assert span["status"] == "error" and span["error"] == "Overloaded (fake)."
    assert span["output_json"]["content"] == "a b "


def test_a_malformed_upstream_answer_is_passed_through(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    fake_llm.enqueue(Reply(malformed=True))
    with pytest.raises(json.JSONDecodeError):  # as the SDK fails on the upstream itself
        gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    span = only_span(db_url)
    assert span["status"] == "ok" and span["output_json"] is None  # what the upstream sent, unread


def test_upstream_down_is_a_502_with_a_clear_message(fake_llm: FakeLLM, db_url: str) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    down = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now
    settings = replace(_settings(fake_llm, db_url), openai_base_url=down + "/v1", anthropic_base_url=down)
    with serve(settings) as gateway:
        with pytest.raises(openai.APIStatusError) as caught:
            gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.APIStatusError) as caught_anthropic:
            gateway.anthropic().messages.create(model="claude-3-5-haiku-latest", max_tokens=10,
                                                messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502 and caught_anthropic.value.status_code == 502
    message = caught.value.body["message"]
    assert f"could not reach the openai upstream at {down}/v1" in message and "ConnectError" in message
    assert "could not reach the anthropic upstream" in caught_anthropic.value.body["error"]["message"]
    assert looplab.flush()
    spans = stored_spans(db_url)
    assert [s["status"] for s in spans] == ["error", "error"]
    assert "could not reach the openai upstream" in spans[0]["error"]
    assert spans[0]["trace_id"] == caught.value.response.headers["x-looplab-trace-id"]


def test_upstream_too_slow_is_a_504(fake_llm: FakeLLM, db_url: str) -> None:
    with serve(_settings(fake_llm, db_url, read_timeout=0.3)) as gateway:
        fake_llm.enqueue(Reply(delay=1.0))
        with pytest.raises(openai.APIStatusError) as caught:
            gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 504
    assert "did not answer in time (ReadTimeout" in caught.value.body["message"]
    span = only_span(db_url)
    assert span["status"] == "error" and "did not answer in time" in span["error"]


def test_a_long_silence_inside_a_stream_does_not_end_it(fake_llm: FakeLLM, db_url: str) -> None:
    # The non-streamed read timeout does not apply inside a stream (no limit there by default).
    with serve(_settings(fake_llm, db_url, read_timeout=0.2)) as gateway:
        fake_llm.chunk_delay = 0.5
        fake_llm.enqueue(Reply(text="slow but sure"))
        stream = gateway.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "slow but sure"
    assert streamed_span(db_url)["status"] == "ok"


def test_a_recording_failure_never_fails_the_call(fake_llm: FakeLLM, tmp_path: Path) -> None:
    unwritable = f"sqlite:///{tmp_path / 'no such folder' / 'looplab.db'}"
    with serve(_settings(fake_llm, unwritable)) as gateway:
        for _ in range(3):
            response = gateway.openai().chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "still works"}])
            assert response.choices[0].message.content == "Echo: still works"
        stream = gateway.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True)
        assert len(list(stream)) > 2
        assert looplab.flush(timeout=5) is False
        stats = looplab.stats()
    assert stats["write_failures"] >= 1 and "does not exist" in stats["last_error"]


# --- trace context, API key, health ---------------------------------------------------------------


def test_trace_context_from_headers(gateway: Gateway, db_url: str) -> None:
    client = gateway.openai(default_headers={
        "x-looplab-trace-name": "support-chat",
        "x-looplab-session-id": "session-9",
        "x-looplab-user-id": "user-42",
        "x-looplab-tags": "prod, beta ,,checkout",
        "x-looplab-metadata": json.dumps({"plan": "pro", "attempt": 2}),
    })
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    assert looplab.flush()
    trace = stored_traces(db_url)[0]
    assert trace["id"] == _trace_id(raw)
    assert trace["name"] == "support-chat"
    assert (trace["session_id"], trace["user_id"]) == ("session-9", "user-42")
    assert trace["tags_json"] == ["prod", "beta", "checkout"]
    assert trace["metadata_json"] == {"plan": "pro", "attempt": 2}


def test_bad_metadata_header_is_a_400(gateway: Gateway, fake_llm: FakeLLM, db_url: str) -> None:
    client = gateway.openai(default_headers={"x-looplab-metadata": "{not json"})
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "x-looplab-metadata is not valid JSON" in caught.value.body["message"]
    listed = httpx2.post(gateway.openai_base_url + "/chat/completions", json={},
                         headers={"x-looplab-metadata": "[1, 2]"})
    assert listed.status_code == 400 and "must be a JSON object" in listed.json()["error"]["message"]
    assert fake_llm.requests == []  # nothing was forwarded
    assert looplab.flush() and stored_spans(db_url) == []


def test_api_key_guards_every_route_but_healthz(fake_llm: FakeLLM, db_url: str) -> None:
    async def otlp_stand_in(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ingested")

    extra = [Route("/v1/traces", otlp_stand_in, methods=["POST"])]
    with serve(_settings(fake_llm, db_url, api_key="gw-key-1"), extra) as gateway:
        assert httpx2.get(gateway.url + "/healthz").json() == {"status": "ok"}
        with pytest.raises(openai.AuthenticationError) as caught:
            gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert "no x-looplab-api-key header" in caught.value.body["message"]
        wrong = httpx2.post(gateway.url + "/v1/traces", headers={"x-looplab-api-key": "nope"})
        assert wrong.status_code == 401 and "a wrong x-looplab-api-key" in wrong.json()["error"]["message"]
        assert httpx2.post(gateway.url + "/api/scores", json={}).status_code == 401
        assert httpx2.post(gateway.url + "/v1/traces", headers={"x-looplab-api-key": "gw-key-1"}).text == "ingested"
        response = gateway.openai(default_headers={"x-looplab-api-key": "gw-key-1"}).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert response.choices[0].message.content == "Echo: hi"
    assert len(fake_llm.requests) == 1
    assert "x-looplab-api-key" not in fake_llm.requests[0].headers  # the gateway's key stays with it


def test_without_a_key_everything_is_open(gateway: Gateway) -> None:
    assert httpx2.get(gateway.url + "/healthz").status_code == 200
    response = gateway.openai().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert response.choices[0].message.content == "Echo: hi"


# --- the command ----------------------------------------------------------------------------------

_COMMAND = """
import typer
from looplab.gateway.cli import gateway_command
app = typer.Typer(add_completion=False)
app.command()(gateway_command)
app()
"""


@contextlib.contextmanager
def _gateway_command(fake_llm: FakeLLM, db_url: str, *extra: str) -> Iterator[tuple[str, list[str]]]:
    """``looplab gateway`` in a process of its own, with the ingest key ``cli-key`` and a writer
    that waits 30 s between writes; yields its URL and, once stopped with Ctrl+C, its output."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    env = {**os.environ, "LOOPLAB_API_KEY": "cli-key", "LOOPLAB_FLUSH_INTERVAL": "30"}
    process = subprocess.Popen(
        [sys.executable, "-c", _COMMAND, "--port", str(port), "--db", db_url,
         "--openai-base-url", fake_llm.openai_base_url, "--anthropic-base-url", fake_llm.anthropic_base_url, *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx2.get(url + "/healthz").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
        yield url, output
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl+C sends
        output.append(process.communicate(timeout=30)[0])
    assert process.returncode == 0, output[0]


def test_the_command_serves_records_and_writes_what_is_queued_on_exit(fake_llm: FakeLLM, db_url: str) -> None:
    with _gateway_command(fake_llm, db_url) as (url, output):
        client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0,
                               default_headers={"x-looplab-api-key": "cli-key"})
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "via the command"}])
        # The OpenTelemetry ingest is mounted too, behind the same key.
        assert httpx2.post(url + "/v1/traces", content=b"x").status_code == 401
        otlp = httpx2.post(url + "/v1/traces", content=b"{", headers={"x-looplab-api-key": "cli-key",
                                                                      "content-type": "application/json"})
        assert otlp.status_code == 400
    assert f"looplab gateway on {url}" in output[0]
    # The writer waits 30 s between writes: the trace was written on the way out.
    [trace] = stored_traces(db_url)
    assert trace["id"] == raw.headers["x-looplab-trace-id"]


def test_the_command_with_several_workers_serves_ingests_and_writes_everything(fake_llm: FakeLLM,
                                                                                db_url: str) -> None:
    from tests import otlp_builders as otlp

    trace_ids = []
    exported = otlp.new_trace_id()
    with _gateway_command(fake_llm, db_url, "--workers", "2") as (url, output):
        for i in range(8):  # a new connection each: the workers share the listening socket
            with openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0,
                               default_headers={"x-looplab-api-key": "cli-key"}) as client:
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"call {i}"}])
                trace_ids.append(raw.headers["x-looplab-trace-id"])
        body = otlp.request(otlp.span(exported, otlp.new_span_id(), "chat gpt-4o-mini",
                                      attributes=otlp.genai_chat_attributes())).SerializeToString()
        answer = httpx2.post(url + "/v1/traces", content=body, headers={
            "x-looplab-api-key": "cli-key", "content-type": "application/x-protobuf"})
        assert answer.status_code == 200
    assert "(2 worker processes)" in output[0]
    # Each worker wrote what it had queued on the way out; the export was stored before its answer.
    assert {t["id"] for t in stored_traces(db_url)} == {*trace_ids, exported.hex()}


# --- the upstream transport -------------------------------------------------------------------------


@contextlib.contextmanager
def raw_upstream(answer: bytes, *, then_close: bool = True, received: list[bytes] | None = None) -> Iterator[str]:
    """A one-connection-at-a-time upstream that answers every request with ``answer`` (raw HTTP
    bytes), then closes the connection; yields its base URL. What it reads goes to ``received``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                data = conn.recv(65536)
                if received is not None:
                    received.append(data)
                conn.sendall(answer)
                if not then_close:
                    stop.wait(5)

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_gzipped_upstream_answer_reaches_the_caller_and_the_trace_decoded(fake_llm: FakeLLM, db_url: str) -> None:
    import gzip

    completion = {"id": "chatcmpl-z", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "zipped hello"}}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    body = gzip.compress(json.dumps(completion).encode())
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
              b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
    with raw_upstream(answer) as upstream, serve(replace(_settings(fake_llm, db_url),
                                                          openai_base_url=upstream + "/v1")) as gateway:
        reply = gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "z"}])
    assert reply.choices[0].message.content == "zipped hello"
    span = only_span(db_url)
    assert span["output_json"]["content"] == "zipped hello" and span["output_tokens"] == 2


def _a_broken_stream(gateway: Gateway, db_url: str) -> dict[str, Any]:
    """Read a streamed call that breaks off: the caller sees an error; returns the error span stored."""
    stream = gateway.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    span = streamed_span(db_url)
    assert span["status"] == "error"
    return span


def test_a_stream_the_upstream_breaks_off_is_an_error_span(fake_llm: FakeLLM, db_url: str) -> None:
    chunk = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,' \
            b'"delta":{"role":"assistant","content":"half"},"finish_reason":null}]}\n\n'
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
              + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")  # then the connection closes mid-stream
    with raw_upstream(answer) as upstream, serve(replace(_settings(fake_llm, db_url),
                                                          openai_base_url=upstream + "/v1")) as gateway:
        span = _a_broken_stream(gateway, db_url)
    assert "the upstream stream broke off" in span["error"]


def test_a_stream_silent_past_its_limit_is_an_error_span(fake_llm: FakeLLM, db_url: str) -> None:
    with serve(_settings(fake_llm, db_url, stream_read_timeout=0.2)) as gateway:
        fake_llm.chunk_delay = 1.0
        fake_llm.enqueue(Reply(text="too slow"))
        span = _a_broken_stream(gateway, db_url)
    assert "ReadTimeout" in span["error"]


def test_an_http_proxy_from_the_environment_carries_upstream_calls(fake_llm: FakeLLM, db_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    completion = json.dumps({"id": "chatcmpl-p", "object": "chat.completion", "created": 1, "model": "m",
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "via the proxy"}}]}).encode()
    answer = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
              + str(len(completion)).encode() + b"\r\nconnection: close\r\n\r\n" + completion)
    received: list[bytes] = []
    with raw_upstream(answer, received=received) as proxy:
        for name in ("no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the test's own client talks to the gateway directly
        # The upstream named here is never reached directly: nothing listens there.
        with serve(replace(_settings(fake_llm, db_url), openai_base_url="http://upstream.invalid/v1")) as gateway:
            reply = gateway.openai().chat.completions.create(model="m", messages=[{"role": "user", "content": "p"}])
    assert reply.choices[0].message.content == "via the proxy"
    # A proxy is asked for the whole URL.
    assert received[0].startswith(b"POST http://upstream.invalid/v1/chat/completions HTTP/1.1")


# --- redaction ------------------------------------------------------------------------------------------


def test_looplab_redact_masks_what_the_proxy_and_the_otlp_ingest_store(fake_llm: FakeLLM, db_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from looplab.config import settings_from_env
    from looplab.otlp.http import otlp_routes
    from looplab.otlp.pool import ExportPool
    from tests import otlp_builders as otlp

    monkeypatch.setenv("LOOPLAB_REDACT", "tests.redaction_hooks:mask_emails")
    tracing = settings_from_env().with_changes(flush_interval=0.02)
    settings = _settings(fake_llm, db_url)
    pool = ExportPool(1)  # as the command runs exports: the hook is imported again in that process
    with serve(settings, otlp_routes(db_url, redact=tracing.redact, pool=pool), tracing=tracing,
               on_shutdown=[pool.close]) as gateway:
        reply = gateway.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "I am ada@example.com"}])
        exported = otlp.new_trace_id()
        body = otlp.request(otlp.span(exported, otlp.new_span_id(), "chat", attributes=otlp.genai_chat_attributes(
            question="Write to bob@example.org please"))).SerializeToString()
        assert httpx2.post(gateway.url + "/v1/traces", content=body,
                           headers={"content-type": "application/x-protobuf"}).status_code == 200
    assert reply.choices[0].message.content == "Echo: I am ada@example.com"  # the caller's answer is untouched
    assert looplab.flush()
    stored = {s["trace_id"]: s for s in stored_spans(db_url)}
    assert len(stored) == 2
    text = json.dumps([s["input_json"] for s in stored.values()] + [s["output_json"] for s in stored.values()])
    assert "@example" not in text and text.count("[email]") >= 3


def test_a_looplab_redact_that_cannot_be_loaded_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from looplab.config import settings_from_env
    from looplab.errors import ConfigError

    for spec, message in (("tests.redaction_hooks", "must name a function as package.module:function"),
                          ("tests.no_such_module:scrub", "cannot import 'tests.no_such_module'"),
                          ("tests.redaction_hooks:NOT_A_FUNCTION", "has no function 'NOT_A_FUNCTION'")):
        monkeypatch.setenv("LOOPLAB_REDACT", spec)
        with pytest.raises(ConfigError, match=message):
            settings_from_env()
