"""Annotation queues: traces waiting for people to label them, handed out one at a time by lease.

A queue names the score configs its annotators fill in, who may work on it (its assignees:
annotators see and lease only the queues that list them; admins and engineers see every queue),
and how many people should label each item (1 for triage, 2 or more to measure
agreement). The same trace is in a queue at most once.

Leases. ``next_item`` gives an annotator the first item (by ``position``, then id) that still
needs labels, that they have neither labelled nor skipped, and that nobody else holds an
unexpired lease on, and leases it to them for the queue's lease time. Asking again returns the
item they already hold. The pick and the lease happen in one write transaction: on SQLite that
transaction takes the write lock up front (``BEGIN IMMEDIATE``), on PostgreSQL the candidate row
is taken with ``FOR UPDATE SKIP LOCKED``; either way two annotators never get the same item at
once. An expired lease simply no longer counts, so the item is back in the pool.

A submitted label is never thrown away: if the lease ran out meanwhile the label is still stored
(at worst an item gets one label more than asked for).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from looplab.annotation.score_configs import ScoreConfigView, as_view, scores_for_label
from looplab.annotation.users import Viewer
from looplab.errors import ConfigError, NotFound
from looplab.explorer.traces import MAX_PAGE_SIZE, TracePage, list_traces
from looplab.store.engine import read_session, write_session
from looplab.store.filters import TraceFilter
from looplab.store.models import (
    Annotation,
    AnnotationQueue,
    QueueAssignee,
    QueueItem,
    QueueScoreConfig,
    ScoreConfig,
    Trace,
    User,
)
from looplab.store.types import utcnow

DEFAULT_LEASE_MINUTES = 15
MAX_BULK_ADD = 10_000  # traces added by one filter selection; a bigger one should be a sampling rule


@dataclass(frozen=True)
class QueueView:
    """A queue as the app lists it, with its progress counts."""

    id: int
    name: str
    instructions: str | None
    score_configs: tuple[str, ...]
    assignees: tuple[str, ...]
    annotations_per_item: int
    lease_minutes: int
    archived: bool
    items: int
    done: int

    @property
    def remaining(self) -> int:
        return self.items - self.done


@dataclass(frozen=True)
class AddResult:
    """What adding traces to a queue did: how many were added, already there, or not found."""

    added: int
    already_queued: int
    not_found: tuple[str, ...] = ()

    def message(self, queue_name: str) -> str:
        parts = [f"Added {self.added:,} trace{'' if self.added == 1 else 's'} to {queue_name}."]
        if self.already_queued:
            parts.append(f"{self.already_queued:,} {'was' if self.already_queued == 1 else 'were'} already in it.")
        if self.not_found:
            parts.append(f"{len(self.not_found):,} not found: {', '.join(self.not_found[:3])}"
                         + ("..." if len(self.not_found) > 3 else "") + ".")
        return " ".join(parts)


@dataclass(frozen=True)
class Lease:
    """The item an annotator is working on, theirs until ``expires_at``."""

    item_id: int
    queue_id: int
    trace_id: str
    reason: str | None
    expires_at: datetime
    labels_so_far: int  # by other annotators, for items that want several


@dataclass(frozen=True)
class PersonProgress:
    """One person's labels in a queue, in all and today (UTC); ``assigned`` if the queue lists them."""

    username: str
    assigned: bool
    done: int
    today: int


@dataclass(frozen=True)
class Progress:
    """A queue's progress: items done of all, what one annotator did today, labels per person."""

    items: int
    done: int
    leased: int
    mine_today: int
    mine_total: int
    available_to_me: int
    people: tuple[PersonProgress, ...]  # every assignee (zero included), then anyone else who labelled

    @property
    def fraction_done(self) -> float:
        return self.done / self.items if self.items else 0.0

    @property
    def labels_by_author(self) -> dict[str, int]:
        """Labels per person who gave any, most first."""
        return {p.username: p.done for p in self.people if p.done}


