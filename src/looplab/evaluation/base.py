"""What every evaluator shares: the case it reads, the result it gives, and its protocol.

An evaluator (a code check or an LLM judge) reads an ``EvalCase`` (input, output, optionally an
expected output and retrieved context) and returns an ``EvalResult``. It never raises for a bad
output of the system under test or of a judge model: the result's ``error`` says what went wrong.
A wrong *configuration* is a ``ConfigError``, raised when the evaluator is built.

``version`` is a short hash of everything that decides the result (a check's options, a custom
function's source; a judge's prompt template, model, parameters and score config): change any of
them and the version changes. It is stored with each score (``scores.evaluator_version``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

KINDS = ("code", "llm_judge")


@dataclass(frozen=True)
class EvalCase:
    """What an evaluator reads: the input, the output to judge, and optionally more."""

    input: Any
    output: Any
    expected: Any = None
    context: list[str] | None = None
    metadata: dict | None = None


@dataclass(frozen=True)
class EvalResult:
    """One evaluator's verdict on one case.

    ``value`` is the number charts average (1/0 for pass/fail checks), ``label`` a category's
    name, ``passed`` the pass/fail reading when there is one. ``error`` is set (and ``value``,
    ``label`` and ``passed`` are ``None``) when the case could not be evaluated.

    The fields after ``error`` go into the score rows: ``score_name`` (default: the evaluator's
    name), ``config_id`` (the score config a rubric judge scored with) and ``metadata`` (the judge's
    model, attempts, the trace id of its call...).
    """

    evaluator: str
    version: str
    value: float | None
    label: str | None
    passed: bool | None
    reasoning: str | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    score_name: str | None = None
    config_id: int | None = None
    metadata: dict | None = None

    @property
    def name(self) -> str:
        """The name of the score this result becomes."""
        return self.score_name or self.evaluator


@runtime_checkable
class Evaluator(Protocol):
    """A code check or an LLM judge."""

    name: str
    version: str
    kind: str  # "code" | "llm_judge"

    def evaluate(self, case: EvalCase) -> EvalResult:
        """Judge one case; never raises for bad model output (``error`` is set instead)."""
        ...


def fingerprint(data: Any, length: int = 12) -> str:
    """A short, stable hash of JSON-able ``data`` (key order does not matter)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


_TEXT_KEYS = ("content", "text", "answer", "reply", "output", "completion", "response", "message")


def as_text(value: Any) -> str:
    """The text of an input or output as people read it.

    A string is itself; a message (``{"content": ...}``) or a common wrapper (``text``,
    ``answer``, ``output``...) its text; a list of chat messages the last one's content;
    anything else its JSON.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            inner = value.get(key)
            if isinstance(inner, (str, dict, list)) and inner:
                return as_text(inner)
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        return as_text(value[-1].get("content"))
    if isinstance(value, list) and value and all(isinstance(p, dict) and isinstance(p.get("text"), str)
                                                 for p in value):
        return "".join(p["text"] for p in value)  # content parts
    if isinstance(value, (int, float, bool)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, default=str)
