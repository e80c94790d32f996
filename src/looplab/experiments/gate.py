"""The ship gate: a policy turns a comparison into SHIP or DON'T SHIP, with a reason per rule.

A policy is a list of rules (YAML or a dict)::

    name: release-gate              # optional, shown in the report
    alpha: 0.05                     # optional default for significance rules
    rules:
      - kind: no_significant_regression   # no evaluator significantly worse (p < alpha)
        alpha: 0.05                       # optional
        evaluators: [correctness, tone]   # optional, default: every evaluator in the comparison
      - kind: not_below_baseline          # candidate mean >= baseline mean - margin
        evaluator: correctness            # (<= baseline mean + margin where lower is better)
        margin: 0.02                      # optional, default 0
      - kind: min_mean                    # candidate mean >= min
        evaluator: correctness
        min: 0.8
      - kind: max_mean                    # candidate mean <= max (for scores where lower is better)
        evaluator: hallucination
        max: 0.1
      - kind: latency                     # candidate / baseline <= max_ratio
        stat: p95                         # mean or p95 (default p95)
        max_ratio: 1.2
      - kind: cost
        stat: mean                        # mean, p95 or total (default mean)
        max_ratio: 1.1
      - kind: errors
        max_new: 0                        # items that newly fail (default 0)
        max_rate: 0.05                    # optional: share of compared items failing in the candidate

Each rule gives one result per evaluator it looks at (or one for cost, latency, errors): passed,
failed or skipped, with the numbers in words. The outcome is SHIP when no result failed and at
least one passed. Evaluators of judges the caller marks unreliable are skipped (reported, not
deciding). An evaluator a rule names that has no paired scores fails the rule; missing cost or
latency figures skip it (a code task may have no cost).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import select

from looplab.errors import ConfigError, NotFound
from looplab.experiments.comparison import Comparison, EvaluatorComparison
from looplab.experiments.report import (
    describe_evaluator,
    fmt,
    fmt_metric,
    fmt_ratio,
    summary_dict,
)
from looplab.store.engine import read_session, write_session
from looplab.store.models import Decision, Experiment
from looplab.store.types import utcnow

Status = Literal["passed", "failed", "skipped"]
_REQUIRED = object()


# --- Policies -------------------------------------------------------------------------------------


def _number(low: float | None = None, *, above: bool = False, high: float | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"must be a number, got {value!r}"
        if low is not None and (value <= low if above else value < low):
            return f"must be {'above' if above else 'at least'} {low}, got {value!r}"
        if high is not None and value > high:
            return f"must be at most {high}, got {value!r}"
        return None
    return check


def _integer(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"must be a whole number >= 0, got {value!r}"
    return None


def _name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"must be an evaluator (score) name, got {value!r}"
    return None


def _names(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or any(_name(v) for v in value):
        return f"must be a list of evaluator names, got {value!r}"
    return None


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"
    return check


def _alpha(value: Any) -> str | None:
    problem = _number(0, above=True, high=1)(value)
    return problem if problem is None or value != 1 else None


# kind -> setting -> (default or _REQUIRED, check)
RULE_KINDS: dict[str, dict[str, tuple[Any, Callable[[Any], str | None]]]] = {
    "no_significant_regression": {"alpha": (None, _alpha), "evaluators": (None, _names)},
    "not_below_baseline": {"evaluator": (_REQUIRED, _name), "margin": (0.0, _number(0))},
    "min_mean": {"evaluator": (_REQUIRED, _name), "min": (_REQUIRED, _number())},
    "max_mean": {"evaluator": (_REQUIRED, _name), "max": (_REQUIRED, _number())},
    "latency": {"stat": ("p95", _one_of("mean", "p95")), "max_ratio": (_REQUIRED, _number(0, above=True))},
    "cost": {"stat": ("mean", _one_of("mean", "p95", "total")), "max_ratio": (_REQUIRED, _number(0, above=True))},
    "errors": {"max_new": (0, _integer), "max_rate": (None, lambda v: None if v is None else _number(0, high=1)(v))},
}


@dataclass(frozen=True)
class Rule:
    """One rule of a policy: its kind and its settings, defaults filled in."""

    kind: str
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: v for k, v in self.settings.items() if v is not None}}


@dataclass(frozen=True)
class Policy:
    """A ship policy: rules every candidate must pass (see the module docstring for the format)."""

    rules: tuple[Rule, ...]
    name: str = "policy"
    alpha: float = 0.05

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "The policy") -> Policy:
        """A policy from parsed YAML/JSON; ``ConfigError`` listing every problem found."""
        problems: list[str] = []
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must be a mapping with a 'rules' list, got {type(data).__name__}.")
        unknown = sorted(set(data) - {"name", "alpha", "rules"})
        if unknown:
            problems.append(f"unknown setting(s) {', '.join(map(repr, unknown))} (known: name, alpha, rules)")
        name = data.get("name", "policy")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"name must be text, got {name!r}")
        alpha = data.get("alpha", 0.05)
        if (problem := _alpha(alpha)) is not None:
            problems.append(f"alpha {problem}")
        raw_rules = data.get("rules")
        rules: list[Rule] = []
        if not isinstance(raw_rules, list) or not raw_rules:
            problems.append("rules must be a non-empty list of rules, each with a 'kind'")
            raw_rules = []
        for index, raw in enumerate(raw_rules):
            rule = _parse_rule(raw, f"rules[{index}]", problems)
            if rule is not None:
                rules.append(rule)
        if problems:
            listed = "\n".join(f"- {p}" for p in problems)
            raise ConfigError(f"{source} has {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n{listed}")
        return cls(rules=tuple(rules), name=name.strip(), alpha=float(alpha))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "The policy") -> Policy:
        """A policy from YAML text; ``ConfigError`` for bad YAML or a bad policy."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{source} is not valid YAML: {err}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_yaml_file(cls, path: str | Path) -> Policy:
        """A policy from a YAML file; ``ConfigError`` when it cannot be read or is wrong."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"Cannot read the policy file {path}: {err}") from None
        return cls.from_yaml(text, source=f"The policy file {path}")

    def to_dict(self) -> dict[str, Any]:
        """The policy as data (what ``from_dict`` reads back; recorded with each decision)."""
        return {"name": self.name, "alpha": self.alpha, "rules": [r.to_dict() for r in self.rules]}


def _parse_rule(raw: Any, where: str, problems: list[str]) -> Rule | None:
    if not isinstance(raw, dict):
        problems.append(f"{where} must be a mapping with a 'kind', got {raw!r}")
        return None
    kind = raw.get("kind")
    if kind not in RULE_KINDS:
        what = "has no 'kind'" if kind is None else f"has an unknown kind {kind!r}"
        problems.append(f"{where} {what} (known: {', '.join(RULE_KINDS)})")
        return None
    spec = RULE_KINDS[kind]
    where = f"{where} ({kind})"
    ok = True
    for key in sorted(set(raw) - set(spec) - {"kind"}):
        problems.append(f"{where}: unknown setting {key!r} (known: {', '.join(spec)})")
        ok = False
    settings: dict[str, Any] = {}
    for key, (default, check) in spec.items():
        if key not in raw:
            if default is _REQUIRED:
                problems.append(f"{where}: {key!r} is required")
                ok = False
            settings[key] = None if default is _REQUIRED else default
            continue
        problem = check(raw[key])
        if problem is not None:
            problems.append(f"{where}: {key} {problem}")
            ok = False
        settings[key] = raw[key]
    return Rule(kind, settings) if ok else None


DEFAULT_POLICY = Policy(name="default", rules=(Rule("no_significant_regression", {"alpha": None, "evaluators": None}),))
"""No evaluator significantly worse than the baseline (p < 0.05)."""


# --- Deciding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    """What one rule found: passed, failed or skipped, and why in words (with the numbers)."""

    rule: str
    status: Status
    message: str
    evaluator: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "status": self.status, "message": self.message, "evaluator": self.evaluator,
                "details": self.details}


@dataclass(frozen=True)
class Verdict:
    """SHIP (``ship``) or DON'T SHIP (``dont_ship``) and the reasons, failed ones first."""

    outcome: Literal["ship", "dont_ship"]
    reasons: list[RuleResult]
    policy_name: str = "default"
    unreliable_judges: tuple[str, ...] = ()

    @property
    def ship(self) -> bool:
        return self.outcome == "ship"

    @property
    def headline(self) -> str:
        return "SHIP" if self.ship else "DON'T SHIP"

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.reasons if r.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "headline": self.headline, "policy": self.policy_name,
                "unreliable_judges": list(self.unreliable_judges), "reasons": [r.to_dict() for r in self.reasons]}


