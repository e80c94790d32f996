"""Datasets themselves: create, list, open, archive; and their versions.

A dataset's version is a moment in time: the dataset "as of" ``t`` holds the item rows with
``valid_from <= t < valid_to`` (``valid_to`` empty: still current). Every write (an import, an
edit, a delete, a trace added) stamps all the rows it touches with one time, so each write is one
version, and ``versions`` lists the moments the dataset changed.

Names are unique among all datasets, archived ones included (an archived dataset keeps its name,
so an experiment that ran on it still says which one it was). Archived datasets are read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from looplab.errors import ConfigError, NotFound
from looplab.store.engine import get_engine, read_session, write_session
from looplab.store.models import Dataset, DatasetItem
from looplab.store.types import utcnow

MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as lists show it: how many items it holds now and when it last changed."""

    id: int
    name: str
    description: str | None
    metadata: dict[str, Any]
    created_at: datetime
    archived_at: datetime | None
    item_count: int
    last_change: datetime  # its newest version, or its creation when it never held an item

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


@dataclass(frozen=True)
class DatasetVersion:
    """One moment the dataset changed, and how many items it held from then on."""

    time: datetime
    item_count: int
    added: int  # item rows that start at this time (new items and new versions of edited ones)
    removed: int  # item rows that end at this time (edited or deleted)


def check_name(name: str) -> str:
    """``name`` stripped, or ``ConfigError`` saying what a dataset name may be."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise ConfigError("A dataset needs a name.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ConfigError(f"A dataset name has at most {MAX_NAME_LENGTH} characters ({len(cleaned)} given).")
    if any(ch in cleaned for ch in "\n\r\t"):
        raise ConfigError("A dataset name is one line of text (no tabs or line breaks).")
    return cleaned


def create_dataset(url: str, name: str, description: str | None = None,
                   metadata: dict[str, Any] | None = None) -> DatasetInfo:
    """Create an empty dataset; ``ConfigError`` when the name is taken or invalid."""
    cleaned = check_name(name)
    try:
        with write_session(url) as session:
            dataset = new_dataset(session, cleaned, description, metadata)
            dataset_id = dataset.id
    except IntegrityError:  # created by someone else between our check and our insert
        raise _name_taken(url, cleaned) from None
    return _info_by_id(url, dataset_id)


def new_dataset(session: Session, name: str, description: str | None = None,
                metadata: dict[str, Any] | None = None) -> Dataset:
    """Insert a dataset in ``session``'s transaction (for writes that create one as they go)."""
    existing = session.scalar(select(Dataset).where(Dataset.name == name))
    if existing is not None:
        raise _taken_message(existing)
    if metadata is not None and not isinstance(metadata, dict):
        raise ConfigError("A dataset's metadata must be a JSON object.")
    dataset = Dataset(name=name, description=(description or "").strip() or None, metadata_json=metadata or None,
                      created_at=utcnow())
    session.add(dataset)
    session.flush()
    return dataset


def _taken_message(existing: Dataset) -> ConfigError:
    if existing.archived_at is not None:
        return ConfigError(f"A dataset named {existing.name!r} already exists (archived): unarchive it or pick "
                           "another name.")
    return ConfigError(f"A dataset named {existing.name!r} already exists; pick another name or add to it.")


def _name_taken(url: str, name: str) -> ConfigError:
    with read_session(url) as session:
        existing = session.scalar(select(Dataset).where(Dataset.name == name))
        if existing is None:
            return ConfigError(f"The dataset {name!r} could not be created; try again.")
        return _taken_message(existing)


def list_datasets(url: str, *, include_archived: bool = False) -> list[DatasetInfo]:
    """Every dataset (archived ones only when asked), most recently changed first."""
    with read_session(url) as session:
        query = select(Dataset)
        if not include_archived:
            query = query.where(Dataset.archived_at.is_(None))
        datasets = list(session.scalars(query))
        stats = _stats(session, [d.id for d in datasets])
        infos = [_info(d, *stats.get(d.id, (0, None))) for d in datasets]
    return sorted(infos, key=lambda d: (d.last_change, d.id), reverse=True)


def get_dataset(url: str, name: str) -> DatasetInfo:
    """The dataset called ``name``; ``NotFound`` when there is none."""
    with read_session(url) as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == name))
        if dataset is None:
            raise _not_found(session, name)
        count, last = _stats(session, [dataset.id]).get(dataset.id, (0, None))
        return _info(dataset, count, last)


def _info_by_id(url: str, dataset_id: int) -> DatasetInfo:
    with read_session(url) as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        count, last = _stats(session, [dataset_id]).get(dataset_id, (0, None))
        return _info(dataset, count, last)


def _not_found(session: Session, name: str) -> NotFound:
    names = list(session.scalars(select(Dataset.name).where(Dataset.archived_at.is_(None))
                                 .order_by(Dataset.name).limit(10)))
    known = f" Datasets: {', '.join(names)}." if names else " There are no datasets yet."
    return NotFound(f"There is no dataset named {name!r}.{known}")


