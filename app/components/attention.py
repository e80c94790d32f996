"""The Needs attention section: surfaced traces with their reasons, and the rules that surface them."""

from __future__ import annotations

from typing import Any

import streamlit as st

from components.formatting import duration, money
from components.queue_admin import add_to_queue
from looplab.errors import LooplabError
from looplab.monitoring.attention import (
    RULE_KINDS,
    attention_count,
    attention_items,
    create_rule,
    delete_rule,
    list_rules,
    update_rule,
)
from looplab.store.filters import TraceFilter
from looplab.store.models import SCORE_SOURCES

PAGE_SIZE = 100
KIND_LABELS = {
    "error": "Errors", "latency_above": "Latency over a threshold", "latency_p95": "Slower than the period's p95",
    "negative_feedback": "Negative user feedback", "low_score": "Low score", "cost_outlier": "Cost outlier",
}


def trace_link(trace_id: str) -> str:
    """The deep link that opens a trace on the Traces page."""
    return f"/traces?trace={trace_id}"


def attention_section(url: str, flt: TraceFilter) -> None:
    """Render the surfaced traces of ``flt`` and the rule editor."""
    total = attention_count(url, flt)
    st.subheader(f"Needs attention · {total:,}")
    if total:
        items = attention_items(url, flt, limit=PAGE_SIZE)
        event = st.dataframe(
            [{"trace": trace_link(i["trace_id"]), "started": i["start_time"], "name": i["name"],
              "why": " · ".join(i["reasons"]), "user": i["user_id"], "latency": duration(i["duration_ms"]),
              "cost": money(i["cost_usd"]), "status": i["status"]} for i in items],
            hide_index=True,
            column_config={
                "trace": st.column_config.LinkColumn("trace", display_text=r"trace=(\w{8})", width="small"),
                "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", timezone="UTC"),
                "why": st.column_config.TextColumn(width="large"),
            },
            key="mon_attention",
            on_select="rerun",
            selection_mode="multi-row",
        )
        if total > PAGE_SIZE:
            st.caption(f"The newest {PAGE_SIZE} of {total:,}. Narrow the range or the filters to see others.")
        chosen = [items[i]["trace_id"] for i in event.selection.rows] if event else []
        st.caption("Select rows to send them to an annotation queue.")
        add_to_queue(url, chosen, "mon_queue", reason="needs attention: "
                     + "; ".join(sorted({r for i in items if i["trace_id"] in chosen for r in i["rules"]})),
                     label=f"Send {len(chosen)} selected to the queue" if chosen else "Send selection to the queue")
    else:
        st.caption("Nothing surfaced in this range by the enabled rules.")
    with st.expander("Rules", icon=":material/rule:"):
        _rules_editor(url)


def _params_inputs(kind: str, current: dict[str, Any], key: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, default in RULE_KINDS[kind].items():
        value = current.get(name, None if not isinstance(default, (int, float, str, list)) else default)
        widget_key = f"{key}_{name}"
        if name == "sources":
            params[name] = st.multiselect("Score sources (none: any)", SCORE_SOURCES, default=value or [],
                                          key=widget_key)
        elif name == "score_name":
            params[name] = st.text_input("Score name", value=value or "", key=widget_key)
        elif name == "baseline":
            params[name] = st.selectbox("Compared with the period's", ["median", "p95"],
                                        index=["median", "p95"].index(value or "median"), key=widget_key)
        else:
            label = {"threshold_ms": "Threshold (ms)", "max_value": "At most", "below": "Below",
                     "factor": "Times the baseline"}.get(name, name)
            params[name] = st.number_input(label, value=float(value) if value is not None else None, key=widget_key)
    return params


def _rules_editor(url: str) -> None:
    rules = list_rules(url)
    st.dataframe(
        [{"rule": r["name"], "surfaces": r["description"], "enabled": r["enabled"]} for r in rules],
        hide_index=True, key="mon_rules",
    )
    edit, add = st.tabs(["Edit a rule", "Add a rule"])
    with edit:
        if not rules:
            st.caption("No rules yet.")
        else:
            by_name = {r["name"]: r for r in rules}
            rule = by_name[st.selectbox("Rule", list(by_name), key="mon_rule_pick")]
            with st.form(f"mon_rule_edit_{rule['id']}"):
                st.caption(KIND_LABELS[rule["kind"]])
                name = st.text_input("Name", value=rule["name"])
                enabled = st.checkbox("Enabled", value=rule["enabled"])
                params = _params_inputs(rule["kind"], rule["params"], f"mon_edit_{rule['id']}")
                save, remove = st.columns(2)
                if save.form_submit_button("Save", type="primary"):
                    _apply(lambda: update_rule(url, rule["id"], name=name, enabled=enabled, params=params),
                           f"Saved rule {name!r}.")
                if remove.form_submit_button("Delete"):
                    _apply(lambda: delete_rule(url, rule["id"]), f"Deleted rule {rule['name']!r}.")
    with add:
        kind = st.selectbox("Kind", list(RULE_KINDS), format_func=KIND_LABELS.__getitem__, key="mon_new_kind")
        with st.form("mon_rule_new", clear_on_submit=True):
            name = st.text_input("Name", placeholder="e.g. Slower than 5 s")
            params = _params_inputs(kind, {}, "mon_new")
            if st.form_submit_button("Add rule", type="primary"):
                _apply(lambda: create_rule(url, name, kind, params), f"Added rule {name!r}.")


def _apply(action: Any, done: str) -> None:
    try:
        action()
    except LooplabError as err:
        st.error(str(err))
        return
    st.toast(done)
    st.rerun()
