"""Stored payloads as displayable parts: conversations, retrieved documents, one-line previews.

Pure functions, no Streamlit and no database. They take whatever a span or trace stored (OpenAI
chat messages, Responses API items, Anthropic messages with content blocks, retrieval results,
any JSON, a string that may or may not be JSON, or something malformed) and never raise:
what they do not recognise they return empty (``as_conversation``, ``retrieved_documents``) or as
text (``preview_text``, ``pretty_json``). Everything returned is plain text; the page shows it as
text, never as HTML or Markdown. Huge values are cut with a marker saying how much was left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

MAX_TEXT_CHARS = 20_000  # one message's text or one document's text
MAX_MESSAGES = 500
MAX_DOCUMENTS = 200
MAX_JSON_CHARS = 50_000
PREVIEW_CHARS = 200

_ROLE_ALIASES = {"human": "user", "ai": "assistant", "model": "assistant", "bot": "assistant", "function": "tool"}
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text", "summary_text", "reasoning_text"})
_PREVIEW_KEYS = ("question", "query", "input", "prompt", "user_input", "message", "text", "content", "answer",
                 "output", "result", "response", "completion", "summary")
_DOC_TEXT_KEYS = ("page_content", "text", "content", "document", "chunk", "body", "snippet", "passage")
_DOC_LIST_KEYS = ("documents", "docs", "results", "matches", "hits", "chunks", "contexts", "context", "sources",
                  "nodes", "source_nodes", "data")
_DOC_SCORE_KEYS = ("score", "relevance_score", "similarity", "_score", "rerank_score", "distance")


@dataclass(frozen=True)
class ToolCall:
    """A tool (function) the model asked to run, with its arguments as (pretty) text."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True)
class Message:
    """One turn of a conversation as text.

    ``role`` is ``system``, ``developer``, ``user``, ``assistant`` or ``tool`` (another role string
    is kept as given). ``kind`` is ``message``, ``thinking`` (a model's reasoning) or
    ``tool_result`` (the output of a tool call, ``tool_call_id`` naming the call it answers).
    """

    role: str
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    kind: str = "message"
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Document:
    """One retrieved document or chunk."""

    text: str
    title: str | None = None
    id: str | None = None
    source: str | None = None
    score: float | None = None


# --- small helpers ---------------------------------------------------------------------------------


