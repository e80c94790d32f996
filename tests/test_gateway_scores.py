"""``POST /api/scores`` on a running gateway: feedback lands in the scores table the app reads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx2
import pytest

import looplab
from looplab.monitoring import metrics
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces
from looplab.tracing import runtime
from tests.fakes.llm_server import FakeLLM
from tests.stored import stored_scores, stored_spans, stored_traces
from tests.test_gateway import Gateway, _settings, serve


@pytest.fixture
def gateway(fake_llm: FakeLLM, db_url: str) -> Iterator[Gateway]:
    with serve(_settings(fake_llm, db_url)) as running:
        yield running


def _post(gateway: Gateway, payload: Any, **kwargs: Any) -> httpx2.Response:
    return httpx2.post(gateway.url + "/api/scores", json=payload, **kwargs)


def _a_trace(gateway: Gateway) -> tuple[str, str]:
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    trace_id = raw.headers["x-looplab-trace-id"]
    assert looplab.flush()
    return trace_id, stored_spans(gateway.settings.database_url, trace_id)[0]["id"]


def test_a_thumbs_up_is_stored(gateway: Gateway, db_url: str) -> None:
    trace_id, span_id = _a_trace(gateway)
    response = _post(gateway, {"trace_id": trace_id, "name": "thumbs", "value": True, "comment": "spot on"})
    labelled = _post(gateway, {"trace_id": trace_id, "span_id": span_id, "name": "tone", "label": "friendly",
                               "source": "human", "author": "ana"})

    assert response.status_code == 201 and labelled.status_code == 201
    assert response.json()["trace_id"] == trace_id
    assert looplab.flush()
    scores = {s["name"]: s for s in stored_scores(db_url)}
    assert scores["thumbs"]["id"] == response.json()["id"]
    assert scores["thumbs"]["value"] == 1.0 and scores["thumbs"]["source"] == "user_feedback"
    assert scores["thumbs"]["comment"] == "spot on" and scores["thumbs"]["trace_id"] == trace_id
    assert scores["tone"]["label"] == "friendly" and scores["tone"]["value"] is None
    assert (scores["tone"]["span_id"], scores["tone"]["source"], scores["tone"]["author"]) == (span_id, "human", "ana")


def test_a_score_shows_up_in_monitoring(gateway: Gateway, db_url: str) -> None:
    trace_id, _ = _a_trace(gateway)
    for value in (1, 0, 1):
        assert _post(gateway, {"trace_id": trace_id, "name": "thumbs", "value": value}).status_code == 201
    assert looplab.flush()
    [thumbs] = metrics.summary(db_url, TraceFilter.last("1h"), compare=False)["scores"]
    assert (thumbs["name"], thumbs["source"], thumbs["count"]) == ("thumbs", "user_feedback", 3)
    assert thumbs["mean"] == pytest.approx(2 / 3)


def test_a_score_for_a_trace_still_in_the_writers_queue(fake_llm: FakeLLM, db_url: str) -> None:
    # The writer waits a long while: the trace is not in the database when its score arrives.
    with serve(_settings(fake_llm, db_url)) as gateway:
        runtime.install(runtime.settings().with_changes(flush_interval=30.0))
        raw = gateway.openai().chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        trace_id = raw.headers["x-looplab-trace-id"]
        assert stored_traces(db_url) == []  # still queued
        response = _post(gateway, {"trace_id": trace_id, "name": "thumbs", "value": 1})
        assert response.status_code == 201, response.text
        assert looplab.flush()
    assert [s["trace_id"] for s in stored_scores(db_url)] == [trace_id]


def test_a_score_for_a_trace_stored_by_another_process(gateway: Gateway, db_url: str) -> None:
    with looplab.trace("recorded elsewhere") as recorded:
        pass
    assert looplab.flush()
    assert _post(gateway, {"trace_id": recorded.trace_id, "name": "thumbs", "value": 0}).status_code == 201


def test_a_score_for_a_trace_another_worker_is_still_writing(gateway: Gateway, db_url: str) -> None:
    # Another gateway worker recorded the trace; its writer stores it a moment after the app,
    # quick with its feedback, posts the score.
    trace_id = "0" * 20 + "f" * 12
    later = threading.Timer(0.3, insert_traces, args=(db_url, [{
        "trace_id": trace_id, "name": "chat", "start_time": datetime.now(timezone.utc), "spans": []}]))
    later.start()
    try:
        answer = _post(gateway, {"trace_id": trace_id, "name": "thumbs", "value": 1})
    finally:
        later.join()
    assert answer.status_code == 201
    assert looplab.flush()
    assert [s["trace_id"] for s in stored_scores(db_url)] == [trace_id]


@pytest.mark.parametrize(("payload", "message"), [
    ({"name": "thumbs", "value": 1}, "trace_id is required"),
    ({"trace_id": "t", "value": 1}, "name is required"),
    ({"trace_id": "t", "name": "thumbs"}, "give a value (a number or true/false), a label, or both"),
    ({"trace_id": "t", "name": "thumbs", "value": "1"}, "value must be a number or true/false; got '1'"),
    ({"trace_id": "t", "name": "thumbs", "value": 1, "source": "crowd"}, "source must be one of human, llm_judge"),
    ({"trace_id": "t", "name": "thumbs", "vaule": 1}, "unknown field vaule"),
    ({"trace_id": "t", "name": "x" * 300, "value": 1}, "name is 300 characters long; at most 255 fit"),
    ({"trace_id": "t", "name": "thumbs", "label": 3}, "label must be a non-empty string"),
    ({"trace_id": "t", "name": "thumbs", "value": 1, "comment": ["no"]}, "comment must be a string"),
    ([1, 2], "the body must be a JSON object"),
])
def test_bad_input_is_a_400_saying_what_is_wrong(gateway: Gateway, db_url: str, payload: Any, message: str) -> None:
    response = _post(gateway, payload)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert looplab.flush() and stored_scores(db_url) == []


def test_a_body_that_is_not_json_is_a_400(gateway: Gateway) -> None:
    response = httpx2.post(gateway.url + "/api/scores", content=b"thumbs up!",
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_an_unknown_trace_or_span_is_a_404(gateway: Gateway, db_url: str) -> None:
    trace_id, _ = _a_trace(gateway)
    missing = _post(gateway, {"trace_id": "0" * 32, "name": "thumbs", "value": 1})
    wrong_span = _post(gateway, {"trace_id": trace_id, "span_id": "f" * 16, "name": "thumbs", "value": 1})

    assert missing.status_code == 404 and "no trace '00000000" in missing.json()["error"]["message"]
    assert wrong_span.status_code == 404 and "has no span 'ffff" in wrong_span.json()["error"]["message"]
    assert looplab.flush() and stored_scores(db_url) == []


def test_the_api_key_guards_scores(fake_llm: FakeLLM, db_url: str) -> None:
    with serve(_settings(fake_llm, db_url, api_key="k-123")) as gateway:
        raw = httpx2.post(gateway.openai_base_url + "/chat/completions", headers={"x-looplab-api-key": "k-123"},
                          json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        payload = {"trace_id": raw.headers["x-looplab-trace-id"], "name": "thumbs", "value": 1}
        assert _post(gateway, payload).status_code == 401
        assert _post(gateway, payload, headers={"x-looplab-api-key": "k-123"}).status_code == 201
