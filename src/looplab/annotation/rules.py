"""Queue rules: keep a queue filled with a sample of the traces that match a filter.

A rule has a filter (the trace attributes of a ``TraceFilter``: names, models, tags, users,
releases, statuses...), a sampling rate and optionally a field to stratify by. It walks traces in
start order from where it last stopped, so one run backfills the traces already stored and later
runs pick up new ones; it stays a couple of minutes behind now, plus the longest trace's length
(at most an hour), because a trace's row is written when it finishes.

Sampling is exact and repeatable, not a coin toss: within each stratum (each value of the
stratify field; one stratum when there is none) the rule takes a trace whenever the number taken
so far is below ``ceil(seen * rate)``. So a stratum of ``n`` traces gives ``ceil(n * rate)`` items,
and every value of the field (a rare model, a new release) is represented from its first trace.
The counts live with the rule, so sampling continues exactly where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, or_, select

from looplab.annotation.queues import _insert_items, _queue
from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session, write_session
from looplab.store.filters import TraceFilter
from looplab.store.models import AnnotationQueue, QueueItem, QueueRule, Span, Trace
from looplab.store.types import utcnow

SETTLE = timedelta(minutes=2)  # traces younger than this may still be being written
# A trace's row is written when it finishes: a rule also stays the longest trace's length behind,
# up to this (a trace longer than that, stored after the rule passed its start, is not sampled).
MAX_TRACE_WAIT = timedelta(hours=1)
BATCH = 5_000

# Fields a rule can stratify by, with the label the app shows.
STRATIFY_FIELDS: dict[str, str] = {
    "name": "Trace name",
    "model": "Model (of the trace's first LLM call)",
    "release": "Release",
    "environment": "Environment",
    "user_id": "User",
    "status": "Status",
}


@dataclass(frozen=True)
class RuleView:
    """A queue rule as the app lists it."""

    id: int
    queue_id: int
    name: str
    filter: TraceFilter
    sample_rate: float
    stratify_by: str | None
    enabled: bool
    seen: int
    taken: int
    strata: dict[str, tuple[int, int]]  # value -> (seen, taken)
    cursor: datetime | None
    last_run_at: datetime | None

    def describe(self) -> str:
        """One line a person can read: what the rule takes."""
        parts = [f"{self.sample_rate:.0%} of traces" if self.sample_rate < 1 else "every trace"]
        active = {k: v for k, v in self.filter.to_query_params().items() if k not in ("range", "from", "to")}
        if active:
            parts.append("where " + ", ".join(f"{k} is {' or '.join(v) if isinstance(v, list) else v}"
                                              for k, v in active.items()))
        if self.stratify_by:
            parts.append(f"stratified by {STRATIFY_FIELDS.get(self.stratify_by, self.stratify_by).lower()}")
        return " ".join(parts)


def create_rule(
    url: str,
    queue_id: int,
    name: str,
    flt: TraceFilter,
    sample_rate: float,
    stratify_by: str | None = None,
    backfill: bool = True,
    now: datetime | None = None,
) -> tuple[RuleView, int]:
    """Save a rule filling ``queue_id`` from the traces ``flt`` selects (its attribute filters; its
    start, if any, is where the backfill begins), sampled at ``sample_rate`` (0 < rate <= 1).
    With ``backfill`` the stored traces are sampled right away, otherwise only new ones will be.
    Returns the rule and how many traces the backfill queued."""
    now = now or utcnow()
    name = (name or "").strip()
    if not name:
        raise ConfigError("A rule needs a name.")
    if not isinstance(sample_rate, (int, float)) or not 0 < sample_rate <= 1:
        raise ConfigError("The sampling rate must be more than 0% and at most 100%.")
    if stratify_by is not None and stratify_by not in STRATIFY_FIELDS:
        raise ConfigError(f"Cannot stratify by {stratify_by!r}; use one of {', '.join(STRATIFY_FIELDS)}.")
    params = {k: v for k, v in flt.to_query_params().items() if k not in ("range", "from", "to")}
    with write_session(url) as session:
        _queue(session, queue_id)
        if session.scalar(select(QueueRule.id).where(QueueRule.queue_id == queue_id, QueueRule.name == name)):
            raise ConfigError(f"This queue has a rule named {name!r} already; pick another name.")
        start = flt.start if backfill else now
        rule = QueueRule(queue_id=queue_id, name=name, filter_json=params, sample_rate=float(sample_rate),
                         stratify_by=stratify_by, strata_json={}, enabled=True, created_at=now,
                         cursor_start_time=start, cursor_trace_id="" if start is not None else None)
        session.add(rule)
        session.flush()
        rule_id = rule.id
    added = run_rule(url, rule_id, now=now)
    return get_rule(url, rule_id), added


def get_rule(url: str, rule_id: int) -> RuleView:
    """One rule by id; ``NotFound`` if there is none."""
    with read_session(url) as session:
        rule = session.get(QueueRule, rule_id)
        if rule is None:
            raise NotFound(f"No queue rule {rule_id}.")
        return _view(rule)


def list_rules(url: str, queue_id: int) -> list[RuleView]:
    """A queue's rules, by name."""
    with read_session(url) as session:
        return [_view(r) for r in session.scalars(
            select(QueueRule).where(QueueRule.queue_id == queue_id).order_by(QueueRule.name))]


