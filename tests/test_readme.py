"""The README's tracing quick start works as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from looplab.store.engine import dispose_engines
from tests.fakes.llm_server import FakeLLM
from tests.stored import stored_scores, stored_spans, stored_traces

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start() -> str:
    section = README.read_text().split("## 1. Trace", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's '## 1. Trace' section has no python example"
    return match.group(1)


def test_quick_start_records_a_trace(tmp_path: Path, fake_llm: FakeLLM) -> None:
    code = quick_start()
    assert len(code.strip().splitlines()) <= 12
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLAB_", "OPENAI_"))}
    env.update(OPENAI_BASE_URL=fake_llm.openai_base_url, OPENAI_API_KEY="sk-readme-0123456789abcdefghij")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Echo: Where is my parcel?"
    url = f"sqlite:///{tmp_path / 'looplab.db'}"
    [trace] = stored_traces(url)
    assert (trace["name"], trace["user_id"], trace["tags_json"]) == ("support-chat", "u42", ["beta"])
    kinds = sorted(s["kind"] for s in stored_spans(url))
    assert kinds == ["llm", "span"]
    dispose_engines()


def test_the_experiment_section_s_variant_and_policy_are_valid(tmp_path: Path) -> None:
    """The YAML a reader copies from "Experiment and decide" loads as a variant and as a ship policy."""
    from looplab.experiments.gate import Policy
    from looplab.experiments.variants import load_variant_file

    section = README.read_text().split("## 4. Experiment", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    variant = next(b for b in blocks if b.startswith("name: support-answer"))
    policy = next(b for b in blocks if "rules:" in b)
    (tmp_path / "variant.yaml").write_text(variant, encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    spec = load_variant_file(tmp_path / "variant.yaml")
    assert (spec.name, spec.model) == ("support-answer", "mock:support")
    rules = Policy.from_yaml_file(tmp_path / "policy.yaml").rules
    assert [r.kind for r in rules] == ["no_significant_regression", "not_below_baseline", "latency", "cost", "errors"]


def test_the_gateway_section_s_snippets_work_as_written(tmp_path: Path, fake_llm: FakeLLM) -> None:
    """The base-URL clients, the feedback curl and the OpenTelemetry exporter of "Gateway and
    OpenTelemetry", run against a gateway (with OTLP ingest) on a free port instead of 4000."""
    import json

    import httpx2

    import looplab
    from looplab.otlp.http import otlp_routes
    from tests.test_gateway import _settings, serve

    section = README.read_text().split("## Gateway and OpenTelemetry", 1)[1].split("\n## ", 1)[0]
    clients, exporter = re.findall(r"```python\n(.*?)```", section, re.S)
    feedback = json.loads(re.search(r"-d '(\{.*?\})'", section).group(1))
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLAB_", "OPENAI_", "ANTHROPIC_", "OTEL_"))}
    env.update(OPENAI_API_KEY="sk-readme-0123456789abcdefghij", ANTHROPIC_API_KEY="sk-ant-readme-0123456789abcd")
    with serve(_settings(fake_llm, url), otlp_routes(url)) as gateway:
        address = gateway.url.removeprefix("http://")

        def run(code: str) -> str:
            result = subprocess.run([sys.executable, "-c", code.replace("127.0.0.1:4000", address)], cwd=tmp_path,
                                    env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            return result.stdout

        trace_id = run(clients + "\nprint(trace_id)").strip()
        answer = httpx2.post(gateway.url + "/api/scores", json={**feedback, "trace_id": trace_id})
        assert answer.status_code == 201, answer.text
        run(exporter + "\nwith trace.get_tracer('readme').start_as_current_span('chat gpt-4o-mini') as span:\n"
                       "    span.set_attribute('gen_ai.request.model', 'gpt-4o-mini')\n"
                       "provider.shutdown()\n")
        looplab.flush()
    traces = {t["id"]: t for t in stored_traces(url)}
    chat = traces[trace_id]
    assert (chat["name"], chat["user_id"], chat["session_id"], chat["tags_json"]) == (
        "support-chat", "user-42", "session-9", ["prod", "checkout"])
    spans = stored_spans(url)
    assert {s["model"] for s in spans} >= {"gpt-4o-mini", "claude-3-5-haiku-latest"}
    assert any(s["name"] == "chat gpt-4o-mini" and s["start_time"] for s in spans)  # the exporter's span
    [score] = stored_scores(url)
    assert (score["trace_id"], score["name"], score["value"], score["source"]) == (trace_id, "thumbs", 1, "user_feedback")
    dispose_engines()
