"""Step 3 of the loop, data's side: datasets of test cases, versioned by time, filled from
labelled traces and from JSONL/CSV files.

- ``datasets``: create, list, get, archive/unarchive; ``versions`` (the times a dataset changed).
- ``items``: add, edit (a new version), delete, ``items_at`` any time (search, pages), history.
- ``from_traces``: ``add_trace_to_dataset``; ``add_labelled_trace`` (with the trace's human labels).
- ``files``: JSONL/CSV import (all or nothing) and export.
"""

from looplab.datasets.datasets import (
    DatasetInfo,
    DatasetVersion,
    archive_dataset,
    create_dataset,
    current_version,
    get_dataset,
    list_datasets,
    unarchive_dataset,
    versions,
)
from looplab.datasets.files import (
    ColumnMapping,
    CsvPreview,
    ImportFileError,
    ImportResult,
    Problem,
    export_lines,
    export_text,
    import_file,
    parse_file,
    preview_csv,
    write_export,
)
from looplab.datasets.from_traces import AlreadyInDataset, add_labelled_trace, add_trace_to_dataset
from looplab.datasets.items import (
    KEEP,
    ItemPage,
    ItemVersion,
    NewItem,
    add_item,
    add_items,
    delete_item,
    edit_item,
    get_item,
    item_history,
    items_at,
    iter_items,
)

__all__ = [
    "KEEP", "AlreadyInDataset", "ColumnMapping", "CsvPreview", "DatasetInfo", "DatasetVersion", "ImportFileError",
    "ImportResult", "ItemPage", "ItemVersion", "NewItem", "Problem", "add_item", "add_items", "add_labelled_trace",
    "add_trace_to_dataset",
    "archive_dataset", "create_dataset", "current_version", "delete_item", "edit_item", "export_lines",
    "export_text", "get_dataset", "get_item", "import_file", "item_history", "items_at", "iter_items",
    "list_datasets", "parse_file", "preview_csv", "unarchive_dataset", "versions", "write_export",
]
