"""A dataset's items: add, edit (a new version), delete, read at any version, search, history.

Items are never changed in place. An edit closes the current row (``valid_to``) and adds a row
with the same ``item_id`` and ``valid_from`` equal to that time, in one transaction; a delete
closes the row and adds none. So the dataset as of any past time is still there to read, and
``item_history`` lists every version of an item.

Edits and deletes name the version they start from (``based_on``, a row's ``version_id``): if
the item changed since (someone else edited it), the write is refused with a message instead of
silently overwriting their change.

Item ids are 32 hex characters that sort by creation time, then by position in the write that
created them, so lists and exports keep the order items were added in.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, String, Text, and_, cast, func, insert, or_, select, type_coerce, update
from sqlalchemy.orm import Session

from looplab.datasets.datasets import change_time, get_dataset, is_postgres, writable_dataset
from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session, write_session
from looplab.store.models import DatasetItem
from looplab.timeparse import iso_utc

MAX_PAGE_SIZE = 1000
INSERT_CHUNK = 2000
Progress = Callable[[int, int], None]

_items = DatasetItem.__table__


class _Keep:
    """Marks an argument of ``edit_item`` left as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


@dataclass(frozen=True)
class NewItem:
    """An item to add: what goes in, what should come out, and where it came from."""

    input: Any
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    source_trace_id: str | None = None
    source_span_id: str | None = None


@dataclass(frozen=True)
class ItemVersion:
    """One version of one item. ``version_id`` identifies this version (pass it as ``based_on``);
    ``item_id`` is the same for every version of the item."""

    version_id: int
    item_id: str
    dataset_id: int
    input: Any
    expected_output: Any
    metadata: dict[str, Any]
    source_trace_id: str | None
    source_span_id: str | None
    valid_from: datetime
    valid_to: datetime | None

    @property
    def current(self) -> bool:
        return self.valid_to is None


@dataclass(frozen=True)
class ItemPage:
    """A page of a dataset's items as of ``version`` (``None``: now), and how many match in all."""

    items: list[ItemVersion]
    total: int
    offset: int
    limit: int
    version: datetime | None

    @property
    def has_previous(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.items) < self.total


def new_item_ids(count: int) -> list[str]:
    """``count`` fresh item ids that sort by creation time, then in the order asked for."""
    stamp = time.time_ns() // 1000
    salt = random.getrandbits(48)
    return [f"{stamp:014x}{i:06x}{salt:012x}" for i in range(count)]


