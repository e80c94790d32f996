"""The experiment runner against the fake LLM server (real ``openai`` client) and the mock provider:
concurrency, retries, timeouts, cancel and resume, traces, scores, and the worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update

import looplab
from looplab.datasets import NewItem, add_items, create_dataset, delete_item, edit_item, items_at
from looplab.errors import ConfigError
from looplab.experiments import worker
from looplab.experiments.records import (
    get_experiment,
    list_experiments,
    promote_experiment,
)
from looplab.experiments.runner import (
    create_experiment,
    experiment_items,
    pid_alive,
    request_cancel,
    run_experiment,
)
from looplab.experiments.variants import VariantSpec, get_variant
from looplab.store.engine import read_session, write_session
from looplab.store.models import Experiment, ExperimentItem, Score
from looplab.store.types import utcnow
from tests.fakes.llm_server import FakeLLM, Reply
from tests.stored import stored_spans, stored_traces

FAST = {"retry_base_delay": 0.01, "poll_interval": 0.05}


@pytest.fixture
def openai_env(fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    """``openai:`` model strings go to the fake server."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-runner-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.openai_base_url)
    return fake_llm


def dataset(url: str, count: int, name: str = "golden") -> str:
    create_dataset(url, name)
    add_items(url, name, [NewItem(input={"question": f"question {i}"}, expected_output=f"answer {i}")
                          for i in range(count)])
    return name


def openai_variant(**changes: Any) -> VariantSpec:
    fields: dict[str, Any] = dict(name="support", kind="prompt", model="openai:gpt-4o-mini",
                                  system="Answer briefly.", prompt="{{ input.question }}", params={"temperature": 0})
    fields.update(changes)
    return VariantSpec(**fields)


def mock_variant(quality: float = 0.8, name: str = "support-mock") -> VariantSpec:
    return VariantSpec(name=name, kind="prompt", model="mock:support", params={"quality": quality},
                       prompt="{{ input.question }}\nReference answer: {{ expected }}")


def user_texts(fake: FakeLLM) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in fake.requests if r.path.endswith("/chat/completions")]


