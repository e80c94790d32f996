"""looplab.providers: the real openai/anthropic SDKs against the fake LLM server, the
OpenAI-compatible endpoints' configuration, the offline mock and its judge, errors and tracing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import looplab
from looplab.errors import ConfigError
from looplab.providers import (
    Completion,
    ModelRef,
    ProviderError,
    available_providers,
    check_connection,
    complete,
    openai_api,
    parse_model,
)
from looplab.providers import mock as mock_module
from looplab.providers.endpoints import resolve
from looplab.tracing.pricing import cost_usd
from tests.fakes.llm_server import FakeLLM, Reply
from tests.stored import stored_spans

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
OPENAI = "openai:gpt-4o-mini"
ANTHROPIC = "anthropic:claude-3-5-haiku-latest"
HELLO = [{"role": "user", "content": "Where is my parcel?"}]


@pytest.fixture(autouse=True)
def _clean_provider_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key or secrets file of the machine leaks into a test (or a test's into the machine)."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "ANTHROPIC_", "LOOPLAB_OPENAI_COMPATIBLE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # .streamlit/secrets.toml is read from the working directory


@pytest.fixture
def fake(fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    """The fake server as OpenAI and Anthropic, through the SDKs' own environment variables."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_llm.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    return fake_llm


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- real providers against the fake server ---------------------------------------------------------


def test_openai_completion_text_tokens_and_cost(fake: FakeLLM) -> None:
    fake.enqueue(Reply(text="It ships tomorrow.", usage={"input_tokens": 120, "output_tokens": 8}))
    answer = complete(OPENAI, HELLO)
    assert isinstance(answer, Completion)
    assert answer.text == "It ships tomorrow." and answer.model == OPENAI and answer.finish_reason == "stop"
    assert (answer.input_tokens, answer.output_tokens) == (120, 8)
    assert answer.cost_usd == pytest.approx(cost_usd("openai", "gpt-4o-mini", 120, 8)) and answer.cost_usd > 0
    assert answer.latency_ms > 0
    request = fake.requests[-1]
    assert request.path == "/v1/chat/completions" and request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.body["model"] == "gpt-4o-mini" and request.body["messages"] == HELLO


def test_anthropic_completion_moves_system_messages_to_system(fake: FakeLLM) -> None:
    fake.enqueue(Reply(text="Tomorrow.", usage={"input_tokens": 30, "output_tokens": 2, "cached_tokens": 10}))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "system", "content": "Be kind."},
                {"role": "user", "content": "Where is my parcel?"}, {"role": "assistant", "content": "Which one?"},
                {"role": "user", "content": "The blue one."}]
    answer = complete(ANTHROPIC, messages)
    assert answer.text == "Tomorrow." and answer.finish_reason == "end_turn"
    assert (answer.input_tokens, answer.output_tokens) == (40, 2)  # cache reads count as input
    assert answer.cost_usd is not None and answer.cost_usd > 0
    body = fake.requests[-1].body
    headers = fake.requests[-1].headers
    assert ANTHROPIC_KEY in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    assert body["system"] == "Be brief.\n\nBe kind."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["max_tokens"] == 1024  # Anthropic requires one


def test_openai_params_pass_through(fake: FakeLLM) -> None:
    params = {"temperature": 0.3, "top_p": 0.9, "seed": 7, "stop": ["\n\n"], "max_tokens": 50,
              "presence_penalty": 0.1}
    complete(OPENAI, HELLO, params=params, json_output=True)
    body = fake.requests[-1].body
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["seed"] == 7 and body["stop"] == ["\n\n"]
    assert body["presence_penalty"] == 0.1
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body  # what OpenAI's own API wants
    assert body["response_format"] == {"type": "json_object"}


