"""Evaluating: code checks and LLM judges that turn outputs into scores, online evaluation of
production traces, and how far each judge agrees with people.

::

    from looplab.evaluation import EvalCase, build_evaluator
    check = build_evaluator({"type": "contains", "values": ["refund"], "ignore_case": True})
    check.evaluate(EvalCase(input="...", output="You can get a Refund within 30 days"))

    judge = build_evaluator({"type": "judge", "template": "correctness", "model": "openai:gpt-4o-mini"})
    result = judge.evaluate(EvalCase(input=q, output=answer, expected=reference))
    result.value, result.reasoning, result.cost_usd, result.error
"""

from looplab.evaluation.base import EvalCase, EvalResult, Evaluator, as_text
from looplab.evaluation.registry import (
    EVALUATOR_TYPES,
    EvaluatorInfo,
    archive_evaluator,
    build_evaluator,
    get_evaluator,
    get_evaluator_info,
    list_evaluators,
    save_evaluator,
    score_rows,
)

__all__ = [
    "EVALUATOR_TYPES",
    "EvalCase",
    "EvalResult",
    "Evaluator",
    "EvaluatorInfo",
    "archive_evaluator",
    "as_text",
    "build_evaluator",
    "get_evaluator",
    "get_evaluator_info",
    "list_evaluators",
    "save_evaluator",
    "score_rows",
]
