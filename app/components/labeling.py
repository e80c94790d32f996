"""The labeling view: one leased trace at a time, its conversation, the queue's score inputs, a
comment, a corrected output, and Submit & next / Skip / Later / Add to dataset, with keyboard
shortcuts.

Session state keys (prefix ``ann_``): ``ann_<item>_<config>`` the score inputs (from
``score_inputs``), ``ann_comment_<item>``, ``ann_corrected_<item>``, ``ann_dataset`` the dataset
"Add to dataset" writes to, ``ann_flash`` the message of the last action.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from components.conversation import payload_view, show_conversation
from components.formatting import duration, money, plain
from components.score_input import score_inputs
from looplab.annotation.agreement import PendingLabel
from looplab.annotation.content import labeling_content
from looplab.annotation.queues import (
    Lease,
    QueueView,
    come_back_later,
    next_item,
    progress,
    queue_score_configs,
    skip_item,
    submit_label,
)
from looplab.annotation.score_configs import ScoreConfigView
from looplab.annotation.users import Viewer
from looplab.datasets.datasets import list_datasets
from looplab.datasets.from_traces import add_labelled_trace
from looplab.errors import LooplabError

SHORTCUTS = {
    "submit": "Ctrl+Enter",
    "skip": "S",
    "later": "L",
    "dataset": "D",
}
SHORTCUT_HELP = (
    "**Keyboard:** `1`-`9` pick an option of the first score · `Ctrl+Enter` Submit & next · "
    "`S` Skip · `L` Later · `D` Add to dataset. Click outside a text box first: keys typed into a box stay text."
)


def labeling_view(url: str, queue: QueueView, viewer: Viewer) -> None:
    """Lease the viewer's next item of ``queue`` and render it for labeling."""
    _progress(url, queue, viewer)
    flash = st.session_state.pop("ann_flash", None)
    if flash:
        st.toast(flash, icon=":material/check_circle:")
    lease = next_item(url, queue.id, viewer.username)
    if lease is None:
        st.success("Nothing left for you in this queue. Thank you!", icon=":material/celebration:")
        st.caption("Items come back when a lease runs out, and new ones arrive when someone (or a rule) adds traces.")
        return
    try:
        content = labeling_content(url, lease.trace_id)
    except LooplabError as err:
        st.warning(str(err))
        if st.button("Skip this item", key=f"ann_skip_missing_{lease.item_id}"):
            skip_item(url, lease.item_id, viewer.username)
            st.rerun()
        return
    configs = queue_score_configs(url, queue.id)
    left, right = st.columns([3, 2], gap="large")
    with left:
        _trace_header(content, lease, viewer)
        _content(content)
    with right:
        values = _inputs(configs, lease)
        comment = st.text_area("Comment", key=f"ann_comment_{lease.item_id}", height=80,
                               placeholder="Why this score? What is wrong or missing?")
        corrected = st.text_area(
            "Corrected output", value=content.answer_text, key=f"ann_corrected_{lease.item_id}", height=220,
            help="Edit the answer into the one it should have been; it becomes the expected output when "
                 "the trace is added to a dataset. Left unchanged, nothing is recorded as a correction.",
        )
        correction = corrected if corrected.strip() and corrected != content.answer_text else None
        _actions(url, queue, viewer, lease, values, comment, correction)
        st.caption(SHORTCUT_HELP)
        st.caption(f"Leased to you until {lease.expires_at:%H:%M} UTC; after that the item goes back to the pool.")


def _progress(url: str, queue: QueueView, viewer: Viewer) -> None:
    state = progress(url, queue.id, viewer.username)
    st.progress(state.fraction_done, text=(
        f"{state.done:,} of {state.items:,} items done · {state.mine_today:,} labelled by you today · "
        f"{state.available_to_me:,} left for you"))
    if state.people:
        # In plain view: who has done how much is what a lead checks first.
        st.dataframe(pd.DataFrame([{
            "person": p.username, "assigned": p.assigned, "labelled": p.done, "today": p.today,
        } for p in state.people]), hide_index=True, width="content",
            height=min(38 + 35 * len(state.people), 250),
            column_config={"labelled": st.column_config.NumberColumn(help="Labels given in this queue, in all"),
                           "today": st.column_config.NumberColumn(help="Labels given today (UTC)")})


def _trace_header(content: Any, lease: Lease, viewer: Viewer) -> None:
    row = content.detail.trace
    # Annotators see their items only, not the trace explorer.
    link = None if viewer.is_annotator else f"[open trace](/traces?trace={lease.trace_id})"
    facts = [plain(content.name or "trace"), link, duration(row.duration_ms), money(row.cost_usd)]
    if row.status == "error":
        facts.append(":red[error]")
    st.markdown(" · ".join(f for f in facts if f))
    if lease.reason:
        st.caption(plain(f"Why it is here: {lease.reason}"))
    if lease.labels_so_far:
        st.caption(f"Labelled by {lease.labels_so_far} other {'person' if lease.labels_so_far == 1 else 'people'} "
                   "already; label it on your own judgement.")


