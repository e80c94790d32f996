"""The trace explorer's services on real databases: paging, sorting, filters, search (FTS5 on
SQLite, substring on PostgreSQL), trace detail with its span tree, span payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, text

from looplab.errors import ConfigError
from looplab.explorer import (
    SORT_KEYS,
    list_traces,
    search_index_available,
    span_payload,
    span_tree,
    trace_detail,
    update_search_index,
)
from looplab.store.engine import get_engine, write_session
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces
from looplab.store.models import Span, Trace, TraceTag

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EVERYTHING = TraceFilter()


def make_trace(trace_id: str, minute: int, **fields: Any) -> dict[str, Any]:
    start = T0 + timedelta(minutes=minute)
    trace = {
        "trace_id": trace_id, "name": "chat", "start_time": start, "end_time": start + timedelta(seconds=1),
        "input": {"question": f"question of {trace_id}"}, "output": f"answer of {trace_id}", "spans": [],
    }
    trace.update(fields)
    return trace


def ids(page: Any) -> list[str]:
    return [row.id for row in page.rows]


def delete_trace(url: str, trace_id: str) -> None:
    with write_session(url) as session:
        session.execute(delete(Span).where(Span.trace_id == trace_id))
        session.execute(delete(TraceTag).where(TraceTag.trace_id == trace_id))
        session.execute(delete(Trace).where(Trace.id == trace_id))


# --- listing -------------------------------------------------------------------------------------


def test_pages_newest_first_with_total(db_url: str) -> None:
    insert_traces(db_url, [make_trace(f"t{i}", i) for i in range(7)])
    first = list_traces(db_url, EVERYTHING, page_size=3)
    assert ids(first) == ["t6", "t5", "t4"]
    assert (first.total, first.total_exact, first.page_count) == (7, True, 3)
    assert first.has_next and not first.has_previous and (first.first_index, first.last_index) == (1, 3)
    assert ids(list_traces(db_url, EVERYTHING, page=2, page_size=3)) == ["t3", "t2", "t1"]
    last = list_traces(db_url, EVERYTHING, page=3, page_size=3)
    assert ids(last) == ["t0"] and not last.has_next and last.has_previous
    assert ids(list_traces(db_url, EVERYTHING, page=9, page_size=3)) == []
    assert ids(list_traces(db_url, EVERYTHING, descending=False, page_size=3)) == ["t0", "t1", "t2"]


def test_the_count_stops_at_its_limit(db_url: str) -> None:
    insert_traces(db_url, [make_trace(f"t{i}", i) for i in range(5)])
    page = list_traces(db_url, EVERYTHING, page_size=2, count_limit=3)
    assert (page.total, page.total_exact) == (3, False)
    assert page.has_next
    assert ids(list_traces(db_url, EVERYTHING, page=3, page_size=2, count_limit=3)) == ["t0"]


def test_ties_keep_a_stable_order_across_pages(db_url: str) -> None:
    insert_traces(db_url, [make_trace(f"t{i}", 0, name="same") for i in range(6)])
    seen = []
    for page in (1, 2, 3):
        seen += ids(list_traces(db_url, EVERYTHING, sort="name", page=page, page_size=2))
    assert sorted(seen) == [f"t{i}" for i in range(6)]


def test_rows_carry_what_the_list_shows(db_url: str) -> None:
    insert_traces(db_url, [make_trace(
        "t1", 0, user_id="u1", session_id="s1", release="v2", environment="prod", tags=["beta", "vip"],
        status="error", error="Boom", input=[{"role": "system", "content": "Be nice."},
                                             {"role": "user", "content": "Where is my\nrefund?"}],
        output={"role": "assistant", "content": "It was sent on Monday."},
        spans=[{"span_id": "s1", "kind": "llm", "name": "gpt", "start_time": T0, "input_tokens": 10,
                "output_tokens": 5, "cost_usd": 0.25}],
        scores=[{"name": "helpful", "value": 1.0}, {"name": "helpful", "value": 0.0, "label": "no"},
                {"name": "tone", "label": "polite"}],
    )])
    [row] = list_traces(db_url, EVERYTHING).rows
    assert (row.user_id, row.session_id, row.release, row.environment, row.status, row.error) == (
        "u1", "s1", "v2", "prod", "error", "Boom")
    assert row.tags == ("beta", "vip")
    assert (row.span_count, row.input_tokens, row.output_tokens, row.total_tokens, row.cost_usd) == (1, 10, 5, 15, 0.25)
    assert row.duration_ms == pytest.approx(1000)
    assert row.input_preview == "Where is my refund?"
    assert row.output_preview == "It was sent on Monday."
    helpful, tone = row.scores
    assert (helpful.name, helpful.count, helpful.mean, helpful.label) == ("helpful", 2, 0.5, "no")
    assert (tone.name, tone.count, tone.mean, tone.label) == ("tone", 1, None, "polite")


def test_previews_of_huge_payloads_show_the_last_question(db_url: str) -> None:
    history = [{"role": "system", "content": "rules " * 20_000}]
    history += [{"role": "user", "content": "first question"}, {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": "the latest question"}]
    insert_traces(db_url, [make_trace("t1", 0, input=history, output="x" * 100_000)])
    [row] = list_traces(db_url, EVERYTHING).rows
    assert row.input_preview == "the latest question"
    assert row.output_preview == "x" * 199 + "…"


@pytest.mark.parametrize("sort", SORT_KEYS)
def test_every_sort_key_orders_and_puts_missing_values_last(db_url: str, sort: str) -> None:
    rows = {
        # id: (minute, duration s, cost, input tokens, output tokens, name, status)
        "a": (0, 3, 0.30, 100, 1, "beta", "ok"),
        "b": (1, 1, 0.10, 5, 5, "alpha", "error"),
        "c": (2, 2, None, None, None, None, "ok"),
        "d": (3, 4, 0.20, None, 50, "gamma", "ok"),
    }
    traces = []
    for trace_id, (minute, seconds, cost, tokens_in, tokens_out, name, status) in rows.items():
        trace = make_trace(trace_id, minute, name=name, status=status, cost_usd=cost, input_tokens=tokens_in,
                           output_tokens=tokens_out)
        trace["end_time"] = trace["start_time"] + timedelta(seconds=seconds)
        traces.append(trace)
    insert_traces(db_url, traces)
    expected = {
        "start_time": ["d", "c", "b", "a"],
        "duration_ms": ["d", "a", "c", "b"],
        "cost_usd": ["a", "d", "b", "c"],
        "total_tokens": ["a", "d", "b", "c"],
        "name": ["d", "a", "b", "c"],
        "status": ["d", "c", "a", "b"],
    }[sort]
    assert ids(list_traces(db_url, EVERYTHING, sort=sort)) == expected
    ascending = ids(list_traces(db_url, EVERYTHING, sort=sort, descending=False))
    if sort in ("cost_usd", "total_tokens", "name"):  # "c" has none: last either way
        assert ascending == [*reversed(expected[:3]), "c"]
    elif sort == "status":
        assert ascending == ["b", "a", "c", "d"]
    else:
        assert ascending == list(reversed(expected))


@pytest.mark.parametrize("kwargs", [{"sort": "input_json"}, {"sort": "id; drop table traces"}, {"page": 0},
                                    {"page_size": 0}, {"page_size": 100_000}])
def test_bad_sort_or_page_is_a_config_error(db_url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        list_traces(db_url, EVERYTHING, **kwargs)


def test_filters_apply(db_url: str) -> None:
    insert_traces(db_url, [
        make_trace("old", -60 * 24 * 10),
        make_trace("a", 0, name="chat", user_id="u1", tags=["vip"], status="error",
                   spans=[{"span_id": "s", "kind": "llm", "name": "x", "start_time": T0, "model": "gpt-4o",
                           "provider": "openai"}]),
        make_trace("b", 1, name="summarize", user_id="u2", tags=["beta"],
                   spans=[{"span_id": "s", "kind": "llm", "name": "x", "start_time": T0, "model": "claude",
                           "provider": "anthropic"}]),
        make_trace("c", 2, name="chat", user_id="u2"),
    ])
    week = TraceFilter.last("7d", now=T0 + timedelta(hours=1))
    assert ids(list_traces(db_url, week)) == ["c", "b", "a"]
    assert ids(list_traces(db_url, TraceFilter.last("7d", now=T0 + timedelta(hours=1), names=["chat"]))) == ["c", "a"]
    assert ids(list_traces(db_url, TraceFilter(tags=("vip",)))) == ["a"]
    assert ids(list_traces(db_url, TraceFilter(models=("claude",)))) == ["b"]
    assert ids(list_traces(db_url, TraceFilter(providers=("openai",)), sort="duration_ms")) == ["a"]
    assert ids(list_traces(db_url, TraceFilter(user_ids=("u2",), statuses=("ok",)), sort="cost_usd")) == ["c", "b"]
    assert ids(list_traces(db_url, TraceFilter(statuses=("error",)))) == ["a"]


def test_many_matching_traces_sorted_by_each_key(db_url: str) -> None:
    """Past a few thousand matches SQLite walks the sort's index: same answers as a small page."""
    traces = [make_trace(f"t{i:05d}", i % 600, name=f"n{i % 7}", cost_usd=(i * 37 % 1000) / 1000,
                         input_tokens=i % 97, output_tokens=i % 13, status="error" if i % 11 == 0 else "ok",
                         user_id=f"u{i % 3}") for i in range(6000)]
    insert_traces(db_url, traces)
    flt = TraceFilter(start=T0 - timedelta(days=1), end=T0 + timedelta(days=1), user_ids=("u0", "u1"))
    kept = [t for t in traces if t["user_id"] in ("u0", "u1")]

    def key(trace: dict[str, Any], sort: str) -> Any:
        if sort == "total_tokens":
            return trace["input_tokens"] + trace["output_tokens"]
        if sort == "duration_ms":
            return 1000.0
        return trace[sort]

    for sort in ("cost_usd", "total_tokens", "name"):
        page = list_traces(db_url, flt, sort=sort, page=3, page_size=20)
        assert page.total == 4000
        expected = sorted((key(t, sort) for t in kept), reverse=True)[40:60]
        assert [key(next(t for t in kept if t["trace_id"] == r.id), sort) for r in page.rows] == expected


