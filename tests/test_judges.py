"""LLM judges with the real openai and anthropic SDKs against the fake LLM server (through
``openai:``/``anthropic:`` model strings), and with the offline ``mock:judge``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import looplab
from looplab.annotation.score_configs import create_score_config, validate_score_config
from looplab.errors import ConfigError
from looplab.evaluation import EvalCase, build_evaluator, get_evaluator, list_evaluators, save_evaluator, score_rows
from looplab.evaluation.judges import JUDGE_TAG, Scale, VerdictError, parse_verdict
from looplab.store.engine import read_session
from looplab.store.models import TraceTag
from tests.fakes.llm_server import FakeLLM, Reply
from tests.stored import stored_spans, stored_traces

OPENAI = "openai:gpt-4o-mini"
ANTHROPIC = "anthropic:claude-3-5-haiku-latest"
CASE = EvalCase(input="What is the capital of France?", output="Paris.", expected="Paris")
GOOD = '{"reasoning": "Same city.", "score": 0.9}'


@pytest.fixture(autouse=True)
def _provider_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "ANTHROPIC_", "LOOPLAB_OPENAI_COMPATIBLE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml of the machine


@pytest.fixture
def fake(fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-judge-0123456789abcdef")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_llm.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-judge-0123456789")
    return fake_llm


def judge(model: str = OPENAI, **spec: object):
    built = build_evaluator({"type": "judge", "template": "correctness", "model": model, **spec})
    built.sleep = lambda seconds: None  # retries happen at once in tests
    return built


def user_text(request) -> str:
    body = request.body
    return "\n".join(str(m.get("content")) for m in body["messages"] if m["role"] == "user")


# --- against the SDKs -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_a_well_formed_verdict(fake: FakeLLM, model: str) -> None:
    fake.enqueue(Reply(text=GOOD, usage={"input_tokens": 200, "output_tokens": 12}))
    result = judge(model).evaluate(CASE)
    assert result.error is None
    assert (result.value, result.passed, result.reasoning) == (0.9, True, "Same city.")
    assert (result.input_tokens, result.output_tokens) == (200, 12)
    assert result.cost_usd is not None and result.cost_usd > 0
    assert len(fake.requests) == 1
    sent = user_text(fake.requests[0])
    assert "<output>\nParis.\n</output>" in sent and "<expected>\nParis\n</expected>" in sent


def test_malformed_then_repaired(fake: FakeLLM) -> None:
    fake.enqueue(Reply(text="The answer looks right to me.", usage={"input_tokens": 100, "output_tokens": 7}),
                 Reply(text=f"Sure:\n```json\n{GOOD}\n```", usage={"input_tokens": 130, "output_tokens": 20}))
    result = judge().evaluate(CASE)
    assert result.error is None and result.value == 0.9
    assert (result.input_tokens, result.output_tokens) == (230, 27)  # both calls counted
    assert len(fake.requests) == 2
    follow_up = fake.requests[1].body["messages"]
    assert follow_up[-2] == {"role": "assistant", "content": "The answer looks right to me."}
    assert "could not be used: The answer holds no JSON object." in follow_up[-1]["content"]
    assert result.metadata["repairs"] == 1


def test_malformed_twice_is_an_error_result_not_an_exception(fake: FakeLLM) -> None:
    fake.enqueue(Reply(text="no idea"), Reply(text='{"reasoning": "hmm"}'))
    result = judge().evaluate(CASE)
    assert result.value is None and result.passed is None
    assert result.error == "The judge's answer was unusable after 2 attempts: The JSON object has no \"score\"."
    assert result.input_tokens is not None
    assert len(fake.requests) == 2


def test_an_out_of_range_score_is_sent_back_then_an_error(fake: FakeLLM) -> None:
    fake.enqueue(Reply(text='{"reasoning": "great", "score": 7}'), Reply(text='{"reasoning": "great", "score": 9}'))
    result = judge().evaluate(CASE)
    assert "outside the scale 0 to 1" in fake.requests[1].body["messages"][-1]["content"]
    assert result.error and "The score 9 is outside the scale 0 to 1" in result.error


def test_a_rate_limit_is_retried(fake: FakeLLM) -> None:
    fake.enqueue(Reply(status=429), Reply(status=503), Reply(text=GOOD))
    waits: list[float] = []
    built = judge()
    built.sleep = waits.append
    result = built.evaluate(CASE)
    assert result.error is None and result.value == 0.9
    assert len(fake.requests) == 3 and len(waits) == 2 and all(w < 1 for w in waits)


def test_a_provider_that_keeps_failing_gives_an_error_result_and_no_score_rows(fake: FakeLLM) -> None:
    fake.enqueue(*[Reply(status=429)] * 3)
    result = judge(retries=2).evaluate(CASE)
    assert result.error.startswith("The judge model failed:") and result.metadata["provider_error"]
    assert score_rows(result, trace_id="t1") == []  # tried again on the next run
    fake.enqueue(Reply(status=400, text="bad request"))
    assert judge().evaluate(CASE).error.startswith("The judge model failed:")
    assert len(fake.requests) == 4  # a 400 is not retried


def test_a_judge_call_is_traced_with_its_llm_span(fake: FakeLLM, traced: str) -> None:
    fake.enqueue(Reply(text=GOOD, usage={"input_tokens": 50, "output_tokens": 9}))
    built = judge(name="capital-judge")
    result = built.evaluate(CASE)
    assert looplab.flush()
    (trace,) = stored_traces(traced)
    assert trace["name"] == "capital-judge" and result.metadata["judge_trace_id"] == trace["id"]
    spans = {s["kind"]: s for s in stored_spans(traced)}
    assert spans["evaluator"]["name"] == "capital-judge" and spans["evaluator"]["parent_id"] is None
    llm = spans["llm"]
    assert llm["parent_id"] == spans["evaluator"]["id"] and llm["provider"] == "openai"
    assert (llm["input_tokens"], llm["output_tokens"]) == (50, 9)
    assert llm["cost_usd"] == pytest.approx(result.cost_usd)
    with read_session(traced) as session:
        assert session.get(TraceTag, (trace["id"], JUDGE_TAG)) is not None


def test_inside_an_active_trace_the_judge_is_a_child_span(fake: FakeLLM, traced: str) -> None:
    fake.enqueue(Reply(text=GOOD))
    with looplab.trace("experiment-item") as outer:
        judge().evaluate(CASE)
    assert looplab.flush()
    assert [t["name"] for t in stored_traces(traced)] == ["experiment-item"]
    spans = stored_spans(traced, outer.trace_id)
    assert {s["kind"] for s in spans} == {"span", "evaluator", "llm"}


# --- the mock judge and rubric judges -------------------------------------------------------------


def test_the_mock_judge_scores_by_similarity() -> None:
    good = judge("mock:judge").evaluate(EvalCase(input="q", output="Paris", expected="Paris"))
    bad = judge("mock:judge").evaluate(EvalCase(input="q", output="Lyon is lovely", expected="Paris"))
    assert good.value == 1.0 and good.passed is True
    assert bad.value < 0.5 and bad.passed is False
    assert good.cost_usd == 0.0


def test_templates_say_what_they_need() -> None:
    no_expected = judge("mock:judge").evaluate(EvalCase(input="q", output="a"))
    assert no_expected.error and "needs an expected output" in no_expected.error
    faithful = build_evaluator({"type": "judge", "template": "faithfulness", "model": "mock:judge"})
    assert "needs retrieved context" in faithful.evaluate(EvalCase(input="q", output="a")).error
    scored = faithful.evaluate(EvalCase(input="q", output="a", context=["doc one", "doc two"]))
    assert scored.error is None and 0 <= scored.value <= 1
    helpful = build_evaluator({"type": "judge", "template": "helpfulness", "model": "mock:judge"})
    assert 1 <= helpful.evaluate(EvalCase(input="q", output="an answer")).value <= 5


def test_a_categorical_rubric_judge_answers_with_a_label_and_its_value(db_url: str) -> None:
    config = create_score_config(db_url, "answer-quality", "categorical", description="Is it right?",
                                 categories=[{"label": "good", "value": 1}, {"label": "bad", "value": 0}])
    built = build_evaluator({"type": "judge", "template": "rubric", "model": "mock:judge",
                             "score_config": "answer-quality"}, url=db_url)
    assert "<labels>bad, good</labels>" in built.messages(CASE)[1]["content"]  # worst first
    assert "Is it right?" in built.messages(CASE)[0]["content"]
    result = built.evaluate(EvalCase(input="q", output="Paris", expected="Paris"))
    assert (result.label, result.value, result.name, result.config_id) == ("good", 1.0, "answer-quality", config.id)


def test_boolean_and_numeric_rubrics() -> None:
    flag = validate_score_config("resolved", "boolean", description="Was the issue resolved?")
    built = build_evaluator({"type": "judge", "template": "rubric", "model": "mock:judge"}, score_config=flag)
    result = built.evaluate(EvalCase(input="q", output="Paris", expected="Paris"))
    assert (result.label, result.value, result.passed) == ("true", 1.0, True)
    stars = validate_score_config("stars", "numeric", min_value=1, max_value=5, step=1, description="1 to 5 stars")
    built = build_evaluator({"type": "judge", "template": "rubric", "model": "mock:judge"}, score_config=stars)
    assert built.evaluate(EvalCase(input="q", output="Paris", expected="Paris")).value == 5.0


@pytest.mark.parametrize(("spec", "config", "message"), [
    ({"template": "nope"}, None, "template must be one of"),
    ({"template": "correctness", "model": ""}, None, "give a model"),
    ({"template": "correctness", "model": "gpt-4o"}, None, "names no provider"),
    ({"template": "correctness", "model": "mock:judge", "temperature": 0}, None, "unknown option temperature"),
    ({"template": "rubric", "model": "mock:judge"}, None, "needs a score config"),
    ({"template": "rubric", "model": "mock:judge"}, validate_score_config("n", "numeric", description="x"),
     "needs a minimum and a maximum"),
    ({"template": "rubric", "model": "mock:judge"}, validate_score_config("t", "text", description="x"),
     "free-text"),
    ({"template": "rubric", "model": "mock:judge"}, validate_score_config("b", "boolean"), "no rubric"),
    ({"template": "correctness", "model": "mock:judge", "retries": -1}, None, "whole number"),
])
def test_bad_judge_specs(spec: dict, config: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_evaluator({"type": "judge", **spec}, score_config=config)


# --- reading verdicts -----------------------------------------------------------------------------

ZERO_ONE = Scale(low=0, high=1)
ONE_FIVE = Scale(low=1, high=5)


@pytest.mark.parametrize(("text", "scale", "score"), [
    ('{"reasoning": "ok", "score": 1}', ZERO_ONE, 1.0),
    ('Here you go: {"reasoning": "ok", "score": 0.25} hope it helps', ZERO_ONE, 0.25),
    ("```json\n{\"reasoning\": \"ok\", \"score\": 4}\n```", ONE_FIVE, 4.0),
    ("{'reasoning': 'single quotes', 'score': '3'}", ONE_FIVE, 3.0),
    ('{"Reasoning": "ok", "Score": "4/5",}', ONE_FIVE, 4.0),
    ('{"reasoning": "ok", "rating": 2, "flag": true}', ONE_FIVE, 2.0),
])
def test_verdicts_are_read_robustly(text: str, scale: Scale, score: float) -> None:
    assert parse_verdict(text, scale)[0] == score


@pytest.mark.parametrize(("text", "scale", "message"), [
    ("", ZERO_ONE, "empty"),
    ("score: 1", ZERO_ONE, "no JSON object"),
    ('{"reasoning": "x", "score": 1.5}', ZERO_ONE, "outside the scale"),
    ('{"reasoning": "x", "score": "high"}', ZERO_ONE, "not a number"),
    ('{"reasoning": "x", "score": true}', ZERO_ONE, "not true"),
    ('{"reasoning": "x", "label": "maybe"}', Scale(labels=("fail", "pass")), "not one of fail, pass"),
])
def test_unusable_verdicts_say_why(text: str, scale: Scale, message: str) -> None:
    with pytest.raises(VerdictError, match=message):
        parse_verdict(text, scale)


def test_labels_are_matched_loosely() -> None:
    assert parse_verdict('{"label": "PASS."}', Scale(labels=("fail", "pass")))[1] == "pass"
    assert parse_verdict('{"verdict": true}', Scale(labels=("false", "true"), boolean=True))[1] == "true"
    assert parse_verdict('{"label": "yes"}', Scale(labels=("false", "true"), boolean=True))[1] == "true"


# --- versions -------------------------------------------------------------------------------------


def test_the_version_follows_template_model_and_params() -> None:
    base = judge("mock:judge")
    assert judge("mock:judge").version == base.version
    assert judge("mock:judge", name="other").version == base.version
    assert judge("mock:other").version != base.version
    assert judge("mock:judge", params={"temperature": 0}).version != base.version
    assert build_evaluator({"type": "judge", "template": "helpfulness", "model": "mock:judge"}).version != base.version
    rubric = validate_score_config("r", "boolean", description="Rubric one")
    changed = validate_score_config("r", "boolean", description="Rubric two")
    spec = {"type": "judge", "template": "rubric", "model": "mock:judge"}
    assert build_evaluator(spec, score_config=rubric).version != build_evaluator(spec, score_config=changed).version


def test_saved_judges_are_versioned_and_scores_carry_the_version(db_url: str) -> None:
    spec = {"type": "judge", "template": "correctness", "model": "mock:judge"}
    first = save_evaluator(db_url, "correct", spec)
    assert (first.version, first.kind) == (1, "llm_judge")
    assert save_evaluator(db_url, "correct", dict(spec)).id == first.id
    second = save_evaluator(db_url, "correct", {**spec, "params": {"temperature": 0}})
    assert second.version == 2
    assert [e.version for e in list_evaluators(db_url)] == [2]
    assert len(list_evaluators(db_url, all_versions=True)) == 2
    info, built = get_evaluator(db_url, "correct", version=1)
    assert info.id == first.id and built.name == "correct"
    result = built.evaluate(EvalCase(input="q", output="Paris", expected="Paris"))
    (row,) = score_rows(result, trace_id="t1", evaluator_id=info.id)
    assert (row.source, row.name, row.value, row.evaluator_id) == ("llm_judge", "correct", 1.0, info.id)
    assert row.evaluator_version == built.version and row.comment == result.reasoning
    assert row.metadata_json["input_tokens"] == result.input_tokens