def _content(content: Any) -> None:
    if content.conversation:
        show_conversation(content.conversation)
    else:
        payload_view("Input", content.input, kind="trace")
        payload_view("Output", content.output, kind="trace", output=True)
    if content.documents:
        with st.expander(f"Context: {len(content.documents)} retrieved document"
                         f"{'' if len(content.documents) == 1 else 's'}", icon=":material/description:"):
            for number, doc in enumerate(content.documents, 1):
                st.markdown(f"**{number}. {plain(doc.title or doc.id or doc.source or 'document')}**")
                st.text(doc.text)
    if content.tools:
        with st.expander(f"Tool calls: {len(content.tools)}", icon=":material/build:"):
            for tool in content.tools:
                st.markdown(f"**{plain(tool.name)}**" + (" · :red[error]" if tool.error else ""))
                payload_view("Arguments", tool.input, kind="tool")
                payload_view("Result", tool.error or tool.output, kind="tool", output=True)
    if content.spans_cut:
        st.caption(f"This trace has {content.detail.span_count:,} spans; the first {len(content.detail.spans):,} "
                   "are read here. Open the trace for all of them.")


def _inputs(configs: list[ScoreConfigView], lease: Lease) -> dict[str, Any]:
    prefix = f"ann_{lease.item_id}"
    quick = next((c for c in configs if c.data_type in ("categorical", "boolean")), None)
    if quick is not None:
        options: list[Any] = quick.labels if quick.data_type == "categorical" else [True, False]
        names = quick.labels if quick.data_type == "categorical" else ["Yes", "No"]
        with st.container(horizontal=True):
            for number, (option, name) in enumerate(list(zip(options, names))[:9], 1):
                st.button(f"{number} · {name}", key=f"{prefix}_quick_{number}", shortcut=str(number),
                          on_click=_pick, args=(f"{prefix}_{quick.name}", option), type="tertiary")
    return score_inputs(configs, prefix)


def _pick(key: str, option: Any) -> None:
    st.session_state[key] = option


def _actions(url: str, queue: QueueView, viewer: Viewer, lease: Lease, values: dict[str, Any],
             comment: str, correction: str | None) -> None:
    with st.container(horizontal=True):
        submit = st.button("Submit & next", type="primary", shortcut=SHORTCUTS["submit"], icon=":material/done:",
                           key=f"ann_submit_{lease.item_id}")
        skip = st.button("Skip", shortcut=SHORTCUTS["skip"], key=f"ann_skip_{lease.item_id}",
                         help="Not for you: the item goes to someone else and is not shown to you again.")
        later = st.button("Later", shortcut=SHORTCUTS["later"], key=f"ann_later_{lease.item_id}",
                          help="Put it at the back of the queue and come back to it.")
    try:
        if submit:
            submit_label(url, lease.item_id, viewer.username, values, comment=comment, corrected_output=correction)
            _done("Saved. Here is the next one.")
        if skip:
            skip_item(url, lease.item_id, viewer.username)
            _done("Skipped.")
        if later:
            come_back_later(url, lease.item_id, viewer.username)
            _done("Moved to the back of the queue.")
    except LooplabError as err:
        st.error(str(err))
    _add_to_dataset(url, viewer, lease, values, correction)


def _done(message: str) -> None:
    st.session_state["ann_flash"] = message
    st.rerun()


def _add_to_dataset(url: str, viewer: Viewer, lease: Lease, values: dict[str, Any], correction: str | None) -> None:
    """Add the trace with its labels: the item's resolved labels with the ones on screen counted as
    this person's (``add_labelled_trace``); expected output: the correction, else the trace's output."""
    names = [d.name for d in list_datasets(url)]
    with st.container(horizontal=True, vertical_alignment="bottom"):
        dataset = st.selectbox("Dataset", names, key="ann_dataset", index=0 if names else None,
                               accept_new_options=True, placeholder="type a name to create one")
        clicked = st.button("Add to dataset", shortcut=SHORTCUTS["dataset"], icon=":material/dataset:",
                            key=f"ann_add_{lease.item_id}", disabled=not dataset)
    if not clicked or not dataset:
        return
    pending = PendingLabel(lease.item_id, viewer.username, values, correction)
    try:
        item = add_labelled_trace(url, dataset, lease.trace_id, author=viewer.username, pending=pending,
                                  create_if_missing=True)
    except LooplabError as err:
        st.error(str(err))
        return
    st.success(f"Added to dataset {plain(dataset)} (item {plain(str(getattr(item, 'item_id', '')))}).")
