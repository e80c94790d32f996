"""How far annotators agree, where they disagree, and the adjudicated value used downstream.

For items labelled by two or more people, per score config of the queue:

- boolean and unordered categorical labels: Cohen's kappa when the same two people labelled
  every shared item, Krippendorff's alpha (nominal) otherwise;
- ordered categorical labels (options with numeric values): Krippendorff's alpha, ordinal;
- numeric scores: Krippendorff's alpha, interval;
- free text: not measured (there is no notion of two texts agreeing).

Alpha handles any number of annotators and items with missing labels. Both statistics are 1 for
perfect agreement and 0 for agreement no better than chance; below 0.667 is usually read as
unreliable, 0.8 and over as reliable (Krippendorff).

Disagreements are items whose labels differ at all (numeric labels are multiples of the config's
step, so 3 against 4 on a 1-5 scale is a disagreement). An admin adjudicates: the adjudicated
values (and corrected output) are what ``resolved_labels`` returns and what datasets built from
the queue take. The adjudicated value is also the only ``human`` score the item leaves on its
trace for that score name: the annotators' own score rows for it are deleted (their labels stay
in ``annotations``, with author and time, so agreement is still measured on them), and a label
given after the ruling adds no score row for it. Monitoring, the trace detail, experiment
comparison and judge agreement thus see one value per adjudicated item.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import krippendorff
import numpy as np
from sqlalchemy import select

from looplab.annotation.queues import _configs, _item, _queue
from looplab.annotation.score_configs import ScoreConfigView, scores_for_label
from looplab.annotation.users import Viewer
from looplab.errors import ConfigError
from looplab.store.engine import read_session, write_session
from looplab.store.models import Annotation, QueueItem, Score, ScoreConfig
from looplab.store.types import utcnow

RELIABLE, TENTATIVE = 0.8, 0.667
NUMERIC_EPSILON = 1e-9  # relative: two numeric labels closer than this are the same value


@dataclass(frozen=True)
class ConfigAgreement:
    """Agreement on one score config across a queue's multiply-labelled items."""

    config: str
    data_type: str
    statistic: str | None  # "Cohen's kappa", "Krippendorff's alpha (nominal)", ... or None
    value: float | None  # None when it cannot be measured; ``note`` says why
    items: int  # items with two or more labels for this config
    annotators: int
    percent_agreement: float | None  # share of items where every label is the same
    disagreements: int
    note: str | None = None

    @property
    def reading(self) -> str:
        """A plain-words reading of ``value``."""
        if self.value is None:
            return "not measured"
        if self.value >= RELIABLE:
            return "reliable"
        if self.value >= TENTATIVE:
            return "tentative"
        return "unreliable"


@dataclass(frozen=True)
class Disagreement:
    """An item whose annotators gave different values for one config."""

    item_id: int
    trace_id: str
    config: str
    values: dict[str, Any]  # author -> value given
    adjudicated: Any = None
    adjudicated_by: str | None = None


