"""Online evaluation: deterministic sampling, never twice per evaluator version, scores that
Monitoring charts, and ``looplab evaluate ...`` in the terminal."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import looplab
from looplab.cli import app
from looplab.errors import ConfigError, NotFound
from looplab.evaluation import save_evaluator
from looplab.evaluation.online import in_sample, run_online, sample_traces
from looplab.monitoring.metrics import score_timeseries
from looplab.store.engine import read_session
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces
from looplab.store.models import Score

NOW = datetime.now(timezone.utc).replace(microsecond=0)
JUDGE = {"type": "judge", "template": "faithfulness", "model": "mock:judge"}


def add_traces(url: str, count: int, *, start: datetime | None = None, prefix: str = "a") -> list[str]:
    start = start or NOW - timedelta(minutes=30)
    ids = [f"{prefix}{i:031x}" for i in range(count)]
    insert_traces(url, [{
        "trace_id": trace_id, "name": "support-chat", "start_time": (start + timedelta(seconds=i)).isoformat(),
        "end_time": (start + timedelta(seconds=i + 1)).isoformat(),
        "input": {"role": "user", "content": f"Can I get a refund for order {i}?"},
        "output": {"role": "assistant", "content": "Yes, a refund within 30 days." if i % 2 else "Please wait."},
        "spans": [{"span_id": f"r{i}", "kind": "retrieval", "name": "search", "start_time": start.isoformat(),
                   "output": [{"content": "Refunds are possible within 30 days."}, "Shipping takes 2 days."]}],
    } for i, trace_id in enumerate(ids)])
    return ids


def scores(url: str) -> list[SimpleNamespace]:
    """Every stored score, by trace id, as plain objects."""
    with read_session(url) as session:
        rows = session.scalars(select(Score).order_by(Score.trace_id)).all()
        return [SimpleNamespace(**{c.key: getattr(r, c.key) for c in Score.__table__.columns}) for r in rows]


def test_sampling_is_deterministic_nested_and_near_the_rate() -> None:
    ids = [f"{i:032x}" for i in range(4000)]
    tenth = {i for i in ids if in_sample(i, 0.1)}
    fifth = {i for i in ids if in_sample(i, 0.2)}
    assert tenth == {i for i in ids if in_sample(i, 0.1)}
    assert tenth <= fifth
    assert 320 < len(tenth) < 480 and 700 < len(fifth) < 900
    assert not any(in_sample(i, 0.0) for i in ids[:50]) and all(in_sample(i, 1.0) for i in ids[:50])


def test_online_evaluation_writes_scores_once_per_evaluator_version(db_url: str) -> None:
    ids = add_traces(db_url, 40)
    add_traces(db_url, 5, start=NOW - timedelta(hours=3), prefix="b")  # outside the window
    info = save_evaluator(db_url, "mentions-refund", {"type": "contains", "values": ["refund"], "ignore_case": True})
    seen: list[tuple[int, int]] = []
    run = run_online(db_url, ["mentions-refund"], since=NOW - timedelta(hours=1), sample_rate=0.5,
                     progress=lambda done, total: seen.append((done, total)))
    expected = [i for i in ids if in_sample(i, 0.5)]
    assert run.traces_in_window == 40 and run.sampled == len(expected) > 0
    assert run.scores_written == len(expected) and seen[-1] == (len(expected), len(expected))
    stored = scores(db_url)
    assert sorted(s.trace_id for s in stored) == sorted(expected)
    first = stored[0]
    assert (first.source, first.name, first.evaluator_id, first.author) == ("code", "mentions-refund", info.id,
                                                                           "mentions-refund")
    assert first.evaluator_version and first.value in (0.0, 1.0)
    passed = {s.trace_id for s in stored if s.value == 1.0}
    assert passed == {i for i in expected if int(i[1:], 16) % 2}

    again = run_online(db_url, ["mentions-refund"], since=NOW - timedelta(hours=1), sample_rate=0.5)
    assert again.scores_written == 0 and again.evaluators[0].skipped == len(expected)
    wider = run_online(db_url, ["mentions-refund"], since=NOW - timedelta(hours=1), sample_rate=1.0)
    assert wider.scores_written == 40 - len(expected)  # only the traces not done yet

    save_evaluator(db_url, "mentions-refund", {"type": "contains", "values": ["refund", "return"]})  # version 2
    changed = run_online(db_url, ["mentions-refund"], since=NOW - timedelta(hours=1), sample_rate=0.5)
    assert changed.scores_written == len(expected) and changed.evaluators[0].version == 2
    assert len({s.evaluator_version for s in scores(db_url)}) == 2


def test_judges_online_are_traced_but_their_traces_are_never_sampled(traced: str) -> None:
    add_traces(traced, 6)
    save_evaluator(traced, "faithful", JUDGE)
    run = run_online(traced, ["faithful"], since=NOW - timedelta(hours=1), sample_rate=1.0, concurrency=2)
    assert run.evaluators[0].evaluated == 6 and run.evaluators[0].errors == 0
    assert looplab.flush()
    total, sampled = sample_traces(traced, NOW - timedelta(hours=1), NOW + timedelta(hours=1), 1.0)
    assert total == 6 and len(sampled) == 6  # the 6 judge traces are left out
    judged = scores(traced)
    assert {s.source for s in judged} == {"llm_judge"} and all(0 <= s.value <= 1 for s in judged)
    assert all(s.metadata_json["judge_trace_id"] for s in judged)


def test_online_scores_feed_the_monitoring_score_charts(db_url: str) -> None:
    add_traces(db_url, 10)
    save_evaluator(db_url, "faithful", JUDGE)
    save_evaluator(db_url, "short", {"type": "regex", "pattern": r"^.{0,20}$"})
    run_online(db_url, ["faithful", "short"], since=NOW - timedelta(hours=1), sample_rate=1.0)
    series = score_timeseries(db_url, TraceFilter(start=NOW - timedelta(hours=2), end=NOW + timedelta(minutes=1)))
    counted = {(row["name"], row["source"]): 0 for row in series}
    for row in series:
        counted[(row["name"], row["source"])] += row["count"]
    assert counted == {("faithful", "llm_judge"): 10, ("short", "code"): 10}


def test_errors_are_recorded_once_and_not_retried(db_url: str) -> None:
    add_traces(db_url, 4)
    save_evaluator(db_url, "correct", {"type": "judge", "template": "correctness", "model": "mock:judge"})
    run = run_online(db_url, ["correct"], since=NOW - timedelta(hours=1), sample_rate=1.0)
    assert run.evaluators[0].errors == 4 and "needs an expected output" in run.evaluators[0].first_error
    rows = scores(db_url)
    assert len(rows) == 4 and all(r.value is None and r.metadata_json["error"] for r in rows)
    assert run_online(db_url, ["correct"], since=NOW - timedelta(hours=1), sample_rate=1.0).scores_written == 0


def test_bad_requests_are_refused(db_url: str) -> None:
    with pytest.raises(NotFound):
        run_online(db_url, ["missing"], since=NOW - timedelta(hours=1))
    save_evaluator(db_url, "x", "json_valid")
    for rate in (0, 1.5):
        with pytest.raises(ConfigError, match="sample rate"):
            run_online(db_url, ["x"], since=NOW - timedelta(hours=1), sample_rate=rate)
    with pytest.raises(ConfigError, match="at least one evaluator"):
        run_online(db_url, [], since=NOW - timedelta(hours=1))


def test_the_cli(sqlite_url: str) -> None:
    add_traces(sqlite_url, 8)
    runner = CliRunner()
    assert "No evaluators yet" in runner.invoke(app, ["evaluate", "list", "--db", sqlite_url]).output
    save_evaluator(sqlite_url, "is-json", "json_valid")
    listed = runner.invoke(app, ["evaluate", "list", "--db", sqlite_url])
    assert "is-json" in listed.output and "code" in listed.output
    result = runner.invoke(app, ["evaluate", "online", "--db", sqlite_url, "--since", "1h", "--sample", "1",
                                 "--evaluator", "is-json"])
    assert result.exit_code == 0, result.output
    assert "8 traces" in result.output and "8 scores written" in result.output
    assert "is-json v1: 8 evaluated, 0 already done" in result.output
    missing = runner.invoke(app, ["evaluate", "online", "--db", sqlite_url, "--evaluator", "nope"])
    assert missing.exit_code == 2 and "no evaluator 'nope'" in missing.output
    agreement = runner.invoke(app, ["evaluate", "agreement", "--db", sqlite_url])
    assert agreement.exit_code == 0 and "No trace or item" in agreement.output