# --- queues ---------------------------------------------------------------------------------------


def create_queue(
    url: str,
    name: str,
    *,
    score_configs: Sequence[str],
    instructions: str | None = None,
    assignees: Sequence[str] = (),
    annotations_per_item: int = 1,
    lease_minutes: int = DEFAULT_LEASE_MINUTES,
) -> QueueView:
    """Create a queue labelled with ``score_configs`` (names, active configs only), worked on by
    ``assignees`` (usernames; annotators see the queue only once assigned, admins and engineers
    always). Raises ``ConfigError`` saying what is wrong."""
    name = _clean_name(name)
    _check_numbers(annotations_per_item, lease_minutes)
    with write_session(url) as session:
        if session.scalar(select(AnnotationQueue.id).where(AnnotationQueue.name == name)) is not None:
            raise ConfigError(f"A queue named {name!r} exists already; pick another name.")
        queue = AnnotationQueue(
            name=name, instructions=(instructions or "").strip() or None,
            annotations_per_item=annotations_per_item, lease_seconds=lease_minutes * 60, created_at=utcnow(),
        )
        session.add(queue)
        session.flush()
        _set_configs(session, queue.id, score_configs)
        _set_assignees(session, queue.id, assignees)
        queue_id = queue.id
    return get_queue(url, queue_id)