# --- search --------------------------------------------------------------------------------------


def search_traces() -> list[dict[str, Any]]:
    return [
        make_trace("refund", 0, input=[{"role": "user", "content": "Where is my refund?"}],
                   output={"role": "assistant", "content": "Your money was returned on Monday."}),
        make_trace("weather", 1, input={"question": "Weather in Zürich tomorrow?"},
                   output="Expect heavy rain and 9 degrees."),
        make_trace("crash", 2, input="upload my file", output=None, status="error",
                   error="ValueError: unsupported codec"),
    ]


def test_search_finds_words_in_inputs_outputs_and_errors(db_url: str) -> None:
    insert_traces(db_url, search_traces())
    expected_mode = "fts" if db_url.startswith("sqlite") else "substring"
    page = list_traces(db_url, EVERYTHING, search="rain")
    assert ids(page) == ["weather"] and page.search_mode == expected_mode and page.search == "rain"
    assert ids(list_traces(db_url, EVERYTHING, search="REFUND")) == ["refund"]  # any case, in the input
    assert ids(list_traces(db_url, EVERYTHING, search="Monday returned")) == ["refund"]  # every word, any order
    assert ids(list_traces(db_url, EVERYTHING, search='"heavy rain"')) == ["weather"]
    assert ids(list_traces(db_url, EVERYTHING, search='"rain heavy"')) == []
    assert ids(list_traces(db_url, EVERYTHING, search="codec")) == ["crash"]  # the error
    assert ids(list_traces(db_url, EVERYTHING, search="retur")) == ["refund"]  # the start of a word
    assert ids(list_traces(db_url, EVERYTHING, search="rain nothing")) == []
    assert list_traces(db_url, EVERYTHING, search="   ").search is None
    assert ids(list_traces(db_url, EVERYTHING, search="rain", sort="cost_usd", descending=False)) == ["weather"]


