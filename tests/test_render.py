"""Stored payloads as displayable parts: conversations of each SDK's shape, retrieved documents,
previews; malformed, huge and odd inputs never raise."""

from __future__ import annotations

import json

import pytest

from looplab.explorer.render import (
    Document,
    Message,
    ToolCall,
    as_conversation,
    pretty_json,
    preview_json_text,
    preview_text,
    retrieved_documents,
)


def roles(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.role, m.kind) for m in messages]


# --- OpenAI chat ---------------------------------------------------------------------------------


def test_openai_chat_messages_with_content_parts_tool_calls_and_results() -> None:
    payload = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "cat"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "assistant", "content": "A cat.", "refusal": None},
    ]
    messages = as_conversation(payload)
    assert roles(messages) == [("system", "message"), ("user", "message"), ("assistant", "message"),
                               ("tool", "tool_result"), ("assistant", "message")]
    assert messages[1].text == "What is in this picture?\n[image]"
    assert messages[2].tool_calls == (ToolCall(name="lookup", arguments='{\n  "q": "cat"\n}', id="call_1"),)
    assert messages[3].tool_call_id == "call_1" and messages[3].text == "a cat"
    assert messages[4].text == "A cat."


def test_looplab_stored_llm_output_and_chat_completion_response() -> None:
    stored = {"role": "assistant", "content": None,
              "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Oslo"}}]}
    [message] = as_conversation(stored)
    assert message.role == "assistant" and message.tool_calls[0].name == "get_weather"
    assert json.loads(message.tool_calls[0].arguments) == {"city": "Oslo"}
    response = {"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "Hi!"}}]}
    assert as_conversation(response) == [Message(role="assistant", text="Hi!")]


def test_refusal_and_legacy_function_call() -> None:
    [refused] = as_conversation({"role": "assistant", "content": None, "refusal": "I can't help with that."})
    assert refused.text == "[refusal] I can't help with that."
    [legacy] = as_conversation({"role": "assistant", "content": "",
                                "function_call": {"name": "f", "arguments": "not json"}})
    assert legacy.tool_calls == (ToolCall(name="f", arguments="not json"),)


# --- OpenAI Responses ----------------------------------------------------------------------------


def test_responses_api_input_items_and_response_object() -> None:
    given = {"instructions": "Be brief.", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {"type": "function_call", "call_id": "fc_1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": "fc_1", "output": "18C"},
    ]}
    messages = as_conversation(given)
    assert roles(messages) == [("system", "message"), ("user", "message"), ("assistant", "message"),
                               ("tool", "tool_result")]
    assert messages[0].text == "Be brief." and messages[1].text == "Weather in Paris?"
    assert messages[2].tool_calls[0].id == "fc_1" and messages[3].text == "18C"

    response = {"object": "response", "output": [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Think about Paris."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is 18C."}]},
    ]}
    thinking, answer = as_conversation(response)
    assert (thinking.kind, thinking.text) == ("thinking", "Think about Paris.")
    assert (answer.role, answer.text) == ("assistant", "It is 18C.")


def test_responses_input_as_stored_by_the_wrapper() -> None:
    # wrap_openai stores responses.create's input as a list: instructions first, then the items.
    stored = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"},
              {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi"}]}]
    assert [(m.role, m.text) for m in as_conversation(stored)] == [
        ("system", "Be brief."), ("user", "Hello"), ("assistant", "Hi")]


# --- Anthropic -----------------------------------------------------------------------------------


def test_anthropic_request_with_system_blocks_tool_use_results_and_thinking() -> None:
    request = {
        "system": [{"type": "text", "text": "You are a travel agent."}],
        "messages": [
            {"role": "user", "content": "Book Rome."},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Need dates.", "signature": "sig=="},
                {"type": "text", "text": "Checking flights."},
                {"type": "tool_use", "id": "toolu_1", "name": "flights", "input": {"to": "FCO"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "3 flights"}]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "timeout", "is_error": True},
                {"type": "text", "text": "Pick the cheapest."},
            ]},
        ],
    }
    messages = as_conversation(request)
    assert roles(messages) == [("system", "message"), ("user", "message"), ("assistant", "thinking"),
                               ("assistant", "message"), ("tool", "tool_result"), ("tool", "tool_result"),
                               ("user", "message")]
    assert messages[0].text == "You are a travel agent."
    assert messages[2].text == "Need dates."
    assert messages[3].text == "Checking flights."
    assert messages[3].tool_calls == (ToolCall(name="flights", arguments='{\n  "to": "FCO"\n}', id="toolu_1"),)
    assert (messages[4].tool_call_id, messages[4].text) == ("toolu_1", "3 flights")
    assert messages[5].text == "[error] timeout"
    assert messages[6].text == "Pick the cheapest."


def test_anthropic_input_as_stored_by_the_wrapper_and_a_response_message() -> None:
    stored = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    assert [(m.role, m.text) for m in as_conversation(stored)] == [("system", "Be kind."), ("user", "Hi")]
    response = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                "content": [{"type": "text", "text": "Hello"}, {"type": "redacted_thinking", "data": "xx"}]}
    assert [(m.kind, m.text) for m in as_conversation(response)] == [("message", "Hello"),
                                                                     ("thinking", "[redacted thinking]")]


# --- not conversations, malformed, huge ----------------------------------------------------------


@pytest.mark.parametrize("payload", [
    None, "", "plain text", "{not json", '{"role": ', 12, 3.5, True, [], {}, [1, 2, 3], ["a", "b"],
    {"question": "hi"}, [{"a": 1}], {"messages": "nope"}, {"choices": []}, object(), b"\xff\xfe", float("nan"),
    [{"role": None, "content": {"weird": [1, {"x": None}]}}],
])
def test_odd_payloads_never_raise(payload: object) -> None:
    assert isinstance(as_conversation(payload), list)
    assert isinstance(retrieved_documents(payload), list)
    assert isinstance(preview_text(payload), str)
    assert isinstance(pretty_json(payload), str)


