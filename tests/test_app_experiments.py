"""The Experiments page through AppTest: the empty state, launching a run in a worker process,
comparing a candidate with its baseline, deciding (recorded) and promoting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from streamlit.testing.v1 import AppTest

from looplab.datasets import NewItem, add_items, create_dataset, get_dataset
from looplab.evaluation.registry import save_evaluator
from looplab.experiments import worker
from looplab.experiments.gate import list_decisions
from looplab.experiments.records import (
    get_experiment,
    list_experiments,
    promote_experiment,
)
from looplab.experiments.runner import create_experiment, run_experiment
from looplab.experiments.variants import VariantSpec
from tests.test_app import MAIN, texts

FAST = {"retry_base_delay": 0.01, "poll_interval": 0.05}
MOCK_PROMPT = "{{ input.question }}\nReference answer: {{ expected }}"


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    yield db_url


@pytest.fixture
def golden(app_db: str) -> str:
    """A dataset of 24 support questions and a saved exact-match evaluator."""
    create_dataset(app_db, "golden")
    add_items(app_db, "golden", [NewItem(input={"question": f"Where is parcel {i}?"},
                                         expected_output=f"Parcel {i} left the depot on Monday.") for i in range(24)])
    save_evaluator(app_db, "exact", "exact_match")
    return app_db


def mock_variant(quality: float, name: str = "support") -> VariantSpec:
    return VariantSpec(name=name, kind="prompt", model="mock:support", params={"quality": quality},
                       prompt=MOCK_PROMPT)


@pytest.fixture
def compared(golden: str) -> tuple[str, int, int]:
    """A good baseline (quality 0.9) and a worse candidate (0.3), both run and scored."""
    base = create_experiment(golden, "base", "golden", mock_variant(0.9), evaluators=["exact"])
    candidate = create_experiment(golden, "worse", "golden", mock_variant(0.3), evaluators=["exact"], baseline="base")
    for eid in (base, candidate):
        assert run_experiment(golden, eid, **FAST).status == "completed"
    return golden, base, candidate


def experiments_page(**query: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("app_pages/experiments.py").run()
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("gave up waiting")
        time.sleep(0.1)


def test_an_empty_store_says_how_to_start(app_db: str) -> None:
    at = experiments_page()
    assert not at.exception, at.exception
    page = texts(at)
    assert "No experiments yet" in page
    assert "Create one with items on the **Datasets** page first" in page


def test_launch_runs_in_a_worker_and_the_list_shows_it_completed(golden: str) -> None:
    at = experiments_page()
    assert not at.exception, at.exception
    at.text_input(key="exp_new_variant_name").set_value("support")
    at.text_area(key="exp_new_prompt").set_value(MOCK_PROMPT)
    at.text_area(key="exp_new_params").set_value("quality: [0.9")  # bad YAML: a clear message, nothing made
    at.run()
    assert any("not valid JSON or YAML" in e.value for e in at.error)
    button(at, "Launch").click().run()
    assert not list_experiments(golden)

    at.text_area(key="exp_new_params").set_value('{"quality": 0.9}')
    at.multiselect(key="exp_new_evaluators").set_value(["exact"])
    at.text_input(key="exp_new_name").set_value("first")
    at.run()
    button(at, "Launch").click().run()
    assert not at.exception, at.exception
    assert any("Launched first in a worker process" in s.value for s in at.success)
    info = get_experiment(golden, "first")
    assert info.worker_pid and info.variant["params"] == {"quality": 0.9}
    assert [e["name"] for e in info.evaluators] == ["exact"]

    wait_for(lambda: worker.status(golden, info.id).state == "finished")
    at.run()
    assert not at.exception, at.exception
    listed = at.dataframe(key="exp_list").value
    assert list(listed["Name"]) == ["first"] and list(listed["Status"]) == ["completed"]
    assert list(listed["Items"]) == ["24 of 24"]


def test_a_second_run_shows_the_one_variable_diff_against_the_promoted_baseline(compared: tuple[str, int, int]
                                                                                ) -> None:
    url, base, _ = compared
    promote_experiment(url, base)
    at = experiments_page()
    baseline = at.selectbox(key=f"exp_new_baseline_{get_dataset(url, 'golden').id}")
    assert baseline.value == base  # the promoted baseline by default
    at.radio(key="exp_new_source").set_value("A new prompt variant").run()
    at.text_input(key="exp_new_variant_name").set_value("other")
    at.text_input(key="exp_new_model").set_value("mock:other")
    at.text_area(key="exp_new_params").set_value("quality: 0.5")
    at.run()
    assert not at.exception, at.exception
    assert any("change one variable at a time" in w.value for w in at.warning)


def test_compare_decide_and_promote(compared: tuple[str, int, int]) -> None:
    url, base, candidate = compared
    at = experiments_page(experiment="worse")
    assert not at.exception, at.exception
    assert at.title[0].value == "worse"
    table = next(d.value for d in at.dataframe if "Evaluator" in d.value.columns)
    row = table.iloc[0]
    assert row["Evaluator"] == "exact" and row["n"] == 24
    assert row["Candidate"] < row["Baseline"] and row["Delta"] < 0
    assert at.get("vega_lite_chart")
    items = at.dataframe(key="exp_cmp_items").value
    assert len(items) == 24 and items.iloc[0]["Change"].startswith("exact -1")  # worst first

    diffs = [m.value for m in at.markdown if "-background[" in m.value]
    assert diffs and all("<" not in d for d in diffs)  # the worst item's word diffs, escaped
    at.toggle(key="exp_cmp_changed").set_value(True).run()
    assert 0 < len(at.dataframe(key="exp_cmp_items").value) < 24

    button(at, "Decide").click().run()
    assert not at.exception, at.exception
    assert any("DON'T SHIP" in e.value for e in at.error)
    (decision,) = list_decisions(url, candidate)
    assert decision.outcome == "dont_ship" and decision.baseline_id == base

    button(at, "Promote to baseline").click().run()
    assert not at.exception, at.exception
    assert get_experiment(url, candidate).promoted_at is not None


def test_a_pasted_policy_and_a_deep_link_by_id(compared: tuple[str, int, int]) -> None:
    url, _, candidate = compared
    at = experiments_page(experiment=str(candidate))
    assert at.title[0].value == "worse"
    at.radio(key="exp_dec_mode").set_value("Paste YAML").run()
    at.text_area(key="exp_dec_yaml").set_value("rules: [{kind: nonsense}]").run()
    button(at, "Decide").click().run()
    assert any("unknown kind 'nonsense'" in e.value for e in at.error)
    assert not list_decisions(url, candidate)


def test_an_unknown_experiment_is_a_warning(app_db: str) -> None:
    at = experiments_page(experiment="nope")
    assert not at.exception, at.exception
    assert "There is no experiment nope" in " ".join(w.value for w in at.warning)


def test_changed_items_go_to_an_annotation_queue_for_human_review(golden: str) -> None:
    from looplab.annotation import queues  # noqa: PLC0415
    from looplab.annotation.score_configs import create_score_config  # noqa: PLC0415
    from looplab.config import Settings  # noqa: PLC0415
    from looplab.tracing import runtime  # noqa: PLC0415

    runtime.install(Settings(database_url=golden, flush_interval=0.02))  # item calls are traced
    base = create_experiment(golden, "base", "golden", mock_variant(0.9), evaluators=["exact"])
    candidate = create_experiment(golden, "worse", "golden", mock_variant(0.3), evaluators=["exact"], baseline="base")
    for eid in (base, candidate):
        assert run_experiment(golden, eid, **FAST).status == "completed"
    create_score_config(golden, "correctness", "boolean")
    queue = queues.create_queue(golden, "Experiment review", score_configs=["correctness"])
    at = experiments_page(experiment="worse")
    at.toggle(key="exp_cmp_changed").set_value(True).run()
    changed = len(at.dataframe(key="exp_cmp_items").value)
    next(b for b in at.button if b.label.startswith("Add ") and b.label.endswith("item traces")).click().run()
    assert not at.exception, at.exception
    items, total = queues.list_items(golden, queue.id, limit=100)
    assert total == changed > 0 and {i.reason for i in items} == {"experiment worse"}
