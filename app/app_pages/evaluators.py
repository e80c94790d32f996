"""Evaluators: code checks and LLM judges; try one, run them on production traces, and see how far
each judge agrees with people."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import streamlit as st

from components.store import database_url
from looplab.annotation.score_configs import list_score_configs
from looplab.errors import LooplabError
from looplab.evaluation import EVALUATOR_TYPES, get_evaluator_info, list_evaluators, save_evaluator
from looplab.evaluation.forms import TYPE_HELP, agreement_rows, evaluator_rows, spec_from_fields, try_case
from looplab.evaluation.judge_agreement import CORRELATION_THRESHOLD, KAPPA_THRESHOLD, MIN_ITEMS, judge_agreement
from looplab.evaluation.judges import TEMPLATES
from looplab.evaluation.online import run_online
from looplab.store.types import utcnow

url = database_url()
FLASH = "ev_flash"

st.title("Evaluators")
st.caption("Code checks and LLM judges turn outputs into scores: on experiments, and on a sample of production "
           "traces. Check each judge against human labels before trusting it.")
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))

evaluators = list_evaluators(url)
if evaluators:
    st.dataframe(evaluator_rows(evaluators), hide_index=True, width="stretch",
                 column_config={"created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm")})
else:
    st.info("No evaluators yet. Create one below: a code check (exact match, contains, regex, JSON schema...) or "
            "an LLM judge (try the offline model `mock:judge`).", icon=":material/gavel:")

new_tab, try_tab, online_tab, agreement_tab = st.tabs(["New evaluator", "Try it", "Run online", "Judge vs human"])


def normalization_fields() -> dict[str, Any]:
    case, blanks, punctuation = st.columns(3)
    return {"ignore_case": case.checkbox("Ignore case", key="ev_ignore_case"),
            "ignore_whitespace": blanks.checkbox("Ignore extra blanks", key="ev_ignore_whitespace"),
            "ignore_punctuation": punctuation.checkbox("Ignore punctuation", key="ev_ignore_punctuation")}


def type_fields(kind: str) -> dict[str, Any]:
    """The inputs of one evaluator type (inside the form), as raw fields."""
    if kind == "exact_match":
        return {**normalization_fields(),
                "expected": st.text_input("Expected output", key="ev_expected",
                                          help="Leave empty to compare with each case's expected output.")}
    if kind == "contains":
        return {"values": st.text_area("Values, one a line", key="ev_values",
                                       help="Leave empty to look for each case's expected output."),
                "mode": st.radio("Passes when the output contains", ["any", "all"], horizontal=True, key="ev_mode"),
                **normalization_fields()}
    if kind == "regex":
        return {"pattern": st.text_input("Regular expression", key="ev_pattern"),
                "full": st.checkbox("The whole output must match", key="ev_full"),
                "ignore_case": st.checkbox("Ignore case", key="ev_regex_case")}
    if kind == "json_schema":
        return {"schema": st.text_area("JSON Schema", key="ev_schema", height=160,
                                       placeholder='{"type": "object", "required": ["answer"]}')}
    if kind == "numeric":
        absolute, relative = st.columns(2)
        return {"abs_tol": absolute.number_input("Absolute tolerance", min_value=0.0, value=0.0, format="%g",
                                                 key="ev_abs_tol"),
                "rel_tol": relative.number_input("Relative tolerance", min_value=0.0, value=0.0, format="%g",
                                                 key="ev_rel_tol"),
                "expected": st.text_input("Expected number", key="ev_number",
                                          help="Leave empty to use each case's expected output.")}
    if kind == "similarity":
        return {"threshold": st.slider("Passes from", 0.0, 1.0, 0.8, 0.05, key="ev_threshold"),
                **normalization_fields()}
    if kind == "custom":
        return {"function": st.text_input("Function", key="ev_function", placeholder="mypackage.checks:is_polite"),
                "params": st.text_area("Keyword arguments (JSON)", key="ev_params", placeholder='{"limit": 100}')}
    if kind == "judge":
        configs = [c.name for c in list_score_configs(url) if c.data_type != "text"]
        template = st.selectbox("Template", TEMPLATES, key="ev_template",
                                help="correctness needs an expected output, faithfulness retrieved context; "
                                     "rubric judges with a score config's description and type.")
        return {"template": template,
                "model": st.text_input("Model", value="mock:judge", key="ev_model",
                                       help="openai:<model>, anthropic:<model>, openai-compatible:<endpoint>/<model> "
                                            "or mock:judge (offline)."),
                "score_config": st.selectbox("Score config (rubric template)", [None, *configs], key="ev_score_config",
                                             format_func=lambda c: "none" if c is None else c),
                "params": st.text_area("Model parameters (JSON)", key="ev_judge_params",
                                       placeholder='{"temperature": 0}')}
    return {}


with new_tab:
    kind = st.selectbox("Type", EVALUATOR_TYPES, key="ev_type", help="\n\n".join(
        f"**{t}**: {h}" for t, h in TYPE_HELP.items()))
    st.caption(TYPE_HELP[kind])
    with st.form("ev_new_form"):
        name = st.text_input("Name", key="ev_name", placeholder="e.g. mentions-refund",
                             help="Scores are named after the evaluator (a rubric judge: after its score config). "
                                  "Saving a changed config under the same name adds a version.")
        fields = type_fields(kind)
        if st.checkbox("Lower scores are better", key="ev_lower",
                       help="For scores where less is better (a hallucination rate, a length): comparisons and "
                            "ship gates then read a drop as an improvement."):
            fields["higher_is_better"] = False
        submitted = st.form_submit_button("Save evaluator", type="primary")
    if submitted:
        try:
            info = save_evaluator(url, name, spec_from_fields(kind, fields))
        except LooplabError as err:
            st.error(str(err))
        else:
            st.session_state[FLASH] = f"Saved {info.name}, version {info.version}."
            st.rerun()

with try_tab:
    if not evaluators:
        st.caption("Save an evaluator first, then try it on a case here.")
    else:
        chosen = st.selectbox("Evaluator", [e.name for e in evaluators], key="ev_try_name")
        left, right = st.columns(2)
        case_input = left.text_area("Input", key="ev_try_input", height=100)
        case_output = right.text_area("Output", key="ev_try_output", height=100)
        case_expected = left.text_area("Expected output (optional)", key="ev_try_expected", height=100)
        case_context = right.text_area("Retrieved context (optional, a blank line between passages)",
                                       key="ev_try_context", height=100)
        if st.button("Try it", key="ev_try_run", type="primary"):
            try:
                info = get_evaluator_info(url, chosen)
                with st.spinner("Evaluating..."):
                    result = try_case({**info.config, "name": info.name}, url=url, input=case_input,
                                      output=case_output, expected=case_expected, context=case_context)
            except LooplabError as err:
                st.error(str(err))
            else:
                if result.error:
                    st.error(f"Could not evaluate: {result.error}")
                else:
                    value, label, passed = st.columns(3)
                    value.metric("Value", "-" if result.value is None else f"{result.value:g}")
                    label.metric("Label", result.label or "-")
                    passed.metric("Passed", {True: "yes", False: "no", None: "-"}[result.passed])
                    if result.reasoning:
                        st.markdown(f"**Reasoning:** {result.reasoning}")
                if result.input_tokens is not None:
                    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
                    st.caption(f"{result.input_tokens:,} input and {result.output_tokens or 0:,} output tokens, "
                               f"cost {cost}; version {result.version}.")

with online_tab:
    st.caption("Score a sample of recent production traces (the same traces for a given rate every time; a trace is "
               "never scored twice by the same evaluator version). Scores show on Monitoring. From cron: "
               "`looplab evaluate online --since 1h --sample 0.1 --evaluator NAME`.")
    picked = st.multiselect("Evaluators", [e.name for e in evaluators], key="ev_online_evaluators")
    hours_col, rate_col = st.columns(2)
    hours = hours_col.number_input("Traces of the last hours", min_value=1, max_value=24 * 90, value=24,
                                   key="ev_online_hours")
    rate = rate_col.slider("Sample rate", 0.01, 1.0, 0.1, 0.01, key="ev_online_rate")
    if st.button("Run online evaluation", key="ev_online_run", type="primary", disabled=not picked):
        bar = st.progress(0.0, text="Sampling traces...")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total if total else 1.0, text=f"Evaluated {done:,} of {total:,}")

        now = utcnow()
        try:
            run = run_online(url, picked, since=now - timedelta(hours=int(hours)), until=now, sample_rate=float(rate),
                             progress=progress)
        except LooplabError as err:
            st.error(str(err))
        else:
            bar.progress(1.0, text="Done")
            st.success(f"{run.traces_in_window:,} traces in the last {int(hours)} h, {run.sampled:,} sampled: "
                       f"{run.scores_written:,} scores written.")
            st.dataframe([{"evaluator": e.name, "version": e.version, "evaluated": e.evaluated,
                           "already done": e.skipped, "errors": e.errors, "mean": e.mean,
                           "passed": e.passed, "failed": e.failed, "cost (USD)": e.cost_usd}
                          for e in run.evaluators], hide_index=True, width="stretch")
            for e in run.evaluators:
                if e.first_error:
                    st.warning(f"{e.name}: {e.errors} error{'s' if e.errors != 1 else ''}, e.g. {e.first_error}")

with agreement_tab:
    st.caption(f"Traces and experiment items scored both by an evaluator and by a person under the same score name. "
               f"Reliable: Cohen's kappa of at least {KAPPA_THRESHOLD} for labels, Spearman's correlation of at "
               f"least {CORRELATION_THRESHOLD} for numbers, over at least {MIN_ITEMS} items.")
    with st.expander("Thresholds"):
        kappa_col, corr_col, n_col = st.columns(3)
        kappa_min = kappa_col.number_input("Kappa", 0.0, 1.0, KAPPA_THRESHOLD, 0.05, key="ev_kappa")
        corr_min = corr_col.number_input("Correlation", 0.0, 1.0, CORRELATION_THRESHOLD, 0.05, key="ev_corr")
        n_min = n_col.number_input("Items", 1, 10_000, MIN_ITEMS, key="ev_min_items")
    results = judge_agreement(url, kappa_threshold=kappa_min, correlation_threshold=corr_min, min_items=int(n_min))
    if not results:
        st.info("No trace or item has both an evaluator's score and a human score of the same name yet. Name a "
                "judge's score after a score config your annotators use (a rubric judge does), then label some of "
                "the traces it scored.")
    else:
        st.dataframe(agreement_rows(results), hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(k, format="%.2f")
                                    for k in ("accuracy", "kappa", "pearson", "spearman")})
        unreliable = [r for r in results if r.agreement.reliable is False]
        if unreliable:
            st.warning("Not reliable yet: " + ", ".join(f"{r.evaluator} on {r.score_name}" for r in unreliable)
                       + ". Improve the prompt or rubric, or rely on human labels for these.")
        for r in results:
            if r.agreement.confusion is not None:
                with st.expander(f"{r.evaluator} ({r.evaluator_version}) on {r.score_name}: confusion matrix"):
                    st.caption("Rows: what people said; columns: what the evaluator said.")
                    st.dataframe(r.agreement.confusion.rows(), hide_index=True)