def check_item(item: NewItem, what: str = "The item") -> None:
    """Raise ``ConfigError`` when ``item`` cannot be stored (no input, metadata not an object)."""
    if item.input is None or (isinstance(item.input, str) and not item.input.strip()):
        raise ConfigError(f"{what} has no input.")
    if item.metadata is not None and not isinstance(item.metadata, dict):
        raise ConfigError(f"{what}'s metadata must be a JSON object, not {type(item.metadata).__name__}.")
    for value, name in ((item.input, "input"), (item.expected_output, "expected output"), (item.metadata, "metadata")):
        try:
            json.dumps(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{what}'s {name} is not JSON data: {err}") from None


def insert_items(session: Session, dataset_id: int, items: list[NewItem], now: datetime,
                 progress: Progress | None = None) -> list[str]:
    """Insert ``items`` as new items of the dataset in ``session``'s transaction, stamped ``now``.

    Bulk inserts in chunks (``COPY`` on PostgreSQL, where an ``executemany`` of 100,000 rows took
    seconds); the caller has checked the items and holds the dataset's lock.
    """
    ids = new_item_ids(len(items))
    total = len(items)
    if progress is not None:
        progress(0, total)
    postgres = session.get_bind().dialect.name == "postgresql"
    for start in range(0, total, INSERT_CHUNK):
        chunk = list(zip(ids[start:start + INSERT_CHUNK], items[start:start + INSERT_CHUNK]))
        if postgres:
            _copy_rows(session, dataset_id, chunk, now)
        else:
            session.execute(insert(_items), [{
                "item_id": item_id, "dataset_id": dataset_id, "input_json": item.input,
                "expected_output_json": item.expected_output, "metadata_json": item.metadata or None,
                "source_trace_id": item.source_trace_id, "source_span_id": item.source_span_id,
                "valid_from": now, "valid_to": None,
            } for item_id, item in chunk])
        if progress is not None:
            progress(start + len(chunk), total)
    return ids


_COPY_COLUMNS = ("item_id", "dataset_id", "input_json", "expected_output_json", "metadata_json", "source_trace_id",
                 "source_span_id", "valid_from")


def _copy_rows(session: Session, dataset_id: int, chunk: list[tuple[str, NewItem]], now: datetime) -> None:
    def as_json(value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    stamp = now.astimezone(timezone.utc).replace(tzinfo=None)  # stored as naive UTC, like UTCDateTime does
    cursor = session.connection().connection.cursor()
    try:
        with cursor.copy(f"COPY dataset_items ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for item_id, item in chunk:
                copy.write_row((item_id, dataset_id, as_json(item.input), as_json(item.expected_output),
                                as_json(item.metadata or None), item.source_trace_id, item.source_span_id, stamp))
    finally:
        cursor.close()


def add_items(url: str, dataset: str, items: Iterable[NewItem]) -> list[str]:
    """Add ``items`` to ``dataset`` as one version; returns their item ids in order.

    All or nothing: an item without input (or with metadata that is not an object) raises
    ``ConfigError`` naming it, and nothing is stored.
    """
    batch = list(items)
    for number, item in enumerate(batch, 1):
        check_item(item, f"Item {number}")
    if not batch:
        raise ConfigError("No items to add.")
    with write_session(url) as session:
        target = writable_dataset(session, dataset)
        return insert_items(session, target.id, batch, change_time(session, target.id))


def add_item(url: str, dataset: str, item: NewItem) -> ItemVersion:
    """Add one item to ``dataset``; returns it as stored."""
    item_id = add_items(url, dataset, [item])[0]
    return get_item(url, dataset, item_id)


def edit_item(url: str, dataset: str, item_id: str, *, input: Any = KEEP, expected_output: Any = KEEP,
              metadata: Any = KEEP, based_on: int | None = None) -> ItemVersion:
    """Store a new version of an item; arguments left out keep their current value.

    The current row is closed and the new one starts at the same time, in one transaction: the
    old version stays readable at any earlier time. ``based_on`` is the ``version_id`` the change
    was made from; if the item has changed since, ``ConfigError`` says so and nothing is written.
    A deleted item, an item of another dataset and an archived dataset are refused likewise.
    """
    with write_session(url) as session:
        target = writable_dataset(session, dataset)
        row = _current_row(session, target.id, dataset, item_id, based_on)
        new = NewItem(
            input=row.input_json if input is KEEP else input,
            expected_output=row.expected_output_json if expected_output is KEEP else expected_output,
            metadata=row.metadata_json if metadata is KEEP else (metadata or None),
            source_trace_id=row.source_trace_id, source_span_id=row.source_span_id,
        )
        check_item(new, f"Item {item_id}")
        if (new.input, new.expected_output, new.metadata or None) == (row.input_json, row.expected_output_json,
                                                                        row.metadata_json or None):
            raise ConfigError("Nothing changed: the item already holds these values.")
        now = change_time(session, target.id)
        _close(session, row, now)
        session.execute(insert(_items), [{
            "item_id": item_id, "dataset_id": target.id, "input_json": new.input,
            "expected_output_json": new.expected_output, "metadata_json": new.metadata or None,
            "source_trace_id": new.source_trace_id, "source_span_id": new.source_span_id,
            "valid_from": now, "valid_to": None,
        }])
    return get_item(url, dataset, item_id)


def delete_item(url: str, dataset: str, item_id: str, *, based_on: int | None = None) -> datetime:
    """Remove an item from ``dataset`` from now on; returns the time. Earlier versions still hold it."""
    with write_session(url) as session:
        target = writable_dataset(session, dataset)
        row = _current_row(session, target.id, dataset, item_id, based_on)
        now = change_time(session, target.id)
        _close(session, row, now)
    return now


def _current_row(session: Session, dataset_id: int, dataset: str, item_id: str, based_on: int | None) -> DatasetItem:
    rows = list(session.scalars(select(DatasetItem).where(DatasetItem.item_id == item_id)
                                .order_by(DatasetItem.valid_from.desc(), DatasetItem.id.desc())))
    if not rows or rows[0].dataset_id != dataset_id:
        raise NotFound(f"The dataset {dataset!r} has no item {item_id!r}.")
    current = rows[0]
    if current.valid_to is not None:
        raise ConfigError(f"Item {item_id} was deleted at {_when(current.valid_to)}; a deleted item cannot be "
                          "changed (its old versions stay readable).")
    if based_on is not None and current.id != based_on:
        raise ConfigError(f"Item {item_id} changed at {_when(current.valid_from)}, after the version you started "
                          "from; reload it to see the current version, then make your change again.")
    return current


def _close(session: Session, row: DatasetItem, now: datetime) -> None:
    closed = session.execute(update(_items).where(_items.c.id == row.id, _items.c.valid_to.is_(None))
                             .values(valid_to=now))
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        raise ConfigError(f"Item {row.item_id} changed while this change was being saved; reload it and try again.")


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


# --- reading -----------------------------------------------------------------------------------------


def valid_at(version: datetime | None) -> ColumnElement[bool]:
    """The condition for item rows valid at ``version`` (``None``: the current rows)."""
    if version is None:
        return _items.c.valid_to.is_(None)
    return and_(_items.c.valid_from <= version, or_(_items.c.valid_to.is_(None), _items.c.valid_to > version))


def _json_text(column: Any, postgres: bool) -> Any:
    return func.coalesce(cast(column, Text) if postgres else type_coerce(column, Text), "")


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_condition(search: str, postgres: bool) -> ColumnElement[bool]:
    """Each word of ``search`` occurs (any case) in the item's input, expected output or metadata.

    The JSON is searched as stored text, so a word is looked for in its JSON-escaped form (SQLite
    stores non-ASCII characters as ``\\u`` escapes; both escape quotes and backslashes).
    """
    haystacks = [_json_text(_items.c.input_json, postgres), _json_text(_items.c.expected_output_json, postgres),
                 _json_text(_items.c.metadata_json, postgres)]
    conditions = []
    for word in search.split():
        escaped = json.dumps(word, ensure_ascii=not postgres)[1:-1]
        pattern = f"%{_escape_like(escaped)}%"
        conditions.append(or_(*(h.ilike(pattern, escape="\\") for h in haystacks)))
    return and_(*conditions)


def _columns(url: str) -> list[Any]:
    """The item columns to read; on SQLite times come as text, parsed by ``version_from_row``
    (the dialect's own datetime parsing was most of the cost of reading many items)."""
    if is_postgres(url):
        return list(_items.c)
    return [type_coerce(c, String).label(c.name) if c.name in ("valid_from", "valid_to") else c for c in _items.c]


def items_at(url: str, dataset: str, version: datetime | None = None, search: str | None = None,
             offset: int = 0, limit: int = 50) -> ItemPage:
    """A page of ``dataset``'s items as of ``version`` (``None``: now), in the order they were added.

    ``search``: every word must occur, in any case, in the input, expected output or metadata
    (as JSON text; SQLite folds the case of ASCII letters only). ``total`` counts all matches.
    """
    if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ConfigError(f"Items are read from offset 0, 1 to {MAX_PAGE_SIZE} at a time.")
    info = get_dataset(url, dataset)
    conditions = [_items.c.dataset_id == info.id, valid_at(version)]
    if search and search.split():
        conditions.append(search_condition(search, is_postgres(url)))
    with read_session(url) as session:
        total = session.scalar(select(func.count()).select_from(_items).where(*conditions)) or 0
        rows = session.execute(select(*_columns(url)).where(*conditions).order_by(_items.c.item_id)
                               .offset(offset).limit(limit)).all()
    return ItemPage(items=[version_from_row(r) for r in rows], total=total, offset=offset, limit=limit,
                    version=version)


def iter_items(url: str, dataset: str, version: datetime | None = None) -> Iterator[ItemVersion]:
    """Every item of ``dataset`` as of ``version`` (``None``: now), in order (exports, experiments).

    One query in one read transaction, streamed: the walk sees one consistent state of the
    dataset even while others write to it.
    """
    info = get_dataset(url, dataset)
    with read_session(url) as session:
        result = session.execute(
            select(*_columns(url)).where(_items.c.dataset_id == info.id, valid_at(version))
            .order_by(_items.c.item_id).execution_options(yield_per=1000))
        for row in result:
            yield version_from_row(row)


def get_item(url: str, dataset: str, item_id: str, version: datetime | None = None) -> ItemVersion:
    """The version of ``item_id`` valid at ``version`` (``None``: the current one); ``NotFound`` otherwise."""
    info = get_dataset(url, dataset)
    with read_session(url) as session:
        row = session.execute(select(*_columns(url)).where(_items.c.dataset_id == info.id,
                                                           _items.c.item_id == item_id, valid_at(version))).first()
    if row is None:
        when = "now" if version is None else f"at {_when(version)}"
        raise NotFound(f"The dataset {dataset!r} holds no item {item_id!r} {when}.")
    return version_from_row(row)


def item_history(url: str, item_id: str) -> list[ItemVersion]:
    """Every version of ``item_id``, oldest first (the last one has ``valid_to`` empty unless deleted)."""
    with read_session(url) as session:
        rows = session.execute(select(*_columns(url)).where(_items.c.item_id == item_id)
                               .order_by(_items.c.valid_from, _items.c.id)).all()
    if not rows:
        raise NotFound(f"There is no dataset item {item_id!r}.")
    return [version_from_row(r) for r in rows]


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def version_from_row(row: Any) -> ItemVersion:
    """An ``ItemVersion`` from a ``dataset_items`` row."""
    valid_from = _utc(row.valid_from)
    assert valid_from is not None
    return ItemVersion(
        version_id=row.id, item_id=row.item_id, dataset_id=row.dataset_id, input=row.input_json,
        expected_output=row.expected_output_json,
        metadata=row.metadata_json if isinstance(row.metadata_json, dict) else {},
        source_trace_id=row.source_trace_id, source_span_id=row.source_span_id,
        valid_from=valid_from, valid_to=_utc(row.valid_to),
    )


def describe_version(version: datetime | None) -> str:
    """``version`` as ISO 8601 (what ``?version=`` and ``--version`` take), or ``"latest"``."""
    return iso_utc(version) or "latest"


def as_mapping(item: ItemVersion) -> Mapping[str, Any]:
    """An item in the import/export format: ``input``, ``expected_output``, ``metadata``
    (and ``source_trace_id`` when the item came from a trace)."""
    out: dict[str, Any] = {"input": item.input, "expected_output": item.expected_output, "metadata": item.metadata}
    if item.source_trace_id:
        out["source_trace_id"] = item.source_trace_id
    return out
