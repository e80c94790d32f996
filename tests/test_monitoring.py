"""Monitoring metrics on real databases: percentiles equal Python's on known values, buckets are
continuous, every filter changes what is counted, the previous period compares, breakdowns group."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from looplab.errors import ConfigError
from looplab.monitoring import metrics
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def nearest_rank(values: list[float], p: int) -> float:
    """Python's own nearest-rank percentile: the value of rank ceil(p/100 * n)."""
    ordered = sorted(values)
    return ordered[-(-p * len(ordered) // 100) - 1]


def trace(trace_id: str, at: datetime, ms: float | None, *, name: str = "support-chat", user: str | None = "u1",
          status: str = "ok", model: str = "gpt-4o-mini", provider: str = "openai", llm_ms: float | None = None,
          ttft: float | None = None, cost: float = 0.01, tokens: tuple[int, int] = (100, 20),
          tags: tuple[str, ...] = (), release: str | None = "v1", environment: str = "production",
          scores: tuple[dict, ...] = (), session: str | None = None, error: str | None = None) -> dict:
    """A trace of one LLM span (same start; ``llm_ms`` long, the trace's length by default)."""
    llm_ms = ms if llm_ms is None else llm_ms
    return {
        "trace_id": trace_id, "name": name, "start_time": at,
        "end_time": None if ms is None else at + timedelta(milliseconds=ms),
        "user_id": user, "session_id": session, "status": status, "error": error, "tags": list(tags),
        "release": release, "environment": environment, "scores": list(scores),
        "spans": [{
            "span_id": f"{trace_id}-llm", "kind": "llm", "name": "chat", "model": model, "provider": provider,
            "start_time": at, "end_time": None if llm_ms is None else at + timedelta(milliseconds=llm_ms),
            "ttft_ms": ttft, "cost_usd": cost, "input_tokens": tokens[0], "output_tokens": tokens[1],
            "status": status,
        }],
    }


def score(name: str, value: float | None, source: str = "llm_judge", **fields) -> dict:
    return {"name": name, "value": value, "source": source, **fields}


# --- Buckets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("range_key", "size", "points"), [
    ("1h", timedelta(minutes=1), 60), ("24h", timedelta(minutes=15), 96), ("7d", timedelta(hours=3), 56),
    ("30d", timedelta(days=1), 31),  # noon to noon: two half days at the ends
])
def test_the_bucket_follows_the_window(range_key: str, size: timedelta, points: int) -> None:
    flt = TraceFilter.last(range_key, NOW)
    assert metrics.bucket_for(flt) == size
    assert len(metrics.bucket_starts(flt.start, flt.end, size)) == points
    assert metrics.bucket_for(TraceFilter()) == timedelta(days=1)


def test_buckets_are_aligned_to_utc_and_continuous() -> None:
    start, end = datetime(2026, 11, 24, 10, 7, 30, tzinfo=timezone.utc), datetime(2026, 11, 24, 12, 1, tzinfo=timezone.utc)
    starts = metrics.bucket_starts(start, end, timedelta(minutes=15))
    assert starts[0] == datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    assert starts[-1] == datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    assert all(b - a == timedelta(minutes=15) for a, b in zip(starts, starts[1:]))
    days = metrics.bucket_starts(start, start + timedelta(days=3), timedelta(days=1))
    assert [d.hour for d in days] == [0, 0, 0, 0] and days[0].day == 24
    weeks = metrics.bucket_starts(start, start + timedelta(days=20), timedelta(days=7))
    assert {w.weekday() for w in weeks} == {0}  # Mondays


# --- Time series ---------------------------------------------------------------------------------


@pytest.fixture
def hours(db_url: str) -> dict:
    """Four hours before NOW: random latencies in the 1st and 4th hour, nothing in the 2nd, one trace in the 3rd."""
    rng = random.Random(11)
    expected: dict[int, dict] = {}
    traces = []
    for hour, count in ((0, 37), (2, 1), (3, 60)):
        start = NOW - 4 * HOUR + hour * HOUR
        rows = []
        for i in range(count):
            ms = float(rng.randint(20, 9000)) if i % 9 != 8 else None  # every 9th trace has not ended
            status = "error" if i % 7 == 3 else "ok"
            rows.append((ms, status, 0.001 * (i + 1), (10 + i, 2 * i)))
            traces.append(trace(f"h{hour}-{i:03d}", start + timedelta(seconds=50 * i), ms, status=status,
                                cost=0.001 * (i + 1), tokens=(10 + i, 2 * i), llm_ms=5))
        expected[hour] = {
            "requests": count, "errors": sum(s == "error" for _, s, _, _ in rows),
            "durations": [ms for ms, _, _, _ in rows if ms is not None],
            "cost": sum(c for _, _, c, _ in rows), "input": sum(t[0] for *_, t in rows),
            "output": sum(t[1] for *_, t in rows),
        }
    insert_traces(db_url, traces)
    return expected


