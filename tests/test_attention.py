"""Needs attention: each rule kind surfaces exactly its traces with the reason why, rules are
checked when saved, and the default rules are created once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from looplab.errors import ConfigError, NotFound
from looplab.monitoring import attention
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces
from tests.test_monitoring import score, trace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
DAY = TraceFilter.last("24h", NOW)


def at(minutes_ago: int) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


@pytest.fixture
def history(db_url: str) -> str:
    """Twelve ordinary traces (1-2 s, $0.01) and one of each kind of trouble, newest first by id."""
    normal = [trace(f"n{i:02d}", at(200 + i), 1000 + 100 * i, cost=0.01) for i in range(12)]
    failed_span = trace("span-failed", at(60), 1500, error=None)
    failed_span["spans"].append({"span_id": "tool", "kind": "tool", "name": "lookup_order", "start_time": at(60),
                                 "end_time": at(60) + timedelta(milliseconds=5), "status": "error",
                                 "error": "KeyError: 'order_id'\nTraceback ..."})
    insert_traces(db_url, [
        *normal,
        trace("failed", at(10), 800, status="error", error="RateLimitError 429\nretry after 20 s"),
        failed_span,
        trace("slow", at(20), 12_300),
        trace("thumbs-down", at(30), 1200,
              scores=(score("thumbs", 0, "user_feedback", comment="wrong answer"),)),
        trace("thumbs-up", at(31), 1200, scores=(score("thumbs", 1, "user_feedback"),)),
        trace("judged-low", at(40), 1300, scores=(score("correctness", 0.2, "llm_judge"),)),
        trace("human-low", at(41), 1300, scores=(score("correctness", 0.3, "human", author="ana"),)),
        trace("judged-fine", at(42), 1300, scores=(score("correctness", 0.9, "llm_judge"),)),
        trace("costly", at(50), 1400, cost=0.25),
        trace("yesterday", NOW - timedelta(hours=30), 60_000, status="error", error="old"),
    ])
    return db_url


def surfaced(url: str, flt: TraceFilter = DAY) -> dict[str, list[str]]:
    return {item["trace_id"]: item["reasons"] for item in attention.attention_items(url, flt)}


@pytest.mark.parametrize(("kind", "params", "expected"), [
    ("error", {}, {"failed": ["error: RateLimitError 429"],
                   "span-failed": ["error in span lookup_order: KeyError: 'order_id'"]}),
    ("latency_above", {"threshold_ms": 5000}, {"slow": ["latency 12.3 s over 5 s"]}),
    # 21 traces today; nearest-rank p95 is the 20th fastest (2.1 s): only the slow one is above it.
    ("latency_p95", {}, {"slow": ["latency 12.3 s above the period's p95 (2.1 s)"]}),
    ("negative_feedback", {}, {"thumbs-down": ["thumbs down from user: 'wrong answer'"]}),
    ("low_score", {"score_name": "correctness", "below": 0.5},
     {"judged-low": ["correctness 0.2 under 0.5 from LLM judge"], "human-low": ["correctness 0.3 under 0.5 from ana"]}),
    ("low_score", {"score_name": "correctness", "below": 0.5, "sources": ["llm_judge"]},
     {"judged-low": ["correctness 0.2 under 0.5 from LLM judge"]}),
    ("cost_outlier", {"factor": 5}, {"costly": ["cost $0.25, 25.0x the period's median ($0.01)"]}),
    ("cost_outlier", {"factor": 2, "baseline": "p95"}, {"costly": ["cost $0.25, 25.0x the period's p95 ($0.01)"]}),
])
def test_each_rule_kind_surfaces_exactly_its_traces_with_the_reason(history: str, kind: str, params: dict,
                                                                    expected: dict) -> None:
    attention.create_rule(history, f"only {kind}", kind, params)
    assert surfaced(history) == expected
    assert attention.attention_count(history, DAY) == len(expected)


def test_latency_p95_compares_with_the_filtered_period(history: str) -> None:
    attention.create_rule(history, "slowest", "latency_p95")
    # Over the 24 hours, p95 is the second slowest of 21 (2.1 s): only "slow" is above it.
    assert list(surfaced(history)) == ["slow"]
    # Over the last 15 minutes there is one trace, which is its own p95: nothing is above it.
    assert surfaced(history, TraceFilter(start=at(15), end=NOW)) == {}


def test_one_row_per_trace_newest_first_with_every_reason(history: str) -> None:
    attention.create_rule(history, "errors", "error")
    attention.create_rule(history, "slow", "latency_above", {"threshold_ms": 700})
    attention.create_rule(history, "thumbs", "negative_feedback", {"score_name": "thumbs"})
    items = attention.attention_items(history, DAY)
    ids = [i["trace_id"] for i in items]
    assert len(ids) == len(set(ids))
    assert [i["start_time"] for i in items] == sorted((i["start_time"] for i in items), reverse=True)
    failed = items[0]
    assert failed["trace_id"] == "failed"
    assert failed["reasons"] == ["error: RateLimitError 429", "latency 800 ms over 700 ms"]
    assert failed["rules"] == ["errors", "slow"]
    assert failed | {"reasons": None, "rules": None} == {
        "trace_id": "failed", "name": "support-chat", "start_time": at(10), "user_id": "u1", "session_id": None,
        "duration_ms": pytest.approx(800), "cost_usd": pytest.approx(0.01), "status": "error",
        "reasons": None, "rules": None,
    }
    down = next(i for i in items if i["trace_id"] == "thumbs-down")
    assert down["reasons"] == ["latency 1.2 s over 700 ms", "thumbs down from user: 'wrong answer'"]
    assert attention.attention_count(history, DAY) == len(items) == 21  # every trace of today is over 700 ms
    page = attention.attention_items(history, DAY, limit=3, offset=2)
    assert [i["trace_id"] for i in page] == ids[2:5]
    assert "yesterday" not in ids


def test_only_enabled_rules_surface_and_the_filter_applies(history: str) -> None:
    errors = attention.create_rule(history, "errors", "error")
    slow = attention.create_rule(history, "slow", "latency_above", {"threshold_ms": 5000}, enabled=False)
    assert set(surfaced(history)) == {"failed", "span-failed"}
    attention.update_rule(history, errors["id"], enabled=False)
    assert surfaced(history) == {} and attention.attention_count(history, DAY) == 0
    attention.update_rule(history, slow["id"], enabled=True)
    assert set(surfaced(history)) == {"slow"}
    assert set(surfaced(history, TraceFilter.last("7d", NOW))) == {"slow", "yesterday"}
    assert surfaced(history, TraceFilter.last("7d", NOW, names=["nothing-like-this"])) == {}


def test_no_rules_no_attention(history: str) -> None:
    assert attention.attention_items(history, DAY) == [] and attention.attention_count(history, DAY) == 0


# --- Rules: storage and checks ---------------------------------------------------------------------


def test_rules_are_created_listed_updated_and_deleted(db_url: str) -> None:
    rule = attention.create_rule(db_url, "Slow", "latency_above", {"threshold_ms": 5000})
    assert rule | {"id": None, "created_at": None, "updated_at": None} == {
        "id": None, "name": "Slow", "kind": "latency_above", "params": {"threshold_ms": 5000.0}, "enabled": True,
        "description": "Traces slower than 5 s", "created_at": None, "updated_at": None,
    }
    feedback = attention.create_rule(db_url, "Feedback", "negative_feedback")
    assert feedback["params"] == {"score_name": "thumbs", "max_value": 0.0, "sources": []}
    assert [r["name"] for r in attention.list_rules(db_url)] == ["Slow", "Feedback"]

    changed = attention.update_rule(db_url, rule["id"], name="Very slow", params={"threshold_ms": 30_000},
                                    enabled=False)
    assert (changed["name"], changed["params"], changed["enabled"]) == ("Very slow", {"threshold_ms": 30000.0}, False)
    assert changed["updated_at"] >= rule["updated_at"] and changed["created_at"] == rule["created_at"]
    kind_changed = attention.update_rule(db_url, rule["id"], kind="low_score",
                                         params={"score_name": "correctness", "below": 0.5})
    assert kind_changed["description"] == "correctness under 0.5"
    attention.delete_rule(db_url, rule["id"])
    assert [r["name"] for r in attention.list_rules(db_url)] == ["Feedback"]
    with pytest.raises(NotFound):
        attention.delete_rule(db_url, rule["id"])
    with pytest.raises(NotFound):
        attention.update_rule(db_url, rule["id"], enabled=True)


@pytest.mark.parametrize(("name", "kind", "params", "message"), [
    ("x", "slowness", {}, "Unknown rule kind 'slowness'; use one of error, latency_above"),
    ("x", "latency_above", {}, "needs threshold_ms"),
    ("x", "latency_above", {"threshold_ms": -5}, "threshold_ms above 0, not -5"),
    ("x", "latency_above", {"threshold_ms": 0}, "threshold_ms above 0"),
    ("x", "latency_above", {"threshold_ms": "fast"}, "threshold_ms as a number"),
    ("x", "latency_above", {"threshold_ms": True}, "threshold_ms as a number"),
    ("x", "latency_above", {"threshold": 5}, "no parameter threshold; it takes threshold_ms"),
    ("x", "error", {"threshold_ms": 5}, "it takes none"),
    ("x", "low_score", {"below": 0.5}, "needs score_name"),
    ("x", "low_score", {"score_name": "correctness"}, "needs below"),
    ("x", "low_score", {"score_name": "c", "below": 1, "sources": ["robot"]}, "sources must be among human"),
    ("x", "cost_outlier", {}, "needs factor"),
    ("x", "cost_outlier", {"factor": -2}, "factor above 0"),
    ("x", "cost_outlier", {"factor": 2, "baseline": "mean"}, "baseline is one of median, p95"),
    ("  ", "error", {}, "needs a name"),
])
def test_invalid_rules_are_refused_with_a_clear_message(db_url: str, name: str, kind: str, params: dict,
                                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        attention.create_rule(db_url, name, kind, params)
    assert attention.list_rules(db_url) == []


def test_rule_names_are_unique(db_url: str) -> None:
    first = attention.create_rule(db_url, "Errors", "error")
    with pytest.raises(ConfigError, match="A rule named 'errors' already exists"):
        attention.create_rule(db_url, "errors", "error")
    other = attention.create_rule(db_url, "Other", "error")
    with pytest.raises(ConfigError, match="already exists"):
        attention.update_rule(db_url, other["id"], name="Errors")
    with pytest.raises(ConfigError, match="no field colour"):
        attention.update_rule(db_url, first["id"], colour="red")
    with pytest.raises(ConfigError, match="needs its params"):
        attention.update_rule(db_url, first["id"], kind="latency_above")
    assert attention.update_rule(db_url, first["id"], name="Errors")["name"] == "Errors"  # its own name is fine


def test_default_rules_are_created_once(db_url: str) -> None:
    created = attention.ensure_default_rules(db_url)
    assert {r["kind"] for r in created} >= {"error", "latency_above", "negative_feedback", "cost_outlier"}
    assert attention.ensure_default_rules(db_url) == []
    first = created[0]
    attention.update_rule(db_url, first["id"], enabled=False)
    assert attention.ensure_default_rules(db_url) == []
    assert [(r["name"], r["enabled"]) for r in attention.list_rules(db_url)][0] == (first["name"], False)
    assert len(attention.list_rules(db_url)) == len(attention.DEFAULT_RULES)


@pytest.mark.parametrize("listed_from", [0.0, 2.0])  # always a list of ids; never (probes per trace)
def test_score_rules_match_the_same_traces_as_a_list_or_as_probes(history: str, monkeypatch: pytest.MonkeyPatch,
                                                                  listed_from: float) -> None:
    monkeypatch.setattr(attention, "_LISTED", listed_from)
    attention.create_rule(history, "thumbs", "negative_feedback", {"score_name": "thumbs"})
    attention.create_rule(history, "low", "low_score", {"score_name": "correctness", "below": 0.5,
                                                         "sources": ["human"]})
    assert set(surfaced(history)) == {"thumbs-down", "human-low"}
    assert attention.attention_count(history, DAY) == 2
    assert attention.attention_count(history, TraceFilter(start=at(35), end=NOW)) == 1
