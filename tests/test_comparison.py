"""compare(): two experiments written straight into the tables over the same dataset items."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from looplab.errors import ConfigError, NotFound
from looplab.experiments.comparison import (
    compare,
    filter_items,
    output_text,
    sort_items,
    word_diff,
)
from looplab.store.engine import write_session
from looplab.store.models import ExperimentItem, Score
from tests.experiment_rows import T0, insert_dataset, insert_experiment, mark_evaluator

N = 30


def _dataset(url: str, n: int = N, name: str = "golden") -> tuple[int, dict[str, int]]:
    return insert_dataset(url, name, {f"q{k:02d}": ({"question": f"question {k}"}, f"the answer is {k}")
                                      for k in range(n)})


def _shifted_pair(url: str) -> tuple[int, int]:
    """Baseline and candidate over 30 items: correctness (pass/fail) drops on 10 items, helpfulness
    (continuous) drops by 0.5 +- noise everywhere, tone is noise; the candidate is 1.5x slower and
    costs twice as much."""
    dataset_id, rows = _dataset(url)
    rng = np.random.default_rng(11)
    base_help = rng.uniform(2, 4, N)
    cand_help = base_help - 0.5 + rng.normal(0, 0.2, N)
    tone_base = rng.integers(1, 6, N)
    tone_cand = tone_base + rng.choice([-1, 0, 1], N)
    baseline, candidate = {}, {}
    for k in range(N):
        key = f"q{k:02d}"
        correct_base = 1.0 if k < 28 else 0.0
        correct_cand = 0.0 if k < 10 else correct_base
        baseline[key] = {"output": f"the answer is {k}", "latency_ms": 10.0 * (k + 1), "cost_usd": 0.001,
                         "scores": {"correctness": correct_base, "helpfulness": float(base_help[k]),
                                    "tone": float(tone_base[k])}}
        candidate[key] = {"output": f"the answer is {k}" if k >= 10 else f"maybe the answer is {k + 1}",
                          "latency_ms": 15.0 * (k + 1), "cost_usd": 0.002,
                          "scores": {"correctness": correct_cand, "helpfulness": float(cand_help[k]),
                                     "tone": float(tone_cand[k])}}
    base_id = insert_experiment(url, "baseline", dataset_id, baseline, row_ids=rows)
    cand_id = insert_experiment(url, "candidate", dataset_id, candidate, row_ids=rows, baseline_id=base_id)
    return cand_id, base_id


def test_means_deltas_and_tests(db_url):
    cand_id, base_id = _shifted_pair(db_url)
    result = compare(db_url, cand_id, base_id)
    assert [e.name for e in result.evaluators] == ["correctness", "helpfulness", "tone"]
    assert result.warnings == []
    assert result.common_items == N

    correctness = result.evaluator("correctness")
    assert correctness is not None and correctness.binary and correctness.test == "mcnemar"
    # 28/30 pass in the baseline, 18/30 in the candidate; 10 discordant pairs all lost:
    # McNemar p = 2 * C(10, 0) / 2^10 = 0.001953.
    assert correctness.baseline_mean == pytest.approx(28 / 30)
    assert correctness.candidate_mean == pytest.approx(18 / 30)
    assert correctness.mean_delta == pytest.approx(-10 / 30)
    assert correctness.p_value == pytest.approx(2 / 1024)
    assert (correctness.wins, correctness.ties, correctness.losses) == (0, 20, 10)
    assert correctness.ci_low <= -10 / 30 <= correctness.ci_high
    assert correctness.significantly_worse(0.05)

    helpfulness = result.evaluator("helpfulness")
    assert helpfulness is not None and helpfulness.test == "permutation"
    assert helpfulness.mean_delta == pytest.approx(helpfulness.candidate_mean - helpfulness.baseline_mean)
    assert helpfulness.ci_low < -0.5 < helpfulness.ci_high  # the true shift
    assert helpfulness.ci_high < 0
    assert helpfulness.p_value < 0.001
    assert helpfulness.losses > 25

    tone = result.evaluator("tone")
    assert tone is not None
    assert tone.p_value > 0.05  # noise
    assert not tone.significantly_worse(0.05)
    assert tone.wins + tone.ties + tone.losses == N

    # Seeded: the same comparison twice gives the same numbers.
    assert compare(db_url, cand_id, base_id).evaluators == result.evaluators
    assert result.judge_versions == {"correctness": ["1"], "helpfulness": ["1"], "tone": ["1"]}


def test_cost_latency_and_errors(db_url):
    cand_id, base_id = _shifted_pair(db_url)
    result = compare(db_url, cand_id, base_id)
    latency = result.latency
    # Baseline latencies 10..300 ms, candidate 15..450 ms. Mean 155 vs 232.5.
    assert latency.baseline_mean == pytest.approx(155.0)
    assert latency.candidate_mean == pytest.approx(232.5)
    assert latency.mean_delta == pytest.approx(77.5)
    # p95 nearest rank over 30: rank ceil(28.5) = 29 -> 290 and 435.
    assert latency.baseline_p95 == 290.0
    assert latency.candidate_p95 == 435.0
    assert latency.p95_ratio == pytest.approx(1.5)
    assert result.cost.mean_ratio == pytest.approx(2.0)
    assert result.cost.baseline_total == pytest.approx(0.03)
    assert result.errors.baseline == result.errors.candidate == 0


def test_items_sorted_by_regression_and_filtered(db_url):
    dataset_id, rows = _dataset(db_url, 4)
    base = {"q00": {"output": "a", "scores": {"correctness": 1.0, "stars": 5.0}},
            "q01": {"output": "b", "scores": {"correctness": 1.0, "stars": 4.0}},
            "q02": {"output": "c", "scores": {"correctness": 0.0, "stars": 1.0}},
            "q03": {"output": "d", "scores": {"correctness": 1.0, "stars": 3.0}}}
    cand = {"q00": {"output": "a", "scores": {"correctness": 1.0, "stars": 5.0}},  # unchanged
            "q01": {"output": "b!", "scores": {"correctness": 0.0, "stars": 1.0}},  # worst drop
            "q02": {"output": "c", "scores": {"correctness": 1.0, "stars": 5.0}},  # improved
            "q03": {"output": None, "status": "error", "error": "timeout"}}  # newly failing
    base_id = insert_experiment(db_url, "b", dataset_id, base, row_ids=rows)
    cand_id = insert_experiment(db_url, "c", dataset_id, cand, row_ids=rows)
    result = compare(db_url, cand_id, base_id)
    assert [i.dataset_item_id for i in result.items] == ["q03", "q01", "q00", "q02"]
    worst = result.items[1]
    # Deltas scaled by each evaluator's range (correctness 0..1, stars 1..5): 1 + 3/4.
    assert worst.deltas == {"correctness": -1.0, "stars": -3.0}
    assert worst.regression == pytest.approx(1.75)
    assert result.items[0].newly_failed and result.items[0].candidate_error == "timeout"
    assert [i.dataset_item_id for i in result.changed_items()] == ["q03", "q01", "q02"]
    assert [i.dataset_item_id for i in filter_items(result.items, changed_only=True, evaluator="stars")] == ["q01", "q02"]
    assert [i.dataset_item_id for i in sort_items(result.items, "improvement")][:2] == ["q02", "q00"]
    assert [i.dataset_item_id for i in result.top_regressions()] == ["q03", "q01"]
    assert result.errors.new == 1 and result.errors.candidate == 1
    # Side by side carries the dataset item too.
    assert worst.input == {"question": "question 1"}
    assert worst.expected == "the answer is 1"
    assert worst.baseline_output == "b" and worst.candidate_output == "b!"
    assert worst.output_changed and not result.items[2].output_changed


def test_word_diffs():
    assert word_diff("the cat sat down", "the dog sat down") == [
        ("equal", "the "), ("delete", "cat"), ("insert", "dog"), ("equal", " sat down")]
    assert word_diff("", "new words") == [("insert", "new words")]
    assert word_diff("same", "same") == [("equal", "same")]
    segments = word_diff("a b c d", "a x c d e")
    assert "".join(t for op, t in segments if op != "delete") == "a x c d e"
    assert "".join(t for op, t in segments if op != "insert") == "a b c d"
    assert output_text({"output": "hi"}) == "hi"
    assert output_text(None) == ""
    assert output_text({"a": 1, "b": [2]}) == '{\n  "a": 1,\n  "b": [\n    2\n  ]\n}'


def test_item_diffs(db_url):
    cand_id, base_id = _shifted_pair(db_url)
    item = next(i for i in compare(db_url, cand_id, base_id).items if i.dataset_item_id == "q03")
    assert item.diff_vs_baseline() == [("insert", "maybe "), ("equal", "the answer is "), ("delete", "3"),
                                       ("insert", "4")]
    assert item.diff_vs_expected() == item.diff_vs_baseline()  # the baseline answered as expected


def test_mismatched_versions_and_items_are_warned(db_url):
    dataset_id, rows = _dataset(db_url, 3)
    base = {f"q0{k}": {"output": "x", "scores": {"correctness": (1.0, "judge-v1")}} for k in range(3)}
    cand = {f"q0{k}": {"output": "x", "scores": {"correctness": (1.0, "judge-v2")}} for k in range(2)}
    cand["q09"] = {"output": "y"}
    base_id = insert_experiment(db_url, "b", dataset_id, base, row_ids=rows)
    cand_id = insert_experiment(db_url, "c", dataset_id, cand, row_ids=rows, version=T0 + timedelta(days=1),
                                status="running")
    result = compare(db_url, cand_id, base_id)
    text = "\n".join(result.warnings)
    assert "different versions of the dataset" in text
    assert "1 only in the baseline, 1 only in the candidate; 2 items both ran" in text
    assert "correctness was scored by different evaluator versions (baseline judge-v1, candidate judge-v2)" in text
    assert "The candidate (c) is running, not completed." in text
    assert result.only_baseline == 1 and result.only_candidate == 1 and result.common_items == 2
    assert result.evaluator("correctness").n == 2
    assert result.judge_versions == {"correctness": ["judge-v1", "judge-v2"]}
    assert [i.dataset_item_id for i in result.items][-2:] == ["q02", "q09"]  # one-sided items last


def test_newest_score_wins_and_items_found_without_row_ids(db_url):
    dataset_id, _rows = _dataset(db_url, 2)
    base_id = insert_experiment(db_url, "b", dataset_id, {
        "q00": {"output": "a", "scores": {"correctness": 1.0}}, "q01": {"output": "b", "scores": {"correctness": 1.0}}})
    cand_id = insert_experiment(db_url, "c", dataset_id, {
        "q00": {"output": "a", "scores": {"correctness": 1.0}}, "q01": {"output": "b", "scores": {"correctness": 1.0}}})
    with write_session(db_url) as session:  # a re-run of the evaluator on q01 of the candidate
        item_id = session.query(ExperimentItem.id).filter_by(experiment_id=cand_id, dataset_item_id="q01").scalar()
        session.add(Score(id="rerun", experiment_item_id=item_id, name="correctness", value=0.0, source="code",
                          created_at=T0 + timedelta(hours=1)))
        session.add(Score(id="label-only", experiment_item_id=item_id, name="category", label="billing",
                          source="human", created_at=T0))
    result = compare(db_url, cand_id, base_id)
    assert result.evaluator("correctness").candidate_mean == 0.5
    assert result.evaluator("category") is None  # labels are not compared
    assert result.items[0].dataset_item_id == "q01"
    assert result.items[0].expected == "the answer is 1"  # found by item id at the pinned version


def test_no_common_scores_and_bad_ids(db_url):
    dataset_id, rows = _dataset(db_url, 2)
    base_id = insert_experiment(db_url, "b", dataset_id, {"q00": {"output": "a", "scores": {"correctness": 1.0}}},
                                row_ids=rows)
    cand_id = insert_experiment(db_url, "c", dataset_id, {"q00": {"output": "a"}}, row_ids=rows)
    result = compare(db_url, cand_id, base_id)
    correctness = result.evaluator("correctness")
    assert correctness.n == 0 and correctness.p_value is None and correctness.test == "none"
    assert correctness.baseline_n == 1 and correctness.candidate_n == 0
    with pytest.raises(NotFound):
        compare(db_url, cand_id, 999)
    with pytest.raises(ConfigError):
        compare(db_url, cand_id, cand_id)


def test_an_evaluator_where_lower_is_better_reads_a_drop_as_a_win(db_url):
    dataset_id, rows = _dataset(db_url, 20)
    baseline = {f"q{k:02d}": {"output": "a", "scores": {"hallucination": 1.0 if k < 12 else 0.0,
                                                        "correctness": 1.0}} for k in range(20)}
    candidate = {f"q{k:02d}": {"output": "b", "scores": {"hallucination": 1.0 if k < 2 else 0.0,
                                                         "correctness": 1.0}} for k in range(20)}
    base_id = insert_experiment(db_url, "baseline", dataset_id, baseline, row_ids=rows)
    cand_id = insert_experiment(db_url, "candidate", dataset_id, candidate, row_ids=rows)
    mark_evaluator(db_url, [base_id, cand_id], "hallucination",
                    {"type": "custom", "function": "m:f", "higher_is_better": False})

    better = compare(db_url, cand_id, base_id).evaluator("hallucination")
    assert better is not None and not better.higher_is_better
    assert better.mean_delta == pytest.approx(-0.5) and better.gain == pytest.approx(0.5)
    # 10 items went from hallucinating to not: wins for the candidate, McNemar p = 2 / 2^10.
    assert (better.wins, better.ties, better.losses) == (10, 10, 0)
    assert better.significantly_better(0.05) and not better.significantly_worse(0.05)

    worse = compare(db_url, base_id, cand_id)  # the other way round it is a regression
    hallucination = worse.evaluator("hallucination")
    assert hallucination.significantly_worse(0.05) and (hallucination.wins, hallucination.losses) == (0, 10)
    # The items that started hallucinating are the worst regressions.
    assert {i.dataset_item_id for i in worse.top_regressions(20)} == {f"q{k:02d}" for k in range(2, 12)}


def test_people_s_labels_on_the_items_traces_are_compared_too(db_url):
    dataset_id, rows = _dataset(db_url, 12)
    base_id = insert_experiment(db_url, "baseline", dataset_id, {f"q{k:02d}": {"output": "a"} for k in range(12)},
                                row_ids=rows)
    cand_id = insert_experiment(db_url, "candidate", dataset_id, {f"q{k:02d}": {"output": "b"} for k in range(12)},
                                row_ids=rows)

    def human(experiment: str, k: int, value: float, author: str, adjudicated: bool = False, at: int = 0) -> Score:
        return Score(id=f"h-{experiment}-{k}-{author}-{at}", trace_id=f"t-{experiment}-q{k:02d}", name="helpful",
                     value=value, source="human", author=author, created_at=T0 + timedelta(minutes=at),
                     metadata_json={"adjudicated": True} if adjudicated else None)

    with write_session(db_url) as session:
        for k in range(12):
            session.add(human("baseline", k, 1.0, "ann"))
            session.add(human("candidate", k, 0.0 if k < 8 else 1.0, "ann"))
        # Two annotators on q08 of the candidate: their mean counts; q09's later label replaces the first;
        # q10's disagreement was settled by an admin, whose value counts.
        session.add(human("candidate", 8, 0.0, "bob"))
        session.add(human("candidate", 9, 0.0, "ann", at=5))
        session.add(human("candidate", 10, 0.0, "bob"))
        session.add(human("candidate", 10, 1.0, "ada", adjudicated=True, at=9))
        # Not a person's label: a judge's score on the same trace stays out of "helpful (human)".
        session.add(Score(id="j-1", trace_id="t-candidate-q11", name="helpful", value=0.0, source="llm_judge",
                          created_at=T0))

    result = compare(db_url, cand_id, base_id)
    helpful = result.evaluator("helpful (human)")
    assert helpful is not None and helpful.n == 12
    assert helpful.baseline_mean == pytest.approx(1.0)
    # candidate: q00-q07 0, q08 mean(1, 0) = 0.5, q09 0 (the later label), q10 1 (adjudicated), q11 1
    assert helpful.candidate_mean == pytest.approx((0.5 + 0 + 1 + 1) / 12)
    assert helpful.significantly_worse(0.05)
    item = next(i for i in result.items if i.dataset_item_id == "q08")
    assert item.candidate_scores == {"helpful (human)": 0.5} and item.deltas == {"helpful (human)": -0.5}
