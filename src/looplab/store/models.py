"""The whole data model as SQLAlchemy 2.x typed tables.

Telemetry tables (traces, spans, scores) carry no foreign keys between each other: spans of a
trace may arrive before the trace row (the root span ends last, OTLP batches come in any order),
and a user may score a trace that is still queued for writing. Everything the UI filters or
aggregates on is a real, indexed column; free-form payloads live in ``*_json`` columns.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.visitors import InternalTraversal

from looplab.store.types import JSONType, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SPAN_KINDS = ("llm", "tool", "retrieval", "span", "event", "evaluator", "embedding")
STATUSES = ("ok", "error")
SCORE_SOURCES = ("human", "llm_judge", "code", "user_feedback")
SCORE_DATA_TYPES = ("numeric", "categorical", "boolean", "text")
ROLES = ("admin", "engineer", "annotator")
QUEUE_ITEM_STATUSES = ("pending", "leased", "done", "skipped")
ANNOTATION_KINDS = ("label", "skip", "adjudication")
EXPERIMENT_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
EVALUATOR_KINDS = ("code", "llm_judge")
VARIANT_KINDS = ("prompt", "code")
DECISION_OUTCOMES = ("ship", "dont_ship")
ATTENTION_RULE_KINDS = ("error", "latency_above", "latency_p95", "negative_feedback", "low_score", "cost_outlier")


# Columns monitoring aggregates, carried by the indexes it reads (migration 0004).
_TRACE_MEASURES = ("status", "duration_ms", "input_tokens", "output_tokens", "cost_usd", "error_count")
_SPAN_MEASURES = ("provider", "status", "duration_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd",
                  "trace_id")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class utc_day(ColumnElement[Any]):  # noqa: N801 (used like a SQL function)
    """The UTC calendar day of a timestamp column or parameter, in a form an index can hold:
    ``substr(x, 1, 10)`` on SQLite (timestamps are stored as ISO text, naive UTC),
    ``CAST(x AS DATE)`` elsewhere (immutable on PostgreSQL's ``timestamp without time zone``).

    Monitoring's day-long buckets test ``utc_day(start_time) = utc_day(:bucket_start)``, so an
    index leading with the day gives each day's values in order (percentiles without sorting).
    """

    inherit_cache = True
    _traverse_internals = [("value", InternalTraversal.dp_clauseelement)]

    def __init__(self, value: Any) -> None:
        self.value = value
        self.type = String()


@compiles(utc_day)
def _compile_utc_day(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.value, **kw)} AS DATE)"


@compiles(utc_day, "sqlite")
def _compile_utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"substr({compiler.process(element.value, **kw)}, 1, 10)"


# Partial indexes hold only the rows monitoring reads from them (the writer pays for no others).
_LLM_WITH_TTFT = "kind = 'llm' AND ttft_ms IS NOT NULL"
_WITH_PROVIDER = "provider IS NOT NULL"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, list[Any]: JSONType}


# --- 1. Tracing -------------------------------------------------------------------------------


class Trace(Base):
    """One request's whole path; its row is written when its root span ends."""

    __tablename__ = "traces"
    __table_args__ = (
        CheckConstraint(_one_of("status", STATUSES), name="status"),
        # Monitoring reads whole windows of traces: these indexes carry what it aggregates, so it
        # never reads a trace row and its payloads (migration 0004).
        Index("ix_traces_start_measures", "start_time", *_TRACE_MEASURES, "name", "release", "environment",
              "user_id", "session_id", "id"),
        Index("ix_traces_name_start", "name", "start_time", *_TRACE_MEASURES, "user_id", "release", "environment",
              "id"),
        Index("ix_traces_user_start", "user_id", "start_time", *_TRACE_MEASURES, "name", "release", "environment",
              "id"),
        Index("ix_traces_session_start", "session_id", "start_time"),
        Index("ix_traces_status_start", "status", "start_time"),
        # Migration 0007: the release breakdown reads one range a release; the duration index
        # carries the start so a month's median is read in duration order, testing the window
        # in the index; the day index gives each UTC day's durations in order.
        Index("ix_traces_release_start", "release", "start_time", *_TRACE_MEASURES, "id"),
        Index("ix_traces_duration_ms", "duration_ms", "start_time"),
        Index("ix_traces_day_duration", utc_day(text("start_time")), "duration_ms"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    start_time: Mapped[datetime]
    end_time: Mapped[datetime | None]
    duration_ms: Mapped[float | None] = mapped_column(Float)
    session_id: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    release: Mapped[str | None] = mapped_column(String(255))
    environment: Mapped[str | None] = mapped_column(String(255))
    tags_json: Mapped[list[Any] | None]
    metadata_json: Mapped[dict[str, Any] | None]
    input_json: Mapped[Any | None] = mapped_column(JSONType)
    output_json: Mapped[Any | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    span_count: Mapped[int] = mapped_column(Integer, default=1)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)


class TraceTag(Base):
    """One tag of a trace, so filtering by tag is an indexed lookup on every database."""

    __tablename__ = "trace_tags"

    trace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class Span(Base):
    """One step of a trace: an LLM call, a tool call, a retrieval, or any observed function."""

    __tablename__ = "spans"
    __table_args__ = (
        CheckConstraint(_one_of("kind", SPAN_KINDS), name="kind"),
        CheckConstraint(_one_of("status", STATUSES), name="status"),
        # With the LLM measures and the trace id, monitoring reads spans from these indexes alone.
        Index("ix_spans_model_start", "model", "start_time", "kind", *_SPAN_MEASURES),
        Index("ix_spans_kind_start", "kind", "start_time", "model", *_SPAN_MEASURES),
        # Migration 0007, partial: each UTC day's times to first token in order (LLM calls that
        # have one), with what a model, provider or trace filter tests; the providers seen.
        Index("ix_spans_llm_day_ttft", utc_day(text("start_time")), "ttft_ms", "model", "provider", "trace_id",
              sqlite_where=text(_LLM_WITH_TTFT), postgresql_where=text(_LLM_WITH_TTFT)),
        Index("ix_spans_provider_start", "provider", "start_time",
              sqlite_where=text(_WITH_PROVIDER), postgresql_where=text(_WITH_PROVIDER)),
    )

    # Keyed by trace first: trace ids start with the time, so inserts append to the index and a
    # trace's spans sit together (OpenTelemetry, too, names a span by trace id and span id).
    trace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    start_time: Mapped[datetime] = mapped_column(index=True)
    end_time: Mapped[datetime | None]
    duration_ms: Mapped[float | None] = mapped_column(Float)
    input_json: Mapped[Any | None] = mapped_column(JSONType)
    output_json: Mapped[Any | None] = mapped_column(JSONType)
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(255))
    params_json: Mapped[dict[str, Any] | None]
    finish_reason: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    pricing_source: Mapped[str | None] = mapped_column(String(64))
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    attributes_json: Mapped[dict[str, Any] | None]


class ScoreConfig(Base):
    """A named way to score: its type, its range or options, and the rubric people and judges read."""

    __tablename__ = "score_configs"
    __table_args__ = (CheckConstraint(_one_of("data_type", SCORE_DATA_TYPES), name="data_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    data_type: Mapped[str] = mapped_column(String(16))
    min_value: Mapped[float | None] = mapped_column(Float)
    max_value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[float | None] = mapped_column(Float)
    categories_json: Mapped[list[Any] | None]
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class Score(Base):
    """A judgement of a trace, a span or an experiment item, by a person, a judge, code or a user."""

    __tablename__ = "scores"
    __table_args__ = (
        CheckConstraint(_one_of("source", SCORE_SOURCES), name="source"),
        Index("ix_scores_name_created", "name", "created_at"),
        Index("ix_scores_trace_name", "trace_id", "name", "source", "value"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    span_id: Mapped[str | None] = mapped_column(String(64), index=True)
    experiment_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiment_items.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), index=True)
    author: Mapped[str | None] = mapped_column(String(255))
    config_id: Mapped[int | None] = mapped_column(ForeignKey("score_configs.id", ondelete="SET NULL"))
    evaluator_id: Mapped[int | None] = mapped_column(ForeignKey("evaluators.id", ondelete="SET NULL"))
    evaluator_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    metadata_json: Mapped[dict[str, Any] | None]


# --- 2. Monitoring ----------------------------------------------------------------------------------


class AttentionRule(Base):
    """A saved rule that surfaces traces in "Needs attention": its kind and its thresholds.

    ``params_json`` holds what the kind needs, e.g. ``{"threshold_ms": 5000}`` for
    ``latency_above`` or ``{"score_name": "correctness", "below": 0.5}`` for ``low_score``.
    """

    __tablename__ = "attention_rules"
    __table_args__ = (CheckConstraint(_one_of("kind", ATTENTION_RULE_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    params_json: Mapped[dict[str, Any] | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# The trace explorer sorts by cost (migration 0003); without it that sort over many traces reads
# the whole table, payloads and all.
Index("ix_traces_cost_usd", Trace.cost_usd)


class RollupDay(Base):
    """A closed UTC day whose traces and LLM calls are summed up in the ``*_rollups`` tables.

    Its row exists only while those sums are true: triggers (migration 0008) and looplab's
    writers (``looplab.store.stale_days``) delete it when a trace, an LLM call or a score those
    sums count changes, and ``looplab.monitoring.rollups`` builds the day again when it is next
    read.
    """

    __tablename__ = "rollup_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    built_at: Mapped[datetime]


class _TraceRollupKey:
    """Which traces a trace rollup row sums up: a closed day's, of one (name, release,
    environment, status)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    release: Mapped[str | None] = mapped_column(String(255))
    environment: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))


class _LlmRollupKey:
    """Which LLM calls an LLM rollup row sums up: a closed day's, of one (trace name, model)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    trace_name: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))


class _Measures:
    """What a breakdown adds up, and the latencies as a histogram (see ``looplab.monitoring.rollups``)."""

    finished: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    latency_histogram: Mapped[bytes] = mapped_column(LargeBinary)


class _ScoreSums:
    """Numeric scores summed up per score name."""

    score_name: Mapped[str] = mapped_column(String(255))
    total: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)


class TraceRollup(_TraceRollupKey, _Measures, Base):
    """One closed day's traces of one (name, release, environment, status)."""

    __tablename__ = "trace_rollups"

    traces: Mapped[int] = mapped_column(Integer)


class TraceScoreRollup(_TraceRollupKey, _ScoreSums, Base):
    """One closed day's numeric scores of the traces of one (name, release, environment, status)."""

    __tablename__ = "trace_score_rollups"


class LlmRollup(_LlmRollupKey, _Measures, Base):
    """One closed day's LLM calls of one (trace name, model)."""

    __tablename__ = "llm_rollups"

    calls: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    with_ttft: Mapped[int] = mapped_column(Integer)  # calls that recorded a time to first token


class LlmScoreRollup(_LlmRollupKey, _ScoreSums, Base):
    """One closed day's numeric scores of the traces that called a (trace name, model) that day
    (a trace counted once a day)."""

    __tablename__ = "llm_score_rollups"


# --- 3. Annotation and datasets -----------------------------------------------------------------


class User(Base):
    """A person who signs in: admin, engineer or annotator."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_one_of("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class AnnotationQueue(Base):
    """A queue of traces for people to label with a set of score configs."""

    __tablename__ = "annotation_queues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    instructions: Mapped[str | None] = mapped_column(Text)
    annotations_per_item: Mapped[int] = mapped_column(Integer, default=1)
    lease_seconds: Mapped[int] = mapped_column(Integer, default=900)
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class QueueScoreConfig(Base):
    __tablename__ = "queue_score_configs"

    queue_id: Mapped[int] = mapped_column(ForeignKey("annotation_queues.id", ondelete="CASCADE"), primary_key=True)
    score_config_id: Mapped[int] = mapped_column(ForeignKey("score_configs.id", ondelete="CASCADE"), primary_key=True)


class QueueAssignee(Base):
    __tablename__ = "queue_assignees"

    queue_id: Mapped[int] = mapped_column(ForeignKey("annotation_queues.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class QueueItem(Base):
    """A trace waiting in a queue; a lease keeps two annotators off the same item at once."""

    __tablename__ = "queue_items"
    __table_args__ = (
        CheckConstraint(_one_of("status", QUEUE_ITEM_STATUSES), name="status"),
        UniqueConstraint("queue_id", "trace_id"),
        Index("ix_queue_items_queue_status", "queue_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("annotation_queues.id", ondelete="CASCADE"))
    trace_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    leased_by: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    annotations_done: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    # Items are offered by (position, id); "come back later" moves an item behind the others.
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class Annotation(Base):
    """One person's work on one queue item: a label (scores, comment, corrected output), a skip,
    or an admin's adjudication of disagreeing labels (the value used downstream).

    ``values_json`` maps score config names to the values given; the same values are also written
    as ``scores`` rows (source ``human``) so Monitoring and the trace detail see them, until an
    admin adjudicates a score name: the ruling's row then replaces the annotators' rows for it
    (their annotations stay, for agreement).
    """

    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ANNOTATION_KINDS), name="kind"),
        UniqueConstraint("queue_item_id", "author", "kind"),
        Index("ix_annotations_queue_author", "queue_id", "author", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_item_id: Mapped[int] = mapped_column(ForeignKey("queue_items.id", ondelete="CASCADE"))
    queue_id: Mapped[int] = mapped_column(ForeignKey("annotation_queues.id", ondelete="CASCADE"))
    trace_id: Mapped[str] = mapped_column(String(64), index=True)
    author: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    values_json: Mapped[dict[str, Any] | None]
    comment: Mapped[str | None] = mapped_column(Text)
    corrected_output_json: Mapped[Any | None] = mapped_column(JSONType)
    created_at: Mapped[datetime]


class QueueRule(Base):
    """A saved rule that fills a queue: traces matching a filter, sampled at a rate, optionally
    stratified by a field so every value of it is represented.

    The rule walks traces in (start_time, id) order from ``cursor_*``, a few minutes behind now so
    traces still being written are not passed over; ``strata_json`` keeps
    per stratum how many traces were seen and taken, so sampling continues exactly where it stopped.
    """

    __tablename__ = "queue_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("annotation_queues.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    filter_json: Mapped[dict[str, Any]]
    sample_rate: Mapped[float] = mapped_column(Float)
    stratify_by: Mapped[str | None] = mapped_column(String(32))
    strata_json: Mapped[dict[str, Any] | None]
    cursor_start_time: Mapped[datetime | None]
    cursor_trace_id: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]


class Dataset(Base):
    """A named, versioned collection of test cases."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class DatasetItem(Base):
    """One version of one test case.

    Items are never edited in place: an edit closes the current row (``valid_to``) and adds a new
    row with the same ``item_id``, so the dataset as of any time is the rows valid at that time.
    """

    __tablename__ = "dataset_items"
    __table_args__ = (Index("ix_dataset_items_dataset_valid", "dataset_id", "valid_from", "valid_to"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    input_json: Mapped[Any | None] = mapped_column(JSONType)
    expected_output_json: Mapped[Any | None] = mapped_column(JSONType)
    metadata_json: Mapped[dict[str, Any] | None]
    source_trace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    source_span_id: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]


# --- 4-5. Experiments and evaluation -------------------------------------------------------------


class Evaluator(Base):
    """A code check or an LLM judge, versioned; its results are scores."""

    __tablename__ = "evaluators"
    __table_args__ = (
        CheckConstraint(_one_of("kind", EVALUATOR_KINDS), name="kind"),
        UniqueConstraint("name", "version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16))
    config_json: Mapped[dict[str, Any]]
    score_config_id: Mapped[int | None] = mapped_column(ForeignKey("score_configs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class Variant(Base):
    """One version of a thing to try: a prompt (system prompt, Jinja2 user template, model, params)
    or a code task (``module:function`` and its params). Saving a changed variant adds a version."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint(_one_of("kind", VARIANT_KINDS), name="kind"),
        UniqueConstraint("name", "version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16))
    config_json: Mapped[dict[str, Any]]
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]


class Experiment(Base):
    """A variant run over a pinned dataset version, optionally against a baseline experiment."""

    __tablename__ = "experiments"
    __table_args__ = (CheckConstraint(_one_of("status", EXPERIMENT_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    dataset_version: Mapped[datetime]
    variant_json: Mapped[dict[str, Any]]
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"))
    baseline_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    concurrency: Mapped[int | None] = mapped_column(Integer)
    # A run in a worker process: its pid and last sign of life; the page asks it to stop by the flag.
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Promoted: the dataset's baseline for later comparisons (the newest promoted one wins).
    promoted_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ExperimentItem(Base):
    """One dataset item run through an experiment's variant: output, cost, latency and a trace."""

    __tablename__ = "experiment_items"
    __table_args__ = (
        CheckConstraint(_one_of("status", STATUSES), name="status"),
        UniqueConstraint("experiment_id", "dataset_item_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    dataset_item_id: Mapped[str] = mapped_column(String(64))
    dataset_item_row_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_items.id", ondelete="SET NULL"))
    trace_id: Mapped[str | None] = mapped_column(String(64), index=True)
    output_json: Mapped[Any | None] = mapped_column(JSONType)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Decision(Base):
    """A recorded ship / don't-ship decision: an experiment against its baseline under a policy,
    with the reasons, the dataset version and the judge versions it rested on."""

    __tablename__ = "decisions"
    __table_args__ = (CheckConstraint(_one_of("outcome", DECISION_OUTCOMES), name="outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    baseline_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"))
    dataset_version: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))
    reasons_json: Mapped[list[Any]]
    policy_json: Mapped[dict[str, Any]]
    summary_json: Mapped[dict[str, Any] | None]
    judge_versions_json: Mapped[dict[str, Any] | None]
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