def set_rule_enabled(url: str, rule_id: int, enabled: bool) -> None:
    """Pause or resume a rule. A resumed rule catches up on the traces stored while it was paused."""
    with write_session(url) as session:
        rule = session.get(QueueRule, rule_id)
        if rule is None:
            raise NotFound(f"No queue rule {rule_id}.")
        rule.enabled = enabled


def delete_rule(url: str, rule_id: int) -> None:
    """Delete a rule; the items it queued stay."""
    with write_session(url) as session:
        rule = session.get(QueueRule, rule_id)
        if rule is None:
            raise NotFound(f"No queue rule {rule_id}.")
        session.delete(rule)


def run_rules(url: str, queue_id: int | None = None, now: datetime | None = None) -> dict[str, int]:
    """Run every enabled rule of a live queue (of one queue, or of all); returns traces queued per
    rule name. Rules of archived queues and paused rules do not run. Cheap when there is nothing
    new: one indexed query per rule."""
    with read_session(url) as session:
        query = (select(QueueRule.id, QueueRule.name).join(AnnotationQueue, AnnotationQueue.id == QueueRule.queue_id)
                 .where(QueueRule.enabled.is_(True), AnnotationQueue.archived_at.is_(None)))
        if queue_id is not None:
            query = query.where(QueueRule.queue_id == queue_id)
        rules = session.execute(query.order_by(QueueRule.id)).all()
    return {name: run_rule(url, rule_id, now=now) for rule_id, name in rules}


def run_rule(url: str, rule_id: int, now: datetime | None = None, batch: int = BATCH) -> int:
    """Walk the traces stored since the rule last stopped, queue the sample, move the cursor.

    Each batch is one transaction (items, counts and cursor together), so a crash loses nothing and
    queues nothing twice. Returns how many traces were queued. A paused rule, or a rule of an
    archived queue, queues nothing and keeps its cursor: resumed (or unarchived), it catches up."""
    now = now or utcnow()
    with read_session(url) as session:
        horizon = settled_before(session, now)
    added = 0
    while True:
        with write_session(url) as session:
            rule = session.get(QueueRule, rule_id)
            if rule is None:
                raise NotFound(f"No queue rule {rule_id}.")
            if not rule.enabled or _queue(session, rule.queue_id).archived_at is not None:
                return added
            flt = replace(_attribute_filter(rule.filter_json), end=horizon)
            stratum = _stratum_column(rule.stratify_by)
            query = select(Trace.id, Trace.start_time, stratum).where(*flt.conditions())
            if rule.cursor_start_time is not None:
                query = query.where(or_(Trace.start_time > rule.cursor_start_time,
                                        and_(Trace.start_time == rule.cursor_start_time,
                                             Trace.id > (rule.cursor_trace_id or ""))))
            rows = session.execute(query.order_by(Trace.start_time, Trace.id).limit(batch)).all()
            if not rows:
                rule.last_run_at = now
                return added
            strata = {k: list(v) for k, v in (rule.strata_json or {}).items()}
            queued = set(session.scalars(select(QueueItem.trace_id).where(
                QueueItem.queue_id == rule.queue_id, QueueItem.trace_id.in_([r.id for r in rows]))))
            take = []
            for trace_id, _start, value in rows:
                counts = strata.setdefault("" if value is None else str(value), [0, 0])
                counts[0] += 1
                if counts[1] < math.ceil(counts[0] * rule.sample_rate - 1e-9):
                    counts[1] += 1
                    if trace_id not in queued:
                        take.append(trace_id)
            _insert_items(session, rule.queue_id, take, f"rule: {rule.name}")
            rule.strata_json = strata
            rule.cursor_start_time, rule.cursor_trace_id = rows[-1].start_time, rows[-1].id
            rule.last_run_at = now
            added += len(take)
            if len(rows) < batch:
                return added


def settled_before(session: Any, now: datetime) -> datetime:
    """Rules sample traces that started before this moment: ``SETTLE`` before ``now``, and
    further back by the longest trace stored (at most ``MAX_TRACE_WAIT``), so that a trace still
    running when the rule reaches its start time is not passed over (its row comes at its end)."""
    longest = session.scalar(select(func.max(Trace.duration_ms)))  # one seek on the duration index
    return now - SETTLE - min(timedelta(milliseconds=float(longest or 0)), MAX_TRACE_WAIT)


def _stratum_column(field: str | None) -> Any:
    if field is None:
        return literal("").label("stratum")
    if field == "model":
        return (select(Span.model).where(Span.trace_id == Trace.id, Span.model.is_not(None))
                .order_by(Span.start_time, Span.id).limit(1).scalar_subquery().label("stratum"))
    return getattr(Trace, field).label("stratum")


def _attribute_filter(params: dict[str, Any]) -> TraceFilter:
    """The rule's saved attribute filters, with no time window."""
    return replace(TraceFilter.from_query_params(params), start=None, end=None, range_key="custom")


def _view(rule: QueueRule) -> RuleView:
    flt = _attribute_filter(rule.filter_json or {})
    strata = {k: (int(v[0]), int(v[1])) for k, v in (rule.strata_json or {}).items()}
    return RuleView(
        id=rule.id, queue_id=rule.queue_id, name=rule.name, filter=flt, sample_rate=rule.sample_rate,
        stratify_by=rule.stratify_by, enabled=rule.enabled, seen=sum(s for s, _ in strata.values()),
        taken=sum(t for _, t in strata.values()), strata=strata, cursor=rule.cursor_start_time,
        last_run_at=rule.last_run_at,
    )
