"""A candidate experiment against its baseline, from what the runner and the evaluators stored.

Everything is paired by dataset item (``experiment_items.dataset_item_id``): an evaluator is
compared over the items both experiments ran and scored, so each item is its own control. Per
evaluator (score name) that gives both means, the mean difference ``candidate - baseline`` with a
bootstrap confidence interval, a p-value (exact McNemar when every value is 0 or 1, a paired
sign-flip permutation test otherwise) and win/tie/loss counts. Higher scores are better unless
the evaluator that wrote them says ``higher_is_better: false``; then a drop is a win.

People's labels count too: human scores (from annotation queues or manual scoring) on the traces
of the items' model calls are compared like an evaluator named ``<score> (human)``, one value an
item: the admin's adjudicated value when there is one, else the mean of the annotators' latest.

Cost and latency are compared over the items both ran (mean, nearest-rank p95, ratios), errors
over the same items (and which items started or stopped failing). The per-item side by side
carries input, expected output, both outputs and both sides' scores; word-level diffs of the
outputs are computed when asked for (``ItemComparison.diff_vs_expected`` / ``diff_vs_baseline``).

When a score is written more than once for the same item and name, the newest counts. Scores
without a numeric value (labels only) are not compared.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np
from sqlalchemy import and_, or_, select

from looplab.errors import ConfigError, NotFound
from looplab.evaluation.registry import higher_is_better
from looplab.experiments.statistics import (
    bootstrap_ci,
    mcnemar_p,
    nearest_rank,
    paired_permutation_p,
    win_tie_loss,
)
from looplab.store.engine import read_session
from looplab.store.models import (
    Dataset,
    DatasetItem,
    Evaluator,
    Experiment,
    ExperimentItem,
    Score,
)

TIE = 1e-9  # differences this small are ties
Segment = tuple[Literal["equal", "insert", "delete"], str]


@dataclass(frozen=True)
class ExperimentSummary:
    """One side of the comparison: which experiment, on which dataset version, how it went."""

    id: int
    name: str
    status: str
    dataset_id: int
    dataset_name: str | None
    dataset_version: datetime
    item_count: int  # items it stored (ran)
    error_count: int  # of those, items that ended in an error
    variant: dict[str, Any]
    promoted_at: datetime | None


@dataclass(frozen=True)
class EvaluatorComparison:
    """One evaluator (score name), compared over the items both sides ran and it scored.

    ``baseline_mean``/``candidate_mean`` are over those paired items, so ``mean_delta`` is their
    difference (candidate - baseline). ``ci_low``/``ci_high`` bound the mean difference
    (bootstrap, paired). ``test`` names how ``p_value`` was computed: ``mcnemar`` (every value 0 or
    1), ``permutation`` (paired sign flips) or ``none`` (no pairs). ``baseline_n``/``candidate_n``
    count each side's scored items, paired or not; the versions are the evaluator versions seen.
    """

    name: str
    n: int
    baseline_mean: float | None
    candidate_mean: float | None
    mean_delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: Literal["mcnemar", "permutation", "none"]
    wins: int
    ties: int
    losses: int
    baseline_n: int
    candidate_n: int
    baseline_versions: tuple[str, ...] = ()
    candidate_versions: tuple[str, ...] = ()
    higher_is_better: bool = True

    @property
    def binary(self) -> bool:
        """Pass/fail: every value on both sides is 0 or 1."""
        return self.test == "mcnemar"

    @property
    def gain(self) -> float | None:
        """The mean difference turned so that positive is better (``mean_delta``, negated when lower is better)."""
        if self.mean_delta is None:
            return None
        return self.mean_delta if self.higher_is_better else -self.mean_delta

    def significantly_worse(self, alpha: float = 0.05) -> bool:
        """The candidate scores worse (lower, or higher when lower is better) and ``p < alpha``."""
        gain = self.gain
        return gain is not None and gain < -TIE and self.p_value is not None and self.p_value < alpha

    def significantly_better(self, alpha: float = 0.05) -> bool:
        """The candidate scores better and ``p < alpha``."""
        gain = self.gain
        return gain is not None and gain > TIE and self.p_value is not None and self.p_value < alpha


@dataclass(frozen=True)
class MetricDelta:
    """Cost or latency of both sides over the items both ran (items without a value left out).

    Ratios are candidate / baseline, ``None`` when the baseline's figure is 0 or missing.
    """

    name: str  # "cost_usd" or "latency_ms"
    baseline_n: int
    candidate_n: int
    baseline_mean: float | None
    candidate_mean: float | None
    baseline_p95: float | None
    candidate_p95: float | None
    baseline_total: float | None
    candidate_total: float | None

    @property
    def mean_delta(self) -> float | None:
        return _minus(self.candidate_mean, self.baseline_mean)

    @property
    def p95_delta(self) -> float | None:
        return _minus(self.candidate_p95, self.baseline_p95)

    @property
    def mean_ratio(self) -> float | None:
        return _ratio(self.candidate_mean, self.baseline_mean)

    @property
    def p95_ratio(self) -> float | None:
        return _ratio(self.candidate_p95, self.baseline_p95)

    @property
    def total_ratio(self) -> float | None:
        return _ratio(self.candidate_total, self.baseline_total)

    def figure(self, stat: str, side: Literal["baseline", "candidate"]) -> float | None:
        """``stat`` ("mean", "p95" or "total") of one side."""
        return getattr(self, f"{side}_{stat}")

    def ratio(self, stat: str) -> float | None:
        """candidate / baseline of ``stat`` ("mean", "p95" or "total")."""
        return _ratio(self.figure(stat, "candidate"), self.figure(stat, "baseline"))


@dataclass(frozen=True)
class ErrorCounts:
    """Items that ended in an error, over the items both sides ran."""

    baseline: int
    candidate: int
    new: int  # ok in the baseline, an error in the candidate
    fixed: int  # an error in the baseline, ok in the candidate
    compared: int  # items both ran


@dataclass(frozen=True)
class ItemComparison:
    """One dataset item side by side.

    ``deltas`` holds candidate - baseline per evaluator scored on both sides. ``regression`` sums
    the deltas scaled by each evaluator's observed range, negated (not negated for an evaluator
    where lower is better): positive means worse, so
    sorting by it descending puts the worst items first (items that newly fail go before all).
    Sides the item is missing from have ``None`` status and output.
    """

    dataset_item_id: str
    input: Any
    expected: Any
    baseline_output: Any
    candidate_output: Any
    baseline_status: str | None
    candidate_status: str | None
    baseline_error: str | None
    candidate_error: str | None
    baseline_scores: dict[str, float]
    candidate_scores: dict[str, float]
    deltas: dict[str, float]
    regression: float
    baseline_latency_ms: float | None = None
    candidate_latency_ms: float | None = None
    baseline_cost_usd: float | None = None
    candidate_cost_usd: float | None = None
    baseline_trace_id: str | None = None
    candidate_trace_id: str | None = None

    @property
    def in_both(self) -> bool:
        return self.baseline_status is not None and self.candidate_status is not None

    @property
    def newly_failed(self) -> bool:
        return self.baseline_status == "ok" and self.candidate_status == "error"

    @property
    def changed(self) -> bool:
        """A score moved, or the item started or stopped failing (or ran on one side only)."""
        return self.baseline_status != self.candidate_status or any(abs(d) > TIE for d in self.deltas.values())

    @property
    def output_changed(self) -> bool:
        return output_text(self.baseline_output) != output_text(self.candidate_output)

    @cached_property
    def _diff_expected(self) -> list[Segment]:
        return word_diff(output_text(self.expected), output_text(self.candidate_output))

    @cached_property
    def _diff_baseline(self) -> list[Segment]:
        return word_diff(output_text(self.baseline_output), output_text(self.candidate_output))

    def diff_vs_expected(self) -> list[Segment]:
        """Word diff from the expected output to the candidate's (computed once, on demand)."""
        return self._diff_expected

    def diff_vs_baseline(self) -> list[Segment]:
        """Word diff from the baseline's output to the candidate's (computed once, on demand)."""
        return self._diff_baseline