def test_timeseries_counts_and_percentiles_equal_pythons(db_url: str, hours: dict) -> None:
    flt = TraceFilter(start=NOW - 4 * HOUR, end=NOW)
    rows = metrics.timeseries(db_url, flt, bucket=HOUR)
    assert [r["bucket"] for r in rows] == [NOW - 4 * HOUR + i * HOUR for i in range(4)]
    for hour, row in enumerate(rows):
        if hour not in hours:
            assert row == {"bucket": NOW - 3 * HOUR, "requests": 0, "errors": 0, "error_rate": None,
                           "latency_p50_ms": None, "latency_p95_ms": None, "latency_p99_ms": None,
                           "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
            continue
        want = hours[hour]
        assert row["requests"] == want["requests"] and row["errors"] == want["errors"]
        assert row["error_rate"] == pytest.approx(want["errors"] / want["requests"])
        for p in (50, 95, 99):
            assert row[f"latency_p{p}_ms"] == pytest.approx(nearest_rank(want["durations"], p)), (hour, p)
        assert (row["input_tokens"], row["output_tokens"]) == (want["input"], want["output"])
        assert row["cost_usd"] == pytest.approx(want["cost"])
        assert isinstance(row["bucket"], datetime) and row["bucket"].tzinfo is not None


def test_a_trace_alone_in_its_bucket_is_every_percentile(db_url: str, hours: dict) -> None:
    row = metrics.timeseries(db_url, TraceFilter(start=NOW - 2 * HOUR, end=NOW - HOUR), bucket=HOUR)[0]
    value = hours[2]["durations"][0]
    assert row["requests"] == 1
    assert row["latency_p50_ms"] == row["latency_p95_ms"] == row["latency_p99_ms"] == pytest.approx(value)


def test_default_buckets_cover_the_window_without_gaps(db_url: str, hours: dict) -> None:
    rows = metrics.timeseries(db_url, TraceFilter.last("24h", NOW))
    assert len(rows) == 96
    assert all(b["bucket"] - a["bucket"] == timedelta(minutes=15) for a, b in zip(rows, rows[1:]))
    assert sum(r["requests"] for r in rows) == 98
    assert rows[0]["bucket"] == NOW - 24 * HOUR and rows[-1]["bucket"] == NOW - timedelta(minutes=15)


def test_a_partial_first_bucket_counts_only_the_window(db_url: str) -> None:
    insert_traces(db_url, [trace("early", NOW - 70 * timedelta(minutes=1), 10),
                           trace("inside", NOW - 50 * timedelta(minutes=1), 10)])
    rows = metrics.timeseries(db_url, TraceFilter(start=NOW - timedelta(minutes=55), end=NOW), bucket=HOUR)
    assert [(r["bucket"], r["requests"]) for r in rows] == [(NOW - HOUR, 1)]


# --- Filters ----------------------------------------------------------------------------------------


@pytest.fixture
def varied(db_url: str) -> str:
    at = NOW - 2 * HOUR
    insert_traces(db_url, [
        trace("a", at, 100, name="support-chat", user="u1", tags=("beta",), release="v1"),
        trace("b", at + timedelta(minutes=1), 200, name="refund", user="u2", status="error", release="v2",
              environment="staging", model="claude-sonnet-4", provider="anthropic"),
        trace("c", at + timedelta(minutes=2), 300, name="support-chat", user="u2", tags=("beta", "vip"),
              model="claude-sonnet-4", provider="anthropic", session="s1"),
        trace("d", at + timedelta(minutes=3), 400, name="refund", user="u3", release=None),
        trace("old", NOW - 48 * HOUR, 500, name="legacy", user="u9", release="v0", tags=("ancient",)),
    ])
    return db_url


@pytest.mark.parametrize(("lists", "expected"), [
    ({}, {100, 200, 300, 400}),
    ({"names": ["refund"]}, {200, 400}),
    ({"models": ["claude-sonnet-4"]}, {200, 300}),
    ({"providers": ["openai"]}, {100, 400}),
    ({"tags": ["beta"]}, {100, 300}),
    ({"tags": ["vip"]}, {300}),
    ({"user_ids": ["u2"]}, {200, 300}),
    ({"statuses": ["error"]}, {200}),
    ({"statuses": ["ok"]}, {100, 300, 400}),
    ({"releases": ["v1"]}, {100, 300}),
    ({"environments": ["staging"]}, {200}),
    ({"session_ids": ["s1"]}, {300}),
    ({"names": ["support-chat"], "tags": ["beta"], "user_ids": ["u1"]}, {100}),
])
def test_every_filter_changes_what_is_counted(varied: str, lists: dict, expected: set[float]) -> None:
    flt = TraceFilter.last("24h", NOW, **lists)
    rows = metrics.timeseries(varied, flt)
    assert sum(r["requests"] for r in rows) == len(expected)
    busy = [r for r in rows if r["requests"]]
    assert len(busy) == 1 and busy[0]["latency_p99_ms"] == pytest.approx(max(expected))
    assert busy[0]["latency_p50_ms"] == pytest.approx(nearest_rank(sorted(expected), 50))
    assert metrics.summary(varied, flt)["kpis"]["requests"]["value"] == len(expected)
    assert sum(r["llm_calls"] for r in metrics.ttft_timeseries(varied, flt)) == len(expected)
    for by in ("name", "user"):
        assert sum(r["requests"] for r in metrics.breakdown(varied, flt, by)) == len(expected), by


# --- Time to first token ----------------------------------------------------------------------------


def test_ttft_percentiles_cover_llm_spans_only(db_url: str) -> None:
    rng = random.Random(5)
    at = NOW - HOUR
    traces = []
    ttfts = {"gpt-4o-mini": [], "claude-sonnet-4": []}
    for i in range(41):
        model = "claude-sonnet-4" if i % 3 == 0 else "gpt-4o-mini"
        ttft = float(rng.randint(50, 3000)) if i % 10 else None  # some calls record no first token
        if ttft is not None:
            ttfts[model].append(ttft)
        t = trace(f"t{i:02d}", at + timedelta(seconds=60 * i), 4000, model=model, ttft=ttft)
        # A tool span with a ttft must not count: only LLM spans have a first token.
        t["spans"].append({"span_id": f"t{i:02d}-tool", "kind": "tool", "name": "lookup", "start_time": at,
                           "end_time": at + timedelta(milliseconds=5), "ttft_ms": 1.0})
        traces.append(t)
    insert_traces(db_url, traces)
    flt = TraceFilter(start=at, end=NOW)
    [row] = metrics.ttft_timeseries(db_url, flt, bucket=HOUR)
    both = ttfts["gpt-4o-mini"] + ttfts["claude-sonnet-4"]
    assert row["llm_calls"] == 41
    assert (row["ttft_p50_ms"], row["ttft_p95_ms"]) == (nearest_rank(both, 50), nearest_rank(both, 95))
    [claude] = metrics.ttft_timeseries(db_url, TraceFilter(start=at, end=NOW, models=("claude-sonnet-4",)), HOUR)
    assert claude["llm_calls"] == 14
    assert claude["ttft_p95_ms"] == nearest_rank(ttfts["claude-sonnet-4"], 95)
    empty = metrics.ttft_timeseries(db_url, TraceFilter(start=at - HOUR, end=at), bucket=HOUR)
    assert empty == [{"bucket": at - HOUR, "llm_calls": 0, "ttft_p50_ms": None, "ttft_p95_ms": None}]


# --- Scores -----------------------------------------------------------------------------------------


def test_score_series_per_name_and_source(db_url: str) -> None:
    first, third = NOW - 3 * HOUR, NOW - HOUR
    insert_traces(db_url, [
        trace("s1", first, 10, scores=(score("correctness", 0.2), score("correctness", 1.0, "human"),
                                       score("thumbs", 1, "user_feedback"))),
        trace("s2", first + timedelta(minutes=5), 10, scores=(score("correctness", 0.6),
                                                             score("tone", None, "human", label="rude"))),
        trace("s3", third, 10, scores=(score("correctness", 0.9), score("thumbs", 0, "user_feedback"),
                                       score("valid_json", 1, "code"))),
        trace("s4", third, 10, name="other", scores=(score("correctness", 0.1),)),
        # Scored days later, still counted at its trace's time.
        trace("s5", third + timedelta(minutes=1), 10,
              scores=(score("correctness", 0.3, created_at=NOW + 72 * HOUR),)),
    ])
    flt = TraceFilter(start=NOW - 3 * HOUR, end=NOW)
    rows = metrics.score_timeseries(db_url, flt, bucket=HOUR)
    cells = {(r["series"], r["bucket"]): (r["mean"], r["count"]) for r in rows}
    assert {r["series"] for r in rows} == {"correctness (LLM judge)", "correctness (human)", "thumbs (user)",
                                           "valid_json (code)"}
    assert len(rows) == 4 * 3  # every series in every bucket
    assert cells["correctness (LLM judge)", first] == (pytest.approx(0.4), 2)
    assert cells["correctness (LLM judge)", first + HOUR] == (None, 0)
    assert cells["correctness (LLM judge)", third] == (pytest.approx((0.9 + 0.1 + 0.3) / 3), 3)
    assert cells["correctness (human)", first] == (pytest.approx(1.0), 1)
    assert cells["thumbs (user)", first] == (pytest.approx(1.0), 1)
    assert cells["thumbs (user)", third] == (pytest.approx(0.0), 1)
    assert cells["valid_json (code)", third] == (pytest.approx(1.0), 1)
    assert {(r["name"], r["source"]) for r in rows if r["series"] == "thumbs (user)"} == {("thumbs", "user_feedback")}
    named = metrics.score_timeseries(db_url, TraceFilter(start=NOW - 3 * HOUR, end=NOW, names=("other",)), HOUR)
    assert [(r["series"], r["mean"]) for r in named if r["count"]] == [("correctness (LLM judge)", pytest.approx(0.1))]


# --- Summary ----------------------------------------------------------------------------------------


def test_summary_compares_with_the_previous_period(db_url: str) -> None:
    day = 24 * HOUR
    current = [trace(f"c{i}", NOW - day + i * HOUR, 100.0 * (i + 1), cost=0.02, tokens=(10, 5),
                     status="error" if i < 2 else "ok",
                     scores=(score("correctness", 0.5 + 0.1 * (i % 2)),)) for i in range(10)]
    previous = [trace(f"p{i}", NOW - 2 * day + i * HOUR, 50.0 * (i + 1), cost=0.01, tokens=(10, 5),
                      scores=(score("correctness", 0.5),)) for i in range(5)]
    insert_traces(db_url, current + previous)
    result = metrics.summary(db_url, TraceFilter.last("24h", NOW))
    kpis = result["kpis"]
    assert set(kpis) == set(metrics.KPIS)
    assert result["start"] == NOW - day and result["previous_start"] == NOW - 2 * day
    assert result["previous_end"] == NOW - day
    assert kpis["requests"] == {"value": 10, "previous": 5, "change": 5, "change_pct": pytest.approx(1.0)}
    assert kpis["errors"] == {"value": 2, "previous": 0, "change": 2, "change_pct": None}  # nothing to compare with
    assert kpis["error_rate"]["value"] == pytest.approx(0.2) and kpis["error_rate"]["previous"] == 0
    durations = [100.0 * (i + 1) for i in range(10)]
    assert kpis["latency_p50_ms"]["value"] == nearest_rank(durations, 50) == 500
    assert kpis["latency_p95_ms"]["value"] == nearest_rank(durations, 95) == 1000
    assert kpis["latency_p95_ms"]["previous"] == 250
    assert kpis["latency_p95_ms"]["change_pct"] == pytest.approx(3.0)
    assert kpis["cost_usd"]["value"] == pytest.approx(0.2)
    assert kpis["cost_usd"]["change"] == pytest.approx(0.15)
    assert kpis["total_tokens"]["value"] == 150 and kpis["input_tokens"]["previous"] == 50
    [correctness] = result["scores"]
    assert correctness["name"] == "correctness" and correctness["source"] == "llm_judge"
    assert correctness["mean"] == pytest.approx(0.55) and correctness["count"] == 10
    assert correctness["previous"] == pytest.approx(0.5) and correctness["previous_count"] == 5
    assert correctness["change"] == pytest.approx(0.05) and correctness["change_pct"] == pytest.approx(0.1)

    alone = metrics.summary(db_url, TraceFilter.last("24h", NOW), compare=False)
    assert alone["previous_start"] is None and alone["kpis"]["requests"]["previous"] is None
    assert alone["kpis"]["requests"]["change"] is None
    empty = metrics.summary(db_url, TraceFilter.last("24h", NOW - 10 * day))["kpis"]
    assert empty["requests"]["value"] == 0 and empty["error_rate"]["value"] is None
    assert empty["latency_p95_ms"]["value"] is None and empty["requests"]["change_pct"] is None


# --- Breakdowns ---------------------------------------------------------------------------------------


@pytest.fixture
def mixed(db_url: str) -> dict:
    rng = random.Random(23)
    at = NOW - 10 * HOUR
    plan = {"support-chat": 30, "refund": 12, "search": 5}
    traces, truth = [], {}
    n = 0
    for name, count in plan.items():
        for i in range(count):
            ms, llm = float(rng.randint(100, 5000)), float(rng.randint(50, 3000))
            model = ("gpt-4o", "claude-sonnet-4", "gpt-4o-mini")[n % 3]
            release = None if n % 5 == 0 else f"v{n % 2}"
            failed = n % 6 == 0
            judged = 0.1 * (n % 10)
            traces.append(trace(f"m{n:03d}", at + timedelta(minutes=10 * n), ms, name=name, user=f"u{n % 4}",
                                model=model, llm_ms=llm, cost=0.001 * n, tokens=(n, 1), release=release,
                                status="error" if failed else "ok", scores=(score("correctness", judged),)))
            truth[f"m{n:03d}"] = {"name": name, "ms": ms, "llm": llm, "model": model, "release": release,
                                  "user": f"u{n % 4}", "failed": failed, "cost": 0.001 * n, "tokens": n,
                                  "score": judged}
            n += 1
    insert_traces(db_url, traces)
    return truth


def _expected_groups(truth: dict, key: str, latency: str) -> dict:
    groups: dict = {}
    for t in truth.values():
        g = groups.setdefault(t[key], {"n": 0, "errors": 0, "ms": [], "cost": 0.0, "tokens": 0, "scores": []})
        g["n"] += 1
        g["errors"] += t["failed"]
        g["ms"].append(t[latency])
        g["cost"] += t["cost"]
        g["tokens"] += t["tokens"]
        g["scores"].append(t["score"])
    return groups


@pytest.mark.parametrize(("by", "key", "latency"), [
    ("name", "name", "ms"), ("release", "release", "ms"), ("user", "user", "ms"), ("model", "model", "llm"),
])
def test_breakdowns_group_volume_errors_latency_cost_and_scores(db_url: str, mixed: dict, by: str, key: str,
                                                                latency: str) -> None:
    rows = metrics.breakdown(db_url, TraceFilter.last("24h", NOW), by)
    want = _expected_groups(mixed, key, latency)
    assert {r["key"] for r in rows} == set(want)
    assert [r["requests"] for r in rows] == sorted((g["n"] for g in want.values()), reverse=True)
    for row in rows:
        g = want[row["key"]]
        assert row["requests"] == g["n"] and row["errors"] == g["errors"]
        assert row["error_rate"] == pytest.approx(g["errors"] / g["n"])
        assert row["latency_p95_ms"] == nearest_rank(g["ms"], 95)
        assert row["cost_usd"] == pytest.approx(g["cost"])
        assert row["input_tokens"] == g["tokens"] and row["output_tokens"] == g["n"]
        assert row["scores"] == {"correctness": pytest.approx(sum(g["scores"]) / len(g["scores"]))}


def test_a_breakdown_is_limited_and_follows_the_filter(db_url: str, mixed: dict) -> None:
    rows = metrics.breakdown(db_url, TraceFilter.last("24h", NOW), "name", limit=2)
    assert [r["key"] for r in rows] == ["support-chat", "refund"]
    models = metrics.breakdown(db_url, TraceFilter.last("24h", NOW, names=["search"]), "model")
    assert sum(r["requests"] for r in models) == 5
    only = metrics.breakdown(db_url, TraceFilter.last("24h", NOW, models=["gpt-4o"]), "model")
    assert [r["key"] for r in only] == ["gpt-4o"]
    assert metrics.breakdown(db_url, TraceFilter.last("24h", NOW - 48 * HOUR), "user") == []
    with pytest.raises(ConfigError, match="break down by 'colour'"):
        metrics.breakdown(db_url, TraceFilter.last("24h", NOW), "colour")


def test_llm_calls_without_a_model_have_their_own_row_and_other_spans_none(db_url: str) -> None:
    at = NOW - 2 * HOUR
    named = trace("n1", at, 800.0, model="gpt-4o", cost=0.02, scores=(score("correctness", 0.9),))
    unnamed = [trace(f"u{i}", at + timedelta(minutes=i), 300.0 + i, model=None, cost=0.0,  # type: ignore[arg-type]
                     status="error" if i == 0 else "ok", scores=(score("correctness", 0.5),)) for i in range(3)]
    # A retrieval and a tool step name no model either: they are not LLM calls and count nowhere.
    named["spans"].append({"span_id": "n1-retrieval", "kind": "retrieval", "name": "search", "start_time": at,
                           "end_time": at + timedelta(milliseconds=40)})
    named["spans"].append({"span_id": "n1-tool", "kind": "tool", "name": "lookup", "start_time": at,
                           "end_time": at + timedelta(milliseconds=20)})
    insert_traces(db_url, [named, *unnamed])
    rows = {r["key"]: r for r in metrics.breakdown(db_url, TraceFilter.last("24h", NOW), "model")}
    assert set(rows) == {None, "gpt-4o"}
    assert rows[None]["requests"] == 3 and rows[None]["errors"] == 1
    assert rows[None]["latency_p95_ms"] == 302.0
    assert rows[None]["scores"] == {"correctness": pytest.approx(0.5)}
    assert rows["gpt-4o"]["requests"] == 1 and rows["gpt-4o"]["scores"] == {"correctness": pytest.approx(0.9)}


# --- Filter widgets -----------------------------------------------------------------------------------


def test_filter_options_offer_the_values_of_the_window(varied: str) -> None:
    options = metrics.filter_options(varied, TraceFilter.last("24h", NOW, names=["refund"]))
    assert options == {
        "names": ["refund", "support-chat"],
        "models": ["claude-sonnet-4", "gpt-4o-mini"],
        "providers": ["anthropic", "openai"],
        "tags": ["ancient", "beta", "vip"],  # tags have no time: all of them
        "user_ids": ["u2", "u1", "u3"],  # busiest first
        "session_ids": ["s1"],
        "releases": ["v1", "v2"],
        "environments": ["production", "staging"],
        "statuses": ["error", "ok"],
    }
    wider = metrics.filter_options(varied, TraceFilter.last("7d", NOW))
    assert "legacy" in wider["names"] and "u9" in wider["user_ids"] and "v0" in wider["releases"]


def test_a_long_trace_is_found_by_a_span_that_starts_buckets_later(db_url: str) -> None:
    """Per-bucket statements narrow the span and trace ranges by the longest trace; nothing is lost."""
    start = NOW - 3 * HOUR
    long = trace("long", start, 150 * 60_000, name="batch", model="gpt-4o")
    long["spans"][0].update(start_time=start + 100 * timedelta(minutes=1), ttft_ms=42.0)  # in the 2nd hour
    insert_traces(db_url, [long, trace("short", start, 10, name="chat", model="gpt-4o-mini", ttft=7.0)])
    flt = TraceFilter(start=start, end=NOW, models=("gpt-4o",))
    assert [r["requests"] for r in metrics.timeseries(db_url, flt, bucket=HOUR)] == [1, 0, 0]
    named = TraceFilter(start=start, end=NOW, names=("batch",))
    assert [r["ttft_p50_ms"] for r in metrics.ttft_timeseries(db_url, named, bucket=HOUR)] == [None, 42.0, None]


def test_percentiles_read_from_brackets_are_exact(db_url: str) -> None:
    """Large windows read their percentiles between two values found on a sample: still exact."""
    from looplab.store.engine import read_session
    from looplab.store.models import Trace

    rng = random.Random(99)
    start = NOW - 2 * HOUR
    durations = [float(rng.randint(1, 400)) for _ in range(3000)]  # many ties, too
    insert_traces(db_url, [trace(f"{rng.getrandbits(128):032x}", start + timedelta(seconds=i), ms)
                           for i, ms in enumerate(durations)])
    flt = TraceFilter(start=start, end=NOW)
    with read_session(db_url) as session:
        where = metrics.trace_conditions(flt)
        for p in (20, 50, 75):
            assert metrics._bracketed(session, Trace.duration_ms, where, {}, len(durations), (p, 95, 99)) \
                == {p: nearest_rank(durations, p), 95: nearest_rank(durations, 95), 99: nearest_rank(durations, 99)}
        assert metrics._bracketed(session, Trace.duration_ms, where[:1] + [Trace.start_time < start + timedelta(
            seconds=1000)], {}, 1000, (50,)) == {}  # too small a sample: read the plain way


@pytest.fixture
def days(db_url: str) -> dict:
    """Traces over four UTC days, some at the very first and last moments of a day."""
    rng = random.Random(11)
    midnight = datetime(2026, 11, 20, tzinfo=timezone.utc)
    moments = [midnight + timedelta(seconds=rng.randrange(4 * 86400), microseconds=rng.randrange(10**6))
               for _ in range(400)]
    moments += [midnight + timedelta(days=d) for d in range(4)]
    moments += [midnight + timedelta(days=d + 1) - timedelta(microseconds=1) for d in range(4)]
    traces = []
    for i, at in enumerate(moments):
        name = "batch" if i % 3 == 0 else "chat"
        model = "claude-sonnet-4" if i % 4 == 0 else "gpt-4o-mini"
        ttft = float(rng.randint(1, 60)) if i % 7 else None  # ties, and calls without a first token
        traces.append(trace(f"d{i:04d}", at, float(rng.randint(1, 300)), name=name, model=model, ttft=ttft,
                            provider="anthropic" if model.startswith("claude") else "openai"))
    insert_traces(db_url, traces)
    return {"url": db_url, "midnight": midnight, "traces": traces}


@pytest.mark.parametrize("lists", [{}, {"names": ["batch"]}, {"models": ["claude-sonnet-4"]},
                                   {"providers": ["openai"]}, {"names": ["chat"], "models": ["gpt-4o-mini"]}])
def test_whole_day_buckets_read_from_the_day_indexes_are_exact(days: dict, lists: dict) -> None:
    """Day buckets inside the window are read from the indexes holding each day's values in order; the
    clipped ones at the ends the usual way: every percentile equals Python's."""
    start = days["midnight"] + timedelta(hours=12)
    flt = TraceFilter(start=start, end=start + timedelta(days=3), **{k: tuple(v) for k, v in lists.items()})
    series = metrics.timeseries(days["url"], flt, bucket=timedelta(days=1))
    ttft = metrics.ttft_timeseries(days["url"], flt, bucket=timedelta(days=1))
    assert len(series) == len(ttft) == 4
    for row, ttft_row in zip(series, ttft):
        lo, hi = max(row["bucket"], flt.start), min(row["bucket"] + timedelta(days=1), flt.end)
        picked = [t for t in days["traces"] if lo <= t["start_time"] < hi
                  and (not flt.names or t["name"] in flt.names)
                  and (not flt.models or t["spans"][0]["model"] in flt.models)
                  and (not flt.providers or t["spans"][0]["provider"] in flt.providers)]
        durations = [(t["end_time"] - t["start_time"]) / timedelta(milliseconds=1) for t in picked]
        ttfts = [t["spans"][0]["ttft_ms"] for t in picked if t["spans"][0]["ttft_ms"] is not None]
        assert row["requests"] == len(picked) and ttft_row["llm_calls"] == len(picked)
        for p in (50, 95, 99):
            assert row[f"latency_p{p}_ms"] == pytest.approx(nearest_rank(durations, p)), (row["bucket"], p)
        for p in (50, 95):
            assert ttft_row[f"ttft_p{p}_ms"] == nearest_rank(ttfts, p), (row["bucket"], p)


def test_a_large_windows_percentiles_read_in_duration_order_are_exact(db_url: str, monkeypatch) -> None:
    """A window holding much of the table walks the duration index in order: exact, and traces
    outside the window (here the slowest and the fastest) are skipped."""
    monkeypatch.setattr(metrics, "_BRACKET_MIN", 50)
    rng = random.Random(3)
    start = NOW - 10 * HOUR
    inside = [float(rng.randint(100, 900)) for _ in range(300)]
    outside = [(start - HOUR, 5.0), (start - HOUR, 99_999.0), (NOW + HOUR, 1.0), (NOW + HOUR, 50_000.0)]
    insert_traces(db_url, [trace(f"w{i:04d}", start + timedelta(seconds=60 * i), ms) for i, ms in enumerate(inside)]
                  + [trace(f"o{i}", at, ms) for i, (at, ms) in enumerate(outside)])
    kpis = metrics.summary(db_url, TraceFilter(start=start, end=NOW))["kpis"]
    assert kpis["requests"]["value"] == 300
    assert kpis["latency_p50_ms"]["value"] == nearest_rank(inside, 50)
    assert kpis["latency_p95_ms"]["value"] == nearest_rank(inside, 95)


def test_filter_options_find_providers_and_busiest_sessions_in_the_window(db_url: str) -> None:
    insert_traces(db_url, [
        trace("p1", NOW - HOUR, 10, provider="openai", session="s1"),
        trace("p2", NOW - HOUR, 10, provider="anthropic", model="claude-sonnet-4", session="s2"),
        trace("p3", NOW - HOUR, 10, provider="openai", session="s2"),
        trace("p4", NOW - 48 * HOUR, 10, provider="google", model="gemini-2.0-flash", session="s3"),
    ])
    options = metrics.filter_options(db_url, TraceFilter.last("24h", NOW))
    assert options["providers"] == ["anthropic", "openai"]
    assert options["session_ids"] == ["s2", "s1"]
    everything = metrics.filter_options(db_url, TraceFilter(start=NOW - 72 * HOUR, end=NOW))
    assert everything["providers"] == ["anthropic", "google", "openai"]
    assert everything["session_ids"] == ["s2", "s1", "s3"]


# --- Closed days from rollups -------------------------------------------------------------------------
#
# NOW's days are long over by the wall clock, so a window of several days reads its whole days
# from rollups (built on the first breakdown) and only its clipped ends from the calls.

DAY = timedelta(days=1)
MODELS = ("gpt-4o", "claude-sonnet-4", "gpt-4o-mini")


@pytest.fixture
def spread_calls(db_url: str) -> list[dict]:
    """120 calls from NOW - 4 days to NOW, one a trace; every 7th trace starts two minutes before
    a midnight and calls its model again three minutes after it (it called the model on two
    days); returns each call."""
    rng = random.Random(5)
    traces, calls = [], []
    for n in range(120):
        at = NOW - 4 * DAY + timedelta(minutes=47 * n + 1)
        midnight = datetime.combine(at.date() + DAY, datetime.min.time(), tzinfo=timezone.utc)
        again = midnight + timedelta(minutes=3) if n % 7 == 0 and midnight < NOW else None
        at = midnight - timedelta(minutes=2) if again else at
        model, name = MODELS[n % 3], ("refund", "search")[n % 4 == 0]
        ms = rng.randint(50, 8000) + rng.choice((0.0, 0.25, 0.5))
        failed, judged = n % 6 == 0, 0.1 * (n % 10)
        release = None if n % 5 == 0 else f"v{n % 2}"
        ttft = ms / 4 if n % 2 else None
        t = trace(f"d{n:03d}", at, ms, name=name, model=model, cost=0.001 * n, tokens=(n, 2), ttft=ttft,
                  status="error" if failed else "ok", user=f"u{n % 3}", scores=(score("correctness", judged),),
                  release=release)
        calls.append({"trace": f"d{n:03d}", "model": model, "name": name, "at": at, "ms": ms, "failed": failed,
                      "cost": 0.001 * n, "tokens": n, "score": judged, "user": f"u{n % 3}", "release": release,
                      "trace_ms": ms, "ttft": ttft})
        if again:
            t["end_time"] = again + timedelta(seconds=1)
            calls[-1]["trace_ms"] = (t["end_time"] - at) / timedelta(milliseconds=1)
            t["spans"].append({"span_id": f"d{n:03d}-again", "kind": "llm", "name": "chat", "model": model,
                               "provider": "openai", "start_time": again,
                               "end_time": again + timedelta(milliseconds=99.5), "cost_usd": 0.5,
                               "input_tokens": 7, "output_tokens": 1, "status": "ok"})
            calls.append({**calls[-1], "at": again, "ms": 99.5, "failed": False, "cost": 0.5, "tokens": 7,
                          "trace_ms": None, "ttft": None})  # the trace's own figures are on its first call
        traces.append(t)
    insert_traces(db_url, traces)
    return calls


def _expected_models(calls: list[dict], start: datetime, end: datetime, names: tuple[str, ...] = ()) -> dict:
    """Python's model breakdown: calls started in the window; a model's scores are those of the
    traces that called it, a trace counted once a day it did."""
    groups: dict = {}
    for c in calls:
        if not start <= c["at"] < end or (names and c["name"] not in names):
            continue
        g = groups.setdefault(c["model"], {"n": 0, "errors": 0, "ms": [], "cost": 0.0, "tokens": 0, "scored": {}})
        g["n"] += 1
        g["errors"] += c["failed"]
        g["ms"].append(c["ms"])
        g["cost"] += c["cost"]
        g["tokens"] += c["tokens"]
        g["scored"][(c["trace"], c["at"].date())] = c["score"]
    return groups


def _assert_models(rows: list[dict], want: dict) -> None:
    assert {r["key"] for r in rows} == set(want)
    for row in rows:
        g = want[row["key"]]
        assert (row["requests"], row["errors"]) == (g["n"], g["errors"]), row["key"]
        assert row["latency_p95_ms"] == nearest_rank(g["ms"], 95), row["key"]
        assert row["cost_usd"] == pytest.approx(g["cost"]) and row["input_tokens"] == g["tokens"]
        scores = list(g["scored"].values())
        assert row["scores"] == {"correctness": pytest.approx(sum(scores) / len(scores))}, row["key"]


def _rolled_days(url: str) -> set:
    from sqlalchemy import select

    from looplab.store.engine import read_session
    from looplab.store.models import RollupDay

    with read_session(url) as session:
        return set(session.scalars(select(RollupDay.day)))


def test_a_model_breakdown_over_closed_days_adds_up_their_rollups_and_equals_pythons(db_url: str, spread_calls: list) -> None:
    start = NOW - 4 * DAY + 6 * HOUR  # a clipped first day, three whole days, the morning of NOW's day
    for names in ((), ("search",)):
        rows = metrics.breakdown(db_url, TraceFilter(start=start, end=NOW, names=names), "model")
        _assert_models(rows, _expected_models(spread_calls, start, NOW, names))
    assert _rolled_days(db_url) == {(NOW - i * DAY).date() for i in (3, 2, 1)}
    only = metrics.breakdown(db_url, TraceFilter(start=start, end=NOW, models=["gpt-4o"]), "model")
    _assert_models(only, {k: v for k, v in _expected_models(spread_calls, start, NOW).items() if k == "gpt-4o"})
    # Filters the rollups do not carry read every call, and agree with Python the same way.
    by_user = metrics.breakdown(db_url, TraceFilter(start=start, end=NOW, user_ids=["u1"]), "model")
    _assert_models(by_user, _expected_models([c for c in spread_calls if c["user"] == "u1"], start, NOW))


def test_a_late_call_a_late_trace_row_or_an_erased_trace_change_the_closed_days_they_touch(
        db_url: str, spread_calls: list) -> None:
    from looplab.store.engine import get_engine
    from looplab.store.lifecycle import delete_user

    flt = TraceFilter(start=NOW - 4 * DAY, end=NOW)
    metrics.breakdown(db_url, flt, "model")
    closed = _rolled_days(db_url)
    assert len(closed) == 3

    late_at = NOW - 2 * DAY - 5 * HOUR  # inside a closed, rolled-up day
    insert_traces(db_url, [trace("late", late_at, 60_000.0, model="gpt-4o", cost=2.0, tokens=(900, 2),
                                 name="search", scores=(score("correctness", 0.0),))])
    assert _rolled_days(db_url) == closed - {late_at.date()}  # the triggers forgot that day at once
    spread_calls.append({"trace": "late", "model": "gpt-4o", "name": "search", "at": late_at, "ms": 60_000.0,
                 "failed": False, "cost": 2.0, "tokens": 900, "score": 0.0, "user": "u1"})
    _assert_models(metrics.breakdown(db_url, flt, "model"), _expected_models(spread_calls, flt.start, flt.end))
    assert _rolled_days(db_url) == closed

    insert_traces(db_url, [])  # nothing: no day is forgotten
    assert _rolled_days(db_url) == closed
    # The tracing writer's rows: a trace row of today forgets nothing, one of a closed day its day.
    from looplab.tracing.rows import TRACE_COLUMNS
    from looplab.tracing.writer import insert_rows

    def trace_row(trace_id: str, at: datetime) -> tuple:
        values = {"id": trace_id, "name": "search", "start_time": at.replace(tzinfo=None), "status": "ok",
                  "span_count": 0, "error_count": 0}
        return tuple(values.get(c) for c in TRACE_COLUMNS)

    with get_engine(db_url).begin() as conn:
        insert_rows(conn, "traces", [trace_row("now", datetime.now(timezone.utc))])
    assert _rolled_days(db_url) == closed
    writer_day = NOW - 3 * DAY + 2 * HOUR
    with get_engine(db_url).begin() as conn:
        insert_rows(conn, "traces", [trace_row("late-row", writer_day)])
    assert _rolled_days(db_url) == closed - {writer_day.date()}  # a trace row without calls: no call counts
    searched = TraceFilter(start=flt.start, end=flt.end, names=["search"])
    _assert_models(metrics.breakdown(db_url, searched, "model"), _expected_models(spread_calls, flt.start, flt.end, ("search",)))

    delete_user(db_url, "u2")  # an erased user's calls and scores leave the closed days too
    spread_calls[:] = [c for c in spread_calls if c["user"] != "u2"]
    _assert_models(metrics.breakdown(db_url, flt, "model"), _expected_models(spread_calls, flt.start, flt.end))
    _assert_models(metrics.breakdown(db_url, searched, "model"), _expected_models(spread_calls, flt.start, flt.end, ("search",)))


def test_a_new_score_on_a_closed_day_changes_the_model_means(db_url: str, spread_calls: list) -> None:
    from looplab.store.engine import write_session
    from looplab.store.models import Score

    flt = TraceFilter(start=NOW - 4 * DAY, end=NOW)
    before = {r["key"]: r["scores"] for r in metrics.breakdown(db_url, flt, "model")}
    target = spread_calls[30]  # a call two days and more before NOW
    with write_session(db_url) as session:
        session.add(Score(id="late-score", trace_id=target["trace"], name="helpfulness", value=0.25,
                          source="human", created_at=NOW))
    after = {r["key"]: r["scores"] for r in metrics.breakdown(db_url, flt, "model")}
    assert after[target["model"]] == pytest.approx({**before[target["model"]], "helpfulness": 0.25})
    assert all(after[m] == pytest.approx(before[m]) for m in after if m != target["model"])


def test_only_whole_days_that_ended_an_hour_ago_are_rolled_up() -> None:
    from looplab.monitoring import rollups

    now = datetime(2026, 11, 25, 0, 30, tzinfo=timezone.utc)  # yesterday ended half an hour ago
    start = datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc)
    assert rollups.closed_days(start, now, now) == [datetime(2026, 11, d).date() for d in (22, 23)]
    assert rollups.closed_days(start, now, now + HOUR) == [datetime(2026, 11, d).date() for d in (22, 23, 24)]
    assert rollups.closed_days(now - HOUR, now, now + DAY) == []


