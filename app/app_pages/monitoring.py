"""Monitoring: volume, latency, cost, errors and scores over time, breakdowns, and what needs attention."""

import streamlit as st

from components.attention import attention_section
from components.charts import grouped_time_chart, time_chart
from components.empty_state import no_traces_yet
from components.filter_bar import sidebar_filter
from components.formatting import kpi_delta, kpi_value, period
from components.store import database_url
from looplab.overview import has_traces
from looplab.store.filters import TraceFilter
from looplab.monitoring.metrics import (
    BREAKDOWNS,
    bucket_for,
    breakdown,
    score_timeseries,
    summary,
    timeseries,
    ttft_timeseries,
)

url = database_url()
flt = sidebar_filter(url)

st.title("Monitoring")
overview = summary(url, flt)
kpis = overview["kpis"]
if not kpis["requests"]["value"]:
    no_traces_yet(url, filtered=has_traces(url))
    st.stop()

bucket = bucket_for(flt)
st.caption(f"Changes compare with the previous {period(flt.span)} · one point every {period(bucket)} (UTC).")
columns = st.columns(6)
for column, (key, label) in zip(columns, [
    ("requests", "Requests"), ("error_rate", "Error rate"), ("latency_p50_ms", "Latency p50"),
    ("latency_p95_ms", "Latency p95"), ("cost_usd", "Cost"), ("total_tokens", "Tokens"),
]):
    kpi = kpis[key]
    column.metric(label, kpi_value(key, kpi["value"]), kpi_delta(key, kpi), border=True,
                  delta_color="inverse" if key != "requests" else "normal")

series = timeseries(url, flt, bucket)
left, right = st.columns(2)
with left:
    time_chart(series, {"requests": "requests", "errors": "errors"}, title="Requests and errors", mark="bar",
               value_format=",d")
    time_chart(series, {"latency_p50_ms": "p50", "latency_p95_ms": "p95", "latency_p99_ms": "p99"},
               title="Latency", unit="ms", value_format=",.0f")
    time_chart(series, {"input_tokens": "input", "output_tokens": "output"}, title="Tokens", mark="area",
               value_format=",d")
with right:
    time_chart(series, {"error_rate": "error rate"}, title="Error rate", value_format=".1%")
    time_chart(ttft_timeseries(url, flt, bucket), {"ttft_p50_ms": "p50", "ttft_p95_ms": "p95"},
               title="Time to first token (streamed LLM calls)", unit="ms", value_format=",.0f")
    time_chart(series, {"cost_usd": "cost"}, title="Cost", unit="USD", mark="bar", value_format="$,.4f")

scores = score_timeseries(url, flt, bucket)
st.subheader("Scores")
if scores:
    grouped_time_chart(scores, x="bucket", y="mean", group="series", title="Mean score by name and source")
    st.dataframe(
        [{"score": s["series"], "mean": s["mean"], "count": s["count"], "previous": s["previous"],
          "change": s["change"]} for s in overview["scores"]],
        hide_index=True,
        column_config={"mean": st.column_config.NumberColumn(format="%.3f"),
                       "previous": st.column_config.NumberColumn(format="%.3f"),
                       "change": st.column_config.NumberColumn(format="%+.3f")},
    )
else:
    st.caption("No scores in this range. Record user feedback with `looplab.score(trace_id, name='thumbs', "
               "value=1, source='user_feedback')`; labels and judges add theirs.")


@st.fragment
def breakdown_tables(url: str, flt: TraceFilter) -> None:
    """The breakdown tabs. Only the open tab's table is computed (a month's breakdown by model reads
    every LLM call of it), and opening another reruns this fragment alone, not the charts above."""
    st.subheader("Breakdown")
    titles = {"model": "By model", "name": "By trace name", "release": "By release", "user": "By user"}
    # The open tab is in the URL (?breakdown=By+release), so a shared link opens on the same table.
    tabs = st.tabs([titles[b] for b in BREAKDOWNS], key="breakdown", on_change="rerun", bind="query-params")
    for tab, by in zip(tabs, BREAKDOWNS):
        if not tab.open:
            continue
        with tab:
            # The first look at a long window sums its days up (once a day, kept after): it can take seconds.
            with st.spinner("Adding up the table…"):
                rows = breakdown(url, flt, by)
            score_names = sorted({name for row in rows for name in row["scores"]})
            st.dataframe(
                [{by: row["key"] if row["key"] is not None else "(none)", "requests": row["requests"],
                  "error rate": row["error_rate"], "p95 latency (ms)": row["latency_p95_ms"], "cost (USD)": row["cost_usd"],
                  **{f"mean {name}": row["scores"].get(name) for name in score_names}} for row in rows],
                hide_index=True,
                column_config={"error rate": st.column_config.NumberColumn(format="percent"),
                               "p95 latency (ms)": st.column_config.NumberColumn(format="%.0f"),
                               "cost (USD)": st.column_config.NumberColumn(format="$%.4f"),
                               **{f"mean {n}": st.column_config.NumberColumn(format="%.3f") for n in score_names}},
                key=f"mon_breakdown_{by}",
            )


breakdown_tables(url, flt)

attention_section(url, flt)
