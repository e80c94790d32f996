"""The Experiments page's parts: the list, the new-experiment form, running runs, the comparison
with a baseline, and the ship decision. Services do the work; these widgets only gather input and
show results (``LooplabError`` becomes an ``st.error``).

Session state keys carry the ``exp_`` prefix: ``exp_new_*`` the new-experiment form,
``exp_cmp_*`` the comparison, ``exp_dec_*`` the decision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
import yaml

from components.formatting import duration, money, plain
from components.queue_admin import add_to_queue, run_action
from looplab.annotation.users import Viewer
from looplab.datasets.datasets import current_version, list_datasets
from looplab.errors import ConfigError, LooplabError
from looplab.evaluation.judge_agreement import judge_agreement
from looplab.evaluation.registry import list_evaluators
from looplab.experiments import worker
from looplab.experiments.comparison import (
    Comparison,
    ItemComparison,
    Segment,
    compare,
    filter_items,
    output_text,
    sort_items,
)
from looplab.experiments.gate import (
    DEFAULT_POLICY,
    Policy,
    decide,
    list_decisions,
    promoted_baseline,
    record_decision,
)
from looplab.experiments.records import (
    ExperimentInfo,
    experiment_progress,
    get_experiment,
    list_experiments,
    promote_experiment,
)
from looplab.experiments.report import (
    fmt,
    fmt_metric,
    fmt_p,
    fmt_ratio,
    render_markdown,
)
from looplab.experiments.runner import create_experiment
from looplab.experiments.variants import VariantSpec, diff_variants, list_variants

DEFAULT_MODEL = "mock:support"
DEFAULT_TEMPLATE = "{{ input.message }}"  # the sample dataset's items: {"message": ...}
POLICY_EXAMPLE = """name: release-gate
rules:
  - kind: no_significant_regression
  - kind: errors
    max_new: 0
  - kind: latency
    stat: p95
    max_ratio: 1.5
