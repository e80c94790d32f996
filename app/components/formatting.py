"""How numbers read on the pages: durations, money, rates, and KPI changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def duration(ms: float | None) -> str:
    """``850 ms``, ``2.4 s``, ``3 min 5 s``; an en dash when unknown."""
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:,.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:,.1f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{minutes:,.0f} min {seconds:.0f} s"


def money(usd: float | None) -> str:
    """Dollars with cents, or four decimals for amounts under a dollar."""
    if usd is None:
        return "–"
    return f"${usd:,.2f}" if abs(usd) >= 1 else f"${usd:,.4f}"


def kpi_value(key: str, value: Any) -> str:
    """A KPI of ``looplab.monitoring.metrics.summary`` as people read it."""
    if value is None:
        return "–"
    if key.endswith("_ms"):
        return duration(value)
    if key == "cost_usd":
        return money(value)
    if key == "error_rate":
        return f"{value:.1%}"
    return compact(value)


def compact(number: float) -> str:
    """``950``, ``12.3k``, ``1.18M``: short enough for a metric tile."""
    for threshold, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(number) >= threshold:
            scaled = number / unit
            decimals = max(0, 2 - len(str(int(abs(scaled)))) + 1)
            return f"{scaled:,.{decimals}f}{suffix}"
    return f"{number:,.0f}"


def period(length: timedelta | None) -> str:
    """``1 hour``, ``24 hours``, ``7 days``, ``3 days 12 hours``."""
    if length is None:
        return "–"
    days, seconds = length.days, length.seconds
    hours, minutes = divmod(seconds // 60, 60)
    parts = [f"{days} day{'s' * (days != 1)}" if days else "",
             f"{hours} hour{'s' * (hours != 1)}" if hours else "",
             f"{minutes} minute{'s' * (minutes != 1)}" if minutes else ""]
    return " ".join(p for p in parts if p) or "0 minutes"


def kpi_delta(key: str, kpi: dict[str, Any]) -> str | None:
    """The change against the previous period: relative for counts and money, points for rates."""
    if kpi.get("change") is None:
        return None
    if key == "error_rate":
        return f"{kpi['change'] * 100:+.1f} pts"
    if kpi.get("change_pct") is None:
        return f"{kpi['change']:+,.0f}"
    return f"{kpi['change_pct']:+.0%}"


_MARKDOWN_SPECIALS = str.maketrans({c: f"\\{c}" for c in "\\`*_{}[]()<>#+-.!|~$:"})


def plain(text: object) -> str:
    """``text`` escaped so Markdown shows it as written (no links, images, HTML or formatting)."""
    return str(text).translate(_MARKDOWN_SPECIALS)