def test_anthropic_params_pass_through(fake: FakeLLM) -> None:
    complete(ANTHROPIC, HELLO, params={"temperature": 0, "top_k": 5, "stop": "END", "seed": 1, "max_tokens": 64},
             json_output=True)
    body = fake.requests[-1].body
    assert body["temperature"] == 0 and body["top_k"] == 5 and body["max_tokens"] == 64
    assert body["stop_sequences"] == ["END"] and "stop" not in body
    assert "seed" not in body  # not an Anthropic parameter: left out so one params set fits both


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC, "mock:support"])
def test_unknown_params_are_a_config_error_naming_them(fake: FakeLLM, model: str) -> None:
    with pytest.raises(ConfigError, match="temprature"):
        complete(model, HELLO, params={"temprature": 0.2, "top_p": 1})
    assert fake.requests == []


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_rate_limit_is_retryable_with_retry_after_and_not_retried(fake: FakeLLM, model: str) -> None:
    fake.enqueue(Reply(status=429))
    with pytest.raises(ProviderError) as caught:
        complete(model, HELLO)
    error = caught.value
    assert error.status == 429 and error.retryable and error.retry_after == pytest.approx(0.001)
    assert "rate limit" in str(error) and model in str(error)
    assert len(fake.requests) == 1  # no retries inside: the caller decides


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("status,retryable", [(400, False), (404, False), (500, True), (503, True)])
def test_status_errors(fake: FakeLLM, model: str, status: int, retryable: bool) -> None:
    fake.enqueue(Reply(status=status, text="Something is off."))
    with pytest.raises(ProviderError) as caught:
        complete(model, HELLO)
    assert caught.value.status == status and caught.value.retryable is retryable
    assert f"HTTP {status}" in str(caught.value) and "Something is off." in str(caught.value)
    if not retryable:
        assert caught.value.retry_after is None


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_the_key_never_appears_in_an_error(fake: FakeLLM, model: str) -> None:
    fake.enqueue(Reply(status=401, text=f"Incorrect API key provided: {OPENAI_KEY} / {ANTHROPIC_KEY}"))
    with pytest.raises(ProviderError) as caught:
        complete(model, HELLO)
    assert caught.value.status == 401 and not caught.value.retryable
    assert OPENAI_KEY not in str(caught.value) and ANTHROPIC_KEY not in str(caught.value)
    assert "API key" in str(caught.value)


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_timeout_is_retryable(fake: FakeLLM, model: str) -> None:
    fake.enqueue(Reply(delay=2.0))
    with pytest.raises(ProviderError) as caught:
        complete(model, HELLO, timeout=0.2)
    assert caught.value.retryable and caught.value.status is None
    assert "timed out" in str(caught.value) and "0.2 s" in str(caught.value)


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_connection_refused_is_retryable(monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    port = _free_port()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    with pytest.raises(ProviderError) as caught:
        complete(model, HELLO, timeout=5)
    assert caught.value.retryable and caught.value.status is None
    assert f"could not connect to http://127.0.0.1:{port}" in str(caught.value)


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
def test_a_malformed_body_is_a_retryable_provider_error(fake: FakeLLM, model: str) -> None:
    fake.enqueue(Reply(malformed=True))
    with pytest.raises(ProviderError, match="could not be read") as caught:
        complete(model, HELLO)
    assert caught.value.retryable


def test_a_missing_key_is_a_config_error_saying_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        complete(OPENAI, HELLO)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        complete(ANTHROPIC, HELLO)


def test_concurrent_calls_share_one_client(fake: FakeLLM) -> None:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: complete(OPENAI, [{"role": "user", "content": f"q{i}"}]), range(32)))
    assert [a.text for a in answers] == [f"Echo: q{i}" for i in range(32)]
    endpoint = resolve(parse_model(OPENAI))
    assert openai_api.client_for(endpoint, 60.0) is openai_api.client_for(endpoint, 60.0)
    assert openai_api.client_for(endpoint, 60.0) is not openai_api.client_for(endpoint, 5.0)


# --- OpenAI-compatible endpoints ------------------------------------------------------------------


