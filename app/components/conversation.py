"""Payloads shown readably: chat messages as a conversation, retrieved documents as blocks,
anything else as JSON.

Everything from a trace is shown as plain text (``st.text``, ``st.code``): LLM output is never
interpreted as Markdown or HTML, so a reply cannot inject links, images or markup into the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from components.formatting import plain
from looplab.explorer import as_conversation, pretty_json, retrieved_documents
from looplab.explorer.render import Message

ROLE_AVATARS = {"system": ":material/settings:", "developer": ":material/code:", "tool": ":material/build:",
                "user": "user", "assistant": "assistant"}
FOLD_INSTRUCTIONS_OVER = 400  # characters


def payload_view(title: str, payload: Any, *, kind: str, output: bool = False) -> None:
    """``payload`` under a bold ``title``: a conversation, retrieved documents, or JSON."""
    st.markdown(f"**{title}**")
    if payload is None:
        st.caption("(nothing stored)")
        return
    if kind == "retrieval" and output:
        documents = retrieved_documents(payload)
        if documents:
            for number, doc in enumerate(documents, 1):
                score = f" · score {doc.score:.3f}" if doc.score is not None else ""
                with st.expander(plain(f"{number}. {doc.title or doc.id or doc.source or 'document'}{score}"),
                                 expanded=number == 1):
                    st.text(doc.text)
                    if doc.source:
                        st.caption(plain(doc.source))
            return
    messages = as_conversation(payload) if kind in ("llm", "trace") or not isinstance(payload, (dict, list)) else []
    if messages:
        show_conversation(messages)
        return
    st.code(pretty_json(payload), language="json", wrap_lines=True)


def show_conversation(messages: Sequence[Message]) -> None:
    """Messages as chat bubbles; long system prompts folded, tool calls as JSON blocks."""
    for message in messages:
        if message.role in ("system", "developer") and len(message.text) > FOLD_INSTRUCTIONS_OVER:
            # Long instructions repeat on every call; folded, the conversation stays readable.
            with st.expander(f"{message.role.capitalize()} prompt ({len(message.text):,} characters)"):
                st.text(message.text)
            continue
        with st.chat_message(message.role, avatar=ROLE_AVATARS.get(message.role, ":material/chat:")):
            if message.kind == "thinking":
                st.caption("thinking")
            elif message.kind == "tool_result":
                st.caption(plain(f"tool result{f' for {message.tool_call_id}' if message.tool_call_id else ''}"))
            if message.text:
                st.text(message.text)
            for call in message.tool_calls:
                st.caption(f"calls tool **{plain(call.name)}**")
                st.code(call.arguments, language="json", wrap_lines=True)