"""
SAVED, INLINE = "A saved variant", "A new prompt variant"
UNFINISHED = ("pending", "running")


def find_experiment(url: str, ref: str) -> ExperimentInfo | None:
    """An experiment by name, else by id (``?experiment=<name or id>``); a warning when there is none."""
    try:
        return get_experiment(url, ref)
    except LooplabError:
        pass
    if ref.strip().isdigit():
        try:
            return get_experiment(url, int(ref))
        except LooplabError:
            pass
    st.warning(f"There is no experiment {plain(ref)}.")
    return None


def open_experiment(ref: str | int) -> None:
    st.session_state.pop("exp_list", None)  # back on the list, no row is still selected
    st.query_params.from_dict({"experiment": str(ref)})
    st.rerun()


# --- The list -------------------------------------------------------------------------------------


def _variant_label(variant: dict[str, Any]) -> str:
    name = variant.get("name") or "?"
    return f"{name} v{variant['version']}" if variant.get("version") is not None else str(name)


def experiment_list(url: str, experiments: list[ExperimentInfo]) -> None:
    """Every experiment with its progress and cost; selecting a row opens it."""
    rows = []
    for info in experiments:
        progress = experiment_progress(url, info.id)
        rows.append({
            "Name": info.name, "Dataset": info.dataset, "Variant": _variant_label(info.variant),
            "Status": info.status + (" · baseline" if info.promoted_at else ""),
            "Progress": progress.done / progress.total if progress.total else 0.0,
            "Items": f"{progress.done:,} of {progress.total:,}" + (f" ({progress.errors} errors)" if progress.errors else ""),
            "Cost": money(progress.cost_usd),
            "Created": info.created_at.replace(tzinfo=UTC) if info.created_at.tzinfo is None else info.created_at,
        })
    event = st.dataframe(
        pd.DataFrame(rows), hide_index=True, width="stretch", key="exp_list", on_select="rerun",
        selection_mode="single-row",
        column_config={
            "Progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0, format="percent"),
            "Created": st.column_config.DatetimeColumn("Created", format="YYYY-MM-DD HH:mm"),
        },
    )
    st.caption("Select a row to compare it with its baseline and decide whether it ships.")
    selected = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    if selected and selected[0] < len(experiments):
        open_experiment(experiments[selected[0]].name)


# --- Running experiments --------------------------------------------------------------------------


def _progress_body(url: str, experiment_id: int, key: str) -> None:
    status = worker.status(url, experiment_id)
    words = {"pending": "waiting for its worker", "running": "running", "stalled": "stalled (its worker is gone)",
             "finished": status.status}[status.state]
    text = (f"{plain(status.name)}: {status.done:,} of {status.total:,} items · {words}"
            + (f" · {status.errors} errors" if status.errors else "")
            + (f" · {money(status.cost_usd)}" if status.cost_usd is not None else "")
            + (" · cancelling" if status.cancel_requested else ""))
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.progress(status.fraction, text=text)
    if status.state == "stalled":
        resume = right.button("Resume", key=f"{key}_resume_{experiment_id}", icon=":material/play_arrow:")
        if resume and run_action(lambda: worker.launch(url, experiment_id)):
            st.rerun()
    elif status.state != "finished" and right.button("Cancel", key=f"{key}_cancel_{experiment_id}",
                                                     icon=":material/stop:", disabled=status.cancel_requested):
        run_action(lambda: worker.cancel(url, experiment_id), "Asked it to stop; the items in flight finish first.")
    if status.state == "finished" and status.error:
        st.error(f"{plain(status.name)} failed: {status.error}")
    if status.state == "finished" and st.session_state.get(f"{key}_live_{experiment_id}"):
        st.session_state.pop(f"{key}_live_{experiment_id}")
        st.rerun()  # the whole page: the list, the comparison and the decision see the finished run


def run_progress(url: str, experiment_id: int, key: str = "exp_run") -> None:
    """A progress bar (refreshed every 2 s while the run is alive) and a Cancel button."""
    state = worker.status(url, experiment_id).state
    if state in ("pending", "running"):
        st.session_state[f"{key}_live_{experiment_id}"] = True

        @st.fragment(run_every=2)
        def live() -> None:
            _progress_body(url, experiment_id, key)

        live()
    else:
        _progress_body(url, experiment_id, key)


def running_experiments(url: str, experiments: list[ExperimentInfo]) -> None:
    unfinished = [e for e in experiments if e.status in UNFINISHED]
    if not unfinished:
        return
    st.subheader("Running")
    for info in unfinished:
        run_progress(url, info.id)


# --- New experiment -------------------------------------------------------------------------------


def _params(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"Params are not valid JSON or YAML{at}: {getattr(err, 'problem', None) or err}.") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError('Params must be a mapping such as {"temperature": 0.2} or quality: 0.9, '
                          f"not {type(value).__name__}.")
    return value


def _inline_spec() -> VariantSpec:
    """The prompt variant typed into the form; ``ConfigError`` saying what is wrong."""
    state = st.session_state
    return VariantSpec(
        name=(state.get("exp_new_variant_name") or "").strip(), kind="prompt",
        model=(state.get("exp_new_model") or "").strip() or None,
        system=(state.get("exp_new_system") or "").strip() or None,
        prompt=state.get("exp_new_prompt") or "", params=_params(state.get("exp_new_params") or ""),
    )


def new_experiment_form(url: str, who: Viewer, experiments: list[ExperimentInfo]) -> None:
    """Dataset, variant (saved or typed in), evaluators, baseline, concurrency; the one-variable diff
    against the baseline; Launch creates the experiment and starts a worker process."""
    datasets = [d for d in list_datasets(url) if d.item_count]
    if not datasets:
        st.info("An experiment runs over a dataset. Create one with items on the **Datasets** page first.")
        st.page_link("app_pages/datasets.py", label="Datasets", icon=":material/dataset:")
        return
    by_name = {d.name: d for d in datasets}
    dataset_name = st.selectbox("Dataset", list(by_name), key="exp_new_dataset",
                                format_func=lambda n: f"{n} ({by_name[n].item_count:,} items)")
    dataset = by_name[dataset_name]

    saved_variants = {v.name: v for v in list_variants(url)}
    source = st.radio("Variant", [SAVED, INLINE], key="exp_new_source", horizontal=True,
                      index=0 if saved_variants else 1)
    spec: VariantSpec | None = None
    spec_error: str | None = None
    if source == SAVED:
        if not saved_variants:
            st.info("No saved variants yet: define a prompt variant instead (it is saved when you launch).")
        chosen = st.selectbox("Saved variant", list(saved_variants), key="exp_new_saved",
                              format_func=lambda n: f"{n} v{saved_variants[n].version} ({saved_variants[n].kind})")
        if chosen:
            spec = saved_variants[chosen].spec
            st.json(saved_variants[chosen].config, expanded=False)
    else:
        left, right = st.columns(2)
        left.text_input("Variant name", key="exp_new_variant_name", placeholder="e.g. support-answer")
        right.text_input("Model", value=DEFAULT_MODEL, key="exp_new_model",
                         help="provider:model, e.g. openai:gpt-4o-mini. mock:support answers offline.")
        st.text_area("System prompt", key="exp_new_system", height=80,
                     placeholder="You answer customer questions in two sentences.")
        st.text_area("User template (Jinja2)", value=DEFAULT_TEMPLATE, key="exp_new_prompt", height=100,
                     help="Sees the item's input, expected output and metadata, e.g. {{ input.question }}.")
        st.caption("Offline `mock:` models answer from a reference: add a line "
                   "`Reference answer: {{ expected }}` for `mock:support` to copy the expected output.")
        st.text_area("Params (JSON or YAML)", key="exp_new_params", height=68,
                     placeholder='{"temperature": 0.2}  or  quality: 0.9')
        try:
            spec = _inline_spec()
        except ConfigError as err:
            spec_error = str(err)

    evaluator_names = [e.name for e in list_evaluators(url)]
    chosen_evaluators = st.multiselect("Evaluators", evaluator_names, key="exp_new_evaluators",
                                       help="Saved evaluators (create them on the Evaluators page); their versions "
                                            "are pinned with the experiment.")
    if not evaluator_names:
        st.caption("No saved evaluators yet: without one, the comparison has only cost, latency and errors.")

    candidates = [e for e in experiments if e.dataset_id == dataset.id]
    promoted = promoted_baseline(url, dataset.id)
    options: list[int | None] = [None] + [e.id for e in candidates]
    names = {e.id: e for e in candidates}
    left, right = st.columns(2)
    baseline_id = left.selectbox(
        "Baseline", options, key=f"exp_new_baseline_{dataset.id}",
        index=options.index(promoted) if promoted in options else 0,
        format_func=lambda i: "none" if i is None else f"{names[i].name} ({names[i].status}"
                                                      + (", promoted)" if i == promoted else ")"),
        help="Defaults to the dataset's promoted baseline.")
    concurrency = right.number_input("Concurrency", 1, 256, 8, key="exp_new_concurrency",
                                     help="How many items run at once.")
    st.text_input("Experiment name", key="exp_new_name", placeholder="default: <variant>-<UTC time>")

    if spec_error:
        st.error(spec_error)
    elif spec is not None and baseline_id is not None:
        _change_preview(url, names[baseline_id], spec, dataset_name)

    if st.button("Launch", key="exp_new_launch", type="primary", icon=":material/rocket_launch:",
                 disabled=spec is None and source == SAVED):
        if spec_error or spec is None:
            st.error(spec_error or "Define the variant first.")
            return
        name = (st.session_state.get("exp_new_name") or "").strip() or \
            f"{spec.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        variant: Any = spec.name if source == SAVED else spec
        created = run_action(lambda: create_experiment(url, name, dataset_name, variant, chosen_evaluators,
                                                 baseline=baseline_id, concurrency=int(concurrency),
                                                 created_by=who.username))
        if created is None:
            return
        if run_action(lambda: worker.launch(url, created)) is None:
            st.info(f"{plain(name)} was created but did not start; open it to try again.")
            return
        st.session_state["exp_launched"] = name
        st.rerun()


def _change_preview(url: str, baseline: ExperimentInfo, spec: VariantSpec, dataset: str) -> None:
    """What changes from the baseline's setup to this variant (and dataset version)."""
    diff = diff_variants(baseline.variant, spec, baseline.dataset_version, current_version(url, dataset))
    st.markdown(f"**Against {plain(baseline.name)}**")
    if not diff.changes:
        st.info("Nothing changes from the baseline: this run measures noise.")
        return
    st.dataframe(pd.DataFrame([{"Field": c.field, "Baseline": _short(c.before), "This variant": _short(c.after)}
                               for c in diff.changes]), hide_index=True, width="stretch")
    if diff.warning:
        st.warning(diff.warning, icon=":material/warning:")