def test_openai_compatible_from_the_environment(fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)  # must not be sent to another server
    monkeypatch.setenv("LOOPLAB_OPENAI_COMPATIBLE_MY_VLLM_BASE_URL", fake_llm.openai_base_url)
    answer = complete("openai-compatible:my-vllm/meta-llama/Llama-3.1-8B-Instruct", HELLO,
                      params={"max_tokens": 20})
    assert answer.text == "Echo: Where is my parcel?" and answer.input_tokens is not None
    assert answer.cost_usd is None  # a self-hosted model's price is unknown
    request = fake_llm.requests[-1]
    assert request.body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert request.body["max_tokens"] == 20  # as is: such servers may not know max_completion_tokens
    assert OPENAI_KEY not in request.headers.get("authorization", "")

    monkeypatch.setenv("LOOPLAB_OPENAI_COMPATIBLE_MY_VLLM_API_KEY", "local-key-123")
    complete("openai-compatible:my-vllm/llama3.1:8b", HELLO)
    assert fake_llm.requests[-1].headers["authorization"] == "Bearer local-key-123"
    assert fake_llm.requests[-1].body["model"] == "llama3.1:8b"


def test_a_self_hosted_model_is_traced_under_its_endpoint_and_never_priced_as_openai_s(
        traced: str, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLAB_OPENAI_COMPATIBLE_MY_VLLM_BASE_URL", fake_llm.openai_base_url)
    answer = complete("openai-compatible:my-vllm/gpt-4o-mini", HELLO)  # served locally under an OpenAI name
    assert answer.cost_usd is None
    looplab.flush()
    (span,) = stored_spans(traced)
    assert span["provider"] == "openai-compatible:my-vllm" and span["model"] == "gpt-4o-mini"
    assert span["input_tokens"] is not None and span["cost_usd"] is None


def test_openai_compatible_from_secrets_toml(fake_llm: FakeLLM, tmp_path: Path) -> None:
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        f'[openai_compatible.ollama]\nbase_url = "{fake_llm.openai_base_url}"\napi_key = "ollama-key-456"\n'
    )
    answer = complete("openai-compatible:ollama/qwen2.5:7b", HELLO)
    assert answer.text.startswith("Echo:")
    assert fake_llm.requests[-1].headers["authorization"] == "Bearer ollama-key-456"


def test_openai_from_secrets_toml(fake_llm: FakeLLM, tmp_path: Path) -> None:
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        f'[openai]\nbase_url = "{fake_llm.openai_base_url}"\napi_key = "{OPENAI_KEY}"\n'
    )
    assert complete(OPENAI, HELLO).text.startswith("Echo:")


def test_an_unconfigured_openai_compatible_endpoint_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="LOOPLAB_OPENAI_COMPATIBLE_LOCAL_BASE_URL"):
        complete("openai-compatible:local/llama3", HELLO)


# --- parse_model ----------------------------------------------------------------------------------


def test_parse_model_accepted_forms() -> None:
    assert parse_model("openai:gpt-4o-mini") == ModelRef("openai", "gpt-4o-mini")
    assert parse_model("anthropic:claude-3-5-haiku-latest") == ModelRef("anthropic", "claude-3-5-haiku-latest")
    assert parse_model("openai-compatible:Local/llama3.1:8b") == ModelRef("openai-compatible", "llama3.1:8b", "local")
    assert parse_model("mock:judge") == ModelRef("mock", "judge")
    assert str(parse_model("openai-compatible:local/a/b")) == "openai-compatible:local/a/b"


