"""One trace on screen: header, scores, the span tree with each span's content, and a timeline.

Everything from a trace is shown as plain text (``st.text``, ``st.code``): LLM output is never
interpreted as Markdown or HTML, so a reply cannot inject links, images or markup into the page.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from components.add_to_dataset import add_to_dataset_form
from components.conversation import payload_view
from components.formatting import compact, duration, money, plain
from components.queue_admin import add_to_queue
from components.score_input import manual_score_form
from looplab.annotation.users import LOCAL_ADMIN, Viewer
from looplab.explorer import (
    SpanRow,
    TraceDetail,
    pretty_json,
    span_payload,
    trace_detail,
)

SPANS_PER_PAGE = 200
KIND_ICONS = {"llm": "✦", "tool": "⚙", "retrieval": "⌕", "embedding": "≋", "evaluator": "✓", "event": "•", "span": "▸"}


def trace_page(url: str, trace_id: str, viewer: Viewer | None = None) -> None:
    """The detail view of ``trace_id``: what happened, step by step. ``viewer``: who is looking
    (the author of what they add from here); the local admin when not given."""
    st.button("← All traces", on_click=_close_trace, key="trc_back")
    span_page = st.session_state.get(f"trc_span_page_{trace_id}", 1)
    detail = trace_detail(url, trace_id, span_offset=(span_page - 1) * SPANS_PER_PAGE, span_limit=SPANS_PER_PAGE)
    if detail is None:
        st.warning(f"No trace with id `{trace_id}` in this database. It may have been deleted by retention, "
                   "or the link points at another looplab.")
        return
    trace = detail.trace
    st.title(plain(trace.name) if trace.name else "(unnamed trace)")
    status = ":red-badge[:material/error: error]" if trace.status == "error" else ":green-badge[:material/check: ok]"
    facts = [status, f"started {trace.start_time:%Y-%m-%d %H:%M:%S} UTC"]
    facts += [f"{label} {plain(value)}" for label, value in (("user", trace.user_id), ("session", trace.session_id),
                                                        ("release", trace.release), ("env", trace.environment))
              if value]
    facts += [f":blue-badge[{plain(tag)}]" for tag in trace.tags]
    st.markdown(" · ".join(facts))
    cols = st.columns(5)
    cols[0].metric("Latency", duration(trace.duration_ms), border=True)
    cols[1].metric("Cost", money(trace.cost_usd), border=True)
    tokens = (trace.input_tokens or 0) + (trace.output_tokens or 0)
    cols[2].metric("Tokens", compact(tokens) if tokens else "–", border=True,
                   help=f"{trace.input_tokens or 0:,} in, {trace.output_tokens or 0:,} out")
    cols[3].metric("Spans", f"{detail.span_count:,}", border=True)
    cols[4].metric("Errors", f"{trace.error_count:,}", border=True)
    if trace.error:
        st.error(plain(trace.error), icon=":material/error:")
    st.caption(f"Share this trace: `?trace={trace.id}` on the Traces page.")
    who = viewer or LOCAL_ADMIN
    score_col, queue_col, dataset_col = st.columns(3)
    with score_col.expander("Score this trace", icon=":material/add_task:"):
        manual_score_form(url, trace.id, who)
    with queue_col.expander("Add to an annotation queue", icon=":material/rate_review:"):
        add_to_queue(url, [trace.id], "trc_queue_one", reason=f"added from the trace by {who.username}")
    with dataset_col.expander("Add to dataset", icon=":material/dataset:"):
        add_to_dataset_form(url, trace.id, author=who.username, key_prefix="trc_atd")

    if detail.scores:
        st.dataframe(
            [{"score": s.name, "value": s.value, "label": s.label, "source": s.source, "by": s.author,
              "comment": s.comment, "at": s.created_at} for s in detail.scores],
            hide_index=True, key="trc_scores",
            column_config={"at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", timezone="UTC")},
        )

    tree, timeline, io, raw = st.tabs(["Span tree", "Timeline", "Trace input / output", "Raw JSON"])
    with tree:
        _span_pager(detail, trace_id)
        _span_tree(url, detail)
    with timeline:
        _waterfall(detail.spans)
    with io:
        payload_view("Input", detail.input, kind="trace")
        payload_view("Output", detail.output, kind="trace")
    with raw:
        st.code(pretty_json({"input": detail.input, "output": detail.output, "metadata": detail.metadata}),
                language="json", wrap_lines=True)


def _close_trace() -> None:
    if "trace" in st.query_params:
        del st.query_params["trace"]


def _span_pager(detail: TraceDetail, trace_id: str) -> None:
    pages = max(1, -(-detail.span_count // SPANS_PER_PAGE))
    if pages == 1:
        return
    key = f"trc_span_page_{trace_id}"
    st.number_input(f"Spans page (of {pages:,}; {SPANS_PER_PAGE} spans a page, in tree order)",
                    min_value=1, max_value=pages, step=1, key=key)


def _label(span: SpanRow) -> str:
    return f"{'  ' * span.depth}{KIND_ICONS.get(span.kind, '▸')} {span.name}"


def _span_tree(url: str, detail: TraceDetail) -> None:
    spans = detail.spans
    if not spans:
        st.caption("This trace has no spans stored.")
        return
    left, right = st.columns([2, 3])
    with left:
        event = st.dataframe(
            [{"span": _label(s), "latency": duration(s.duration_ms), "status": "⚠ error" if s.status == "error" else "ok",
              "tokens": (s.input_tokens or 0) + (s.output_tokens or 0) or None} for s in spans],
            hide_index=True, on_select="rerun", selection_mode="single-row", key=f"trc_tree_{detail.trace.id}",
            column_config={"span": st.column_config.TextColumn(width="medium")},
            height=min(38 + 35 * len(spans), 640),
        )
    chosen = event.selection.rows[0] if event.selection.rows else _default_span(spans)
    with right:
        _span_view(url, detail.trace.id, spans[chosen])


def _default_span(spans: list[SpanRow]) -> int:
    """The first failed span, else the first LLM call, else the root."""
    for wanted in (lambda s: s.status == "error", lambda s: s.kind == "llm"):
        for index, span in enumerate(spans):
            if wanted(span):
                return index
    return 0


def _span_view(url: str, trace_id: str, span: SpanRow) -> None:
    st.markdown(f"**{KIND_ICONS.get(span.kind, '▸')} {plain(span.name)}** · :gray-badge[{span.kind}]")
    facts = [f"latency {duration(span.duration_ms)}", f"starts at +{duration(span.start_ms)}"]
    if span.model:
        facts.append(plain(f"{span.provider or ''} {span.model}".strip()))
    if span.ttft_ms is not None:
        facts.append(f"first token {duration(span.ttft_ms)}")
    if span.input_tokens is not None or span.output_tokens is not None:
        cached = f" ({span.cached_tokens:,} cached)" if span.cached_tokens else ""
        facts.append(f"{span.input_tokens or 0:,} in{cached} / {span.output_tokens or 0:,} out tokens")
    if span.cost_usd is not None:
        facts.append(money(span.cost_usd))
    if span.finish_reason:
        facts.append(plain(f"finish: {span.finish_reason}"))
    st.caption(" · ".join(facts))
    if span.error:
        st.error(plain(span.error), icon=":material/error:")
    payload = span_payload(url, trace_id, span.id)
    if payload is None:
        st.caption("This span's content is not stored.")
        return
    payload_view("Input", payload.input, kind=span.kind)
    payload_view("Output", payload.output, kind=span.kind, output=True)
    if payload.params:
        with st.expander("Parameters"):
            st.code(pretty_json(payload.params), language="json", wrap_lines=True)
    if payload.attributes:
        with st.expander("Attributes"):
            st.code(pretty_json(payload.attributes), language="json", wrap_lines=True)
    with st.expander("Raw JSON"):
        st.code(pretty_json({"input": payload.input, "output": payload.output}), language="json", wrap_lines=True)


def _waterfall(spans: list[SpanRow]) -> None:
    if not spans:
        st.caption("No spans to draw.")
        return
    frame = pd.DataFrame([{
        "order": i, "span": f"{i + 1:>3}. {'· ' * s.depth}{s.name}", "kind": s.kind, "start": s.start_ms,
        "end": s.end_ms if s.end_ms is not None else s.start_ms, "latency": duration(s.duration_ms),
        "status": s.status, "model": s.model or "",
    } for i, s in enumerate(spans)])
    chart = alt.Chart(frame, height=max(120, 22 * len(frame))).mark_bar(cornerRadius=2).encode(
        x=alt.X("start:Q", title="ms from the trace's start"),
        x2="end:Q",
        y=alt.Y("span:N", sort=alt.EncodingSortField("order"), title=None, axis=alt.Axis(labelLimit=320)),
        color=alt.Color("kind:N", legend=alt.Legend(orient="bottom")),
        stroke=alt.condition(alt.datum.status == "error", alt.value("#dc2626"), alt.value(None)),
        tooltip=["span:N", "kind:N", "latency:N", "status:N", "model:N"],
    )
    st.altair_chart(chart, width="stretch")