def decide(comparison: Comparison, policy: Policy = DEFAULT_POLICY,
           unreliable_judges: set[str] | frozenset[str] = frozenset()) -> Verdict:
    """Apply ``policy`` to ``comparison``. Evaluators named in ``unreliable_judges`` are reported
    (skipped) but never decide. SHIP when nothing failed and something passed."""
    unreliable = frozenset(unreliable_judges)
    results: list[RuleResult] = []
    for rule in policy.rules:
        results.extend(_CHECKS[rule.kind](comparison, rule, policy, unreliable))
    if not any(r.status == "passed" for r in results) and not any(r.status == "failed" for r in results):
        results.append(RuleResult("evidence", "failed", "Nothing could be checked (every rule was skipped), so "
                                  "there is no evidence to ship on."))
    outcome: Literal["ship", "dont_ship"] = "dont_ship" if any(r.status == "failed" for r in results) else "ship"
    order = {"failed": 0, "passed": 1, "skipped": 2}
    results.sort(key=lambda r: order[r.status])  # stable: the policy's order within each status
    return Verdict(outcome, results, policy.name, tuple(sorted(unreliable)))


def _evaluator_details(e: EvaluatorComparison) -> dict[str, Any]:
    return {"n": e.n, "higher_is_better": e.higher_is_better, "baseline_mean": e.baseline_mean,
            "candidate_mean": e.candidate_mean, "delta": e.mean_delta,
            "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value, "test": e.test}


def _check_regression(comparison: Comparison, rule: Rule, policy: Policy,
                      unreliable: frozenset[str]) -> list[RuleResult]:
    alpha = rule.settings["alpha"] if rule.settings["alpha"] is not None else policy.alpha
    named = rule.settings["evaluators"]
    names = named if named is not None else [e.name for e in comparison.evaluators]
    if not names:
        return [RuleResult(rule.kind, "skipped", "No evaluator scored these experiments: no regression to test for.")]
    results = []
    for name in names:
        e = comparison.evaluator(name)
        if e is None or e.n == 0:
            status: Status = "failed" if named is not None else "skipped"
            why = "no scores" if e is None else describe_evaluator(e, comparison.confidence)
            results.append(RuleResult(rule.kind, status, f"{name}: cannot test for a regression: {why}.", name))
            continue
        described = describe_evaluator(e, comparison.confidence)
        details = {**_evaluator_details(e), "alpha": alpha}
        if name in unreliable:
            worse = "significantly worse" if e.significantly_worse(alpha) else "not significantly worse"
            results.append(RuleResult(rule.kind, "skipped", f"{name}: unreliable judge, reported but not deciding "
                                      f"({worse}: {described}).", name, details))
        elif e.significantly_worse(alpha):
            results.append(RuleResult(rule.kind, "failed", f"{name} is significantly worse than the baseline: "
                                      f"{described}; p < {fmt(alpha)}.", name, details))
        else:
            results.append(RuleResult(rule.kind, "passed", f"{name} is not significantly worse: {described}; "
                                      f"{'p >= ' + fmt(alpha) if (e.p_value or 0) >= alpha else 'it improved'}.",
                                      name, details))
    return results


def _named_evaluator(comparison: Comparison, rule: Rule, unreliable: frozenset[str]
                     ) -> tuple[EvaluatorComparison | None, RuleResult | None]:
    name = rule.settings["evaluator"]
    e = comparison.evaluator(name)
    if e is None or e.n == 0:
        why = "it scored no item" if e is None else describe_evaluator(e, comparison.confidence)
        return None, RuleResult(rule.kind, "failed", f"{name}: cannot check, {why}.", name)
    if name in unreliable:
        return None, RuleResult(rule.kind, "skipped", f"{name}: unreliable judge, reported but not deciding "
                                f"({describe_evaluator(e, comparison.confidence)}).", name, _evaluator_details(e))
    return e, None


def _check_not_below(comparison: Comparison, rule: Rule, policy: Policy,
                     unreliable: frozenset[str]) -> list[RuleResult]:
    e, early = _named_evaluator(comparison, rule, unreliable)
    if e is None:
        return [early] if early else []
    assert e.baseline_mean is not None and e.candidate_mean is not None
    margin = float(rule.settings["margin"])
    # Where lower is better, "not worse" is "not above baseline + margin".
    lower = not e.higher_is_better
    limit = e.baseline_mean + margin if lower else e.baseline_mean - margin
    details = {**_evaluator_details(e), "margin": margin, ("ceiling" if lower else "floor"): limit}
    allowed = f"baseline {fmt(e.baseline_mean)} {'+' if lower else '-'} {fmt(margin)} = {fmt(limit)}" if margin \
        else f"baseline {fmt(e.baseline_mean)}"
    who = f"{e.name} (lower is better)" if lower else e.name
    side = "above" if lower else "below"
    holds = e.candidate_mean <= limit + 1e-12 if lower else e.candidate_mean >= limit - 1e-12
    if holds:
        return [RuleResult(rule.kind, "passed", f"{who}: candidate mean {fmt(e.candidate_mean)} is not {side} "
                           f"{allowed} (over {e.n} items).", e.name, details)]
    return [RuleResult(rule.kind, "failed", f"{who}: candidate mean {fmt(e.candidate_mean)} is {side} {allowed} "
                       f"(by {fmt(abs(e.candidate_mean - limit))}, over {e.n} items).", e.name, details)]


def _check_mean_bound(comparison: Comparison, rule: Rule, policy: Policy,
                      unreliable: frozenset[str]) -> list[RuleResult]:
    """``min_mean`` (candidate mean at least ``min``) and ``max_mean`` (at most ``max``)."""
    e, early = _named_evaluator(comparison, rule, unreliable)
    if e is None:
        return [early] if early else []
    assert e.candidate_mean is not None
    is_min = rule.kind == "min_mean"
    key, within, beyond = ("min", "at least", "below the minimum") if is_min else ("max", "at most", "above the maximum")
    bound = float(rule.settings[key])
    details = {**_evaluator_details(e), key: bound}
    holds = e.candidate_mean >= bound - 1e-12 if is_min else e.candidate_mean <= bound + 1e-12
    if holds:
        return [RuleResult(rule.kind, "passed", f"{e.name}: candidate mean {fmt(e.candidate_mean)} is {within} "
                           f"{fmt(bound)}.", e.name, details)]
    return [RuleResult(rule.kind, "failed", f"{e.name}: candidate mean {fmt(e.candidate_mean)} is {beyond} "
                       f"{fmt(bound)}.", e.name, details)]


def _check_ratio(comparison: Comparison, rule: Rule, policy: Policy, unreliable: frozenset[str]) -> list[RuleResult]:
    metric = comparison.latency if rule.kind == "latency" else comparison.cost
    stat, limit = rule.settings["stat"], float(rule.settings["max_ratio"])
    label = f"{stat} {rule.kind}"
    base, cand = metric.figure(stat, "baseline"), metric.figure(stat, "candidate")
    ratio = metric.ratio(stat)
    details = {"stat": stat, "baseline": base, "candidate": cand, "ratio": ratio, "max_ratio": limit}
    if base is None or cand is None:
        return [RuleResult(rule.kind, "skipped", f"No {rule.kind} recorded on "
                           f"{'either side' if base is None and cand is None else 'one side'}: {label} not checked.",
                           details=details)]
    if ratio is None:
        return [RuleResult(rule.kind, "skipped", f"The baseline's {label} is 0: no ratio to check "
                           f"(candidate {fmt_metric(metric.name, cand)}).", details=details)]
    words = (f"{label} {fmt_metric(metric.name, cand)} vs {fmt_metric(metric.name, base)} in the baseline: "
             f"{fmt_ratio(ratio)}")
    if ratio <= limit + 1e-12:
        return [RuleResult(rule.kind, "passed", _sentence(f"{words}, within the {fmt_ratio(limit)} allowed."),
                           details=details)]
    return [RuleResult(rule.kind, "failed", _sentence(f"{words}, above the {fmt_ratio(limit)} allowed."),
                       details=details)]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _check_errors(comparison: Comparison, rule: Rule, policy: Policy, unreliable: frozenset[str]) -> list[RuleResult]:
    errors = comparison.errors
    max_new, max_rate = int(rule.settings["max_new"]), rule.settings["max_rate"]
    rate = errors.candidate / errors.compared if errors.compared else None
    details = {"baseline": errors.baseline, "candidate": errors.candidate, "new": errors.new, "fixed": errors.fixed,
               "compared": errors.compared, "rate": rate, "max_new": max_new, "max_rate": max_rate}
    if not errors.compared:
        return [RuleResult(rule.kind, "skipped", "No item ran on both sides: errors not compared.", details=details)]
    words = (f"{errors.candidate} of {errors.compared} items fail in the candidate ({errors.baseline} in the baseline; "
             f"{errors.new} newly failing, {errors.fixed} fixed)")
    problems = []
    if errors.new > max_new:
        problems.append(f"more newly failing items than the {max_new} allowed")
    if max_rate is not None and rate is not None and rate > max_rate + 1e-12:
        problems.append(f"an error rate of {rate:.1%}, above the {max_rate:.1%} allowed")
    if problems:
        return [RuleResult(rule.kind, "failed", f"{words}: {' and '.join(problems)}.", details=details)]
    return [RuleResult(rule.kind, "passed", f"{words}: within the policy.", details=details)]


_CHECKS: dict[str, Callable[[Comparison, Rule, Policy, frozenset[str]], list[RuleResult]]] = {
    "no_significant_regression": _check_regression,
    "not_below_baseline": _check_not_below,
    "min_mean": _check_mean_bound,
    "max_mean": _check_mean_bound,
    "latency": _check_ratio,
    "cost": _check_ratio,
    "errors": _check_errors,
}
assert set(_CHECKS) == set(RULE_KINDS)


# --- Recording and baselines ------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRecord:
    """A recorded decision, as ``list_decisions`` reads it back."""

    id: int
    experiment_id: int
    baseline_id: int | None
    dataset_version: datetime
    outcome: str
    reasons: list[dict[str, Any]]
    policy: dict[str, Any]
    summary: dict[str, Any] | None
    judge_versions: dict[str, Any] | None
    created_by: str | None
    created_at: datetime

    @property
    def headline(self) -> str:
        return "SHIP" if self.outcome == "ship" else "DON'T SHIP"


def record_decision(url: str, comparison: Comparison, verdict: Verdict, policy: Policy,
                    created_by: str | None = None) -> int:
    """Store the verdict on the candidate (``decisions`` row) with its baseline, the candidate's
    dataset version, the evaluator versions per score name, the policy and a summary of the
    comparison (no items); returns the decision's id."""
    summary = summary_dict(comparison)
    summary["unreliable_judges"] = list(verdict.unreliable_judges)
    with write_session(url) as session:
        if session.get(Experiment, comparison.candidate.id) is None:
            raise NotFound(f"There is no experiment with id {comparison.candidate.id}.")
        baseline_exists = session.get(Experiment, comparison.baseline.id) is not None
        decision = Decision(
            experiment_id=comparison.candidate.id,
            baseline_id=comparison.baseline.id if baseline_exists else None,
            dataset_version=comparison.candidate.dataset_version,
            outcome=verdict.outcome,
            reasons_json=[r.to_dict() for r in verdict.reasons],
            policy_json=policy.to_dict(),
            summary_json=summary,
            judge_versions_json=comparison.judge_versions,
            created_by=created_by,
            created_at=utcnow(),
        )
        session.add(decision)
        session.flush()
        return decision.id


def list_decisions(url: str, experiment_id: int) -> list[DecisionRecord]:
    """The decisions recorded for ``experiment_id`` (as the candidate), newest first."""
    with read_session(url) as session:
        rows = session.scalars(select(Decision).where(Decision.experiment_id == experiment_id)
                               .order_by(Decision.created_at.desc(), Decision.id.desc()))
        return [DecisionRecord(
            id=d.id, experiment_id=d.experiment_id, baseline_id=d.baseline_id, dataset_version=d.dataset_version,
            outcome=d.outcome, reasons=list(d.reasons_json or []), policy=dict(d.policy_json or {}),
            summary=d.summary_json, judge_versions=d.judge_versions_json, created_by=d.created_by,
            created_at=d.created_at) for d in rows]


def promote(url: str, experiment_id: int) -> datetime:
    """Make a completed experiment the baseline of its dataset (the newest promoted one is the
    baseline); returns the promotion time. ``NotFound`` / ``ConfigError`` when it does not exist
    or has not completed."""
    with write_session(url) as session:
        experiment = session.get(Experiment, experiment_id)
        if experiment is None:
            raise NotFound(f"There is no experiment with id {experiment_id}.")
        if experiment.status != "completed":
            raise ConfigError(f"Experiment {experiment.name!r} is {experiment.status}; only a completed experiment "
                              "can become a baseline.")
        experiment.promoted_at = utcnow()
        return experiment.promoted_at


def promoted_baseline(url: str, dataset_id: int) -> int | None:
    """The id of the newest promoted, completed experiment of the dataset; ``None`` when none is."""
    with read_session(url) as session:
        return session.scalar(
            select(Experiment.id)
            .where(Experiment.dataset_id == dataset_id, Experiment.status == "completed",
                   Experiment.promoted_at.is_not(None))
            .order_by(Experiment.promoted_at.desc(), Experiment.id.desc())
            .limit(1)
        )