@dataclass(frozen=True)
class Comparison:
    """A candidate against its baseline; see the module docstring for what each part means.

    ``items`` is sorted by regression (worst first); ``warnings`` says in words what makes the
    comparison less than like for like (different dataset versions, items on one side only,
    different evaluator versions, unfinished experiments).
    """

    candidate: ExperimentSummary
    baseline: ExperimentSummary
    evaluators: list[EvaluatorComparison]
    cost: MetricDelta
    latency: MetricDelta
    errors: ErrorCounts
    items: list[ItemComparison]
    common_items: int
    only_baseline: int
    only_candidate: int
    warnings: list[str] = field(default_factory=list)
    confidence: float = 0.95

    def evaluator(self, name: str) -> EvaluatorComparison | None:
        return next((e for e in self.evaluators if e.name == name), None)

    @property
    def judge_versions(self) -> dict[str, list[str]]:
        """Evaluator versions seen per score name, both sides together (for the decision record)."""
        return {e.name: sorted(set(e.baseline_versions) | set(e.candidate_versions)) for e in self.evaluators}

    def changed_items(self) -> list[ItemComparison]:
        """The items whose scores or status changed, worst first."""
        return [item for item in self.items if item.changed]

    def top_regressions(self, limit: int = 5) -> list[ItemComparison]:
        """Up to ``limit`` items that got worse (newly failing ones first)."""
        return [item for item in self.items if item.newly_failed or item.regression > TIE][:limit]


