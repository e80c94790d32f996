"""The README's tracing quick start works as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from looplab.store.engine import dispose_engines
from tests.fakes.llm_server import FakeLLM
from tests.stored import stored_spans, stored_traces

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
