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
    """One span as recorded on the caller's thread; ``extract`` fills the rest in the writer."""

    __slots__ = (
        "span_id",
        "trace_id",
        "parent_id",
        "kind",
        "name",
        "start_ns",
        "end_ns",
        "perf_start",
        "duration_ms",
        "input",
        "output",
        "provider",
        "model",
        "params",
        "finish_reason",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "cost_usd",
        "ttft_ms",
        "status",
        "error",
        "attributes",
        "trace",
        "raw",
        "extract",
    )

    def __init__(self, span_id: str, trace_id: str, parent_id: str | None, kind: str, name: str) -> None:
        self.span_id = span_id
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.kind = kind
        self.name = name
        self.start_ns = 0
        self.end_ns = 0
        self.perf_start = 0.0
        self.duration_ms: float | None = None
        self.input: Any = None
        self.output: Any = None
        self.provider: str | None = None
        self.model: str | None = None
        self.params: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_tokens: int | None = None
        # Tokens written to a prompt cache (Anthropic), priced above plain input; not a column.
        self.cache_write_tokens: int | None = None
        self.cost_usd: float | None = None
        self.ttft_ms: float | None = None
        self.status = "ok"
        self.error: str | None = None
        self.attributes: dict[str, Any] | None = None
        # Set on a trace's root span only.
        self.trace: TraceInfo | None = None
        # Raw material for ``extract``: SDK request kwargs, response object, stream chunks.
        self.raw: Any = None
        self.extract: Callable[["SpanRecord"], None] | None = None


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
