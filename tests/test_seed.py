"""``looplab seed``: the sample history loads into a real database, ending now, exactly once."""

from __future__ import annotations

import gzip
import re
import shutil
import statistics
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from typer.testing import CliRunner, Result

from looplab.cli import app
from looplab.datasets import items_at, list_datasets
from looplab.demo import DATASET_FILE, SAMPLE_DIR, SCORE_CONFIGS_FILE, TRACES_FILE, seed
from looplab.errors import ConfigError
from looplab.store.engine import read_session, write_session
from looplab.store.models import Dataset, DatasetItem, Score, ScoreConfig, Span, Trace, TraceTag
from looplab.store.types import utcnow

# A "now" far from the file's own reference time, so that a missing shift cannot pass unnoticed.
NOW = datetime(2031, 6, 2, 8, 30, tzinfo=timezone.utc)


def looplab_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def rows(url: str, table: Any) -> list[Any]:
    with read_session(url) as session:
        return list(session.execute(select(table)).all())


def small_sample(folder: Path, lines: int = 40) -> Path:
    """The first ``lines`` traces of the real sample, with its score configs, in ``folder``."""
    folder.mkdir()
    with gzip.open(SAMPLE_DIR / TRACES_FILE, "rt", encoding="utf-8") as source:
        head = [next(source) for _ in range(lines)]
    with gzip.open(folder / TRACES_FILE, "wt", encoding="utf-8") as out:
        out.writelines(head)
    shutil.copy(SAMPLE_DIR / SCORE_CONFIGS_FILE, folder / SCORE_CONFIGS_FILE)
    (folder / DATASET_FILE).parent.mkdir()
    shutil.copy(SAMPLE_DIR / DATASET_FILE, folder / DATASET_FILE)
    return folder


# --- the whole sample -------------------------------------------------------------------------------