def test_search_combines_with_filters_and_pages(db_url: str) -> None:
    insert_traces(db_url, [make_trace(f"t{i}", i, name="a" if i % 2 else "b", output=f"common word {i}")
                           for i in range(9)])
    page = list_traces(db_url, TraceFilter(names=("a",)), search="common", page_size=2)
    assert ids(page) == ["t7", "t5"] and page.total == 4
    assert ids(list_traces(db_url, TraceFilter(names=("a",)), search="common", page=2, page_size=2)) == ["t3", "t1"]
    window = TraceFilter(start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=5))
    assert ids(list_traces(db_url, window, search="common")) == ["t4", "t3", "t2"]


def test_a_new_trace_becomes_searchable(db_url: str) -> None:
    insert_traces(db_url, search_traces())
    assert ids(list_traces(db_url, EVERYTHING, search="pineapple")) == []
    insert_traces(db_url, [make_trace("fruit", 5, output="A pineapple pizza.")])
    assert ids(list_traces(db_url, EVERYTHING, search="pineapple")) == ["fruit"]


def test_a_deleted_trace_is_never_returned(db_url: str) -> None:
    insert_traces(db_url, search_traces())
    assert ids(list_traces(db_url, EVERYTHING, search="rain")) == ["weather"]
    delete_trace(db_url, "weather")
    assert ids(list_traces(db_url, EVERYTHING, search="rain")) == []
    delete_trace(db_url, "refund")  # the oldest
    delete_trace(db_url, "crash")  # the newest
    assert ids(list_traces(db_url, EVERYTHING, search="refund")) == []
    assert ids(list_traces(db_url, EVERYTHING, search="codec")) == []