def _short(value: Any, limit: int = 200) -> str:
    text = " ".join(output_text(value).split()) if not isinstance(value, datetime) else f"{value:%Y-%m-%d %H:%M:%S}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Comparing ------------------------------------------------------------------------------------


@st.cache_data(ttl=120, show_spinner="Comparing…", max_entries=32)
def _compared(url: str, candidate_id: int, baseline_id: int, stamp: tuple[Any, ...]) -> Comparison:
    # ``stamp`` (statuses and item counts) makes a run that moved on compare again.
    return compare(url, candidate_id, baseline_id)


def comparison_for(url: str, candidate: ExperimentInfo, baseline: ExperimentInfo) -> Comparison | None:
    stamp = tuple((e.status, experiment_progress(url, e.id).done) for e in (candidate, baseline))
    return run_action(lambda: _compared(url, candidate.id, baseline.id, stamp))


def choose_baseline(url: str, candidate: ExperimentInfo) -> ExperimentInfo | None:
    """The experiment's baseline, or the dataset's promoted one, or the one picked here."""
    others = [e for e in list_experiments(url, dataset=candidate.dataset) if e.id != candidate.id]
    if not others:
        st.info("No other experiment ran over this dataset yet: there is nothing to compare with. "
                "Run a variant against this one as its baseline.")
        return None
    default = candidate.baseline_id or promoted_baseline(url, candidate.dataset_id)
    ids = [e.id for e in others]
    by_id = {e.id: e for e in others}
    picked = st.selectbox("Baseline", ids, key=f"exp_cmp_baseline_{candidate.id}",
                          index=ids.index(default) if default in ids else 0,
                          format_func=lambda i: f"{by_id[i].name} ({by_id[i].status})"
                          + (" · its baseline" if i == candidate.baseline_id else "")
                          + (" · promoted" if by_id[i].promoted_at else ""))
    return by_id[picked]