def test_a_percentile_bracket_from_a_histogram_always_holds_the_wanted_rank() -> None:
    from looplab.monitoring import rollups

    rng = random.Random(7)
    for _ in range(300):
        known = [rng.choice((0.0, rng.uniform(0, 0.02), rng.lognormvariate(6, 2))) for _ in range(rng.randint(1, 400))]
        unknown = [rng.lognormvariate(6, 2) for _ in range(rng.randint(0, 30))]
        histogram = rollups.empty_histogram()
        for value in known:
            rollups.add_histogram(histogram, rollups.histogram_bytes(Counter([rollups.bucket_of(value)])))
        every = sorted(known + unknown)
        rank = rng.randint(1, len(every))
        bounds = rollups.bracket(histogram, len(unknown), rank)
        assert bounds is not None
        low, high = bounds
        assert sum(v < low for v in every) < rank if low is not None else True
        assert sum(v < high for v in every) >= rank if high is not None else True
        assert rollups.below(histogram, low) == sum(v < low for v in known) if low is not None else True


def test_pruned_days_leave_no_sums_behind(db_url: str, spread_calls: list) -> None:
    from sqlalchemy import func, select

    from looplab.store.engine import read_session
    from looplab.store.lifecycle import prune_traces
    from looplab.store.models import LlmRollup

    def sums_of(day: Any) -> int:
        with read_session(db_url) as session:
            return session.scalar(select(func.count()).where(LlmRollup.day == day))

    metrics.breakdown(db_url, TraceFilter(start=NOW - 4 * DAY, end=NOW - DAY), "model")  # builds two days
    pruned_day = (NOW - 3 * DAY).date()
    assert sums_of(pruned_day) > 0
    cutoff = NOW - 2 * DAY - 12 * HOUR  # that day's end: the traces that started before it go
    prune_traces(db_url, older_than=cutoff)
    gone = {c["trace"] for c in spread_calls if c["at"] < cutoff}
    flt = TraceFilter(start=NOW - 2 * DAY, end=NOW)  # builds a day, and sweeps the pruned day's sums
    rows = metrics.breakdown(db_url, flt, "model")
    _assert_models(rows, _expected_models([c for c in spread_calls if c["trace"] not in gone], flt.start, flt.end))
    assert sums_of(pruned_day) == 0


