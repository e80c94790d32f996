"""Experiments: run a variant over a dataset in a worker process, watch it, compare it with a
baseline item by item, decide whether it ships, promote it. ``?experiment=<name or id>`` opens one."""

import streamlit as st
from components.auth import viewer
from components.experiments_view import (
    choose_baseline,
    comparison_for,
    comparison_view,
    decide_view,
    experiment_list,
    find_experiment,
    new_experiment_form,
    promote_button,
    run_progress,
    running_experiments,
)
from components.formatting import plain
from components.store import database_url

from looplab.experiments.records import list_experiments

url = database_url()
who = viewer()

ref = st.query_params.get("experiment")
candidate = find_experiment(url, ref) if ref else None
if candidate is not None:
    st.title(candidate.name)
    if st.button("All experiments", icon=":material/arrow_back:", type="tertiary", key="exp_back"):
        st.query_params.clear()
        st.rerun()
    variant = candidate.variant
    st.caption(f"{plain(variant.get('name'))} v{variant.get('version')} · {plain(variant.get('model') or variant.get('task') or '')}"
               f" over **{plain(candidate.dataset)}** · {candidate.status}"
               + (" · promoted baseline" if candidate.promoted_at else ""))
    if candidate.error:
        st.error(candidate.error)
    run_progress(url, candidate.id)
    baseline = choose_baseline(url, candidate)
    comparison = comparison_for(url, candidate, baseline) if baseline is not None else None
    if comparison is not None:
        comparison_view(comparison, url)
        decide_view(url, candidate, comparison, who)
    else:
        promote_button(url, candidate)
    st.stop()

st.title("Experiments")
st.caption("Change one variable (prompt, model, params), run it over a dataset, compare it with the baseline item by "
           "item, and decide whether it ships.")
launched = st.session_state.pop("exp_launched", None)
if launched:
    st.success(f"Launched {plain(launched)} in a worker process: it keeps running if you close this tab.")
experiments = list_experiments(url, limit=200)
running_experiments(url, experiments)
if experiments:
    st.subheader("All experiments")
    experiment_list(url, experiments)
else:
    st.info("No experiments yet. Pick a dataset and a variant below (the offline `mock:support` model needs no key), "
            "or run `looplab experiment run --dataset <name> --variant variant.yaml` from the command line.")
with st.expander("New experiment", icon=":material/add:", expanded=not experiments):
    new_experiment_form(url, who, experiments)