def _stats(session: Session, ids: list[int]) -> dict[int, tuple[int, datetime | None]]:
    """Per dataset: current item count and the newest change time."""
    if not ids:
        return {}
    out: dict[int, tuple[int, datetime | None]] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start:start + 900]
        rows = session.execute(
            select(DatasetItem.dataset_id, func.count().filter(DatasetItem.valid_to.is_(None)),
                   func.max(DatasetItem.valid_from), func.max(DatasetItem.valid_to))
            .where(DatasetItem.dataset_id.in_(chunk)).group_by(DatasetItem.dataset_id)
        ).all()
        for dataset_id, count, newest_start, newest_end in rows:
            times = [t for t in (newest_start, newest_end) if t is not None]
            out[dataset_id] = (count, max(times) if times else None)
    return out


def _info(dataset: Dataset, count: int, last: datetime | None) -> DatasetInfo:
    return DatasetInfo(
        id=dataset.id, name=dataset.name, description=dataset.description,
        metadata=dataset.metadata_json if isinstance(dataset.metadata_json, dict) else {},
        created_at=dataset.created_at, archived_at=dataset.archived_at, item_count=count,
        last_change=last or dataset.created_at,
    )


def archive_dataset(url: str, name: str) -> DatasetInfo:
    """Archive ``name``: hidden from lists, read-only, every version still readable and exportable."""
    return _set_archived(url, name, archived=True)


def unarchive_dataset(url: str, name: str) -> DatasetInfo:
    """Bring an archived dataset back: listed and editable again."""
    return _set_archived(url, name, archived=False)


def _set_archived(url: str, name: str, *, archived: bool) -> DatasetInfo:
    with write_session(url) as session:
        dataset = session.scalar(select(Dataset).where(Dataset.name == name))
        if dataset is None:
            raise _not_found(session, name)
        if (dataset.archived_at is not None) == archived:
            raise ConfigError(f"The dataset {name!r} is {'already' if archived else 'not'} archived.")
        session.execute(update(Dataset).where(Dataset.id == dataset.id)
                        .values(archived_at=utcnow() if archived else None))
        dataset_id = dataset.id
    return _info_by_id(url, dataset_id)


def writable_dataset(session: Session, name: str) -> Dataset:
    """The dataset ``name`` locked for a write in ``session``'s transaction.

    Locking the dataset's row (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction already
    holds the database) serialises writes to one dataset, so two edits of one item, or one trace
    added twice at once, cannot both succeed. Raises ``NotFound``, or ``ConfigError`` for an
    archived dataset.
    """
    dataset = session.scalar(select(Dataset).where(Dataset.name == name).with_for_update())
    if dataset is None:
        raise _not_found(session, name)
    if dataset.archived_at is not None:
        raise ConfigError(f"The dataset {name!r} is archived, so its items cannot change; unarchive it first.")
    return dataset


def change_time(session: Session, dataset_id: int) -> datetime:
    """The time to stamp a write with: now, but always after the dataset's newest version, so
    versions keep their order even when clocks of two app replicas disagree a little."""
    now = utcnow()
    newest = session.execute(
        select(func.max(DatasetItem.valid_from), func.max(DatasetItem.valid_to))
        .where(DatasetItem.dataset_id == dataset_id)
    ).one()
    times = [t for t in newest if t is not None]
    if times and max(times) >= now:
        return max(times) + timedelta(microseconds=1)
    return now


def versions(url: str, dataset: str, *, limit: int | None = None) -> list[DatasetVersion]:
    """The moments ``dataset`` changed, newest first, with the item count from each on.

    Pass any of these times (or any other time) to ``items_at`` to see the dataset as it was.
    """
    info = get_dataset(url, dataset)
    with read_session(url) as session:
        starts = dict(session.execute(  # type: ignore[arg-type]
            select(DatasetItem.valid_from, func.count()).where(DatasetItem.dataset_id == info.id)
            .group_by(DatasetItem.valid_from)).all())
        ends = dict(session.execute(  # type: ignore[arg-type]
            select(DatasetItem.valid_to, func.count())
            .where(DatasetItem.dataset_id == info.id, DatasetItem.valid_to.is_not(None))
            .group_by(DatasetItem.valid_to)).all())
    out, count = [], 0
    for moment in sorted(set(starts) | set(ends)):
        added, removed = starts.get(moment, 0), ends.get(moment, 0)
        count += added - removed
        out.append(DatasetVersion(time=moment, item_count=count, added=added, removed=removed))
    out.reverse()
    return out[:limit] if limit is not None else out


def current_version(url: str, dataset: str) -> datetime | None:
    """The time of ``dataset``'s newest version (what an experiment pins); ``None`` when it never held an item."""
    newest = versions(url, dataset, limit=1)
    return newest[0].time if newest else None


def is_postgres(url: str) -> bool:
    """Whether ``url``'s database is PostgreSQL (queries differ a little in how JSON reads as text)."""
    return get_engine(url).dialect.name == "postgresql"
