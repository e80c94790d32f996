"""Score configs: the ways people, code and judges score traces, each with the rubric they read."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from components.store import database_url
from looplab.annotation.score_configs import (
    ScoreConfigView,
    archive_score_config,
    create_score_config,
    list_score_configs,
    unarchive_score_config,
    update_score_config,
)
from looplab.errors import LooplabError
from looplab.store.models import SCORE_DATA_TYPES

url = database_url()
FLASH = "sc_flash"
TYPE_HELP = {
    "numeric": "A number, optionally within a range and on steps (e.g. 1 to 5, step 1; or 0 to 1, step 0.01).",
    "categorical": "One of a list of labels; give each a value to average them in charts, or none if unordered.",
    "boolean": "Yes or no; stored as 1 or 0.",
    "text": "Free text, stored as the score's comment.",
}

st.title("Score configs")
st.caption("How traces are scored: by annotators in queues, by hand on a trace, and later by LLM judges. "
           "Each has a rubric, shown to whoever scores.")
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))

show_archived = st.toggle("Show archived", key="sc_show_archived")
configs = list_score_configs(url, include_archived=show_archived)
if configs:
    st.dataframe(
        [{"name": c.name, "type": c.data_type, "accepts": c.summary(),
          "rubric": (c.description or "").splitlines()[0] if c.description else "",
          "archived": c.archived} for c in configs],
        hide_index=True, width="stretch",
    )
else:
    st.info("No score configs yet. Create the first one below, for example *correctness* "
            "(correct / partially correct / incorrect) or *helpfulness* (1 to 5).", icon=":material/tune:")


def options_frame(config: ScoreConfigView | None) -> pd.DataFrame:
    rows = [{"label": c.label, "value": c.value} for c in config.categories] if config else []
    rows = rows or [{"label": None, "value": None}, {"label": None, "value": None}]
    return pd.DataFrame(rows, columns=["label", "value"]).astype({"label": "object", "value": "float64"})


def options_from(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{"label": row["label"], "value": None if pd.isna(row["value"]) else float(row["value"])}
            for row in frame.to_dict("records")]


def type_fields(data_type: str, key: str, config: ScoreConfigView | None) -> dict[str, Any]:
    """The inputs a data type needs (inside a form); returns them as keyword arguments."""
    if data_type == "numeric":
        low, high, step = st.columns(3)
        return {
            "min_value": low.number_input("Minimum", value=config.min_value if config else None, format="%g",
                                          key=f"{key}_min", placeholder="none"),
            "max_value": high.number_input("Maximum", value=config.max_value if config else None, format="%g",
                                           key=f"{key}_max", placeholder="none"),
            "step": step.number_input("Step", value=config.step if config else None, format="%g",
                                      key=f"{key}_step", placeholder="any", help="Leave empty for any value."),
        }
    if data_type == "categorical":
        st.caption("Options: a label each, and a value to average in charts (leave every value empty "
                   "for labels without an order). Add rows at the bottom; select rows to delete them.")
        frame = st.data_editor(
            options_frame(config), num_rows="dynamic", key=f"{key}_options", hide_index=True, width="stretch",
            column_config={"label": st.column_config.TextColumn("label", required=True),
                           "value": st.column_config.NumberColumn("value", format="%g")},
        )
        return {"categories": options_from(frame)}
    return {}


def config_form(key: str, config: ScoreConfigView | None) -> dict[str, Any] | None:
    """The create or edit form: the chosen data type's inputs, name and rubric; returns the fields on submit."""
    data_type = st.segmented_control(
        "Data type", list(SCORE_DATA_TYPES), default=config.data_type if config else "numeric",
        key=f"{key}_type", help="\n\n".join(f"**{t}**: {h}" for t, h in TYPE_HELP.items()),
    ) or (config.data_type if config else "numeric")
    st.caption(TYPE_HELP[data_type])
    with st.form(f"{key}_form", border=True):
        name = st.text_input("Name", value=config.name if config else "", key=f"{key}_name",
                             placeholder="e.g. correctness")
        fields = type_fields(data_type, key, config)
        description = st.text_area(
            "Rubric (Markdown)", value=(config.description or "") if config else "", key=f"{key}_rubric", height=160,
            help="What each value means, with examples: annotators see it next to the input, judges read it.",
        )
        submitted = st.form_submit_button("Save changes" if config else "Create", type="primary")
    if not submitted:
        return None
    return {"name": name, "data_type": data_type, "description": description, **fields}


def saved(message: str) -> None:
    st.session_state[FLASH] = message
    st.rerun()


new_tab, edit_tab = st.tabs(["New config", "Edit or archive"])

with new_tab:
    fields = config_form("sc_new", None)
    if fields is not None:
        try:
            created = create_score_config(url, fields.pop("name"), fields.pop("data_type"), **fields)
        except LooplabError as err:
            st.error(str(err))
        else:
            saved(f"Created {created.name}.")

with edit_tab:
    every = list_score_configs(url, include_archived=True)
    if not every:
        st.caption("Nothing to edit yet.")
    else:
        by_id = {c.id: c for c in every}
        picked = st.selectbox("Score config", list(by_id), key="sc_edit_pick",
                              format_func=lambda i: f"{by_id[i].name} (archived)" if by_id[i].archived else by_id[i].name)
        config = by_id[picked]
        if config.archived:
            st.warning(f"{config.name} is archived: it is not offered for new scores; its scores stay.")
            if st.button("Unarchive", key=f"sc_unarchive_{config.id}", icon=":material/unarchive:"):
                unarchive_score_config(url, config.id)
                saved(f"Unarchived {config.name}.")
        fields = config_form(f"sc_edit_{config.id}", config)
        if fields is not None:
            try:
                updated = update_score_config(url, config.id, **fields)
            except LooplabError as err:
                st.error(str(err))
            else:
                saved(f"Saved {updated.name}.")
        if not config.archived and st.button("Archive", key=f"sc_archive_{config.id}", icon=":material/archive:",
                                             help="Hide it from new labels; existing scores and charts keep it."):
            archive_score_config(url, config.id)
            saved(f"Archived {config.name}.")
