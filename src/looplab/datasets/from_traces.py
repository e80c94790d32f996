"""Traces into dataset items: the trace's input, the corrected (or actual) output as expected.

``add_labelled_trace`` is what "Add to dataset" does in the app (trace detail and labeling view):
it records the trace's human labels with the item and takes a corrected output from them.

The same trace is added to a dataset at most once: adding it again while its item is still in
the dataset raises ``AlreadyInDataset``, which carries that item, so a caller that wants "add or
get" catches it and uses ``err.item``. Once the item was deleted, the trace can be added again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from looplab.annotation.agreement import PendingLabel, trace_labels
from looplab.datasets.datasets import change_time, check_name, new_dataset, writable_dataset
from looplab.datasets.items import ItemVersion, NewItem, check_item, insert_items, version_from_row
from looplab.errors import ConfigError, NotFound
from looplab.store.engine import write_session
from looplab.store.models import Dataset, DatasetItem, Trace


class AlreadyInDataset(ConfigError):
    """The trace is already an item of the dataset; ``item`` is that item's current version."""

    def __init__(self, message: str, item: ItemVersion) -> None:
        super().__init__(message)
        self.item = item


def add_labelled_trace(
    url: str,
    dataset: str,
    trace_id: str,
    *,
    author: str | None = None,
    pending: PendingLabel | None = None,
    expected_output: Any = None,
    create_if_missing: bool = False,
) -> ItemVersion:
    """Add trace ``trace_id`` to ``dataset`` with its human labels; returns the new item.

    The item's ``labels`` metadata is ``annotation.agreement.trace_labels``: the trace's manual
    human scores (latest per name), overridden by the resolved labels of each queue item of the
    trace (the admin's ruling, else the value every annotator agrees on; a score whose labels
    disagree and is not adjudicated is left out). ``pending`` is a label still on screen in the
    labeling view: it counts as its author's label of its item, so their values fill the scores
    nobody else labelled and join the agreement check on the others (a ruling still wins).

    The expected output is ``expected_output`` when given (what the person typed), else the
    corrected output from those labels (``pending``'s own correction first), else the trace's
    actual output as stored (structured output stays structured). Errors as for
    ``add_trace_to_dataset``.
    """
    labels = trace_labels(url, trace_id, pending)
    expected = expected_output if expected_output is not None else labels.corrected_output
    return add_trace_to_dataset(url, dataset, trace_id, expected_output=expected, labels=labels.values,
                                author=author, create_if_missing=create_if_missing)


def add_trace_to_dataset(
    url: str,
    dataset: str,
    trace_id: str,
    expected_output: Any = None,
    labels: dict[str, Any] | None = None,
    author: str | None = None,
    *,
    create_if_missing: bool = False,
) -> ItemVersion:
    """Add trace ``trace_id`` to ``dataset`` as a new item; returns it.

    The item's input is the trace's input; its expected output is ``expected_output`` (a
    corrected output from a label) when given, else the trace's actual output. Its metadata is
    ``{"source_trace_id": trace_id, "labels": labels or {}, "added_by": author}`` and its
    ``source_trace_id`` column links back to the trace. With ``create_if_missing`` a dataset of
    that name is created in the same transaction (nothing is left behind if the add fails).

    Raises ``NotFound`` (no such trace or dataset), ``AlreadyInDataset`` (the trace is already
    a current item of the dataset: ``err.item``), ``ConfigError`` (archived dataset, a trace with
    no input stored, labels that are not an object).
    """
    if labels is not None and not isinstance(labels, dict):
        raise ConfigError("Labels must be a mapping of score names to values.")
    name = check_name(dataset)
    with write_session(url) as session:
        trace = session.execute(select(Trace.input_json, Trace.output_json).where(Trace.id == trace_id)).first()
        if trace is None:
            raise NotFound(f"There is no trace {trace_id!r} in this database.")
        exists = session.scalar(select(Dataset.id).where(Dataset.name == name))
        target = new_dataset(session, name) if exists is None and create_if_missing else writable_dataset(session, name)
        earlier = session.execute(
            select(DatasetItem.__table__).where(DatasetItem.dataset_id == target.id,
                                                DatasetItem.source_trace_id == trace_id,
                                                DatasetItem.valid_to.is_(None)).limit(1)).first()
        if earlier is not None:
            raise AlreadyInDataset(
                f"Trace {trace_id} is already in the dataset {name!r} (item {earlier.item_id}); edit that item to "
                "change its expected output.", version_from_row(earlier))
        item = NewItem(
            input=trace.input_json,
            expected_output=expected_output if expected_output is not None else trace.output_json,
            metadata={"source_trace_id": trace_id, "labels": labels or {}, "added_by": author},
            source_trace_id=trace_id,
        )
        if item.input is None:
            raise ConfigError(f"Trace {trace_id} has no input stored, so it cannot become a dataset item.")
        check_item(item, f"Trace {trace_id}")
        item_id = insert_items(session, target.id, [item], change_time(session, target.id))[0]
        row = session.execute(select(DatasetItem.__table__).where(DatasetItem.item_id == item_id)).one()
        return version_from_row(row)
