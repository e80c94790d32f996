"""Datasets: versioned test cases. `?dataset=<name>` opens one, `&version=<time>` as it was then."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import streamlit as st
from components.dataset_import import import_panel
from components.formatting import plain
from components.store import database_url

from looplab.datasets import (
    DatasetInfo,
    ItemVersion,
    archive_dataset,
    create_dataset,
    delete_item,
    edit_item,
    export_text,
    get_dataset,
    item_history,
    items_at,
    list_datasets,
    unarchive_dataset,
    versions,
)
from looplab.errors import ConfigError, LooplabError, NotFound
from looplab.explorer import pretty_json, preview_text
from looplab.timeparse import iso_utc, parse_when

PAGE_SIZES = (25, 50, 100)
MAX_VERSIONS = 500


def _close_dataset() -> None:
    for key in ("dataset", "version"):
        if key in st.query_params:
            del st.query_params[key]
    st.session_state.pop("ds_item", None)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "–"


def _shown(value: Any) -> None:
    """A stored value as plain text: text as is, anything else as JSON."""
    if value is None:
        st.caption("(none)")
    elif isinstance(value, str):
        st.text(value)
    else:
        st.code(pretty_json(value), language="json", wrap_lines=True)


# --- all datasets ------------------------------------------------------------------------------------


def list_view(url: str) -> None:
    st.title("Datasets")
    st.caption("Versioned test cases: each change is a new version, and every earlier version stays readable, so "
               "an experiment can pin the exact items it ran on.")
    show_archived = st.toggle("Show archived datasets", key="ds_show_archived")
    datasets = list_datasets(url, include_archived=show_archived)
    if not datasets:
        st.info("No datasets yet. Create one below and import a JSONL or CSV file into it, or open a trace on the "
                "**Traces** page and use **Add to dataset**.", icon=":material/dataset:")
        st.page_link("app_pages/traces.py", label="Go to Traces", icon=":material/account_tree:")
        st.caption("From a terminal: `looplab dataset import NAME FILE` (JSONL or CSV); `looplab seed` adds a sample "
                   "dataset.")
    else:
        event = st.dataframe(
            [{"open": f"/datasets?dataset={quote(d.name)}", "name": d.name, "items": d.item_count,
              "last change": d.last_change, "created": d.created_at, "description": d.description or "",
              "archived": d.archived} for d in datasets],
            hide_index=True, on_select="rerun", selection_mode="single-row", key="ds_table",
            column_config={
                "open": st.column_config.LinkColumn("link", display_text="open", width="small"),
                "last change": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss", timezone="UTC"),
                "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", timezone="UTC"),
                "description": st.column_config.TextColumn(width="large"),
            },
        )
        st.caption("Select a row to open a dataset.")
        if event.selection.rows:
            st.query_params["dataset"] = datasets[event.selection.rows[0]].name
            st.session_state.pop("ds_table", None)
            st.rerun()

    st.subheader("New dataset")
    with st.form("ds_create", clear_on_submit=True):
        name = st.text_input("Name", key="ds_new_name", placeholder="support-golden")
        description = st.text_area("Description (optional)", key="ds_new_description", height=80,
                                   placeholder="What these cases test, where they come from.")
        submitted = st.form_submit_button("Create dataset", type="primary", icon=":material/add:")
    if submitted:
        try:
            created = create_dataset(url, name, description)
        except LooplabError as err:
            st.error(plain(err))
        else:
            st.query_params["dataset"] = created.name
            st.rerun()


# --- one dataset -------------------------------------------------------------------------------------


def dataset_view(url: str, name: str) -> None:
    st.button("← All datasets", on_click=_close_dataset, key="ds_back")
    try:
        info = get_dataset(url, name)
    except NotFound as err:
        st.warning(plain(err))
        return
    st.title(plain(info.name))
    if info.description:
        st.caption(plain(info.description))
    if info.archived:
        st.warning(f"Archived on {_when(info.archived_at)}: read-only. Unarchive it under **Manage** to change it.",
                   icon=":material/inventory_2:")
    version = _version_picker(url, info)
    items_tab, import_tab, export_tab, manage_tab = st.tabs(["Items", "Import", "Export", "Manage"])
    with items_tab:
        _items(url, info, version)
    with import_tab:
        if info.archived:
            st.info("An archived dataset takes no new items; unarchive it under **Manage** first.")
        else:
            import_panel(url, info.name)
    with export_tab:
        _export(url, info, version)
    with manage_tab:
        _manage(url, info)


def _version_picker(url: str, info: DatasetInfo) -> datetime | None:
    """The version to show: latest by default, any past one from the list or from ``?version=``."""
    history = versions(url, info.name, limit=MAX_VERSIONS)
    options: list[datetime | None] = [None, *[v.time for v in history]]
    counts = {v.time: v.item_count for v in history}
    asked = st.query_params.get("version")
    if asked:
        try:
            moment = parse_when(asked, datetime.now(timezone.utc))
        except ConfigError as err:
            st.error(plain(f"?version={asked}: {err}"))
            moment = None
        if moment is not None and moment not in options:
            options.insert(1, moment)
        if st.session_state.get("ds_version_asked") != asked:
            st.session_state.ds_version_asked = asked
            st.session_state.ds_version = moment

    def label(option: datetime | None) -> str:
        if option is None:
            return f"Latest · {info.item_count:,} items" + (f" · {_when(history[0].time)}" if history else "")
        count = counts.get(option)
        return f"{_when(option)}" + (f" · {count:,} items" if count is not None else " · as of this time")

    if st.session_state.get("ds_version") not in options:
        st.session_state.ds_version = None
    version = st.selectbox("Version", options, format_func=label, key="ds_version",
                           help="Every change made a version. Pick one to see the dataset as it was then.")
    if version is None:
        if "version" in st.query_params:
            del st.query_params["version"]
    else:
        st.query_params["version"] = iso_utc(version) or ""
        st.session_state.ds_version_asked = st.query_params["version"]
        st.caption(f"Showing the dataset as of {_when(version)} (read-only). Share it with "
                   f"`?dataset={quote(info.name)}&version={iso_utc(version)}`.")
    return version


def _items(url: str, info: DatasetInfo, version: datetime | None) -> None:
    search_col, size_col = st.columns([4, 1])
    search = search_col.text_input("Search inputs, expected outputs and metadata", key="ds_q",
                                   placeholder="refund window")
    page_size = size_col.selectbox("Per page", PAGE_SIZES, key="ds_size")
    view = (info.name, version, search, page_size)
    if st.session_state.get("ds_view") != view:  # a new question starts at its first page
        st.session_state.ds_view = view
        st.session_state.ds_page = 1
    page = st.session_state.get("ds_page", 1)
    result = items_at(url, info.name, version, search=search or None, offset=(page - 1) * page_size, limit=page_size)
    if not result.items:
        if search:
            st.info("No item matches the search. Try fewer or shorter words.")
        elif version is not None:
            st.info("The dataset held no items at this time.")
        else:
            st.info("This dataset has no items yet. Import a JSONL or CSV file under **Import**, or add traces from "
                    "the **Traces** page (open a trace, then **Add to dataset**).", icon=":material/dataset:")
        return
    st.caption(f"Items {result.offset + 1:,}–{result.offset + len(result.items):,} of {result.total:,}"
               " · select a row to see, edit or delete it")
    event = st.dataframe(
        [{"item": i.item_id[-12:], "input": preview_text(i.input), "expected output": preview_text(i.expected_output),
          "source trace": f"/traces?trace={i.source_trace_id}" if i.source_trace_id else None,
          "since": i.valid_from} for i in result.items],
        hide_index=True, on_select="rerun", selection_mode="single-row", key="ds_items_table",
        column_config={
            "input": st.column_config.TextColumn(width="large"),
            "expected output": st.column_config.TextColumn(width="large"),
            "source trace": st.column_config.LinkColumn(display_text="trace", width="small"),
            "since": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss", timezone="UTC"),
        },
    )
    previous, where, following = st.columns([1, 3, 1])
    pages = max(1, -(-result.total // page_size))
    previous.button("← Previous", disabled=not result.has_previous, key="ds_prev",
                    on_click=lambda: st.session_state.update(ds_page=page - 1))
    where.caption(f"Page {page:,} of {pages:,}")
    following.button("Next →", disabled=not result.has_next, key="ds_next",
                     on_click=lambda: st.session_state.update(ds_page=page + 1))
    if event.selection.rows:
        _item_detail(url, info, result.items[event.selection.rows[0]], version)


def _item_detail(url: str, info: DatasetInfo, item: ItemVersion, version: datetime | None) -> None:
    st.divider()
    st.subheader(f"Item {item.item_id}")
    st.caption(f"This version since {_when(item.valid_from)}"
               + (f", until {_when(item.valid_to)}" if item.valid_to else ""))
    if item.source_trace_id:
        st.page_link("app_pages/traces.py", label=f"Source trace {item.source_trace_id}",
                     icon=":material/account_tree:", query_params={"trace": item.source_trace_id})
    view, edit, history = st.tabs(["Content", "Edit", "History"])
    with view:
        for title, value in (("Input", item.input), ("Expected output", item.expected_output),
                             ("Metadata", item.metadata or None)):
            st.markdown(f"**{title}**")
            _shown(value)
    with edit:
        if info.archived:
            st.info("Archived datasets are read-only.")
        elif version is not None:
            st.info("This is a past version. Pick **Latest** to change the item.")
        else:
            _edit_form(url, info, item)
    with history:
        _history(url, item)


def _as_editable(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _from_edited(text: str, was_text: bool, what: str) -> Any:
    if was_text or not text.strip():
        return text if text.strip() else None
    try:
        return json.loads(text)
    except ValueError as err:
        raise ConfigError(f"The {what} was JSON and must stay valid JSON: {err}.") from None


def _edit_form(url: str, info: DatasetInfo, item: ItemVersion) -> None:
    key = f"ds_edit_{item.version_id}"
    input_is_text = isinstance(item.input, str)
    expected_is_text = isinstance(item.expected_output, (str, type(None)))
    with st.form(key):
        new_input = st.text_area("Input", _as_editable(item.input), key=f"{key}_input", height=150)
        new_expected = st.text_area("Expected output", _as_editable(item.expected_output), key=f"{key}_expected",
                                    height=150)
        new_metadata = st.text_area("Metadata (a JSON object)", _as_editable(item.metadata or {}),
                                    key=f"{key}_metadata", height=100)
        st.caption("Text stays text; a value that is JSON must stay valid JSON. Saving makes a new version: the "
                   "current one stays readable in the history and in earlier versions of the dataset.")
        save = st.form_submit_button("Save as a new version", type="primary", icon=":material/save:")
    if save:
        try:
            metadata = _from_edited(new_metadata, False, "metadata") or {}
            if not isinstance(metadata, dict):
                raise ConfigError("The metadata must be a JSON object.")
            edited = edit_item(url, info.name, item.item_id, input=_from_edited(new_input, input_is_text, "input"),
                               expected_output=_from_edited(new_expected, expected_is_text, "expected output"),
                               metadata=metadata, based_on=item.version_id)
        except LooplabError as err:
            st.error(plain(err))
        else:
            st.session_state.ds_flash = f"Saved a new version of item {edited.item_id} ({_when(edited.valid_from)})."
            st.rerun()
    confirm = st.checkbox("Delete this item from the dataset (earlier versions keep it)", key=f"{key}_confirm")
    if st.button("Delete item", key=f"{key}_delete", disabled=not confirm, icon=":material/delete:"):
        try:
            delete_item(url, info.name, item.item_id, based_on=item.version_id)
        except LooplabError as err:
            st.error(plain(err))
        else:
            st.session_state.pop("ds_items_table", None)
            st.session_state.ds_flash = f"Deleted item {item.item_id}; earlier versions of the dataset still hold it."
            st.rerun()


def _history(url: str, item: ItemVersion) -> None:
    past = item_history(url, item.item_id)
    st.caption(f"{len(past)} version{'' if len(past) == 1 else 's'}, newest first.")
    for number, old in reversed(list(enumerate(past, 1))):
        state = "current" if old.valid_to is None else f"until {_when(old.valid_to)}"
        with st.expander(f"Version {number}: from {_when(old.valid_from)}, {state}", expanded=number == len(past)):
            for title, value in (("Input", old.input), ("Expected output", old.expected_output),
                                 ("Metadata", old.metadata or None)):
                st.markdown(f"**{title}**")
                _shown(value)
    if past[-1].valid_to is not None:
        st.caption(f"Deleted at {_when(past[-1].valid_to)}.")


def _export(url: str, info: DatasetInfo, version: datetime | None) -> None:
    what = "the latest version" if version is None else f"the version of {_when(version)}"
    st.markdown(f"Download {what} in the import format: importing the file gives the same items.")
    stem = re.sub(r"[^\w.-]+", "-", info.name).strip("-") or "dataset"
    left, right = st.columns(2)
    left.download_button("Download JSONL", data=lambda: export_text(url, info.name, version, "jsonl"),
                         file_name=f"{stem}.jsonl", mime="application/jsonl", key="ds_export_jsonl",
                         icon=":material/download:", on_click="ignore")
    right.download_button("Download CSV", data=lambda: export_text(url, info.name, version, "csv"),
                          file_name=f"{stem}.csv", mime="text/csv", key="ds_export_csv",
                          icon=":material/download:", on_click="ignore")
    version_option = f" --version {iso_utc(version)}" if version else ""
    st.caption(f"From a terminal: `looplab dataset export {info.name}{version_option} --format jsonl`")


def _manage(url: str, info: DatasetInfo) -> None:
    if info.archived:
        st.markdown("Unarchive the dataset to list it again and change its items.")
        if st.button("Unarchive dataset", key="ds_unarchive", icon=":material/unarchive:"):
            _apply(lambda: unarchive_dataset(url, info.name), "Unarchived.")
        return
    st.markdown("Archiving hides the dataset from lists and makes it read-only; every version stays readable and "
                "exportable, and experiments that ran on it keep pointing at it.")
    if st.button("Archive dataset", key="ds_archive", icon=":material/archive:"):
        _apply(lambda: archive_dataset(url, info.name), "Archived.")


def _apply(action: Any, message: str) -> None:
    try:
        action()
    except LooplabError as err:
        st.error(plain(err))
        return
    st.session_state.ds_flash = message
    st.rerun()


url = database_url()
if flash := st.session_state.pop("ds_flash", None):
    st.success(plain(flash), icon=":material/check:")
name = st.query_params.get("dataset")
if name:
    dataset_view(url, name)
else:
    list_view(url)
