"""looplab: trace your LLM calls, monitor them, label, experiment, evaluate and decide.

The tracing API::

    import looplab
    client = looplab.wrap_openai(OpenAI())
    with looplab.trace("support-chat", user_id="u1"):
        client.chat.completions.create(...)
    looplab.flush()
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from looplab.config import Settings
from looplab.store.models import SCORE_SOURCES
from looplab.tracing import runtime
from looplab.tracing.context import current_span_id, current_trace_id, observe, trace
from looplab.tracing.ids import new_id
from looplab.tracing.records import ScoreRecord

if TYPE_CHECKING:
    from looplab.tracing.anthropic import wrap_anthropic
    from looplab.tracing.openai import wrap_openai

__version__ = "0.1.0"
__all__ = [
    "configure",
    "current_span_id",
    "current_trace_id",
    "flush",
    "observe",
    "score",
    "stats",
    "trace",
    "wrap_anthropic",
    "wrap_openai",
]


def configure(
    database_url: str | None = None,
    sample_rate: float | None = None,
    redact: Callable[[Any], Any] | None = None,
    environment: str | None = None,
    release: str | None = None,
    **more: Any,
) -> Settings:
    """Set where and what to record; arguments left as ``None`` keep their current value.

    Settings not given here come from ``LOOPLAB_*`` environment variables. ``redact`` is called
    with every input and output (as JSON-ready data) before it is stored, and returns what to store.
    """
    return runtime.configure(
        database_url=database_url, sample_rate=sample_rate, redact=redact, environment=environment,
        release=release, **more,
    )


def flush(timeout: float | None = 30.0) -> bool:
    """Block until everything recorded so far is written; False when storage refused some of it."""
    return runtime.flush(timeout)


def stats() -> dict[str, Any]:
    """The writer's counters: written, dropped (queue full), rejected, failed writes, last error."""
    return runtime.stats()


def score(
    trace_id: str,
    name: str,
    value: float | bool | None = None,
    *,
    label: str | None = None,
    comment: str | None = None,
    source: str = "code",
    span_id: str | None = None,
    author: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> str | None:
    """Attach a score to a trace (or one of its spans); returns the score's id.

    Give a numeric ``value`` (booleans count as 1/0), a categorical ``label``, or both.
    ``source`` is one of ``human``, ``llm_judge``, ``code``, ``user_feedback``. The score is written
    in the background like spans; ``None`` is returned when tracing is disabled.
    """
    if source not in SCORE_SOURCES:
        raise ValueError(f"source must be one of {', '.join(SCORE_SOURCES)}; got {source!r}")
    if value is None and label is None:
        raise ValueError("give a score a value, a label, or both")
    if value is not None and not isinstance(value, (int, float)):
        raise ValueError(f"a score's value must be a number or a bool; got {type(value).__name__}")
    if not runtime.settings().enabled:
        return None
    score_id = new_id()
    runtime.writer().submit(
        ScoreRecord(score_id, trace_id, span_id, name, float(value) if value is not None else None, label,
                    comment, source, author, time.time_ns(), metadata)
    )
    return score_id


def __getattr__(name: str) -> Any:
    # The SDK wrappers import their SDK only when used, so looplab works with either one installed.
    if name == "wrap_openai":
        from looplab.tracing.openai import wrap_openai

        return wrap_openai
    if name == "wrap_anthropic":
        from looplab.tracing.anthropic import wrap_anthropic

        return wrap_anthropic
    raise AttributeError(f"module 'looplab' has no attribute {name!r}")