def evaluator_rows(comparison: Comparison) -> list[dict[str, Any]]:
    ci = f"{comparison.confidence:.0%} CI"
    return [{"Evaluator": e.name + ("" if e.higher_is_better else " (lower is better)"), "n": e.n, "Baseline": e.baseline_mean, "Candidate": e.candidate_mean,
             "Delta": e.mean_delta, ci: "n/a" if e.ci_low is None else f"[{fmt(e.ci_low)}, {fmt(e.ci_high)}]",
             "p": fmt_p(e.p_value), "Test": e.test, "Win / tie / loss": f"{e.wins} / {e.ties} / {e.losses}"}
            for e in comparison.evaluators]


def delta_chart(comparison: Comparison) -> alt.Chart | None:
    data = pd.DataFrame([{"evaluator": e.name + ("" if e.higher_is_better else " (lower is better)"),
                          "delta": e.mean_delta, "low": e.ci_low, "high": e.ci_high, "p": fmt_p(e.p_value),
                          "direction": "better" if e.gain > 0 else ("worse" if e.gain < 0 else "same")}
                         for e in comparison.evaluators if e.gain is not None])
    if data.empty:
        return None
    y = alt.Y("evaluator:N", title=None)
    colour = alt.Color("direction:N", scale=alt.Scale(domain=["better", "same", "worse"],
                                                      range=["#2e7d32", "#757575", "#c62828"]), legend=None)
    points = alt.Chart(data).mark_point(filled=True, size=90).encode(
        x=alt.X("delta:Q", title="Candidate − baseline (mean, with CI)"), y=y, color=colour,
        tooltip=["evaluator", alt.Tooltip("delta:Q", format=".3f"), alt.Tooltip("low:Q", format=".3f"),
                 alt.Tooltip("high:Q", format=".3f"), "p"])
    # A plain rule from low to high: Vega-Lite's errorbar composite collapsed the evaluator rows.
    bars = alt.Chart(data).mark_rule(strokeWidth=3).encode(
        x=alt.X("low:Q", title="Candidate − baseline (mean, with CI)"), x2="high:Q", y=y, color=colour)
    zero = alt.Chart(data).mark_rule(strokeDash=[4, 4], color="#9e9e9e").encode(x=alt.datum(0))
    return alt.layer(zero, bars, points).properties(height=alt.Step(36))


