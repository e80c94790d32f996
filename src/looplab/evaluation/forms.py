"""What the Evaluators page needs besides the services themselves: a spec from a form's fields
(texts to lists and JSON), trying an evaluator on a typed-in case, and tables to show."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from looplab.errors import ConfigError
from looplab.evaluation.base import EvalCase, EvalResult
from looplab.evaluation.judge_agreement import JudgeAgreement
from looplab.evaluation.registry import EvaluatorInfo, build_evaluator

TYPE_HELP = {
    "exact_match": "The output equals the expected output, optionally ignoring case, blanks and punctuation.",
    "contains": "The output contains any (or all) of some values, or the expected output.",
    "regex": "A regular expression is found in the output (or matches all of it).",
    "json_valid": "The output is valid JSON.",
    "json_schema": "The output is JSON that matches a JSON Schema.",
    "numeric": "The first number in the output is within a tolerance of the expected number.",
    "similarity": "How alike output and expected output are (0 to 1); passes from a threshold.",
    "custom": "Your own function, package.module:function, called with the case.",
    "judge": "An LLM judge: a template (correctness, faithfulness, helpfulness or a score config's rubric) "
             "and a model.",
}


def _json(text: Any, what: str) -> Any:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{what} is not valid JSON: {err}.") from None


def spec_from_fields(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluator spec from a form's raw fields: empty fields left out, ``values`` one per
    line, ``schema`` and ``params`` JSON text. ``ConfigError`` for unreadable JSON."""
    spec: dict[str, Any] = {"type": kind}
    for key, value in fields.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key == "values" and isinstance(value, str):
            value = [line.strip() for line in value.splitlines() if line.strip()]
        elif key in ("schema", "params"):
            value = _json(value, "The schema" if key == "schema" else "The parameters")
            if value is None:
                continue
        elif isinstance(value, str):
            value = value.strip()
        spec[key] = value
    return spec


def try_case(spec: Mapping[str, Any], *, url: str, input: str, output: str, expected: str | None = None,
             context: str | None = None) -> EvalResult:
    """Run the evaluator ``spec`` on one typed-in case (context: one passage a paragraph)."""
    passages = [p.strip() for p in (context or "").split("\n\n") if p.strip()] or None
    evaluator = build_evaluator(dict(spec), url=url)
    return evaluator.evaluate(EvalCase(input=input, output=output, expected=expected or None,
                                       context=passages))


def evaluator_rows(evaluators: list[EvaluatorInfo]) -> list[dict[str, Any]]:
    """The evaluators list as table rows."""
    return [{"name": e.name, "kind": e.kind, "version": e.version, "type": e.type, "config": e.summary(),
             "created": e.created_at} for e in evaluators]


def agreement_rows(rows: list[JudgeAgreement]) -> list[dict[str, Any]]:
    """Judge-vs-human agreement as table rows."""
    verdicts = {True: "reliable", False: "unreliable", None: "too early to tell"}
    return [{"evaluator": r.evaluator, "version": r.evaluator_version, "score": r.score_name, "reading": r.agreement.kind,
             "n": r.agreement.n, "accuracy": r.agreement.accuracy, "kappa": r.agreement.kappa,
             "pearson": r.agreement.pearson, "spearman": r.agreement.spearman,
             "verdict": verdicts[r.agreement.reliable], "note": r.agreement.note or ""} for r in rows]