@pytest.mark.parametrize("bad,hint", [
    ("gpt-4o-mini", "Did you mean openai:gpt-4o-mini"),
    ("claude-3-5-haiku", "Did you mean anthropic:claude-3-5-haiku"),
    ("azure:gpt-4o", "Unknown provider 'azure'"),
    ("openai:", "names no model"),
    ("", "No model given"),
    ("openai-compatible:local", "openai-compatible:<endpoint>/<model>"),
    ("openai-compatible:/llama3", "openai-compatible:<endpoint>/<model>"),
    ("openai-compatible:my server/llama3", "letters, digits"),
])
def test_parse_model_errors_name_the_accepted_forms(bad: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_model(bad)
    assert hint in str(caught.value)
    if "endpoint" not in hint and "letters" not in hint:
        assert "mock:<name>" in str(caught.value)


def test_bad_messages_are_a_config_error() -> None:
    for bad in ([], [{"role": "tool", "content": "x"}], [{"role": "user"}], "hello"):
        with pytest.raises(ConfigError):
            complete("mock:support", bad)  # type: ignore[arg-type]


# --- available_providers / check_connection -------------------------------------------------------


def test_available_providers_never_returns_a_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("LOOPLAB_OPENAI_COMPATIBLE_LOCAL_BASE_URL", "http://bob:hunter2@127.0.0.1:8000/v1?key=zzz")
    monkeypatch.setenv("LOOPLAB_OPENAI_COMPATIBLE_LOCAL_API_KEY", "local-secret-key")
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        f'[anthropic]\napi_key = "{ANTHROPIC_KEY}"\n'
        '[openai_compatible.ollama]\nbase_url = "http://127.0.0.1:11434/v1"\n'
    )
    statuses = {s.provider: s for s in available_providers()}
    assert set(statuses) == {"openai", "anthropic", "openai-compatible:local", "openai-compatible:ollama", "mock"}
    assert statuses["openai"].configured and "OPENAI_API_KEY" in statuses["openai"].source
    assert statuses["anthropic"].configured and "secrets.toml" in statuses["anthropic"].source
    assert statuses["openai-compatible:local"].base_url == "http://127.0.0.1:8000/v1"
    assert statuses["openai-compatible:ollama"].source.endswith("(no key)")
    assert statuses["mock"].configured and statuses["mock"].usable
    shown = repr(list(statuses.values()))
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, "local-secret-key", "hunter2", "zzz"):
        assert secret not in shown


def test_available_providers_when_nothing_is_configured() -> None:
    statuses = {s.provider: s for s in available_providers()}
    assert not statuses["openai"].configured and "set OPENAI_API_KEY" in statuses["openai"].source
    assert not statuses["anthropic"].configured
    assert statuses["mock"].configured


def test_check_connection(fake: FakeLLM) -> None:
    assert check_connection(OPENAI).startswith(f"Connected to {OPENAI} in ")
    assert "answered “Echo:" in check_connection(ANTHROPIC)
    assert check_connection("mock:echo").startswith("Connected to mock:echo")
    fake.enqueue(Reply(status=429))
    with pytest.raises(ProviderError):
        check_connection(OPENAI)