def test_seed_loads_two_weeks_of_support_traffic_ending_now(db_url: str) -> None:
    calls: list[tuple[int, int]] = []

    result = seed(db_url, now=NOW, progress=lambda done, total: calls.append((done, total)), baseline=False)

    traces = rows(db_url, Trace.__table__)
    spans = rows(db_url, Span.__table__)
    scores = rows(db_url, Score.__table__)
    assert 1900 <= len(traces) <= 2100
    assert result.traces_added == result.traces_in_sample == len(traces)
    assert (result.spans_added, result.scores_added) == (len(spans), len(scores))
    assert calls[0] == (0, len(traces)) and calls[-1] == (len(traces), len(traces))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    # The history ends now and reaches back 14 days.
    starts = [t.start_time for t in traces]
    assert NOW - timedelta(minutes=15) <= max(starts) <= NOW
    assert timedelta(days=13.5) <= NOW - min(starts) <= timedelta(days=14, hours=1)
    assert max(t.end_time for t in traces) <= NOW and max(s.created_at for s in scores) <= NOW
    assert result.history_end == NOW and result.history_start == min(starts)

    # Who, where, what.
    assert {"support-chat", "faq-answer", "order-status", "refund-request"} == {t.name for t in traces}
    assert {"v1.4.0", "v1.5.0", "v1.5.1"} <= {t.release for t in traces}
    environments = Counter(t.environment for t in traces)
    assert set(environments) == {"production", "staging"} and environments["staging"] < 0.1 * len(traces)
    assert 250 <= len({t.user_id for t in traces}) <= 320
    sessions = Counter(t.session_id for t in traces)
    assert max(sessions.values()) <= 5 and len(sessions) < len(traces)
    assert {"web", "mobile", "vip", "beta"} == {tag.tag for tag in rows(db_url, TraceTag.__table__)}

    # Spans: every trace has a root, a retrieval and an LLM call; tools where orders are involved.
    by_trace = Counter((s.trace_id, s.kind) for s in spans)
    assert all(by_trace[(t.id, "span")] == 1 and by_trace[(t.id, "retrieval")] == 1 for t in traces)
    assert all(1 <= by_trace[(t.id, "llm")] <= 3 for t in traces)
    assert {"lookup_order", "create_refund"} == {s.name for s in spans if s.kind == "tool"}
    llm = [s for s in spans if s.kind == "llm"]
    assert {"gpt-4o-mini", "gpt-4o", "claude-sonnet-4-6", "claude-haiku-4-5"} == {s.model for s in llm}
    assert {"openai", "anthropic"} == {s.provider for s in llm}
    answered = [s for s in llm if s.status == "ok"]
    assert all(s.input_tokens > 0 and s.output_tokens > 0 and s.cost_usd > 0 for s in answered)
    assert any(s.ttft_ms for s in answered) and any(s.cached_tokens for s in answered)
    assert all(s.ttft_ms is None or 0 < s.ttft_ms < s.duration_ms for s in answered)
    retrieval = next(s for s in spans if s.kind == "retrieval")
    assert {"id", "title", "text", "score"} == set(retrieval.output_json[0]) and "query" in retrieval.input_json
    assert retrieval.input_json["query"]
    system, user = next(s for s in llm if s.provider == "anthropic").input_json[:2]
    assert system["role"] == "system" and user["role"] in ("user", "assistant")

    # About 3% of traces fail, with the error that failed them; v1.5.0 is the bad release.
    failed = [t for t in traces if t.status == "error"]
    assert 0.015 <= len(failed) / len(traces) <= 0.06
    assert all(t.error and t.error_count >= 1 for t in failed)
    assert {"RateLimitError", "TimeoutError", "APITimeoutError"} <= {t.error.split(":")[0] for t in failed}

    def error_rate(release: str) -> float:
        of_release = [t for t in traces if t.release == release]
        return sum(t.status == "error" for t in of_release) / len(of_release)

    def median_ms(release: str) -> float:
        return statistics.median(t.duration_ms for t in traces if t.release == release)

    assert error_rate("v1.5.0") > 2 * max(error_rate("v1.4.0"), error_rate("v1.5.1"))
    assert median_ms("v1.5.0") > 1.2 * max(median_ms("v1.4.0"), median_ms("v1.5.1"))
    durations = sorted(t.duration_ms for t in traces)
    assert durations[int(len(durations) * 0.99)] > 3 * durations[len(durations) // 2]  # a real p99 tail

    # Scores: thumbs from users on ~15% of traces, an LLM judge, a few human labels, all linked to configs.
    configs = {c.name: c for c in rows(db_url, ScoreConfig.__table__)}
    assert set(configs) == {"thumbs", "helpfulness", "correctness", "tone", "notes"}
    assert [c["label"] for c in configs["correctness"].categories_json] == ["correct", "partially_correct", "incorrect"]
    assert all(c.description for c in configs.values())
    assert all(s.config_id == configs[s.name].id for s in scores)
    thumbs = [s for s in scores if s.name == "thumbs"]
    assert 0.10 <= len(thumbs) / len(traces) <= 0.20
    assert {s.source for s in thumbs} == {"user_feedback"} and {s.value for s in thumbs} == {0.0, 1.0}
    assert any(s.comment for s in thumbs)
    status = {t.id: t.status for t in traces}
    down_rate_failed = statistics.mean(s.value == 0 for s in thumbs if status[s.trace_id] == "error")
    down_rate_ok = statistics.mean(s.value == 0 for s in thumbs if status[s.trace_id] == "ok")
    assert down_rate_failed > 2 * down_rate_ok
    judged = [s for s in scores if s.name == "helpfulness"]
    assert judged and all(s.source == "llm_judge" and 0 <= s.value <= 1 for s in judged)
    correctness = [s for s in scores if s.name == "correctness"]
    assert correctness and all(s.source == "human" and s.author for s in correctness)
    assert {s.label for s in correctness} == {"correct", "partially_correct", "incorrect"}


def test_dates_inside_payloads_move_with_the_history(sqlite_url: str, tmp_path: Path) -> None:
    seed(sqlite_url, now=NOW, sample_dir=small_sample(tmp_path / "sample", lines=200))

    traces = {t.id: t for t in rows(sqlite_url, Trace.__table__)}
    spans = rows(sqlite_url, Span.__table__)
    lookups = [s for s in spans if s.name == "lookup_order" and s.status == "ok" and "placed_at" in s.output_json]
    assert lookups
    for span in lookups:
        placed = datetime.fromisoformat(span.output_json["placed_at"])
        assert timedelta(0) < span.start_time - placed < timedelta(days=75)
    prompts = [s for s in spans if s.kind == "llm"]
    for span in prompts:
        today = re.search(r"Today's date: (\d{4}-\d{2}-\d{2})", span.input_json[0]["content"]).group(1)
        assert abs(datetime.fromisoformat(today).date() - traces[span.trace_id].start_time.date()) <= timedelta(days=1)


def test_the_sample_golden_dataset_holds_reviewed_support_answers(sqlite_url: str, tmp_path: Path) -> None:
    seed(sqlite_url, now=NOW, sample_dir=small_sample(tmp_path / "sample", lines=5))

    [dataset] = list_datasets(sqlite_url)
    assert (dataset.name, dataset.item_count) == ("support-golden", 51) and dataset.description
    items = items_at(sqlite_url, "support-golden", limit=100).items
    assert all(set(i.input) == {"message"} and set(i.expected_output) == {"reply"} for i in items)
    assert all(i.metadata["articles"] and i.metadata["reviewed_by"] in {"james.o", "maria.k", "priya.s"}
               for i in items)
    assert {"shipping", "returns", "account", "billing", "membership"} <= {i.metadata["intent"] for i in items}
    assert items[0].input == {"message": "How long does shipping take?"}  # the file's order is kept


def test_the_golden_dataset_comes_with_a_promoted_baseline_to_compare_with(traced: str, tmp_path: Path) -> None:
    from looplab.evaluation.registry import list_evaluators
    from looplab.experiments.gate import promoted_baseline
    from looplab.experiments.records import experiment_progress, get_experiment, score_summary
    from looplab.experiments.runner import experiment_items

    # `traced`: this process records into the database (a CLI `looplab seed` points tracing there itself).
    result = seed(traced, now=NOW, sample_dir=small_sample(tmp_path / "sample", lines=5))

    assert result.baseline_added == "support v1"
    baseline = get_experiment(traced, "support v1")
    assert baseline.status == "completed" and baseline.promoted_at is not None
    assert promoted_baseline(traced, baseline.dataset_id) == baseline.id
    assert baseline.variant["model"] == "mock:support" and baseline.dataset == "support-golden"
    progress = experiment_progress(traced, baseline.id)
    assert (progress.done, progress.total, progress.errors) == (51, 51, 0)
    assert {e.name for e in list_evaluators(traced)} == {"exact reply", "similar reply"}
    scores = {s.name: s for s in score_summary(traced, baseline.id)}
    assert set(scores) == {"exact reply", "similar reply"} and all(s.count == 51 for s in scores.values())
    assert 0.5 < scores["exact reply"].mean < 1  # the mock gets most replies right, not all
    # Each item's model call is a trace of its own, stored by the time seed returns.
    trace_ids = {i["trace_id"] for i in experiment_items(traced, baseline.id)}
    with read_session(traced) as session:
        stored = set(session.scalars(select(Trace.id).where(Trace.id.in_(trace_ids))))
    assert len(trace_ids) == 51 and stored == trace_ids


# --- seeding again -------------------------------------------------------------------------------------


def test_seeding_again_adds_nothing(db_url: str, tmp_path: Path) -> None:
    sample = small_sample(tmp_path / "sample")
    first = seed(db_url, now=NOW, sample_dir=sample)
    before = [rows(db_url, model.__table__) for model in (Trace, Span, Score, ScoreConfig, Dataset, DatasetItem)]

    again = seed(db_url, now=NOW + timedelta(days=3), sample_dir=sample)

    assert first.traces_added == 40 and not first.nothing_added
    assert (first.dataset_added, first.dataset_items_added) == ("support-golden", 51)
    assert again.nothing_added and (again.traces_added, again.spans_added, again.scores_added) == (0, 0, 0)
    assert again.traces_in_sample == 40 and again.score_configs_added == ()
    assert (again.dataset_added, again.dataset_items_added) == (None, 0)
    assert first.queues_added == ("Thumbs-down review", "Weekly sample") and again.queues_added == ()
    assert first.baseline_added == "support v1" and again.baseline_added is None
    assert [rows(db_url, model.__table__) for model in (Trace, Span, Score, ScoreConfig, Dataset, DatasetItem)] == before


def test_an_interrupted_seed_is_completed_on_the_same_timeline(sqlite_url: str, tmp_path: Path) -> None:
    sample = small_sample(tmp_path / "sample")
    seed(sqlite_url, now=NOW, sample_dir=sample)
    complete = {t.id: t.start_time for t in rows(sqlite_url, Trace.__table__)}
    lost = sorted(complete, key=complete.get)[-7:]
    with write_session(sqlite_url) as session:  # as if the last chunk had never been written
        for model in (Trace, Span, Score, TraceTag):
            session.execute(delete(model).where(model.trace_id.in_(lost) if model is not Trace else Trace.id.in_(lost)))

    result = seed(sqlite_url, now=NOW + timedelta(days=2), sample_dir=sample)

    assert result.traces_added == 7 and result.traces_in_sample == 40
    assert {t.id: t.start_time for t in rows(sqlite_url, Trace.__table__)} == complete
    assert result.history_end == NOW


def test_score_configs_already_there_are_kept(db_url: str, tmp_path: Path) -> None:
    with write_session(db_url) as session:
        session.add(ScoreConfig(name="thumbs", data_type="boolean", description="Ours.", created_at=utcnow()))

    result = seed(db_url, now=NOW, sample_dir=small_sample(tmp_path / "sample", lines=5))

    assert result.score_configs_added == ("helpfulness", "correctness", "tone", "notes")
    with read_session(db_url) as session:
        assert session.scalar(select(ScoreConfig.description).where(ScoreConfig.name == "thumbs")) == "Ours."
        assert session.scalar(select(func.count()).select_from(ScoreConfig)) == 5


def test_a_naive_now_means_utc(sqlite_url: str, tmp_path: Path) -> None:
    result = seed(sqlite_url, now=NOW.replace(tzinfo=None), sample_dir=small_sample(tmp_path / "sample", lines=5))
    assert result.history_end == NOW


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "The sample data is missing: there is no"),
        ({TRACES_FILE: b"not gzip"}, "Cannot read the sample data"),
        ({SCORE_CONFIGS_FILE: "- name: thumbs\n  data_type: emoji\n"}, "needs a name and a data_type"),
        ({SCORE_CONFIGS_FILE: "thumbs: up\n"}, "must hold a list of score configs"),
        ({TRACES_FILE: gzip.compress(b'{"name": "no id"}\n')}, "a line without a trace_id"),
        ({DATASET_FILE: b'{"input": "where is my parcel?"}\n'}, "no 'expected_output'"),
    ],
)
def test_broken_sample_data_is_a_clear_error(sqlite_url: str, tmp_path: Path, files: dict[str, Any],
                                             message: str) -> None:
    sample = small_sample(tmp_path / "sample", lines=3) if files else tmp_path
    for name, content in files.items():
        (sample / name).write_bytes(content if isinstance(content, bytes) else content.encode())

    with pytest.raises(ConfigError, match=message):
        seed(sqlite_url, now=NOW, sample_dir=sample)


