"""Widgets to score with score configs: one input a config, and a small form to score a trace.

``score_inputs`` draws one input fit for each config's type and returns what was entered, raw
(check and convert it with ``looplab.annotation.score_configs.score_value`` or let
``record_manual_score`` / the queue's ``submit_label`` do it):

- numeric: pills of the values when the range holds at most 11 steps (a 1 to 5 scale), else a number
  input bounded by the range and stepping by the step; -> ``float``
- categorical: pills of the labels; -> the label (``str``)
- boolean: a Yes / No segmented control; -> ``True`` / ``False``
- text: a text area; -> ``str``

Every input can be left empty (-> ``None``). A config's rubric is in an expander under its input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from looplab.annotation.score_configs import ScoreConfigLike, ScoreConfigView, as_view, list_score_configs, record_manual_score
from looplab.annotation.users import Viewer
from looplab.errors import LooplabError

MAX_PILLS = 11
_YES_NO = {True: "Yes", False: "No"}


def _grid(config: ScoreConfigView) -> list[float] | None:
    """The allowed values of a bounded, stepped numeric config, when few enough to show as pills."""
    low, high, step = config.min_value, config.max_value, config.step
    if low is None or high is None or not step:
        return None
    count = int(round((high - low) / step)) + 1
    if count > MAX_PILLS:
        return None
    return [round(low + i * step, 10) for i in range(count) if low + i * step <= high + 1e-9]


def _decimals(step: float | None) -> int:
    if not step:
        return 2
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def score_input(config: ScoreConfigLike, key: str, value: Any = None) -> Any:
    """One input for ``config`` (``key`` is its widget key), prefilled with ``value``; returns the raw
    value entered, ``None`` when empty."""
    view = as_view(config)
    label = view.name
    help_ = view.summary()
    if view.data_type == "numeric":
        grid = _grid(view)
        if grid is not None:
            default = next((g for g in grid if value is not None and abs(g - float(value)) < 1e-9), None)
            picked = st.pills(label, grid, default=default, format_func=_show, key=key, help=help_)
            result: Any = None if picked is None else float(picked)
        else:
            decimals = _decimals(view.step)
            result = st.number_input(
                label, min_value=view.min_value, max_value=view.max_value,
                value=None if value is None else float(value), step=view.step or 10 ** -decimals,
                format=f"%.{decimals}f", key=key, help=help_, placeholder="not scored",
            )
    elif view.data_type == "categorical":
        default = value if value in view.labels else None
        result = st.pills(label, view.labels, default=default, key=key, help=help_)
    elif view.data_type == "boolean":
        default = None if value is None else bool(value)
        result = st.segmented_control(label, [True, False], default=default, format_func=_YES_NO.get,
                                      key=key, help=help_)
    else:
        text = st.text_area(label, value="" if value is None else str(value), key=key, help=help_)
        result = text if text.strip() else None
    if view.description:
        with st.expander(f"Rubric: {view.name}", icon=":material/menu_book:"):
            st.markdown(view.description)
    return result


def score_inputs(configs: Sequence[ScoreConfigLike], key_prefix: str,
                 values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One input a config (see the module's docstring), keys ``f"{key_prefix}_{name}"``, prefilled
    from ``values`` (by config name); returns the raw values by config name, ``None`` when empty."""
    values = values or {}
    entered: dict[str, Any] = {}
    for config in configs:
        view = as_view(config)
        entered[view.name] = score_input(view, f"{key_prefix}_{view.name}", values.get(view.name))
    return entered


def manual_score_form(url: str, trace_id: str, viewer: Viewer) -> str | None:
    """A small form to score trace ``trace_id`` with one (active) config as ``viewer``; returns the
    new score's id on the run it was saved, else ``None``. Bad input gets a message, nothing saved."""
    configs = list_score_configs(url)
    prefix = f"manual_score_{trace_id}"
    if not configs:
        st.caption("No score configs yet: create one on the **Score configs** page to score traces by hand.")
        return None
    names = [c.name for c in configs]
    name = st.selectbox("Score config", names, key=f"{prefix}_config")
    config = next(c for c in configs if c.name == name)
    with st.form(f"{prefix}_form", clear_on_submit=True, border=False):
        raw = score_input(config, f"{prefix}_{config.name}_value")
        comment = None
        if config.data_type != "text":
            comment = st.text_input("Comment (optional)", key=f"{prefix}_comment")
        submitted = st.form_submit_button("Save score", icon=":material/add_task:")
    if not submitted:
        return None
    try:
        score_id = record_manual_score(url, trace_id, config, raw, viewer.username, comment=comment)
    except LooplabError as err:
        st.error(str(err))
        return None
    st.success(f"Saved {config.name} for this trace, by {viewer.display_name}.")
    return score_id