def _expected_traces(calls: list[dict], key: str, start: datetime, end: datetime, **only: tuple) -> dict:
    """Python's trace breakdown by ``key``: traces started in the window (``only``: kept values)."""
    groups: dict = {}
    for c in calls:
        if c["trace_ms"] is None or not start <= c["at"] < end or any(c[k] not in v for k, v in only.items()):
            continue
        later = [o for o in calls if o["trace"] == c["trace"] and o is not c]
        g = groups.setdefault(c[key], {"n": 0, "errors": 0, "ms": [], "cost": 0.0, "tokens": 0, "scores": []})
        g["n"] += 1
        g["errors"] += c["failed"]
        g["ms"].append(c["trace_ms"])
        g["cost"] += c["cost"] + sum(o["cost"] for o in later)
        g["tokens"] += c["tokens"] + sum(o["tokens"] for o in later)
        g["scores"].append(c["score"])
    return groups


def _assert_traces(rows: list[dict], want: dict) -> None:
    assert {r["key"] for r in rows} == set(want)
    assert [r["requests"] for r in rows] == sorted((g["n"] for g in want.values()), reverse=True)
    for row in rows:
        g = want[row["key"]]
        assert (row["requests"], row["errors"]) == (g["n"], g["errors"]), row["key"]
        assert row["latency_p95_ms"] == pytest.approx(nearest_rank(g["ms"], 95)), row["key"]
        assert row["cost_usd"] == pytest.approx(g["cost"]) and row["input_tokens"] == g["tokens"], row["key"]
        assert row["scores"] == {"correctness": pytest.approx(sum(g["scores"]) / len(g["scores"]))}, row["key"]


