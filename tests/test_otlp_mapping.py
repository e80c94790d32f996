"""map_span on its own: the conventions instrumentations other than the SDK's GenAI one send
(OpenLLMetry's flattened prompts, OpenInference retrievals and tool calls, the older content
events), read into looplab's columns."""

from __future__ import annotations

import json

from looplab.otlp.mapping import map_span
from tests.otlp_builders import new_span_id, new_trace_id, span


def test_openllmetry_flattened_prompts_and_completions_with_tool_calls() -> None:
    mapped = map_span(span(new_trace_id(), new_span_id(), "openai.chat", attributes={
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Where is parcel 7?",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "call_1", "gen_ai.completion.0.tool_calls.0.name": "track",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"parcel": 7}',
        "gen_ai.usage.prompt_tokens": 12, "gen_ai.usage.completion_tokens": 5,
    }))
    assert (mapped.kind, mapped.model, mapped.provider) == ("llm", "gpt-4o-mini", "openai")
    assert mapped.input == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is parcel 7?"}]
    assert mapped.output["role"] == "assistant"
    assert mapped.output["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "track", "arguments": '{"parcel": 7}'}}]
    assert (mapped.input_tokens, mapped.output_tokens) == (12, 5)
    assert not any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in mapped.attributes)  # not stored twice


def test_openinference_retrieval_documents_become_the_output() -> None:
    mapped = map_span(span(new_trace_id(), new_span_id(), "retrieve", attributes={
        "openinference.span.kind": "RETRIEVER", "input.value": "refund policy",
        "retrieval.documents.0.document.id": "kb-12", "retrieval.documents.0.document.content": "Refunds take 5 days.",
        "retrieval.documents.0.document.score": 0.91,
        "retrieval.documents.0.document.metadata": '{"source": "help-center"}',
        "retrieval.documents.1.document.id": "kb-40", "retrieval.documents.1.document.content": "Returns are free.",
    }))
    assert mapped.kind == "retrieval" and mapped.input == "refund policy"
    assert mapped.output == [
        {"id": "kb-12", "content": "Refunds take 5 days.", "score": 0.91, "metadata": {"source": "help-center"}},
        {"id": "kb-40", "content": "Returns are free."},
    ]


def test_openinference_tool_calls_inside_flattened_messages() -> None:
    mapped = map_span(span(new_trace_id(), new_span_id(), "ChatCompletion", attributes={
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
        "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "Track parcel 7",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_9",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "track",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"parcel": 7}',
        "llm.token_count.prompt": 20, "llm.token_count.completion": 7,
    }))
    assert (mapped.kind, mapped.model) == ("llm", "gpt-4o")
    assert mapped.input == [{"role": "user", "content": "Track parcel 7"}]
    assert mapped.output["tool_calls"] == [
        {"id": "call_9", "type": "function", "function": {"name": "track", "arguments": '{"parcel": 7}'}}]
    assert mapped.cost_usd is not None and mapped.cost_usd > 0  # priced from the tokens: the sender gave none


def test_the_older_content_events_carry_prompt_and_completion() -> None:
    prompt = [{"role": "user", "content": "Hello"}]
    completion = [{"role": "assistant", "content": "Hi, how can I help?"}]
    mapped = map_span(span(new_trace_id(), new_span_id(), "chat", attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
    }, events=[("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps(prompt)}),
               ("gen_ai.content.completion", {"gen_ai.completion": json.dumps(completion)})]))
    assert mapped.input == prompt
    assert mapped.output == completion[0]