def _metric(label: str, metric: Any, stat: str) -> None:
    cand, base = metric.figure(stat, "candidate"), metric.figure(stat, "baseline")
    delta = None if cand is None or base is None else cand - base
    st.metric(label, fmt_metric(metric.name, cand),
              None if delta is None else f"{fmt_metric(metric.name, delta, signed=True)} ({fmt_ratio(metric.ratio(stat))})",
              delta_color="inverse", help=f"Baseline: {fmt_metric(metric.name, base)}")


def comparison_view(comparison: Comparison, url: str) -> None:
    """Per-evaluator table and chart, cost/latency/errors, warnings, and the items side by side."""
    for warning in comparison.warnings:
        st.warning(warning, icon=":material/warning:")
    st.caption(f"{comparison.common_items:,} items compared"
               + (f" · {comparison.only_baseline} only in the baseline" if comparison.only_baseline else "")
               + (f" · {comparison.only_candidate} only in the candidate" if comparison.only_candidate else ""))
    st.subheader("Evaluators")
    if comparison.evaluators:
        st.dataframe(pd.DataFrame(evaluator_rows(comparison)), hide_index=True, width="stretch", key="exp_cmp_evals",
                     column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                                    for c in ("Baseline", "Candidate", "Delta")})
        chart = delta_chart(comparison)
        if chart is not None:
            st.altair_chart(chart, width="stretch")
    else:
        st.info("No evaluator scored both experiments: compare cost, latency and errors, or run with evaluators.")
    columns = st.columns(4)
    with columns[0]:
        _metric("Mean cost", comparison.cost, "mean")
    with columns[1]:
        _metric("Mean latency", comparison.latency, "mean")
    with columns[2]:
        _metric("p95 latency", comparison.latency, "p95")
    errors = comparison.errors
    columns[3].metric("Errors", f"{errors.candidate}", f"{errors.candidate - errors.baseline:+d}",
                      delta_color="inverse", help=f"{errors.new} newly failing, {errors.fixed} fixed, "
                                                  f"{errors.baseline} in the baseline")
    items_view(comparison, url)


