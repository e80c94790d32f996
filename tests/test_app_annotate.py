"""The Annotate page through AppTest: queues listed per role, the labeling flow writing labels,
scores and a dataset item, and queue management (rules, agreement)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from looplab.annotation import queues
from looplab.annotation.score_configs import create_score_config
from looplab.annotation.users import add_user
from looplab.datasets.datasets import create_dataset
from looplab.datasets.items import items_at
from looplab.store.engine import read_session
from looplab.store.ingest import insert_traces
from looplab.store.models import Annotation
from tests.stored import stored_scores
from tests.test_app import MAIN, texts

START = datetime.now(timezone.utc) - timedelta(hours=3)


def chat_trace(number: int) -> dict:
    """A support chat: retrieval, a tool call and an LLM answer."""
    trace_id = f"{number:032x}"
    at = START + timedelta(minutes=number)
    question = f"Where is my parcel number {number}?"
    answer = f"Your parcel {number} arrives on Friday."
    return {
        "trace_id": trace_id, "name": "support-chat", "start_time": at, "end_time": at + timedelta(seconds=2),
        "user_id": "u1", "input": {"question": question}, "output": answer, "status": "ok",
        "spans": [
            {"span_id": f"{number:012x}0001", "kind": "retrieval", "name": "search", "start_time": at,
             "end_time": at + timedelta(milliseconds=100), "input": question,
             "output": [{"text": "Parcels ship within 2 days.", "title": "Shipping policy"}]},
            {"span_id": f"{number:012x}0002", "kind": "tool", "name": "track_parcel", "start_time": at,
             "end_time": at + timedelta(milliseconds=200), "input": {"parcel": number}, "output": {"eta": "Friday"}},
            {"span_id": f"{number:012x}0003", "kind": "llm", "name": "chat", "model": "gpt-4o-mini",
             "provider": "openai", "start_time": at + timedelta(milliseconds=300), "end_time": at + timedelta(seconds=2),
             "input": [{"role": "system", "content": "You are Fernhill's support assistant."},
                       {"role": "user", "content": question}],
             "output": {"role": "assistant", "content": answer}},
        ],
    }


@pytest.fixture
def annotated(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, queues.QueueView]]:
    """Three chats in a queue scored on correctness (categories) and helpfulness (1-5)."""
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    insert_traces(db_url, [chat_trace(n) for n in (1, 2, 3)])
    create_score_config(db_url, "correctness", "categorical",
                        categories=[{"label": "correct", "value": 1}, {"label": "incorrect", "value": 0}],
                        description="Is every fact right?")
    create_score_config(db_url, "helpfulness", "numeric", min_value=1, max_value=5, step=1)
    queue = queues.create_queue(db_url, "Parcels", score_configs=["correctness", "helpfulness"],
                                instructions="Check the delivery dates.")
    queues.add_traces(db_url, queue.id, [f"{n:032x}" for n in (1, 2, 3)])
    yield db_url, queue


def annotate(**query: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("app_pages/annotate.py").run()
    return at


def on_page(page: str) -> AppTest:
    """The app run once, then switched to ``app_pages/<page>.py``."""
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    return at


def button(at: AppTest, label: str):  # noqa: ANN201 - AppTest's element type
    return next(b for b in at.button if b.label == label)


def test_an_empty_store_says_how_to_start(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    at = annotate()
    assert not at.exception
    assert "No annotation queues yet" in texts(at)
    assert "Score configs" in texts(at)  # a queue needs configs first: the page says where to make them


def test_the_queue_list_shows_progress(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    at = annotate()
    assert not at.exception
    assert "Parcels" in texts(at)
    assert any("0 of 3 done" in (p.proto.text or "") for p in at.get("progress"))
    lease = queues.next_item(url, queue.id, "local")
    queues.submit_label(url, lease.item_id, "local", {"correctness": "correct"})
    at.run()
    assert any("1 of 3 done · 2 to go · 1 labelled by you today" in (p.proto.text or "") for p in at.get("progress"))


def test_labeling_writes_the_label_its_scores_and_moves_on(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    at = annotate(queue=str(queue.id))
    assert not at.exception
    page = texts(at)
    assert "Parcels" in page and "Why it is here" not in page
    assert [m.markdown[0].value if m.markdown else None for m in at.chat_message] is not None
    spoken = [t.value for t in at.text]
    assert "Where is my parcel number 1?" in spoken and "Your parcel 1 arrives on Friday." in spoken
    item = queues.progress(url, queue.id, "local")
    first = queues.next_item(url, queue.id, "local")
    at.session_state[f"ann_{first.item_id}_correctness"] = "incorrect"
    at.session_state[f"ann_{first.item_id}_helpfulness"] = 2.0
    at.text_area(key=f"ann_comment_{first.item_id}").set_value("Wrong day")
    at.text_area(key=f"ann_corrected_{first.item_id}").set_value("Your parcel 1 arrives on Monday.")
    button(at, "Submit & next").click().run()
    assert not at.exception
    with read_session(url) as session:
        (label,) = session.scalars(select(Annotation)).all()
        assert (label.author, label.values_json, label.comment, label.corrected_output_json) == (
            "local", {"correctness": "incorrect", "helpfulness": 2.0}, "Wrong day", "Your parcel 1 arrives on Monday.")
    scores = {(s["name"], s["label"], s["value"], s["author"]) for s in stored_scores(url)}
    assert scores == {("correctness", "incorrect", 0.0, "local"), ("helpfulness", None, 2.0, "local")}
    assert item.done == 0 and queues.progress(url, queue.id, "local").done == 1
    assert "Where is my parcel number 2?" in [t.value for t in at.text]  # the next one is up


def test_the_labeling_view_shows_each_assignees_progress(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    add_user(url, "ana", "correct horse battery", "annotator")
    add_user(url, "ben", "battery staple horse", "annotator")
    queues.update_queue(url, queue.id, assignees=["ana", "ben"])
    lease = queues.next_item(url, queue.id, "ana")
    queues.submit_label(url, lease.item_id, "ana", {"correctness": "correct"})
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.session_state["auth_username"] = "ana"
    at.query_params["queue"] = str(queue.id)
    at.run()
    assert not at.exception
    assert not [e for e in at.expander if e.label == "Labels per person"]  # in plain view, not folded away
    people = at.dataframe[0].value
    assert list(zip(people["person"], people["assigned"], people["labelled"], people["today"])) == [
        ("ana", True, 1, 1), ("ben", True, 0, 0)]


def test_queue_forms_say_who_sees_a_queue_and_offer_only_active_configs(
        annotated: tuple[str, queues.QueueView]) -> None:
    from looplab.annotation.score_configs import archive_score_config, get_score_config  # noqa: PLC0415

    url, queue = annotated
    create_score_config(url, "tone", "categorical", categories=[{"label": "friendly"}, {"label": "curt"}])
    archive_score_config(url, get_score_config(url, "tone").id)
    at = annotate()
    new = at.multiselect(key="qa_new_configs")
    assert new.options == ["correctness", "helpfulness"]
    assert "only once they are assigned" in at.multiselect(key="qa_new_assignees").help
    archive_score_config(url, get_score_config(url, "helpfulness").id)
    at = annotate(manage=str(queue.id))
    settings = at.multiselect(key=f"qa_{queue.id}_set_configs")
    assert settings.options == ["correctness", "helpfulness (archived)"]  # still attached: shown, kept on save
    assert "No assignees yet: annotators do not see this queue" in texts(at)
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception
    assert queues.get_queue(url, queue.id).score_configs == ("correctness", "helpfulness")


def test_a_bad_label_is_explained_and_nothing_is_stored(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    at = annotate(queue=str(queue.id))
    button(at, "Submit & next").click().run()
    assert not at.exception
    assert any("Nothing to submit" in e.value for e in at.error)
    assert queues.progress(url, queue.id, "local").done == 0


def test_add_to_dataset_from_the_labeling_view(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    create_dataset(url, "parcel-golden")
    at = annotate(queue=str(queue.id))
    lease = queues.next_item(url, queue.id, "local")
    at.session_state[f"ann_{lease.item_id}_correctness"] = "correct"
    at.selectbox(key="ann_dataset").set_value("parcel-golden")
    button(at, "Add to dataset").click().run()
    assert not at.exception
    page = items_at(url, "parcel-golden")
    (item,) = page.items
    assert item.expected_output == "Your parcel 1 arrives on Friday."
    assert item.metadata["labels"] == {"correctness": "correct"} and item.source_trace_id == lease.trace_id


def test_add_to_dataset_takes_the_items_resolved_labels_and_the_traces_output(db_url: str,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    structured = {**chat_trace(1), "output": {"answer": "Your parcel 1 arrives on Friday.", "eta": "Friday"}}
    insert_traces(db_url, [structured])
    create_score_config(db_url, "correctness", "categorical",
                        categories=[{"label": "correct", "value": 1}, {"label": "incorrect", "value": 0}])
    create_score_config(db_url, "helpfulness", "numeric", min_value=1, max_value=5, step=1)
    queue = queues.create_queue(db_url, "Pairs", score_configs=["correctness", "helpfulness"], annotations_per_item=2)
    queues.add_traces(db_url, queue.id, [structured["trace_id"]])
    ben = queues.next_item(db_url, queue.id, "ben")
    queues.submit_label(db_url, ben.item_id, "ben", {"correctness": "correct", "helpfulness": 4})
    create_dataset(db_url, "parcel-golden")
    at = annotate(queue=str(queue.id))
    at.session_state[f"ann_{ben.item_id}_correctness"] = "correct"
    at.session_state[f"ann_{ben.item_id}_helpfulness"] = 2.0  # one step from ben's 4: not agreed
    at.selectbox(key="ann_dataset").set_value("parcel-golden")
    button(at, "Add to dataset").click().run()
    assert not at.exception
    (item,) = items_at(db_url, "parcel-golden").items
    assert item.metadata["labels"] == {"correctness": "correct"}
    # The trace's own output, as stored: not the last LLM call's text turned into a string.
    assert item.expected_output == {"answer": "Your parcel 1 arrives on Friday.", "eta": "Friday"}


def test_skip_and_later_move_on(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    at = annotate(queue=str(queue.id))
    button(at, "Skip").click().run()
    assert "Where is my parcel number 2?" in [t.value for t in at.text]
    button(at, "Later").click().run()
    assert "Where is my parcel number 3?" in [t.value for t in at.text]
    assert not at.exception


def test_an_annotator_sees_only_their_queues_and_no_management(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    add_user(url, "ana", "correct horse battery", "annotator")
    add_user(url, "ben", "battery staple horse", "annotator")
    queues.update_queue(url, queue.id, assignees=["ana"])
    queues.create_queue(url, "Ben only", score_configs=["correctness"], assignees=["ben"])
    queues.create_queue(url, "Nobody yet", score_configs=["correctness"])
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.session_state["auth_username"] = "ana"
    at.run()
    assert not at.exception
    page = texts(at)
    assert "Parcels" in page and "Ben only" not in page and "Nobody yet" not in page
    assert not [b for b in at.button if b.label in ("Manage",)]
    assert not [e for e in at.expander if e.label == "New queue"]
    at.query_params["manage"] = str(queue.id)
    at.run()
    assert "Check the delivery dates" not in texts(at) and not at.tabs  # no management tabs for annotators


def test_managing_a_queue_adds_a_rule_and_shows_agreement(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    extra = queues.create_queue(url, "Sampled", score_configs=["correctness"], annotations_per_item=2)
    at = annotate(manage=str(extra.id))
    assert not at.exception and [t.label for t in at.tabs] == ["Items", "Rules", "Agreement", "Settings"]
    at.text_input(key=f"qa_{extra.id}_rule_name").set_value("all chats")
    at.slider(key=f"qa_{extra.id}_rule_rate").set_value(100)
    at.selectbox(key=f"qa_{extra.id}_rule_backfill").set_value("everything stored")
    next(b for b in at.button if b.label == "Save rule and backfill").click().run()
    assert not at.exception
    assert any("3 traces queued now" in s.value for s in at.success)
    assert queues.get_queue(url, extra.id).items == 3
    assert "No item has two labels yet" in " ".join(str(v) for v in at.dataframe[-1].value["note"])


def test_needs_attention_sends_a_selection_to_a_queue(annotated: tuple[str, queues.QueueView]) -> None:
    url, queue = annotated
    failed = chat_trace(4)
    failed.update(status="error", error="RateLimitError 429")
    insert_traces(url, [failed])
    at = on_page("monitoring")
    at.session_state["mon_attention"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    button(at, "Send 1 selected to the queue").click().run()
    assert not at.exception
    items, total = queues.list_items(url, queue.id)
    assert total == 4 and items[-1].trace_id == failed["trace_id"] and items[-1].reason == "needs attention: Errors"


def test_the_trace_list_sends_its_whole_filter_to_a_queue(annotated: tuple[str, queues.QueueView]) -> None:
    url, _ = annotated
    everything = queues.create_queue(url, "Everything", score_configs=["correctness"])
    at = on_page("traces")
    button(at, "Add all 3 traces of this filter").click().run()
    assert not at.exception
    assert any("Added 3 traces to Everything" in s.value for s in at.success)
    assert queues.get_queue(url, everything.id).items == 3


def test_the_trace_list_sends_every_search_match_to_a_queue(annotated: tuple[str, queues.QueueView]) -> None:
    url, _ = annotated
    searched = queues.create_queue(url, "Searched", score_configs=["correctness"])
    at = on_page("traces")
    at.text_input(key="trc_q").set_value("parcel").run()
    at.selectbox(key="trc_size").set_value(25).run()
    at.selectbox(key="trc_queue_search_queue").set_value("Searched")
    button(at, "Add all 3 traces the search finds").click().run()
    assert not at.exception
    assert any("Added 3 traces to Searched" in s.value for s in at.success)
    items, _ = queues.list_items(url, searched.id)
    assert {i.reason for i in items} == {"search: parcel"}


def test_a_trace_can_be_scored_by_hand_and_queued_from_its_detail(annotated: tuple[str, queues.QueueView]) -> None:
    url, _ = annotated
    target = queues.create_queue(url, "By hand", score_configs=["correctness"])
    trace_id = f"{2:032x}"
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.query_params["trace"] = trace_id
    at.run()
    at.switch_page("app_pages/traces.py").run()
    assert not at.exception
    at.selectbox(key="trc_queue_one_queue").set_value("By hand")
    button(at, "Add to queue").click().run()
    assert queues.list_items(url, target.id)[0][0].trace_id == trace_id
    at.selectbox(key=f"manual_score_{trace_id}_config").set_value("helpfulness").run()
    at.session_state[f"manual_score_{trace_id}_helpfulness_value"] = 4.0
    next(b for b in at.button if b.label == "Save score").click().run()
    assert not at.exception
    assert [(s["name"], s["value"], s["author"]) for s in stored_scores(url) if s["trace_id"] == trace_id] == [
        ("helpfulness", 4.0, "local")]


def test_the_score_configs_page_creates_a_boolean_and_a_free_text_config(db_url: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from looplab.annotation.score_configs import get_score_config, score_value  # noqa: PLC0415

    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    at = on_page("score_configs")
    at.segmented_control(key="sc_new_type").set_value("boolean").run()
    assert "Yes or no; stored as 1 or 0." in texts(at)
    at.text_input(key="sc_new_name").input("resolved")
    at.text_area(key="sc_new_rubric").input("Yes when the customer needs nothing more.")
    at.button(key="FormSubmitter:sc_new_form-Create").click().run()
    assert not at.exception and "Created resolved." in [m.value for m in at.success]
    at.segmented_control(key="sc_new_type").set_value("text").run()
    at.text_input(key="sc_new_name").input("what went wrong")
    at.button(key="FormSubmitter:sc_new_form-Create").click().run()
    assert not at.exception and "Created what went wrong." in [m.value for m in at.success]

    resolved, note = get_score_config(db_url, "resolved"), get_score_config(db_url, "what went wrong")
    assert (resolved.data_type, resolved.description) == ("boolean", "Yes when the customer needs nothing more.")
    assert score_value(resolved, "yes") == (1.0, "true")
    assert (note.data_type, note.min_value, note.categories) == ("text", None, ())
    listed = next(d.value for d in at.dataframe if "name" in d.value.columns)
    assert list(zip(listed["name"], listed["type"])) == [("resolved", "boolean"), ("what went wrong", "text")]
    # Both can be filled in by annotators: a queue takes them.
    assert queues.create_queue(db_url, "Wrap-up", score_configs=["resolved", "what went wrong"]).score_configs == (
        "resolved", "what went wrong")
