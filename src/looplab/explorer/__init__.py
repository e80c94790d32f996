"""The trace explorer: list, search and open traces (``traces``), and turn stored payloads into
displayable text (``render``). The Traces page calls these; it holds no SQL."""

from looplab.explorer.render import (
    Document,
    Message,
    ToolCall,
    as_conversation,
    pretty_json,
    preview_text,
    retrieved_documents,
)
from looplab.explorer.traces import (
    SORT_KEYS,
    ScoreRow,
    ScoreSummary,
    SpanPayload,
    SpanRow,
    TraceDetail,
    TracePage,
    TraceRow,
    TreeNode,
    list_traces,
    search_index_available,
    span_payload,
    span_tree,
    trace_detail,
    update_search_index,
)

__all__ = [
    "SORT_KEYS", "Document", "Message", "ScoreRow", "ScoreSummary", "SpanPayload", "SpanRow", "ToolCall",
    "TraceDetail", "TracePage", "TraceRow", "TreeNode", "as_conversation", "list_traces", "pretty_json",
    "preview_text", "retrieved_documents", "search_index_available", "span_payload", "span_tree", "trace_detail",
    "update_search_index",
]
