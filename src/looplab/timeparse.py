"""Times as people type them (``2026-11-01``, ``24h``) and as looplab writes them (ISO 8601, ``Z``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from looplab.errors import ConfigError

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
WHEN_HELP = "ISO 8601 (2026-11-01, 2026-11-01T10:00:00Z; UTC unless an offset is given) or a time ago (30m, 24h, 7d)"


def parse_when(text: str, now: datetime) -> datetime:
    """The moment ``text`` names, as an aware UTC datetime.

    ``text`` is an ISO 8601 date or date-time (UTC unless it carries an offset), or a duration
    before ``now``: a whole number and a unit, ``s``, ``m`` (minutes), ``h``, ``d`` or ``w``.
    Raises ``ConfigError`` saying what is accepted when ``text`` is neither.
    """
    cleaned = text.strip()
    match = _DURATION.fullmatch(cleaned.lower())
    if match:
        amount, unit = match.groups()
        try:
            return _as_utc(now) - timedelta(**{_UNITS[unit]: int(amount)})
        except OverflowError:
            raise ConfigError(f"{text!r} reaches too far back; give a shorter duration or a date.") from None
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ConfigError(f"{text!r} is not a time; use {WHEN_HELP}.") from None
    return _as_utc(moment)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso_utc(moment: datetime | None) -> str | None:
    """``moment`` in UTC as ISO 8601 with microseconds and a ``Z`` suffix (``None`` stays ``None``)."""
    if moment is None:
        return None
    return _as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