def test_providers_import_without_the_sdks() -> None:
    code = (
        "import sys; sys.modules['openai'] = None; sys.modules['anthropic'] = None\n"
        "from looplab.errors import ConfigError\n"
        "from looplab.providers import complete, available_providers\n"
        "assert complete('mock:echo', [{'role': 'user', 'content': 'hi'}]).text == 'hi'\n"
        "for model, extra in (('openai:gpt-4o', 'openai'), ('anthropic:claude-3-5-haiku-latest', 'anthropic')):\n"
        "    try:\n"
        "        complete(model, [{'role': 'user', 'content': 'hi'}])\n"
        "    except ConfigError as e:\n"
        "        assert f\"pip install 'looplab[{extra}]'\" in str(e), e\n"
        "    else:\n"
        "        raise AssertionError('no ConfigError')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- the mock -------------------------------------------------------------------------------------


def _item(i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are Acme's support assistant."},
        {"role": "user", "content": f"Question {i}: how do I export invoice number {i}?\n\n"
                                    f"Reference answer: Open Billing, pick invoice {i} and click Export as PDF; "
                                    f"the file downloads at once and a copy goes to your email."},
    ]


def _reference(i: int) -> str:
    return (f"Open Billing, pick invoice {i} and click Export as PDF; the file downloads at once and a copy goes to "
            "your email.")


def test_mock_is_deterministic() -> None:
    first = [complete("mock:support", _item(i), params={"temperature": 0.7}) for i in range(20)]
    again = [complete("mock:support", _item(i), params={"temperature": 0.7}) for i in range(20)]
    assert [a.text for a in first] == [a.text for a in again]
    other = [complete("mock:rival", _item(i), params={"temperature": 0.7}) for i in range(20)]
    assert [a.text for a in first] != [a.text for a in other]
    assert all(a.cost_usd == 0.0 and a.input_tokens and a.output_tokens for a in first)
    assert first[0].model == "mock:support"


def test_mock_quality_decides_good_and_degraded_answers() -> None:
    def good_items(quality: float) -> set[int]:
        return {i for i in range(200)
                if complete("mock:support", _item(i), params={"quality": quality}).text == _reference(i)}

    assert good_items(0.0) == set() and good_items(1.0) == set(range(200))
    low, default, high = good_items(0.3), good_items(0.8), good_items(0.95)
    assert 40 <= len(low) <= 80 and 140 <= len(default) <= 180 and 175 <= len(high) <= 200
    assert low <= default <= high  # raising quality only turns degraded answers good
    for i in set(range(200)) - default:
        degraded = complete("mock:support", _item(i), params={"quality": 0.8}).text
        assert mock_module.similarity(degraded, _reference(i)) < 0.7, degraded


def test_mock_reads_expected_blocks_and_answers_without_a_reference() -> None:
    prompt = [{"role": "user", "content": "Answer the customer.\n<expected>Yes, refunds take 5 days.</expected>"}]
    assert complete("mock:support", prompt, params={"quality": 1}).text == "Yes, refunds take 5 days."
    plain = [{"role": "user", "content": "How do I change my billing address?"}]
    good = complete("mock:support", plain, params={"quality": 1}).text
    bad = complete("mock:support", plain, params={"quality": 0}).text
    assert "billing" in good and good != bad and len(bad.split()) < len(good.split())


def test_mock_echo_and_cutting_params() -> None:
    assert complete("mock:echo", HELLO).text == "Where is my parcel?"
    cut = complete("mock:echo", HELLO, params={"max_tokens": 2})
    assert cut.text == "Where is" and cut.finish_reason == "length"
    assert complete("mock:echo", HELLO, params={"stop": " my"}).text == "Where is"
    assert json.loads(complete("mock:echo", HELLO, json_output=True).text) == {"answer": "Where is my parcel?"}


def test_mock_latency_param_sleeps() -> None:
    assert complete("mock:echo", HELLO, params={"latency_ms": 30}).latency_ms >= 30
    assert complete("mock:echo", HELLO).latency_ms < 30
    with pytest.raises(ConfigError, match="quality"):
        complete("mock:support", HELLO, params={"quality": 2})


def _judge_prompt(output: str, expected: str | None, extra: str = "") -> list[dict[str, str]]:
    parts = ["Compare the <output> with the expected answer and reply in JSON.", f"<output>{output}</output>"]
    if expected is not None:
        parts.append(f"<expected>\n{expected}\n</expected>")
    return [{"role": "system", "content": "You are a strict grader."},
            {"role": "user", "content": "\n".join(parts) + extra}]


def test_mock_judge_scores_by_similarity() -> None:
    same = json.loads(complete("mock:judge", _judge_prompt("Refunds take 5 days.", "Refunds take 5 days."),
                               json_output=True).text)
    assert same["score"] == 1.0 and same["reasoning"]
    off = json.loads(complete("mock:judge", _judge_prompt("Please contact support.", "Refunds take 5 days."),
                              json_output=True).text)
    assert off["score"] < 0.5
    five = json.loads(complete("mock:judge", _judge_prompt("Refunds take 5 days.", "Refunds take 5 days.",
                                                           "\n<scale>1-5</scale>"), json_output=True).text)
    assert five["score"] == 5 and isinstance(five["score"], int)


def test_mock_judge_labels_and_text_mode() -> None:
    labels = "\n<labels>fail, pass</labels>"
    passed = complete("mock:judge", _judge_prompt("Refunds take 5 days", "Refunds take 5 days.", labels),
                      json_output=True)
    assert json.loads(passed.text)["label"] == "pass"
    failed = complete("mock:judge", _judge_prompt("No idea, sorry!", "Refunds take 5 days.", labels))
    assert failed.text.startswith("Here is my assessment.") and "```json" in failed.text
    body = failed.text.split("```json", 1)[1].split("```", 1)[0]
    assert json.loads(body)["label"] == "fail"


def test_mock_judge_without_expected_or_output() -> None:
    no_ref = json.loads(complete("mock:judge", _judge_prompt("A fine answer.", None), json_output=True).text)
    assert 0.6 <= no_ref["score"] < 1.0
    empty = json.loads(complete("mock:judge", _judge_prompt("", None), json_output=True).text)
    assert empty["score"] == 0.0
    none = json.loads(complete("mock:judge", [{"role": "user", "content": "Rate this."}], json_output=True).text)
    assert none["score"] == 0.0 and "<output>" in none["reasoning"]


# --- tracing --------------------------------------------------------------------------------------


def test_calls_are_traced_as_llm_spans_under_the_callers_trace(traced: str, fake: FakeLLM) -> None:
    with looplab.trace("experiment-item") as t:
        complete(OPENAI, HELLO, params={"temperature": 0})
        complete(ANTHROPIC, HELLO)
        answer = complete("mock:support", _item(1), params={"quality": 1})
    assert looplab.flush()
    spans = stored_spans(traced, t.trace_id)
    root = next(s for s in spans if s["parent_id"] is None)
    llm = [s for s in spans if s["kind"] == "llm"]
    assert root["name"] == "experiment-item" and len(llm) == 3
    assert all(s["parent_id"] == root["id"] for s in llm)
    by_provider = {s["provider"]: s for s in llm}
    assert by_provider["openai"]["params_json"]["temperature"] == 0
    assert by_provider["anthropic"]["output_json"]["content"] is not None
    mock_span = by_provider["mock"]
    assert mock_span["model"] == "support" and mock_span["output_json"]["content"] == answer.text
    assert mock_span["input_json"] == _item(1) and mock_span["cost_usd"] == 0.0
    assert mock_span["input_tokens"] == answer.input_tokens and mock_span["params_json"] == {"quality": 1}
    assert all(OPENAI_KEY not in json.dumps(s, default=str) for s in spans)


def test_a_failed_call_is_a_traced_error(traced: str, fake: FakeLLM) -> None:
    fake.enqueue(Reply(status=429))
    with looplab.trace("judge"), pytest.raises(ProviderError):
        complete(OPENAI, HELLO)
    assert looplab.flush()
    llm = [s for s in stored_spans(traced) if s["kind"] == "llm"]
    assert len(llm) == 1 and llm[0]["status"] == "error" and "429" in llm[0]["error"]


# --- the Settings page ----------------------------------------------------------------------------


def test_settings_page_lists_providers_and_tests_connections(db_url: str, fake: FakeLLM,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    monkeypatch.setenv("LOOPLAB_OPENAI_COMPATIBLE_LOCAL_BASE_URL", fake.openai_base_url)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "main.py"), default_timeout=30).run()
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value if len(at.dataframe) else None
    assert table is not None
    assert any("OpenAI-compatible" in str(v) for v in table["provider"])
    assert at.text_input(key="settings_provider_model_mock").value == "mock:support"
    assert at.text_input(key="settings_provider_model_openai-compatible:local").value == ""

    at.button(key="settings_provider_test_mock").click().run()
    assert any(s.value.startswith("Connected to mock:support in ") for s in at.success)

    fake.enqueue(Reply(status=429))
    at.button(key="settings_provider_test_openai").click().run()
    assert not at.exception
    assert any("HTTP 429" in e.value for e in at.error)

    at.text_input(key="settings_provider_model_openai-compatible:local").set_value(
        "openai-compatible:local/llama3.1:8b").run()
    at.button(key="settings_provider_test_openai-compatible:local").click().run()
    assert any("Connected to openai-compatible:local/llama3.1:8b" in s.value for s in at.success)
    shown = "\n".join(str(e.value) for kind in ("markdown", "caption", "success", "error", "dataframe")
                      for e in at.get(kind))
    assert OPENAI_KEY not in shown and ANTHROPIC_KEY not in shown
