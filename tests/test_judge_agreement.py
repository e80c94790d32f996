"""Judge vs human: accuracy, kappa, correlations and confusion matrices against values worked out
by hand, the reliability flag, and pairing scores from the store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from looplab.evaluation import save_evaluator
from looplab.evaluation.judge_agreement import compare_labels, compare_values, judge_agreement, pearson, spearman
from looplab.store.engine import write_session
from looplab.store.models import Dataset, Experiment, ExperimentItem, Score
from looplab.tracing.ids import new_id

HUMAN = ["pass", "pass", "fail", "fail", "pass", "fail", "pass", "pass", "fail", "pass"]
JUDGE = ["pass", "fail", "fail", "fail", "pass", "pass", "pass", "pass", "fail", "pass"]
# 8 of 10 agree; chance agreement (6*6 + 4*4) / 100 = 0.52; kappa = (0.8 - 0.52) / 0.48 = 7/12
KAPPA = 7 / 12


def test_labels_by_hand() -> None:
    a = compare_labels(HUMAN, JUDGE)
    assert (a.kind, a.n, a.accuracy) == ("categorical", 10, 0.8)
    assert a.kappa == pytest.approx(KAPPA)
    assert a.confusion.labels == ("fail", "pass")
    assert a.confusion.counts == ((3, 1), (1, 5))  # rows: human; columns: judge
    assert a.confusion.rows()[0] == {"human": "fail", "fail": 3, "pass": 1}
    assert a.reliable is False and (a.statistic, a.threshold) == ("kappa", 0.6)
    assert compare_labels(HUMAN, JUDGE, kappa_threshold=0.5).reliable is True


def test_too_few_items_or_no_variation_cannot_tell() -> None:
    few = compare_labels(HUMAN[:4], JUDGE[:4])
    assert few.reliable is None and "Only 4 items" in few.note
    same = compare_labels(["pass"] * 12, ["pass"] * 12)
    assert same.accuracy == 1.0 and same.kappa is None and same.reliable is None
    assert compare_labels([], []).n == 0


def test_numbers_by_hand() -> None:
    human, judge = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 2.0, 3.0, 5.0, 5.0]
    a = compare_values(human, judge, min_items=5)
    assert (a.kind, a.n, a.accuracy) == ("numeric", 5, 0.6)
    # deviations (-2..2) and (-1.4, -1.4, -0.4, 1.6, 1.6): r = 9 / sqrt(10 * 9.2)
    assert a.pearson == pytest.approx(9 / 92 ** 0.5)
    # judge ranks with ties (1.5, 1.5, 3, 4.5, 4.5): rho = 9 / sqrt(10 * 9)
    assert a.spearman == pytest.approx(9 / 90 ** 0.5)
    # 3 of 5 identical; chance (1*2 + 1*1 + 1*2) / 25 = 0.2: kappa = (0.6 - 0.2) / 0.8
    assert a.kappa == pytest.approx(0.5)
    assert a.confusion.labels == ("1", "2", "3", "4", "5")
    assert a.confusion.counts[3] == (0, 0, 0, 0, 1)  # the human's 4 the judge called 5
    assert a.reliable is True and a.statistic == "spearman"
    assert compare_values(human, judge, tolerance=1, min_items=5).accuracy == 1.0
    assert compare_values(human, judge, min_items=5, correlation_threshold=0.95).reliable is False


def test_correlations_of_constant_or_tiny_samples_are_none() -> None:
    assert pearson([1, 1, 1], [1, 2, 3]) is None and spearman([1], [2]) is None
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [1, 10, 100]) == pytest.approx(1.0)


# --- from the store -------------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)


def score(name: str, source: str, *, trace_id: str | None = None, item_id: int | None = None, value=None,
          label=None, evaluator_id=None, version=None, at: datetime = NOW, metadata=None) -> Score:
    return Score(id=new_id(), trace_id=trace_id, experiment_item_id=item_id, name=name, value=value, label=label,
                 source=source, evaluator_id=evaluator_id, evaluator_version=version, created_at=at,
                 metadata_json=metadata, author="ada" if source == "human" else "judge")


def test_pairs_from_the_store(db_url: str) -> None:
    judge = save_evaluator(db_url, "verdict-judge", {"type": "judge", "template": "correctness", "model": "mock:judge"})
    other = save_evaluator(db_url, "length", {"type": "regex", "pattern": "^.{0,200}$"})
    with write_session(db_url) as session:
        for i, (h, j) in enumerate(zip(HUMAN, JUDGE)):
            trace = f"t{i}"
            session.add(score("verdict", "human", trace_id=trace, label=h, value=float(h == "pass")))
            # an older judge score of the same version is overridden by the newer one
            session.add(score("verdict", "llm_judge", trace_id=trace, label="fail", evaluator_id=judge.id, version="v1",
                              at=NOW - timedelta(hours=1)))
            session.add(score("verdict", "llm_judge", trace_id=trace, label=j, evaluator_id=judge.id, version="v1"))
        # two annotators disagree on t0, the admin settles it as "pass" (what the judge said)
        session.add(score("verdict", "human", trace_id="t0", label="fail", value=0.0))
        session.add(score("verdict", "human", trace_id="t0", label="pass", value=1.0, metadata={"adjudicated": True}))
        # an errored judge score and a score nobody labelled are left out
        session.add(score("verdict", "llm_judge", trace_id="t99", label="pass", evaluator_id=judge.id, version="v1"))
        session.add(score("verdict", "llm_judge", trace_id="t1", evaluator_id=judge.id, version="v2",
                          metadata={"error": "x"}))
        # a code check on another score name has no human counterpart
        session.add(score("length", "code", trace_id="t1", value=1.0, evaluator_id=other.id, version="c1"))
    (row,) = judge_agreement(db_url)
    assert (row.evaluator, row.evaluator_version, row.score_name) == ("verdict-judge", "v1", "verdict")
    assert row.agreement.n == 10 and row.agreement.accuracy == 0.8
    assert row.agreement.kappa == pytest.approx(KAPPA)
    assert row.agreement.reliable is False
    assert judge_agreement(db_url, kappa_threshold=0.5)[0].agreement.reliable is True
    assert judge_agreement(db_url, evaluator="length") == []


def test_numeric_pairs_on_experiment_items(db_url: str) -> None:
    judge = save_evaluator(db_url, "helpful-judge", {"type": "judge", "template": "helpfulness", "model": "mock:judge"})
    with write_session(db_url) as session:
        dataset = Dataset(name="golden", created_at=NOW)
        session.add(dataset)
        session.flush()
        experiment = Experiment(name="exp", dataset_id=dataset.id, dataset_version=NOW, variant_json={}, created_at=NOW)
        session.add(experiment)
        session.flush()
        items = [ExperimentItem(experiment_id=experiment.id, dataset_item_id=f"d{i}", created_at=NOW) for i in range(5)]
        session.add_all(items)
        session.flush()
        for item, h, j in zip(items, [1, 2, 3, 4, 5], [2, 2, 3, 5, 5]):
            session.add(score("helpfulness", "human", item_id=item.id, trace_id=f"x{item.id}", value=h))
            session.add(score("helpfulness", "llm_judge", item_id=item.id, value=j, evaluator_id=judge.id,
                              version="h1"))
    (row,) = judge_agreement(db_url, min_items=5)
    a = row.agreement
    assert (a.kind, a.n, a.accuracy) == ("numeric", 5, 0.6)
    assert a.spearman == pytest.approx(9 / 90 ** 0.5) and a.reliable is True
    assert judge_agreement(db_url, min_items=5, tolerance=1)[0].agreement.accuracy == 1.0