def truncate(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` cut to ``limit`` characters with a marker saying how many were left out."""
    if limit < 0 or len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit:,} chars]"


def _as_text(value: Any) -> str:
    """Any value as text: strings as they are, everything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except Exception:
        return _safe_repr(value)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _loads(value: Any) -> Any:
    """``value`` parsed when it is a string holding a JSON object or array; else ``value`` itself."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8", "replace")
        except Exception:
            return value
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                return orjson.loads(stripped)
            except Exception:
                return value
    return value


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else _as_text(value)


def _is_seq(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def pretty_json(payload: Any, max_chars: int = MAX_JSON_CHARS) -> str:
    """``payload`` as indented JSON text (a string that is JSON is re-indented, other strings kept)."""
    try:
        value = _loads(payload)
        if isinstance(value, str):
            return truncate(value, max_chars)
        try:
            text = orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
        except Exception:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        return truncate(text, max_chars)
    except Exception:
        return truncate(_safe_repr(payload), max_chars)


def _arguments_text(arguments: Any, limit: int) -> str:
    value = _loads(arguments)
    if isinstance(value, (dict, list)):
        return pretty_json(value, limit)
    return truncate(_as_text(value), limit)


# --- conversations ---------------------------------------------------------------------------------


def as_conversation(payload: Any, *, max_chars: int = MAX_TEXT_CHARS, max_messages: int = MAX_MESSAGES) -> list[Message]:
    """The messages a payload holds, in order; ``[]`` when it is not a conversation.

    Recognised: OpenAI chat messages (string or content-part content, ``tool_calls``, ``tool``
    results, refusals) and chat completion responses (``choices``); OpenAI Responses API input
    and output items (``message``, ``function_call``, ``function_call_output``, ``reasoning``)
    and response objects (``output``); Anthropic requests (``system`` + ``messages``) and
    messages with content blocks (``text``, ``tool_use``, ``tool_result``, ``thinking``); looplab's
    own stored LLM outputs (``{"role": "assistant", "content": ..., "tool_calls": [...]}``); a
    dict with a ``messages`` list. Each text is cut at ``max_chars`` and the list at
    ``max_messages`` (a last ``[… N more messages]`` message says so).
    """
    try:
        messages = _conversation(_loads(payload), max_chars)
    except Exception:
        return []
    if len(messages) > max_messages:
        hidden = len(messages) - max_messages
        messages = [*messages[:max_messages], Message(role="system", text=f"[… {hidden:,} more messages]")]
    return messages


def _conversation(value: Any, limit: int) -> list[Message]:
    if isinstance(value, Mapping):
        return _conversation_from_dict(value, limit)
    if _is_seq(value) and value and all(isinstance(item, Mapping) for item in value):
        items = list(value)
        if not any(_looks_like_item(item) for item in items):
            return []
        messages: list[Message] = []
        for item in items:
            messages.extend(_item_messages(item, limit))
        return messages
    return []


def _looks_like_item(item: Mapping[str, Any]) -> bool:
    if isinstance(item.get("role"), str) and ("content" in item or "tool_calls" in item or "parts" in item):
        return True
    return item.get("type") in ("message", "function_call", "function_call_output", "reasoning",
                                "custom_tool_call", "custom_tool_call_output")


def _conversation_from_dict(value: Mapping[str, Any], limit: int) -> list[Message]:
    # A chat completion response.
    choices = value.get("choices")
    if _is_seq(choices) and choices and isinstance(choices[0], Mapping) and isinstance(choices[0].get("message"), Mapping):
        return _item_messages(choices[0]["message"], limit)
    # A request: Anthropic's system + messages, or any {"messages": [...]}.
    messages = value.get("messages")
    if _is_seq(messages):
        out: list[Message] = []
        system = value.get("system")
        if system:
            out.append(_message_from_content("system", system, limit))
        instructions = value.get("instructions")
        if isinstance(instructions, str) and instructions:
            out.append(Message(role="system", text=truncate(instructions, limit)))
        for item in messages:
            if isinstance(item, Mapping):
                out.extend(_item_messages(item, limit))
            elif isinstance(item, str):
                out.append(Message(role="user", text=truncate(item, limit)))
        return out
    # A Responses API response object, or a request with "input".
    output = value.get("output")
    if value.get("object") == "response" or (_is_seq(output) and output and isinstance(output[0], Mapping)
                                            and "type" in output[0]):
        out = []
        for item in output or ():
            if isinstance(item, Mapping):
                out.extend(_item_messages(item, limit, default_role="assistant"))
        if not out and isinstance(value.get("output_text"), str):
            out.append(Message(role="assistant", text=truncate(value["output_text"], limit)))
        return out
    given = value.get("input")
    if "instructions" in value or (_is_seq(given) and given and isinstance(given[0], Mapping) and _looks_like_item(given[0])):
        out = []
        instructions = value.get("instructions")
        if isinstance(instructions, str) and instructions:
            out.append(Message(role="system", text=truncate(instructions, limit)))
        if isinstance(given, str):
            out.append(Message(role="user", text=truncate(given, limit)))
        elif _is_seq(given):
            for item in given:
                if isinstance(item, Mapping):
                    out.extend(_item_messages(item, limit))
        return out
    # One message (an Anthropic response, looplab's stored output, a single chat message).
    if _looks_like_item(value):
        return _item_messages(value, limit)
    return []


def _role(value: Any, default: str) -> str:
    if not isinstance(value, str) or not value:
        return default
    role = value.lower()
    return _ROLE_ALIASES.get(role, role)


def _item_messages(item: Mapping[str, Any], limit: int, default_role: str = "user") -> list[Message]:
    """The messages of one chat message, Responses item or Anthropic message."""
    item_type = item.get("type")
    if item_type in ("function_call", "custom_tool_call"):
        call = ToolCall(name=_as_text(item.get("name")) or "tool", id=_str_or_none(item.get("call_id") or item.get("id")),
                        arguments=_arguments_text(item.get("arguments", item.get("input")), limit))
        return [Message(role="assistant", tool_calls=(call,))]
    if item_type in ("function_call_output", "custom_tool_call_output"):
        return [Message(role="tool", kind="tool_result", tool_call_id=_str_or_none(item.get("call_id")),
                        text=truncate(_content_text(item.get("output")), limit))]
    if item_type == "reasoning":
        text = _content_text(item.get("summary")) or _content_text(item.get("content"))
        return [Message(role="assistant", kind="thinking", text=truncate(text, limit))] if text else []
    role = _role(item.get("role"), default_role)
    content = item.get("content", item.get("parts"))
    if role == "tool":
        return [Message(role="tool", kind="tool_result", tool_call_id=_str_or_none(item.get("tool_call_id")),
                        name=_str_or_none(item.get("name")), text=truncate(_content_text(content), limit))]
    messages = _messages_from_blocks(role, content, limit) if _is_seq(content) else [
        _message_from_content(role, content, limit)]
    calls = tuple(_tool_calls(item.get("tool_calls"), limit))
    function_call = item.get("function_call")  # the legacy OpenAI shape
    if isinstance(function_call, Mapping):
        calls += (ToolCall(name=_as_text(function_call.get("name")) or "function",
                           arguments=_arguments_text(function_call.get("arguments"), limit)),)
    refusal = item.get("refusal")
    if calls or refusal:
        last = messages[-1] if messages and messages[-1].kind == "message" and messages[-1].role == role else None
        text = last.text if last else ""
        if isinstance(refusal, str) and refusal:
            text = f"{text}\n[refusal] {refusal}".strip()
        merged = Message(role=role, text=text, tool_calls=(*(last.tool_calls if last else ()), *calls),
                         name=last.name if last else _str_or_none(item.get("name")))
        messages = [*messages[:-1], merged] if last else [*messages, merged]
    if not messages:
        messages = [Message(role=role, name=_str_or_none(item.get("name")))]
    return messages


def _message_from_content(role: str, content: Any, limit: int) -> Message:
    if _is_seq(content):
        parts = _messages_from_blocks(role, content, limit)
        return Message(role=role, text="\n".join(m.text for m in parts if m.text)) if parts else Message(role=role)
    return Message(role=role, text=truncate(_content_text(content), limit))


def _messages_from_blocks(role: str, blocks: Sequence[Any], limit: int) -> list[Message]:
    """Content parts or blocks: consecutive text joins one message; tool uses, tool results and
    thinking become their own."""
    out: list[Message] = []
    texts: list[str] = []
    calls: list[ToolCall] = []

    def flush() -> None:
        if texts or calls:
            out.append(Message(role=role, text=truncate("\n".join(texts), limit), tool_calls=tuple(calls)))
            texts.clear()
            calls.clear()

    for block in blocks:
        if isinstance(block, str):
            texts.append(block)
            continue
        if not isinstance(block, Mapping):
            texts.append(_as_text(block))
            continue
        kind = block.get("type")
        if kind == "tool_use" or kind == "server_tool_use":
            calls.append(ToolCall(name=_as_text(block.get("name")) or "tool", id=_str_or_none(block.get("id")),
                                  arguments=_arguments_text(block.get("input"), limit)))
        elif kind == "tool_result" or kind == "function_call_output":
            flush()
            text = _content_text(block.get("content", block.get("output")))
            if block.get("is_error"):
                text = f"[error] {text}"
            out.append(Message(role="tool", kind="tool_result", text=truncate(text, limit),
                               tool_call_id=_str_or_none(block.get("tool_use_id") or block.get("call_id"))))
        elif kind in ("thinking", "redacted_thinking", "reasoning"):
            flush()
            text = block.get("thinking") or _content_text(block.get("summary")) or (
                "[redacted thinking]" if kind == "redacted_thinking" else "")
            out.append(Message(role=role, kind="thinking", text=truncate(_as_text(text), limit)))
        elif kind == "function_call":
            calls.append(ToolCall(name=_as_text(block.get("name")) or "tool", id=_str_or_none(block.get("call_id")),
                                  arguments=_arguments_text(block.get("arguments"), limit)))
        else:
            text = _part_text(block)
            if text:
                texts.append(text)
    flush()
    return out


def _part_text(part: Mapping[str, Any]) -> str:
    """The text of one content part; a placeholder for images, audio and files."""
    kind = part.get("type")
    if kind in _TEXT_PART_TYPES or (kind is None and "text" in part):
        text = part.get("text")
        return text if isinstance(text, str) else _as_text(text)
    if kind == "refusal":
        return f"[refusal] {_as_text(part.get('refusal'))}"
    if kind in ("image_url", "input_image", "image"):
        source = part.get("image_url") or part.get("source") or {}
        url = source.get("url") if isinstance(source, Mapping) else source
        if isinstance(url, str) and url and not url.startswith("data:"):
            return f"[image: {url[:200]}]"
        return "[image]"
    if kind in ("input_audio", "audio"):
        return "[audio]"
    if kind in ("file", "input_file", "document"):
        file = part.get("file")
        name = part.get("filename") or part.get("title") or (file.get("filename") if isinstance(file, Mapping) else None)
        return f"[file: {_as_text(name)}]" if name else "[file]"
    if "text" in part and isinstance(part["text"], str):
        return part["text"]
    if "content" in part:
        return _content_text(part["content"])
    return _as_text(part)


def _content_text(content: Any) -> str:
    """A content value (string, parts, blocks, anything) as text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if _is_seq(content):
        pieces = []
        for part in content:
            if isinstance(part, Mapping):
                pieces.append(_part_text(part))
            else:
                pieces.append(_as_text(part))
        return "\n".join(p for p in pieces if p)
    if isinstance(content, Mapping):
        return _part_text(content)
    return _as_text(content)


def _tool_calls(calls: Any, limit: int) -> list[ToolCall]:
    if not _is_seq(calls):
        return []
    out = []
    for call in calls:
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        if isinstance(function, Mapping):  # the SDK's shape
            name, arguments = function.get("name"), function.get("arguments")
        else:  # looplab's stored shape
            name, arguments = call.get("name"), call.get("arguments", call.get("input"))
        out.append(ToolCall(name=_as_text(name) or "tool", id=_str_or_none(call.get("id")),
                            arguments=_arguments_text(arguments, limit)))
    return out


# --- retrieved documents ---------------------------------------------------------------------------


def retrieved_documents(payload: Any, *, max_chars: int = MAX_TEXT_CHARS,
                        max_documents: int = MAX_DOCUMENTS) -> list[Document]:
    """The documents a retrieval step returned; ``[]`` when the payload is not a list of them.

    Recognised: a list of dicts with a text field (``page_content``, ``text``, ``content``,
    ``document``, ``chunk``...) and optional ``title``/``name``, ``id``, ``source``/``url`` and
    ``score``/``relevance_score``/``similarity``/``distance`` (also inside ``metadata``, as
    LangChain and vector stores put them); a list of strings; such a list under a key like
    ``documents``, ``results``, ``matches`` or ``hits``; Chroma's column-wise ``{"ids",
    "documents", "distances", "metadatas"}``. At most ``max_documents`` (a last document says how
    many more there were), each text cut at ``max_chars``.
    """
    try:
        docs = _documents(_loads(payload), max_chars, depth=0)
    except Exception:
        return []
    if docs is None:
        return []
    if len(docs) > max_documents:
        hidden = len(docs) - max_documents
        docs = [*docs[:max_documents], Document(text=f"[… {hidden:,} more documents]")]
    return docs


def _documents(value: Any, limit: int, depth: int) -> list[Document] | None:
    if depth > 3:
        return None
    if isinstance(value, Mapping):
        columns = _chroma(value, limit)
        if columns is not None:
            return columns
        for key in _DOC_LIST_KEYS:
            if key in value:
                found = _documents(value[key], limit, depth + 1)
                if found:
                    return found
        single = _document(value, limit)
        return [single] if single is not None else None
    if not _is_seq(value) or not value:
        return None
    items = list(value)
    if all(isinstance(item, str) for item in items):
        return [Document(text=truncate(item, limit)) for item in items]
    if not all(isinstance(item, Mapping) for item in items):
        return None
    docs = [_document(item, limit) for item in items]
    if not any(d is not None for d in docs):
        return None
    return [d if d is not None else Document(text=truncate(_as_text(item), limit)) for d, item in zip(docs, items)]


def _document(item: Mapping[str, Any], limit: int) -> Document | None:
    if _looks_like_item(item) and "role" in item:
        return None  # a chat message, not a document
    metadata = item.get("metadata") if isinstance(item.get("metadata"), Mapping) else {}
    text = None
    for where in (item, metadata):
        for key in _DOC_TEXT_KEYS:
            value = where.get(key)
            if isinstance(value, str):
                text = value
                break
            if isinstance(value, Mapping) and isinstance(value.get("text"), str):
                text = value["text"]
                break
        if text is not None:
            break
    if text is None:
        return None

    def first(*keys: str) -> str | None:
        for where in (item, metadata):
            for key in keys:
                value = where.get(key)
                if value not in (None, "") and not isinstance(value, (Mapping, list)):
                    return _as_text(value)
        return None

    score = None
    for where in (item, metadata):
        for key in _DOC_SCORE_KEYS:
            value = where.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                score = float(value)
                break
        if score is not None:
            break
    return Document(text=truncate(text, limit), title=first("title", "name", "heading"),
                    id=first("id", "doc_id", "document_id", "_id", "chunk_id"),
                    source=first("source", "url", "uri", "path", "file_name", "filename"), score=score)


def _chroma(value: Mapping[str, Any], limit: int) -> list[Document] | None:
    texts = value.get("documents")
    if not _is_seq(texts) or not texts:
        return None
    if _is_seq(texts[0]):  # one list per query: show the first query's
        texts = texts[0]

    def column(name: str) -> list[Any]:
        data = value.get(name)
        if not _is_seq(data):
            return []
        return list(data[0]) if data and _is_seq(data[0]) else list(data)

    if not all(isinstance(t, str) or t is None for t in texts):
        return None
    ids, scores, metas = column("ids"), column("distances") or column("scores"), column("metadatas")
    docs = []
    for index, text in enumerate(texts):
        meta = metas[index] if index < len(metas) and isinstance(metas[index], Mapping) else {}
        score = scores[index] if index < len(scores) else None
        docs.append(Document(
            text=truncate(text or "", limit), id=_str_or_none(ids[index]) if index < len(ids) else None,
            title=_str_or_none(meta.get("title")), source=_str_or_none(meta.get("source")),
            score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None))
    return docs


# --- previews --------------------------------------------------------------------------------------


def preview_text(payload: Any, limit: int = PREVIEW_CHARS) -> str:
    """A one-line preview of a payload: the words a person would want to see in a list.

    A conversation shows its last user message (or, for a model's answer, the answer or the tool
    it called); a dict shows its most telling field (``question``, ``query``, ``input``, ...);
    a string that is JSON is read as JSON, even when it was cut off. Whitespace is collapsed and
    the text cut at ``limit`` characters with ``…``.
    """
    try:
        text = _preview(payload, depth=0)
    except Exception:
        text = _safe_repr(payload)
    return _one_line(text, limit)


def preview_json_text(head: str | None, tail: str | None = None, limit: int = PREVIEW_CHARS) -> str:
    """A preview of stored JSON text read only in part: its start (``head``, maybe cut off) and,
    for long values, its end (``tail``), as the list of traces reads them to stay fast."""
    try:
        if head is None:
            return ""
        if tail is None:
            try:
                return _one_line(_preview(orjson.loads(head), depth=0), limit)
            except Exception:
                pass
        text = ""
        if tail:
            text = _lenient_preview(tail, from_tail=True)
        if not text:
            text = _lenient_preview(head, from_tail=False)
        return _one_line(text or head, limit)
    except Exception:
        return _one_line(_safe_repr(head), limit)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        return text[: max(limit - 1, 0)].rstrip() + "…"
    return text


def _preview(value: Any, depth: int) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, bytes, bytearray)):
        value = _loads(value)
        if isinstance(value, str):
            stripped = value.lstrip()
            if stripped[:1] in ("{", "[") and len(stripped) > 1:  # JSON that does not parse: cut off?
                return _lenient_preview(stripped, from_tail=False) or value
            return value
        if not isinstance(value, (dict, list)):
            return _as_text(value)
    if isinstance(value, (bool, int, float)):
        return _as_text(value)
    if depth > 4:
        return _as_text(value)[:1000]
    messages = as_conversation(value, max_chars=2000, max_messages=10_000)
    if messages:
        return _conversation_preview(messages)
    if isinstance(value, Mapping):
        for key in _PREVIEW_KEYS:
            if key in value and value[key] not in (None, "", [], {}):
                return _preview(value[key], depth + 1)
        scalars = [f"{k}: {_as_text(v)}" for k, v in value.items() if isinstance(v, (str, int, float, bool))]
        if scalars:
            return "; ".join(scalars[:8])
        return _as_text(value)[:1000]
    if _is_seq(value):
        docs = retrieved_documents(value, max_chars=1000, max_documents=3)
        if docs:
            return " | ".join(d.text for d in docs if d.text)
        if all(isinstance(v, (str, int, float, bool)) for v in value[:20]):
            return " | ".join(_as_text(v) for v in value[:20])
        return _as_text(list(value[:20]))[:1000]
    return _as_text(value)[:1000]


def _conversation_preview(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user" and message.kind == "message" and message.text:
            return message.text
    for message in reversed(messages):
        if message.kind != "message":
            continue
        if message.text:
            return message.text
        if message.tool_calls:
            return ", ".join(f"→ {c.name}({_one_line(c.arguments, 80)})" for c in message.tool_calls)
    for message in reversed(messages):
        if message.text:
            return message.text
    return ""


# A JSON string literal, maybe cut off at the end, and whether a ':' follows it (then it is a key).
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)("\s*:?|\\?$)', re.DOTALL)
_TEXT_KEYS = frozenset({"content", "text", "question", "query", "input", "prompt", "message", "answer", "output",
                        "result", "response", "completion", "thinking", "arguments", "page_content"})
_SKIP_VALUES = frozenset({"user", "assistant", "system", "tool", "developer", "text", "message", "input_text",
                          "output_text", "function", "tool_use", "tool_result", "function_call"})


def _unescape(raw: str) -> str:
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def _lenient_preview(text: str, from_tail: bool) -> str:
    """The most telling string value in JSON text that does not parse (it was cut off).

    From the end of a long value: the text after the last ``"role": "user"`` (a chat's last
    question), else the last long text value. From the start: the first text value.
    """
    pairs: list[tuple[str | None, str]] = []  # (key, value) in order
    key: str | None = None
    start = 0
    if from_tail:  # the cut may fall inside a string: start after the first quote that ends one
        first = text.find('"')
        start = first + 1 if first >= 0 else len(text)
    for match in _STRING.finditer(text, start):
        raw, end = match.group(1), match.group(2)
        if end.endswith(":"):
            key = _unescape(raw)
            continue
        pairs.append((key, _unescape(raw)))
        key = None
    if from_tail:
        for index in range(len(pairs) - 1, -1, -1):
            if pairs[index] == ("role", "user"):
                for k, value in pairs[index + 1:]:
                    if k in _TEXT_KEYS and value:
                        return value
        for k, value in reversed(pairs):
            if k in _TEXT_KEYS and len(value) > 20:
                return value
        return ""
    for k, value in pairs:
        if k in _TEXT_KEYS and value and value not in _SKIP_VALUES:
            return value
    for k, value in pairs:
        if value and value not in _SKIP_VALUES and k not in ("role", "type", "id"):
            return value
    return ""
