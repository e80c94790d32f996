"""Code checks: each check, normalization, custom functions, and specs that are refused."""

from __future__ import annotations

import pytest

from looplab.errors import ConfigError
from looplab.evaluation import EvalCase, EvalResult, build_evaluator
from looplab.evaluation.checks import normalize


def run(spec: str | dict, output: object, expected: object = None) -> EvalResult:
    return build_evaluator(spec).evaluate(EvalCase(input="q", output=output, expected=expected))


# --- exact match and normalization ----------------------------------------------------------------


def test_exact_match_is_strict_by_default() -> None:
    assert run("exact_match", "Paris", "Paris").passed is True
    result = run("exact_match", "paris", "Paris")
    assert (result.passed, result.value, result.error) == (False, 0.0, None)
    assert "differs" in result.reasoning


@pytest.mark.parametrize(("options", "output", "passed"), [
    ({"ignore_case": True}, "PARIS, france", True),
    ({"ignore_whitespace": True}, "  Paris,\n  France ", True),
    ({"ignore_punctuation": True}, "Paris France!", True),
    ({"ignore_punctuation": True}, "Paris  France", False),
    ({"ignore_case": True, "ignore_whitespace": True, "ignore_punctuation": True}, " paris   FRANCE. ", True),
    ({"ignore_case": True}, "Paris France", False),
])
def test_exact_match_normalization(options: dict, output: str, passed: bool) -> None:
    assert run({"type": "exact_match", **options}, output, "Paris, France").passed is passed


def test_normalize_handles_curly_punctuation() -> None:
    assert normalize("It’s “done”…", ignore_punctuation=True) == "Its done"


def test_the_expected_value_can_be_fixed_in_the_spec_and_outputs_can_be_messages() -> None:
    assert run({"type": "exact_match", "expected": "yes"}, {"role": "assistant", "content": "yes"}).passed


def test_a_check_without_an_expected_output_is_an_error_result_not_an_exception() -> None:
    result = run("exact_match", "Paris")
    assert result.error and "expected output" in result.error
    assert result.value is None and result.passed is None


# --- contains, regex ------------------------------------------------------------------------------


def test_contains_any_and_all() -> None:
    any_ = {"type": "contains", "values": ["refund", "return"], "ignore_case": True}
    assert run(any_, "You can get a Refund").passed is True
    every = {**any_, "mode": "all"}
    result = run(every, "You can get a Refund")
    assert result.passed is False and "'return'" in result.reasoning
    assert run(every, "Return it for a refund").passed is True


def test_contains_defaults_to_the_expected_output() -> None:
    assert run("contains", "The answer is 42, friend.", "42").passed is True


def test_regex_search_and_full_match() -> None:
    assert run({"type": "regex", "pattern": r"\border #\d+"}, "Your order #123 shipped").passed
    assert not run({"type": "regex", "pattern": r"\d+", "full": True}, "order 123").passed
    assert run({"type": "regex", "pattern": r"ORDER", "ignore_case": True}, "order").passed


# --- JSON -----------------------------------------------------------------------------------------


def test_json_valid() -> None:
    assert run("json_valid", '{"a": 1}').passed
    assert run("json_valid", {"a": 1}).passed  # already data
    bad = run("json_valid", "{'a': 1}")
    assert bad.passed is False and bad.reasoning.startswith("Not JSON")


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
          "required": ["city", "days"]}


def test_json_schema() -> None:
    spec = {"type": "json_schema", "schema": SCHEMA}
    assert run(spec, '{"city": "Paris", "days": 3}').passed
    result = run(spec, '{"city": "Paris", "days": 0}')
    assert result.passed is False and "days" in result.reasoning and "minimum" in result.reasoning
    assert run(spec, "not json").passed is False


# --- numbers and similarity -----------------------------------------------------------------------