def sort_items(items: list[ItemComparison],
               by: Literal["regression", "improvement", "item"] = "regression") -> list[ItemComparison]:
    """``items`` worst first (``regression``), best first (``improvement``) or by dataset item id.

    Items that newly fail count as the worst; items on one side only come last either way.
    """
    if by == "item":
        return sorted(items, key=lambda i: i.dataset_item_id)
    if by not in ("regression", "improvement"):
        raise ValueError(f"cannot sort by {by!r}: use regression, improvement or item")
    sign = 1 if by == "regression" else -1

    def key(item: ItemComparison) -> tuple[int, float, str]:
        if not item.in_both:
            rank = 2
        elif item.newly_failed:
            rank = 0 if by == "regression" else 1
        elif item.baseline_status == "error" and item.candidate_status == "ok":
            rank = 0 if by == "improvement" else 1
        else:
            rank = 1
        return rank, -sign * item.regression, item.dataset_item_id

    return sorted(items, key=key)


def filter_items(items: list[ItemComparison], *, changed_only: bool = False,
                 evaluator: str | None = None) -> list[ItemComparison]:
    """``items`` kept in order: only changed ones, and/or only ones ``evaluator`` scored on both sides."""
    kept = [i for i in items if i.changed] if changed_only else list(items)
    if evaluator is not None:
        kept = [i for i in kept if evaluator in i.deltas]
    return kept


# --- Word diffs -----------------------------------------------------------------------------------

_TOKENS = re.compile(r"\s+|[^\s]+")
_TEXT_KEYS = ("output", "content", "text", "answer", "response", "completion")


def output_text(value: Any) -> str:
    """An output or expected output as text: strings as they are, a one-text object ({"output": ...}
    and the like) as its text, anything else as indented JSON, ``None`` as ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key in _TEXT_KEYS and isinstance(inner, str):
            return inner
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def word_diff(old: str, new: str) -> list[Segment]:
    """Word-level diff of ``old`` -> ``new`` as ``(op, text)`` segments, op ``equal``, ``delete``
    (only in old) or ``insert`` (only in new); the equal and inserted texts concatenate to ``new``,
    the equal and deleted ones to ``old``. A replaced run is a delete followed by an insert."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    segments: list[Segment] = []

    def add(op: Literal["equal", "insert", "delete"], tokens: list[str]) -> None:
        text = "".join(tokens)
        if not text:
            return
        if segments and segments[-1][0] == op:
            segments[-1] = (op, segments[-1][1] + text)
        else:
            segments.append((op, text))

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            add("equal", a[i1:i2])
        else:
            add("delete", a[i1:i2])
            add("insert", b[j1:j2])
    return segments


# --- compare ---------------------------------------------------------------------------------------


