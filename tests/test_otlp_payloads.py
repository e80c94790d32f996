"""OTLP/HTTP ingest through the Starlette app: encodings, malformed bodies, limits, partial
success, duplicates and traces split across batches, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import sqlite3
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.testclient import TestClient

from looplab.otlp.decode import JSON, PROTOBUF
from looplab.otlp.http import export, otlp_routes
from looplab.store.engine import get_engine
from tests.otlp_builders import (
    PB,
    genai_chat_attributes,
    new_span_id,
    new_trace_id,
    request,
    span,
)
from tests.stored import stored_spans, stored_traces


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    get_engine(db_url)  # migrated up front, as the gateway does on start
    with TestClient(Starlette(routes=otlp_routes(db_url, max_body_bytes=64 * 1024))) as test_client:
        yield test_client


def _post(client: TestClient, body: bytes, headers: dict[str, str] = PB) -> ExportTraceServiceResponse:
    response = client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(PROTOBUF)
    return ExportTraceServiceResponse.FromString(response.content)


def _chat_trace(trace_id: bytes | None = None, start: int | None = None) -> list:
    trace_id = trace_id or new_trace_id()
    start = start or time.time_ns()
    root_id = new_span_id()
    return [
        span(trace_id, root_id, "answer question", start_ns=start, duration_ns=50_000_000,
             attributes={"session.id": "session-1", "user.id": "user-1", "my.custom": "kept"}),
        span(trace_id, new_span_id(), "chat gpt-4o-mini", parent_id=root_id, start_ns=start + 1_000_000,
             duration_ns=40_000_000, attributes=genai_chat_attributes()),
    ]


def test_protobuf_export_is_stored_with_genai_fields(client: TestClient, db_url: str) -> None:
    spans = _chat_trace()
    answer = _post(client, request(*spans, resource={"service.name": "support-bot", "service.version": "2.1",
                                                     "deployment.environment.name": "prod"}).SerializeToString())
    assert not answer.HasField("partial_success")

    [trace] = stored_traces(db_url)
    assert trace["id"] == spans[0].trace_id.hex()
    assert (trace["name"], trace["status"], trace["span_count"], trace["error_count"]) == ("answer question", "ok", 2, 0)
    assert (trace["session_id"], trace["user_id"]) == ("session-1", "user-1")
    assert (trace["release"], trace["environment"]) == ("2.1", "prod")
    assert trace["metadata_json"] == {"service.name": "support-bot"}
    assert (trace["input_tokens"], trace["output_tokens"]) == (100, 20)
    assert trace["cost_usd"] == pytest.approx(100 * 0.15e-6 + 20 * 0.6e-6)
    assert trace["duration_ms"] == pytest.approx(50.0)

    root, llm = stored_spans(db_url)
    assert root["parent_id"] is None and llm["parent_id"] == root["id"]
    assert root["attributes_json"]["my.custom"] == "kept"
    assert root["attributes_json"]["otel.resource"]["service.name"] == "support-bot"
    assert llm["kind"] == "llm" and llm["model"] == "gpt-4o-mini" and llm["provider"] == "openai"
    assert llm["input_json"] == [{"role": "user", "content": "What is OTLP?"}]
    assert llm["output_json"] == {"role": "assistant", "content": "A protocol.", "finish_reason": "stop"}
    assert llm["params_json"] == {"temperature": 0.2}
    assert llm["finish_reason"] == "stop"
    assert llm["cost_usd"] == trace["cost_usd"] and llm["pricing_source"].startswith("genai-prices")
    assert llm["duration_ms"] == pytest.approx(40.0)
    # What went into columns is not stored twice; the rest of the attributes are kept.
    assert "gen_ai.input.messages" not in llm["attributes_json"]
    assert llm["attributes_json"]["gen_ai.operation.name"] == "chat"


def test_json_export_with_hex_ids_and_int64_strings(client: TestClient, db_url: str) -> None:
    trace_id, root_id, child_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173"
    start = time.time_ns()
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-sender"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": [
            {"traceId": trace_id, "spanId": root_id, "name": "root", "kind": 2,
             "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 9_000_000),
             "attributes": [{"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-7"}}]},
            {"traceId": trace_id, "spanId": child_id, "parentSpanId": root_id, "name": "chat",
             "startTimeUnixNano": str(start + 1_000_000), "endTimeUnixNano": str(start + 8_000_000),
             "attributes": [
                 {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                 {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                 {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1000"}},
                 {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 10}},
             ],
             "status": {"code": 2, "message": "rate limited"}},
            {"traceId": "not-hex", "spanId": "eee19b7ec3c1b172", "name": "bad",
             "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 1)},
        ]}],
    }]}
    response = client.post("/v1/traces", content=orjson.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(JSON)
    answer = response.json()
    assert answer["partialSuccess"]["rejectedSpans"] == "1"
    assert "not-hex" in answer["partialSuccess"]["errorMessage"]

    [trace] = stored_traces(db_url)
    assert trace["id"] == trace_id and trace["session_id"] == "conv-7"
    assert trace["error_count"] == 1 and trace["status"] == "ok"  # the root did not fail
    root, chat = stored_spans(db_url)
    assert (root["id"], chat["id"], chat["parent_id"]) == (root_id, child_id, root_id)
    assert root["attributes_json"]["otel.span_kind"] == "server"
    assert (chat["status"], chat["error"]) == ("error", "rate limited")
    assert (chat["input_tokens"], chat["output_tokens"], chat["model"]) == (1000, 10, "gpt-4o")
    assert chat["cost_usd"] == pytest.approx(1000 * 2.5e-6 + 10 * 10e-6)


def test_gzip_bodies_are_accepted(client: TestClient, db_url: str) -> None:
    body = gzip.compress(request(*_chat_trace()).SerializeToString())
    _post(client, body, {**PB, "content-encoding": "gzip"})
    assert len(stored_spans(db_url)) == 2


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    (b"\x0a\xff\xff\xff\xff\x0f garbage", PB, 400, "not a valid OTLP protobuf"),
    (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
    (b"[1, 2]", {"content-type": "application/json"}, 400, "must be a JSON object"),
    (b'{"resourceSpans": {"a": 1}}', {"content-type": "application/json"}, 400, "not an OTLP"),
    (b"hello", {"content-type": "text/plain"}, 415, "text/plain"),
    (b"hello", {}, 415, "Content-Type"),
    (b"hello", {**PB, "content-encoding": "br"}, 415, "br"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 20, {**PB, "content-encoding": "gzip"}, 400,
     "not valid gzip"),
    (b"plain, not gzip", {**PB, "content-encoding": "gzip"}, 400, "not valid gzip"),
])
def test_malformed_requests_are_refused_with_what_was_wrong(client: TestClient, db_url: str, body: bytes,
                                                            headers: dict[str, str], status: int,
                                                            message: str) -> None:
    response = client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == status
    if response.headers["content-type"].startswith(JSON):
        assert message in response.json()["message"]
    else:
        assert message.encode() in response.content  # google.rpc.Status, protobuf-encoded
    assert stored_spans(db_url) == [] and stored_traces(db_url) == []


def test_a_truncated_body_stores_nothing_of_the_request(client: TestClient, db_url: str) -> None:
    spans = [s for _ in range(20) for s in _chat_trace()]
    body = request(*spans).SerializeToString()
    cut = body[: len(body) - 37]  # the last span's attributes cut short
    response = client.post("/v1/traces", content=cut, headers=PB)
    assert response.status_code == 400
    assert b"not a valid OTLP protobuf" in response.content
    truncated_gzip = gzip.compress(body)[:-20]
    response = client.post("/v1/traces", content=truncated_gzip, headers={**PB, "content-encoding": "gzip"})
    assert response.status_code == 400 and b"truncated" in response.content
    assert stored_spans(db_url) == [] and stored_traces(db_url) == []


def test_bodies_over_the_limit_get_413_also_once_decompressed(client: TestClient, db_url: str) -> None:
    big = span(new_trace_id(), new_span_id(), attributes={"input.value": "x" * 70_000})
    body = request(big).SerializeToString()
    assert client.post("/v1/traces", content=body, headers=PB).status_code == 413
    # Sent in chunks without a Content-Length: refused while reading.
    chunks = (body[i:i + 8192] for i in range(0, len(body), 8192))
    assert client.post("/v1/traces", content=chunks, headers=PB).status_code == 413
    # 70 KB of x compress to a few hundred bytes: the limit applies after gunzip too.
    small = gzip.compress(body)
    assert len(small) < 4096
    response = client.post("/v1/traces", content=small, headers={**PB, "content-encoding": "gzip"})
    assert response.status_code == 413 and b"decompressed" in response.content
    assert stored_spans(db_url) == []


def test_duplicate_span_ids_are_stored_once(client: TestClient, db_url: str) -> None:
    spans = _chat_trace()
    body = request(*spans).SerializeToString()
    assert not _post(client, body).HasField("partial_success")
    # An exporter's retry of the whole batch, and the same span twice in one batch.
    assert not _post(client, body).HasField("partial_success")
    assert not _post(client, request(spans[1], spans[1]).SerializeToString()).HasField("partial_success")
    assert len(stored_spans(db_url)) == 2
    [trace] = stored_traces(db_url)
    assert (trace["span_count"], trace["input_tokens"], trace["output_tokens"]) == (2, 100, 20)


def test_one_bad_span_does_not_lose_the_rest(client: TestClient, db_url: str) -> None:
    good = _chat_trace()
    trace_id, now = good[0].trace_id, time.time_ns()
    bad = [
        span(trace_id, b"", "no span id"),
        span(trace_id, b"\x00" * 8, "zero span id"),
        span(b"\x01" * 8, new_span_id(), "short trace id"),
        span(trace_id, new_span_id(), "backwards", start_ns=now, duration_ns=-1_000),
        span(trace_id, new_span_id(), "no start", start_ns=0),
    ]
    answer = _post(client, request(good[0], *bad, good[1]).SerializeToString())
    assert answer.partial_success.rejected_spans == 5
    message = answer.partial_success.error_message
    for reason in ("has no span id", "span id is all zeros", "trace id has 8 bytes", "before it starts",
                   "no start time"):
        assert reason in message
    assert {s["name"] for s in stored_spans(db_url)} == {"answer question", "chat gpt-4o-mini"}
    assert stored_traces(db_url)[0]["span_count"] == 2


def test_a_trace_split_across_batches_ends_with_the_right_totals(client: TestClient, db_url: str) -> None:
    trace_id, start = new_trace_id(), time.time_ns()
    root_id = new_span_id()
    children = [
        span(trace_id, new_span_id(), f"chat {i}", parent_id=root_id, start_ns=start + i * 10_000_000,
             duration_ns=5_000_000, attributes=genai_chat_attributes(input_tokens=100 * (i + 1), output_tokens=10))
        for i in range(4)
    ]
    children[3] = span(trace_id, children[3].span_id, "tool", parent_id=root_id, start_ns=start + 30_000_000,
                       duration_ns=5_000_000, error="tool failed")
    root = span(trace_id, root_id, "agent run", start_ns=start - 1_000_000, duration_ns=60_000_000,
                attributes={"user.id": "u-9", "tag.tags": ["beta", "otlp"]}, error="gave up")

    # Children first (as a BatchSpanProcessor sends them: the root ends last), in two batches.
    _post(client, request(*children[:2]).SerializeToString())
    [partial] = stored_traces(db_url)
    assert (partial["span_count"], partial["input_tokens"], partial["status"]) == (2, 300, "ok")
    assert partial["name"] == "chat 0"  # provisional, until the root arrives
    _post(client, request(*children[2:]).SerializeToString())
    [partial] = stored_traces(db_url)
    assert (partial["span_count"], partial["error_count"], partial["status"]) == (4, 1, "error")
    _post(client, request(root).SerializeToString())

    [trace] = stored_traces(db_url)
    single = 100 * 0.15e-6 + 10 * 0.6e-6
    assert trace["name"] == "agent run" and trace["user_id"] == "u-9"
    assert (trace["status"], trace["error"]) == ("error", "gave up")
    assert (trace["span_count"], trace["error_count"]) == (5, 2)
    assert (trace["input_tokens"], trace["output_tokens"]) == (600, 30)
    assert trace["cost_usd"] == pytest.approx(single * 3 + 300 * 0.15e-6)
    assert trace["duration_ms"] == pytest.approx(60.0)
    assert trace["tags_json"] == ["beta", "otlp"]
    # A later batch naming no user keeps the trace's user; a retry changes nothing.
    _post(client, request(root, children[0]).SerializeToString())
    assert stored_traces(db_url) == [trace]


def test_concurrent_batches_of_one_trace_lose_no_span(db_url: str) -> None:
    get_engine(db_url)
    trace_id, start = new_trace_id(), time.time_ns()
    root_id = new_span_id()
    batches = [
        [span(trace_id, new_span_id(), f"step {b}.{i}", parent_id=root_id, start_ns=start + b * 1000 + i,
              attributes=genai_chat_attributes(input_tokens=1, output_tokens=1)) for i in range(25)]
        for b in range(8)
    ]
    batches[3].append(span(trace_id, root_id, "root", start_ns=start - 1, duration_ns=10_000_000))
    errors: list[Exception] = []

    def send(batch: list) -> None:
        try:
            export(db_url, request(*batch).SerializeToString(), PROTOBUF, False)
        except Exception as err:  # noqa: BLE001 - reported below, not lost in the thread
            errors.append(err)

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [trace] = stored_traces(db_url)
    assert (trace["span_count"], trace["input_tokens"], trace["output_tokens"], trace["name"]) == (201, 200, 200, "root")


def test_a_trace_searched_before_its_root_arrived_is_found_by_the_root_s_words(client: TestClient, db_url: str) -> None:
    from looplab.explorer.traces import list_traces
    from looplab.store.filters import TraceFilter

    trace_id, start = new_trace_id(), time.time_ns()
    root_id = new_span_id()
    child = span(trace_id, new_span_id(), "chat", parent_id=root_id, start_ns=start, duration_ns=5_000_000,
                 attributes=genai_chat_attributes())
    root = span(trace_id, root_id, "support turn", start_ns=start - 1_000_000, duration_ns=20_000_000,
                attributes={"openinference.span.kind": "CHAIN", "input.value": "Where is the kangaroo parcel?",
                            "output.value": "It left the depot."})
    everything = TraceFilter(start=None, end=None)

    _post(client, request(child).SerializeToString())
    assert list_traces(db_url, everything, search="kangaroo").rows == []  # searched (and indexed) without its root
    _post(client, request(root).SerializeToString())
    found = list_traces(db_url, everything, search="kangaroo").rows
    assert [row.id for row in found] == [trace_id.hex()]


def test_an_export_naming_more_traces_than_sqlite_binds_at_once_is_stored_whole(db_url: str) -> None:
    # Stock SQLite binds at most 32,766 values in one statement (999 before 3.32; this machine's
    # build allows 250,000), and one export of a few MB can name more traces than that: the
    # limit is lowered to 999 here so that a modest export crosses it.
    engine = get_engine(db_url)
    if engine.dialect.name == "sqlite":
        engine.dispose()
        event.listen(engine, "connect", lambda dbapi, _record: dbapi.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
    start = time.time_ns()
    spans = [span(new_trace_id(), new_span_id(), "step", start_ns=start + i, attributes={"tag.tags": ["bulk"]})
             for i in range(1_200)]
    body = request(*spans).SerializeToString()
    first = export(db_url, body, PROTOBUF, gzipped=False)
    again = export(db_url, body, PROTOBUF, gzipped=False)  # an exporter's retry: every trace is stored already
    assert (first.stored, first.rejected, again.stored, again.rejected) == (1_200, 0, 1_200, 0)
    with engine.connect() as conn:
        counts = conn.exec_driver_sql(
            "SELECT count(*), sum(span_count), min(span_count), max(span_count) FROM traces").one()
        tagged = conn.exec_driver_sql("SELECT count(*) FROM trace_tags WHERE tag = 'bulk'").scalar_one()
    assert tuple(counts) == (1_200, 1_200, 1, 1) and tagged == 1_200


def test_a_late_export_into_a_closed_day_changes_that_days_model_breakdown(client: TestClient, db_url: str) -> None:
    from datetime import datetime, timedelta, timezone

    from looplab.monitoring import metrics
    from looplab.store.filters import TraceFilter

    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    window = TraceFilter(start=midnight - timedelta(days=3), end=midnight)  # three closed days
    first = midnight - timedelta(days=2, hours=12)
    _post(client, request(*_chat_trace(start=int(first.timestamp() * 1e9))).SerializeToString())
    assert [(r["key"], r["requests"]) for r in metrics.breakdown(db_url, window, "model")] == [("gpt-4o-mini", 1)]

    late = midnight - timedelta(days=1, hours=5)  # another closed day, already summed up
    _post(client, request(*_chat_trace(start=int(late.timestamp() * 1e9))).SerializeToString())
    assert [(r["key"], r["requests"]) for r in metrics.breakdown(db_url, window, "model")] == [("gpt-4o-mini", 2)]
    assert [(r["key"], r["requests"]) for r in metrics.breakdown(db_url, window, "name")] == [("answer question", 2)]
