"""The filter Monitoring and Traces share: a time window plus trace attributes.

One ``TraceFilter`` turns into SQL ``WHERE`` conditions on ``traces`` (``conditions()``) and into
URL query parameters and back (``to_query_params`` / ``from_query_params``), so a filtered view
can be shared as a link and every query of both pages sees the same traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, exists, select

from looplab.errors import ConfigError
from looplab.store.models import Span, Trace, TraceTag
from looplab.timeparse import iso_utc, parse_when

# Preset windows offered by the UI, ending now; anything else is a custom from/to.
RANGE_PRESETS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
RANGE_LABELS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "custom": "Custom"}
DEFAULT_RANGE = "7d"

# Attribute filters: URL parameter name -> TraceFilter field.
LIST_PARAMS = {
    "name": "names",
    "model": "models",
    "provider": "providers",
    "tag": "tags",
    "user": "user_ids",
    "session": "session_ids",
    "release": "releases",
    "env": "environments",
    "status": "statuses",
}


@dataclass(frozen=True)
class TraceFilter:
    """Which traces a view shows: those that started in ``[start, end)`` and match every list.

    An empty list means "any"; several values in one list mean "any of these". ``models`` and
    ``providers`` match traces with at least one span of that model or provider. Times are aware
    UTC datetimes; ``range_key`` remembers the preset the window came from (``custom`` otherwise).
    """

    start: datetime | None = None
    end: datetime | None = None
    range_key: str = "custom"
    names: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    session_ids: tuple[str, ...] = ()
    releases: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()
    statuses: tuple[str, ...] = field(default=())

    @classmethod
    def last(cls, range_key: str, now: datetime | None = None, **lists: Sequence[str]) -> TraceFilter:
        """The preset window ``range_key`` (``1h``, ``24h``, ``7d``, ``30d``) ending at ``now``."""
        if range_key not in RANGE_PRESETS:
            raise ConfigError(f"Unknown time range {range_key!r}; use one of {', '.join(RANGE_PRESETS)} or from/to.")
        end = _utc(now or datetime.now(timezone.utc))
        return cls(start=end - RANGE_PRESETS[range_key], end=end, range_key=range_key,
                   **{k: tuple(v) for k, v in lists.items()})

    @property
    def span(self) -> timedelta | None:
        """The window's length, or ``None`` when it is open on either side."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    def previous_period(self) -> TraceFilter:
        """The same filter over the window of the same length just before this one."""
        length = self.span
        if length is None:
            raise ValueError("an open-ended window has no previous period")
        assert self.start is not None
        return replace(self, start=self.start - length, end=self.start, range_key="custom")

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions on ``traces`` selecting exactly the traces this filter names."""
        where: list[ColumnElement[bool]] = []
        if self.start is not None:
            where.append(Trace.start_time >= self.start)
        if self.end is not None:
            where.append(Trace.start_time < self.end)
        for values, column in (
            (self.names, Trace.name),
            (self.user_ids, Trace.user_id),
            (self.session_ids, Trace.session_id),
            (self.releases, Trace.release),
            (self.environments, Trace.environment),
            (self.statuses, Trace.status),
        ):
            if values:
                where.append(column.in_(values))
        if self.tags:
            where.append(exists(select(TraceTag.trace_id).where(
                TraceTag.trace_id == Trace.id, TraceTag.tag.in_(self.tags))))
        for values, column in ((self.models, Span.model), (self.providers, Span.provider)):
            if values:
                # "column || ''" keeps SQLite from walking the model index (every span of that
                # model, for each trace); the trace's own spans are found by the primary key.
                where.append(exists(select(Span.id).where(Span.trace_id == Trace.id,
                                                          column.concat("").in_(values))))
        return where

    def attribute_count(self) -> int:
        """How many attribute filters (not the time window) are active."""
        return sum(1 for name in LIST_PARAMS.values() if getattr(self, name))

    def to_query_params(self) -> dict[str, str | list[str]]:
        """This filter as URL query parameters (lists repeat their key)."""
        params: dict[str, str | list[str]] = {}
        if self.range_key in RANGE_PRESETS:
            params["range"] = self.range_key
        else:
            if self.start is not None:
                params["from"] = iso_utc(self.start) or ""
            if self.end is not None:
                params["to"] = iso_utc(self.end) or ""
        for param, name in LIST_PARAMS.items():
            values = getattr(self, name)
            if values:
                params[param] = list(values)
        return params

    @classmethod
    def from_query_params(cls, params: Mapping[str, Any], now: datetime | None = None) -> TraceFilter:
        """The filter a URL names; ``params`` maps each key to a string or a list of strings.

        No window in the URL means the default preset (last 7 days). Raises ``ConfigError``
        saying what was wrong for an unknown range or an unreadable from/to.
        """
        now = _utc(now or datetime.now(timezone.utc))
        lists = {name: _strings(params.get(param)) for param, name in LIST_PARAMS.items()}
        start_text, end_text = _first(params.get("from")), _first(params.get("to"))
        range_key = _first(params.get("range"))
        if start_text or end_text:
            start = parse_when(start_text, now) if start_text else None
            end = parse_when(end_text, now) if end_text else now
            if start is not None and start >= end:
                raise ConfigError("The time range starts after it ends; pick a 'from' before the 'to'.")
            return cls(start=start, end=end, range_key="custom", **lists)
        return cls.last(range_key or DEFAULT_RANGE, now, **lists)


def _first(value: Any) -> str | None:
    values = _strings(value)
    return values[0] if values else None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = [value]
    else:
        items = list(value)
    return tuple(dict.fromkeys(s.strip() for s in items if s and s.strip()))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