@pytest.mark.parametrize(("by", "key"), [("name", "name"), ("release", "release")])
def test_name_and_release_breakdowns_over_closed_days_add_up_rollups_and_equal_pythons(
        db_url: str, spread_calls: list, by: str, key: str) -> None:
    start = NOW - 4 * DAY + 6 * HOUR
    _assert_traces(metrics.breakdown(db_url, TraceFilter(start=start, end=NOW), by),
                   _expected_traces(spread_calls, key, start, NOW))
    assert _rolled_days(db_url) == {(NOW - i * DAY).date() for i in (3, 2, 1)}
    for lists, only in (({"releases": ["v1"]}, {"release": ("v1",)}), ({"statuses": ["error"]}, {"failed": (True,)}),
                        ({"names": ["search"], "environments": ["production"]}, {"name": ("search",)}),
                        ({"user_ids": ["u2"]}, {"user": ("u2",)})):  # users: not in the rollups, read from traces
        _assert_traces(metrics.breakdown(db_url, TraceFilter(start=start, end=NOW, **lists), by),
                       _expected_traces(spread_calls, key, start, NOW, **only))


def test_a_late_trace_and_a_late_score_change_the_closed_days_of_trace_breakdowns(
        db_url: str, spread_calls: list) -> None:
    from looplab.store.engine import write_session
    from looplab.store.models import Score

    flt = TraceFilter(start=NOW - 4 * DAY, end=NOW)
    metrics.breakdown(db_url, flt, "name")
    closed = _rolled_days(db_url)
    late_at = NOW - 2 * DAY - 5 * HOUR
    insert_traces(db_url, [trace("late", late_at, 90_000.0, model="gpt-4o", cost=2.0, tokens=(900, 2), release="v9",
                                 name="search", scores=(score("correctness", 0.0),))])
    assert _rolled_days(db_url) == closed - {late_at.date()}
    spread_calls.append({"trace": "late", "model": "gpt-4o", "name": "search", "at": late_at, "ms": 90_000.0,
                         "failed": False, "cost": 2.0, "tokens": 900, "score": 0.0, "user": "u1", "release": "v9",
                         "trace_ms": 90_000.0})
    for by in ("name", "release"):
        _assert_traces(metrics.breakdown(db_url, flt, by), _expected_traces(spread_calls, by, flt.start, flt.end))

    changed = next(c for c in spread_calls if c["trace"] == "d041")
    with write_session(db_url) as session:  # scored again after the fact
        session.add(Score(id="again", trace_id="d041", name="correctness", value=1.0, source="human", created_at=NOW))
    assert changed["at"].date() not in _rolled_days(db_url)
    rows = {r["key"]: r for r in metrics.breakdown(db_url, flt, "name")}
    want = _expected_traces(spread_calls, "name", flt.start, flt.end)
    assert rows["refund"]["errors"] == want["refund"]["errors"]
    scores = want["refund"]["scores"] + [1.0]  # a trace's every score counts
    assert rows["refund"]["scores"] == {"correctness": pytest.approx(sum(scores) / len(scores))}


@pytest.mark.parametrize("lists", [{}, {"names": ["search"]}, {"models": ["gpt-4o"]}])
def test_daily_time_to_first_token_counts_closed_days_from_rollups_and_equals_pythons(
        db_url: str, spread_calls: list, lists: dict) -> None:
    flt = TraceFilter(start=NOW - 4 * DAY + 6 * HOUR, end=NOW, **{k: tuple(v) for k, v in lists.items()})
    rows = metrics.ttft_timeseries(db_url, flt, bucket=DAY)
    assert _rolled_days(db_url) == {(NOW - i * DAY).date() for i in (3, 2, 1)}
    assert len(rows) == 5
    for row in rows:
        day = [c for c in spread_calls if max(row["bucket"], flt.start) <= c["at"] < row["bucket"] + DAY
               and c["name"] in lists.get("names", [c["name"]]) and c["model"] in lists.get("models", [c["model"]])]
        assert row["llm_calls"] == len(day), row["bucket"]
        ttfts = [c["ttft"] for c in day if c["ttft"] is not None]
        for p in (50, 95):
            assert row[f"ttft_p{p}_ms"] == (pytest.approx(nearest_rank(ttfts, p)) if ttfts else None), (row["bucket"], p)
