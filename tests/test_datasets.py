"""Datasets as services, on SQLite and PostgreSQL: names, versions by time, edits that keep the
old version readable, deletes, reading any past version, search and pages, items from traces."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import looplab
from looplab.datasets import (
    AlreadyInDataset,
    NewItem,
    add_item,
    add_items,
    add_labelled_trace,
    add_trace_to_dataset,
    archive_dataset,
    create_dataset,
    current_version,
    delete_item,
    edit_item,
    get_dataset,
    get_item,
    item_history,
    items_at,
    iter_items,
    list_datasets,
    unarchive_dataset,
    versions,
)
from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session
from looplab.store.ingest import insert_traces
from looplab.store.models import DatasetItem


def item_rows(url: str) -> int:
    with read_session(url) as session:
        return session.scalar(select(func.count()).select_from(DatasetItem)) or 0


def golden(url: str, count: int = 3) -> list[str]:
    create_dataset(url, "golden", "Reviewed answers")
    return add_items(url, "golden", [NewItem(f"question {i}", f"answer {i}", {"n": i}) for i in range(count)])


# --- datasets ------------------------------------------------------------------------------------------


def test_create_list_and_get(db_url: str) -> None:
    assert list_datasets(db_url) == []
    created = create_dataset(db_url, "  golden  ", "Reviewed answers")

    assert (created.name, created.description, created.item_count) == ("golden", "Reviewed answers", 0)
    add_items(db_url, "golden", [NewItem("a", "b"), NewItem("c", "d")])
    [listed] = list_datasets(db_url)
    assert (listed.name, listed.item_count) == ("golden", 2) and listed.last_change > created.created_at
    assert get_dataset(db_url, "golden").item_count == 2


@pytest.mark.parametrize(("name", "message"), [
    ("", "needs a name"), ("   ", "needs a name"), ("a\nb", "one line"), ("x" * 256, "at most 255"),
])
def test_bad_names_are_refused(db_url: str, name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_dataset(db_url, name)


def test_names_are_unique_archived_ones_included(db_url: str) -> None:
    create_dataset(db_url, "golden")
    with pytest.raises(ConfigError, match="already exists; pick another name"):
        create_dataset(db_url, "golden")
    archive_dataset(db_url, "golden")
    with pytest.raises(ConfigError, match=r"already exists \(archived\): unarchive it"):
        create_dataset(db_url, "golden")


def test_a_missing_dataset_names_the_ones_there_are(db_url: str) -> None:
    create_dataset(db_url, "golden")
    with pytest.raises(NotFound, match="no dataset named 'gold'. Datasets: golden."):
        get_dataset(db_url, "gold")


def test_archive_hides_and_freezes_a_dataset_until_unarchived(db_url: str) -> None:
    [first, *_] = golden(db_url)

    archived = archive_dataset(db_url, "golden")

    assert archived.archived and list_datasets(db_url) == []
    assert [d.name for d in list_datasets(db_url, include_archived=True)] == ["golden"]
    assert items_at(db_url, "golden").total == 3  # still readable
    for change in (lambda: add_items(db_url, "golden", [NewItem("x")]),
                   lambda: edit_item(db_url, "golden", first, expected_output="new"),
                   lambda: delete_item(db_url, "golden", first)):
        with pytest.raises(ConfigError, match="is archived, so its items cannot change; unarchive it first"):
            change()
    with pytest.raises(ConfigError, match="already archived"):
        archive_dataset(db_url, "golden")

    unarchive_dataset(db_url, "golden")
    assert edit_item(db_url, "golden", first, expected_output="new").expected_output == "new"


# --- versions -------------------------------------------------------------------------------------------


def test_an_edit_is_a_new_version_and_the_old_one_stays_readable(db_url: str) -> None:
    first, second, _ = golden(db_url)
    before = current_version(db_url, "golden")
    original = get_item(db_url, "golden", first)

    edited = edit_item(db_url, "golden", first, expected_output="a better answer", based_on=original.version_id)

    assert edited.item_id == first and edited.version_id != original.version_id
    assert (edited.input, edited.expected_output, edited.metadata) == ("question 0", "a better answer", {"n": 0})
    assert edited.valid_from > original.valid_from and edited.valid_to is None
    # Now: the new version; at the earlier version: the old one, untouched.
    assert [i.expected_output for i in items_at(db_url, "golden").items] == ["a better answer", "answer 1", "answer 2"]
    assert [i.expected_output for i in items_at(db_url, "golden", before).items] == ["answer 0", "answer 1", "answer 2"]
    assert get_item(db_url, "golden", first, before).expected_output == "answer 0"
    history = item_history(db_url, first)
    assert [h.expected_output for h in history] == ["answer 0", "a better answer"]
    assert history[0].valid_to == history[1].valid_from == edited.valid_from
    assert item_rows(db_url) == 4  # nothing was changed in place
    # Each write is one version; the counts are the dataset's size from then on.
    assert [(v.item_count, v.added, v.removed) for v in versions(db_url, "golden")] == [(3, 1, 1), (3, 3, 0)]
    assert current_version(db_url, "golden") == edited.valid_from
    assert get_item(db_url, "golden", second).version_id  # others untouched


def test_an_edit_from_a_stale_version_is_refused(db_url: str) -> None:
    [first] = golden(db_url, 1)
    seen = get_item(db_url, "golden", first)
    edit_item(db_url, "golden", first, expected_output="theirs", based_on=seen.version_id)

    with pytest.raises(ConfigError, match="after the version you started from; reload it"):
        edit_item(db_url, "golden", first, expected_output="mine", based_on=seen.version_id)

    assert get_item(db_url, "golden", first).expected_output == "theirs"


def test_an_edit_that_changes_nothing_is_refused(db_url: str) -> None:
    [first] = golden(db_url, 1)
    with pytest.raises(ConfigError, match="Nothing changed"):
        edit_item(db_url, "golden", first, expected_output="answer 0")
    with pytest.raises(ConfigError, match="has no input"):
        edit_item(db_url, "golden", first, input="  ")


def test_delete_closes_the_item_without_a_successor(db_url: str) -> None:
    first, second, third = golden(db_url)
    before = current_version(db_url, "golden")

    deleted_at = delete_item(db_url, "golden", second)

    assert [i.item_id for i in items_at(db_url, "golden").items] == [first, third]
    assert [i.item_id for i in items_at(db_url, "golden", before).items] == [first, second, third]
    assert items_at(db_url, "golden", deleted_at - timedelta(microseconds=1)).total == 3
    assert items_at(db_url, "golden", deleted_at).total == 2
    assert item_history(db_url, second)[-1].valid_to == deleted_at
    assert versions(db_url, "golden")[0].item_count == 2
    with pytest.raises(ConfigError, match="was deleted at .*; a deleted item cannot be changed"):
        edit_item(db_url, "golden", second, expected_output="x")
    with pytest.raises(ConfigError, match="was deleted"):
        delete_item(db_url, "golden", second)
    with pytest.raises(NotFound, match="holds no item"):
        get_item(db_url, "golden", second)


def test_items_of_another_dataset_cannot_be_changed_through_this_one(db_url: str) -> None:
    [first] = golden(db_url, 1)
    create_dataset(db_url, "other")
    with pytest.raises(NotFound, match="The dataset 'other' has no item"):
        edit_item(db_url, "other", first, expected_output="x")
    with pytest.raises(NotFound, match="no dataset item"):
        item_history(db_url, "nope")


def test_items_at_any_past_time(db_url: str) -> None:
    create_dataset(db_url, "golden")
    before_anything = get_dataset(db_url, "golden").created_at
    a = add_item(db_url, "golden", NewItem("a", "1"))
    b = add_item(db_url, "golden", NewItem("b", "2"))
    edit_item(db_url, "golden", a.item_id, expected_output="1b")
    delete_item(db_url, "golden", b.item_id)
    times = [v.time for v in reversed(versions(db_url, "golden"))]

    states = [[(i.input, i.expected_output) for i in items_at(db_url, "golden", t).items] for t in times]

    assert items_at(db_url, "golden", before_anything).items == []
    assert states == [[("a", "1")], [("a", "1"), ("b", "2")], [("a", "1b"), ("b", "2")], [("a", "1b")]]
    assert [v.item_count for v in reversed(versions(db_url, "golden"))] == [1, 2, 2, 1]
    # Between two versions, the earlier one holds.
    assert items_at(db_url, "golden", times[1] + (times[2] - times[1]) / 2).total == 2
    assert [i.input for i in iter_items(db_url, "golden", times[1])] == ["a", "b"]


# --- search and pages -------------------------------------------------------------------------------------


def test_search_and_pages_run_in_the_database(db_url: str) -> None:
    create_dataset(db_url, "golden")
    items = [NewItem(f"question {i}", f"answer {i}") for i in range(30)]
    items += [
        NewItem({"message": "Où est mon colis ?"}, {"reply": "Il arrive demain."}, {"locale": "fr-FR"}),
        NewItem("Refund for ORDER 1234", "Refunds take 2 days", {"intent": "refund_timing"}),
        NewItem('He said "100% off_sale"', None),
    ]
    add_items(db_url, "golden", items)

    page = items_at(db_url, "golden", offset=10, limit=10)
    assert page.total == 33 and [i.input for i in page.items] == [f"question {i}" for i in range(10, 20)]
    assert page.has_previous and page.has_next
    assert items_at(db_url, "golden", offset=30, limit=10).has_next is False

    def found(text: str) -> list[Any]:
        return [i.input for i in items_at(db_url, "golden", search=text).items]

    assert found("refund order") == ["Refund for ORDER 1234"]  # every word, any case, any field
    assert found("REFUND_TIMING") == ["Refund for ORDER 1234"]  # metadata
    assert found("demain") == [{"message": "Où est mon colis ?"}]  # expected output, non-ASCII text
    assert found("colis") == found("Où") == [{"message": "Où est mon colis ?"}]
    assert found('"100%') == ['He said "100% off_sale"']  # quotes, % and _ are literal
    assert found("100%_") == []
    assert items_at(db_url, "golden", search="answer 2", limit=5).total == 12  # 2, 12, 20 to 29: words, not a phrase
    with pytest.raises(ConfigError, match="1 to 1000 at a time"):
        items_at(db_url, "golden", limit=0)


# --- from traces ---------------------------------------------------------------------------------------


def support_trace(trace_id: str, output: Any = None) -> dict[str, Any]:
    return {
        "trace_id": trace_id, "name": "support-chat", "start_time": "2026-03-01T10:00:00Z",
        "end_time": "2026-03-01T10:00:02Z", "input": {"message": "How long do refunds take?"},
        "output": output if output is not None else {"reply": "Refunds take up to 30 days."},
        "spans": [{"span_id": f"{trace_id}-root", "kind": "span", "name": "support-chat",
                   "start_time": "2026-03-01T10:00:00Z", "end_time": "2026-03-01T10:00:02Z"}],
    }


def test_add_a_trace_with_its_corrected_output(db_url: str) -> None:
    insert_traces(db_url, [support_trace("t-1")])
    create_dataset(db_url, "golden")

    item = add_trace_to_dataset(db_url, "golden", "t-1", expected_output={"reply": "Within 2 business days."},
                                labels={"correctness": "incorrect"}, author="maria.k")

    assert item.input == {"message": "How long do refunds take?"}
    assert item.expected_output == {"reply": "Within 2 business days."}
    assert item.metadata == {"source_trace_id": "t-1", "labels": {"correctness": "incorrect"}, "added_by": "maria.k"}
    assert item.source_trace_id == "t-1"
    assert items_at(db_url, "golden").items == [item]


def test_a_trace_without_correction_brings_its_actual_output(db_url: str) -> None:
    insert_traces(db_url, [support_trace("t-1")])

    item = add_trace_to_dataset(db_url, "new-set", "t-1", create_if_missing=True)

    assert item.expected_output == {"reply": "Refunds take up to 30 days."}
    assert item.metadata == {"source_trace_id": "t-1", "labels": {}, "added_by": None}
    assert get_dataset(db_url, "new-set").item_count == 1


def test_a_labelled_trace_brings_its_resolved_labels_and_correction(db_url: str) -> None:
    from looplab.annotation import agreement, queues  # noqa: PLC0415
    from looplab.annotation.score_configs import create_score_config, record_manual_score  # noqa: PLC0415
    from looplab.annotation.users import LOCAL_ADMIN  # noqa: PLC0415

    insert_traces(db_url, [support_trace("t-1"), support_trace("t-2")])
    create_score_config(db_url, "correctness", "categorical", categories=[{"label": "correct", "value": 1},
                                                                          {"label": "incorrect", "value": 0}])
    create_score_config(db_url, "stars", "numeric", min_value=1, max_value=5, step=1)
    record_manual_score(db_url, "t-1", "stars", 2, "eve")
    queue = queues.create_queue(db_url, "Pair", score_configs=["correctness", "stars"], annotations_per_item=2)
    queues.add_traces(db_url, queue.id, ["t-1"])
    for user, label, stars in (("ana", "incorrect", 3), ("ben", "correct", 3)):
        lease = queues.next_item(db_url, queue.id, user)
        queues.submit_label(db_url, lease.item_id, user, {"correctness": label, "stars": stars},
                            corrected_output={"reply": "Within 2 business days."} if user == "ana" else None)

    # From the trace detail: the agreed stars (over the manual score), no correctness while
    # ana and ben disagree, ana's corrected output as the expected output.
    first = add_labelled_trace(db_url, "golden", "t-1", author="maria.k", create_if_missing=True)
    assert first.metadata["labels"] == {"stars": 3}
    assert first.expected_output == {"reply": "Within 2 business days."}
    agreement.adjudicate(db_url, lease.item_id, LOCAL_ADMIN, {"correctness": "incorrect"})
    second = add_labelled_trace(db_url, "other", "t-1", author="maria.k", create_if_missing=True)
    assert second.metadata["labels"] == {"stars": 3, "correctness": "incorrect"}
    # What a person typed wins; a trace nobody labelled keeps its structured output.
    typed = add_labelled_trace(db_url, "typed", "t-1", expected_output="typed", create_if_missing=True)
    assert typed.expected_output == "typed"
    bare = add_labelled_trace(db_url, "golden", "t-2")
    assert (bare.metadata["labels"], bare.expected_output) == ({}, {"reply": "Refunds take up to 30 days."})


def test_a_recorded_trace_becomes_an_item(traced: str) -> None:
    with looplab.trace("support-chat", user_id="u42", input={"message": "Do you ship to Canada?"}) as t:
        t.update(output={"reply": "Yes, in 6-12 business days."})
    assert looplab.flush(timeout=10)

    item = add_trace_to_dataset(traced, "golden", t.trace_id, create_if_missing=True)

    assert item.source_trace_id == t.trace_id
    assert item.input == {"message": "Do you ship to Canada?"}
    assert item.expected_output == {"reply": "Yes, in 6-12 business days."}


def test_the_same_trace_is_added_once(db_url: str) -> None:
    insert_traces(db_url, [support_trace("t-1")])
    first = add_trace_to_dataset(db_url, "golden", "t-1", create_if_missing=True)

    with pytest.raises(AlreadyInDataset, match=f"already in the dataset 'golden' \\(item {first.item_id}\\)") as caught:
        add_trace_to_dataset(db_url, "golden", "t-1", expected_output="other")
    assert caught.value.item == first
    assert items_at(db_url, "golden").total == 1

    # Into another dataset, or again once its item was deleted: fine.
    add_trace_to_dataset(db_url, "other", "t-1", create_if_missing=True)
    delete_item(db_url, "golden", first.item_id)
    again = add_trace_to_dataset(db_url, "golden", "t-1")
    assert again.item_id != first.item_id


def test_adding_a_trace_reports_what_is_missing(db_url: str) -> None:
    insert_traces(db_url, [{**support_trace("no-input"), "input": None}, support_trace("t-1")])
    with pytest.raises(NotFound, match="no trace 'nope'"):
        add_trace_to_dataset(db_url, "golden", "nope", create_if_missing=True)
    with pytest.raises(NotFound, match="no dataset named 'golden'"):
        add_trace_to_dataset(db_url, "golden", "t-1")
    with pytest.raises(ConfigError, match="has no input stored"):
        add_trace_to_dataset(db_url, "golden", "no-input", create_if_missing=True)
    assert list_datasets(db_url) == []  # a failed add creates no dataset
    create_dataset(db_url, "golden")
    archive_dataset(db_url, "golden")
    with pytest.raises(ConfigError, match="archived"):
        add_trace_to_dataset(db_url, "golden", "t-1")
    assert item_rows(db_url) == 0