@pytest.mark.parametrize("search", [
    '"', '""', "'", "a'b", 'say "hi', "*", "rain*", "^rain", "NEAR(rain heavy)", "rain OR snow", "rain AND",
    "NOT rain", "-rain", "(rain", "rain)", "col:rain", "input:rain", "%", "_", "100%", "a_b", "\\", "%_\\",
    "{}", "[]", "\x00", "😀", "Zürich", "ZURICH", "drop table traces; --", "x" * 5000,
])
def test_any_search_text_is_safe(db_url: str, search: str) -> None:
    insert_traces(db_url, search_traces())
    page = list_traces(db_url, EVERYTHING, search=search)
    assert set(ids(page)) <= {"refund", "weather", "crash"}


def test_special_characters_are_searched_literally(db_url: str) -> None:
    insert_traces(db_url, [make_trace("pct", 0, output="a 100% match"), make_trace("plain", 1, output="1000 matches")])
    assert ids(list_traces(db_url, EVERYTHING, search="100%")) in (["pct"], ["plain", "pct"])
    if db_url.startswith("postgresql"):  # substring search: % is a character, not a wildcard
        assert ids(list_traces(db_url, EVERYTHING, search="100%")) == ["pct"]
    assert ids(list_traces(db_url, EVERYTHING, search="Zürich")) == []


# --- SQLite's full-text index ---------------------------------------------------------------------


