"""Agreement between annotators, against values worked out by hand, and adjudication."""

from __future__ import annotations

from datetime import timedelta

import pytest

from looplab.annotation import agreement, queues
from looplab.annotation.agreement import PendingLabel
from looplab.annotation.score_configs import create_score_config
from looplab.annotation.users import LOCAL_ADMIN, Viewer
from looplab.errors import ConfigError
from looplab.explorer import trace_detail
from tests.stored import stored_scores
from tests.test_queues import NOW, add_configs, history


def test_cohens_kappa_by_hand() -> None:
    # 50 items: both yes 20, yes/no 5, no/yes 10, both no 15. p_o = 35/50 = 0.7;
    # p_e = (25/50)(30/50) + (25/50)(20/50) = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert agreement.cohens_kappa(first, second) == pytest.approx(0.4)
    assert agreement.cohens_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert agreement.cohens_kappa(["a", "a"], ["a", "a"]) is None  # no variation: undefined


def test_krippendorff_alpha_by_hand() -> None:
    # Interval, 2 raters, 3 items: (1, 2), (3, 3), (5, 4). Observed disagreement: each differing
    # pair counts twice, (1 + 1 + 0 + 0 + 1 + 1) / 6 = 2/3. Expected: over all ordered pairs of the
    # six values 1 2 3 3 5 4, sum of squared differences = 2 * (6 * 64 - 18^2) = 120, / (6 * 5) = 4.
    # alpha = 1 - (2/3) / 4 = 5/6.
    ratings = [{"a": 1, "b": 2}, {"a": 3, "b": 3}, {"a": 5, "b": 4}]
    assert agreement.krippendorff_alpha(ratings, "interval") == pytest.approx(5 / 6)
    # Krippendorff's own example (Content Analysis, 2004): 4 coders, 12 units, missing values; nominal 0.743.
    table = [[1, 1, None, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
             [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [None, 5, 5, 5], [None, None, 1, 1], [None, None, 3, None]]
    units = [{r: v for r, v in zip("ABCD", row) if v is not None} for row in table]
    assert agreement.krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert agreement.krippendorff_alpha([{"a": 1, "b": 1}], "nominal") is None


@pytest.fixture
def labelled(db_url: str) -> tuple[str, int]:
    """Four traces labelled by ana and ben: resolved (boolean), correctness (ordered categories)
    and helpfulness (numeric)."""
    add_configs(db_url)
    create_score_config(db_url, "resolved", "boolean", description="Did the reply resolve the request?")
    history(db_url, 4)
    queue = queues.create_queue(db_url, "Pairs", score_configs=["resolved", "correctness", "helpfulness"],
                                annotations_per_item=2)
    queues.add_traces(db_url, queue.id, ["t0000", "t0001", "t0002", "t0003"])
    labels = {
        "ana": [(True, "correct", 0.9), (True, "correct", 0.8), (False, "incorrect", 0.2), (False, "incorrect", 0.1)],
        "ben": [(True, "correct", 0.9), (False, "incorrect", 0.3), (False, "incorrect", 0.2), (False, "incorrect", 0.1)],
    }
    for user, given in labels.items():
        for resolved, correctness, helpfulness in given:
            lease = queues.next_item(db_url, queue.id, user, now=NOW)
            queues.submit_label(db_url, lease.item_id, user,
                                {"resolved": resolved, "correctness": correctness, "helpfulness": helpfulness},
                                comment=None, corrected_output="Fixed answer" if user == "ben" else None, now=NOW)
    return db_url, queue.id


def test_agreement_per_config_of_a_queue(labelled: tuple[str, int]) -> None:
    url, queue_id = labelled
    by_config = {a.config: a for a in agreement.agreement(url, queue_id)}
    resolved = by_config["resolved"]
    # ana: Y Y N N, ben: Y N N N. p_o = 3/4; p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2; kappa = 0.5.
    assert (resolved.statistic, resolved.items, resolved.annotators) == ("Cohen's kappa", 4, 2)
    assert resolved.value == pytest.approx(0.5)
    assert resolved.percent_agreement == pytest.approx(0.75) and resolved.disagreements == 1
    assert resolved.reading == "unreliable"
    # Ordered options (correct 1, incorrect 0) are compared as ranks: ordinal alpha, same split.
    correctness = by_config["correctness"]
    assert correctness.statistic == "Krippendorff's alpha (ordinal)" and correctness.disagreements == 1
    # Two categories: 8 values (3 correct, 5 incorrect), one split pair counted both ways;
    # alpha = 1 - (n - 1) * 2 / (2 * 3 * 5) = 1 - 14/30.
    assert correctness.value == pytest.approx(1 - 14 / 30)
    helpfulness = by_config["helpfulness"]
    assert helpfulness.statistic == "Krippendorff's alpha (interval)"
    # One split of 0.5: observed 2 * 0.25 / 8; expected 2 * (8 * 2.45 - 3.5^2) / (8 * 7) = 0.2625.
    assert helpfulness.value == pytest.approx(1 - (0.5 / 8) / 0.2625) and helpfulness.reading == "tentative"
    assert helpfulness.disagreements == 1  # 0.8 against 0.3; the others are the same value


def test_disagreements_are_listed_and_an_admin_settles_them(labelled: tuple[str, int]) -> None:
    url, queue_id = labelled
    (split,) = agreement.disagreements(url, queue_id, "correctness")
    assert (split.trace_id, split.values, split.adjudicated) == ("t0001", {"ana": "correct", "ben": "incorrect"}, None)
    before = agreement.resolved_labels(url, split.item_id)
    assert before.unresolved == ["resolved", "correctness", "helpfulness"] and "correctness" not in before.values
    assert before.corrected_output == "Fixed answer" and before.annotators == ["ana", "ben"]

    with pytest.raises(ConfigError, match="Only an admin"):
        agreement.adjudicate(url, split.item_id, Viewer("ben", "Ben", "annotator"), {"correctness": "correct"})
    with pytest.raises(ConfigError, match="must be one of"):
        agreement.adjudicate(url, split.item_id, LOCAL_ADMIN, {"correctness": "sort of"})
    agreement.adjudicate(url, split.item_id, LOCAL_ADMIN, {"correctness": "incorrect", "helpfulness": 0.4},
                         comment="the refund window is 30 days", now=NOW + timedelta(hours=1))
    after = agreement.resolved_labels(url, split.item_id)
    assert after.values == {"correctness": "incorrect", "helpfulness": 0.4}
    assert (after.unresolved, after.adjudicated_by) == (["resolved"], "local")
    assert agreement.disagreements(url, queue_id, "correctness")[0].adjudicated == "incorrect"
    adjudicated = [s for s in stored_scores(url) if (s["metadata_json"] or {}).get("adjudicated")]
    assert {(s["name"], s["label"], s["value"], s["author"]) for s in adjudicated} == {
        ("correctness", "incorrect", 0.0, "local"), ("helpfulness", None, 0.4, "local")}
    # Downstream, the ruling is the item's one score of each settled name: the annotators' scores
    # of those names are gone from the trace (their labels stay, with who said what).
    on_trace = {(s["name"], s["author"]) for s in stored_scores(url) if s["trace_id"] == "t0001"}
    assert on_trace == {("correctness", "local"), ("helpfulness", "local"), ("resolved", "ana"), ("resolved", "ben")}
    detail = trace_detail(url, "t0001")
    assert sorted((s.name, s.value) for s in detail.scores if s.name != "resolved") == [
        ("correctness", 0.0), ("helpfulness", 0.4)]
    assert agreement.agreement(url, queue_id)[0].items == 4  # agreement still reads every label


def test_labels_become_human_scores_with_their_author(labelled: tuple[str, int]) -> None:
    url, _ = labelled
    scores = [s for s in stored_scores(url) if s["trace_id"] == "t0000"]
    assert {(s["name"], s["author"], s["source"]) for s in scores} == {
        ("resolved", "ana", "human"), ("resolved", "ben", "human"),
        ("correctness", "ana", "human"), ("correctness", "ben", "human"),
        ("helpfulness", "ana", "human"), ("helpfulness", "ben", "human")}
    assert all(s["created_at"] == NOW for s in scores)


def test_a_queue_without_double_labels_says_so(db_url: str) -> None:
    add_configs(db_url)
    queue = queues.create_queue(db_url, "Single", score_configs=["correctness"])
    (only,) = [a for a in agreement.agreement(db_url, queue.id) if a.config == "correctness"]
    assert only.value is None and "two labels" in (only.note or "")


def test_one_step_apart_is_a_disagreement_left_for_the_admin(db_url: str) -> None:
    create_score_config(db_url, "stars", "numeric", min_value=1, max_value=5, step=1)
    create_score_config(db_url, "share", "numeric", min_value=0, max_value=1, step=0.1)
    history(db_url, 2)
    queue = queues.create_queue(db_url, "Stars", score_configs=["share", "stars"], annotations_per_item=2)
    queues.add_traces(db_url, queue.id, ["t0000", "t0001"])
    given = {"ana": [(3, 0.3), (5, 0.1 * 3)], "ben": [(4, 0.3), (5, 0.3)]}  # 0.1 * 3 is 0.30000000000000004
    for user, values in given.items():
        for stars, share in values:
            lease = queues.next_item(db_url, queue.id, user, now=NOW)
            queues.submit_label(db_url, lease.item_id, user, {"stars": stars, "share": share}, now=NOW)
    (split,) = agreement.disagreements(db_url, queue.id)
    assert (split.trace_id, split.config, split.values) == ("t0000", "stars", {"ana": 3, "ben": 4})
    by_config = {a.config: a for a in agreement.agreement(db_url, queue.id)}
    assert (by_config["stars"].disagreements, by_config["stars"].percent_agreement) == (1, 0.5)
    assert (by_config["share"].disagreements, by_config["share"].percent_agreement) == (0, 1.0)
    before = agreement.resolved_labels(db_url, split.item_id)
    assert before.unresolved == ["stars"] and "stars" not in before.values  # not silently the last label
    agreement.adjudicate(db_url, split.item_id, LOCAL_ADMIN, {"stars": 4})
    assert agreement.resolved_labels(db_url, split.item_id).values == {"stars": 4, "share": 0.3}


@pytest.fixture
def split_item(labelled: tuple[str, int]) -> tuple[str, int, int]:
    """``labelled``'s t0001: ana and ben disagree on all three scores."""
    url, queue_id = labelled
    (split,) = agreement.disagreements(url, queue_id, "correctness")
    return url, queue_id, split.item_id


def test_settling_one_score_at_a_time_keeps_the_earlier_ones(split_item: tuple[str, int, int]) -> None:
    url, _, item_id = split_item
    agreement.adjudicate(url, item_id, LOCAL_ADMIN, {"correctness": "incorrect"}, corrected_output="Ruled answer",
                         now=NOW + timedelta(hours=1))
    agreement.adjudicate(url, item_id, LOCAL_ADMIN, {"resolved": False}, now=NOW + timedelta(hours=2))
    agreement.adjudicate(url, item_id, LOCAL_ADMIN, {"correctness": "correct"}, now=NOW + timedelta(hours=3))
    settled = agreement.resolved_labels(url, item_id)
    assert settled.values == {"resolved": False, "correctness": "correct"}
    assert (settled.unresolved, settled.corrected_output) == (["helpfulness"], "Ruled answer")
    scores = sorted((s["name"], s["label"], s["author"]) for s in stored_scores(url) if s["trace_id"] == "t0001")
    assert scores == [("correctness", "correct", "local"), ("helpfulness", None, "ana"),
                      ("helpfulness", None, "ben"), ("resolved", "false", "local")]


def test_a_label_after_the_ruling_adds_no_competing_score(db_url: str) -> None:
    add_configs(db_url)
    history(db_url, 1)
    queue = queues.create_queue(db_url, "Three", score_configs=["correctness", "helpfulness"], annotations_per_item=3)
    queues.add_traces(db_url, queue.id, ["t0000"])
    for user, label in (("ana", "correct"), ("ben", "incorrect")):
        lease = queues.next_item(db_url, queue.id, user, now=NOW)
        queues.submit_label(db_url, lease.item_id, user, {"correctness": label}, now=NOW)
    agreement.adjudicate(db_url, lease.item_id, LOCAL_ADMIN, {"correctness": "correct"})
    late = queues.next_item(db_url, queue.id, "cy", now=NOW)
    queues.submit_label(db_url, late.item_id, "cy", {"correctness": "incorrect", "helpfulness": 0.7}, now=NOW)
    scores = sorted((s["name"], s["label"] or s["value"], s["author"]) for s in stored_scores(db_url))
    assert scores == [("correctness", "correct", "local"), ("helpfulness", 0.7, "cy")]
    # The label itself is kept: the disagreement lists cy's value next to the ruling.
    (split,) = agreement.disagreements(db_url, queue.id, "correctness")
    assert split.values == {"ana": "correct", "ben": "incorrect", "cy": "incorrect"} and split.adjudicated == "correct"


def test_trace_labels_merge_queues_manual_scores_and_the_label_on_screen(db_url: str) -> None:
    from looplab.annotation.score_configs import record_manual_score  # noqa: PLC0415

    add_configs(db_url)
    create_score_config(db_url, "resolved", "boolean")
    create_score_config(db_url, "note", "text")
    history(db_url, 1)
    record_manual_score(db_url, "t0000", "helpfulness", 0.2, "eve")
    record_manual_score(db_url, "t0000", "helpfulness", 0.6, "eve")  # the latest manual score counts
    record_manual_score(db_url, "t0000", "resolved", True, "eve")
    record_manual_score(db_url, "t0000", "note", "asks twice", "eve")
    assert agreement.trace_labels(db_url, "t0000").values == {"helpfulness": 0.6, "resolved": True,
                                                              "note": "asks twice"}
    queue = queues.create_queue(db_url, "Pair", score_configs=["correctness", "helpfulness"], annotations_per_item=2)
    queues.add_traces(db_url, queue.id, ["t0000"])
    lease = queues.next_item(db_url, queue.id, "ana", now=NOW)
    queues.submit_label(db_url, lease.item_id, "ana", {"correctness": "correct", "helpfulness": 0.9},
                        corrected_output="Ana's fix", now=NOW)
    labels = agreement.trace_labels(db_url, "t0000")
    assert labels.values == {"helpfulness": 0.9, "resolved": True, "note": "asks twice", "correctness": "correct"}
    assert labels.corrected_output == "Ana's fix"
    # Ben's label, still on screen: it fills what nobody labelled and joins the agreement check.
    pending = PendingLabel(lease.item_id, "ben", {"correctness": "incorrect", "helpfulness": 0.9},
                           corrected_output="Ben's fix")
    with_ben = agreement.trace_labels(db_url, "t0000", pending)
    assert with_ben.values == {"helpfulness": 0.9, "resolved": True, "note": "asks twice"}
    assert (with_ben.unresolved, with_ben.corrected_output) == (["correctness"], "Ben's fix")
    agreement.adjudicate(db_url, lease.item_id, LOCAL_ADMIN, {"correctness": "incorrect"})
    assert agreement.trace_labels(db_url, "t0000", pending).values["correctness"] == "incorrect"
