"""``looplab experiment run/list/promote``: exit codes with a gate policy, reports, baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from looplab.cli import app
from looplab.datasets import NewItem, add_items, create_dataset
from looplab.experiments.gate import list_decisions
from looplab.experiments.records import get_experiment, list_experiments

GATE = """
name: release-gate
rules:
  - kind: min_mean
    evaluator: exact
    min: 0.7
  - kind: errors
    max_new: 0
"""


def looplab_cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def variant_file(folder: Path, name: str, quality: float, evaluators: str = "[{name: exact, type: exact_match}]") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"""
name: {name}
model: mock:support
params: {{quality: {quality}}}
system: You answer customer questions.
prompt: |
  {{{{ input.question }}}}
  Reference answer: {{{{ expected }}}}
evaluators: {evaluators}
""", encoding="utf-8")
    return path


@pytest.fixture
def golden(db_url: str) -> str:
    create_dataset(db_url, "golden")
    add_items(db_url, "golden", [NewItem(input={"question": f"Where is parcel {i}?"},
                                         expected_output=f"Parcel {i} left the depot on Monday.") for i in range(40)])
    return db_url


def run(db: str, variant: Path, *extra: str) -> Result:
    return looplab_cli("experiment", "run", "--db", db, "--dataset", "golden", "--variant", str(variant),
                       "--concurrency", "4", *extra)


def test_without_a_baseline_it_runs_prints_scores_and_exits_0(golden: str, tmp_path: Path) -> None:
    report = tmp_path / "out.json"
    result = run(golden, variant_file(tmp_path, "support", 0.9), "--name", "first", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "## Experiment `first`" in result.stdout and "No baseline" in result.stdout
    assert "| exact |" in result.stdout and "40 of 40" in result.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["outcome"] is None and data["baseline"] is None
    assert data["items"] == {"total": 40, "done": 40, "errors": 0}
    assert [s["name"] for s in data["scores"]] == ["exact"] and data["scores"][0]["count"] == 40
    assert get_experiment(golden, "first").status == "completed"


def test_ship_against_the_promoted_baseline(golden: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE, encoding="utf-8")
    assert run(golden, variant_file(tmp_path, "support", 0.9), "--name", "base").exit_code == 0
    promoted = looplab_cli("experiment", "promote", "base", "--db", golden)
    assert promoted.exit_code == 0 and "now the baseline of 'golden'" in promoted.stdout

    report = tmp_path / "report.md"
    result = run(golden, variant_file(tmp_path, "support", 0.95), "--name", "better", "--gate", str(gate),
                 "--report", str(report))
    assert result.exit_code == 0, result.output
    assert "SHIP" in result.stdout
    assert report.read_text(encoding="utf-8").strip() == result.stdout.strip()
    candidate = get_experiment(golden, "better")
    assert candidate.baseline_id == get_experiment(golden, "base").id
    [decision] = list_decisions(golden, candidate.id)
    assert decision.outcome == "ship"


def test_dont_ship_exits_1_with_a_json_report(golden: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE, encoding="utf-8")
    assert run(golden, variant_file(tmp_path, "support", 0.9), "--name", "base").exit_code == 0
    report = tmp_path / "report.json"
    result = run(golden, variant_file(tmp_path, "support", 0.3), "--name", "worse", "--baseline", "base",
                 "--gate", str(gate), "--report", str(report))
    assert result.exit_code == 1, result.output
    assert "DON" in result.stdout  # DON'T SHIP
    assert "Warning" not in result.stderr  # one variable changed: params.quality
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["verdict"]["outcome"] == "dont_ship"


def test_more_than_one_change_warns_on_stderr(golden: str, tmp_path: Path) -> None:
    assert run(golden, variant_file(tmp_path, "support", 0.9), "--name", "base").exit_code == 0
    other = variant_file(tmp_path, "support", 0.95)
    other.write_text(other.read_text(encoding="utf-8").replace("You answer", "You kindly answer"), encoding="utf-8")
    result = run(golden, other, "--name", "two-changes", "--baseline", "base")
    assert result.exit_code in (0, 1), result.output
    assert "Warning: 2 things changed (system, params.quality)" in result.stderr


@pytest.mark.parametrize("case", ["unknown dataset", "bad gate", "bad report", "bad variant", "unknown baseline"])
def test_errors_exit_2(golden: str, tmp_path: Path, case: str) -> None:
    variant = variant_file(tmp_path, "support", 0.9)
    bad_gate = tmp_path / "gate.yaml"
    bad_gate.write_text("rules: [{kind: no_such_rule}]\n", encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nmodel: mock:support\nprompt: '{{ input.question '\n", encoding="utf-8")
    args = {
        "unknown dataset": ("experiment", "run", "--db", golden, "--dataset", "nope", "--variant", str(variant)),
        "bad gate": ("experiment", "run", "--db", golden, "--dataset", "golden", "--variant", str(variant),
                     "--gate", str(bad_gate)),
        "bad report": ("experiment", "run", "--db", golden, "--dataset", "golden", "--variant", str(variant),
                       "--report", str(tmp_path / "out.txt")),
        "bad variant": ("experiment", "run", "--db", golden, "--dataset", "golden", "--variant", str(broken)),
        "unknown baseline": ("experiment", "run", "--db", golden, "--dataset", "golden", "--variant", str(variant),
                             "--baseline", "nope"),
    }[case]
    result = looplab_cli(*args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.startswith("Error: ")
    assert list_experiments(golden) == []  # nothing ran


def test_list_and_promote(golden: str, tmp_path: Path) -> None:
    empty = looplab_cli("experiment", "list", "--db", golden)
    assert empty.exit_code == 0 and "No experiments yet" in empty.stdout
    assert run(golden, variant_file(tmp_path, "support", 0.9), "--name", "base").exit_code == 0
    assert looplab_cli("experiment", "promote", "base", "--db", golden).exit_code == 0
    listed = looplab_cli("experiment", "list", "--db", golden, "--dataset", "golden")
    assert listed.exit_code == 0
    line = next(line for line in listed.stdout.splitlines() if "base" in line and "completed" in line)
    assert line.startswith("*") and "40/40" in line and "support v1 / golden" in line
    missing = looplab_cli("experiment", "promote", "nope", "--db", golden)
    assert missing.exit_code == 2 and "no experiment" in missing.stderr


def test_compare_two_finished_experiments_records_the_decision(golden: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text(GATE, encoding="utf-8")
    assert run(golden, variant_file(tmp_path, "support", 0.9), "--name", "base").exit_code == 0
    assert run(golden, variant_file(tmp_path, "support", 0.3), "--name", "worse").exit_code == 0  # no baseline yet

    nothing = looplab_cli("experiment", "compare", "worse", "--db", golden)
    assert nothing.exit_code == 2 and "--baseline" in nothing.stderr
    report = tmp_path / "compare.md"
    result = looplab_cli("experiment", "compare", "worse", "--baseline", "base", "--gate", str(gate), "--db", golden,
                         "--report", str(report))
    assert result.exit_code == 1, result.output
    assert "DON" in result.stdout and report.read_text(encoding="utf-8").strip() == result.stdout.strip()
    [decision] = list_decisions(golden, get_experiment(golden, "worse").id)
    assert decision.outcome == "dont_ship"

    # By id as well as by name; against itself is refused.
    base_id = str(get_experiment(golden, "base").id)
    same = looplab_cli("experiment", "compare", "base", "--baseline", base_id, "--db", golden)
    assert same.exit_code == 2 and "compared with itself" in same.stderr
    # A broken gate is an error (2), never a DON'T SHIP (1).
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [{kind: nonsense}]", encoding="utf-8")
    bad = looplab_cli("experiment", "compare", "worse", "--baseline", "base", "--gate", str(broken), "--db", golden)
    assert bad.exit_code == 2 and "nonsense" in bad.stderr


def test_status_and_cancel(golden: str, tmp_path: Path) -> None:
    from looplab.experiments.runner import create_experiment
    from looplab.experiments.variants import load_variant_file

    spec = load_variant_file(variant_file(tmp_path, "support", 0.9))
    create_experiment(golden, "queued", "golden", spec, spec.evaluators)
    status = looplab_cli("experiment", "status", "queued", "--db", golden)
    assert status.exit_code == 0, status.output
    assert "queued: waiting for its worker" in status.stdout and "0 of 40 (0%)" in status.stdout

    cancelled = looplab_cli("experiment", "cancel", "queued", "--db", golden)
    assert cancelled.exit_code == 0 and "is cancelled (0 of 40 items done)" in cancelled.stdout
    assert get_experiment(golden, "queued").status == "cancelled"
    again = looplab_cli("experiment", "cancel", "queued", "--db", golden)
    assert again.exit_code == 2 and "already cancelled" in again.stderr

    assert run(golden, variant_file(tmp_path, "support", 0.9), "--name", "done").exit_code == 0
    finished = looplab_cli("experiment", "status", "done", "--db", golden)
    assert "done: completed" in finished.stdout and "40 of 40 (100%), 0 errors" in finished.stdout
    missing = looplab_cli("experiment", "status", "nope", "--db", golden)
    assert missing.exit_code == 2 and "no experiment" in missing.stderr
