"""trace() and observe(): nesting, sync/async/generators, sampling, and results left untouched."""

from __future__ import annotations

import asyncio
import threading

import pytest

import looplab
from looplab.config import Settings
from looplab.tracing import runtime
from tests.stored import stored_scores, stored_spans, stored_traces


def by_name(spans: list[dict]) -> dict[str, dict]:
    return {s["name"]: s for s in spans}


def test_observe_bare_and_called_keep_function_identity(traced: str) -> None:
    @looplab.observe
    def plain(x: int) -> int:
        """Doubles."""
        return x * 2

    @looplab.observe(kind="tool", name="calculator")
    def tool(a: int, b: int = 1) -> int:
        return a + b

    assert plain.__name__ == "plain" and plain.__doc__ == "Doubles."
    assert plain(2) == 4 and tool(1, b=5) == 6
    assert looplab.flush()
    spans = by_name(stored_spans(traced))
    assert spans["test_observe_bare_and_called_keep_function_identity.<locals>.plain"]["input_json"] == {"x": 2}
    assert spans["calculator"]["kind"] == "tool"
    assert spans["calculator"]["input_json"] == {"a": 1, "b": 5}
    assert spans["calculator"]["output_json"] == 6
    assert len(stored_traces(traced)) == 2  # each top-level call is a trace of its own


def test_nested_observed_functions_form_a_tree(traced: str) -> None:
    @looplab.observe(kind="retrieval", name="retrieve")
    def retrieve(q: str) -> list[str]:
        return [q.upper()]

    @looplab.observe(name="answer")
    def answer(q: str) -> str:
        return retrieve(q)[0] + "!"

    assert answer("hi") == "HI!"
    assert looplab.flush()
    spans = by_name(stored_spans(traced))
    assert spans["retrieve"]["parent_id"] == spans["answer"]["id"]
    assert spans["retrieve"]["trace_id"] == spans["answer"]["trace_id"]
    [trace] = stored_traces(traced)
    assert trace["name"] == "answer" and trace["output_json"] == "HI!" and trace["span_count"] == 2


def test_exceptions_propagate_unchanged_and_are_recorded(traced: str) -> None:
    class Boom(Exception):
        pass

    error = Boom("tool timed out")

    @looplab.observe(kind="tool", name="flaky")
    def flaky() -> None:
        raise error

    with pytest.raises(Boom) as caught:
        with looplab.trace("request"):
            flaky()
    assert caught.value is error
    assert looplab.flush()
    spans = by_name(stored_spans(traced))
    assert spans["flaky"]["status"] == "error" and spans["flaky"]["error"] == "Boom: tool timed out"
    [trace] = stored_traces(traced)
    assert trace["status"] == "error" and trace["error_count"] == 2


def test_async_functions_and_concurrent_tasks_keep_their_own_parents(traced: str) -> None:
    @looplab.observe(name="step")
    async def step(i: int) -> int:
        await asyncio.sleep(0.01)
        return i

    async def request(i: int) -> str | None:
        async with looplab.trace(f"req-{i}") as t:
            await asyncio.gather(step(i), step(i + 100))
            return t.trace_id

    async def main() -> list[str | None]:
        return await asyncio.gather(*(request(i) for i in range(5)))

    trace_ids = asyncio.run(main())
    assert looplab.flush()
    for trace_id in trace_ids:
        spans = stored_spans(traced, trace_id)
        root = [s for s in spans if s["parent_id"] is None][0]
        children = [s for s in spans if s["parent_id"] == root["id"]]
        assert len(spans) == 3 and len(children) == 2


def test_threads_do_not_share_the_active_trace(traced: str) -> None:
    ids: list[str | None] = []

    def worker() -> None:
        with looplab.trace("thread-request"):
            ids.append(looplab.current_trace_id())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert looplab.current_trace_id() is None
    assert len(set(ids)) == 4
    assert looplab.flush()
    assert len(stored_traces(traced)) == 4


def test_generators_sync_and_async(traced: str) -> None:
    @looplab.observe(name="tokens")
    def tokens(n: int):
        for i in range(n):
            yield f"t{i} "

    @looplab.observe(name="atokens")
    async def atokens(n: int):
        for i in range(n):
            yield i

    assert list(tokens(3)) == ["t0 ", "t1 ", "t2 "]

    async def consume() -> list[int]:
        return [i async for i in atokens(3)]

    assert asyncio.run(consume()) == [0, 1, 2]
    assert looplab.flush()
    spans = by_name(stored_spans(traced))
    assert spans["tokens"]["output_json"] == "t0 t1 t2 "
    assert spans["atokens"]["output_json"] == [0, 1, 2]


def test_generator_stopped_early_is_recorded_as_ok(traced: str) -> None:
    @looplab.observe(name="endless")
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    for value in endless():
        if value == 2:
            break
    assert looplab.flush()
    [span] = stored_spans(traced)
    assert span["status"] == "ok" and span["output_json"] == [0, 1, 2]


def test_spans_inside_a_generator_are_its_children(traced: str) -> None:
    @looplab.observe(name="inner")
    def inner() -> int:
        return 1

    @looplab.observe(name="outer")
    def outer():
        yield inner()
        yield inner()

    list(outer())
    assert looplab.flush()
    spans = stored_spans(traced)
    outer_span = by_name(spans)["outer"]
    assert [s["parent_id"] for s in spans if s["name"] == "inner"] == [outer_span["id"]] * 2


