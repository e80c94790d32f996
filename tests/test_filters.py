"""The shared trace filter: which traces it selects, and its round trip through a URL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from looplab.errors import ConfigError
from looplab.store.engine import read_session
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces
from looplab.store.models import Trace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _trace(trace_id: str, hours_ago: float, **fields) -> dict:
    start = NOW - timedelta(hours=hours_ago)
    model = fields.pop("model", "gpt-4o-mini")
    provider = fields.pop("provider", "openai")
    return {
        "trace_id": trace_id, "name": fields.pop("name", "support-chat"), "start_time": start,
        "end_time": start + timedelta(seconds=1), **fields,
        "spans": [{"span_id": f"{trace_id}-llm", "kind": "llm", "name": "chat", "model": model,
                   "provider": provider, "start_time": start, "end_time": start + timedelta(seconds=1)}],
    }


@pytest.fixture
def history(db_url: str) -> str:
    insert_traces(db_url, [
        _trace("a", 0.5, user_id="u1", tags=["beta"], release="v1"),
        _trace("b", 2, name="refund", user_id="u2", status="error", release="v2", environment="staging"),
        _trace("c", 30, model="claude-sonnet-4-6", provider="anthropic", session_id="s1", tags=["vip", "beta"]),
        _trace("d", 24 * 10, user_id="u1"),
    ])
    return db_url


def selected(url: str, flt: TraceFilter) -> set[str]:
    with read_session(url) as session:
        return set(session.scalars(select(Trace.id).where(*flt.conditions())))


@pytest.mark.parametrize(("flt", "expected"), [
    (TraceFilter.last("1h", NOW), {"a"}),
    (TraceFilter.last("24h", NOW), {"a", "b"}),
    (TraceFilter.last("7d", NOW), {"a", "b", "c"}),
    (TraceFilter.last("30d", NOW), {"a", "b", "c", "d"}),
    (TraceFilter.last("30d", NOW, names=["refund"]), {"b"}),
    (TraceFilter.last("30d", NOW, user_ids=["u1"]), {"a", "d"}),
    (TraceFilter.last("30d", NOW, tags=["beta"]), {"a", "c"}),
    (TraceFilter.last("30d", NOW, tags=["vip", "beta"]), {"a", "c"}),
    (TraceFilter.last("30d", NOW, models=["claude-sonnet-4-6"]), {"c"}),
    (TraceFilter.last("30d", NOW, providers=["openai"]), {"a", "b", "d"}),
    (TraceFilter.last("30d", NOW, statuses=["error"]), {"b"}),
    (TraceFilter.last("30d", NOW, releases=["v1", "v2"]), {"a", "b"}),
    (TraceFilter.last("30d", NOW, environments=["staging"]), {"b"}),
    (TraceFilter.last("30d", NOW, session_ids=["s1"]), {"c"}),
    (TraceFilter.last("30d", NOW, user_ids=["u1"], tags=["beta"]), {"a"}),
])
def test_a_filter_selects_exactly_the_traces_it_names(history: str, flt: TraceFilter, expected: set[str]) -> None:
    assert selected(history, flt) == expected


def test_the_previous_period_is_the_window_of_the_same_length_before(history: str) -> None:
    day = TraceFilter.last("24h", NOW)
    before = day.previous_period()
    assert before.end == day.start and before.span == timedelta(hours=24)
    assert selected(history, before) == {"c"}


def test_a_filter_survives_the_round_trip_through_the_url() -> None:
    flt = TraceFilter.last("24h", NOW, names=["support-chat", "refund"], tags=["beta"], statuses=["error"])
    params = flt.to_query_params()
    assert params == {"range": "24h", "name": ["support-chat", "refund"], "tag": ["beta"], "status": ["error"]}
    assert TraceFilter.from_query_params(params, NOW) == flt

    custom = TraceFilter(start=NOW - timedelta(days=3), end=NOW, user_ids=("u1",))
    back = TraceFilter.from_query_params(custom.to_query_params(), NOW)
    assert (back.start, back.end, back.user_ids) == (custom.start, custom.end, ("u1",))


def test_a_url_without_a_window_means_the_last_seven_days() -> None:
    flt = TraceFilter.from_query_params({}, NOW)
    assert (flt.range_key, flt.start, flt.end) == ("7d", NOW - timedelta(days=7), NOW)


@pytest.mark.parametrize(("params", "message"), [
    ({"range": "2y"}, "Unknown time range"),
    ({"from": "yesterday-ish"}, "is not a time"),
    ({"from": "2026-11-20", "to": "2026-11-10"}, "starts after it ends"),
])
def test_an_unreadable_url_filter_says_what_was_wrong(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TraceFilter.from_query_params(params, NOW)