# --- looplab seed -------------------------------------------------------------------------------------


def test_cli_seed_loads_the_sample_and_says_so_once(db_url: str) -> None:
    result = looplab_cli("seed", "--db", db_url)

    assert result.exit_code == 0, result.output
    assert re.search(r"Seeded .+ in \d+\.\d s:", result.stdout)
    assert re.search(r"  [\d,]+ traces, [\d,]+ spans and [\d,]+ scores, \d{4}-\d\d-\d\d \d\d:\d\d to ", result.stdout)
    assert "5 score configs: thumbs, helpfulness, correctness, tone, notes" in result.stdout
    assert "  dataset support-golden with 51 items" in result.stdout
    assert "  experiment 'support v1' over support-golden, promoted as the baseline" in result.stdout
    with read_session(db_url) as session:
        newest = session.scalar(select(func.max(Trace.start_time)))
    assert utcnow() - newest < timedelta(minutes=15)

    again = looplab_cli("seed", env={"LOOPLAB_DATABASE_URL": db_url})

    assert again.exit_code == 0, again.output
    assert "already holds the sample data" in again.stdout and "nothing added" in again.stdout


@pytest.mark.parametrize(
    ("make_url", "message"),
    [
        (lambda tmp: f"sqlite:///{tmp / 'missing' / 'looplab.db'}", "does not exist"),
        (lambda tmp: "not a url", "is not a database URL"),
        (lambda tmp: f"sqlite:///{tmp / 'junk.db'}", "Cannot open the database"),
    ],
)
def test_cli_seed_errors_are_messages(tmp_path: Path, make_url: Any, message: str) -> None:
    (tmp_path / "junk.db").write_bytes(b"this is not a SQLite database, just bytes " * 100)

    result = looplab_cli("seed", "--db", make_url(tmp_path))

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_the_sample_queues_hold_the_thumbs_down_traces_and_a_stratified_sample(db_url: str, tmp_path: Path) -> None:
    from looplab.annotation import queues, rules  # noqa: PLC0415

    seed(db_url, now=NOW, sample_dir=small_sample(tmp_path / "sample", lines=400))
    thumbs_down = {s.trace_id for s in rows(db_url, Score.__table__) if s.name == "thumbs" and s.value == 0}
    triage = queues.find_queue(db_url, "Thumbs-down review")
    items, total = queues.list_items(db_url, triage.id, limit=500)
    assert total == len(thumbs_down) > 0 and {i.trace_id for i in items} == thumbs_down
    weekly = queues.find_queue(db_url, "Weekly sample")
    (rule,) = rules.list_rules(db_url, weekly.id)
    assert weekly.annotations_per_item == 2 and rule.taken == weekly.items > 0
    with read_session(db_url) as session:
        settled = rules.settled_before(session, NOW)
    assert set(rule.strata) == {t.release for t in rows(db_url, Trace.__table__)
                                if t.name == "support-chat" and t.start_time < settled}
