"""Every page of the app, driven through Streamlit's AppTest on real databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from looplab.demo import seed
from looplab.explorer import list_traces
from looplab.monitoring.attention import attention_count, list_rules
from looplab.monitoring.metrics import breakdown
from looplab.overview import loop_status
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
PAGES = [
    "app_pages/overview.py",
    "app_pages/monitoring.py",
    "app_pages/traces.py",
    "app_pages/annotate.py",
    "app_pages/datasets.py",
    "app_pages/experiments.py",
    "app_pages/evaluators.py",
    "app_pages/score_configs.py",
    "app_pages/settings.py",
]


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app pointed at an empty database."""
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    yield db_url


def open_page(page: str, **query: str | list[str]) -> AppTest:
    """The app started from its entry point, switched to ``page`` with ``query`` in the URL."""
    at = AppTest.from_file(MAIN, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page != "app_pages/overview.py":
        at.switch_page(page).run()
    return at


def texts(at: AppTest) -> str:
    """Everything a user reads on the page, as one string."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "title", "header", "subheader")
             for e in at.get(kind) if isinstance(getattr(e, "value", None), str)]
    parts += [m.label + " " + str(m.value) for m in at.metric]
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_on_an_empty_database(app_db: str, page: str) -> None:
    at = open_page(page)
    assert not at.exception, at.exception
    if page in ("app_pages/overview.py", "app_pages/monitoring.py", "app_pages/traces.py"):
        assert "No traces yet" in texts(at)
        assert any("looplab.wrap_openai" in c.value for c in at.code)


def test_a_database_that_cannot_be_opened_gets_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", f"sqlite:///{tmp_path / 'missing-folder' / 'looplab.db'}")
    at = open_page("app_pages/overview.py")
    assert not at.exception
    assert "cannot open its database" in at.error[0].value
    assert "does not exist" in at.error[0].value


# --- On the demo's history ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database holding the sample history (seeded once for this module)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('seeded') / 'demo.db'}"
    seed(url)
    return url


@pytest.fixture
def demo(seeded_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", seeded_url)
    return seeded_url


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def as_int(text: str) -> int:
    return int(text.replace(",", ""))


def traces_in(url: str, flt: TraceFilter) -> int:
    return loop_status(url, flt).traces


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_on_the_demo_history(demo: str, page: str) -> None:
    at = open_page(page)
    assert not at.exception, at.exception
    assert "No traces yet" not in texts(at)


def test_overview_shows_each_steps_numbers(demo: str) -> None:
    at = open_page("app_pages/overview.py")
    week = traces_in(demo, TraceFilter.last("7d"))
    assert as_int(metric(at, "Traces in range")) == week > 500
    assert as_int(metric(at, "Need attention")) == attention_count(demo, TraceFilter.last("7d")) > 0
    assert metric(at, "Latest experiment") == "support v1"  # the demo's baseline


def test_monitoring_shows_the_ranges_numbers_charts_and_attention(demo: str) -> None:
    at = open_page("app_pages/monitoring.py")
    week = TraceFilter.last("7d")
    assert as_int(metric(at, "Requests")) == traces_in(demo, week)
    assert len(at.get("vega_lite_chart")) >= 7  # six series charts and the scores chart
    assert any(s.value.startswith("Needs attention · ") for s in at.subheader)
    breakdown_by_model = next(d.value for d in at.dataframe if "model" in d.value.columns)
    assert {"claude-sonnet-4-6", "gpt-4o-mini"} <= set(breakdown_by_model["model"])


def test_monitoring_computes_only_the_open_breakdown_tab_which_a_link_can_name(demo: str) -> None:
    at = open_page("app_pages/monitoring.py")
    tables = [d.value for d in at.dataframe]
    assert any("model" in t.columns for t in tables)  # "By model" is open first
    assert not any("release" in t.columns for t in tables)
    at = open_page("app_pages/monitoring.py", breakdown="By release")
    assert not at.exception, at.exception
    by_release = next(d.value for d in at.dataframe if "release" in d.value.columns)
    releases = [row["key"] or "(none)" for row in breakdown(demo, TraceFilter.last("7d"), "release")]
    assert list(by_release["release"]) == releases and len(releases) >= 2
    assert not any("model" in d.value.columns for d in at.dataframe)
    at = open_page("app_pages/monitoring.py", breakdown="By nonsense")  # a mangled link: the first tab
    assert not at.exception, at.exception
    assert any("model" in d.value.columns for d in at.dataframe)


def test_a_shared_link_applies_its_filter(demo: str) -> None:
    at = open_page("app_pages/monitoring.py", range="30d", name="refund-request", status="error")
    flt = TraceFilter.last("30d", names=["refund-request"], statuses=["error"])
    assert as_int(metric(at, "Requests")) == traces_in(demo, flt) > 0
    assert at.multiselect(key="flt_name").value == ["refund-request"]


def test_changing_a_filter_updates_the_numbers_and_the_url(demo: str) -> None:
    at = open_page("app_pages/monitoring.py")
    before = as_int(metric(at, "Requests"))
    at.multiselect(key="flt_name").set_value(["order-status"]).run()
    after = as_int(metric(at, "Requests"))
    assert after == traces_in(demo, TraceFilter.last("7d", names=["order-status"])) < before
    assert at.query_params["name"] == "order-status"
    at.selectbox(key="flt_range").set_value("24h").run()
    assert at.query_params["range"] == "24h"
    assert as_int(metric(at, "Requests")) == traces_in(demo, TraceFilter.last("24h", names=["order-status"]))


def test_the_filter_follows_from_monitoring_to_traces(demo: str) -> None:
    at = open_page("app_pages/monitoring.py", range="30d", release="v1.5.0")
    at.switch_page("app_pages/traces.py").run()
    expected = traces_in(demo, TraceFilter.last("30d", releases=["v1.5.0"]))
    assert f"of {expected:,}" in texts(at)
    assert at.query_params["release"] == "v1.5.0"


def test_an_unreadable_link_filter_is_reported_not_raised(demo: str) -> None:
    at = open_page("app_pages/overview.py", range="2y")
    assert not at.exception
    assert "not understood" in at.sidebar.warning[0].value
    assert at.query_params["range"] == "7d"


def test_traces_search_sort_and_page(demo: str) -> None:
    at = open_page("app_pages/traces.py", range="30d")
    assert "Traces 1–50 of 2,000" in texts(at)
    at.text_input(key="trc_q").set_value("refund").run()
    found = list_traces(demo, TraceFilter.last("30d"), search="refund").total
    assert 0 < found < 2000 and f"of {found:,}" in texts(at)
    assert at.query_params["q"] == "refund"
    at.text_input(key="trc_q").set_value("").run()
    at.selectbox(key="trc_sort").set_value("duration_ms").run()
    latencies = list_traces(demo, TraceFilter.last("30d"), sort="duration_ms").rows
    assert at.dataframe(key="trc_table").value["open"].iloc[0].endswith(latencies[0].id)
    at.button(key="trc_next").click().run()
    assert "Traces 51–100 of 2,000" in texts(at)


def test_selecting_a_row_opens_that_trace(demo: str) -> None:
    at = open_page("app_pages/traces.py")
    first = at.dataframe(key="trc_table").value["open"].iloc[0].split("=")[1]
    at.session_state["trc_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert at.query_params["trace"] == first
    assert any(tab.label == "Span tree" for tab in at.tabs)


def test_a_trace_deep_link_shows_its_spans_content_and_scores(demo: str) -> None:
    trace = next(r for r in list_traces(demo, TraceFilter.last("30d"), page_size=200).rows
                 if r.scores and r.span_count >= 4)
    at = open_page("app_pages/traces.py", trace=trace.id)
    assert not at.exception
    assert metric(at, "Spans") == str(trace.span_count)
    assert at.dataframe(key=f"trc_tree_{trace.id}").value.shape[0] == trace.span_count
    scores = next(d.value for d in at.dataframe if "source" in d.value.columns)
    assert set(scores["score"]) == {s.name for s in trace.scores}
    assert len(at.get("chat_message")) >= 2  # the chosen LLM span as a conversation


def test_an_unknown_trace_link_says_so(demo: str) -> None:
    at = open_page("app_pages/traces.py", trace="0" * 32)
    assert not at.exception
    assert "No trace with id" in at.warning[0].value


def test_adding_a_rule_in_the_page_stores_it_and_a_bad_one_is_explained(demo: str) -> None:
    at = open_page("app_pages/monitoring.py")
    at.selectbox(key="mon_new_kind").set_value("latency_above").run()
    form_inputs = [t for t in at.text_input if t.label == "Name"]
    form_inputs[-1].set_value("Slower than 3 s")
    next(n for n in at.number_input if n.key == "mon_new_threshold_ms").set_value(3000.0)
    next(b for b in at.button if b.label == "Add rule").click().run()
    assert not at.exception
    assert any(r["name"] == "Slower than 3 s" and r["params"]["threshold_ms"] == 3000 for r in list_rules(demo))

    at.selectbox(key="mon_new_kind").set_value("low_score").run()
    [t for t in at.text_input if t.label == "Name"][-1].set_value("Low without threshold")
    next(b for b in at.button if b.label == "Add rule").click().run()
    assert not at.exception
    assert at.error and "below" in at.error[0].value
    assert not any(r["name"] == "Low without threshold" for r in list_rules(demo))


# --- Odd data -------------------------------------------------------------------------------------


def test_malformed_and_huge_payloads_render_as_text(app_db: str) -> None:
    now = datetime.now(timezone.utc)
    huge = "x" * 3_000_000
    insert_traces(app_db, [{
        "trace_id": "f" * 32, "name": "odd <b>payloads</b>", "start_time": now.isoformat(),
        "end_time": (now + timedelta(seconds=1)).isoformat(), "input": "{not json", "output": huge,
        "spans": [
            {"span_id": "s1", "kind": "llm", "name": "![img](http://example.invalid/x.png)", "start_time": now.isoformat(),
             "input": {"messages": "not a list"}, "output": [1, {"role": None}, None], "error": "<script>x</script>",
             "status": "error"},
            {"span_id": "s2", "parent_id": "missing-parent", "kind": "retrieval", "name": "r",
             "start_time": now.isoformat(), "output": [{"no": "text"}, "plain", 3]},
        ],
    }])
    at = open_page("app_pages/traces.py", trace="f" * 32)
    assert not at.exception
    assert "<b>" in at.title[0].value.replace("\\", "")  # shown as written, not as HTML
    shown = "".join(c.value for c in at.code) + "".join(t.value for t in at.text)
    assert len(shown) < 1_000_000  # huge payloads are cut for display


def test_a_trace_of_ten_thousand_spans_opens_a_page_at_a_time(app_db: str) -> None:
    now = datetime.now(timezone.utc)
    spans = [{"span_id": f"s{i:05d}", "parent_id": None if i == 0 else "s00000", "kind": "tool", "name": f"step {i}",
              "start_time": (now + timedelta(milliseconds=i)).isoformat()} for i in range(10_000)]
    insert_traces(app_db, [{"trace_id": "e" * 32, "name": "big", "start_time": now.isoformat(),
                            "end_time": (now + timedelta(seconds=11)).isoformat(), "spans": spans}])
    at = open_page("app_pages/traces.py", trace="e" * 32)
    assert not at.exception
    assert metric(at, "Spans") == "10,000"
    assert at.dataframe(key=f"trc_tree_{'e' * 32}").value.shape[0] == 200
    at.number_input(key=f"trc_span_page_{'e' * 32}").set_value(50).run()
    assert not at.exception
    assert at.dataframe(key=f"trc_tree_{'e' * 32}").value["span"].iloc[-1].strip().endswith("step 9999")
