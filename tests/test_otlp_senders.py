"""Real OpenTelemetry senders against the OTLP endpoint served by uvicorn on 127.0.0.1: the SDK's
OTLP/HTTP exporter with GenAI attributes and events, and OpenInference's instrumentor around the
real openai client calling the fake LLM server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import openai
import pytest
import uvicorn
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode
from starlette.applications import Starlette

from looplab.otlp.http import otlp_routes
from looplab.store.engine import get_engine
from tests.fakes.llm_server import FakeLLM, Reply
from tests.stored import stored_spans, stored_traces


@pytest.fixture
def endpoint(db_url: str) -> Iterator[str]:
    """The OTLP traces endpoint of an app serving ``otlp_routes(db_url)`` with uvicorn."""
    get_engine(db_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(Starlette(routes=otlp_routes(db_url)), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}/v1/traces"
    server.should_exit = True
    thread.join(timeout=10)


def _provider(endpoint: str, compression: Compression = Compression.NoCompression) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout", "service.version": "3.4"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, compression=compression)))
    return provider


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_exporter_with_genai_attributes(endpoint: str, db_url: str, compression: Compression) -> None:
    provider = _provider(endpoint, compression)
    tracer = provider.get_tracer("shop.assistant", "1.0")
    with tracer.start_as_current_span("suggest gift", attributes={"gen_ai.conversation.id": "conv-1",
                                                                  "enduser.id": "alice"}) as root:
        with tracer.start_as_current_span("chat claude-sonnet-4-5") as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.request.max_tokens": 256,
                "gen_ai.usage.prompt_tokens": 1200, "gen_ai.usage.completion_tokens": 80,
                "gen_ai.response.finish_reasons": ["end_turn"], "shop.cart_size": 3,
            })
            chat.add_event("gen_ai.system.message", {"content": "You suggest gifts."})
            chat.add_event("gen_ai.user.message", {"content": "A gift for my dad?"})
            chat.add_event("gen_ai.choice", {"index": 0, "finish_reason": "end_turn",
                                             "message": json.dumps({"role": "assistant", "content": "A book."})})
        with tracer.start_as_current_span("lookup stock") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "stock",
                                 "gen_ai.tool.call.arguments": '{"sku": "B-1"}'})
            tool.record_exception(RuntimeError("warehouse offline"))
            tool.set_status(Status(StatusCode.ERROR))
        with tracer.start_as_current_span("chat unknown-model-x") as other:
            other.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "unknown-model-x",
                                  "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 5})
        root.set_attribute("input.value", "gift for dad")
    assert provider.force_flush(10_000)
    provider.shutdown()

    [trace] = stored_traces(db_url)
    assert trace["name"] == "suggest gift" and trace["status"] == "ok"
    assert (trace["session_id"], trace["user_id"], trace["release"]) == ("conv-1", "alice", "3.4")
    assert (trace["span_count"], trace["error_count"]) == (4, 1)
    assert (trace["input_tokens"], trace["output_tokens"]) == (1205, 85)
    assert trace["input_json"] == "gift for dad"
    spans = {s["name"]: s for s in stored_spans(db_url)}
    chat = spans["chat claude-sonnet-4-5"]
    assert (chat["kind"], chat["provider"], chat["model"]) == ("llm", "anthropic", "claude-sonnet-4-5")
    assert chat["input_json"] == [{"role": "system", "content": "You suggest gifts."},
                                  {"role": "user", "content": "A gift for my dad?"}]
    assert chat["output_json"] == {"role": "assistant", "content": "A book."}
    assert (chat["input_tokens"], chat["output_tokens"], chat["finish_reason"]) == (1200, 80, "end_turn")
    assert chat["params_json"] == {"max_tokens": 256}
    assert chat["cost_usd"] == pytest.approx(1200 * 3e-6 + 80 * 15e-6)
    assert trace["cost_usd"] == pytest.approx(chat["cost_usd"])  # the unknown model adds nothing
    assert chat["attributes_json"]["shop.cart_size"] == 3
    assert chat["attributes_json"]["otel.scope"] == {"name": "shop.assistant", "version": "1.0"}
    tool = spans["lookup stock"]
    assert (tool["kind"], tool["status"], tool["error"]) == ("tool", "error", "RuntimeError: warehouse offline")
    assert tool["input_json"] == {"sku": "B-1"}
    assert tool["attributes_json"]["otel.events"][0]["name"] == "exception"
    unknown = spans["chat unknown-model-x"]
    assert unknown["cost_usd"] is None and unknown["pricing_source"] is None


def test_openinference_instrumented_openai_client(endpoint: str, db_url: str, fake_llm: FakeLLM) -> None:
    from openinference.instrumentation import using_session, using_user
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = _provider(endpoint)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=fake_llm.openai_base_url, api_key="sk-test-not-a-real-key", max_retries=0)
        tracer = provider.get_tracer("app")
        with using_session("session-42"), using_user("bob"), tracer.start_as_current_span("handle question"):
            client.chat.completions.create(
                model="gpt-4o-mini", temperature=0.1,
                messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}])
            client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
            fake_llm.enqueue(Reply(status=500))
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(model="gpt-4o-mini",
                                               messages=[{"role": "user", "content": "fail please"}])
    finally:
        instrumentor.uninstrument()
    assert provider.force_flush(10_000)
    provider.shutdown()

    [trace] = stored_traces(db_url)
    assert trace["name"] == "handle question"
    assert (trace["session_id"], trace["user_id"]) == ("session-42", "bob")
    assert (trace["span_count"], trace["error_count"], trace["status"]) == (4, 1, "ok")
    spans = [s for s in stored_spans(db_url) if s["parent_id"] is not None]
    chat, embedding, failed = spans
    assert (chat["kind"], chat["model"], chat["provider"], chat["status"]) == ("llm", "gpt-4o-mini", "openai", "ok")
    assert chat["input_json"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
    assert chat["output_json"]["role"] == "assistant" and "hello there" in chat["output_json"]["content"]
    assert (chat["input_tokens"], chat["output_tokens"]) == (7, 3)
    assert chat["cost_usd"] == pytest.approx(7 * 0.15e-6 + 3 * 0.6e-6)
    assert chat["params_json"]["temperature"] == 0.1
    assert "input.value" not in chat["attributes_json"]  # the raw request repeats the messages
    assert embedding["kind"] == "embedding" and embedding["input_json"] == ["a b", "c"]
    assert embedding["output_json"] == {"embeddings": 2, "dimensions": 8}
    assert embedding["input_tokens"] == 3 and embedding["cost_usd"] == pytest.approx(3 * 0.02e-6)
    assert (failed["kind"], failed["status"]) == ("llm", "error")
    assert failed["error"].startswith("InternalServerError: Error code: 500")
    assert trace["cost_usd"] == pytest.approx(chat["cost_usd"] + embedding["cost_usd"])
    # The API key the client sent is nowhere in the store.
    assert "sk-test-not-a-real-key" not in json.dumps([chat, embedding, failed], default=str)
