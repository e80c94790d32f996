"""Queues for admins and engineers: create one, manage its items, rules, settings, and read how
far its annotators agree (admins settle disagreements); and the "add to a queue" controls other
pages use.

Session state keys carry the ``qa_`` prefix (``qa_new_*`` the new-queue form, ``qa_<queue>_*``
one queue's management tabs); the add-to-queue controls use the ``key`` their caller gives.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from components.formatting import plain
from components.score_input import score_input
from looplab.annotation import agreement, queues, rules
from looplab.annotation.users import Viewer, list_users
from looplab.errors import LooplabError
from looplab.monitoring.metrics import filter_options
from looplab.store.filters import LIST_PARAMS, TraceFilter
from looplab.store.types import utcnow

ITEMS_PER_PAGE = 50
ASSIGNEES_HELP = ("Annotators see a queue only once they are assigned to it; admins and engineers see "
                  "every queue.")
RULE_FILTERS = {"names": "Trace names", "models": "Models", "tags": "Tags", "releases": "Releases",
                "environments": "Environments", "statuses": "Statuses"}


def run_action(action: Any, success: str | None = None) -> Any:
    """Run a service call, showing a ``LooplabError`` as a message instead of a traceback."""
    try:
        result = action()
    except LooplabError as err:
        st.error(str(err))
        return None
    if success:
        st.success(success)
    return result if result is not None else True


# --- creating -------------------------------------------------------------------------------------


def new_queue_form(url: str) -> None:
    """A form creating a queue; says what to do first when there are no score configs yet."""
    configs = [c.name for c in queues.score_config_choices(url)]
    if not configs:
        st.info("A queue scores traces with score configs. Create one on the **Score configs** page first.")
        st.page_link("app_pages/score_configs.py", label="Score configs", icon=":material/tune:")
        return
    people = [u.username for u in list_users(url) if u.role == "annotator" or u.role == "admin" or u.role == "engineer"]
    with st.form("qa_new", clear_on_submit=False):
        name = st.text_input("Name", key="qa_new_name", placeholder="e.g. Refund answers, week 48")
        instructions = st.text_area("Instructions for annotators (Markdown)", key="qa_new_instructions",
                                    placeholder="What to look for, and how to use the scores.")
        chosen = st.multiselect("Score configs to fill in", configs, key="qa_new_configs")
        assignees = st.multiselect("Assignees", people, key="qa_new_assignees", disabled=not people,
                                   help=ASSIGNEES_HELP + " Add people with `looplab users add`.")
        left, right = st.columns(2)
        per_item = left.number_input("Annotations per item", 1, 10, 1, key="qa_new_per_item",
                                     help="1 for triage; 2 or more to measure how far annotators agree.")
        lease = right.number_input("Lease (minutes)", 1, 24 * 60, queues.DEFAULT_LEASE_MINUTES, key="qa_new_lease",
                                   help="How long an opened item stays reserved for its annotator.")
        submitted = st.form_submit_button("Create queue", type="primary")
    if submitted:
        made = run_action(lambda: queues.create_queue(url, name, score_configs=chosen, instructions=instructions,
                                                assignees=assignees, annotations_per_item=int(per_item),
                                                lease_minutes=int(lease)))
        if made:
            st.success(f"Created {plain(made.name)}. Add traces from Traces or Monitoring, or give it a rule below.")


# --- managing -------------------------------------------------------------------------------------


def queue_manager(url: str, queue: queues.QueueView, viewer: Viewer) -> None:
    """Tabs to manage one queue: items, rules, agreement, settings."""
    items_tab, rules_tab, agreement_tab, settings_tab = st.tabs(["Items", "Rules", "Agreement", "Settings"])
    with items_tab:
        _items(url, queue)
    with rules_tab:
        _rules(url, queue)
    with agreement_tab:
        _agreement(url, queue, viewer)
    with settings_tab:
        _settings(url, queue)


def _items(url: str, queue: queues.QueueView) -> None:
    key = f"qa_{queue.id}"
    left, right = st.columns([1, 3])
    status = left.selectbox("Status", ["all", "pending", "leased", "done"], key=f"{key}_status")
    rows, total = queues.list_items(url, queue.id, status=None if status == "all" else status,
                                    limit=ITEMS_PER_PAGE,
                                    offset=ITEMS_PER_PAGE * (st.session_state.get(f"{key}_page", 1) - 1))
    pages = max(1, -(-total // ITEMS_PER_PAGE))
    right.number_input(f"Page (of {pages})", 1, pages, key=f"{key}_page")
    if not rows:
        st.caption("No items here yet. Add traces from the Traces page (one, or every trace of a filter), "
                   "from Monitoring's Needs attention, or with a rule.")
    else:
        st.dataframe(pd.DataFrame([{
            "trace": f"/traces?trace={r.trace_id}", "status": r.status, "labels": r.labels,
            "leased by": r.leased_by or "", "why": r.reason or "", "added": r.created_at,
        } for r in rows]), hide_index=True, column_config={
            "trace": st.column_config.LinkColumn("trace", display_text=r"trace=(\w{8})", width="small"),
            "added": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", timezone="UTC"),
        })
    with st.form(f"{key}_add"):
        ids = st.text_area("Add traces by id (one a line)", key=f"{key}_add_ids")
        if st.form_submit_button("Add"):
            result = run_action(lambda: queues.add_traces(url, queue.id, ids.split(), reason="added by hand"))
            if result:
                st.success(result.message(queue.name))


def _rules(url: str, queue: queues.QueueView) -> None:
    key = f"qa_{queue.id}_rule"
    for rule in rules.list_rules(url, queue.id):
        with st.container(border=True):
            st.markdown(f"**{plain(rule.name)}** · {plain(rule.describe())}")
            st.caption(f"{rule.seen:,} traces seen, {rule.taken:,} queued"
                       + (f" · last run {rule.last_run_at:%Y-%m-%d %H:%M} UTC" if rule.last_run_at else ""))
            with st.container(horizontal=True):
                if st.button("Pause" if rule.enabled else "Resume", key=f"{key}_toggle_{rule.id}"):
                    run_action(lambda: rules.set_rule_enabled(url, rule.id, not rule.enabled))
                    st.rerun()
                if st.button("Delete", key=f"{key}_delete_{rule.id}"):
                    run_action(lambda: rules.delete_rule(url, rule.id))
                    st.rerun()
    st.markdown("**New rule**")
    options = filter_options(url, TraceFilter.last("30d"))
    with st.form(f"{key}_new"):
        name = st.text_input("Name", key=f"{key}_name", placeholder="e.g. 5% of refund chats")
        chosen: dict[str, list[str]] = {}
        columns = st.columns(3)
        for number, (field, label) in enumerate(RULE_FILTERS.items()):
            chosen[field] = columns[number % 3].multiselect(label, options.get(field, []), key=f"{key}_{field}",
                                                            accept_new_options=True)
        left, middle, right = st.columns(3)
        rate = left.slider("Sampling rate (%)", 1, 100, 10, key=f"{key}_rate")
        stratify = middle.selectbox("Stratify by", [None, *rules.STRATIFY_FIELDS], key=f"{key}_stratify",
                                    format_func=lambda f: "nothing" if f is None else rules.STRATIFY_FIELDS[f])
        backfill = right.selectbox("Backfill", ["last 30 days", "everything stored", "new traces only"],
                                   key=f"{key}_backfill")
        submitted = st.form_submit_button("Save rule and backfill")
    if submitted:
        start = {"last 30 days": utcnow() - timedelta(days=30), "everything stored": None,
                 "new traces only": None}[backfill]
        flt = TraceFilter(start=start, **{f: tuple(v) for f, v in chosen.items()})
        made = run_action(lambda: rules.create_rule(url, queue.id, name, flt, rate / 100, stratify_by=stratify,
                                              backfill=backfill != "new traces only"))
        if made:
            st.success(f"Saved {plain(made[0].name)}: {made[1]:,} traces queued now; new ones are picked up as "
                       "they arrive.")


def _agreement(url: str, queue: queues.QueueView, viewer: Viewer) -> None:
    stats = agreement.agreement(url, queue.id)
    if queue.annotations_per_item < 2:
        st.caption("This queue wants one label per item. Set 2 or more in Settings to measure agreement.")
    st.dataframe(pd.DataFrame([{
        "score": a.config, "statistic": a.statistic or "", "value": a.value, "reading": a.reading,
        "items": a.items, "annotators": a.annotators, "same label": a.percent_agreement,
        "disagreements": a.disagreements, "note": a.note or "",
    } for a in stats]), hide_index=True, column_config={
        "value": st.column_config.NumberColumn(format="%.3f"),
        "same label": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
    })
    st.caption("Cohen's kappa and Krippendorff's alpha: 1 is perfect agreement, 0 no better than chance; "
               "0.8 and over reads as reliable, under 0.667 as unreliable.")
    split = agreement.disagreements(url, queue.id)
    if not split:
        return
    st.markdown(f"**Disagreements · {len(split)}**")
    configs = {c.name: c for c in queues.queue_score_configs(url, queue.id)}
    for case in split:
        with st.container(border=True):
            given = " · ".join(f"{plain(a)}: {plain(str(v))}" for a, v in case.values.items())
            settled = (f" → **{plain(str(case.adjudicated))}** (by {plain(case.adjudicated_by or '')})"
                       if case.adjudicated is not None else "")
            st.markdown(f"[{case.trace_id[:8]}](/traces?trace={case.trace_id}) · **{plain(case.config)}**: "
                        f"{given}{settled}")
            if viewer.is_admin and case.config in configs:
                with st.form(f"qa_{queue.id}_adj_{case.item_id}_{case.config}", border=False):
                    value = score_input(configs[case.config], f"qa_{queue.id}_adj_{case.item_id}_{case.config}_value",
                                        case.adjudicated)
                    if st.form_submit_button("Settle"):
                        if run_action(lambda: agreement.adjudicate(url, case.item_id, viewer, {case.config: value})):
                            st.rerun()


def _settings(url: str, queue: queues.QueueView) -> None:
    key = f"qa_{queue.id}_set"
    # Active configs, and archived ones still attached (kept unless taken off; no new archived ones).
    choices = queues.score_config_choices(url, queue.id)
    archived = {c.name for c in choices if c.archived}
    configs = [c.name for c in choices]
    people = [u.username for u in list_users(url)]
    with st.form(key):
        instructions = st.text_area("Instructions", queue.instructions or "", key=f"{key}_instructions")
        chosen = st.multiselect("Score configs", configs, default=[c for c in queue.score_configs if c in configs],
                                key=f"{key}_configs", format_func=lambda c: f"{c} (archived)" if c in archived else c)
        assignees = st.multiselect("Assignees", people, default=[p for p in queue.assignees if p in people],
                                   key=f"{key}_assignees", help=ASSIGNEES_HELP)
        if not queue.assignees:
            st.caption("No assignees yet: annotators do not see this queue; admins and engineers do.")
        left, right = st.columns(2)
        per_item = left.number_input("Annotations per item", 1, 10, queue.annotations_per_item, key=f"{key}_per_item")
        lease = right.number_input("Lease (minutes)", 1, 24 * 60, queue.lease_minutes, key=f"{key}_lease")
        if st.form_submit_button("Save"):
            if run_action(lambda: queues.update_queue(url, queue.id, instructions=instructions, score_configs=chosen,
                                                assignees=assignees, annotations_per_item=int(per_item),
                                                lease_minutes=int(lease)), "Saved."):
                st.rerun()
    if st.button("Archive this queue", key=f"{key}_archive", icon=":material/archive:",
                 help="It leaves the lists; its labels and scores stay."):
        run_action(lambda: queues.archive_queue(url, queue.id))
        st.query_params.clear()
        st.rerun()


# --- adding traces from other pages ----------------------------------------------------------------


def _queue_picker(url: str, key: str, label: str, has_traces: bool,
                  add: Any) -> None:
    """A queue picker and a button calling ``add(queue_id)`` (an ``AddResult``) for the chosen queue."""
    available = queues.list_queues(url)
    if not available:
        st.caption("No annotation queue yet: create one on the **Annotate** page.")
        return
    names = {q.name: q for q in available}
    with st.container(horizontal=True, vertical_alignment="bottom"):
        chosen = st.selectbox("Queue", list(names), key=f"{key}_queue")
        clicked = st.button(label, key=f"{key}_add", disabled=not has_traces or chosen is None,
                            icon=":material/playlist_add:")
    if clicked and chosen is not None:
        result = run_action(lambda: add(names[chosen].id))
        if result:
            st.success(result.message(chosen))


def add_to_queue(url: str, trace_ids: list[str], key: str, reason: str, *, label: str = "Add to queue") -> None:
    """A queue picker and a button adding ``trace_ids`` to the chosen queue."""
    _queue_picker(url, key, label, bool(trace_ids),
                  lambda queue_id: queues.add_traces(url, queue_id, trace_ids, reason=reason))


def add_filter_to_queue(url: str, flt: TraceFilter, total: int, key: str) -> None:
    """A queue picker and a button adding every trace of the active filter."""
    described = ", ".join(f"{k}={v if isinstance(v, str) else '|'.join(v)}"
                          for k, v in flt.to_query_params().items() if k in LIST_PARAMS or k == "range")
    _queue_picker(url, key, f"Add all {total:,} traces of this filter", bool(total),
                  lambda queue_id: queues.add_filtered(url, queue_id, flt, reason=f"filter: {described}"))


def add_search_to_queue(url: str, flt: TraceFilter, search: str, total: str, key: str) -> None:
    """A queue picker and a button adding every trace ``search`` finds in the filter (``total``:
    how many, as the page words it)."""
    _queue_picker(url, key, f"Add all {total} traces the search finds", True,
                  lambda queue_id: queues.add_searched(url, queue_id, flt, search, reason=f"search: {search}"))
