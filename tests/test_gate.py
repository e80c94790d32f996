"""The ship gate: policies, decisions, recording, promotion and the pull-request summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from looplab.errors import ConfigError, NotFound
from looplab.experiments.comparison import compare
from looplab.experiments.gate import (
    DEFAULT_POLICY,
    Policy,
    decide,
    list_decisions,
    promote,
    promoted_baseline,
    record_decision,
)
from looplab.experiments.report import as_dict, render_markdown
from tests.experiment_rows import T0, insert_dataset, insert_experiment, mark_evaluator

N = 20


def _pair(url: str, *, correctness_drop: int = 0, slower: float = 1.0, costlier: float = 1.0,
          judge_drop: int = 0, fail: int = 0) -> tuple[int, int]:
    """20 items; the candidate loses ``correctness`` on the first ``correctness_drop`` items, the
    ``judge`` evaluator on the first ``judge_drop``, and errors on the last ``fail`` items."""
    dataset_id, rows = insert_dataset(url, "golden", {f"q{k:02d}": ({"q": k}, f"answer {k}") for k in range(N)})
    base, cand = {}, {}
    for k in range(N):
        key = f"q{k:02d}"
        base[key] = {"output": f"answer {k}", "latency_ms": 100.0 + k, "cost_usd": 0.01,
                     "scores": {"correctness": 1.0, "judge": 4.0}}
        if k >= N - fail:
            cand[key] = {"output": None, "status": "error", "error": "rate limited", "latency_ms": 5.0}
            continue
        cand[key] = {"output": f"answer {k}" if k >= correctness_drop else f"wrong {k}",
                     "latency_ms": (100.0 + k) * slower, "cost_usd": 0.01 * costlier,
                     "scores": {"correctness": 0.0 if k < correctness_drop else 1.0,
                                "judge": 1.0 if k < judge_drop else 4.0}}
    base_id = insert_experiment(url, "baseline", dataset_id, base, row_ids=rows)
    cand_id = insert_experiment(url, "candidate", dataset_id, cand, row_ids=rows, baseline_id=base_id)
    return cand_id, base_id


def _statuses(verdict) -> dict[tuple[str, str | None], str]:
    return {(r.rule, r.evaluator): r.status for r in verdict.reasons}


def test_default_policy_ships_an_equal_candidate(db_url):
    comparison = compare(db_url, *_pair(db_url))
    verdict = decide(comparison)
    assert verdict.outcome == "ship" and verdict.headline == "SHIP"
    assert _statuses(verdict) == {("no_significant_regression", "correctness"): "passed",
                                  ("no_significant_regression", "judge"): "passed"}
    assert "correctness is not significantly worse: mean 1 -> 1 (0, 95% CI 0 to 0), p = 1 (McNemar) over 20 items" \
        in verdict.reasons[0].message


def test_default_policy_stops_a_significant_regression(db_url):
    comparison = compare(db_url, *_pair(db_url, correctness_drop=8))
    verdict = decide(comparison, DEFAULT_POLICY)
    assert verdict.outcome == "dont_ship" and verdict.headline == "DON'T SHIP"
    failed = verdict.failed
    assert [r.evaluator for r in failed] == ["correctness"]
    # 8 discordant pairs, all lost: p = 2 / 2^8 = 0.0078.
    assert "correctness is significantly worse than the baseline: mean 1 -> 0.6 (-0.4" in failed[0].message
    assert "p = 0.0078 (McNemar) over 20 items; p < 0.05." in failed[0].message
    assert failed[0].details["p_value"] == pytest.approx(2 / 256)
    assert verdict.reasons[0] is failed[0]  # failed reasons first


def test_unreliable_judge_is_reported_but_does_not_decide(db_url):
    comparison = compare(db_url, *_pair(db_url, judge_drop=10))
    assert decide(comparison).outcome == "dont_ship"
    verdict = decide(comparison, unreliable_judges={"judge"})
    assert verdict.outcome == "ship"
    skipped = [r for r in verdict.reasons if r.evaluator == "judge"]
    assert skipped[0].status == "skipped"
    assert skipped[0].message.startswith("judge: unreliable judge, reported but not deciding (significantly worse")
    assert verdict.unreliable_judges == ("judge",)


def test_each_rule_kind(db_url):
    comparison = compare(db_url, *_pair(db_url, correctness_drop=1, slower=1.3, costlier=1.05, fail=2))
    policy = Policy.from_dict({"name": "release", "alpha": 0.05, "rules": [
        {"kind": "no_significant_regression", "evaluators": ["correctness"]},
        {"kind": "not_below_baseline", "evaluator": "correctness", "margin": 0.02},
        {"kind": "not_below_baseline", "evaluator": "judge", "margin": 0.5},
        {"kind": "min_mean", "evaluator": "correctness", "min": 0.9},
        {"kind": "latency", "stat": "p95", "max_ratio": 1.2},
        {"kind": "cost", "max_ratio": 1.1},
        {"kind": "errors", "max_new": 1},
    ]})
    verdict = decide(comparison, policy)
    by_rule = {(r.rule, r.evaluator): r for r in verdict.reasons}
    # 18 items paired (2 failed): correctness 1 -> 17/18, one discordant pair: p = 1.
    assert by_rule[("no_significant_regression", "correctness")].status == "passed"
    below = by_rule[("not_below_baseline", "correctness")]
    assert below.status == "failed"
    assert below.message == ("correctness: candidate mean 0.944 is below baseline 1 - 0.02 = 0.98 "
                             "(by 0.0356, over 18 items).")
    assert by_rule[("not_below_baseline", "judge")].status == "passed"
    assert by_rule[("min_mean", "correctness")].status == "passed"
    latency = by_rule[("latency", None)]
    # p95 nearest rank over 20 baseline latencies 100..119: rank 19 -> 118 ms; the candidate's 18 ok
    # items at 1.3x (130..152.1) and 2 failures at 5 ms: rank 19 is the 17th ok one, 1.3 * 116 = 150.8 ms;
    # 150.8 / 118 = 1.278.
    assert latency.status == "failed"
    assert latency.message == "P95 latency 151 ms vs 118 ms in the baseline: 1.28x, above the 1.20x allowed."
    assert by_rule[("cost", None)].status == "passed"
    errors = by_rule[("errors", None)]
    assert errors.status == "failed"
    assert errors.message == ("2 of 20 items fail in the candidate (0 in the baseline; 2 newly failing, 0 fixed): "
                              "more newly failing items than the 1 allowed.")
    assert verdict.outcome == "dont_ship"
    assert policy.to_dict()["rules"][1] == {"kind": "not_below_baseline", "evaluator": "correctness", "margin": 0.02}
    assert Policy.from_dict(policy.to_dict()) == policy


def test_missing_data(db_url):
    comparison = compare(db_url, *_pair(db_url))
    policy = Policy.from_dict({"rules": [{"kind": "min_mean", "evaluator": "faithfulness", "min": 0.5},
                                         {"kind": "cost", "stat": "total", "max_ratio": 1.0}]})
    verdict = decide(comparison, policy)
    statuses = _statuses(verdict)
    assert statuses[("min_mean", "faithfulness")] == "failed"  # named but never scored
    assert statuses[("cost", None)] == "passed"
    # Nothing checkable at all is not a SHIP.
    only_latency = decide(compare(db_url, *_pair_without_measures(db_url)),
                          Policy.from_dict({"rules": [{"kind": "latency", "max_ratio": 1.2}]}))
    assert only_latency.outcome == "dont_ship"
    assert [r.status for r in only_latency.reasons] == ["failed", "skipped"]
    assert only_latency.reasons[0].rule == "evidence"


def _pair_without_measures(url: str) -> tuple[int, int]:
    dataset_id, rows = insert_dataset(url, "bare", {"a": ("x", "y")})
    base_id = insert_experiment(url, "bare-b", dataset_id, {"a": {"output": "y"}}, row_ids=rows)
    cand_id = insert_experiment(url, "bare-c", dataset_id, {"a": {"output": "y"}}, row_ids=rows)
    return cand_id, base_id


def test_policy_from_yaml_file(tmp_path: Path):
    path = tmp_path / "gate.yaml"
    path.write_text("name: release-gate\nrules:\n  - kind: no_significant_regression\n    alpha: 0.01\n"
                    "  - kind: latency\n    max_ratio: 1.2\n", encoding="utf-8")
    policy = Policy.from_yaml_file(path)
    assert policy.name == "release-gate"
    assert [r.kind for r in policy.rules] == ["no_significant_regression", "latency"]
    assert policy.rules[0].settings["alpha"] == 0.01
    assert policy.rules[1].settings == {"stat": "p95", "max_ratio": 1.2}


@pytest.mark.parametrize(("text", "problems"), [
    ("rules:\n  - kind: no_such_rule\n", ["rules[0] has an unknown kind 'no_such_rule' (known: no_significant_regression"]),
    ("rules:\n  - kind: latency\n    max_ratio: fast\n    stat: p99\n",
     ["rules[0] (latency): stat must be one of mean, p95, got 'p99'",
      "rules[0] (latency): max_ratio must be a number, got 'fast'"]),
    ("rules:\n  - kind: min_mean\n    min: 0.5\n    evaluater: x\n",
     ["rules[0] (min_mean): unknown setting 'evaluater' (known: evaluator, min)",
      "rules[0] (min_mean): 'evaluator' is required"]),
    (("rules:\n  - kind: errors\n    max_new: true\n  - kind: no_significant_regression\n    alpha: 5\n"
     "    evaluators: correctness\n"),
     ["rules[0] (errors): max_new must be a whole number >= 0, got True",
      "rules[1] (no_significant_regression): alpha must be at most 1, got 5",
      "rules[1] (no_significant_regression): evaluators must be a list of evaluator names, got 'correctness'"]),
    ("rules: []\nthreshold: 3\n", ["unknown setting(s) 'threshold' (known: name, alpha, rules)",
                                   "rules must be a non-empty list of rules"]),
    ("rules:\n  - latency\n", ["rules[0] must be a mapping with a 'kind', got 'latency'"]),
    ("rules: [\n", ["is not valid YAML"]),
    ("- kind: latency\n", ["must be a mapping with a 'rules' list, got list"]),
])
def test_bad_policy_files(tmp_path: Path, text: str, problems: list[str]):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Policy.from_yaml_file(path)
    message = str(err.value)
    assert message.startswith(f"The policy file {path}")
    for problem in problems:
        assert problem in message
    if len(problems) > 1:
        assert f"has {len(problems)} problems:" in message


def test_missing_policy_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="Cannot read the policy file"):
        Policy.from_yaml_file(tmp_path / "nope.yaml")


def test_record_and_list_decisions(db_url):
    cand_id, base_id = _pair(db_url, correctness_drop=8)
    comparison = compare(db_url, cand_id, base_id)
    policy = Policy.from_dict({"name": "strict", "rules": [{"kind": "no_significant_regression"}]})
    verdict = decide(comparison, policy, unreliable_judges={"judge"})
    first = record_decision(db_url, comparison, verdict, policy, created_by="ci")
    second = record_decision(db_url, comparison, decide(comparison), DEFAULT_POLICY)
    decisions = list_decisions(db_url, cand_id)
    assert [d.id for d in decisions] == [second, first]
    recorded = decisions[1]
    assert recorded.outcome == "dont_ship" and recorded.headline == "DON'T SHIP"
    assert recorded.experiment_id == cand_id and recorded.baseline_id == base_id
    assert recorded.dataset_version == T0
    assert recorded.created_by == "ci"
    assert recorded.policy == {"name": "strict", "alpha": 0.05, "rules": [{"kind": "no_significant_regression"}]}
    assert recorded.judge_versions == {"correctness": ["1"], "judge": ["1"]}
    assert recorded.reasons[0]["status"] == "failed" and recorded.reasons[0]["evaluator"] == "correctness"
    assert recorded.summary["unreliable_judges"] == ["judge"]
    assert recorded.summary["evaluators"][0]["name"] == "correctness"
    assert list_decisions(db_url, base_id) == []


def test_promote_and_promoted_baseline(db_url):
    cand_id, base_id = _pair(db_url)
    dataset_id = compare(db_url, cand_id, base_id).candidate.dataset_id
    assert promoted_baseline(db_url, dataset_id) is None
    promote(db_url, base_id)
    assert promoted_baseline(db_url, dataset_id) == base_id
    promote(db_url, cand_id)
    assert promoted_baseline(db_url, dataset_id) == cand_id  # the newest promotion wins
    running = insert_experiment(db_url, "still-running", dataset_id, {}, status="running")
    with pytest.raises(ConfigError, match="only a completed experiment can become a baseline"):
        promote(db_url, running)
    with pytest.raises(NotFound):
        promote(db_url, 9999)
    assert promoted_baseline(db_url, dataset_id + 100) is None


def test_markdown_summary(db_url):
    comparison = compare(db_url, *_pair(db_url, correctness_drop=8, slower=1.5))
    verdict = decide(comparison, Policy.from_dict({"name": "release", "rules": [
        {"kind": "no_significant_regression"}, {"kind": "latency", "max_ratio": 1.2}]}), unreliable_judges={"judge"})
    text = render_markdown(comparison, verdict)
    assert text.startswith("## ❌ DON'T SHIP: `candidate` (#")
    assert "vs baseline `baseline`" in text
    assert "Dataset **golden** version 2025-03-01 12:00:00 UTC · 20 items compared · policy `release`" in text
    assert "- ❌ **failed**: correctness is significantly worse than the baseline" in text
    assert "- ❌ **failed**: P95 latency 177 ms vs 118 ms in the baseline: 1.50x, above the 1.20x allowed." in text
    assert "| correctness | 1 | 0.6 | -0.4 | [-0.6, -0.2] | 0.0078 (McNemar) | 0 / 12 / 8 | 20 |" in text
    assert "| judge (unreliable) |" in text
    assert "| p95 latency | 118 ms | 177 ms | +59 ms | 1.50x |" in text
    assert "### Top regressions" in text
    assert "| `q00` | correctness -1 | answer 0 | wrong 0 |" in text
    bare = compare(db_url, *_pair_without_measures(db_url))
    bare_text = render_markdown(bare, decide(bare))
    assert bare_text.startswith("## ❌ DON'T SHIP")  # nothing to check is not a ship
    assert "Nothing could be checked (every rule was skipped)" in bare_text


def test_report_json(db_url):
    comparison = compare(db_url, *_pair(db_url, correctness_drop=8, fail=1))
    verdict = decide(comparison)
    data = as_dict(comparison, verdict, diffs=True)
    json.dumps(data, allow_nan=False)  # JSON-able, no NaN
    assert data["verdict"]["outcome"] == "dont_ship"
    assert data["verdict"]["headline"] == "DON'T SHIP"
    assert data["candidate"]["name"] == "candidate"
    assert data["evaluators"][0]["name"] == "correctness"
    assert data["latency"]["p95_ratio"] is not None
    assert len(data["items"]) == N
    assert data["items"][0]["dataset_item_id"] == "q19"  # newly failing first
    assert data["items"][1]["diff_vs_baseline"] == [["delete", "answer"], ["insert", "wrong"], ["equal", " 0"]]
    assert len(as_dict(comparison, verdict, items="changed")["items"]) == 9  # 8 worse, 1 failing
    assert as_dict(comparison, items="none")["items"] == []


def test_rules_follow_an_evaluator_where_lower_is_better(db_url):
    cand_id, base_id = _pair(db_url, judge_drop=8)  # "judge" 4 -> 1 on 8 of 20 items: lower is better here
    mark_evaluator(db_url, [cand_id, base_id], "judge", {"type": "custom", "function": "m:f", "higher_is_better": False})
    policy = Policy.from_dict({"rules": [
        {"kind": "no_significant_regression", "evaluators": ["judge"]},
        {"kind": "not_below_baseline", "evaluator": "judge"},
        {"kind": "max_mean", "evaluator": "judge", "max": 3.0},
    ]})
    improved = decide(compare(db_url, cand_id, base_id), policy)
    assert _statuses(improved) == {("no_significant_regression", "judge"): "passed",
                                   ("not_below_baseline", "judge"): "passed", ("max_mean", "judge"): "passed"}
    assert improved.outcome == "ship"

    regressed = decide(compare(db_url, base_id, cand_id), policy)  # the other way round: 2.8 -> 4
    by_rule = {(r.rule, r.evaluator): r for r in regressed.reasons}
    assert by_rule[("no_significant_regression", "judge")].status == "failed"
    assert by_rule[("not_below_baseline", "judge")].message == (
        "judge (lower is better): candidate mean 4 is above baseline 2.8 (by 1.2, over 20 items).")
    assert by_rule[("max_mean", "judge")].message == "judge: candidate mean 4 is above the maximum 3."
    assert regressed.outcome == "dont_ship"
    assert "| judge (lower is better) |" in render_markdown(compare(db_url, base_id, cand_id), regressed)
