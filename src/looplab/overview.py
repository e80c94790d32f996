"""The loop at a glance: one live number (or a few) for each step, for the Overview page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pathlib import Path

from alembic.migration import MigrationContext
from sqlalchemy import func, select

from looplab.monitoring.attention import attention_count
from looplab.store.engine import get_engine, read_session
from looplab.store.filters import TraceFilter
from looplab.store.models import AnnotationQueue, Dataset, DatasetItem, Experiment, QueueItem, Score, Span, Trace


@dataclass(frozen=True)
class LoopStatus:
    """What each step of the loop holds right now."""

    traces: int
    errors: int
    cost_usd: float | None
    attention: int
    queues: int
    queue_backlog: int
    datasets: int
    dataset_items: int
    latest_experiment: dict[str, Any] | None
    stored_traces: int  # in the whole store, whatever the window: tells "empty" from "filtered out"


def loop_status(url: str, flt: TraceFilter) -> LoopStatus:
    """Counts for the Overview tiles: traces in ``flt``, what needs attention, queues, datasets, experiments."""
    with read_session(url) as session:
        traces, errors, cost = session.execute(
            select(func.count(), func.count().filter(Trace.status == "error"), func.sum(Trace.cost_usd))
            .where(*flt.conditions())
        ).one()
        stored = session.scalar(select(func.count()).select_from(Trace)) or 0
        queues = session.scalar(
            select(func.count()).select_from(AnnotationQueue).where(AnnotationQueue.archived_at.is_(None))
        ) or 0
        backlog = session.scalar(
            select(func.count()).select_from(QueueItem).join(AnnotationQueue)
            .where(QueueItem.status.in_(("pending", "leased")), AnnotationQueue.archived_at.is_(None))
        ) or 0
        datasets = session.scalar(
            select(func.count()).select_from(Dataset).where(Dataset.archived_at.is_(None))
        ) or 0
        items = session.scalar(
            select(func.count()).select_from(DatasetItem).join(Dataset)
            .where(Dataset.archived_at.is_(None), DatasetItem.valid_to.is_(None))
        ) or 0
        latest = session.execute(
            select(Experiment.id, Experiment.name, Experiment.status, Experiment.created_at)
            .order_by(Experiment.created_at.desc(), Experiment.id.desc()).limit(1)
        ).first()
    return LoopStatus(
        traces=traces, errors=errors, cost_usd=cost, attention=attention_count(url, flt) if traces else 0,
        queues=queues, queue_backlog=backlog, datasets=datasets, dataset_items=items,
        latest_experiment=dict(latest._mapping) if latest else None, stored_traces=stored,
    )


def has_traces(url: str) -> bool:
    """Whether the store holds any trace at all (tells "nothing yet" from "filtered out")."""
    with read_session(url) as session:
        return session.scalar(select(Trace.id).limit(1)) is not None


@dataclass(frozen=True)
class StoreInfo:
    """Where the data lives and how much of it there is."""

    url: str  # password hidden
    backend: str
    schema_revision: str | None
    file_bytes: int | None  # SQLite only
    traces: int
    spans: int
    scores: int


def store_info(url: str) -> StoreInfo:
    """The database's backend, schema revision, size on disk (SQLite) and row counts."""
    engine = get_engine(url)
    file_bytes = None
    if engine.dialect.name == "sqlite" and engine.url.database:
        path = Path(engine.url.database)
        file_bytes = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with read_session(url) as session:
        revision = MigrationContext.configure(session.connection()).get_current_revision()
        traces, spans, scores = (
            session.scalar(select(func.count()).select_from(model)) or 0 for model in (Trace, Span, Score)
        )
    return StoreInfo(
        url=engine.url.render_as_string(hide_password=True), backend=engine.dialect.name,
        schema_revision=revision, file_bytes=file_bytes, traces=traces, spans=spans, scores=scores,
    )
