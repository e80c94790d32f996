"""The Evaluators page through AppTest: empty state, creating a code check, trying it, running
online evaluation with the mock judge, and the judge-vs-human table."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from streamlit.testing.v1 import AppTest

from looplab.evaluation import list_evaluators, save_evaluator
from looplab.store.engine import write_session
from looplab.store.ingest import insert_traces
from looplab.store.models import Score
from looplab.tracing.ids import new_id
from tests.stored import stored_scores
from tests.test_app import open_page, texts

PAGE = "app_pages/evaluators.py"


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    yield db_url


def shown(at: AppTest) -> str:
    return (texts(at) + "\n" + "\n".join(m.value for kind in ("success", "error", "warning") for m in at.get(kind))
            ).replace("\\", "")


def test_empty_state(app_db: str) -> None:
    at = open_page(PAGE)
    assert not at.exception
    assert "No evaluators yet" in shown(at)
    assert "No trace or item has both" in shown(at)


def test_create_a_code_check_and_try_it(app_db: str) -> None:
    at = open_page(PAGE)
    at.selectbox(key="ev_type").set_value("contains").run()
    at.text_input(key="ev_name").input("mentions-refund")
    at.text_area(key="ev_values").input("refund\nreturn")
    at.checkbox(key="ev_ignore_case").check()
    at.button(key="FormSubmitter:ev_new_form-Save evaluator").click().run()
    assert not at.exception
    assert "Saved mentions-refund, version 1." in shown(at)
    (info,) = list_evaluators(app_db)
    assert info.config == {"type": "contains", "values": ["refund", "return"], "mode": "any", "ignore_case": True,
                           "ignore_whitespace": False, "ignore_punctuation": False}
    assert at.dataframe[0].value["name"].tolist() == ["mentions-refund"]

    at.selectbox(key="ev_try_name").set_value("mentions-refund")
    at.text_area(key="ev_try_input").input("Can I send it back?")
    at.text_area(key="ev_try_output").input("Yes, a REFUND is possible.")
    at.button(key="ev_try_run").click().run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric} == {"Value": "1", "Label": "-", "Passed": "yes"}
    assert "Found 'refund'" in shown(at)


def test_a_bad_spec_is_refused_with_its_reason(app_db: str) -> None:
    at = open_page(PAGE)
    at.selectbox(key="ev_type").set_value("regex").run()
    at.text_input(key="ev_name").input("broken")
    at.text_input(key="ev_pattern").input("(")
    at.button(key="FormSubmitter:ev_new_form-Save evaluator").click().run()
    assert "not a valid regular expression" in shown(at)
    assert list_evaluators(app_db) == []


def test_run_online_evaluation_with_the_mock_judge(app_db: str) -> None:
    now = datetime.now(timezone.utc)
    insert_traces(app_db, [{
        "trace_id": f"{i:032x}", "name": "support-chat", "start_time": (now - timedelta(minutes=10 + i)).isoformat(),
        "input": "How do refunds work?", "output": "Refunds are possible within 30 days.",
        "spans": [{"span_id": f"r{i}", "kind": "retrieval", "name": "search",
                   "start_time": (now - timedelta(minutes=10 + i)).isoformat(),
                   "output": ["Refunds are possible within 30 days of delivery."]}],
    } for i in range(5)])
    save_evaluator(app_db, "faithful", {"type": "judge", "template": "faithfulness", "model": "mock:judge"})
    at = open_page(PAGE)
    at.multiselect(key="ev_online_evaluators").select("faithful")
    at.slider(key="ev_online_rate").set_value(1.0).run()
    at.button(key="ev_online_run").click().run()
    assert not at.exception
    assert "5 traces in the last 24 h, 5 sampled: 5 scores written." in shown(at)
    scores = stored_scores(app_db)
    assert len(scores) == 5 and {s["source"] for s in scores} == {"llm_judge"}
    at.button(key="ev_online_run").click().run()
    assert "0 scores written" in shown(at)


def test_judge_vs_human_table_flags_unreliable_judges(app_db: str) -> None:
    info = save_evaluator(app_db, "verdict-judge", {"type": "judge", "template": "correctness", "model": "mock:judge"})
    now = datetime.now(timezone.utc)
    with write_session(app_db) as session:
        for i in range(10):
            human, judge = ("pass" if i % 2 else "fail"), ("pass" if i % 3 else "fail")
            for source, label in (("human", human), ("llm_judge", judge)):
                session.add(Score(id=new_id(), trace_id=f"t{i}", name="verdict", label=label, source=source,
                                  evaluator_id=info.id if source == "llm_judge" else None,
                                  evaluator_version="v1" if source == "llm_judge" else None, created_at=now))
    at = open_page(PAGE)
    assert not at.exception
    table = at.dataframe[1].value
    assert table["evaluator"].tolist() == ["verdict-judge"] and table["verdict"].tolist() == ["unreliable"]
    assert "Not reliable yet: verdict-judge on verdict" in shown(at)
    assert at.dataframe[2].value["human"].tolist() == ["fail", "pass"]  # the confusion matrix


def test_an_evaluator_where_lower_is_better(app_db: str) -> None:
    at = open_page(PAGE)
    at.selectbox(key="ev_type").set_value("regex").run()
    at.text_input(key="ev_name").input("apologises")
    at.text_input(key="ev_pattern").input("sorry")
    at.checkbox(key="ev_lower").check()
    at.button(key="FormSubmitter:ev_new_form-Save evaluator").click().run()
    assert not at.exception
    (info,) = list_evaluators(app_db)
    assert info.config["higher_is_better"] is False