@dataclass
class _Side:
    summary: ExperimentSummary
    items: dict[str, Any]  # dataset_item_id -> row
    scores: dict[str, dict[str, float]]  # dataset_item_id -> {name: value}
    versions: dict[str, set[str]]  # name -> versions seen
    lower_is_better: set[str] = field(default_factory=set)  # score names whose evaluator says so


def compare(url: str, candidate_id: int, baseline_id: int, *, confidence: float = 0.95,
            seed: int = 0) -> Comparison:
    """Compare experiment ``candidate_id`` with ``baseline_id`` (see the module docstring).

    Raises ``NotFound`` when either experiment does not exist and ``ConfigError`` when both ids are
    the same. The result is reproducible: resampling is seeded with ``seed``.
    """
    if candidate_id == baseline_id:
        raise ConfigError(f"Experiment {candidate_id} cannot be compared with itself; pick another baseline.")
    with read_session(url) as session:
        experiments = {e.id: e for e in session.scalars(select(Experiment).where(
            Experiment.id.in_([candidate_id, baseline_id])))}
        for wanted in (candidate_id, baseline_id):
            if wanted not in experiments:
                raise NotFound(f"There is no experiment with id {wanted}.")
        dataset_names = dict(session.execute(select(Dataset.id, Dataset.name).where(
            Dataset.id.in_({e.dataset_id for e in experiments.values()}))).all())
        candidate = _load_side(session, experiments[candidate_id], dataset_names)
        baseline = _load_side(session, experiments[baseline_id], dataset_names)
        dataset_rows = _dataset_rows(session, candidate, baseline)

    common = sorted(set(candidate.items) & set(baseline.items))
    warnings = _warnings(candidate, baseline, common, dataset_rows)
    lower_is_better = candidate.lower_is_better | baseline.lower_is_better
    evaluators = _compare_evaluators(candidate, baseline, common, confidence, seed, lower_is_better)
    scales = _scales(candidate, baseline)
    signs = {name: (-1.0 if name in lower_is_better else 1.0) for name in scales}
    items = sort_items([_item(key, candidate, baseline, dataset_rows, scales, signs)
                        for key in sorted(set(candidate.items) | set(baseline.items))])
    return Comparison(
        candidate=candidate.summary,
        baseline=baseline.summary,
        evaluators=evaluators,
        cost=_metric("cost_usd", candidate, baseline, common),
        latency=_metric("latency_ms", candidate, baseline, common),
        errors=_errors(candidate, baseline, common),
        items=items,
        common_items=len(common),
        only_baseline=len(set(baseline.items) - set(candidate.items)),
        only_candidate=len(set(candidate.items) - set(baseline.items)),
        warnings=warnings,
        confidence=confidence,
    )


def _load_side(session: Any, experiment: Experiment, dataset_names: dict[int, str]) -> _Side:
    conn = session.connection()  # Core rows: no ORM bookkeeping over tens of thousands of rows
    rows = conn.execute(select(
        ExperimentItem.id, ExperimentItem.dataset_item_id, ExperimentItem.dataset_item_row_id,
        ExperimentItem.output_json, ExperimentItem.latency_ms, ExperimentItem.cost_usd, ExperimentItem.status,
        ExperimentItem.error, ExperimentItem.trace_id,
    ).where(ExperimentItem.experiment_id == experiment.id)).all()
    items = {row.dataset_item_id: row for row in rows}
    by_row_id = {row.id: row.dataset_item_id for row in rows}
    scores: dict[str, dict[str, float]] = {}
    versions: dict[str, set[str]] = {}
    written_by: dict[str, set[int]] = {}  # score name -> evaluator ids
    score_rows = conn.execute(
        select(Score.experiment_item_id, Score.name, Score.value, Score.evaluator_version, Evaluator.version,
               Score.evaluator_id)
        .join(ExperimentItem, ExperimentItem.id == Score.experiment_item_id)
        .outerjoin(Evaluator, Evaluator.id == Score.evaluator_id)
        .where(ExperimentItem.experiment_id == experiment.id)
        .order_by(Score.created_at, Score.id)
    )
    for item_row_id, name, value, version, evaluator_version, evaluator_id in score_rows:
        if value is None or not math.isfinite(value):
            continue
        scores.setdefault(by_row_id[item_row_id], {})[name] = float(value)  # the newest wins
        seen = version if version is not None else (str(evaluator_version) if evaluator_version is not None else None)
        if seen is not None:
            versions.setdefault(name, set()).add(seen)
        if evaluator_id is not None:
            written_by.setdefault(name, set()).add(evaluator_id)
    configs = dict(conn.execute(select(Evaluator.id, Evaluator.config_json).where(
        Evaluator.id.in_({i for ids in written_by.values() for i in ids}))).all()) if written_by else {}
    lower_is_better = {name for name, ids in written_by.items()
                       if any(not higher_is_better(configs.get(i)) for i in ids)}
    for key, human in _human_scores(conn, experiment.id).items():
        scores.setdefault(key, {}).update(human)
    summary = ExperimentSummary(
        id=experiment.id, name=experiment.name, status=experiment.status, dataset_id=experiment.dataset_id,
        dataset_name=dataset_names.get(experiment.dataset_id), dataset_version=experiment.dataset_version,
        item_count=len(rows), error_count=sum(1 for r in rows if r.status == "error"),
        variant=dict(experiment.variant_json or {}), promoted_at=experiment.promoted_at,
    )
    return _Side(summary, items, scores, versions, lower_is_better)


