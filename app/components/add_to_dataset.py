""""Add to dataset": turn the trace on screen into a dataset item, in an existing or a new dataset.

Used on the trace detail. The item's input is the trace's input; its labels are the trace's human
labels; its expected output is, in order: what the person types here, the corrected output from
those labels, or the trace's own output (``add_labelled_trace``).
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from components.formatting import plain
from looplab.annotation.agreement import trace_labels
from looplab.datasets import AlreadyInDataset, ItemVersion, add_labelled_trace, list_datasets
from looplab.errors import LooplabError

NEW_DATASET = "＋ New dataset…"


def parse_typed_value(text: str) -> Any:
    """What a person typed as a value: a JSON object or array when it is one, else the text itself."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            return json.loads(stripped)
        except ValueError:
            return text
    return text


def add_to_dataset_form(
    url: str,
    trace_id: str,
    author: str | None = None,
    key_prefix: str = "atd",
) -> ItemVersion | None:
    """Pick a dataset (or name a new one), optionally override the expected output, and add the
    trace to it with its labels (``add_labelled_trace``); returns the new item on the run it was added.

    ``key_prefix`` keeps two forms on one page apart (their widget keys start with it).
    """
    key = f"{key_prefix}_{trace_id}"
    names = [d.name for d in list_datasets(url)]
    choice = st.selectbox("Dataset", [*names, NEW_DATASET], key=f"{key}_dataset",
                          help="An existing dataset, or a new one created with this item.")
    name = choice
    if choice == NEW_DATASET:
        name = st.text_input("New dataset's name", key=f"{key}_new_name", placeholder="support-golden")
    labels = trace_labels(url, trace_id)
    if labels.values:
        shown = ", ".join(f"{k} {str(v)[:60]}" for k, v in labels.values.items())  # a free-text label may be long
        st.caption(f"Labels recorded with the item: {plain(shown)}")
    source = "the corrected output" if labels.corrected_output is not None else "the trace's output"
    override = st.text_area(
        "Expected output (optional)", key=f"{key}_expected", height=100,
        placeholder=f"Leave empty to use {source}.",
        help="What a good answer is. A JSON object or array is stored as JSON, anything else as text.",
    )
    if not st.button("Add to dataset", key=f"{key}_add", type="primary", icon=":material/playlist_add:"):
        return None
    if not (name or "").strip():
        st.error("Name the new dataset first.")
        return None
    expected = parse_typed_value(override) if override.strip() else None
    try:
        item = add_labelled_trace(url, name, trace_id, expected_output=expected, author=author,
                                  create_if_missing=choice == NEW_DATASET)
    except AlreadyInDataset as err:
        st.warning(plain(err), icon=":material/info:")
        _link(name.strip())
        return None
    except LooplabError as err:
        st.error(plain(err))
        return None
    st.success(f"Added to **{plain(name.strip())}** as item `{item.item_id}`.", icon=":material/check:")
    _link(name.strip())
    return item


def _link(name: str) -> None:
    st.page_link("app_pages/datasets.py", label=f"Open the dataset {plain(name)}", icon=":material/dataset:",
                 query_params={"dataset": name})