def test_sqlite_search_also_reads_llm_answers_and_span_errors(sqlite_url: str) -> None:
    insert_traces(sqlite_url, [make_trace("agent", 0, spans=[
        {"span_id": "l", "kind": "llm", "name": "gpt", "start_time": T0,
         "input": [{"role": "system", "content": "secret system prompt"}],
         "output": {"role": "assistant", "content": None,
                    "tool_calls": [{"id": "c", "name": "lookup_invoice", "arguments": '{"number": "INV-77"}'}]}},
        {"span_id": "t", "parent_id": "l", "kind": "tool", "name": "lookup_invoice", "start_time": T0,
         "status": "error", "error": "LedgerTimeout after 30s"},
    ])])
    assert search_index_available(sqlite_url)
    assert ids(list_traces(sqlite_url, EVERYTHING, search="lookup_invoice")) == ["agent"]
    assert ids(list_traces(sqlite_url, EVERYTHING, search="INV-77")) == ["agent"]
    assert ids(list_traces(sqlite_url, EVERYTHING, search="ledgertimeout")) == ["agent"]
    assert ids(list_traces(sqlite_url, EVERYTHING, search="secret")) == []  # LLM inputs are not indexed
    assert ids(list_traces(sqlite_url, EVERYTHING, search="assistant")) == []  # roles and keys are not text


def test_sqlite_index_catches_up_once_and_drops_the_oldest(sqlite_url: str) -> None:
    insert_traces(sqlite_url, [make_trace(f"t{i}", i) for i in range(1200)])
    assert update_search_index(sqlite_url) == 1200  # three chunks
    assert update_search_index(sqlite_url) == 0
    for i in range(5):
        delete_trace(sqlite_url, f"t{i}")
    assert update_search_index(sqlite_url) == 0
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM trace_search")).scalar() == 1195
    assert ids(list_traces(sqlite_url, EVERYTHING, search="t3")) == []


def test_sqlite_reused_rowids_are_reindexed(sqlite_url: str) -> None:
    insert_traces(sqlite_url, [make_trace("a", 0, output="apple"), make_trace("b", 1, output="banana")])
    assert ids(list_traces(sqlite_url, EVERYTHING, search="banana")) == ["b"]
    delete_trace(sqlite_url, "b")  # the newest: SQLite hands its rowid to the next trace
    insert_traces(sqlite_url, [make_trace("c", 2, output="cherry")])
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(text("SELECT id FROM traces ORDER BY rowid DESC LIMIT 1")).scalar() == "c"
        assert conn.execute(text("SELECT max(rowid) FROM traces")).scalar() == 2
    assert ids(list_traces(sqlite_url, EVERYTHING, search="banana")) == []
    assert ids(list_traces(sqlite_url, EVERYTHING, search="cherry")) == ["c"]
    assert ids(list_traces(sqlite_url, EVERYTHING, search="apple")) == ["a"]


def test_sqlite_search_in_a_wide_window(sqlite_url: str) -> None:
    """Past 10,000 traces in the window the search reads the index first (few matches) or walks
    the traces testing each (many): the same answers as in a narrow window."""
    traces = []
    for i in range(10_100):
        trace = make_trace(f"t{i:05d}", 0, output=f"alpha {'beta' if i % 500 == 0 else ''} n{i}",
                           cost_usd=(i * 7919 % 10_000) / 10_000)
        trace["start_time"] += timedelta(seconds=i)
        traces.append(trace)
    insert_traces(sqlite_url, traces)
    newest_first = [t["trace_id"] for t in reversed(traces)]
    page = list_traces(sqlite_url, EVERYTHING, search="alpha", page=3, page_size=20)
    assert (page.total, page.total_exact) == (1000, False)
    assert ids(page) == newest_first[40:60]
    rare = list_traces(sqlite_url, EVERYTHING, search="beta")
    assert (rare.total, rare.total_exact) == (21, True)
    assert ids(rare) == [t for t in newest_first if int(t[1:]) % 500 == 0]
    cheapest = sorted(traces, key=lambda t: t["cost_usd"])
    page = list_traces(sqlite_url, EVERYTHING, search="alpha", sort="cost_usd", descending=False, page_size=10)
    assert ids(page) == [t["trace_id"] for t in cheapest[:10]]
    narrow = TraceFilter(start=T0 + timedelta(seconds=100), end=T0 + timedelta(seconds=200))
    assert ids(list_traces(sqlite_url, narrow, search="alpha", page_size=5)) == newest_first[-200:-195]


