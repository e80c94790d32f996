"""Code checks: deterministic evaluators that need no model.

Each check is built from a spec (``{"type": "contains", "values": [...]}``) and checked then:
a bad option is a ``ConfigError`` saying which and what it takes. Checks compare the case's
output as text (``as_text``) with the case's expected output, or with a value fixed in the spec.

=================  ====================================================================================
``exact_match``    output equals the expected text; ``ignore_case``, ``ignore_whitespace`` (runs of
                   blanks count as one, ends trimmed), ``ignore_punctuation``
``contains``       output contains ``values`` (``mode``: ``any`` or ``all``; default: the expected
                   text), same normalization options
``regex``          ``pattern`` is found in the output (``full``: the whole output matches;
                   ``ignore_case``)
``json_valid``     the output is JSON (a dict or list output already is)
``json_schema``    the output is JSON valid against ``schema`` (JSON Schema, draft 2020-12)
``numeric``        the first number in the output is within ``abs_tol`` / ``rel_tol`` of the
                   expected number (``math.isclose``)
``similarity``     ``difflib.SequenceMatcher`` ratio of output and expected text; passes at
                   ``threshold`` (default 0.8); the value is the ratio
``custom``         ``function``: ``"package.module:function"`` called as ``fn(case, **params)``; it
                   returns a bool, a number, a label, a dict (``value``, ``label``, ``passed``,
                   ``reasoning``) or an ``EvalResult``
=================  ====================================================================================

Pass/fail checks give value 1.0 or 0.0.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from looplab.errors import ConfigError
from looplab.evaluation.base import EvalCase, EvalResult, as_text, fingerprint

_NORMALIZE = {"ignore_case": False, "ignore_whitespace": False, "ignore_punctuation": False}
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2026\u2013\u2014]")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")

# type -> {option: default}; "name" and "type" are accepted by every check.
OPTIONS: dict[str, dict[str, Any]] = {
    "exact_match": {**_NORMALIZE, "expected": None},
    "contains": {**_NORMALIZE, "values": None, "mode": "any"},
    "regex": {"pattern": None, "full": False, "ignore_case": False},
    "json_valid": {},
    "json_schema": {"schema": None},
    "numeric": {"expected": None, "abs_tol": 0.0, "rel_tol": 0.0},
    "similarity": {**_NORMALIZE, "expected": None, "threshold": 0.8},
    "custom": {"function": None, "params": None},
}
CHECK_TYPES = tuple(OPTIONS)
REQUIRED = {"regex": ("pattern",), "json_schema": ("schema",), "custom": ("function",)}


def _options(check: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    known = OPTIONS[check]
    unknown = sorted(set(spec) - set(known) - {"name", "type", "score_name", "higher_is_better"})
    if unknown:
        takes = ", ".join(known) or "no options"
        raise ConfigError(f"{check}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"it takes {takes}.")
    for required in REQUIRED.get(check, ()):
        if spec.get(required) in (None, ""):
            raise ConfigError(f"{check} needs {required!r}.")
    options = {**known, **{k: v for k, v in spec.items() if k in known}}
    for flag in ("ignore_case", "ignore_whitespace", "ignore_punctuation", "full"):
        if flag in options and not isinstance(options[flag], bool):
            raise ConfigError(f"{check}: {flag} is true or false; got {options[flag]!r}.")
    return options


def normalize(text: str, *, ignore_case: bool = False, ignore_whitespace: bool = False,
              ignore_punctuation: bool = False) -> str:
    """``text`` with the chosen differences taken out (punctuation first, then blanks, then case)."""
    if ignore_punctuation:
        text = _PUNCTUATION.sub("", text)
    if ignore_whitespace:
        text = " ".join(text.split())
    if ignore_case:
        text = text.casefold()
    return text


def _number(field_name: str, value: Any, check: str, minimum: float | None = 0.0,
            maximum: float | None = None) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{check}: {field_name} must be a number; got {value}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{check}: {field_name} must be a number; got {value!r}.") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum) or \
            (maximum is not None and number > maximum):
        bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise ConfigError(f"{check}: {field_name} must be {bounds}; got {value!r}.")
    return number


@dataclass
class CodeCheck:
    """A built code check: ``evaluate(case)`` never raises (a failing custom function is an error result)."""

    name: str
    check: str
    options: dict[str, Any]
    version: str = ""
    kind: str = "code"
    score_name: str | None = None
    _run: Callable[[EvalCase], tuple[float | None, str | None, bool | None, str | None]] = field(
        default=lambda case: (None, None, None, None), repr=False)

    def evaluate(self, case: EvalCase) -> EvalResult:
        try:
            value, label, passed, reasoning = self._run(case)
        except _CaseError as err:
            return self._result(error=str(err))
        except Exception as err:  # a custom function's bug must not stop a whole run
            return self._result(error=f"{type(err).__name__}: {err}")
        return self._result(value=value, label=label, passed=passed, reasoning=reasoning)

    def _result(self, **fields: Any) -> EvalResult:
        base: dict[str, Any] = dict(value=None, label=None, passed=None, reasoning=None)
        base.update(fields)
        return EvalResult(evaluator=self.name, version=self.version, score_name=self.score_name, **base)


class _CaseError(Exception):
    """This case cannot be checked (no expected output, output not a number...)."""


def _expected_text(options: Mapping[str, Any], case: EvalCase, check: str) -> str:
    expected = options.get("expected")
    if expected is None:
        expected = case.expected
    if expected is None:
        raise _CaseError(f"{check} needs an expected output: the case has none and the check fixes none.")
    return as_text(expected)


def _passfail(passed: bool, reasoning: str) -> tuple[float, None, bool, str]:
    return (1.0 if passed else 0.0), None, passed, reasoning


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_json(output: Any) -> Any:
    if not isinstance(output, str):
        return output
    return json.loads(output)


def build_check(check: str, spec: Mapping[str, Any]) -> CodeCheck:
    """The code check ``check`` configured by ``spec``; raises ``ConfigError`` for a bad spec."""
    if check not in OPTIONS:
        raise ConfigError(f"Unknown check {check!r}; choose one of {', '.join(CHECK_TYPES)}.")
    options = _options(check, spec)
    norm = {k: options[k] for k in _NORMALIZE if k in options}
    run: Callable[[EvalCase], Any]
    extra_version: dict[str, Any] = {}

    if check == "exact_match":
        def run(case: EvalCase) -> Any:
            expected = normalize(_expected_text(options, case, check), **norm)
            output = normalize(as_text(case.output), **norm)
            same = output == expected
            return _passfail(same, "The output matches the expected output." if same else
                             f"The output {_short(output)} differs from the expected {_short(expected)}.")

    elif check == "contains":
        values = options["values"]
        if values is not None:
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
                raise ConfigError("contains: values must be a non-empty list of texts.")
        if options["mode"] not in ("any", "all"):
            raise ConfigError(f"contains: mode is 'any' or 'all'; got {options['mode']!r}.")
        options["values"] = values

        def run(case: EvalCase) -> Any:
            wanted = values if values is not None else [_expected_text(options, case, check)]
            output = normalize(as_text(case.output), **norm)
            found = [v for v in wanted if normalize(v, **norm) in output]
            missing = [v for v in wanted if v not in found]
            passed = bool(found) if options["mode"] == "any" else not missing
            if passed:
                return _passfail(True, f"Found {', '.join(map(repr, found))}.")
            return _passfail(False, f"Missing {', '.join(map(repr, missing))}.")

    elif check == "regex":
        try:
            pattern = re.compile(str(options["pattern"]), re.IGNORECASE if options["ignore_case"] else 0)
        except re.error as err:
            raise ConfigError(f"regex: {options['pattern']!r} is not a valid regular expression ({err}).") from None

        def run(case: EvalCase) -> Any:
            output = as_text(case.output)
            match = pattern.fullmatch(output) if options["full"] else pattern.search(output)
            if match:
                return _passfail(True, f"Matched {_short(match.group(0))}.")
            return _passfail(False, f"{'The whole output does not match' if options['full'] else 'No match of'} "
                                    f"/{pattern.pattern}/.")

    elif check == "json_valid":
        def run(case: EvalCase) -> Any:
            try:
                _parse_json(case.output)
            except ValueError as err:
                return _passfail(False, f"Not JSON: {err}.")
            return _passfail(True, "The output is valid JSON.")

    elif check == "json_schema":
        import jsonschema

        schema = options["schema"]
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError as err:
                raise ConfigError(f"json_schema: the schema is not JSON ({err}).") from None
        if not isinstance(schema, (dict, bool)):
            raise ConfigError("json_schema: the schema must be a JSON object.")
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as err:
            raise ConfigError(f"json_schema: the schema is invalid: {err.message}.") from None
        options["schema"] = schema
        validator = validator_class(schema)

        def run(case: EvalCase) -> Any:
            try:
                data = _parse_json(case.output)
            except ValueError as err:
                return _passfail(False, f"Not JSON: {err}.")
            errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
            if not errors:
                return _passfail(True, "The output matches the schema.")
            first = errors[0]
            where = "/".join(map(str, first.absolute_path)) or "(root)"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            return _passfail(False, f"At {where}: {first.message}{more}.")

    elif check == "numeric":
        abs_tol = options["abs_tol"] = _number("abs_tol", options["abs_tol"], check)
        rel_tol = options["rel_tol"] = _number("rel_tol", options["rel_tol"], check)
        if options["expected"] is not None:
            options["expected"] = _number("expected", options["expected"], check, minimum=None)

        def run(case: EvalCase) -> Any:
            expected = options["expected"]
            if expected is None:
                expected = _first_number(_expected_text(options, case, check), "the expected output")
            got = _first_number(as_text(case.output), "the output")
            close = math.isclose(got, expected, rel_tol=rel_tol, abs_tol=abs_tol)
            return _passfail(close, f"{got:g} is {'within' if close else 'outside'} tolerance of {expected:g} "
                                    f"(abs {abs_tol:g}, rel {rel_tol:g}).")

    elif check == "similarity":
        threshold = options["threshold"] = _number("threshold", options["threshold"], check, maximum=1.0)

        def run(case: EvalCase) -> Any:
            expected = normalize(_expected_text(options, case, check), **norm)
            output = normalize(as_text(case.output), **norm)
            ratio = difflib.SequenceMatcher(None, output, expected, autojunk=False).ratio()
            passed = ratio >= threshold
            return ratio, None, passed, f"Similarity {ratio:.3f} {'>=' if passed else '<'} threshold {threshold:g}."

    else:  # custom
        function, source = _import_function(str(options["function"]))
        params = options["params"] or {}
        if not isinstance(params, Mapping):
            raise ConfigError("custom: params must be an object of keyword arguments.")
        options["params"] = dict(params)
        extra_version = {"source": fingerprint(source)}
        name = str(spec.get("name") or options["function"])

        def run(case: EvalCase) -> Any:
            return _custom_outcome(function(case, **params), name)

    name = str(spec.get("name") or (options["function"] if check == "custom" else check))
    version = fingerprint({"type": check, **options, **extra_version})
    return CodeCheck(name=name, check=check, options=options, version=version,
                     score_name=spec.get("score_name") or None, _run=run)


def _first_number(text: str, what: str) -> float:
    for match in _NUMBER.finditer(text):
        token = match.group(0)
        if token and any(c.isdigit() for c in token):
            return float(token.replace(",", ""))
    raise _CaseError(f"No number in {what} ({_short(text)}).")


def _import_function(path: str) -> tuple[Callable[..., Any], str]:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"custom: function must be 'package.module:function'; got {path!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"custom: cannot import {module_name!r} ({err}).") from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"custom: {module_name!r} has no {attr!r}.")
    if not callable(target):
        raise ConfigError(f"custom: {path!r} is not a function.")
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        source = path
    return target, source


def _custom_outcome(outcome: Any, name: str) -> tuple[float | None, str | None, bool | None, str | None]:
    if isinstance(outcome, EvalResult):
        if outcome.error:
            raise _CaseError(outcome.error)
        return outcome.value, outcome.label, outcome.passed, outcome.reasoning
    if isinstance(outcome, bool):
        return _passfail(outcome, None)  # type: ignore[arg-type]
    if isinstance(outcome, (int, float)):
        if not math.isfinite(outcome):
            raise _CaseError(f"{name} returned {outcome!r}, not a finite number.")
        return float(outcome), None, None, None
    if isinstance(outcome, str):
        return None, outcome, None, None
    if isinstance(outcome, Mapping):
        unknown = set(outcome) - {"value", "label", "passed", "reasoning", "score"}
        if unknown:
            raise _CaseError(f"{name} returned unknown keys {', '.join(sorted(unknown))}; "
                             "use value, label, passed, reasoning.")
        value = outcome.get("value", outcome.get("score"))
        passed = outcome.get("passed")
        if isinstance(value, bool):
            passed = value if passed is None else passed
            value = 1.0 if value else 0.0
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise _CaseError(f"{name} returned value {value!r}, not a number.") from None
        label = outcome.get("label")
        if value is None and label is None and passed is None:
            raise _CaseError(f"{name} returned neither a value, a label nor passed.")
        if value is None and passed is not None:
            value = 1.0 if passed else 0.0
        return value, None if label is None else str(label), None if passed is None else bool(passed), \
            outcome.get("reasoning")
    raise _CaseError(f"{name} returned {type(outcome).__name__}; return a bool, a number, a label or a dict.")
