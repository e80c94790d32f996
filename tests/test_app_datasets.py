"""The Datasets page and "Add to dataset" on the trace detail, driven through AppTest on real
databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from looplab.datasets import (
    NewItem,
    add_items,
    create_dataset,
    get_item,
    item_history,
    items_at,
    list_datasets,
    versions,
)
from looplab.store.ingest import insert_traces
from tests.test_app import open_page, texts


@pytest.fixture
def app_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LOOPLAB_DATABASE_URL", db_url)
    yield db_url


def select_row(at: AppTest, key: str, row: int) -> None:
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()


def shown(at: AppTest) -> str:
    """What the page says, messages included, with Markdown escapes removed."""
    return (texts(at) + "\n" + "\n".join(s.value for s in at.success)).replace("\\", "")


def golden(url: str, count: int = 30) -> list[str]:
    create_dataset(url, "golden", "Reviewed support answers")
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    return add_items(url, "golden", [NewItem(f"question {words[i % 6]}-{i}", f"answer {i}") for i in range(count)])


def test_empty_state_says_what_to_do(app_db: str) -> None:
    at = open_page("app_pages/datasets.py")
    assert not at.exception, at.exception
    assert "No datasets yet. Create one below" in texts(at)


def test_create_a_dataset_and_land_on_it(app_db: str) -> None:
    at = open_page("app_pages/datasets.py")
    at.text_input(key="ds_new_name").set_value("support-golden")
    at.text_area(key="ds_new_description").set_value("Answers our reviewers checked")
    at.button(key="FormSubmitter:ds_create-Create dataset").click().run()

    assert not at.exception, at.exception
    assert [d.name for d in list_datasets(app_db)] == ["support-golden"]
    assert at.query_params["dataset"] == "support-golden"
    assert at.title[0].value == "support\\-golden"
    assert "This dataset has no items yet. Import a JSONL or CSV file" in texts(at)

    # The same name again is refused with a message.
    at = open_page("app_pages/datasets.py")
    at.text_input(key="ds_new_name").set_value("support-golden")
    at.button(key="FormSubmitter:ds_create-Create dataset").click().run()
    assert "already exists" in at.error[0].value and len(list_datasets(app_db)) == 1


def test_list_shows_counts_and_opens_a_dataset(app_db: str) -> None:
    golden(app_db, 3)
    at = open_page("app_pages/datasets.py")
    listed = at.dataframe[0].value
    assert list(listed["name"]) == ["golden"] and list(listed["items"]) == [3]
    select_row(at, "ds_table", 0)
    assert not at.exception and at.query_params["dataset"] == "golden"


def test_browse_search_and_page_through_items(app_db: str) -> None:
    golden(app_db)
    at = open_page("app_pages/datasets.py", dataset="golden")
    assert not at.exception, at.exception
    assert "Items 1–25 of 30" in texts(at)
    assert len(at.dataframe[0].value) == 25

    at.button(key="ds_next").click().run()
    assert "Items 26–30 of 30" in texts(at) and len(at.dataframe[0].value) == 5

    at.text_input(key="ds_q").set_value("charlie").run()
    assert "Items 1–5 of 5" in texts(at)
    assert all("charlie" in text for text in at.dataframe[0].value["input"])

    at.text_input(key="ds_q").set_value("zulu").run()
    assert "No item matches the search" in texts(at)


def test_edit_an_item_makes_a_version_and_keeps_the_old_one(app_db: str) -> None:
    first, *_ = golden(app_db, 3)
    original = get_item(app_db, "golden", first)
    at = open_page("app_pages/datasets.py", dataset="golden")
    select_row(at, "ds_items_table", 0)
    assert at.subheader[0].value == f"Item {first}"

    at.text_area(key=f"ds_edit_{original.version_id}_expected").set_value("a much better answer")
    at.button(key=f"FormSubmitter:ds_edit_{original.version_id}-Save as a new version").click().run()

    assert not at.exception, at.exception
    assert [h.expected_output for h in item_history(app_db, first)] == ["answer 0", "a much better answer"]
    assert "Saved a new version of item" in shown(at)
    history = [e.label for e in at.expander if e.label.startswith("Version ")]
    assert len(history) == 2 and history[0].startswith("Version 2: from") and history[0].endswith("current")
    assert "until" in history[1]
    assert any(t.value == "answer 0" for t in at.text)  # the old version is still readable

    # The earlier version of the dataset still shows the old answer.
    earlier = versions(app_db, "golden")[1].time
    at.selectbox(key="ds_version").set_value(earlier).run()
    assert not at.exception, at.exception
    assert at.query_params["version"].startswith(f"{earlier:%Y-%m-%dT%H:%M:%S}")
    assert at.dataframe[0].value["expected output"][0] == "answer 0"
    select_row(at, "ds_items_table", 0)
    assert "This is a past version" in texts(at)


def test_delete_an_item(app_db: str) -> None:
    first, second, third = golden(app_db, 3)
    version_id = get_item(app_db, "golden", first).version_id
    at = open_page("app_pages/datasets.py", dataset="golden")
    select_row(at, "ds_items_table", 0)
    at.checkbox(key=f"ds_edit_{version_id}_confirm").check().run()
    at.button(key=f"ds_edit_{version_id}_delete").click().run()

    assert not at.exception, at.exception
    assert [i.item_id for i in items_at(app_db, "golden").items] == [second, third]
    assert "Deleted item" in shown(at)


def test_import_a_bad_file_shows_each_line_and_stores_nothing(app_db: str) -> None:
    golden(app_db, 2)
    at = open_page("app_pages/datasets.py", dataset="golden")
    bad = b'{"input": "fine", "expected_output": "ok"}\n{"input": "broken",\n{"input": "x", "expected": "y"}\n'
    at.file_uploader(key="ds_imp_file_0").set_value(("cases.jsonl", bad, "application/jsonl")).run()
    at.button(key="ds_imp_go").click().run()

    assert not at.exception, at.exception
    assert "Nothing was imported: the file has 2 problems" in at.error[0].value
    problems = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert list(problems["line"]) == [2, 3] and "unknown key 'expected'" in problems["problem"][1]
    assert items_at(app_db, "golden").total == 2


def test_import_a_csv_with_a_column_mapping(app_db: str) -> None:
    golden(app_db, 1)
    at = open_page("app_pages/datasets.py", dataset="golden")
    data = "question,answer,topic\nWhere is my parcel?,Account > Orders,shipping\nCafé?,Oui,menu\n".encode()
    at.file_uploader(key="ds_imp_file_0").set_value(("faq.csv", data, "text/csv")).run()
    assert "CSV with 2 rows" in texts(at) and "Pick the column that holds the input" in texts(at)

    at.multiselect(key="ds_imp_input").set_value(["question"]).run()
    at.selectbox(key="ds_imp_expected").set_value("answer").run()
    at.multiselect(key="ds_imp_metadata").set_value(["topic"]).run()
    at.button(key="ds_imp_go").click().run()

    assert not at.exception, at.exception
    assert "Imported 2 items from faq.csv: a new version of this dataset." in shown(at)
    items = items_at(app_db, "golden").items
    assert [(i.input, i.expected_output, i.metadata) for i in items[1:]] == [
        ("Where is my parcel?", "Account > Orders", {"topic": "shipping"}), ("Café?", "Oui", {"topic": "menu"})]


def test_export_buttons_and_archive(app_db: str) -> None:
    golden(app_db, 2)
    at = open_page("app_pages/datasets.py", dataset="golden")
    assert {b.label for b in at.get("download_button")} == {"Download JSONL", "Download CSV"}
    at.button(key="ds_archive").click().run()
    assert not at.exception, at.exception
    assert list_datasets(app_db) == [] and "Archived" in texts(at)
    at.button(key="ds_unarchive").click().run()
    assert [d.name for d in list_datasets(app_db)] == ["golden"]


def test_a_missing_dataset_link(app_db: str) -> None:
    at = open_page("app_pages/datasets.py", dataset="nope")
    assert not at.exception and "There is no dataset named 'nope'" in at.warning[0].value


# --- from the trace detail -------------------------------------------------------------------------


TRACE = {
    "trace_id": "t-refund", "name": "support-chat", "start_time": "2026-03-01T10:00:00Z",
    "end_time": "2026-03-01T10:00:02Z", "input": {"message": "How long do refunds take?"},
    "output": {"reply": "Up to 30 days."},
    "spans": [{"span_id": "root", "kind": "span", "name": "support-chat", "start_time": "2026-03-01T10:00:00Z",
               "end_time": "2026-03-01T10:00:02Z"}],
}


def test_add_to_a_new_dataset_from_the_trace_detail(app_db: str) -> None:
    insert_traces(app_db, [TRACE])
    at = open_page("app_pages/traces.py", trace="t-refund")
    assert not at.exception, at.exception
    assert any(e.label == "Add to dataset" for e in at.expander)

    at.selectbox(key="trc_atd_t-refund_dataset").set_value("＋ New dataset…").run()
    at.text_input(key="trc_atd_t-refund_new_name").set_value("refunds")
    at.text_area(key="trc_atd_t-refund_expected").set_value('{"reply": "Within 2 business days."}')
    at.button(key="trc_atd_t-refund_add").click().run()

    assert not at.exception, at.exception
    assert "Added to **refunds**" in at.success[0].value
    [item] = items_at(app_db, "refunds").items
    assert item.input == {"message": "How long do refunds take?"}
    assert item.expected_output == {"reply": "Within 2 business days."}
    assert item.metadata["added_by"] == "local" and item.source_trace_id == "t-refund"

    # Again into the same dataset: a message pointing at the item, nothing added.
    at.run()
    at.selectbox(key="trc_atd_t-refund_dataset").set_value("refunds").run()
    at.button(key="trc_atd_t-refund_add").click().run()
    assert "already in the dataset 'refunds'" in at.warning[0].value.replace("\\", "")
    assert items_at(app_db, "refunds").total == 1


def test_the_dataset_item_links_back_to_its_trace(app_db: str) -> None:
    insert_traces(app_db, [TRACE])
    at = open_page("app_pages/traces.py", trace="t-refund")
    at.selectbox(key="trc_atd_t-refund_dataset").set_value("＋ New dataset…").run()
    at.text_input(key="trc_atd_t-refund_new_name").set_value("refunds")
    at.button(key="trc_atd_t-refund_add").click().run()

    at = open_page("app_pages/datasets.py", dataset="refunds")
    assert at.dataframe[0].value["source trace"][0] == "/traces?trace=t-refund"
    select_row(at, "ds_items_table", 0)
    links = at.get("page_link")
    assert any("t-refund" in link.proto.label and "trace=t-refund" in link.proto.query_string for link in links)


def test_add_from_the_trace_detail_records_the_traces_labels(app_db: str) -> None:
    from looplab.annotation import queues  # noqa: PLC0415
    from looplab.annotation.score_configs import create_score_config, record_manual_score  # noqa: PLC0415

    insert_traces(app_db, [TRACE])
    create_score_config(app_db, "correctness", "categorical", categories=[{"label": "correct", "value": 1},
                                                                           {"label": "incorrect", "value": 0}])
    create_score_config(app_db, "tone", "categorical", categories=[{"label": "friendly"}, {"label": "curt"}])
    record_manual_score(app_db, "t-refund", "tone", "curt", "eve")
    queue = queues.create_queue(app_db, "Refunds", score_configs=["correctness"])
    queues.add_traces(app_db, queue.id, ["t-refund"])
    lease = queues.next_item(app_db, queue.id, "ana")
    queues.submit_label(app_db, lease.item_id, "ana", {"correctness": "incorrect"},
                        corrected_output={"reply": "Within 2 business days."})

    at = open_page("app_pages/traces.py", trace="t-refund")
    assert "Labels recorded with the item: tone curt, correctness incorrect" in shown(at)
    at.selectbox(key="trc_atd_t-refund_dataset").set_value("＋ New dataset…").run()
    at.text_input(key="trc_atd_t-refund_new_name").set_value("refunds")
    at.button(key="trc_atd_t-refund_add").click().run()

    assert not at.exception, at.exception
    [item] = items_at(app_db, "refunds").items
    assert item.metadata["labels"] == {"tone": "curt", "correctness": "incorrect"}
    assert item.expected_output == {"reply": "Within 2 business days."}  # ana's correction, kept as JSON
