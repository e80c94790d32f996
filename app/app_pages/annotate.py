"""Annotate: the queues this person may work on, the labeling view, and (for admins and engineers)
creating and managing queues. ``?queue=<id>`` opens a queue's labeling view; ``?manage=<id>`` its
management tabs."""

import streamlit as st

from components.auth import viewer
from components.formatting import plain
from components.labeling import labeling_view
from components.queue_admin import new_queue_form, queue_manager
from components.store import database_url
from looplab.annotation.queues import QueueView, can_work_on, labels_today, list_queues
from looplab.annotation.rules import run_rules
from looplab.errors import LooplabError


@st.cache_data(ttl=60, show_spinner=False)
def _rules_ran(url: str) -> dict[str, int]:
    # Queue rules pick up new traces at most once a minute, whoever opens the page.
    return run_rules(url)


def _queue_from(param: str, queues: list[QueueView]) -> QueueView | None:
    raw = st.query_params.get(param)
    if raw is None:
        return None
    found = next((q for q in queues if str(q.id) == raw), None)
    if found is None:
        st.warning("That queue does not exist, is archived, or is not assigned to you.")
    return found


url = database_url()
who = viewer()
try:
    _rules_ran(url)
except LooplabError as err:
    st.warning(f"A queue rule could not run: {err}")
queues = list_queues(url, who)

labeling = _queue_from("queue", queues)
if labeling is not None and can_work_on(url, labeling.id, who):
    st.title(labeling.name)
    if st.button("All queues", icon=":material/arrow_back:", type="tertiary"):
        st.query_params.clear()
        st.rerun()
    if labeling.instructions:
        with st.expander("Instructions", expanded=False, icon=":material/info:"):
            st.markdown(labeling.instructions)
    labeling_view(url, labeling, who)
    st.stop()

managing = None if who.is_annotator else _queue_from("manage", queues)
if managing is not None:
    st.title(f"Manage · {managing.name}")
    if st.button("All queues", icon=":material/arrow_back:", type="tertiary"):
        st.query_params.clear()
        st.rerun()
    queue_manager(url, managing, who)
    st.stop()

st.title("Annotate")
if not queues:
    if who.is_annotator:
        st.info("No queue is assigned to you yet. Ask an admin to add you to one.")
    else:
        st.info("No annotation queues yet. Create one below, then add traces to it from **Traces** or "
                "**Monitoring** (Needs attention), or give it a rule that samples traces as they arrive.")
mine_today = labels_today(url, who.username) if queues else {}
for queue in queues:
    with st.container(border=True):
        left, right = st.columns([4, 1], vertical_alignment="center")
        with left:
            st.markdown(f"**{plain(queue.name)}** · scores {plain(', '.join(queue.score_configs))}"
                        + (f" · {queue.annotations_per_item} labels per item" if queue.annotations_per_item > 1 else ""))
            st.progress(queue.done / queue.items if queue.items else 0.0,
                        text=f"{queue.done:,} of {queue.items:,} done · {queue.remaining:,} to go"
                        f" · {mine_today.get(queue.id, 0):,} labelled by you today"
                        + (f" · assigned to {', '.join(queue.assignees)}" if queue.assignees else ""))
        with right:
            if st.button("Label", key=f"ann_open_{queue.id}", type="primary", icon=":material/rate_review:",
                         disabled=not queue.remaining):
                st.query_params.from_dict({"queue": str(queue.id)})
                st.rerun()
            if not who.is_annotator and st.button("Manage", key=f"ann_manage_{queue.id}", icon=":material/tune:"):
                st.query_params.from_dict({"manage": str(queue.id)})
                st.rerun()
if not who.is_annotator:
    with st.expander("New queue", icon=":material/add:", expanded=not queues):
        new_queue_form(url)
