"""What the caller's thread hands to the writer: small records holding references, not rows.

Everything costly (serialising payloads, reading usage from SDK objects, pricing, redaction) is
left to the writer thread; the caller only fills a few slots.
"""

from __future__ import annotations

from typing import Any, Callable


class TraceInfo:
    """Trace-level fields, carried by a trace's root span."""

    __slots__ = ("name", "user_id", "session_id", "tags", "metadata", "release", "environment")

    def __init__(
        self,
        name: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        release: str | None = None,
        environment: str | None = None,
    ) -> None:
        self.name = name
        self.user_id = user_id
        self.session_id = session_id
        self.tags = tags
        self.metadata = metadata
        self.release = release
        self.environment = environment


class SpanRecord:
    """One span as recorded on the caller's thread; ``extract`` fills the rest in the writer.

    Fields start as class-level defaults and only those a span sets are stored on it: the
    caller's thread assigns five fields, not twenty-seven (this runs on every wrapped call).
    """

    start_ns: int = 0
    end_ns: int = 0
    perf_start: float = 0.0
    duration_ms: float | None = None
    input: Any = None
    output: Any = None
    provider: str | None = None
    model: str | None = None
    params: dict[str, Any] | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    # Tokens written to a prompt cache (Anthropic), priced above plain input; not a column.
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    ttft_ms: float | None = None
    status: str = "ok"
    error: str | None = None
    attributes: dict[str, Any] | None = None
    # Set on a trace's root span only.
    trace: TraceInfo | None = None
    # Raw material for ``extract``: SDK request kwargs, response object, stream items.
    raw: Any = None
    extract: Callable[["SpanRecord"], None] | None = None

    def __init__(self, span_id: str, trace_id: str, parent_id: str | None, kind: str, name: str) -> None:
        self.span_id = span_id
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.kind = kind
        self.name = name


class ScoreRecord:
    """A score to write, queued like spans so scoring never waits on the database."""

    __slots__ = ("score_id", "trace_id", "span_id", "name", "value", "label", "comment", "source", "author",
                 "created_ns", "metadata")

    def __init__(
        self,
        score_id: str,
        trace_id: str,
        span_id: str | None,
        name: str,
        value: float | None,
        label: str | None,
        comment: str | None,
        source: str,
        author: str | None,
        created_ns: int,
        metadata: dict[str, Any] | None,
    ) -> None:
        self.score_id = score_id
        self.trace_id = trace_id
        self.span_id = span_id
        self.name = name
        self.value = value
        self.label = label
        self.comment = comment
        self.source = source
        self.author = author
        self.created_ns = created_ns
        self.metadata = metadata