def update_queue(
    url: str,
    queue_id: int,
    *,
    name: str | None = None,
    instructions: str | None = None,
    score_configs: Sequence[str] | None = None,
    assignees: Sequence[str] | None = None,
    annotations_per_item: int | None = None,
    lease_minutes: int | None = None,
) -> QueueView:
    """Change a queue's settings; arguments left ``None`` keep their value. Labels already given stay.
    ``score_configs`` may keep a config archived since it was attached, but not add an archived one."""
    with write_session(url) as session:
        queue = _queue(session, queue_id)
        if name is not None:
            name = _clean_name(name)
            taken = session.scalar(select(AnnotationQueue.id).where(AnnotationQueue.name == name,
                                                                     AnnotationQueue.id != queue_id))
            if taken is not None:
                raise ConfigError(f"A queue named {name!r} exists already; pick another name.")
            queue.name = name
        if instructions is not None:
            queue.instructions = instructions.strip() or None
        if annotations_per_item is not None or lease_minutes is not None:
            _check_numbers(annotations_per_item or queue.annotations_per_item,
                           lease_minutes or queue.lease_seconds // 60)
        if annotations_per_item is not None:
            queue.annotations_per_item = annotations_per_item
            _settle_statuses(session, queue)
        if lease_minutes is not None:
            queue.lease_seconds = lease_minutes * 60
        if score_configs is not None:
            attached = set(session.scalars(select(QueueScoreConfig.score_config_id)
                                           .where(QueueScoreConfig.queue_id == queue_id)))
            session.execute(delete(QueueScoreConfig).where(QueueScoreConfig.queue_id == queue_id))
            _set_configs(session, queue_id, score_configs, keep=attached)
        if assignees is not None:
            session.execute(delete(QueueAssignee).where(QueueAssignee.queue_id == queue_id))
            _set_assignees(session, queue_id, assignees)
    return get_queue(url, queue_id)


def archive_queue(url: str, queue_id: int, archived: bool = True) -> None:
    """Archive a queue (it leaves the lists; its labels stay) or bring it back."""
    with write_session(url) as session:
        _queue(session, queue_id).archived_at = utcnow() if archived else None


def get_queue(url: str, queue_id: int) -> QueueView:
    """One queue by id; ``NotFound`` if there is none."""
    with read_session(url) as session:
        views = _views(session, [_queue(session, queue_id)])
    return views[0]


def find_queue(url: str, name: str) -> QueueView:
    """One queue by name; ``NotFound`` if there is none."""
    with read_session(url) as session:
        queue = session.scalar(select(AnnotationQueue).where(AnnotationQueue.name == name))
        if queue is None:
            raise NotFound(f"No queue named {name!r}.")
        return _views(session, [queue])[0]


def list_queues(url: str, viewer: Viewer | None = None, include_archived: bool = False) -> list[QueueView]:
    """The queues ``viewer`` may work on, by name: annotators only those that list them as
    assignees; admins and engineers (and ``viewer=None``) see all."""
    with read_session(url) as session:
        query = select(AnnotationQueue).order_by(AnnotationQueue.name)
        if not include_archived:
            query = query.where(AnnotationQueue.archived_at.is_(None))
        if viewer is not None and viewer.is_annotator:
            query = query.where(_open_to(viewer.username))
        return _views(session, list(session.scalars(query)))


def can_work_on(url: str, queue_id: int, viewer: Viewer) -> bool:
    """Whether ``viewer`` may label items of this queue."""
    if not viewer.is_annotator:
        return True
    with read_session(url) as session:
        return session.scalar(select(AnnotationQueue.id).where(
            AnnotationQueue.id == queue_id, _open_to(viewer.username))) is not None


def score_config_choices(url: str, queue_id: int | None = None) -> list[ScoreConfigView]:
    """The score configs a queue form offers, by name: the active ones; for an existing queue also
    the archived ones still attached to it (it may keep them, not gain new archived ones)."""
    with read_session(url) as session:
        attached = select(QueueScoreConfig.score_config_id).where(QueueScoreConfig.queue_id == queue_id)
        query = select(ScoreConfig).where(or_(ScoreConfig.archived_at.is_(None), ScoreConfig.id.in_(attached)))
        return [as_view(c) for c in session.scalars(query.order_by(ScoreConfig.name))]


def queue_score_configs(url: str, queue_id: int) -> list[ScoreConfigView]:
    """The score configs a queue's annotators fill in, by name."""
    with read_session(url) as session:
        return _configs(session, queue_id)


# --- items ----------------------------------------------------------------------------------------


def add_traces(url: str, queue_id: int, trace_ids: Iterable[str], reason: str | None = None) -> AddResult:
    """Add traces by id; one already in the queue is counted, not added twice."""
    wanted = list(dict.fromkeys(t for t in trace_ids if t))
    if not wanted:
        return AddResult(added=0, already_queued=0)
    with write_session(url) as session:
        _queue(session, queue_id)
        found: set[str] = set()
        queued: set[str] = set()
        for chunk in _chunks(wanted, 500):
            found.update(session.scalars(select(Trace.id).where(Trace.id.in_(chunk))))
            queued.update(session.scalars(select(QueueItem.trace_id).where(
                QueueItem.queue_id == queue_id, QueueItem.trace_id.in_(chunk))))
        new = [t for t in wanted if t in found and t not in queued]
        _insert_items(session, queue_id, new, reason)
    return AddResult(added=len(new), already_queued=len(queued),
                     not_found=tuple(t for t in wanted if t not in found))


def add_filtered(url: str, queue_id: int, flt: TraceFilter, reason: str | None = None,
                 limit: int = MAX_BULK_ADD) -> AddResult:
    """Add every trace ``flt`` selects (newest first, at most ``limit``); a filter selecting more
    is refused with a message suggesting a sampling rule."""
    with read_session(url) as session:
        total = session.scalar(select(func.count()).select_from(Trace).where(*flt.conditions())) or 0
    if total > limit:
        raise ConfigError(
            f"The filter selects {total:,} traces, more than {limit:,} can be queued at once. "
            "Narrow the filter or the time range, or add a sampling rule to the queue instead."
        )
    with read_session(url) as session:
        ids = list(session.scalars(select(Trace.id).where(*flt.conditions())
                                   .order_by(Trace.start_time.desc(), Trace.id.desc())))
    return add_traces(url, queue_id, ids, reason)


def add_searched(url: str, queue_id: int, flt: TraceFilter, search: str, reason: str | None = None,
                 limit: int = MAX_BULK_ADD) -> AddResult:
    """Add every trace the Traces page's full-text ``search`` finds within ``flt`` (every page of
    it, not only the one on screen), at most ``limit``; a search finding more is refused with a
    message, like ``add_filtered``."""
    pages = _search_pages(url, flt, search, limit)
    return add_traces(url, queue_id, [row.id for page in pages for row in page.rows], reason)


def _search_pages(url: str, flt: TraceFilter, search: str, limit: int) -> list[TracePage]:
    # The explorer's own listing, page after page, so the matches are exactly the ones the page shows.
    first = list_traces(url, flt, search=search, page_size=MAX_PAGE_SIZE, count_limit=limit)
    if not first.total_exact:
        raise ConfigError(
            f"The search finds more than {limit:,} traces, more than can be queued at once. "
            "Use more or longer words, narrow the filter or the time range, or add a sampling rule instead."
        )
    return [first] + [list_traces(url, flt, search=search, page=number, page_size=MAX_PAGE_SIZE, count_limit=limit)
                      for number in range(2, first.page_count + 1)]


def remove_item(url: str, item_id: int) -> None:
    """Take an item out of its queue, with the labels given in the queue (scores stay on the trace)."""
    with write_session(url) as session:
        item = session.get(QueueItem, item_id)
        if item is None:
            raise NotFound(f"No queue item {item_id}.")
        session.delete(item)


def next_item(url: str, queue_id: int, username: str, now: datetime | None = None) -> Lease | None:
    """Lease the next item ``username`` should label, or return the one they already hold;
    ``None`` when nothing is left for them. ``ConfigError`` when the queue is archived, or when
    ``username`` is an annotator the queue is not assigned to."""
    now = now or utcnow()
    with write_session(url) as session:
        queue = _queue(session, queue_id)
        if queue.archived_at is not None:
            raise ConfigError(f"The queue {queue.name!r} is archived; nothing can be labelled in it.")
        _check_assigned(session, queue, username)
        held = session.scalar(
            select(QueueItem).where(QueueItem.queue_id == queue_id, QueueItem.status == "leased",
                                    QueueItem.leased_by == username, QueueItem.lease_expires_at > now)
            .order_by(QueueItem.position, QueueItem.id).limit(1))
        item = held or session.scalar(
            select(QueueItem).where(QueueItem.queue_id == queue_id, *_available_to(username, queue, now))
            .order_by(QueueItem.position, QueueItem.id).limit(1)
            .with_for_update(skip_locked=True))
        if item is None:
            return None
        item.status = "leased"
        item.leased_by = username
        item.lease_expires_at = now + timedelta(seconds=queue.lease_seconds)
        return _lease(session, item)


def get_lease(url: str, item_id: int, username: str, now: datetime | None = None) -> Lease | None:
    """The lease ``username`` holds on ``item_id``, or ``None`` if they hold none (expired, or
    someone else's)."""
    now = now or utcnow()
    with read_session(url) as session:
        item = session.get(QueueItem, item_id)
        if item is None or item.leased_by != username or item.status != "leased" or \
                item.lease_expires_at is None or item.lease_expires_at <= now:
            return None
        return _lease(session, item)


def submit_label(
    url: str,
    item_id: int,
    username: str,
    values: Mapping[str, Any],
    *,
    comment: str | None = None,
    corrected_output: Any = None,
    now: datetime | None = None,
) -> None:
    """Store ``username``'s label of an item: the values by score config name (checked against each
    config; ``None`` means not given), a comment and a corrected output. The values also become
    ``human`` scores of the trace, except those an admin has already adjudicated for this item
    (the ruling stays the one score of that name). Raises ``ConfigError`` for a value a config does not accept,
    or when this person already labelled the item; nothing is stored then."""
    now = now or utcnow()
    with write_session(url) as session:
        item = _item(session, item_id)
        queue = _queue(session, item.queue_id)
        if _has_annotation(session, item.id, username, "label"):
            raise ConfigError("You have already labelled this item; it is saved. Open the next one.")
        configs = _configs(session, queue.id)
        given = {name: value for name, value in values.items() if not _empty(value)}
        unknown = sorted(set(given) - {c.name for c in configs})
        if unknown:
            raise ConfigError(f"This queue does not score {', '.join(unknown)}.")
        comment = (comment or "").strip() or None
        if not given and comment is None and _empty(corrected_output):
            raise ConfigError("Nothing to submit: give at least one score, a comment or a corrected output "
                              "(or Skip the item).")
        annotation = Annotation(
            queue_item_id=item.id, queue_id=queue.id, trace_id=item.trace_id, author=username, kind="label",
            values_json=dict(given), comment=comment,
            corrected_output_json=None if _empty(corrected_output) else corrected_output, created_at=now,
        )
        session.add(annotation)
        session.flush()
        scores = scores_for_label(configs, given, trace_id=item.trace_id, author=username, comment=comment,
                                  created_at=now, metadata={"queue": queue.name, "queue_item_id": item.id,
                                                            "annotation_id": annotation.id})
        # An admin already settled these scores for the item: the label is kept (agreement reads
        # it), but the ruling stays the item's only score of that name.
        ruled = _ruled_names(session, item.id)
        session.add_all([s for s in scores if s.name not in ruled])
        item.annotations_done += 1
        _release(item)
        _settle(item, queue, now)


def skip_item(url: str, item_id: int, username: str, now: datetime | None = None) -> None:
    """``username`` passes on this item: it is never offered to them again; others still get it."""
    now = now or utcnow()
    with write_session(url) as session:
        item = _item(session, item_id)
        if not _has_annotation(session, item.id, username, "skip"):
            session.add(Annotation(queue_item_id=item.id, queue_id=item.queue_id, trace_id=item.trace_id,
                                   author=username, kind="skip", created_at=now))
        if item.leased_by == username:
            _release(item)


def come_back_later(url: str, item_id: int, username: str) -> None:
    """Put this item behind every other one and let go of it; it comes round again at the end."""
    with write_session(url) as session:
        item = _item(session, item_id)
        last = session.scalar(select(func.max(QueueItem.position)).where(QueueItem.queue_id == item.queue_id))
        item.position = (last or 0) + 1
        if item.leased_by == username:
            _release(item)


def release_lease(url: str, item_id: int, username: str) -> None:
    """Give back an item without labelling it (closing the labeling view does not need this: the
    lease runs out by itself)."""
    with write_session(url) as session:
        item = _item(session, item_id)
        if item.leased_by == username:
            _release(item)


def progress(url: str, queue_id: int, username: str, now: datetime | None = None) -> Progress:
    """Items done of all, items leased right now, ``username``'s labels today (UTC) and in all,
    how many items are still there for them, and labels per person: ``people`` lists every
    assignee of the queue (with zero labels too) and anyone else who labelled, most labels first."""
    now = now or utcnow()
    today = _start_of_day(now)
    with read_session(url) as session:
        queue = _queue(session, queue_id)
        by_status = dict(session.execute(
            select(QueueItem.status, func.count()).where(QueueItem.queue_id == queue_id)
            .group_by(QueueItem.status)).all())
        leased = session.scalar(select(func.count()).select_from(QueueItem).where(
            QueueItem.queue_id == queue_id, QueueItem.status == "leased", QueueItem.lease_expires_at > now)) or 0
        counts = {author: (int(total), int(recent or 0)) for author, total, recent in session.execute(
            select(Annotation.author, func.count(), func.sum(case((Annotation.created_at >= today, 1), else_=0)))
            .where(Annotation.queue_id == queue_id, Annotation.kind == "label")
            .group_by(Annotation.author))}
        assignees = set(session.scalars(select(User.username).join(QueueAssignee, QueueAssignee.user_id == User.id)
                                        .where(QueueAssignee.queue_id == queue_id)))
        available = session.scalar(select(func.count()).select_from(QueueItem).where(
            QueueItem.queue_id == queue_id, *_available_to(username, queue, now))) or 0
    people = sorted((PersonProgress(name, name in assignees, *counts.get(name, (0, 0)))
                     for name in assignees | set(counts)), key=lambda p: (-p.done, p.username))
    mine = counts.get(username, (0, 0))
    return Progress(
        items=sum(by_status.values()), done=by_status.get("done", 0), leased=leased, mine_today=mine[1],
        mine_total=mine[0], available_to_me=available,
        people=tuple(people),
    )


def labels_today(url: str, username: str, now: datetime | None = None) -> dict[int, int]:
    """Queue id -> how many labels ``username`` gave in it today (UTC); queues with none are left out."""
    now = now or utcnow()
    with read_session(url) as session:
        return {queue_id: int(count) for queue_id, count in session.execute(
            select(Annotation.queue_id, func.count()).where(
                Annotation.author == username, Annotation.kind == "label",
                Annotation.created_at >= _start_of_day(now)).group_by(Annotation.queue_id))}


@dataclass(frozen=True)
class ItemRow:
    """One item of a queue as an admin lists it."""

    item_id: int
    trace_id: str
    status: str
    labels: int
    leased_by: str | None
    reason: str | None
    created_at: datetime


def list_items(url: str, queue_id: int, status: str | None = None, limit: int = 50, offset: int = 0,
               now: datetime | None = None) -> tuple[list[ItemRow], int]:
    """A page of a queue's items in the order they are handed out, and how many there are.
    An item whose lease expired shows as pending."""
    now = now or utcnow()
    with read_session(url) as session:
        where = [QueueItem.queue_id == queue_id]
        expired = and_(QueueItem.status == "leased", QueueItem.lease_expires_at <= now)
        if status == "pending":
            where.append(or_(QueueItem.status == "pending", expired))
        elif status == "leased":
            where.append(and_(QueueItem.status == "leased", QueueItem.lease_expires_at > now))
        elif status:
            where.append(QueueItem.status == status)
        total = session.scalar(select(func.count()).select_from(QueueItem).where(*where)) or 0
        rows = session.execute(
            select(QueueItem).where(*where).order_by(QueueItem.position, QueueItem.id).limit(limit).offset(offset)
        ).scalars().all()
        items = [ItemRow(
            item_id=r.id, trace_id=r.trace_id,
            status="pending" if r.status == "leased" and (r.lease_expires_at is None or r.lease_expires_at <= now)
            else r.status,
            labels=r.annotations_done,
            leased_by=r.leased_by if r.status == "leased" and r.lease_expires_at and r.lease_expires_at > now
            else None,
            reason=r.reason, created_at=r.created_at,
        ) for r in rows]
    return items, total


# --- internals ------------------------------------------------------------------------------------


def _start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ConfigError("A queue needs a name.")
    if len(name) > 255:
        raise ConfigError("A queue name can be at most 255 characters long.")
    return name


def _check_numbers(annotations_per_item: int, lease_minutes: int) -> None:
    if not 1 <= annotations_per_item <= 10:
        raise ConfigError("Annotations per item must be between 1 (triage) and 10.")
    if not 1 <= lease_minutes <= 24 * 60:
        raise ConfigError("The lease time must be between 1 minute and 24 hours.")


def _set_configs(session: Session, queue_id: int, names: Sequence[str], keep: Iterable[int] = ()) -> None:
    """Attach configs by name: active ones, or archived ones whose id is in ``keep`` (already attached)."""
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise ConfigError("Pick at least one score config for the queue's annotators to fill in.")
    found = dict(session.execute(select(ScoreConfig.name, ScoreConfig.id).where(
        ScoreConfig.name.in_(names), or_(ScoreConfig.archived_at.is_(None), ScoreConfig.id.in_(list(keep))))).all())
    missing = [n for n in names if n not in found]
    if missing:
        raise ConfigError(f"No score config named {', '.join(map(repr, missing))} (or it is archived); "
                          "create it on the Score configs page first.")
    session.execute(insert(QueueScoreConfig), [{"queue_id": queue_id, "score_config_id": found[n]} for n in names])


def _set_assignees(session: Session, queue_id: int, usernames: Sequence[str]) -> None:
    usernames = list(dict.fromkeys(u for u in usernames if u))
    if not usernames:
        return
    found = dict(session.execute(select(User.username, User.id).where(
        User.username.in_(usernames), User.disabled_at.is_(None))).all())
    missing = [u for u in usernames if u not in found]
    if missing:
        raise ConfigError(f"No active user {', '.join(map(repr, missing))}; add them with `looplab users add`.")
    session.execute(insert(QueueAssignee), [{"queue_id": queue_id, "user_id": found[u]} for u in usernames])


def _open_to(username: str) -> Any:
    """Queues assigned to ``username``: the only ones an annotator sees (a queue with no
    assignees is for admins and engineers until someone is assigned)."""
    return exists(select(QueueAssignee.queue_id).join(User, User.id == QueueAssignee.user_id)
                  .where(QueueAssignee.queue_id == AnnotationQueue.id, User.username == username))


def _check_assigned(session: Session, queue: AnnotationQueue, username: str) -> None:
    """Refuse an annotator (a user whose role is annotator) a queue not assigned to them. Other
    names (admins, engineers, the local user of single-user mode) may work on any queue."""
    role = session.scalar(select(User.role).where(User.username == username))
    if role != "annotator":
        return
    if session.scalar(select(AnnotationQueue.id).where(AnnotationQueue.id == queue.id, _open_to(username))) is None:
        raise ConfigError(f"The queue {queue.name!r} is not assigned to you; ask an admin to add you to it.")


def _available_to(username: str, queue: AnnotationQueue, now: datetime) -> list[Any]:
    """Conditions on ``queue_items``: still wants labels, not held by anyone else, and neither
    labelled nor skipped by ``username``."""
    return [
        QueueItem.annotations_done < queue.annotations_per_item,
        or_(QueueItem.status == "pending",
            and_(QueueItem.status == "leased",
                 or_(QueueItem.lease_expires_at <= now, QueueItem.leased_by == username))),
        ~exists(select(Annotation.id).where(Annotation.queue_item_id == QueueItem.id,
                                            Annotation.author == username,
                                            Annotation.kind.in_(("label", "skip")))),
    ]


def _insert_items(session: Session, queue_id: int, trace_ids: Sequence[str], reason: str | None) -> None:
    if not trace_ids:
        return
    now = utcnow()
    last = session.scalar(select(func.max(QueueItem.position)).where(QueueItem.queue_id == queue_id)) or 0
    for chunk in _chunks(list(trace_ids), 1000):
        session.execute(insert(QueueItem), [
            {"queue_id": queue_id, "trace_id": t, "status": "pending", "annotations_done": 0, "reason": reason,
             "position": last, "created_at": now} for t in chunk])


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _queue(session: Session, queue_id: int) -> AnnotationQueue:
    queue = session.get(AnnotationQueue, queue_id)
    if queue is None:
        raise NotFound(f"No annotation queue {queue_id}.")
    return queue


def _item(session: Session, item_id: int) -> QueueItem:
    item = session.get(QueueItem, item_id)
    if item is None:
        raise NotFound(f"No queue item {item_id}; it may have been removed from its queue.")
    return item


def _configs(session: Session, queue_id: int) -> list[ScoreConfigView]:
    return [as_view(c) for c in session.scalars(
        select(ScoreConfig).join(QueueScoreConfig, QueueScoreConfig.score_config_id == ScoreConfig.id)
        .where(QueueScoreConfig.queue_id == queue_id).order_by(ScoreConfig.name))]


def _ruled_names(session: Session, item_id: int) -> set[str]:
    """The score names an admin's adjudication of the item settles."""
    ruled = session.scalar(select(Annotation.values_json).where(Annotation.queue_item_id == item_id,
                                                                Annotation.kind == "adjudication"))
    return set(ruled or {})


def _has_annotation(session: Session, item_id: int, username: str, kind: str) -> bool:
    return session.scalar(select(Annotation.id).where(
        Annotation.queue_item_id == item_id, Annotation.author == username, Annotation.kind == kind)) is not None


def _release(item: QueueItem) -> None:
    item.leased_by = None
    item.lease_expires_at = None
    if item.status == "leased":
        item.status = "pending"


def _settle(item: QueueItem, queue: AnnotationQueue, now: datetime) -> None:
    if item.annotations_done >= queue.annotations_per_item:
        item.status = "done"
        item.completed_at = item.completed_at or now


def _settle_statuses(session: Session, queue: AnnotationQueue) -> None:
    """After the wanted number of labels changed: items with enough are done, the others are not."""
    session.execute(update(QueueItem).where(
        QueueItem.queue_id == queue.id, QueueItem.status == "done",
        QueueItem.annotations_done < queue.annotations_per_item,
    ).values(status="pending", completed_at=None))
    session.execute(update(QueueItem).where(
        QueueItem.queue_id == queue.id, QueueItem.status.in_(("pending", "leased")),
        QueueItem.annotations_done >= queue.annotations_per_item,
    ).values(status="done", completed_at=utcnow(), leased_by=None, lease_expires_at=None))


def _lease(session: Session, item: QueueItem) -> Lease:
    assert item.lease_expires_at is not None
    return Lease(item_id=item.id, queue_id=item.queue_id, trace_id=item.trace_id, reason=item.reason,
                 expires_at=item.lease_expires_at, labels_so_far=item.annotations_done)


def _views(session: Session, queues: Sequence[AnnotationQueue]) -> list[QueueView]:
    ids = [q.id for q in queues]
    if not ids:
        return []
    configs: dict[int, list[str]] = {}
    for queue_id, name in session.execute(
            select(QueueScoreConfig.queue_id, ScoreConfig.name)
            .join(ScoreConfig, ScoreConfig.id == QueueScoreConfig.score_config_id)
            .where(QueueScoreConfig.queue_id.in_(ids)).order_by(ScoreConfig.name)):
        configs.setdefault(queue_id, []).append(name)
    people: dict[int, list[str]] = {}
    for queue_id, username in session.execute(
            select(QueueAssignee.queue_id, User.username).join(User, User.id == QueueAssignee.user_id)
            .where(QueueAssignee.queue_id.in_(ids)).order_by(User.username)):
        people.setdefault(queue_id, []).append(username)
    counts: dict[int, dict[str, int]] = {}
    for queue_id, status, count in session.execute(
            select(QueueItem.queue_id, QueueItem.status, func.count()).where(QueueItem.queue_id.in_(ids))
            .group_by(QueueItem.queue_id, QueueItem.status)):
        counts.setdefault(queue_id, {})[status] = count
    return [QueueView(
        id=q.id, name=q.name, instructions=q.instructions, score_configs=tuple(configs.get(q.id, ())),
        assignees=tuple(people.get(q.id, ())), annotations_per_item=q.annotations_per_item,
        lease_minutes=q.lease_seconds // 60, archived=q.archived_at is not None,
        items=sum(counts.get(q.id, {}).values()), done=counts.get(q.id, {}).get("done", 0),
    ) for q in queues]


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
