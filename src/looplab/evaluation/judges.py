"""LLM judges: a prompt template, a model, and a robust reading of the model's verdict.

Templates (``template`` in the spec):

- ``correctness``: is the output correct against the expected output? score 0 to 1.
- ``faithfulness``: is every claim of the output supported by the retrieved context? score 0 to 1.
- ``helpfulness``: does the output help the user with their input? score 1 to 5.
- ``rubric``: a score config's description is the rubric; its type decides the answer: numeric
  (with both bounds) a score in its range, categorical a label among its options (listed worst
  first: by value when they have one), boolean a ``true``/``false`` label. Text configs cannot be
  judged.

The judge asks for ``{"reasoning": "...", "score": n}`` (or ``"label"``) and reads it robustly:
JSON in code fences or after leading text, single quotes, a score given as a string (``"4"``,
``"4/5"``). A verdict it cannot use (no JSON, a missing key, a score out of range, an unknown
label) is sent back once with what was wrong (``repairs``, default 1); still unusable, the result
carries the error instead of a verdict. Provider errors the provider calls retryable (rate limits,
overload, timeouts) are retried up to ``retries`` times (default 3), after the delay the provider
asked for or a short backoff.

Every judge call runs inside a trace (or a child span, inside an active trace) of kind
``evaluator`` named after the judge and tagged ``looplab-judge``; the provider records the model
calls under it as ``llm`` spans with their tokens and cost, and the result sums them.

The version hashes the template's text, the model, its parameters, the score config (type, range,
options, rubric) and the pass threshold: change any and it changes.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from looplab.errors import ConfigError
from looplab.evaluation.base import EvalCase, EvalResult, as_text, fingerprint

JUDGE_TAG = "looplab-judge"
TEMPLATES = ("correctness", "faithfulness", "helpfulness", "rubric")
DEFAULT_RETRIES = 3
DEFAULT_REPAIRS = 1
MAX_BACKOFF_S = 30.0

_SYSTEM = """You are a careful, impartial evaluator of an AI assistant's answers.
{task}

Think about the answer first, then give your verdict. Reply with only a JSON object, no other text:
{format}"""

_TASKS = {
    "correctness": (
        "Judge whether the assistant's output answers the user's input correctly, compared with the expected "
        "answer. Wording may differ and extra detail is fine as long as it agrees with the expected answer; "
        "missing or contradicting facts make it less correct. 1 means fully correct, 0 entirely wrong."
    ),
    "faithfulness": (
        "Judge whether every claim in the assistant's output is supported by the retrieved context. Claims the "
        "context does not support, or contradicts, make it less faithful, even when they are true. 1 means "
        "fully supported by the context, 0 means invented or contradicting it."
    ),
    "helpfulness": (
        "Judge how helpful the assistant's output is for the user's input: does it address what was asked, "
        "clearly, completely and without needless detail? 1 means not helpful at all, 5 means as helpful as "
        "an expert's answer."
    ),
    "rubric": "Judge the assistant's output following this rubric.\n\n{rubric}",
}
_SCALES = {"correctness": (0.0, 1.0), "faithfulness": (0.0, 1.0), "helpfulness": (1.0, 5.0)}
_PASS = {"correctness": 0.5, "faithfulness": 0.5, "helpfulness": 4.0}
_NEEDS = {"correctness": "expected", "faithfulness": "context"}

_REPAIR = "Your answer could not be used: {problem} Reply again with only a JSON object: {format}"

_SCORE_KEYS = ("score", "rating", "value", "grade")
_LABEL_KEYS = ("label", "verdict", "category", "answer")
_REASONING_KEYS = ("reasoning", "explanation", "rationale", "reason", "thoughts")
_BOOLEAN_WORDS = {"true": "true", "yes": "true", "pass": "true", "1": "true",
                  "false": "false", "no": "false", "fail": "false", "0": "false"}


class VerdictError(ValueError):
    """The judge's answer is not a usable verdict; the message says what is wrong (sent back to it)."""