def test_concurrency_is_bounded(db_url: str, openai_env: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    in_flight = 0
    most = 0
    lock = threading.Lock()
    handle = openai_env._handle

    def counting(handler: Any) -> None:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            handle(handler)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(openai_env, "_handle", counting)
    openai_env.latency = 0.02
    eid = create_experiment(db_url, "bounded", dataset(db_url, 24), openai_variant(), concurrency=3)
    seen: list[tuple[int, int]] = []
    summary = run_experiment(db_url, eid, progress=lambda done, total: seen.append((done, total)), **FAST)
    assert (summary.status, summary.done, summary.ok, summary.errors) == ("completed", 24, 24, 0)
    assert len(openai_env.requests) == 24
    assert 2 <= most <= 3
    assert seen[0] == (0, 24) and seen[-1] == (24, 24)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    item = experiment_items(db_url, eid)[0]
    assert item["output"].startswith("Echo: question") and item["input_tokens"] and item["status"] == "ok"


def test_retryable_errors_are_retried_and_others_are_the_items_error(db_url: str, openai_env: FakeLLM) -> None:
    openai_env.enqueue(Reply(status=429), Reply(), Reply(status=500), Reply(status=503), Reply(), Reply(status=400))
    eid = create_experiment(db_url, "retries", dataset(db_url, 3), openai_variant(), concurrency=1)
    summary = run_experiment(db_url, eid, **FAST)
    assert (summary.status, summary.ok, summary.errors) == ("completed", 2, 1)
    assert len(openai_env.requests) == 6  # 429 once, 5xx twice, the 400 never retried
    items = experiment_items(db_url, eid)
    assert [i["status"] for i in items] == ["ok", "ok", "error"]
    assert "HTTP 400" in items[2]["error"]


def test_retries_give_up_after_max_retries(db_url: str, openai_env: FakeLLM) -> None:
    openai_env.enqueue(*[Reply(status=500)] * 3)
    eid = create_experiment(db_url, "give-up", dataset(db_url, 1), openai_variant(), concurrency=1)
    summary = run_experiment(db_url, eid, max_retries=2, **FAST)
    assert (summary.ok, summary.errors, len(openai_env.requests)) == (0, 1, 3)
    assert "gave up after 3 attempts" in experiment_items(db_url, eid)[0]["error"]


def test_a_timeout_is_retried_then_recorded(db_url: str, openai_env: FakeLLM) -> None:
    openai_env.enqueue(Reply(delay=2.0), Reply(), Reply(delay=2.0), Reply(delay=2.0))
    eid = create_experiment(db_url, "timeouts", dataset(db_url, 2), openai_variant(), concurrency=1)
    summary = run_experiment(db_url, eid, timeout=0.3, max_retries=1, **FAST)
    items = experiment_items(db_url, eid)
    assert items[0]["status"] == "ok"  # timed out once, answered on the retry
    assert summary.errors == 1 and "timed out" in items[1]["error"]
    assert len(openai_env.requests) == 4


def test_cancel_then_resume_never_calls_a_finished_item_again(db_url: str, openai_env: FakeLLM) -> None:
    openai_env.latency = 0.02
    eid = create_experiment(db_url, "cancel-resume", dataset(db_url, 30), openai_variant(), concurrency=2)

    def cancel_early(done: int, total: int) -> None:
        if done >= 4:
            request_cancel(db_url, eid)

    first = run_experiment(db_url, eid, progress=cancel_early, **FAST)
    assert first.status == "cancelled" and 4 <= first.done < 30
    assert get_experiment(db_url, eid).status == "cancelled"
    assert len(openai_env.requests) == first.done  # in-flight items finished and were written; none lost

    second = run_experiment(db_url, eid, **FAST)
    assert (second.status, second.done, second.skipped, second.ran) == ("completed", 30, first.done, 30 - first.done)
    texts = user_texts(openai_env)
    assert len(texts) == 30 and len(set(texts)) == 30
    info = get_experiment(db_url, eid)
    assert (info.status, info.cancel_requested, info.finished_at is not None) == ("completed", False, True)


def test_a_run_keeps_to_the_dataset_version_it_pinned(db_url: str, openai_env: FakeLLM) -> None:
    openai_env.latency = 0.02
    name = dataset(db_url, 30)
    eid = create_experiment(db_url, "pinned", name, openai_variant(), concurrency=2)
    pinned = {i.item_id: i for i in items_at(db_url, name, get_experiment(db_url, eid).dataset_version,
                                             limit=100).items}

    def cancel_early(done: int, total: int) -> None:
        if done >= 4:
            request_cancel(db_url, eid)

    first = run_experiment(db_url, eid, progress=cancel_early, **FAST)
    assert first.status == "cancelled" and first.done < 30
    # The dataset moves on while the run is paused: every item edited, three deleted, two added.
    for number, item_id in enumerate(pinned):
        if number < 3:
            delete_item(db_url, name, item_id)
        else:
            edit_item(db_url, name, item_id, input={"question": f"edited {number}"}, expected_output="edited")
    add_items(db_url, name, [NewItem(input={"question": f"new {i}"}, expected_output="new") for i in range(2)])

    resumed = run_experiment(db_url, eid, **FAST)
    assert (resumed.status, resumed.done, resumed.ran) == ("completed", 30, 30 - first.done)
    assert sorted(user_texts(openai_env)) == sorted(f"question {i}" for i in range(30))  # the pinned inputs only
    with read_session(db_url) as session:
        ran = dict(session.execute(select(ExperimentItem.dataset_item_id, ExperimentItem.dataset_item_row_id)
                                   .where(ExperimentItem.experiment_id == eid)).all())
    assert ran == {item_id: item.version_id for item_id, item in pinned.items()}  # the rows of that version


def test_resume_reruns_errored_items_only(db_url: str, openai_env: FakeLLM) -> None:
    openai_env.enqueue(Reply(status=400))
    eid = create_experiment(db_url, "rerun-errors", dataset(db_url, 3), openai_variant(), concurrency=1)
    assert run_experiment(db_url, eid, **FAST).errors == 1
    again = run_experiment(db_url, eid, **FAST)
    assert (again.ok, again.errors, again.ran, len(openai_env.requests)) == (3, 0, 1, 4)
    kept = run_experiment(db_url, eid, retry_errors=False, **FAST)
    assert kept.ran == 0 and len(openai_env.requests) == 4


def test_each_item_is_a_trace_in_the_database(traced: str, openai_env: FakeLLM) -> None:
    url = traced
    eid = create_experiment(url, "traced", dataset(url, 3), openai_variant(), concurrency=2)
    run_experiment(url, eid, **FAST)
    looplab.flush()
    items = experiment_items(url, eid)
    traces = {t["id"]: t for t in stored_traces(url)}
    assert len(traces) == 3
    for item in items:
        trace = traces[item["trace_id"]]
        assert (trace["name"], trace["environment"]) == ("experiment traced", "experiment")  # not production's
        assert trace["metadata_json"]["dataset_item_id"] == item["dataset_item_id"]
        assert trace["metadata_json"]["experiment"] == "traced"
        assert trace["output_json"] == item["output"]
        assert "llm" in {s["kind"] for s in stored_spans(url, item["trace_id"])}


def test_evaluators_write_scores_on_items(db_url: str) -> None:
    eid = create_experiment(db_url, "scored", dataset(db_url, 20), mock_variant(0.5),
                            evaluators=[{"name": "exact", "type": "exact_match"}, {"name": "has-answer",
                                                                                   "type": "contains",
                                                                                   "values": ["answer"]}])
    summary = run_experiment(db_url, eid, **FAST)
    assert (summary.status, summary.ok) == ("completed", 20)
    items = {i["id"]: i for i in experiment_items(db_url, eid)}
    with read_session(db_url) as session:
        scores = [SimpleNamespace(**{c.key: getattr(s, c.key) for c in Score.__table__.columns})
                  for s in session.scalars(select(Score))]
    assert len(scores) == 40
    assert {s.experiment_item_id for s in scores} == set(items)
    assert {s.name for s in scores} == {"exact", "has-answer"}
    assert all(s.evaluator_id is not None and s.evaluator_version for s in scores)
    pinned = {e["name"]: e for e in get_experiment(db_url, eid).evaluators}
    assert {s.evaluator_version for s in scores if s.name == "exact"} == {pinned["exact"]["version"]}
    exact = [s.value for s in scores if s.name == "exact"]
    assert 0 < sum(exact) < 20  # quality 0.5: some answers are good, some degraded


def test_the_mock_provider_end_to_end(db_url: str) -> None:
    name = dataset(db_url, 40)
    good = create_experiment(db_url, "good", name, mock_variant(0.95), evaluators=[{"name": "exact",
                                                                                   "type": "exact_match"}])
    bad = create_experiment(db_url, "bad", name, mock_variant(0.3), evaluators=["exact"], baseline="good")
    for eid in (good, bad):
        assert run_experiment(db_url, eid, **FAST).status == "completed"
    mean = {}
    for eid, label in ((good, "good"), (bad, "bad")):
        ids = {i["id"] for i in experiment_items(db_url, eid)}
        with read_session(db_url) as session:
            values = list(session.scalars(select(Score.value).where(Score.experiment_item_id.in_(ids))))
        mean[label] = sum(values) / len(values)
    assert mean["good"] > mean["bad"]
    info = get_experiment(db_url, bad)
    assert info.baseline_id == good and info.variant["name"] == "support-mock" and info.variant["version"] == 2
    assert get_variant(db_url, "support-mock").version == 2
    assert [e.name for e in list_experiments(db_url, dataset=name)] == ["bad", "good"]
    assert promote_experiment(db_url, "good").promoted_at is not None


def test_item_errors_from_templates_and_code_tasks(db_url: str) -> None:
    name = dataset(db_url, 2)
    missing = create_experiment(db_url, "missing-field", name,
                                mock_variant().__class__(name="m", kind="prompt", model="mock:echo",
                                                         prompt="{{ input.order_id }}"))
    summary = run_experiment(db_url, missing, **FAST)
    assert summary.errors == 2
    error = experiment_items(db_url, missing)[0]["error"]
    assert "'order_id'" in error and "question" in error
    task = create_experiment(db_url, "code-task", name, VariantSpec(
        name="rag", kind="code", task="tests.test_runner:word_task", params={"top_k": 1}))
    summary = run_experiment(db_url, task, **FAST)
    assert (summary.ok, summary.errors) == (1, 1)
    outputs = [i["output"] or i["error"] for i in experiment_items(db_url, task)]
    assert outputs == [{"words": ["question"], "model": None}, "ValueError: no odd questions"]


def word_task(input: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A code task for the tests: the first ``top_k`` words; fails on odd questions."""
    if input["question"].endswith(("1", "3", "5", "7", "9")):
        raise ValueError("no odd questions")
    return {"words": input["question"].split()[: params["top_k"]], "model": params.get("model")}


def test_a_provider_that_is_not_set_up_fails_the_run(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Any) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml with a key
    eid = create_experiment(db_url, "no-key", dataset(db_url, 3), openai_variant(), concurrency=1)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        run_experiment(db_url, eid, **FAST)
    info = get_experiment(db_url, eid)
    assert info.status == "failed" and "OPENAI_API_KEY" in (info.error or "")
    assert experiment_items(db_url, eid) == []


def test_create_refuses_what_cannot_run(db_url: str) -> None:
    name = dataset(db_url, 1)
    create_dataset(db_url, "empty")
    with pytest.raises(ConfigError, match="holds no items"):
        create_experiment(db_url, "x", "empty", mock_variant())
    with pytest.raises(ConfigError, match="Cannot import"):
        create_experiment(db_url, "x", name, VariantSpec(name="t", kind="code", task="no_such_mod:fn"))
    create_experiment(db_url, "x", name, mock_variant())
    with pytest.raises(ConfigError, match="already exists"):
        create_experiment(db_url, "x", name, mock_variant())
    with pytest.raises(ConfigError, match="concurrency"):
        create_experiment(db_url, "y", name, mock_variant(), concurrency=0)


# --- The worker process ---------------------------------------------------------------------------


def wait_for(predicate: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("gave up waiting")
        time.sleep(0.1)


def test_a_launched_worker_finishes_and_status_reports_it(db_url: str) -> None:
    eid = create_experiment(db_url, "in-the-background", dataset(db_url, 12), mock_variant(),
                            evaluators=[{"name": "exact", "type": "exact_match"}], concurrency=4)
    pid = worker.launch(db_url, eid)
    assert pid > 0 and get_experiment(db_url, eid).worker_pid == pid
    wait_for(lambda: worker.status(db_url, eid).state == "finished")
    status = worker.status(db_url, eid)
    assert (status.status, status.done, status.total, status.errors) == ("completed", 12, 12, 0)
    assert status.cost_usd == 0.0 and status.fraction == 1.0
    wait_for(lambda: not pid_alive(pid))  # the log's last line comes after the status is stored
    if db_url.startswith("sqlite"):
        assert status.log_path and "completed" in open(status.log_path, encoding="utf-8").read()
    with pytest.raises(ConfigError, match="nothing left"):
        worker.launch(db_url, eid)


def test_a_dead_worker_is_stalled_and_a_cancel_ends_it(db_url: str) -> None:
    eid = create_experiment(db_url, "stalled", dataset(db_url, 2), mock_variant())
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    with write_session(db_url) as session:
        session.execute(update(Experiment).where(Experiment.id == eid).values(
            status="running", worker_pid=dead_pid, heartbeat_at=utcnow() - timedelta(minutes=5)))
    assert worker.status(db_url, eid).state == "stalled"
    assert worker.cancel(db_url, eid).status == "cancelled"


def test_cancel_of_a_pending_experiment_and_a_running_one(db_url: str) -> None:
    eid = create_experiment(db_url, "pending", dataset(db_url, 2), mock_variant())
    assert worker.cancel(db_url, eid).status == "cancelled"
    with write_session(db_url) as session:
        session.execute(update(Experiment).where(Experiment.id == eid).values(
            status="running", worker_pid=os.getpid(), heartbeat_at=utcnow()))
    status = worker.cancel(db_url, eid)
    assert (status.state, status.cancel_requested) == ("running", True)