def test_trace_handle_update_and_current_ids(traced: str) -> None:
    with looplab.trace("chat", input={"question": "hi"}, release="v2", environment="prod") as t:
        assert looplab.current_trace_id() == t.trace_id
        t.update(output={"answer": "hello"}, metadata={"ticket": 42})
    assert looplab.current_trace_id() is None
    assert looplab.flush()
    [trace] = stored_traces(traced)
    assert trace["input_json"] == {"question": "hi"} and trace["output_json"] == {"answer": "hello"}
    assert (trace["release"], trace["environment"], trace["metadata_json"]) == ("v2", "prod", {"ticket": 42})


def test_release_and_environment_default_from_settings(db_url: str) -> None:
    runtime.install(Settings(database_url=db_url, release="2026.11.1", environment="staging", flush_interval=0.02))
    with looplab.trace("t"):
        pass
    assert looplab.flush()
    [trace] = stored_traces(db_url)
    assert (trace["release"], trace["environment"]) == ("2026.11.1", "staging")


def test_sampling_keeps_whole_traces_or_nothing(db_url: str) -> None:
    runtime.install(Settings(database_url=db_url, sample_rate=0.5, flush_interval=0.02))

    @looplab.observe(name="child")
    def child() -> None:
        pass

    for _ in range(200):
        with looplab.trace("sampled"):
            child()
            child()
    assert looplab.flush()
    traces = stored_traces(db_url)
    spans = stored_spans(db_url)
    assert 40 < len(traces) < 160
    assert len(spans) == 3 * len(traces)  # no orphan child spans of unsampled traces
    assert {s["trace_id"] for s in spans} == {t["id"] for t in traces}


def test_disabled_tracing_records_nothing_and_changes_nothing(db_url: str) -> None:
    runtime.install(Settings(database_url=db_url, enabled=False))

    @looplab.observe
    def f(x: int) -> int:
        return x + 1

    with looplab.trace("t") as t:
        assert f(1) == 2
    assert t.trace_id is None
    assert looplab.score("any", "thumbs", 1) is None
    assert looplab.flush()
    assert looplab.stats()["written"] == 0


def test_score_is_written_and_validated(traced: str) -> None:
    with looplab.trace("chat") as t:
        pass
    assert t.trace_id
    looplab.score(t.trace_id, "thumbs", True, source="user_feedback", comment="great")
    looplab.score(t.trace_id, "category", label="billing", source="human", author="ana")
    with pytest.raises(ValueError, match="source must be one of"):
        looplab.score(t.trace_id, "x", 1, source="robot")
    with pytest.raises(ValueError, match="value, a label"):
        looplab.score(t.trace_id, "x")
    assert looplab.flush()
    scores = {s["name"]: s for s in stored_scores(traced)}
    assert scores["thumbs"]["value"] == 1.0 and scores["thumbs"]["source"] == "user_feedback"
    assert scores["thumbs"]["comment"] == "great" and scores["thumbs"]["trace_id"] == t.trace_id
    assert scores["category"]["label"] == "billing" and scores["category"]["author"] == "ana"


def test_redact_hook_masks_inputs_and_outputs(db_url: str) -> None:
    def redact(value):
        return value.replace("alice@example.com", "<email>") if isinstance(value, str) else value

    runtime.install(Settings(database_url=db_url, redact=redact, flush_interval=0.02))

    @looplab.observe(name="echo")
    def echo(text: str) -> str:
        return text

    assert echo("mail alice@example.com") == "mail alice@example.com"
    assert looplab.flush()
    [span] = stored_spans(db_url)
    assert span["output_json"] == "mail <email>"
    assert span["input_json"] == {"text": "mail alice@example.com"}  # dicts are the hook's to walk


def test_values_under_secret_named_keys_are_masked_whatever_their_case(traced: str) -> None:
    @looplab.observe(name="login")
    def login(form: dict) -> dict:
        return {"user": form["user"], "settings": {"Client_Secret": "plain words", "theme": "dark"}}

    login({"user": "ana", "PassWord": "hunter2", "nested": [{"API-KEY": "abc123"}]})
    assert looplab.flush()
    [span] = stored_spans(traced)
    assert span["input_json"] == {"form": {"user": "ana", "PassWord": "[REDACTED]", "nested": [{"API-KEY": "[REDACTED]"}]}}
    assert span["output_json"] == {"user": "ana", "settings": {"Client_Secret": "[REDACTED]", "theme": "dark"}}


def test_failing_redact_hook_stores_no_payload(db_url: str) -> None:
    def redact(value):
        raise RuntimeError("bug in user redaction")

    runtime.install(Settings(database_url=db_url, redact=redact, flush_interval=0.02))

    @looplab.observe(name="echo")
    def echo(text: str) -> str:
        return text

    assert echo("secret stuff") == "secret stuff"
    assert looplab.flush()
    [span] = stored_spans(db_url)
    assert span["output_json"] == "[redaction failed]" and "secret" not in str(span["input_json"])
    assert looplab.stats()["redaction_failures"] == 2


def test_unserialisable_and_huge_payloads_are_stored_safely(traced: str) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    @looplab.observe(name="odd")
    def odd(obj: object, blob: bytes, big: str) -> dict:
        return {"nan": float("nan"), "set": {1}, "obj": obj}

    odd(Opaque(), b"\x00\x01", "x" * 300_000)
    assert looplab.flush()
    [span] = stored_spans(traced)
    assert span["input_json"]["obj"] == "<Opaque>" and span["input_json"]["blob"] == "<2 bytes>"
    assert len(span["input_json"]["big"]) < 201_000 and "truncated" in span["input_json"]["big"]
    assert span["output_json"] == {"nan": None, "set": [1], "obj": "<Opaque>"}