def test_not_a_conversation_is_empty() -> None:
    assert as_conversation({"question": "hi"}) == []
    assert as_conversation([{"id": 1}, {"id": 2}]) == []
    assert as_conversation("just words") == []


def test_json_in_a_string_is_read() -> None:
    text = json.dumps([{"role": "user", "content": "from a string"}])
    assert as_conversation(text) == [Message(role="user", text="from a string")]


def test_odd_roles_and_content_types_become_text() -> None:
    [message] = as_conversation([{"role": "human", "content": {"type": "text", "text": "hey"}}])
    assert (message.role, message.text) == ("user", "hey")
    [message] = as_conversation([{"role": "model", "parts": [{"text": "gemini says"}]}])
    assert (message.role, message.text) == ("assistant", "gemini says")
    [message] = as_conversation([{"role": "user", "content": 42}])
    assert message.text == "42"


def test_huge_payloads_are_cut_with_a_marker() -> None:
    messages = as_conversation([{"role": "user", "content": "x" * 100_000}] * 600)
    assert len(messages) == 501
    assert messages[-1].text == "[… 100 more messages]"
    assert messages[0].text.endswith("…[truncated 80,000 chars]") and len(messages[0].text) < 20_100
    assert len(pretty_json({"k": "y" * 200_000})) < 50_100
    assert len(preview_text("z" * 1_000_000)) == 200


def test_deeply_nested_payload() -> None:
    nested: object = "bottom"
    for _ in range(5000):
        nested = {"a": nested}
    assert isinstance(preview_text(nested), str)
    assert isinstance(pretty_json(nested), str)
    assert as_conversation(nested) == []


# --- retrieved documents -------------------------------------------------------------------------


def test_documents_in_common_shapes() -> None:
    plain = [{"id": "d1", "title": "Refunds", "text": "Refunds take 5 days.", "score": 0.91},
             {"id": "d2", "content": "Shipping is free.", "source": "faq.md", "relevance_score": 0.5}]
    assert retrieved_documents(plain) == [
        Document(text="Refunds take 5 days.", title="Refunds", id="d1", score=0.91),
        Document(text="Shipping is free.", id="d2", source="faq.md", score=0.5),
    ]
    langchain = [{"page_content": "Chunk one", "metadata": {"source": "a.pdf", "page": 3, "score": 0.7}}]
    assert retrieved_documents(langchain) == [Document(text="Chunk one", source="a.pdf", score=0.7)]
    pinecone = {"matches": [{"id": "v1", "score": 0.8, "metadata": {"text": "vector text", "title": "T"}}]}
    assert retrieved_documents(pinecone) == [Document(text="vector text", title="T", id="v1", score=0.8)]
    chroma = {"ids": [["c1", "c2"]], "documents": [["first", "second"]], "distances": [[0.1, 0.4]],
              "metadatas": [[{"source": "x"}, None]]}
    assert retrieved_documents(chroma) == [Document(text="first", id="c1", source="x", score=0.1),
                                           Document(text="second", id="c2", score=0.4)]
    assert retrieved_documents(["one", "two"]) == [Document(text="one"), Document(text="two")]
    assert retrieved_documents(json.dumps(plain))[0].title == "Refunds"


def test_what_is_not_documents() -> None:
    assert retrieved_documents([{"role": "user", "content": "hi"}]) == []
    assert retrieved_documents({"status": "ok"}) == []
    assert retrieved_documents([1, 2]) == []
    assert retrieved_documents("no docs") == []


def test_many_documents_are_cut() -> None:
    docs = retrieved_documents([{"text": "t" * 30_000}] * 250)
    assert len(docs) == 201 and docs[-1].text == "[… 50 more documents]"
    assert docs[0].text.endswith("…[truncated 10,000 chars]")


# --- previews ------------------------------------------------------------------------------------


def test_previews_pick_what_a_person_wants_to_read() -> None:
    chat = [{"role": "system", "content": "long system prompt"}, {"role": "user", "content": "Where is my order?"},
            {"role": "assistant", "content": "Shipped."}, {"role": "tool", "content": "{}"}]
    assert preview_text(chat) == "Where is my order?"
    assert preview_text({"role": "assistant", "content": "It shipped."}) == "It shipped."
    tool_only = {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "name": "track", "arguments": "{}"}]}
    assert preview_text(tool_only) == "→ track({})"
    assert preview_text({"question": "Why?", "context": "..."}) == "Why?"
    assert preview_text({"a": 1, "b": "two"}) == "a: 1; b: two"
    assert preview_text("  many\n\nlines\tand   spaces ") == "many lines and spaces"
    assert preview_text(None) == ""
    assert preview_text(["x", "y"]) == "x | y"
    assert preview_text([{"text": "doc one"}, {"text": "doc two"}]) == "doc one | doc two"
    assert preview_text("a" * 300, limit=10) == "aaaaaaaaa…"


def test_preview_of_cut_off_json_text() -> None:
    whole = json.dumps([{"role": "system", "content": "S" * 50}, {"role": "user", "content": "the question"}])
    assert preview_json_text(whole) == "the question"
    head = whole[:40]  # cut inside the system prompt
    assert preview_json_text(head).startswith("SSSS")
    tail = whole[-60:]
    assert preview_json_text(head, tail) == "the question"
    assert preview_json_text('"just a string"') == "just a string"
    assert preview_json_text(None) == ""
    assert preview_json_text("{broken", "also broken}") == "{broken"
    assert preview_text('{"question": "cut of') == "cut of"