def _scores(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {fmt(v)}" for k, v in sorted(scores.items()))


def items_view(comparison: Comparison, url: str) -> None:
    st.subheader("Items")
    changed_only = st.toggle("Changed items only", key="exp_cmp_changed", value=False)
    items = filter_items(sort_items(comparison.items, "regression"), changed_only=changed_only)
    if not items:
        st.info("No item changed." if changed_only else "No items to compare.")
        return
    rows = [{"Item": i.dataset_item_id, "Change": _change(i), "Input": _short(i.input, 80),
             "Baseline output": _short(i.baseline_output, 120), "Candidate output": _short(i.candidate_output, 120),
             "Baseline scores": _scores(i.baseline_scores), "Candidate scores": _scores(i.candidate_scores)}
            for i in items]
    event = st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="exp_cmp_items",
                         on_select="rerun", selection_mode="single-row")
    st.caption("Worst first. Select a row to see the item and its word diffs.")
    with st.expander("Send these items to an annotation queue (human review)", icon=":material/rate_review:"):
        traced = [i.candidate_trace_id for i in items if i.candidate_trace_id]
        st.caption(f"The candidate's traces of the {len(items):,} items listed"
                   + (" (changed items only)" if changed_only else "") + " go to the queue, for people to label.")
        add_to_queue(url, traced, "exp_cmp_queue", reason=f"experiment {comparison.candidate.name}",
                     label=f"Add {len(traced):,} item traces")
    selected = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    item_detail(items[selected[0]] if selected and selected[0] < len(items) else items[0])


def _change(item: ItemComparison) -> str:
    if item.newly_failed:
        return "now fails"
    if item.baseline_status == "error" and item.candidate_status == "ok":
        return "fixed"
    if not item.in_both:
        return "one side only"
    moved = [f"{name} {fmt(delta, signed=True)}" for name, delta in sorted(item.deltas.items()) if abs(delta) > 1e-9]
    return ", ".join(moved) or ("output changed" if item.output_changed else "same")


_COLOURS = {"insert": "green", "delete": "red"}


def diff_markdown(segments: list[Segment]) -> str:
    """Word diff segments as Markdown: every piece of text escaped (outputs never become markup or
    HTML), inserted words on green, deleted ones struck through on red."""
    parts: list[str] = []
    for op, text in segments:
        lines = text.split("\n")
        pieces = []
        for line in lines:
            stripped = line.strip()
            if op == "equal" or not stripped:
                pieces.append(plain(line))
                continue
            lead, trail = line[: len(line) - len(line.lstrip())], line[len(line.rstrip()):]
            body = plain(stripped)
            body = f"~~{body}~~" if op == "delete" else f"**{body}**"
            pieces.append(f"{lead}:{_COLOURS[op]}-background[{body}]{trail}")
        parts.append("  \n".join(pieces))
    return "".join(parts) or "_(empty)_"


def item_detail(item: ItemComparison) -> None:
    with st.container(border=True):
        st.markdown(f"**Item {plain(item.dataset_item_id)}** · {plain(_change(item))}")
        left, right = st.columns(2)
        with left:
            st.caption("Input")
            st.code(output_text(item.input), language=None, wrap_lines=True)
        with right:
            st.caption("Expected output")
            st.code(output_text(item.expected) or "(none)", language=None, wrap_lines=True)
        left, right = st.columns(2)
        for column, side, output, status, error, scores, latency, cost in (
                (left, "Baseline", item.baseline_output, item.baseline_status, item.baseline_error,
                 item.baseline_scores, item.baseline_latency_ms, item.baseline_cost_usd),
                (right, "Candidate", item.candidate_output, item.candidate_status, item.candidate_error,
                 item.candidate_scores, item.candidate_latency_ms, item.candidate_cost_usd)):
            with column:
                st.caption(f"{side} · {status or 'not run'} · {duration(latency)} · {money(cost)}"
                           + (f" · {_scores(scores)}" if scores else ""))
                if error:
                    st.error(error)
                st.code(output_text(output) or "(none)", language=None, wrap_lines=True)
        st.caption("Candidate vs baseline (green: added, red: removed)")
        st.markdown(diff_markdown(item.diff_vs_baseline()))
        if item.expected is not None:
            st.caption("Candidate vs expected output")
            st.markdown(diff_markdown(item.diff_vs_expected()))