HUMAN_SUFFIX = " (human)"


def _human_scores(conn: Any, experiment_id: int) -> dict[str, dict[str, float]]:
    """dataset_item_id -> {"<name> (human)": value}: people's numeric scores on the traces of this
    experiment's items. Per item and name the adjudicated value when an admin gave one, else the
    mean over annotators of each one's latest value."""
    rows = conn.execute(
        select(ExperimentItem.dataset_item_id, Score.name, Score.value, Score.author, Score.metadata_json)
        .join(Score, Score.trace_id == ExperimentItem.trace_id)
        .where(ExperimentItem.experiment_id == experiment_id, ExperimentItem.trace_id.is_not(None),
               Score.source == "human", Score.experiment_item_id.is_(None), Score.value.is_not(None))
        .order_by(Score.created_at, Score.id)
    )
    latest: dict[tuple[str, str], dict[str | None, float]] = {}
    ruled: dict[tuple[str, str], float] = {}
    for key, name, value, author, metadata in rows:
        if not math.isfinite(value):
            continue
        if (metadata or {}).get("adjudicated"):
            ruled[(key, name)] = float(value)
        else:
            latest.setdefault((key, name), {})[author] = float(value)
    found: dict[str, dict[str, float]] = {}
    for pair in set(latest) | set(ruled):
        by_author = latest.get(pair, {})
        value = ruled[pair] if pair in ruled else sum(by_author.values()) / len(by_author)
        found.setdefault(pair[0], {})[pair[1] + HUMAN_SUFFIX] = value
    return found


def _dataset_rows(session: Any, candidate: _Side, baseline: _Side) -> dict[str, tuple[Any, Any, int | None]]:
    """dataset_item_id -> (input, expected, row id): the row the candidate ran on, else the baseline's,
    else the item as of the candidate's dataset version."""
    ids = {candidate.summary.id, baseline.summary.id}
    found: dict[int, tuple[str, Any, Any]] = {}
    conn = session.connection()
    rows = conn.execute(
        select(DatasetItem.id, DatasetItem.item_id, DatasetItem.input_json, DatasetItem.expected_output_json)
        .where(DatasetItem.id.in_(select(ExperimentItem.dataset_item_row_id).where(
            ExperimentItem.experiment_id.in_(ids), ExperimentItem.dataset_item_row_id.is_not(None))))
    )
    for row_id, item_id, input_json, expected in rows:
        found[row_id] = (item_id, input_json, expected)
    result: dict[str, tuple[Any, Any, int | None]] = {}
    for side in (baseline, candidate):  # the candidate's rows win
        for key, item in side.items.items():
            if item.dataset_item_row_id in found:
                _, input_json, expected = found[item.dataset_item_row_id]
                result[key] = (input_json, expected, item.dataset_item_row_id)
    missing = (set(candidate.items) | set(baseline.items)) - set(result)
    if missing:
        version = candidate.summary.dataset_version
        rows = conn.execute(
            select(DatasetItem.id, DatasetItem.item_id, DatasetItem.input_json, DatasetItem.expected_output_json)
            .where(DatasetItem.dataset_id == candidate.summary.dataset_id, DatasetItem.valid_from <= version,
                   or_(DatasetItem.valid_to.is_(None), DatasetItem.valid_to > version),
                   DatasetItem.item_id.in_(select(ExperimentItem.dataset_item_id).where(
                       and_(ExperimentItem.experiment_id.in_(ids), ExperimentItem.dataset_item_row_id.is_(None)))))
        )
        for row_id, item_id, input_json, expected in rows:
            if item_id in missing:
                result[item_id] = (input_json, expected, row_id)
    return result


