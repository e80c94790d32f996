"""``insert_traces``: whole traces in the export shape (plus scores) written back, checked first."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from looplab.errors import ConfigError, LooplabError
from looplab.store.engine import read_session, write_session
from looplab.store.ingest import CHUNK, insert_traces
from looplab.store.models import Score, ScoreConfig, Span, Trace, TraceTag
from looplab.store.queries import iter_traces_for_export
from looplab.store.types import utcnow


def support_trace(trace_id: str = "t-1", minute: int = 0) -> dict[str, Any]:
    """A trace as ``looplab export traces`` writes it, plus two scores."""
    start = f"2026-03-01T10:{minute:02d}:00.000000Z"
    return {
        "trace_id": trace_id, "name": "support-chat", "start_time": start,
        "end_time": f"2026-03-01T10:{minute:02d}:02.500000Z", "session_id": "s-1", "user_id": "u-1",
        "tags": ["web", "vip"], "metadata": {"plan": "plus"}, "release": "v1.5.0", "environment": "production",
        "input": {"message": "Where is ORD-184523?"}, "output": {"reply": "It arrives tomorrow."},
        "status": "ok", "error": None, "cost_usd": 0.0031, "input_tokens": 900, "output_tokens": 40,
        "spans": [
            {"span_id": f"{trace_id}-root", "parent_id": None, "kind": "span", "name": "support-chat",
             "provider": None, "model": None, "input": {"message": "Where is ORD-184523?"},
             "output": {"reply": "It arrives tomorrow."}, "input_tokens": None, "output_tokens": None,
             "cached_tokens": None, "cost_usd": None, "latency_ms": 2500.0, "ttft_ms": None, "status": "ok",
             "error": None, "start_time": start, "end_time": f"2026-03-01T10:{minute:02d}:02.500000Z",
             "attributes": {}},
            {"span_id": f"{trace_id}-llm", "parent_id": f"{trace_id}-root", "kind": "llm",
             "name": "openai.chat.completions.create", "provider": "openai", "model": "gpt-4o-mini",
             "input": [{"role": "system", "content": "You are Fern."}, {"role": "user", "content": "Where?"}],
             "output": {"role": "assistant", "content": None,
                        "tool_calls": [{"id": "call_1", "name": "lookup_order", "arguments": "{}"}]},
             "input_tokens": 900, "output_tokens": 40, "cached_tokens": 0, "cost_usd": 0.0031,
             "latency_ms": 1200.0, "ttft_ms": 400.0, "status": "ok", "error": None,
             "start_time": f"2026-03-01T10:{minute:02d}:00.100000Z",
             "end_time": f"2026-03-01T10:{minute:02d}:01.300000Z", "attributes": {"stream": True}},
            {"span_id": f"{trace_id}-tool", "parent_id": f"{trace_id}-root", "kind": "tool",
             "name": "lookup_order", "provider": None, "model": None, "input": {"order_id": "ORD-184523"},
             "output": None, "input_tokens": None, "output_tokens": None, "cached_tokens": None,
             "cost_usd": None, "latency_ms": 8000.0, "ttft_ms": None, "status": "error",
             "error": "TimeoutError: order service did not answer within 8.0 s",
             "start_time": f"2026-03-01T10:{minute:02d}:01.400000Z",
             "end_time": f"2026-03-01T10:{minute:02d}:02.400000Z", "attributes": {}},
        ],
    }


SCORES = [
    {"score_id": "sc-1", "name": "thumbs", "value": 0, "source": "user_feedback", "author": "u-1",
     "comment": "wrong info", "created_at": "2026-03-01T10:01:00Z"},
    {"name": "correctness", "label": "incorrect", "value": 0.0, "source": "human", "author": "maria.k",
     "metadata": {"queue": "weekly-review"}},
]


def exported(url: str) -> list[dict[str, Any]]:
    return list(iter_traces_for_export(url))


def count(url: str, model: type) -> int:
    with read_session(url) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_insert_round_trips_with_export(db_url: str, tmp_path: Path) -> None:
    trace = {**support_trace(), "scores": SCORES}

    assert insert_traces(db_url, [trace]) == 1

    (back,) = exported(db_url)
    assert back == {k: v for k, v in support_trace().items()}  # every export field, spans in start order
    # What was exported loads into another database and exports the same again.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert insert_traces(other, exported(db_url)) == 1
    assert exported(other) == [back]


def test_scores_are_stored_and_linked_to_their_config(db_url: str) -> None:
    with write_session(db_url) as session:
        session.add(ScoreConfig(name="thumbs", data_type="boolean", min_value=0, max_value=1, created_at=utcnow()))

    insert_traces(db_url, [{**support_trace(), "scores": SCORES}])

    with read_session(db_url) as session:
        config_id = session.scalar(select(ScoreConfig.id).where(ScoreConfig.name == "thumbs"))
        scores = {s.name: s for s in session.execute(select(Score.__table__)).all()}
    thumbs, correctness = scores["thumbs"], scores["correctness"]
    assert (thumbs.id, thumbs.trace_id, thumbs.value, thumbs.source, thumbs.author, thumbs.comment) == (
        "sc-1", "t-1", 0.0, "user_feedback", "u-1", "wrong info")
    assert thumbs.created_at.isoformat() == "2026-03-01T10:01:00+00:00"
    assert thumbs.config_id == config_id
    assert (correctness.label, correctness.value, correctness.source, correctness.config_id) == (
        "incorrect", 0.0, "human", None)
    assert correctness.metadata_json == {"queue": "weekly-review"}
    # Without created_at, a score is as old as the end of its trace.
    assert correctness.created_at.isoformat() == "2026-03-01T10:00:02.500000+00:00"


def test_missing_totals_come_from_the_spans(db_url: str) -> None:
    trace = support_trace()
    for key in ("cost_usd", "input_tokens", "output_tokens"):
        del trace[key]
    for span in trace["spans"]:
        del span["latency_ms"]
    trace["tags"] = ["web", "web", "vip"]

    insert_traces(db_url, [trace])

    with read_session(db_url) as session:
        row = session.execute(select(Trace.__table__)).one()
        latencies = dict(session.execute(select(Span.id, Span.duration_ms)).all())
        tags = set(session.scalars(select(TraceTag.tag)))
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (900, 40, pytest.approx(0.0031))
    assert (row.span_count, row.error_count, row.duration_ms) == (3, 1, 2500.0)
    assert latencies["t-1-llm"] == pytest.approx(1200.0) and tags == {"web", "vip"}


def test_traces_already_stored_are_skipped(db_url: str) -> None:
    assert insert_traces(db_url, [support_trace("a"), support_trace("a", minute=5), support_trace("b", 1)]) == 2
    assert insert_traces(db_url, [support_trace("a"), support_trace("c", 2)]) == 1
    assert [t["trace_id"] for t in exported(db_url)] == ["a", "b", "c"]
    assert exported(db_url)[0]["start_time"] == "2026-03-01T10:00:00.000000Z"  # the first "a" won


def _bad_span(**changes: Any) -> dict[str, Any]:
    trace = support_trace("bad")
    trace["spans"][1].update(changes)
    return trace


MALFORMED = [
    pytest.param(_bad_span(kind="llmm"), "kind='llmm'; use one of llm, tool", id="span-kind"),
    pytest.param(_bad_span(status="failed"), "status='failed'; use one of ok, error", id="span-status"),
    pytest.param(_bad_span(input_tokens="900"), "input_tokens='900'; it must be a whole number", id="tokens"),
    pytest.param(_bad_span(start_time="yesterday"), "'yesterday' is not an ISO 8601 time", id="time"),
    pytest.param(_bad_span(span_id="bad-root"), "Span 'bad-root' appears twice", id="duplicate-span"),
    pytest.param({**support_trace("bad"), "start_time": None}, "has no 'start_time'", id="no-start"),
    pytest.param({**support_trace("bad"), "spans": ["not a span"]}, "Each span must be a JSON object", id="span-str"),
    pytest.param({**support_trace("bad"), "tags": "vip"}, "tags must be a list", id="tags-str"),
    pytest.param({**support_trace("bad"), "scores": [{"name": "thumbs", "source": "robot"}]},
                 "source='robot'; use one of human", id="score-source"),
    pytest.param({**support_trace("bad"), "scores": [{"value": 1}]}, "A score has no 'name'", id="score-name"),
]


@pytest.mark.parametrize(("bad", "message"), MALFORMED)
def test_a_malformed_trace_is_refused_with_its_chunk(db_url: str, bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="Trace 'bad' is malformed") as caught:
        insert_traces(db_url, [support_trace("good"), copy.deepcopy(bad), support_trace("after", 3)])

    assert message in str(caught.value)
    assert (count(db_url, Trace), count(db_url, Span), count(db_url, Score)) == (0, 0, 0)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([["not", "a", "trace"]], "A trace must be a JSON object"),
        ([{"name": "no id"}], "A trace has no 'trace_id'"),
        ([{"trace_id": 17}], "A trace has no 'trace_id'"),
    ],
)
def test_records_that_are_not_traces_are_refused(db_url: str, records: list[Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        insert_traces(db_url, records)
    assert count(db_url, Trace) == 0


def test_chunks_before_a_malformed_one_stay_stored(sqlite_url: str) -> None:
    good = [{"trace_id": f"t{n:04d}", "start_time": "2026-03-01T10:00:00Z"} for n in range(CHUNK)]
    bad = {"trace_id": "bad", "start_time": "2026-03-01T10:00:00Z", "status": "meh"}

    with pytest.raises(ConfigError, match="Trace 'bad' is malformed: The trace has status='meh'"):
        insert_traces(sqlite_url, [*good, support_trace("next-chunk"), bad])

    assert count(sqlite_url, Trace) == CHUNK


def test_an_unusable_database_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(LooplabError, match="does not exist"):
        insert_traces(f"sqlite:///{tmp_path / 'missing' / 'x.db'}", [support_trace()])
