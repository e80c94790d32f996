"""Experiments, items and scores written straight into the tables, as the runner and the
evaluators would leave them, for the comparison and gate tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from looplab.store.engine import write_session
from looplab.store.models import (
    Dataset,
    DatasetItem,
    Evaluator,
    Experiment,
    ExperimentItem,
    Score,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def insert_dataset(url: str, name: str, items: dict[str, tuple[Any, Any]],
                   version: datetime = T0) -> tuple[int, dict[str, int]]:
    """A dataset whose ``items`` (item id -> (input, expected)) are valid from ``version``;
    returns its id and the item rows' ids."""
    with write_session(url) as session:
        dataset = Dataset(name=name, created_at=version)
        session.add(dataset)
        session.flush()
        rows = {}
        for item_id, (input_json, expected) in items.items():
            row = DatasetItem(item_id=item_id, dataset_id=dataset.id, input_json=input_json,
                              expected_output_json=expected, valid_from=version)
            session.add(row)
            session.flush()
            rows[item_id] = row.id
        return dataset.id, rows


def insert_experiment(url: str, name: str, dataset_id: int, items: dict[str, dict[str, Any]], *,
                      version: datetime = T0, row_ids: dict[str, int] | None = None, status: str = "completed",
                      created_at: datetime = T0, baseline_id: int | None = None) -> int:
    """An experiment over ``items``: item id -> {output, latency_ms, cost_usd, status, error,
    scores: {name: value or (value, evaluator_version)}}; returns its id."""
    with write_session(url) as session:
        experiment = Experiment(name=name, dataset_id=dataset_id, dataset_version=version,
                                variant_json={"model": name}, status=status, item_count=len(items),
                                baseline_id=baseline_id, created_at=created_at)
        session.add(experiment)
        session.flush()
        for n, (item_id, spec) in enumerate(items.items()):
            row = ExperimentItem(
                experiment_id=experiment.id, dataset_item_id=item_id,
                dataset_item_row_id=(row_ids or {}).get(item_id), output_json=spec.get("output"),
                latency_ms=spec.get("latency_ms"), cost_usd=spec.get("cost_usd"),
                status=spec.get("status", "ok"), error=spec.get("error"), trace_id=f"t-{name}-{item_id}",
                created_at=created_at,
            )
            session.add(row)
            session.flush()
            for score_name, value in spec.get("scores", {}).items():
                value, evaluator_version = value if isinstance(value, tuple) else (value, "1")
                session.add(Score(id=f"s-{experiment.id}-{n}-{score_name}", experiment_item_id=row.id,
                                  name=score_name, value=value, source="code", evaluator_version=evaluator_version,
                                  created_at=created_at + timedelta(seconds=1)))
        return experiment.id


def mark_evaluator(url: str, experiment_ids: list[int], name: str, config: dict) -> None:
    """Mark every ``name`` score of these experiments as written by a saved evaluator with ``config``."""
    with write_session(url) as session:
        evaluator = Evaluator(name=name, version=1, kind="code", config_json=config, created_at=T0)
        session.add(evaluator)
        session.flush()
        item_ids = select(ExperimentItem.id).where(ExperimentItem.experiment_id.in_(experiment_ids))
        session.execute(update(Score).where(Score.name == name, Score.experiment_item_id.in_(item_ids))
                        .values(evaluator_id=evaluator.id))
