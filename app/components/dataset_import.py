"""Importing a JSONL or CSV file into a dataset: upload (or paste), map CSV columns with a
preview, import all or nothing, and show every bad line when the file cannot be imported."""

from __future__ import annotations

import streamlit as st

from components.formatting import plain
from looplab.datasets import ColumnMapping, ImportFileError, import_file, preview_csv
from looplab.datasets.files import detect_format
from looplab.errors import LooplabError

NO_COLUMN = "(none)"
FORMAT_HELP = (
    "**JSONL**: one JSON object a line with `input`, `expected_output` (`null` when there is none) and "
    "optionally `metadata` (an object). **CSV**: a header line, then one item a row; you pick the input, "
    "expected output and metadata columns. Cells holding a JSON object or array are read as JSON. "
    "Nothing is stored unless every line is right. From a terminal: `looplab dataset import NAME FILE`."
)


def import_panel(url: str, dataset: str, key_prefix: str = "ds_imp") -> None:
    """The import form for ``dataset``: on success the items are one new version of it."""
    st.markdown(FORMAT_HELP)
    done = st.session_state.pop(f"{key_prefix}_done", None)
    if done:
        st.success(plain(done), icon=":material/check:")
    # A new round of widgets after each import, so the same file is not imported twice by accident.
    round_ = st.session_state.setdefault(f"{key_prefix}_round", 0)
    uploaded = st.file_uploader("JSONL or CSV file (UTF-8)", type=["jsonl", "ndjson", "json", "csv"],
                                key=f"{key_prefix}_file_{round_}")
    pasted = st.text_area("… or paste JSONL or CSV", key=f"{key_prefix}_paste_{round_}", height=120,
                          placeholder='{"input": "Where is my parcel?", "expected_output": "…"}')
    if uploaded is not None:
        data, filename = uploaded.getvalue(), uploaded.name
    elif pasted.strip():
        data, filename = pasted.encode("utf-8"), None
    else:
        return
    file_format = detect_format(data, filename)
    mapping = None
    if file_format == "csv":
        try:
            mapping = _csv_mapping(data, filename, key_prefix)
        except ImportFileError as err:
            show_problems(err)
            return
        except LooplabError as err:
            st.error(plain(err))
            return
        if mapping is None:
            return
    else:
        st.caption("JSONL file: each line is one item.")
    if not st.button("Import", key=f"{key_prefix}_go", type="primary", icon=":material/upload:"):
        return
    try:
        result = import_file(url, dataset, data, format=file_format, mapping=mapping, filename=filename, create=False)
    except ImportFileError as err:
        show_problems(err)
        return
    except LooplabError as err:
        st.error(plain(err))
        return
    plural = "" if result.items_added == 1 else "s"
    ignored = f" Columns not imported: {', '.join(result.ignored_columns)}." if result.ignored_columns else ""
    st.session_state[f"{key_prefix}_done"] = (f"Imported {result.items_added:,} item{plural}{_from(filename)}: a new "
                                              f"version of this dataset.{ignored}")
    st.session_state[f"{key_prefix}_round"] = round_ + 1
    st.rerun()


def _from(filename: str | None) -> str:
    return f" from {filename}" if filename else ""


def _csv_mapping(data: bytes, filename: str | None, key_prefix: str) -> ColumnMapping | None:
    """The CSV's first rows and the column pickers; ``None`` until an input column is picked."""
    preview = preview_csv(data, filename=filename)
    st.caption(f"CSV with {preview.row_count:,} row{'' if preview.row_count == 1 else 's'}; the first ones:")
    st.dataframe(preview.rows, hide_index=True, key=f"{key_prefix}_preview")
    columns = preview.columns
    suggested = preview.suggested
    left, middle, right = st.columns(3)
    inputs = left.multiselect(
        "Input column(s)", columns, default=list(suggested.input) if suggested else [], key=f"{key_prefix}_input",
        help="Several columns make the input an object keyed by column name.")
    expected_options = [NO_COLUMN, *[c for c in columns if c not in inputs]]
    default_expected = suggested.expected if suggested and suggested.expected in expected_options else NO_COLUMN
    expected = middle.selectbox("Expected output column", expected_options,
                                index=expected_options.index(default_expected), key=f"{key_prefix}_expected")
    metadata_options = [c for c in columns if c not in inputs and c != expected]
    metadata = right.multiselect("Metadata columns", metadata_options, key=f"{key_prefix}_metadata",
                                 help="Kept in each item's metadata under the column's name. A column named "
                                      "metadata holding JSON objects is merged in as well.")
    if not inputs:
        st.info("Pick the column that holds the input to import.")
        return None
    return ColumnMapping(input=tuple(inputs), expected=None if expected == NO_COLUMN else expected,
                         metadata=tuple(metadata))


def show_problems(err: ImportFileError) -> None:
    """The bad lines of a file that was not imported: what is wrong with each, by line number."""
    if err.count == 1 and err.problems and err.problems[0].line is None:
        st.error(plain(err), icon=":material/error:")
        return
    st.error(f"Nothing was imported: the file has {err.count:,} problem{'' if err.count == 1 else 's'}. "
             "Fix them and import again.", icon=":material/error:")
    shown = err.problems
    st.dataframe([{"line": p.line, "problem": p.message} for p in shown], hide_index=True,
                 key="ds_import_problems",
                 column_config={"problem": st.column_config.TextColumn(width="large")})
    if err.count > len(shown):
        st.caption(f"The first {len(shown):,} problems are listed; {err.count - len(shown):,} more are not.")