# --- Deciding -------------------------------------------------------------------------------------


def _unreliable_judges(url: str, comparison: Comparison) -> list[str]:
    """Score names of judges whose agreement with people is measured and not good enough."""
    names = {e.name for e in comparison.evaluators}
    try:
        results = judge_agreement(url)
    except LooplabError:
        return []
    return sorted({r.score_name for r in results if r.agreement.reliable is False} & names)


def decide_view(url: str, candidate: ExperimentInfo, comparison: Comparison, who: Viewer) -> None:
    """Policy, unreliable judges, Decide (recorded), past decisions, promote."""
    st.subheader("Decide")
    mode = st.radio("Policy", ["Default", "Paste YAML"], key="exp_dec_mode", horizontal=True,
                    help="Default: no evaluator significantly worse than the baseline (p < 0.05).")
    policy_text = ""
    if mode == "Paste YAML":
        policy_text = st.text_area("Policy (YAML)", value=POLICY_EXAMPLE, key="exp_dec_yaml", height=180)
    flagged = _unreliable_judges(url, comparison)
    unreliable = st.multiselect(
        "Unreliable judges (reported, never deciding)", [e.name for e in comparison.evaluators], default=flagged,
        key=f"exp_dec_unreliable_{candidate.id}",
        help="Preselected: judges whose agreement with people (Evaluators → Judge vs human) is too low.")
    if st.button("Decide", key="exp_dec_decide", type="primary", icon=":material/gavel:"):
        policy = DEFAULT_POLICY if mode == "Default" else run_action(lambda: Policy.from_yaml(policy_text))
        if policy is not None:
            verdict = decide(comparison, policy, set(unreliable))
            if run_action(lambda: record_decision(url, comparison, verdict, policy, created_by=who.username)):
                st.session_state[f"exp_dec_last_{candidate.id}"] = (verdict, render_markdown(comparison, verdict))
    last = st.session_state.get(f"exp_dec_last_{candidate.id}")
    if last is not None:
        verdict, report = last
        show = st.success if verdict.ship else st.error
        show(f"**{verdict.headline}** · policy {plain(verdict.policy_name)}",
             icon=":material/check_circle:" if verdict.ship else ":material/block:")
        marks = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}
        st.markdown("\n".join(f"- {marks[r.status]} {plain(r.message)}" for r in verdict.reasons))
        st.download_button("Download report.md", report, file_name="report.md", mime="text/markdown",
                           key="exp_dec_report", icon=":material/download:")
    decisions = list_decisions(url, candidate.id)
    if decisions:
        st.markdown("**Past decisions**")
        st.dataframe(pd.DataFrame([{
            "Decided": d.created_at, "Outcome": d.headline, "Policy": d.policy.get("name"),
            "Baseline": d.baseline_id, "By": d.created_by or "",
            "Failed": "; ".join(r.get("message", "") for r in d.reasons if r.get("status") == "failed"),
        } for d in decisions]), hide_index=True, width="stretch", key="exp_dec_past")
    promote_button(url, candidate)


def promote_button(url: str, candidate: ExperimentInfo) -> None:
    if candidate.promoted_at is not None:
        st.caption(f"Promoted to baseline of {plain(candidate.dataset)} on {candidate.promoted_at:%Y-%m-%d %H:%M} UTC.")
    if st.button("Promote to baseline", key="exp_dec_promote", icon=":material/workspace_premium:",
                 disabled=candidate.status != "completed",
                 help="New experiments over this dataset compare with it by default."):
        promoted = run_action(lambda: promote_experiment(url, candidate.id))
        if promoted:
            st.success(f"{plain(candidate.name)} is now the baseline of {plain(candidate.dataset)}.")