def test_numeric_tolerance_absolute_and_relative() -> None:
    assert run({"type": "numeric", "abs_tol": 0.01}, "The total is 3.141 EUR", "3.14").passed
    assert not run({"type": "numeric", "abs_tol": 0.0001}, "3.141", "3.14").passed
    assert run({"type": "numeric", "rel_tol": 0.05}, "1,020", 1000).passed
    assert not run("numeric", "1001", 1000).passed
    assert run({"type": "numeric", "expected": -2.5}, "-2.5").passed
    assert run("numeric", "no digits here", 3).error.startswith("No number")


def test_similarity_value_is_the_ratio() -> None:
    result = run({"type": "similarity", "threshold": 0.5}, "abcd", "abce")
    assert result.value == pytest.approx(0.75) and result.passed is True
    assert run({"type": "similarity"}, "abcd", "abce").passed is False  # default threshold 0.8
    assert run({"type": "similarity", "ignore_case": True}, "HELLO", "hello").value == 1.0


# --- custom functions -----------------------------------------------------------------------------


def word_count_at_most(case: EvalCase, limit: int = 5) -> dict:
    words = len(str(case.output).split())
    return {"value": words, "passed": words <= limit, "reasoning": f"{words} words"}


def politeness(case: EvalCase) -> str:
    return "polite" if "please" in str(case.output).lower() else "curt"


def is_short(case: EvalCase) -> bool:
    return len(str(case.output)) < 10


def broken(case: EvalCase) -> bool:
    raise RuntimeError("bug in the check")


def test_custom_functions() -> None:
    spec = {"type": "custom", "function": "tests.test_code_checks:word_count_at_most", "params": {"limit": 3}}
    result = run(spec, "one two three four")
    assert (result.value, result.passed, result.reasoning) == (4.0, False, "4 words")
    assert result.evaluator == "tests.test_code_checks:word_count_at_most"
    assert run({"type": "custom", "function": "tests.test_code_checks:politeness"}, "Please wait").label == "polite"
    assert run({"type": "custom", "function": "tests.test_code_checks:is_short"}, "hi").passed is True


def test_a_failing_custom_function_gives_an_error_result() -> None:
    result = run({"type": "custom", "function": "tests.test_code_checks:broken"}, "x")
    assert result.error == "RuntimeError: bug in the check"


# --- versions and specs ---------------------------------------------------------------------------


def test_version_follows_the_config_not_the_name() -> None:
    a = build_evaluator({"type": "contains", "values": ["x"], "name": "a"})
    b = build_evaluator({"type": "contains", "values": ["x"], "name": "b"})
    c = build_evaluator({"type": "contains", "values": ["y"], "name": "a"})
    assert a.version == b.version != c.version
    assert a.kind == "code" and a.name == "a"


@pytest.mark.parametrize(("spec", "message"), [
    ("nope", "Unknown evaluator type 'nope'"),
    (42, "a check's name or an object"),
    ({"type": "contains", "value": ["x"]}, "unknown option value"),
    ({"type": "contains", "values": []}, "non-empty list"),
    ({"type": "contains", "values": ["x"], "mode": "some"}, "'any' or 'all'"),
    ({"type": "regex"}, "needs 'pattern'"),
    ({"type": "regex", "pattern": "("}, "not a valid regular expression"),
    ({"type": "json_schema", "schema": {"type": "nothing"}}, "schema is invalid"),
    ({"type": "numeric", "abs_tol": -1}, "at least 0"),
    ({"type": "similarity", "threshold": 2}, "between 0 and 1"),
    ({"type": "exact_match", "ignore_case": "yes"}, "true or false"),
    ({"type": "exact_match", "higher_is_better": "no"}, "higher_is_better is true or false"),
    ({"type": "custom", "function": "no_colon"}, "package.module:function"),
    ({"type": "custom", "function": "looplab_missing_module:fn"}, "cannot import"),
    ({"type": "custom", "function": "json:nothing_here"}, "has no 'nothing_here'"),
    ({"type": "custom", "function": "json:__doc__"}, "is not a function"),
])
def test_bad_specs_say_what_is_wrong(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_evaluator(spec)  # type: ignore[arg-type]