def cohens_kappa(first: Sequence[Any], second: Sequence[Any]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items (in the same order); ``None`` when
    chance agreement is total (both gave one and the same label to everything)."""
    if len(first) != len(second) or not first:
        raise ValueError("kappa needs two equally long, non-empty lists of labels")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1 - expected)


def krippendorff_alpha(ratings: Sequence[Mapping[str, float]], level: str) -> float | None:
    """Krippendorff's alpha of ``ratings`` (one mapping of rater -> coded value per item) at
    ``level`` (nominal, ordinal, interval); ``None`` when there is no variation to measure."""
    raters = sorted({r for item in ratings for r in item})
    data = np.full((len(raters), len(ratings)), np.nan)
    index = {r: i for i, r in enumerate(raters)}
    for j, item in enumerate(ratings):
        for rater, value in item.items():
            data[index[rater], j] = value
    values = data[~np.isnan(data)]
    if len(np.unique(values)) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def agreement(url: str, queue_id: int) -> list[ConfigAgreement]:
    """Agreement per score config of the queue, over its items labelled by two or more people."""
    with read_session(url) as session:
        configs = _configs(session, queue_id)
        labels = _labels(session, queue_id)
    return [_agreement(config, labels) for config in configs]


def disagreements(url: str, queue_id: int, config_name: str | None = None) -> list[Disagreement]:
    """Items whose labels differ, per config (all configs unless one is named), oldest first,
    with the adjudicated value when an admin has settled them."""
    with read_session(url) as session:
        configs = [c for c in _configs(session, queue_id) if config_name in (None, c.name)]
        labels = _labels(session, queue_id)
        settled = _adjudications(session, queue_id)
    found = []
    for config in configs:
        if config.data_type == "text":
            continue
        for (item_id, trace_id), by_author in labels.items():
            given = {a: v[config.name] for a, v in by_author.items() if v.get(config.name) is not None}
            if len(given) >= 2 and _differ(config, list(given.values())):
                ruling = settled.get(item_id)
                found.append(Disagreement(
                    item_id=item_id, trace_id=trace_id, config=config.name, values=given,
                    adjudicated=(ruling.values_json or {}).get(config.name) if ruling else None,
                    adjudicated_by=ruling.author if ruling else None,
                ))
    return found


def adjudicate(url: str, item_id: int, viewer: Viewer, values: Mapping[str, Any], *,
               comment: str | None = None, corrected_output: Any = None, now: datetime | None = None) -> None:
    """Settle an item: ``values`` (by config name) become the item's labels downstream. Admins only.

    Adjudicating again replaces the earlier ruling's values for the scores given here; its other
    values (and its comment and corrected output, unless new ones are given) stand, so an admin
    can settle one score at a time. In the same transaction the item's ``human`` score rows for
    the ruled score names (the annotators' and an earlier ruling's) are replaced by one
    adjudicated score each."""
    if not viewer.is_admin:
        raise ConfigError("Only an admin can adjudicate disagreements.")
    now = now or utcnow()
    given = {k: v for k, v in values.items() if v is not None and v != ""}
    if not given:
        raise ConfigError("Give the adjudicated value of at least one score.")
    with write_session(url) as session:
        item = _item(session, item_id)
        queue = _queue(session, item.queue_id)
        configs = _configs(session, queue.id)
        names = {c.name for c in configs}
        unknown = sorted(set(given) - names)
        if unknown:
            raise ConfigError(f"This queue does not score {', '.join(unknown)}.")
        earlier = _ruling(session, item.id)
        ruled = {**((earlier.values_json or {}) if earlier else {}), **given}
        note = (comment or "").strip() or (earlier.comment if earlier else None)
        if corrected_output is None and earlier is not None:
            corrected_output = earlier.corrected_output_json
        if earlier is not None:
            session.delete(earlier)
            session.flush()
        ruling = Annotation(queue_item_id=item.id, queue_id=queue.id, trace_id=item.trace_id, author=viewer.username,
                            kind="adjudication", values_json=ruled, comment=note,
                            corrected_output_json=corrected_output, created_at=now)
        session.add(ruling)
        session.flush()
        scored = {k: v for k, v in ruled.items() if k in names}  # a config since taken off the queue: no score
        _delete_item_scores(session, item, set(scored))
        session.add_all(scores_for_label(configs, scored, trace_id=item.trace_id, author=viewer.username,
                                         comment=note, created_at=now,
                                         metadata={"queue": queue.name, "queue_item_id": item.id,
                                                   "annotation_id": ruling.id, "adjudicated": True}))


@dataclass(frozen=True)
class ResolvedLabels:
    """What a queue item's labels come to: the values used downstream and where they came from."""

    values: dict[str, Any]
    corrected_output: Any
    comments: list[str]
    annotators: list[str]
    adjudicated_by: str | None
    unresolved: list[str]  # configs whose labels disagree and are not adjudicated


@dataclass(frozen=True)
class PendingLabel:
    """A label still on screen (not submitted): it counts as ``author``'s label of item
    ``item_id``, in place of any label they stored, and as the latest one."""

    item_id: int
    author: str
    values: Mapping[str, Any]
    corrected_output: Any = None


@dataclass(frozen=True)
class TraceLabels:
    """A trace's human labels as one set of values: what a dataset item built from it records."""

    values: dict[str, Any]
    corrected_output: Any  # None when nobody corrected the output
    unresolved: list[str]  # score names left out because their labels disagree, unadjudicated


@dataclass(frozen=True)
class _Given:
    author: str
    values: Mapping[str, Any]
    comment: str | None
    corrected_output: Any


def resolved_labels(url: str, item_id: int, pending: PendingLabel | None = None) -> ResolvedLabels:
    """The labels of an item as datasets and experiments should use them: the admin's ruling when
    there is one; otherwise, per config, the value when every label agrees (disagreeing configs
    are listed in ``unresolved`` and left out), and the latest corrected output given.
    ``pending``, for this item, is counted as one more label (see ``PendingLabel``)."""
    with read_session(url) as session:
        return _resolve(session, item_id, pending)


def trace_labels(url: str, trace_id: str, pending: PendingLabel | None = None) -> TraceLabels:
    """Every human label of a trace as one set of values by score name.

    Sources, each overriding the one before for the names it gives: the manual ``human`` scores
    of the trace that did not come from a queue (the latest per name, as entered: a label, a
    number, true/false, or the text); then the resolved labels of each queue item of the trace
    (``resolved_labels``: adjudicated, else agreed values), oldest item first; then, with
    ``pending``, its item resolved with that label counted. The corrected output is the one of
    the last of those items that has one (``pending``'s own, or its ruling's, comes first)."""
    with read_session(url) as session:
        items = list(session.scalars(select(QueueItem.id).where(QueueItem.trace_id == trace_id)
                                     .order_by(QueueItem.created_at, QueueItem.id)))
        if pending is not None and pending.item_id in items:
            items.remove(pending.item_id)
            items.append(pending.item_id)  # the item being labelled has the last word
        resolved = [_resolve(session, item_id, pending) for item_id in items]
        values = _manual_labels(session, trace_id)
    unresolved: list[str] = []
    for labels in resolved:
        values.update(labels.values)
        unresolved += [n for n in labels.unresolved if n not in unresolved]
    corrected = next((r.corrected_output for r in reversed(resolved) if r.corrected_output is not None), None)
    return TraceLabels(values=values, corrected_output=corrected,
                       unresolved=[n for n in unresolved if n not in values])


def _resolve(session: Any, item_id: int, pending: PendingLabel | None) -> ResolvedLabels:
    item = _item(session, item_id)
    configs = {c.name: c for c in _configs(session, item.queue_id)}
    rows = session.execute(select(
        Annotation.kind, Annotation.author, Annotation.values_json, Annotation.comment,
        Annotation.corrected_output_json).where(
        Annotation.queue_item_id == item.id, Annotation.kind.in_(("label", "adjudication")))
        .order_by(Annotation.created_at, Annotation.id)).all()
    labels = [_Given(r.author, r.values_json or {}, r.comment, r.corrected_output_json)
              for r in rows if r.kind == "label"]
    if pending is not None and pending.item_id == item.id:
        labels = [g for g in labels if g.author != pending.author]
        labels.append(_Given(pending.author, {k: v for k, v in pending.values.items() if v is not None and v != ""},
                             None, pending.corrected_output))
    ruling = next((r for r in rows if r.kind == "adjudication"), None)
    values, unresolved = _agreed(labels, configs)
    corrected = next((g.corrected_output for g in reversed(labels) if g.corrected_output is not None), None)
    if ruling is not None:
        values.update(ruling.values_json or {})
        unresolved = [n for n in unresolved if n not in (ruling.values_json or {})]
        if ruling.corrected_output_json is not None:
            corrected = ruling.corrected_output_json
    return ResolvedLabels(
        values=values, corrected_output=corrected,
        comments=[g.comment for g in labels if g.comment] + ([ruling.comment] if ruling and ruling.comment else []),
        annotators=[g.author for g in labels],
        adjudicated_by=ruling.author if ruling else None, unresolved=unresolved,
    )


def _agreed(labels: Sequence[_Given], configs: Mapping[str, ScoreConfigView]) -> tuple[dict[str, Any], list[str]]:
    """Per score name, the value every label agrees on; and the names whose labels disagree."""
    values: dict[str, Any] = {}
    unresolved: list[str] = []
    for name in dict.fromkeys(n for g in labels for n in g.values):
        given = [g.values[name] for g in labels if g.values.get(name) is not None]
        config = configs.get(name)
        if len(given) == 1 or (config is not None and not _differ(config, given)) or \
                (config is None and len(set(map(repr, given))) == 1):
            values[name] = given[-1]
        else:
            unresolved.append(name)
    return values, unresolved


def _manual_labels(session: Any, trace_id: str) -> dict[str, Any]:
    """The latest manual ``human`` score of the trace per name (not from a queue, not on a span or
    an experiment item), as a person entered it."""
    found: dict[str, Any] = {}
    for score, data_type in session.execute(
            select(Score, ScoreConfig.data_type).outerjoin(ScoreConfig, ScoreConfig.id == Score.config_id)
            .where(Score.trace_id == trace_id, Score.source == "human", Score.span_id.is_(None),
                   Score.experiment_item_id.is_(None))
            .order_by(Score.created_at, Score.id)):
        if "queue_item_id" not in (score.metadata_json or {}):
            found[score.name] = _as_entered(score, data_type)
    return found


def _as_entered(score: Score, data_type: str | None) -> Any:
    """A score row back as the value a person gives in a label (see ``score_configs.score_value``)."""
    if data_type == "boolean":
        return bool(score.value) if score.value is not None else score.label == "true"
    if data_type == "text":
        return score.comment
    if data_type == "numeric":
        return score.value
    return score.label if score.label is not None else score.value


# --- internals ------------------------------------------------------------------------------------


def _labels(session: Any, queue_id: int) -> dict[tuple[int, str], dict[str, dict[str, Any]]]:
    """(item id, trace id) -> author -> values, for every label of the queue."""
    labels: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    for item_id, trace_id, author, values in session.execute(
            select(Annotation.queue_item_id, QueueItem.trace_id, Annotation.author, Annotation.values_json)
            .join(QueueItem, QueueItem.id == Annotation.queue_item_id)
            .where(Annotation.queue_id == queue_id, Annotation.kind == "label")
            .order_by(Annotation.queue_item_id, Annotation.created_at)):
        labels.setdefault((item_id, trace_id), {})[author] = values or {}
    return labels


def _ruling(session: Any, item_id: int) -> Annotation | None:
    """The item's adjudication, if an admin gave one (there is at most one an item)."""
    return session.scalar(select(Annotation).where(Annotation.queue_item_id == item_id,
                                                   Annotation.kind == "adjudication"))


def _delete_item_scores(session: Any, item: QueueItem, names: set[str]) -> None:
    """Delete the ``human`` scores that labels (or a ruling) of this queue item left on its trace
    under ``names``. Score rows link to their item through their metadata, so the trace's human
    scores of those names (a handful) are read and matched here rather than in SQL."""
    if not names:
        return
    for score in session.scalars(select(Score).where(
            Score.trace_id == item.trace_id, Score.source == "human", Score.name.in_(sorted(names)))):
        if (score.metadata_json or {}).get("queue_item_id") == item.id:
            session.delete(score)


def _adjudications(session: Any, queue_id: int) -> dict[int, Any]:
    """Item id -> its ruling (author, values_json)."""
    return {row.queue_item_id: row for row in session.execute(
        select(Annotation.queue_item_id, Annotation.author, Annotation.values_json).where(
            Annotation.queue_id == queue_id, Annotation.kind == "adjudication"))}


def _code(config: ScoreConfigView, value: Any) -> float | str | None:
    """A label as the statistic compares it: a number for numeric and boolean scores, the rank
    of an ordered category (by value when every option has one, else by its place in the list),
    the label itself otherwise."""
    if value is None:
        return None
    if config.data_type == "numeric":
        return float(value)
    if config.data_type == "boolean":
        if isinstance(value, str):
            return 1.0 if value.strip().lower() in ("true", "yes", "1") else 0.0
        return 1.0 if value else 0.0
    if config.data_type == "categorical":
        label = str(value)
        if config.ordered:
            options = list(config.categories)
            if all(c.value is not None for c in options):
                options.sort(key=lambda c: c.value)  # type: ignore[arg-type, return-value]
            for rank, option in enumerate(options):
                if option.label == label:
                    return float(rank)
        return label
    return str(value)


def _differ(config: ScoreConfigView, values: Sequence[Any]) -> bool:
    """Whether labels disagree: any two differ. Numeric labels are multiples of the config's step,
    so a gap of one step (3 against 4) is a disagreement; the epsilon only absorbs float noise
    (0.1 * 3 against 0.3)."""
    codes = [_code(config, v) for v in values]
    if config.data_type == "numeric":
        numbers = [float(c) for c in codes if c is not None]
        return bool(numbers) and max(numbers) - min(numbers) > NUMERIC_EPSILON * max(1.0, *map(abs, numbers))
    return len(set(codes)) > 1


def _agreement(config: ScoreConfigView, labels: Mapping[tuple[int, str], Mapping[str, Mapping[str, Any]]]) -> ConfigAgreement:
    rated = []
    for by_author in labels.values():
        given = {a: _code(config, v.get(config.name)) for a, v in by_author.items()
                 if v.get(config.name) is not None}
        if len(given) >= 2:
            rated.append(given)
    annotators = len({a for item in rated for a in item})
    base = {"config": config.name, "data_type": config.data_type, "items": len(rated), "annotators": annotators}
    if config.data_type == "text":
        return ConfigAgreement(**base, statistic=None, value=None, percent_agreement=None, disagreements=0,
                               note="Free text is not compared.")
    if not rated:
        return ConfigAgreement(**base, statistic=None, value=None, percent_agreement=None, disagreements=0,
                               note="No item has two labels yet; set the queue to 2+ annotations per item.")
    differing = sum(1 for item in rated if _differ(config, list(item.values())))
    percent = (len(rated) - differing) / len(rated)
    nominal = config.data_type == "boolean" or (config.data_type == "categorical" and not config.ordered)
    pairs = {tuple(sorted(item)) for item in rated}
    if nominal and len(pairs) == 1 and all(len(item) == 2 for item in rated):
        first, second = next(iter(pairs))
        value = cohens_kappa([item[first] for item in rated], [item[second] for item in rated])
        statistic = "Cohen's kappa"
    else:
        level = "nominal" if nominal else ("interval" if config.data_type == "numeric" else "ordinal")
        if nominal:
            codes = {c: float(i) for i, c in enumerate(sorted({str(v) for item in rated for v in item.values()}))}
            coded = [{a: codes[str(v)] for a, v in item.items()} for item in rated]
        else:
            coded = [{a: float(v) for a, v in item.items()} for item in rated]  # type: ignore[arg-type]
        value = krippendorff_alpha(coded, level)
        statistic = f"Krippendorff's alpha ({level})"
    note = None if value is not None else "Every label is the same value, so chance agreement cannot be told apart."
    return ConfigAgreement(**base, statistic=statistic, value=value, percent_agreement=percent,
                           disagreements=differing, note=note)
