"""Judge vs human: how far each evaluator agrees with people on the same traces and items.

Pairs: a trace (or experiment item) scored both by an evaluator and by a person (source
``human``) under the same score name. The person's value is the admin's adjudication when there is
one, else the mean of the people's values (numeric) or their majority label (a tie leaves the item
out). When the evaluator scored an item several times, its latest score counts. Errors (no value
nor label) are left out. Agreement is measured per evaluator name, evaluator version and score name.

Two readings:

- **categorical**, when both sides give labels (categorical and boolean scores), or values that
  are all 0 or 1 (pass/fail checks against a yes/no human score): accuracy (share of identical
  labels), Cohen's kappa (``looplab.annotation.agreement.cohens_kappa``) and the confusion matrix.
  **Reliable** when kappa >= ``kappa_threshold`` (default 0.6, "substantial" on Landis & Koch's scale).
- **numeric** otherwise: accuracy within ``tolerance`` (default: the score config's step, else
  0), Pearson's and Spearman's correlation, and when both sides take at most 10 distinct values,
  kappa and the confusion matrix on those values. **Reliable** when Spearman's correlation >=
  ``correlation_threshold`` (default 0.7): rank correlation, because a judge may use the scale
  differently from people (harsher, or on another range) and still order answers the same way.

With fewer than ``min_items`` pairs (default 10) ``reliable`` is ``None``: too few to tell.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, select
from sqlalchemy.orm import aliased

from looplab.annotation.agreement import cohens_kappa
from looplab.store.engine import read_session
from looplab.store.models import Evaluator as EvaluatorRow
from looplab.store.models import Score, ScoreConfig

KAPPA_THRESHOLD = 0.6
CORRELATION_THRESHOLD = 0.7
MIN_ITEMS = 10
MAX_MATRIX_VALUES = 10


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (human, judge) pairs: ``counts[i][j]`` items the human put in ``labels[i]`` and
    the judge in ``labels[j]``."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per human label, for a table: ``{"human": label, <judge label>: count, ...}``."""
        return [{"human": h, **{j: self.counts[i][k] for k, j in enumerate(self.labels)}}
                for i, h in enumerate(self.labels)]


@dataclass(frozen=True)
class Agreement:
    """How far two raters agree over ``n`` paired items (see the module docstring)."""

    kind: str  # categorical | numeric
    n: int
    accuracy: float | None
    kappa: float | None
    pearson: float | None
    spearman: float | None
    confusion: ConfusionMatrix | None
    reliable: bool | None
    statistic: str  # what ``reliable`` rests on: "kappa" or "spearman"
    threshold: float
    note: str | None = None


@dataclass(frozen=True)
class JudgeAgreement:
    """One evaluator version's agreement with people on one score name."""

    evaluator: str
    evaluator_version: str | None
    score_name: str
    agreement: Agreement


