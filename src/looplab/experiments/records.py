"""Experiments as stored: look one up, list them, see how far a run got, promote one to baseline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from looplab.errors import NotFound
from looplab.store.engine import read_session
from looplab.store.models import Dataset, Experiment, ExperimentItem


@dataclass(frozen=True)
class ExperimentInfo:
    id: int
    name: str
    dataset_id: int
    dataset: str
    dataset_version: datetime
    variant: dict[str, Any]  # name, version, kind, model, system, prompt or task, params
    variant_id: int | None
    baseline_id: int | None
    status: str
    item_count: int
    concurrency: int | None
    worker_pid: int | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    promoted_at: datetime | None
    created_by: str | None
    error: str | None
    metadata: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def evaluators(self) -> list[dict[str, Any]]:
        """The evaluators pinned at creation: ``{"id", "name", "version"}`` each."""
        return list(self.metadata.get("evaluators") or [])


@dataclass(frozen=True)
class Progress:
    """How far a run got, from its stored items."""

    done: int  # items with a result (ok or error)
    total: int
    errors: int
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None


def _info(row: Experiment, dataset: str) -> ExperimentInfo:
    return ExperimentInfo(
        id=row.id, name=row.name, dataset_id=row.dataset_id, dataset=dataset, dataset_version=row.dataset_version,
        variant=dict(row.variant_json or {}), variant_id=row.variant_id, baseline_id=row.baseline_id,
        status=row.status, item_count=row.item_count, concurrency=row.concurrency, worker_pid=row.worker_pid,
        heartbeat_at=row.heartbeat_at, cancel_requested=bool(row.cancel_requested), promoted_at=row.promoted_at,
        created_by=row.created_by, error=row.error, metadata=dict(row.metadata_json or {}),
        created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at,
    )


def get_experiment(url: str, experiment: int | str) -> ExperimentInfo:
    """An experiment by id or by name; ``NotFound`` when there is none."""
    with read_session(url) as session:
        query = select(Experiment, Dataset.name).join(Dataset, Dataset.id == Experiment.dataset_id)
        if isinstance(experiment, int):
            query = query.where(Experiment.id == experiment)
        else:
            query = query.where(Experiment.name == experiment)
        found = session.execute(query).first()
        if found is None:
            raise NotFound(f"There is no experiment {experiment!r}." if isinstance(experiment, str)
                           else f"There is no experiment with id {experiment}.")
        return _info(found[0], found[1])


def list_experiments(url: str, *, dataset: str | None = None, limit: int | None = None) -> list[ExperimentInfo]:
    """Experiments, newest first; only those over ``dataset`` when given."""
    with read_session(url) as session:
        query = (select(Experiment, Dataset.name).join(Dataset, Dataset.id == Experiment.dataset_id)
                 .order_by(Experiment.created_at.desc(), Experiment.id.desc()))
        if dataset is not None:
            query = query.where(Dataset.name == dataset)
        if limit is not None:
            query = query.limit(limit)
        return [_info(row, name) for row, name in session.execute(query)]


def experiment_progress(url: str, experiment_id: int) -> Progress:
    """Done, errors and cost so far, counted from the stored items (one aggregate query)."""
    with read_session(url) as session:
        total = session.scalar(select(Experiment.item_count).where(Experiment.id == experiment_id))
        if total is None:
            raise NotFound(f"There is no experiment with id {experiment_id}.")
        done, errors, cost, tokens_in, tokens_out = session.execute(
            select(func.count(), func.coalesce(func.sum(case((ExperimentItem.status == "error", 1), else_=0)), 0),
                   func.sum(ExperimentItem.cost_usd), func.sum(ExperimentItem.input_tokens),
                   func.sum(ExperimentItem.output_tokens))
            .where(ExperimentItem.experiment_id == experiment_id)).one()
    return Progress(done=int(done), total=int(total), errors=int(errors),
                    cost_usd=float(cost) if cost is not None else None,
                    input_tokens=int(tokens_in) if tokens_in is not None else None,
                    output_tokens=int(tokens_out) if tokens_out is not None else None)


def promote_experiment(url: str, experiment: int | str) -> ExperimentInfo:
    """Make a completed experiment its dataset's baseline (the newest promoted one is the baseline)."""
    from looplab.experiments.gate import promote

    promote(url, get_experiment(url, experiment).id)
    return get_experiment(url, experiment)


@dataclass(frozen=True)
class ScoreSummary:
    """One score name over an experiment's items: how many, their mean, how many failed to evaluate."""

    name: str
    count: int  # scores with a value
    mean: float | None
    errors: int  # evaluations that gave no value


def score_summary(url: str, experiment_id: int) -> list[ScoreSummary]:
    """Each score name's count and mean over the experiment's items (SQL aggregates), by name."""
    from looplab.store.models import Score

    with read_session(url) as session:
        rows = session.execute(
            select(Score.name, func.count(Score.value), func.avg(Score.value),
                   func.coalesce(func.sum(case((Score.value.is_(None) & Score.label.is_(None), 1), else_=0)), 0))
            .join(ExperimentItem, ExperimentItem.id == Score.experiment_item_id)
            .where(ExperimentItem.experiment_id == experiment_id)
            .group_by(Score.name).order_by(Score.name)).all()
    return [ScoreSummary(name, int(count), float(mean) if mean is not None else None, int(errors))
            for name, count, mean, errors in rows]


def mean_latency_ms(url: str, experiment_id: int) -> float | None:
    with read_session(url) as session:
        value = session.scalar(select(func.avg(ExperimentItem.latency_ms))
                               .where(ExperimentItem.experiment_id == experiment_id, ExperimentItem.status == "ok"))
    return float(value) if value is not None else None