def test_sqlite_without_the_index_searches_by_substring(sqlite_url: str) -> None:
    insert_traces(sqlite_url, search_traces())
    with get_engine(sqlite_url).begin() as conn:  # as a SQLite built without FTS5 migrates it
        conn.execute(text("DROP TABLE trace_search"))
    assert not search_index_available(sqlite_url)
    assert update_search_index(sqlite_url) == 0
    page = list_traces(sqlite_url, EVERYTHING, search="rain")
    assert ids(page) == ["weather"] and page.search_mode == "substring"


# --- one trace -----------------------------------------------------------------------------------


def tree_trace() -> dict[str, Any]:
    def span(span_id: str, parent: str | None, ms: int, **fields: Any) -> dict[str, Any]:
        start = T0 + timedelta(milliseconds=ms)
        return {"span_id": span_id, "parent_id": parent, "kind": "span", "name": span_id, "start_time": start,
                "end_time": start + timedelta(milliseconds=100), **fields}

    return make_trace("tree", 0, metadata={"team": "search"}, spans=[
        span("root", None, 0),
        span("llm", "root", 10, kind="llm", model="gpt-4o", provider="openai", input_tokens=12, output_tokens=3,
             cost_usd=0.01, ttft_ms=42.0, input=[{"role": "user", "content": "hi"}],
             output={"role": "assistant", "content": "hello"}, params={"temperature": 0}),
        span("tool", "llm", 20, kind="tool", status="error", error="Timeout", input={"q": 1}),
        span("second", "root", 30, kind="retrieval", output=[{"text": "doc"}]),
        span("orphan", "missing-parent", 5),
    ], scores=[{"name": "correct", "value": 1, "comment": "fine", "author": "ann"},
               {"name": "tool-ok", "value": 0, "span_id": "tool"}])


def test_detail_has_the_tree_the_waterfall_and_the_scores(db_url: str) -> None:
    insert_traces(db_url, [tree_trace()])
    detail = trace_detail(db_url, "tree")
    assert detail is not None
    assert [(s.id, s.depth, s.orphan, s.child_count) for s in detail.spans] == [
        ("root", 0, False, 2), ("llm", 1, False, 1), ("tool", 2, False, 0), ("second", 1, False, 0),
        ("orphan", 0, True, 0)]
    assert detail.span_count == 5 and not detail.has_more_spans
    llm = detail.spans[1]
    assert (llm.kind, llm.model, llm.provider, llm.input_tokens, llm.output_tokens, llm.cost_usd, llm.ttft_ms) == (
        "llm", "gpt-4o", "openai", 12, 3, 0.01, 42.0)
    assert (llm.start_ms, llm.end_ms, llm.duration_ms) == (pytest.approx(10), pytest.approx(110), pytest.approx(100))
    assert (detail.spans[2].status, detail.spans[2].error) == ("error", "Timeout")
    assert detail.trace.id == "tree" and detail.metadata == {"team": "search"}
    assert detail.input == {"question": "question of tree"} and detail.output == "answer of tree"
    assert detail.trace.input_preview == "question of tree"
    assert sorted((s.name, s.value, s.span_id) for s in detail.scores) == [("correct", 1.0, None),
                                                                          ("tool-ok", 0.0, "tool")]
    assert detail.payloads == {}


def test_span_payloads_load_one_at_a_time_or_with_the_page(db_url: str) -> None:
    insert_traces(db_url, [tree_trace()])
    payload = span_payload(db_url, "tree", "llm")
    assert payload is not None
    assert payload.input == [{"role": "user", "content": "hi"}]
    assert payload.output == {"role": "assistant", "content": "hello"}
    assert payload.params == {"temperature": 0}
    assert span_payload(db_url, "tree", "nope") is None
    assert span_payload(db_url, "nope", "llm") is None
    detail = trace_detail(db_url, "tree", with_payloads=True)
    assert detail is not None and detail.payloads["second"].output == [{"text": "doc"}]


