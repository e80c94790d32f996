"""What an annotator reads for one trace: the conversation, the context it drew on, the tools it
called, and the answer (the text the "corrected output" box starts from).

The conversation is the one the model saw at its last LLM call (system prompt included) and its
answer; a trace without LLM spans shows its own input and output. Retrieved documents and tool
calls come from the trace's retrieval and tool spans, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from looplab.errors import NotFound
from looplab.explorer import TraceDetail, as_conversation, retrieved_documents, trace_detail
from looplab.explorer.render import Document, Message, pretty_json, preview_text

MAX_SPANS_READ = 2_000  # a labeling view is for readable traces; the explorer pages through giant ones


@dataclass(frozen=True)
class ToolUse:
    """One tool span: its name, what it was given and what it returned (or its error)."""

    name: str
    input: Any
    output: Any
    error: str | None


@dataclass(frozen=True)
class LabelingContent:
    """One trace, ready to read and label."""

    trace_id: str
    name: str
    detail: TraceDetail
    conversation: list[Message]
    input: Any  # the trace's own input and output, for when there is no conversation
    output: Any
    documents: list[Document]
    tools: list[ToolUse]
    answer_text: str  # the final answer as text: where a corrected output starts from

    @property
    def spans_cut(self) -> bool:
        return self.detail.span_count > len(self.detail.spans)


def labeling_content(url: str, trace_id: str) -> LabelingContent:
    """The readable content of ``trace_id``; ``NotFound`` if the trace is not stored (any more)."""
    detail = trace_detail(url, trace_id, span_limit=MAX_SPANS_READ, with_payloads=True)
    if detail is None:
        raise NotFound(f"Trace {trace_id} is not stored any more (pruned or deleted); skip this item.")
    documents: list[Document] = []
    tools: list[ToolUse] = []
    last_llm = None
    for span in sorted(detail.spans, key=lambda s: (s.start_ms, s.id)):
        payload = detail.payloads.get(span.id)
        if payload is None:
            continue
        if span.kind == "retrieval":
            documents.extend(retrieved_documents(payload.output))
        elif span.kind == "tool":
            tools.append(ToolUse(name=span.name, input=payload.input, output=payload.output, error=span.error))
        elif span.kind == "llm":
            last_llm = payload
    if last_llm is not None:
        conversation = as_conversation(last_llm.input) + as_conversation(last_llm.output)
        answer = last_llm.output
    else:
        conversation = as_conversation(detail.input) + as_conversation(detail.output)
        answer = detail.output
    return LabelingContent(
        trace_id=trace_id, name=detail.trace.name or "", detail=detail, conversation=conversation,
        input=detail.input, output=detail.output, documents=documents, tools=tools,
        answer_text=answer_text(answer if answer is not None else detail.output),
    )


def answer_text(payload: Any) -> str:
    """An answer as editable text: the assistant's words for a chat answer, the string for a
    string, readable JSON for anything else."""
    if payload is None:
        return ""
    if isinstance(payload, str):
        return payload
    replies = [m for m in as_conversation(payload) if m.role == "assistant" and m.text]
    if replies:
        return "\n\n".join(m.text for m in replies)
    text = preview_text(payload, limit=10_000) if isinstance(payload, dict) and len(payload) == 1 else None
    return text or pretty_json(payload)
