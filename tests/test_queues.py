"""Annotation queues: items get in once, leases hand each item to one annotator at a time (threads
and processes included), expired leases return items, skip and come-back-later, and rules that
backfill and keep sampling."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from looplab.annotation import queues, rules
from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session, write_session
from looplab.store.filters import TraceFilter
from looplab.store.ingest import insert_traces
from looplab.store.models import Annotation, QueueItem, ScoreConfig
from tests.test_monitoring import trace

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def add_configs(url: str) -> None:
    with write_session(url) as session:
        session.execute(insert(ScoreConfig), [
            {"name": "correctness", "data_type": "categorical", "created_at": NOW,
             "categories_json": [{"label": "correct", "value": 1}, {"label": "incorrect", "value": 0}]},
            {"name": "helpfulness", "data_type": "numeric", "min_value": 0, "max_value": 1, "step": 0.1,
             "created_at": NOW},
        ])


def history(url: str, count: int, *, start: datetime = NOW - timedelta(hours=5), names: list[str] | None = None) -> list[str]:
    """``count`` traces a minute apart, oldest first; returns their ids."""
    ids = [f"t{i:04d}" for i in range(count)]
    insert_traces(url, [trace(t, start + timedelta(minutes=i), 1000, name=(names or ["support-chat"])[i % len(names or [1])])
                        for i, t in enumerate(ids)])
    return ids


@pytest.fixture
def queue(db_url: str) -> queues.QueueView:
    add_configs(db_url)
    history(db_url, 6)
    return queues.create_queue(db_url, "Triage", score_configs=["correctness"], instructions="Is it right?")


def done_by_comment(url: str, lease: queues.Lease, user: str) -> None:
    queues.submit_label(url, lease.item_id, user, {}, comment=f"seen by {user}")


# --- queues and items -------------------------------------------------------------------------------


def test_a_queue_needs_a_free_name_and_existing_configs(db_url: str) -> None:
    add_configs(db_url)
    made = queues.create_queue(db_url, "  Triage ", score_configs=["correctness", "helpfulness"])
    assert (made.name, made.score_configs, made.annotations_per_item) == ("Triage", ("correctness", "helpfulness"), 1)
    with pytest.raises(ConfigError, match="exists already"):
        queues.create_queue(db_url, "Triage", score_configs=["correctness"])
    with pytest.raises(ConfigError, match="No score config named 'tone'"):
        queues.create_queue(db_url, "Tone", score_configs=["tone"])
    with pytest.raises(ConfigError, match="at least one score config"):
        queues.create_queue(db_url, "Empty", score_configs=[])
    with pytest.raises(ConfigError, match="between 1"):
        queues.create_queue(db_url, "Zero", score_configs=["correctness"], annotations_per_item=0)
    with pytest.raises(ConfigError, match="No active user 'ana'"):
        queues.create_queue(db_url, "Assigned", score_configs=["correctness"], assignees=["ana"])
    assert [q.name for q in queues.list_queues(db_url)] == ["Triage"]  # the failed ones left nothing behind


def test_the_same_trace_never_lands_twice(db_url: str, queue: queues.QueueView) -> None:
    first = queues.add_traces(db_url, queue.id, ["t0000", "t0001", "t0001"])
    again = queues.add_traces(db_url, queue.id, ["t0001", "t0002", "nope"])
    assert (first.added, first.already_queued) == (2, 0)
    assert (again.added, again.already_queued, again.not_found) == (1, 1, ("nope",))
    assert "Added 1 trace to Triage. 1 was already in it. 1 not found: nope." == again.message("Triage")
    assert queues.get_queue(db_url, queue.id).items == 3


def test_a_bulk_selection_follows_the_filter(db_url: str) -> None:
    add_configs(db_url)
    history(db_url, 9, names=["support-chat", "refund", "refund"])
    queue = queues.create_queue(db_url, "Refunds", score_configs=["correctness"])
    flt = TraceFilter.last("24h", NOW, names=["refund"])
    result = queues.add_filtered(db_url, queue.id, flt, reason="refund review")
    assert result.added == 6
    items, total = queues.list_items(db_url, queue.id, now=NOW)
    assert total == 6 and {i.reason for i in items} == {"refund review"}
    with pytest.raises(ConfigError, match="selects 9 traces, more than 5"):
        queues.add_filtered(db_url, queue.id, TraceFilter.last("24h", NOW), limit=5)


# --- leases ---------------------------------------------------------------------------------------


def test_two_annotators_get_different_items_and_keep_their_own(db_url: str, queue: queues.QueueView) -> None:
    queues.add_traces(db_url, queue.id, ["t0000", "t0001", "t0002"])
    ana = queues.next_item(db_url, queue.id, "ana", now=NOW)
    ben = queues.next_item(db_url, queue.id, "ben", now=NOW)
    assert ana and ben and (ana.trace_id, ben.trace_id) == ("t0000", "t0001")
    assert queues.next_item(db_url, queue.id, "ana", now=NOW + timedelta(minutes=1)).item_id == ana.item_id
    assert ana.expires_at == NOW + timedelta(minutes=queues.DEFAULT_LEASE_MINUTES)
    assert queues.progress(db_url, queue.id, "cy", now=NOW).leased == 2


def test_an_expired_lease_returns_the_item_to_the_pool(db_url: str, queue: queues.QueueView) -> None:
    queues.add_traces(db_url, queue.id, ["t0000"])
    ana = queues.next_item(db_url, queue.id, "ana", now=NOW)
    assert queues.next_item(db_url, queue.id, "ben", now=NOW + timedelta(minutes=14)) is None
    later = NOW + timedelta(minutes=15, seconds=1)
    assert queues.get_lease(db_url, ana.item_id, "ana", now=later) is None
    ben = queues.next_item(db_url, queue.id, "ben", now=later)
    assert ben is not None and ben.item_id == ana.item_id
    # Ana's label, sent late, is still kept: work is never thrown away.
    queues.submit_label(db_url, ana.item_id, "ana", {}, comment="late but right", now=later)
    assert queues.progress(db_url, queue.id, "ana", now=later).done == 1


def test_a_queue_short_lease_expires_at_its_own_time(db_url: str) -> None:
    add_configs(db_url)
    history(db_url, 1)
    queue = queues.create_queue(db_url, "Quick", score_configs=["correctness"], lease_minutes=2)
    queues.add_traces(db_url, queue.id, ["t0000"])
    ana = queues.next_item(db_url, queue.id, "ana", now=NOW)
    assert ana.expires_at == NOW + timedelta(minutes=2)
    assert queues.next_item(db_url, queue.id, "ben", now=NOW + timedelta(minutes=1, seconds=59)) is None
    ben = queues.next_item(db_url, queue.id, "ben", now=NOW + timedelta(minutes=2, seconds=1))
    assert ben is not None and ben.item_id == ana.item_id  # not the default 15 minutes
    # A changed lease time applies to the next lease handed out.
    queues.update_queue(db_url, queue.id, lease_minutes=5)
    queues.release_lease(db_url, ben.item_id, "ben")
    assert queues.next_item(db_url, queue.id, "cy", now=NOW).expires_at == NOW + timedelta(minutes=5)


def test_skip_is_per_person_and_later_moves_the_item_behind(db_url: str, queue: queues.QueueView) -> None:
    queues.add_traces(db_url, queue.id, ["t0000", "t0001", "t0002"])
    first = queues.next_item(db_url, queue.id, "ana", now=NOW)
    queues.skip_item(db_url, first.item_id, "ana", now=NOW)
    assert queues.next_item(db_url, queue.id, "ana", now=NOW).trace_id == "t0001"
    assert queues.next_item(db_url, queue.id, "ben", now=NOW).trace_id == "t0000"  # others still get it
    queues.come_back_later(db_url, queues.next_item(db_url, queue.id, "ana", now=NOW).item_id, "ana")
    assert queues.next_item(db_url, queue.id, "ana", now=NOW).trace_id == "t0002"
    queues.come_back_later(db_url, queues.next_item(db_url, queue.id, "ana", now=NOW).item_id, "ana")
    assert queues.next_item(db_url, queue.id, "ana", now=NOW).trace_id == "t0001"


def test_several_labels_per_item_come_from_different_people(db_url: str) -> None:
    add_configs(db_url)
    history(db_url, 2)
    queue = queues.create_queue(db_url, "Agreement", score_configs=["correctness"], annotations_per_item=2)
    queues.add_traces(db_url, queue.id, ["t0000", "t0001"])
    labelled: dict[str, list[str]] = {"ana": [], "ben": []}
    for user in ("ana", "ana", "ben", "ben"):
        lease = queues.next_item(db_url, queue.id, user, now=NOW)
        labelled[user].append(lease.trace_id)
        done_by_comment(db_url, lease, user)
    assert labelled == {"ana": ["t0000", "t0001"], "ben": ["t0000", "t0001"]}
    assert queues.next_item(db_url, queue.id, "ana", now=NOW) is None
    assert queues.next_item(db_url, queue.id, "cy", now=NOW) is None  # both items have their two labels
    state = queues.progress(db_url, queue.id, "ana", now=NOW)
    assert (state.items, state.done, state.mine_total, state.labels_by_author) == (2, 2, 2, {"ana": 2, "ben": 2})
    with pytest.raises(ConfigError, match="already labelled"):
        queues.submit_label(db_url, lease.item_id, "ben", {}, comment="twice")


def test_progress_lists_every_assignee_with_labels_in_all_and_today(db_url: str) -> None:
    from looplab.annotation.users import add_user  # noqa: PLC0415

    add_configs(db_url)
    history(db_url, 4)
    for user in ("ana", "ben", "cy"):
        add_user(db_url, user, "a long passphrase", "annotator")
    queue = queues.create_queue(db_url, "Team", score_configs=["correctness"], assignees=["ana", "ben"],
                                annotations_per_item=2)
    queues.add_traces(db_url, queue.id, ["t0000", "t0001", "t0002", "t0003"])
    yesterday = NOW - timedelta(days=1)
    for user, when in (("ana", yesterday), ("ana", NOW), ("ana", NOW), ("local", NOW)):
        lease = queues.next_item(db_url, queue.id, user, now=when)
        queues.submit_label(db_url, lease.item_id, user, {"correctness": "correct"}, now=when)
    state = queues.progress(db_url, queue.id, "ana", now=NOW)
    # Ben is assigned and has done nothing: he is listed with zeros. An admin who helped is listed
    # too; cy, neither assigned nor labelling, is not.
    assert [(p.username, p.assigned, p.done, p.today) for p in state.people] == [
        ("ana", True, 3, 2), ("local", False, 1, 1), ("ben", True, 0, 0)]
    assert (state.mine_total, state.mine_today) == (3, 2)
    assert state.labels_by_author == {"ana": 3, "local": 1}
    other = queues.create_queue(db_url, "Other", score_configs=["correctness"], assignees=["ana"])
    queues.add_traces(db_url, other.id, ["t0000"])
    queues.submit_label(db_url, queues.next_item(db_url, other.id, "ana", now=NOW).item_id, "ana",
                        {"correctness": "incorrect"}, now=NOW)
    assert queues.labels_today(db_url, "ana", now=NOW) == {queue.id: 2, other.id: 1}
    assert queues.labels_today(db_url, "ben", now=NOW) == {}


def test_an_empty_label_is_refused_and_stores_nothing(db_url: str, queue: queues.QueueView) -> None:
    queues.add_traces(db_url, queue.id, ["t0000"])
    lease = queues.next_item(db_url, queue.id, "ana", now=NOW)
    with pytest.raises(ConfigError, match="Nothing to submit"):
        queues.submit_label(db_url, lease.item_id, "ana", {"correctness": None}, comment="  ")
    with pytest.raises(ConfigError, match="does not score tone"):
        queues.submit_label(db_url, lease.item_id, "ana", {"tone": "friendly"})
    with read_session(db_url) as session:
        assert session.scalars(select(Annotation)).all() == []
    assert queues.get_lease(db_url, lease.item_id, "ana", now=NOW) is not None


def _lease_until_empty(url: str, queue_id: int, user: str, out: list[str]) -> None:
    while (lease := queues.next_item(url, queue_id, user)) is not None:
        out.append(lease.trace_id)
        queues.submit_label(url, lease.item_id, user, {}, comment="ok")


def test_threads_never_get_the_same_item(db_url: str) -> None:
    add_configs(db_url)
    ids = history(db_url, 60)
    queue = queues.create_queue(db_url, "Busy", score_configs=["correctness"])
    queues.add_traces(db_url, queue.id, ids)
    got: list[list[str]] = [[] for _ in range(6)]
    threads = [threading.Thread(target=_lease_until_empty, args=(db_url, queue.id, f"user{i}", got[i]))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    every = [t for mine in got for t in mine]
    assert sorted(every) == ids  # each item exactly once
    assert sum(1 for mine in got if mine) >= 2  # the work really was shared


def _worker(url: str, queue_id: int, user: str, results: multiprocessing.Queue) -> None:
    from looplab.store.engine import dispose_engines  # noqa: PLC0415 (fresh process)

    out: list[str] = []
    try:
        _lease_until_empty(url, queue_id, user, out)
    finally:
        dispose_engines()
        results.put((user, out))


def test_two_processes_never_get_the_same_item(db_url: str) -> None:
    add_configs(db_url)
    ids = history(db_url, 80)
    queue = queues.create_queue(db_url, "Processes", score_configs=["correctness"])
    queues.add_traces(db_url, queue.id, ids)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_worker, args=(db_url, queue.id, f"proc{i}", results)) for i in range(2)]
    for w in workers:
        w.start()
    got = dict(results.get(timeout=180) for _ in workers)
    for w in workers:
        w.join(timeout=30)
    assert sorted(got["proc0"] + got["proc1"]) == ids


def test_an_annotator_sees_and_leases_only_queues_assigned_to_them(db_url: str) -> None:
    from looplab.annotation.users import Viewer, add_user  # noqa: PLC0415

    add_configs(db_url)
    history(db_url, 2)
    add_user(db_url, "ana", "a long passphrase", "annotator")
    add_user(db_url, "ben", "another passphrase", "annotator")
    unassigned = queues.create_queue(db_url, "Unassigned", score_configs=["correctness"])
    mine = queues.create_queue(db_url, "Ana's", score_configs=["correctness"], assignees=["ana"])
    queues.add_traces(db_url, unassigned.id, ["t0000"])
    queues.add_traces(db_url, mine.id, ["t0001"])
    ana, ben = Viewer("ana", "Ana", "annotator"), Viewer("ben", "Ben", "annotator")
    # A queue without assignees is not "everyone's": annotators see it once they are assigned.
    assert [q.name for q in queues.list_queues(db_url, ana)] == ["Ana's"]
    assert queues.list_queues(db_url, ben) == []
    assert not queues.can_work_on(db_url, mine.id, ben) and not queues.can_work_on(db_url, unassigned.id, ana)
    with pytest.raises(ConfigError, match="not assigned to you"):
        queues.next_item(db_url, unassigned.id, "ana", now=NOW)
    assert queues.next_item(db_url, mine.id, "ana", now=NOW).trace_id == "t0001"
    # Admins and engineers see every queue and may label in any of them.
    assert len(queues.list_queues(db_url, Viewer("eng", "Eng", "engineer"))) == 2
    assert queues.can_work_on(db_url, unassigned.id, Viewer("eng", "Eng", "engineer"))
    assert queues.next_item(db_url, unassigned.id, "local", now=NOW).trace_id == "t0000"
    queues.update_queue(db_url, unassigned.id, assignees=["ben"])
    assert [q.name for q in queues.list_queues(db_url, ben)] == ["Unassigned"]


def test_unknown_things_are_reported(db_url: str) -> None:
    with pytest.raises(NotFound):
        queues.get_queue(db_url, 42)
    with pytest.raises(NotFound):
        queues.next_item(db_url, 42, "ana")
    with pytest.raises(NotFound):
        queues.skip_item(db_url, 42, "ana")


# --- rules ----------------------------------------------------------------------------------------


def test_a_rule_backfills_a_sample_and_picks_up_new_traces(db_url: str) -> None:
    add_configs(db_url)
    history(db_url, 40)
    queue = queues.create_queue(db_url, "Sampled", score_configs=["correctness"])
    rule, added = rules.create_rule(db_url, queue.id, "a quarter", TraceFilter(), 0.25, now=NOW)
    assert added == 10 and (rule.seen, rule.taken) == (40, 10)
    assert rules.run_rule(db_url, rule.id, now=NOW + timedelta(minutes=5)) == 0  # nothing new, nothing twice
    insert_traces(db_url, [trace(f"new{i}", NOW + timedelta(minutes=i), 500) for i in range(8)])
    # Six are two minutes old (the settling time); the others wait. Of 46 seen, the 41st and 45th are taken.
    assert rules.run_rule(db_url, rule.id, now=NOW + timedelta(minutes=8)) == 2
    assert rules.get_rule(db_url, rule.id).seen == 46
    assert rules.run_rules(db_url, now=NOW + timedelta(hours=1)) == {"a quarter": 0}
    assert rules.get_rule(db_url, rule.id).seen == 48
    assert queues.get_queue(db_url, queue.id).items == 12


def test_a_rule_waits_for_traces_as_long_as_the_longest_one_so_a_late_row_is_not_missed(db_url: str) -> None:
    add_configs(db_url)
    history(db_url, 3)
    insert_traces(db_url, [trace("agent-run-0", NOW - timedelta(hours=2), 6 * 60_000)])  # agents here take minutes
    queue = queues.create_queue(db_url, "Everything", score_configs=["correctness"])
    rule, added = rules.create_rule(db_url, queue.id, "all", TraceFilter(), 1.0, now=NOW)
    assert added == 4
    insert_traces(db_url, [trace("quick", NOW, 500)])
    # Three minutes on, "quick" is past the two minutes of settling, but an agent run that started
    # before it could still be running: the rule waits.
    assert rules.run_rule(db_url, rule.id, now=NOW + timedelta(minutes=3)) == 0
    # That run ends five minutes after it started, and only then is its row written.
    insert_traces(db_url, [trace("agent-run-1", NOW - timedelta(minutes=1), 5 * 60_000)])
    assert rules.run_rule(db_url, rule.id, now=NOW + timedelta(minutes=20)) == 2
    items, _ = queues.list_items(db_url, queue.id, limit=10)
    assert {"agent-run-1", "quick"} <= {i.trace_id for i in items}


def test_the_model_stratum_is_the_model_of_the_first_llm_call(db_url: str) -> None:
    add_configs(db_url)
    routed = trace("routed", NOW - timedelta(hours=1), 3000, model="zeta-router")
    routed["spans"].append({"span_id": "routed-answer", "kind": "llm", "name": "chat", "model": "alpha-large",
                            "start_time": NOW - timedelta(hours=1) + timedelta(seconds=1),
                            "end_time": NOW - timedelta(hours=1) + timedelta(seconds=2)})
    insert_traces(db_url, [routed])
    queue = queues.create_queue(db_url, "By model", score_configs=["correctness"])
    rule, _ = rules.create_rule(db_url, queue.id, "models", TraceFilter(), 1.0, stratify_by="model", now=NOW)
    assert set(rule.strata) == {"zeta-router"}  # first called, though "alpha-large" sorts first


def test_a_rule_stratifies_so_every_value_is_represented(db_url: str) -> None:
    add_configs(db_url)
    names = ["support-chat"] * 30 + ["refund"] * 3 + ["escalation"]
    insert_traces(db_url, [trace(f"s{i:02d}", NOW - timedelta(hours=2) + timedelta(minutes=i), 900, name=n)
                           for i, n in enumerate(names)])
    queue = queues.create_queue(db_url, "Strata", score_configs=["correctness"])
    rule, added = rules.create_rule(db_url, queue.id, "by name", TraceFilter(), 0.1, stratify_by="name", now=NOW)
    assert rule.strata == {"support-chat": (30, 3), "refund": (3, 1), "escalation": (1, 1)}
    assert added == 5
    plain, plain_added = rules.create_rule(
        db_url, queues.create_queue(db_url, "Plain", score_configs=["correctness"]).id, "plain", TraceFilter(), 0.1,
        now=NOW)
    assert plain_added == 4  # ceil(34 * 0.1): the rare names may be missed without strata


def test_a_rule_keeps_to_its_filter_and_can_start_from_now(db_url: str) -> None:
    add_configs(db_url)
    history(db_url, 12, names=["support-chat", "refund"])
    queue = queues.create_queue(db_url, "Refunds", score_configs=["correctness"])
    rule, added = rules.create_rule(db_url, queue.id, "refunds", TraceFilter(names=("refund",)), 1.0, now=NOW)
    items, _ = queues.list_items(db_url, queue.id, now=NOW)
    assert added == 6 and all(i.reason == "rule: refunds" for i in items)
    assert "every trace where name is refund" == rule.describe()
    fresh, added = rules.create_rule(db_url, queue.id, "from now", TraceFilter(), 1.0, backfill=False, now=NOW)
    assert added == 0
    with pytest.raises(ConfigError, match="more than 0%"):
        rules.create_rule(db_url, queue.id, "bad", TraceFilter(), 0)
    with pytest.raises(ConfigError, match="Cannot stratify by 'colour'"):
        rules.create_rule(db_url, queue.id, "bad", TraceFilter(), 0.5, stratify_by="colour")


def test_a_paused_rule_catches_up_when_resumed(db_url: str) -> None:
    add_configs(db_url)
    queue = queues.create_queue(db_url, "Paused", score_configs=["correctness"])
    rule, _ = rules.create_rule(db_url, queue.id, "all", TraceFilter(), 1.0, now=NOW - timedelta(hours=6))
    rules.set_rule_enabled(db_url, rule.id, False)
    history(db_url, 5)
    assert rules.run_rules(db_url, now=NOW) == {}
    assert rules.run_rule(db_url, rule.id, now=NOW) == 0  # run by id, too
    assert queues.get_queue(db_url, queue.id).items == 0
    rules.set_rule_enabled(db_url, rule.id, True)
    assert rules.run_rules(db_url, now=NOW) == {"all": 5}
    with read_session(db_url) as session:
        assert session.scalar(select(QueueItem.reason).limit(1)) == "rule: all"


def test_rules_of_an_archived_queue_stop_filling_it_and_catch_up_when_it_is_back(db_url: str) -> None:
    add_configs(db_url)
    queue = queues.create_queue(db_url, "Old", score_configs=["correctness"])
    rule, _ = rules.create_rule(db_url, queue.id, "all", TraceFilter(), 1.0, now=NOW - timedelta(hours=6))
    queues.archive_queue(db_url, queue.id)
    history(db_url, 5)
    assert rules.run_rules(db_url, now=NOW) == {}
    assert rules.run_rule(db_url, rule.id, now=NOW) == 0  # run by id, too
    assert queues.get_queue(db_url, queue.id).items == 0
    queues.archive_queue(db_url, queue.id, archived=False)
    assert rules.run_rules(db_url, now=NOW) == {"all": 5}


def test_queue_forms_offer_active_configs_and_a_queue_keeps_an_archived_one(db_url: str) -> None:
    from looplab.annotation.score_configs import archive_score_config, get_score_config  # noqa: PLC0415

    add_configs(db_url)
    queue = queues.create_queue(db_url, "Kept", score_configs=["correctness", "helpfulness"])
    archive_score_config(db_url, get_score_config(db_url, "helpfulness").id)
    assert [c.name for c in queues.score_config_choices(db_url)] == ["correctness"]
    offered = queues.score_config_choices(db_url, queue.id)
    assert [(c.name, c.archived) for c in offered] == [("correctness", False), ("helpfulness", True)]
    # Saving the settings keeps the archived config attached; a new queue cannot take it.
    kept = queues.update_queue(db_url, queue.id, instructions="Same configs",
                               score_configs=["correctness", "helpfulness"])
    assert kept.score_configs == ("correctness", "helpfulness")
    with pytest.raises(ConfigError, match="or it is archived"):
        queues.create_queue(db_url, "New", score_configs=["helpfulness"])
    queues.update_queue(db_url, queue.id, score_configs=["correctness"])
    with pytest.raises(ConfigError, match="or it is archived"):  # once taken off, it cannot come back
        queues.update_queue(db_url, queue.id, score_configs=["correctness", "helpfulness"])


def test_a_search_sends_every_match_not_only_a_page(db_url: str) -> None:
    add_configs(db_url)
    # More matches than the explorer's largest page (1,000), so the search really spans pages.
    asked = [{**trace(f"r{i:04d}", NOW - timedelta(seconds=i), 800), "input": f"refund for order {i}"}
             for i in range(1100)]
    other = [{**trace(f"o{i:04d}", NOW - timedelta(seconds=i), 800), "input": f"where is parcel {i}"}
             for i in range(5)]
    insert_traces(db_url, asked + other)
    queue = queues.create_queue(db_url, "Refunds", score_configs=["correctness"])
    flt = TraceFilter.last("24h", NOW + timedelta(minutes=1))
    result = queues.add_searched(db_url, queue.id, flt, "refund", reason="search: refund")
    assert (result.added, queues.get_queue(db_url, queue.id).items) == (1100, 1100)
    items, _ = queues.list_items(db_url, queue.id, limit=2000, now=NOW)
    assert {i.trace_id for i in items} == {t["trace_id"] for t in asked} and items[0].reason == "search: refund"
    with pytest.raises(ConfigError, match="more than 1,000 traces"):
        queues.add_searched(db_url, queue.id, flt, "refund", limit=1000)


def test_the_queue_commands(db_url: str) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from looplab.cli import app  # noqa: PLC0415

    add_configs(db_url)
    history(db_url, 8)
    queue = queues.create_queue(db_url, "Weekly", score_configs=["correctness"], annotations_per_item=2)
    rules.create_rule(db_url, queue.id, "half", TraceFilter(), 0.5, backfill=False, now=NOW - timedelta(hours=6))
    runner = CliRunner()
    synced = runner.invoke(app, ["queue", "sync", "--db", db_url])
    assert synced.exit_code == 0 and "half: 4 traces queued" in synced.output
    listed = runner.invoke(app, ["queue", "list", "--db", db_url])
    assert "Weekly" in listed.output and "correctness" in listed.output
    for user, label in (("ana", "correct"), ("ben", "correct")):
        for _ in range(4):
            lease = queues.next_item(db_url, queue.id, user, now=NOW)
            queues.submit_label(db_url, lease.item_id, user, {"correctness": label}, now=NOW)
    agreed = runner.invoke(app, ["queue", "agreement", "Weekly", "--db", db_url])
    assert agreed.exit_code == 0 and "correctness" in agreed.output and "not measured" in agreed.output
    missing = runner.invoke(app, ["queue", "agreement", "Nope", "--db", db_url])
    assert missing.exit_code == 2 and "No queue named 'Nope'" in missing.output