def _ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    data = np.asarray(values, dtype=float)
    order = np.argsort(data, kind="mergesort")
    ranks = np.empty(len(data))
    ordered = data[order]
    i = 0
    while i < len(data):
        j = i
        while j + 1 < len(data) and ordered[j + 1] == ordered[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Pearson's correlation; ``None`` for fewer than two pairs or a constant side."""
    if len(first) < 2:
        return None
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def spearman(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks)."""
    if len(first) < 2:
        return None
    return pearson(_ranks(first), _ranks(second))


def _matrix(human: Sequence[Any], judge: Sequence[Any], order: Sequence[Any] | None = None) -> ConfusionMatrix:
    labels = list(order) if order is not None else sorted(set(human) | set(judge), key=str)
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for h, j in zip(human, judge):
        counts[index[h]][index[j]] += 1
    return ConfusionMatrix(labels=tuple(_show(label) for label in labels), counts=tuple(map(tuple, counts)))


def _show(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return str(value)


def compare_labels(human: Sequence[str], judge: Sequence[str], *, kappa_threshold: float = KAPPA_THRESHOLD,
                   min_items: int = MIN_ITEMS, order: Sequence[str] | None = None) -> Agreement:
    """Agreement of two raters' labels of the same items (categorical reading)."""
    n = len(human)
    if n == 0:
        return Agreement("categorical", 0, None, None, None, None, None, None, "kappa", kappa_threshold,
                         "No item scored by both.")
    accuracy = sum(h == j for h, j in zip(human, judge)) / n
    kappa = cohens_kappa(list(human), list(judge))
    labels = None
    if order is not None:
        labels = [label for label in order if label in set(human) | set(judge)]
        labels += sorted((set(human) | set(judge)) - set(labels), key=str)
    note = None
    reliable: bool | None
    if n < min_items:
        reliable, note = None, f"Only {n} item{'s' if n != 1 else ''} scored by both; {min_items} needed to tell."
    elif kappa is None:
        reliable, note = None, "Everything got one and the same label, so kappa cannot be measured."
    else:
        reliable = kappa >= kappa_threshold
    return Agreement("categorical", n, accuracy, kappa, None, None, _matrix(human, judge, labels), reliable, "kappa",
                     kappa_threshold, note)


def compare_values(human: Sequence[float], judge: Sequence[float], *, tolerance: float = 0.0,
                   correlation_threshold: float = CORRELATION_THRESHOLD, min_items: int = MIN_ITEMS) -> Agreement:
    """Agreement of two raters' numbers for the same items (numeric reading)."""
    n = len(human)
    if n == 0:
        return Agreement("numeric", 0, None, None, None, None, None, None, "spearman", correlation_threshold,
                         "No item scored by both.")
    accuracy = sum(abs(h - j) <= tolerance + 1e-9 for h, j in zip(human, judge)) / n
    rho, r = spearman(human, judge), pearson(human, judge)
    kappa = matrix = None
    if len(set(human) | set(judge)) <= MAX_MATRIX_VALUES:
        kappa = cohens_kappa(list(human), list(judge))
        matrix = _matrix(human, judge, sorted(set(human) | set(judge)))
    note = None
    reliable: bool | None
    if n < min_items:
        reliable, note = None, f"Only {n} item{'s' if n != 1 else ''} scored by both; {min_items} needed to tell."
    elif rho is None:
        reliable, note = None, "One side gave the same value to everything, so correlation cannot be measured."
    else:
        reliable = rho >= correlation_threshold
    return Agreement("numeric", n, accuracy, kappa, r, rho, matrix, reliable, "spearman", correlation_threshold, note)


# --- From the store -------------------------------------------------------------------------------


@dataclass
class _Human:
    values: list[float]
    labels: list[str]
    adjudicated: tuple[float | None, str | None] | None = None
    at: datetime | None = None


def _human_value(human: _Human) -> tuple[float | None, str | None]:
    if human.adjudicated is not None:
        return human.adjudicated
    value = sum(human.values) / len(human.values) if human.values else None
    label = None
    if human.labels:
        ranked = Counter(human.labels).most_common()
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
            label = ranked[0][0]
        elif value is not None and len(set(human.values)) > 1:
            value = None  # a tie of labels with differing values: no consensus
    return value, label


def judge_agreement(
    url: str,
    *,
    evaluator: str | None = None,
    score_name: str | None = None,
    kappa_threshold: float = KAPPA_THRESHOLD,
    correlation_threshold: float = CORRELATION_THRESHOLD,
    tolerance: float | None = None,
    min_items: int = MIN_ITEMS,
) -> list[JudgeAgreement]:
    """Agreement with people per evaluator (name and version) and score name, for every evaluator
    whose scores share a trace or an experiment item with a human score of the same name."""
    judge, human = aliased(Score), aliased(Score)
    same_target = [
        and_(judge.experiment_item_id.is_(None), human.experiment_item_id.is_(None), judge.trace_id == human.trace_id),
        and_(judge.experiment_item_id.is_not(None), judge.experiment_item_id == human.experiment_item_id),
    ]
    columns = (EvaluatorRow.name.label("evaluator"), judge.evaluator_version, judge.name.label("score"), judge.trace_id, judge.experiment_item_id,
               judge.id, judge.value, judge.label, judge.created_at, judge.config_id,
               human.id.label("h_id"), human.value.label("h_value"), human.label.label("h_label"),
               human.metadata_json.label("h_meta"), human.created_at.label("h_at"), human.config_id.label("h_config"))
    judged: dict[tuple[str, str | None, str], dict[tuple[Any, ...], tuple[datetime, float | None, str | None]]] = \
        defaultdict(dict)
    people: dict[tuple[str, tuple[Any, ...]], _Human] = {}
    seen_human: set[tuple[str, tuple[Any, ...]]] = set()
    config_ids: dict[tuple[str, str | None, str], set[int]] = defaultdict(set)
    with read_session(url) as session:
        for condition in same_target:
            query = (select(*columns).join(EvaluatorRow, EvaluatorRow.id == judge.evaluator_id)
                     .join(human, and_(human.name == judge.name, human.source == "human", condition))
                     .where(judge.source.in_(("llm_judge", "code")))
                     .where((judge.value.is_not(None)) | (judge.label.is_not(None)))
                     .where((human.value.is_not(None)) | (human.label.is_not(None))))
            if evaluator is not None:
                query = query.where(EvaluatorRow.name == evaluator)
            if score_name is not None:
                query = query.where(judge.name == score_name)
            for row in session.execute(query):
                key = (row.evaluator, row.evaluator_version, row.score)
                target = ("item", row.experiment_item_id) if row.experiment_item_id is not None else \
                    ("trace", row.trace_id)
                earlier = judged[key].get(target)
                if earlier is None or row.created_at >= earlier[0]:
                    judged[key][target] = (row.created_at, row.value, row.label)
                for config in (row.config_id, row.h_config):
                    if config is not None:
                        config_ids[key].add(config)
                if (row.h_id, target) in seen_human:
                    continue
                seen_human.add((row.h_id, target))
                person = people.setdefault((row.score, target), _Human([], []))
                if (row.h_meta or {}).get("adjudicated"):
                    if person.at is None or row.h_at >= person.at:
                        person.adjudicated, person.at = (row.h_value, row.h_label), row.h_at
                else:
                    if row.h_value is not None:
                        person.values.append(row.h_value)
                    if row.h_label is not None:
                        person.labels.append(row.h_label)
        configs = {c.id: c for c in session.scalars(select(ScoreConfig).where(
            ScoreConfig.id.in_({i for ids in config_ids.values() for i in ids})))} if config_ids else {}

    results = []
    for key in sorted(judged, key=lambda k: (k[0], k[2], str(k[1]))):
        name, version, score = key
        pairs = []
        for target, (_, j_value, j_label) in judged[key].items():
            h_value, h_label = _human_value(people[(score, target)])
            pairs.append((h_value, h_label, j_value, j_label))
        config = next((configs[i] for i in sorted(config_ids.get(key, ())) if i in configs), None)
        labelled = [p for p in pairs if p[1] is not None and p[3] is not None]
        binary = [p for p in pairs if p[0] in (0.0, 1.0) and p[2] in (0.0, 1.0)]
        if labelled and len(labelled) >= len([p for p in pairs if p[0] is not None and p[2] is not None]):
            order = _config_order(config)
            agreement = compare_labels([p[1] for p in labelled], [p[3] for p in labelled],
                                       kappa_threshold=kappa_threshold, min_items=min_items, order=order)
        elif binary and len(binary) == len([p for p in pairs if p[0] is not None and p[2] is not None]):
            flags = {0.0: "false", 1.0: "true"}
            agreement = compare_labels([flags[p[0]] for p in binary], [flags[p[2]] for p in binary],
                                       kappa_threshold=kappa_threshold, min_items=min_items, order=["false", "true"])
        else:
            numbers = [p for p in pairs if p[0] is not None and p[2] is not None]
            tol = tolerance if tolerance is not None else (config.step if config is not None and config.step else 0.0)
            agreement = compare_values([p[0] for p in numbers], [p[2] for p in numbers], tolerance=float(tol),
                                       correlation_threshold=correlation_threshold, min_items=min_items)
        results.append(JudgeAgreement(evaluator=name, evaluator_version=version, score_name=score,
                                      agreement=agreement))
    return results


def _config_order(config: ScoreConfig | None) -> list[str] | None:
    if config is None:
        return None
    if config.data_type == "boolean":
        return ["false", "true"]
    options = [c for c in (config.categories_json or []) if isinstance(c, dict)]
    if options and all(c.get("value") is not None for c in options):
        options.sort(key=lambda c: float(c["value"]))
    return [str(c.get("label")) for c in options] or None