def _warnings(candidate: _Side, baseline: _Side, common: list[str],
              dataset_rows: dict[str, tuple[Any, Any, int | None]]) -> list[str]:
    c, b = candidate.summary, baseline.summary
    warnings = []
    if c.dataset_id != b.dataset_id:
        warnings.append(f"The experiments ran on different datasets ({b.dataset_name or b.dataset_id!s} for the "
                        f"baseline, {c.dataset_name or c.dataset_id!s} for the candidate): only items with the same "
                        "id are compared.")
    elif c.dataset_version != b.dataset_version:
        warnings.append(f"The experiments pinned different versions of the dataset (baseline "
                        f"{b.dataset_version:%Y-%m-%d %H:%M:%S}, candidate {c.dataset_version:%Y-%m-%d %H:%M:%S} UTC): "
                        "differences may come from the data, not the change.")
    only_b = len(set(baseline.items) - set(candidate.items))
    only_c = len(set(candidate.items) - set(baseline.items))
    if only_b or only_c:
        warnings.append(f"The experiments ran different items: {only_b} only in the baseline, {only_c} only in the "
                        f"candidate; {len(common)} items both ran are compared.")
    edited = sum(1 for key in common
                 if baseline.items[key].dataset_item_row_id is not None
                 and candidate.items[key].dataset_item_row_id is not None
                 and baseline.items[key].dataset_item_row_id != candidate.items[key].dataset_item_row_id)
    if edited:
        warnings.append(f"{edited} of the compared items were edited between the two runs (different item versions).")
    for name in sorted(set(candidate.versions) | set(baseline.versions)):
        seen_b, seen_c = baseline.versions.get(name, set()), candidate.versions.get(name, set())
        if seen_b and seen_c and seen_b != seen_c:
            warnings.append(f"{name} was scored by different evaluator versions (baseline {', '.join(sorted(seen_b))}, "
                            f"candidate {', '.join(sorted(seen_c))}).")
    for label, side in (("baseline", b), ("candidate", c)):
        if side.status != "completed":
            warnings.append(f"The {label} ({side.name}) is {side.status}, not completed.")
    if not common:
        warnings.append("The two experiments have no item in common: there is nothing to compare.")
    return warnings


def _compare_evaluators(candidate: _Side, baseline: _Side, common: list[str], confidence: float,
                        seed: int, lower_is_better: set[str]) -> list[EvaluatorComparison]:
    names = sorted({n for s in candidate.scores.values() for n in s} | {n for s in baseline.scores.values() for n in s})
    results = []
    for name in names:
        base = np.array([baseline.scores.get(k, {}).get(name, math.nan) for k in common], dtype=float)
        cand = np.array([candidate.scores.get(k, {}).get(name, math.nan) for k in common], dtype=float)
        paired = ~(np.isnan(base) | np.isnan(cand))
        base, cand = base[paired], cand[paired]
        diffs = cand - base
        n = int(base.size)
        common_fields: dict[str, Any] = {
            "name": name, "n": n,
            "baseline_n": sum(1 for s in baseline.scores.values() if name in s),
            "candidate_n": sum(1 for s in candidate.scores.values() if name in s),
            "baseline_versions": tuple(sorted(baseline.versions.get(name, ()))),
            "candidate_versions": tuple(sorted(candidate.versions.get(name, ()))),
            "higher_is_better": name not in lower_is_better,
        }
        if n == 0:
            results.append(EvaluatorComparison(baseline_mean=None, candidate_mean=None, mean_delta=None, ci_low=None,
                                               ci_high=None, p_value=None, test="none", wins=0, ties=0, losses=0,
                                               **common_fields))
            continue
        binary = bool(np.all(np.isin(base, (0.0, 1.0))) and np.all(np.isin(cand, (0.0, 1.0))))
        if binary:
            p = mcnemar_p(int(np.count_nonzero((base == 1) & (cand == 0))), int(np.count_nonzero((base == 0) & (cand == 1))))
        else:
            p = paired_permutation_p(diffs, seed=seed)
        low, high = bootstrap_ci(diffs, confidence=confidence, seed=seed)
        wins, ties, losses = win_tie_loss(diffs if name not in lower_is_better else -diffs, tie=TIE)
        results.append(EvaluatorComparison(
            baseline_mean=float(base.mean()), candidate_mean=float(cand.mean()), mean_delta=float(diffs.mean()),
            ci_low=low, ci_high=high, p_value=p, test="mcnemar" if binary else "permutation",
            wins=wins, ties=ties, losses=losses, **common_fields))
    return results