@dataclass(frozen=True)
class Scale:
    """What the judge answers: a score in ``[low, high]``, or one of ``labels`` (worst first)."""

    low: float | None = None
    high: float | None = None
    labels: tuple[str, ...] = ()
    boolean: bool = False

    @property
    def is_label(self) -> bool:
        return bool(self.labels)

    def format(self) -> str:
        if self.is_label:
            return ('{"reasoning": "<one or two sentences>", "label": "<one of: ' + ", ".join(self.labels) + '>"}')
        return ('{"reasoning": "<one or two sentences>", "score": <a number from ' + _num(self.low) + " to "
                + _num(self.high) + ">}")

    def block(self) -> str:
        if self.is_label:
            return f"<labels>{', '.join(self.labels)}</labels>"
        return f"<scale>{_num(self.low)}-{_num(self.high)}</scale>"


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# --- Reading the verdict --------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _candidates(text: str) -> list[str]:
    found = [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        found.append(text[start:end + 1])
    return found


def _load(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    try:  # single quotes, True/False/None
        return ast.literal_eval(candidate)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    relaxed = re.sub(r",\s*([}\]])", r"\1", candidate)  # trailing commas
    relaxed = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", relaxed)))
    try:
        return ast.literal_eval(relaxed)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _pick(data: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    for key in keys:
        if key in lowered:
            return lowered[key]
    return None


def _score(raw: Any, scale: Scale) -> float:
    if isinstance(raw, bool):
        raise VerdictError(f"The score must be a number, not {str(raw).lower()}.")
    if isinstance(raw, str):
        text = raw.strip()
        fraction = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*/\s*\d+(?:\.\d+)?", text)
        text = fraction.group(1) if fraction else text
        try:
            raw = float(text)
        except ValueError:
            raise VerdictError(f"The score {raw!r} is not a number.") from None
    if not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise VerdictError(f"The score {raw!r} is not a number.")
    value = float(raw)
    if (scale.low is not None and value < scale.low) or (scale.high is not None and value > scale.high):
        raise VerdictError(f"The score {_num(value)} is outside the scale {_num(scale.low)} to {_num(scale.high)}.")
    return value


def _label(raw: Any, scale: Scale) -> str:
    if isinstance(raw, bool) and scale.boolean:
        return "true" if raw else "false"
    if raw is None or isinstance(raw, (dict, list)):
        raise VerdictError(f"The label must be one of {', '.join(scale.labels)}.")
    text = str(raw).strip().strip(".").strip()
    for label in scale.labels:
        if text.lower() == label.lower():
            return label
    if scale.boolean and text.lower() in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[text.lower()]
    raise VerdictError(f"The label {text!r} is not one of {', '.join(scale.labels)}.")


def parse_verdict(text: str, scale: Scale) -> tuple[float | None, str | None, str | None]:
    """``(score, label, reasoning)`` read from a judge's answer; raises ``VerdictError`` saying
    what is wrong. Accepts JSON in code fences or after leading text, single quotes, trailing
    commas, scores as strings."""
    if not text or not text.strip():
        raise VerdictError("The answer was empty.")
    data = None
    for candidate in _candidates(text):
        loaded = _load(candidate)
        if isinstance(loaded, Mapping):
            data = loaded
            break
    if data is None:
        raise VerdictError("The answer holds no JSON object.")
    reasoning = _pick(data, _REASONING_KEYS)
    reasoning = None if reasoning is None else str(reasoning).strip() or None
    if scale.is_label:
        raw = _pick(data, _LABEL_KEYS)
        if raw is None:
            raise VerdictError('The JSON object has no "label".')
        return None, _label(raw, scale), reasoning
    raw = _pick(data, _SCORE_KEYS)
    if raw is None:
        raise VerdictError('The JSON object has no "score".')
    return _score(raw, scale), None, reasoning


# --- The judge ------------------------------------------------------------------------------------


def _context_text(context: list[str] | None) -> str:
    return "\n\n".join(f"[{i}] {c}" for i, c in enumerate(context or [], start=1))


@dataclass
class LLMJudge:
    """A built judge: ``evaluate(case)`` asks the model and never raises for a bad answer."""

    name: str
    template: str
    model: str
    params: dict[str, Any]
    scale: Scale
    rubric: str | None = None
    pass_threshold: float | None = None
    score_name: str | None = None
    config_id: int | None = None
    config: Any = None  # the ScoreConfigView of a rubric judge
    retries: int = DEFAULT_RETRIES
    repairs: int = DEFAULT_REPAIRS
    timeout: float = 60.0
    json_output: bool = True
    version: str = ""
    kind: str = "llm_judge"
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def system_prompt(self) -> str:
        task = _TASKS[self.template].replace("{rubric}", self.rubric or "")
        return _SYSTEM.replace("{task}", task).replace("{format}", self.scale.format())

    def messages(self, case: EvalCase) -> list[dict[str, Any]]:
        """The conversation sent to the model for ``case``."""
        parts = [f"<input>\n{as_text(case.input)}\n</input>"]
        if case.context and self.template in ("faithfulness", "rubric"):
            parts.append(f"<context>\n{_context_text(case.context)}\n</context>")
        if case.expected is not None and self.template in ("correctness", "rubric"):
            parts.append(f"<expected>\n{as_text(case.expected)}\n</expected>")
        parts.append(f"<output>\n{as_text(case.output)}\n</output>")
        parts.append(f"Answer on this scale: {self.scale.block()}")
        return [{"role": "system", "content": self.system_prompt()}, {"role": "user", "content": "\n\n".join(parts)}]

    def evaluate(self, case: EvalCase) -> EvalResult:
        from looplab.tracing.context import TraceHandle
        from looplab.tracing.records import TraceInfo

        needs = _NEEDS.get(self.template)
        if needs == "expected" and case.expected is None:
            return self._result(error=f"{self.name} ({self.template}) needs an expected output; the case has none.")
        if needs == "context" and not case.context:
            return self._result(error=f"{self.name} ({self.template}) needs retrieved context; the case has none.")
        info = TraceInfo(name=self.name, tags=[JUDGE_TAG],
                         metadata={"evaluator": self.name, "evaluator_version": self.version, "model": self.model})
        handle = TraceHandle("evaluator", self.name, {"input": case.input, "output": case.output,
                                                     "expected": case.expected}, info)
        with handle:
            result = self._judge(case, handle.trace_id)
            handle.update(output={"value": result.value, "label": result.label, "passed": result.passed,
                                  "reasoning": result.reasoning, "error": result.error})
        return result

    def _judge(self, case: EvalCase, trace_id: str | None) -> EvalResult:
        from looplab.providers import ProviderError, complete

        messages = self.messages(case)
        usage: dict[str, Any] = {"input_tokens": None, "output_tokens": None, "cost_usd": None}
        meta: dict[str, Any] = {"calls": 0}
        if trace_id:
            meta["judge_trace_id"] = trace_id
        problem = None
        for repair in range(self.repairs + 1):
            try:
                answer = self._call(complete, ProviderError, messages, meta)
            except ProviderError as err:
                meta["provider_error"] = True
                return self._result(error=f"The judge model failed: {err}", metadata=meta, **usage)
            except ConfigError as err:
                return self._result(error=str(err), metadata=meta, **usage)
            for key in ("input_tokens", "output_tokens", "cost_usd"):
                got = getattr(answer, key)
                if got is not None:
                    usage[key] = (usage[key] or 0) + got
            try:
                score, label, reasoning = parse_verdict(answer.text, self.scale)
            except VerdictError as err:
                problem = str(err)
                meta["repairs"] = repair + 1 if repair < self.repairs else repair
                messages = [*messages, {"role": "assistant", "content": answer.text or "(empty)"},
                            {"role": "user", "content": _REPAIR.replace("{problem}", problem)
                             .replace("{format}", self.scale.format())}]
                continue
            return self._verdict(score, label, reasoning, meta, usage)
        meta["raw_output"] = (answer.text or "")[:2000]
        return self._result(error=f"The judge's answer was unusable after {self.repairs + 1} "
                                  f"attempt{'s' if self.repairs else ''}: {problem}", metadata=meta, **usage)

    def _call(self, complete: Any, provider_error: type[Exception], messages: list[dict[str, Any]],
              meta: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            meta["calls"] += 1
            try:
                return complete(self.model, messages, params=self.params or None, timeout=self.timeout,
                                json_output=self.json_output)
            except provider_error as err:
                if not getattr(err, "retryable", False) or attempt >= self.retries:
                    raise
                wait = getattr(err, "retry_after", None)
                if wait is None:
                    wait = 0.5 * 2 ** attempt
                self.sleep(min(max(float(wait), 0.0), MAX_BACKOFF_S))
                attempt += 1

    def _verdict(self, score: float | None, label: str | None, reasoning: str | None, meta: dict[str, Any],
                 usage: dict[str, Any]) -> EvalResult:
        value = score
        passed: bool | None = None
        if label is not None:
            if self.config is not None:
                from looplab.annotation.score_configs import score_value

                value, label = score_value(self.config, label)
            if self.scale.boolean:
                passed = label == "true"
        if value is not None and self.pass_threshold is not None and not self.scale.boolean:
            passed = value >= self.pass_threshold
        return self._result(value=value, label=label, passed=passed, reasoning=reasoning, metadata=meta, **usage)

    def _result(self, **fields: Any) -> EvalResult:
        base: dict[str, Any] = dict(value=None, label=None, passed=None, reasoning=None)
        base.update(fields)
        base["metadata"] = {"kind": "llm_judge", "model": self.model, "template": self.template,
                            **(base.get("metadata") or {})}
        return EvalResult(evaluator=self.name, version=self.version, score_name=self.score_name,
                          config_id=self.config_id, **base)


JUDGE_OPTIONS = ("name", "type", "template", "model", "params", "score_config", "score_name", "pass_threshold",
                 "retries", "repairs", "timeout", "json_output", "higher_is_better")


def build_judge(spec: Mapping[str, Any], score_config: Any = None) -> LLMJudge:
    """A judge from its spec; ``score_config`` is the ``ScoreConfigView`` a rubric judge uses
    (resolved by the caller). Raises ``ConfigError`` for a bad spec."""
    from looplab.providers import parse_model

    unknown = sorted(set(spec) - set(JUDGE_OPTIONS))
    if unknown:
        raise ConfigError(f"judge: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"it takes {', '.join(o for o in JUDGE_OPTIONS if o != 'type')}.")
    template = spec.get("template")
    if template not in TEMPLATES:
        raise ConfigError(f"judge: template must be one of {', '.join(TEMPLATES)}; got {template!r}.")
    model = spec.get("model")
    if not model:
        raise ConfigError("judge: give a model, e.g. openai:gpt-4o-mini or mock:judge.")
    parse_model(str(model))
    params = spec.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError("judge: params must be an object (temperature, max_tokens...).")
    params = dict(params)
    rubric = None
    config_id = None
    score_name = spec.get("score_name") or None
    if template == "rubric":
        if score_config is None:
            raise ConfigError("judge: the rubric template needs a score config (score_config: its name).")
        scale = _config_scale(score_config)
        rubric = (score_config.description or "").strip()
        if not rubric:
            raise ConfigError(f"judge: the score config {score_config.name!r} has no rubric (description) to judge by.")
        config_id = score_config.id
        score_name = score_name or score_config.name
    else:
        if spec.get("score_config") not in (None, ""):
            raise ConfigError(f"judge: score_config goes with the rubric template, not {template}.")
        low, high = _SCALES[template]
        scale = Scale(low=low, high=high)
    threshold = spec.get("pass_threshold", _PASS.get(template))
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ConfigError(f"judge: pass_threshold must be a number; got {threshold!r}.")
        threshold = float(threshold)
    retries = _whole(spec.get("retries", DEFAULT_RETRIES), "retries")
    repairs = _whole(spec.get("repairs", DEFAULT_REPAIRS), "repairs")
    timeout = spec.get("timeout", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError(f"judge: timeout must be a positive number of seconds; got {timeout!r}.")
    json_output = spec.get("json_output", True)
    if not isinstance(json_output, bool):
        raise ConfigError("judge: json_output is true or false.")
    name = str(spec.get("name") or (f"{score_config.name}-judge" if template == "rubric" else template))
    judge = LLMJudge(name=name, template=template, model=str(model).strip(), params=params, scale=scale, rubric=rubric,
                     pass_threshold=threshold, score_name=score_name, config_id=config_id, config=score_config,
                     retries=retries, repairs=repairs, timeout=float(timeout), json_output=json_output)
    judge.version = fingerprint({
        "system": judge.system_prompt(), "user": "input context expected output scale v1", "model": judge.model,
        "params": params, "scale": judge.scale.block(), "pass_threshold": threshold, "repairs": repairs,
        "json_output": json_output,
        "config": None if score_config is None else {
            "type": score_config.data_type, "min": score_config.min_value, "max": score_config.max_value,
            "labels": [(c.label, c.value) for c in score_config.categories]},
    })
    return judge


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"judge: {name} must be a whole number >= 0; got {value!r}.")
    return value


def _config_scale(config: Any) -> Scale:
    if config.data_type == "numeric":
        if config.min_value is None or config.max_value is None:
            raise ConfigError(f"judge: the numeric score config {config.name!r} needs a minimum and a maximum "
                              "for a judge to score within.")
        return Scale(low=config.min_value, high=config.max_value)
    if config.data_type == "categorical":
        options = list(config.categories)
        if options and all(c.value is not None for c in options):
            options.sort(key=lambda c: c.value)
        return Scale(labels=tuple(c.label for c in options))
    if config.data_type == "boolean":
        return Scale(labels=("false", "true"), boolean=True)
    raise ConfigError(f"judge: {config.name!r} is a free-text score config; a judge needs numeric, categorical or "
                      "boolean.")