def test_missing_trace_is_none(db_url: str) -> None:
    assert trace_detail(db_url, "nope") is None
    insert_traces(db_url, [make_trace("empty", 0)])
    detail = trace_detail(db_url, "empty")
    assert detail is not None and detail.spans == [] and detail.span_count == 0


def test_a_trace_of_ten_thousand_spans_opens_in_pages(db_url: str) -> None:
    spans = [{"span_id": "s00000", "parent_id": None, "kind": "span", "name": "agent", "start_time": T0}]
    for i in range(1, 10_000):
        parent = f"s{(i - 1) // 3:05d}"  # a ternary tree
        spans.append({"span_id": f"s{i:05d}", "parent_id": parent, "kind": "llm" if i % 2 else "tool",
                      "name": f"step {i}", "start_time": T0 + timedelta(milliseconds=i),
                      "input": {"n": i}, "output": {"text": "x" * 200}})
    insert_traces(db_url, [make_trace("big", 0, spans=spans)])
    first = trace_detail(db_url, "big", span_limit=3000)
    assert first is not None and first.span_count == 10_000 and len(first.spans) == 3000 and first.has_more_spans
    seen = list(first.spans)
    offset = 3000
    while offset < 10_000:
        detail = trace_detail(db_url, "big", span_offset=offset, span_limit=3000)
        assert detail is not None
        seen += detail.spans
        offset += 3000
    assert len(seen) == 10_000 and len({s.id for s in seen}) == 10_000
    depth = {s.id: s.depth for s in seen}
    position = {s.id: i for i, s in enumerate(seen)}
    for span in seen[1:]:
        assert depth[span.id] == depth[span.parent_id] + 1
        assert position[span.parent_id] < position[span.id]
    assert max(depth.values()) == 9  # 1 + 3 + ... + 3**8 = 9841 spans fill depths 0 to 8
    assert trace_detail(db_url, "big", span_offset=20_000).spans == []
    with pytest.raises(ConfigError):
        trace_detail(db_url, "big", span_limit=0)


def test_span_tree_orders_children_under_parents() -> None:
    nodes = span_tree([("a", None), ("b", "a"), ("x", "gone"), ("c", "a"), ("d", "b"), ("e", None)])
    assert [(n.id, n.depth, n.orphan, n.child_count) for n in nodes] == [
        ("a", 0, False, 2), ("b", 1, False, 1), ("d", 2, False, 0), ("c", 1, False, 0), ("x", 0, True, 0),
        ("e", 0, False, 0)]
    assert [n.index for n in nodes] == [0, 1, 4, 3, 2, 5]


def test_span_tree_survives_cycles_and_self_parents() -> None:
    nodes = span_tree([("a", "b"), ("b", "a"), ("s", "s"), ("r", None), ("k", "a")])
    assert sorted(n.id for n in nodes) == ["a", "b", "k", "r", "s"]
    by_id = {n.id: n for n in nodes}
    assert by_id["s"].depth == 0 and by_id["s"].orphan
    assert by_id["r"].depth == 0 and not by_id["r"].orphan
    assert by_id["k"].depth == by_id["a"].depth + 1
    assert span_tree([]) == []


def test_detail_payloads_round_trip_as_json(db_url: str) -> None:
    weird = {"text": "quotes \" and \\ backslashes", "emoji": "😀", "nested": [None, True, 1.5]}
    insert_traces(db_url, [make_trace("w", 0, input=weird, output=[1, "two"])])
    detail = trace_detail(db_url, "w")
    assert detail is not None and detail.input == weird and detail.output == [1, "two"]
    assert json.dumps(detail.input)  # plain JSON data