def _scales(candidate: _Side, baseline: _Side) -> dict[str, float]:
    """Each evaluator's observed range over both sides (1 when constant), to add deltas of
    evaluators on different scales."""
    values: dict[str, list[float]] = {}
    for side in (candidate, baseline):
        for scores in side.scores.values():
            for name, value in scores.items():
                values.setdefault(name, []).append(value)
    return {name: float(np.ptp(v)) or 1.0 for name, v in values.items()}


def _item(key: str, candidate: _Side, baseline: _Side, dataset_rows: dict[str, tuple[Any, Any, int | None]],
          scales: dict[str, float], signs: dict[str, float]) -> ItemComparison:
    b, c = baseline.items.get(key), candidate.items.get(key)
    b_scores, c_scores = baseline.scores.get(key, {}), candidate.scores.get(key, {})
    deltas = {name: c_scores[name] - b_scores[name] for name in sorted(c_scores) if name in b_scores} if b and c else {}
    input_json, expected, _ = dataset_rows.get(key, (None, None, None))
    return ItemComparison(
        dataset_item_id=key, input=input_json, expected=expected,
        baseline_output=b.output_json if b else None, candidate_output=c.output_json if c else None,
        baseline_status=b.status if b else None, candidate_status=c.status if c else None,
        baseline_error=b.error if b else None, candidate_error=c.error if c else None,
        baseline_scores=dict(b_scores), candidate_scores=dict(c_scores), deltas=deltas,
        regression=-sum(signs[name] * delta / scales[name] for name, delta in deltas.items()),
        baseline_latency_ms=b.latency_ms if b else None, candidate_latency_ms=c.latency_ms if c else None,
        baseline_cost_usd=b.cost_usd if b else None, candidate_cost_usd=c.cost_usd if c else None,
        baseline_trace_id=b.trace_id if b else None, candidate_trace_id=c.trace_id if c else None,
    )


def _metric(name: str, candidate: _Side, baseline: _Side, common: list[str]) -> MetricDelta:
    figures: dict[str, Any] = {}
    for label, side in (("baseline", baseline), ("candidate", candidate)):
        values = np.array([side.items[k]._mapping[name] for k in common], dtype=float)  # None -> nan
        values = values[~np.isnan(values)]
        figures[f"{label}_n"] = int(values.size)
        figures[f"{label}_mean"] = float(values.mean()) if values.size else None
        figures[f"{label}_p95"] = nearest_rank(values, 0.95) if values.size else None
        figures[f"{label}_total"] = float(values.sum()) if values.size else None
    return MetricDelta(name=name, **figures)


def _errors(candidate: _Side, baseline: _Side, common: list[str]) -> ErrorCounts:
    pairs = [(baseline.items[k].status, candidate.items[k].status) for k in common]
    return ErrorCounts(
        baseline=sum(1 for b, _ in pairs if b == "error"),
        candidate=sum(1 for _, c in pairs if c == "error"),
        new=sum(1 for b, c in pairs if b == "ok" and c == "error"),
        fixed=sum(1 for b, c in pairs if b == "error" and c == "ok"),
        compared=len(pairs),
    )


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b
