"""Needs attention: saved rules that surface traces, and the traces they surface with their reasons.

A rule has a kind and the parameters that kind takes (``RULE_KINDS``). Rules are checked when
saved, so a rule in the table always makes sense; ``ConfigError`` says what is wrong otherwise.
Only enabled rules surface traces. A trace shows once however many rules it matches, with one
human-readable reason per match ("latency 12.3 s over 5 s", "thumbs down from user: 'wrong
answer'"). Rules that compare with the period (``latency_p95``, ``cost_outlier``) compare with
the traces the same filter selects.

Matching happens in SQL (one ``WHERE`` with a test per rule); reasons are written only for the
page of traces returned, from the columns and scores of those traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from looplab.errors import ConfigError, NotFound
from looplab.monitoring.metrics import (
    SOURCE_LABELS,
    _not_a_driver,
    _percentile_rows,
    _resolved,
    trace_conditions,
    window_share,
)
from looplab.store.engine import read_session, write_session
from looplab.store.filters import TraceFilter
from looplab.store.models import ATTENTION_RULE_KINDS, SCORE_SOURCES, AttentionRule, Score, Span, Trace
from looplab.store.types import utcnow

# kind -> {parameter: default}; a parameter whose default is REQUIRED must be given.
REQUIRED = object()
RULE_KINDS: dict[str, dict[str, Any]] = {
    "error": {},
    "latency_above": {"threshold_ms": REQUIRED},
    "latency_p95": {},
    "negative_feedback": {"score_name": "thumbs", "max_value": 0.0, "sources": []},
    "low_score": {"score_name": REQUIRED, "below": REQUIRED, "sources": []},
    "cost_outlier": {"factor": REQUIRED, "baseline": "median"},
}
assert set(RULE_KINDS) == set(ATTENTION_RULE_KINDS)
COST_BASELINES = {"median": 50, "p95": 95}
RULE_FIELDS = ("name", "kind", "params", "enabled")

DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"name": "Errors", "kind": "error", "params": {}},
    {"name": "Slower than 10 s", "kind": "latency_above", "params": {"threshold_ms": 10_000}},
    {"name": "Thumbs down", "kind": "negative_feedback", "params": {"score_name": "thumbs", "max_value": 0}},
    {"name": "Cost over 5x the median", "kind": "cost_outlier", "params": {"factor": 5, "baseline": "median"}},
    {"name": "Slowest 5%", "kind": "latency_p95", "params": {}, "enabled": False},
)
_MAX_REASONS_PER_RULE = 3
_LISTED = 0.1  # from this share of the traces, score rules test a list of ids (see _score_test)


# --- Checking rules -------------------------------------------------------------------------------


def _number(kind: str, key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"A {kind} rule needs {key} as a number, not {value!r}.")
    try:
        value = float(value)  # text from a form is fine when it reads as a number
    except ValueError:
        raise ConfigError(f"A {kind} rule needs {key} as a number, not {value!r}.") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"A {kind} rule needs {key} as a finite number, not {value!r}.")
    if positive and value <= 0:
        raise ConfigError(f"A {kind} rule needs {key} above 0, not {value:g}.")
    return value


def _sources(kind: str, value: Any) -> list[str]:
    if value in (None, ""):
        return []
    values = [value] if isinstance(value, str) else list(value)
    unknown = [v for v in values if v not in SCORE_SOURCES]
    if unknown:
        raise ConfigError(f"A {kind} rule's sources must be among {', '.join(SCORE_SOURCES)}; "
                          f"{', '.join(map(repr, unknown))} is not.")
    return list(dict.fromkeys(values))


def check_rule(name: Any, kind: Any, params: Mapping[str, Any] | None) -> tuple[str, str, dict[str, Any]]:
    """The rule's name, kind and complete parameters (defaults filled in), or ``ConfigError``."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("A rule needs a name.")
    name = name.strip()
    if len(name) > 255:
        raise ConfigError("A rule's name must be at most 255 characters.")
    if kind not in RULE_KINDS:
        raise ConfigError(f"Unknown rule kind {kind!r}; use one of {', '.join(RULE_KINDS)}.")
    given = dict(params or {})
    accepted = RULE_KINDS[kind]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none"
        raise ConfigError(f"A {kind} rule has no parameter {', '.join(unknown)}; {takes}.")
    checked: dict[str, Any] = {}
    for key, default in accepted.items():
        value = given.get(key, default)
        if value is REQUIRED or value is None:
            raise ConfigError(f"A {kind} rule needs {key} ({_HINTS[kind, key]}).")
        checked[key] = value
    if kind == "latency_above":
        checked["threshold_ms"] = _number(kind, "threshold_ms", checked["threshold_ms"], positive=True)
    elif kind in ("negative_feedback", "low_score"):
        score_name = checked["score_name"]
        if not isinstance(score_name, str) or not score_name.strip():
            raise ConfigError(f"A {kind} rule needs score_name, the name of a score.")
        checked["score_name"] = score_name.strip()
        bound = "max_value" if kind == "negative_feedback" else "below"
        checked[bound] = _number(kind, bound, checked[bound])
        checked["sources"] = _sources(kind, checked["sources"])
    elif kind == "cost_outlier":
        checked["factor"] = _number(kind, "factor", checked["factor"], positive=True)
        if checked["baseline"] not in COST_BASELINES:
            raise ConfigError(f"A cost_outlier rule's baseline is one of {', '.join(COST_BASELINES)}, "
                              f"not {checked['baseline']!r}.")
    return name, kind, checked


_HINTS = {
    ("latency_above", "threshold_ms"): "milliseconds, e.g. 5000",
    ("low_score", "score_name"): "the score to watch, e.g. correctness",
    ("low_score", "below"): "values under it are surfaced, e.g. 0.5",
    ("cost_outlier", "factor"): "how many times the period's median cost, e.g. 5",
    ("negative_feedback", "score_name"): "the feedback score's name, e.g. thumbs",
    ("negative_feedback", "max_value"): "values at or under it are negative, e.g. 0",
    ("low_score", "sources"): "a list of score sources",
    ("negative_feedback", "sources"): "a list of score sources",
    ("cost_outlier", "baseline"): "median or p95",
}


def describe(kind: str, params: Mapping[str, Any]) -> str:
    """What a rule surfaces, in a few words."""
    sources = ", ".join(SOURCE_LABELS.get(s, s) for s in params.get("sources") or ())
    from_sources = f" from {sources}" if sources else ""
    if kind == "error":
        return "Traces that failed or have a failed span"
    if kind == "latency_above":
        return f"Traces slower than {_duration(params['threshold_ms'])}"
    if kind == "latency_p95":
        return "Traces slower than the period's p95 latency"
    if kind == "negative_feedback":
        return f"{params['score_name']} at or under {params['max_value']:g}{from_sources}"
    if kind == "low_score":
        return f"{params['score_name']} under {params['below']:g}{from_sources}"
    return f"Traces costing over {params['factor']:g}x the period's {params['baseline']} cost"


# --- Rule storage ---------------------------------------------------------------------------------


def _rule_dict(rule: AttentionRule) -> dict[str, Any]:
    params = dict(rule.params_json or {})
    return {
        "id": rule.id, "name": rule.name, "kind": rule.kind, "params": params, "enabled": bool(rule.enabled),
        "description": describe(rule.kind, params), "created_at": rule.created_at, "updated_at": rule.updated_at,
    }


def list_rules(url: str) -> list[dict[str, Any]]:
    """Every rule, oldest first: ``{"id", "name", "kind", "params", "enabled", "description",
    "created_at", "updated_at"}``."""
    with read_session(url) as session:
        return [_rule_dict(r) for r in session.scalars(select(AttentionRule).order_by(AttentionRule.id))]


def _name_taken(session: Session, name: str, other_than: int | None = None) -> None:
    query = select(AttentionRule.id).where(func.lower(AttentionRule.name) == name.lower())
    if other_than is not None:
        query = query.where(AttentionRule.id != other_than)
    if session.scalar(query) is not None:
        raise ConfigError(f"A rule named {name!r} already exists; pick another name.")


def create_rule(
    url: str, name: str, kind: str, params: Mapping[str, Any] | None = None, enabled: bool = True
) -> dict[str, Any]:
    """Save a new rule and return it (as ``list_rules`` shows it); ``ConfigError`` when it is invalid."""
    name, kind, checked = check_rule(name, kind, params)
    now = utcnow()
    try:
        with write_session(url) as session:
            _name_taken(session, name)
            rule = AttentionRule(name=name, kind=kind, params_json=checked, enabled=bool(enabled),
                                 created_at=now, updated_at=now)
            session.add(rule)
            session.flush()
            return _rule_dict(rule)
    except IntegrityError:  # another process saved the same name first
        raise ConfigError(f"A rule named {name!r} already exists; pick another name.") from None


def update_rule(url: str, rule_id: int, **changes: Any) -> dict[str, Any]:
    """Change a rule's ``name``, ``kind``, ``params`` and/or ``enabled``; returns the rule.

    ``params`` replaces the parameters (missing ones take their defaults). Raises ``NotFound`` for
    an unknown id, ``ConfigError`` for an unknown field or an invalid result.
    """
    unknown = sorted(set(changes) - set(RULE_FIELDS))
    if unknown:
        raise ConfigError(f"A rule has no field {', '.join(unknown)}; change {', '.join(RULE_FIELDS)}.")
    try:
        with write_session(url) as session:
            rule = session.get(AttentionRule, rule_id)
            if rule is None:
                raise NotFound(f"There is no attention rule {rule_id}.")
            kind = changes.get("kind", rule.kind)
            if "params" in changes:
                params = changes["params"]
            elif kind == rule.kind:
                params = rule.params_json
            else:
                raise ConfigError(f"Changing a rule's kind to {kind} needs its params too.")
            name, kind, checked = check_rule(changes.get("name", rule.name), kind, params)
            _name_taken(session, name, other_than=rule.id)
            rule.name, rule.kind, rule.params_json = name, kind, checked
            if "enabled" in changes:
                rule.enabled = bool(changes["enabled"])
            rule.updated_at = utcnow()
            session.flush()
            return _rule_dict(rule)
    except IntegrityError:
        raise ConfigError(f"A rule named {changes.get('name')!r} already exists; pick another name.") from None


def delete_rule(url: str, rule_id: int) -> None:
    """Delete a rule; ``NotFound`` when there is no such rule."""
    with write_session(url) as session:
        rule = session.get(AttentionRule, rule_id)
        if rule is None:
            raise NotFound(f"There is no attention rule {rule_id}.")
        session.delete(rule)


def ensure_default_rules(url: str) -> list[dict[str, Any]]:
    """Create ``DEFAULT_RULES`` when there are no rules at all; returns the rules created (none
    when rules already exist, so calling it on every start is safe). Disable a default rule to
    silence it: deleting every rule brings the defaults back."""
    now = utcnow()
    try:
        with write_session(url) as session:
            if session.scalar(select(func.count()).select_from(AttentionRule)):
                return []
            rules = []
            for default in DEFAULT_RULES:
                name, kind, checked = check_rule(default["name"], default["kind"], default["params"])
                rules.append(AttentionRule(name=name, kind=kind, params_json=checked,
                                           enabled=default.get("enabled", True), created_at=now, updated_at=now))
            session.add_all(rules)
            session.flush()
            return [_rule_dict(r) for r in rules]
    except IntegrityError:  # another process created them at the same moment
        return []


# --- Surfacing traces -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """An enabled rule as read, usable after its session closed."""

    id: int
    name: str
    kind: str
    params_json: dict[str, Any]


def _enabled_rules(session: Session) -> list[_Rule]:
    return [_Rule(r.id, r.name, r.kind, dict(r.params_json or {})) for r in session.scalars(
        select(AttentionRule).where(AttentionRule.enabled.is_(True)).order_by(AttentionRule.id))]


_PERIOD_COLUMNS = {"duration_ms": Trace.duration_ms, "cost_usd": Trace.cost_usd}


def _period_values(session: Session, rules: Sequence[_Rule], where: Sequence[ColumnElement[bool]]) -> dict:
    """The period's figures the rules compare with, keyed (column, percentile): latency p95, cost median/p95."""
    wanted: dict[str, set[int]] = {}
    for rule in rules:
        if rule.kind == "latency_p95":
            wanted.setdefault("duration_ms", set()).add(95)
        elif rule.kind == "cost_outlier":
            wanted.setdefault("cost_usd", set()).add(COST_BASELINES[rule.params_json["baseline"]])
    found: dict[tuple[str, int], float | None] = {}
    if not wanted:
        return found
    columns = [_PERIOD_COLUMNS[key] for key in wanted]
    counts = session.execute(select(*[func.count(column) for column in columns]).where(*where)).one()
    for key, column, n in zip(wanted, columns, counts):
        values = _percentile_rows(session, column, [(0, where, int(n or 0))], sorted(wanted[key]))[0]
        for p, value in values.items():
            found[key, p] = value
    return found


def _score_test(params: Mapping[str, Any], bound: ColumnElement[bool], listed: bool) -> ColumnElement[bool]:
    """Traces with a matching score. For a large window (``listed``): ``id IN (the few traces such
    scores name)``, a list built once per statement from a pass over the scores, where a
    correlated ``EXISTS`` probes the scores index once per trace of the window (``+id`` on SQLite
    so the window's index range stays the driver); for a small one the probes cost less."""
    tests = [Score.name == params["score_name"], bound]
    if params["sources"]:
        tests.append(Score.source.in_(params["sources"]))
    if listed:
        return _not_a_driver(Trace.id).in_(select(Score.trace_id).where(Score.trace_id.is_not(None), *tests))
    return select(Score.id).where(Score.trace_id == Trace.id, *tests).exists()


def _cost_threshold(rule: _Rule, period: Mapping[tuple[str, int], float | None]) -> float | None:
    baseline = period.get(("cost_usd", COST_BASELINES[rule.params_json["baseline"]]))
    if not baseline or baseline <= 0:
        return None  # nothing costs anything: no outliers
    return rule.params_json["factor"] * baseline


def _rule_test(
    rule: _Rule, period: Mapping[tuple[str, int], float | None], listed: bool = False
) -> ColumnElement[bool]:
    params = rule.params_json or {}
    if rule.kind == "error":
        return or_(Trace.status == "error", Trace.error_count > 0)
    if rule.kind == "latency_above":
        return Trace.duration_ms > params["threshold_ms"]
    if rule.kind == "latency_p95":
        p95 = period.get(("duration_ms", 95))
        return Trace.duration_ms > p95 if p95 is not None else literal(False)
    if rule.kind == "negative_feedback":
        return _score_test(params, Score.value <= params["max_value"], listed)
    if rule.kind == "low_score":
        return _score_test(params, Score.value < params["below"], listed)
    threshold = _cost_threshold(rule, period)
    return Trace.cost_usd > threshold if threshold is not None else literal(False)


def _matching(session: Session, flt: TraceFilter) -> tuple[list[ColumnElement[bool]], list[_Rule], dict]:
    """(conditions selecting the surfaced traces, enabled rules, period figures); no rules -> ([], [], {})."""
    rules = _enabled_rules(session)
    if not rules:
        return [], [], {}
    flt = _resolved(session, flt)
    where = trace_conditions(flt)
    period = _period_values(session, rules, where)
    listed = any(r.kind in ("negative_feedback", "low_score") for r in rules) and window_share(session, flt) >= _LISTED
    return [*where, or_(*[_rule_test(rule, period, listed) for rule in rules])], rules, period


def attention_count(url: str, flt: TraceFilter) -> int:
    """How many traces of ``flt`` at least one enabled rule surfaces."""
    with read_session(url) as session:
        where, rules, _ = _matching(session, flt)
        if not rules:
            return 0
        return int(session.scalar(select(func.count()).select_from(Trace).where(*where)) or 0)


def attention_items(url: str, flt: TraceFilter, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """The traces of ``flt`` that enabled rules surface, newest first, one row a trace.

    Each row: ``{"trace_id", "name", "start_time", "user_id", "session_id", "duration_ms",
    "cost_usd", "status", "reasons", "rules"}``; ``reasons`` lists why the trace is here, one
    human-readable string per match (a rule matching several scores gives up to three), and
    ``rules`` the names of the rules that matched.
    """
    if limit < 0 or offset < 0:
        raise ConfigError("limit and offset cannot be negative.")
    with read_session(url) as session:
        where, rules, period = _matching(session, flt)
        if not rules or limit == 0:
            return []
        traces = session.execute(
            select(Trace.id, Trace.name, Trace.start_time, Trace.user_id, Trace.session_id, Trace.duration_ms,
                   Trace.cost_usd, Trace.status, Trace.error, Trace.error_count)
            .where(*where).order_by(Trace.start_time.desc(), Trace.id.desc()).limit(limit).offset(offset)
        ).all()
        ids = [t.id for t in traces]
        scores = _scores_for(session, rules, ids)
        span_errors = _span_errors(session, [t.id for t in traces
                                             if (t.status == "error" or t.error_count) and not t.error])
    items = []
    for trace in traces:
        reasons: list[str] = []
        matched: list[str] = []
        for rule in rules:
            found = _reasons(rule, trace, period, scores.get(trace.id, ()), span_errors.get(trace.id))
            if found:
                matched.append(rule.name)
                reasons.extend(r for r in found if r not in reasons)
        items.append({
            "trace_id": trace.id, "name": trace.name, "start_time": trace.start_time, "user_id": trace.user_id,
            "session_id": trace.session_id, "duration_ms": trace.duration_ms, "cost_usd": trace.cost_usd,
            "status": trace.status, "reasons": reasons, "rules": matched,
        })
    return items


def _scores_for(session: Session, rules: Sequence[_Rule], ids: Sequence[str]) -> dict[str, list[Any]]:
    names = {r.params_json["score_name"] for r in rules if r.kind in ("negative_feedback", "low_score")}
    if not names or not ids:
        return {}
    found: dict[str, list[Any]] = {}
    for score in session.execute(
        select(Score.trace_id, Score.name, Score.value, Score.label, Score.comment, Score.source, Score.author)
        .where(Score.trace_id.in_(ids), Score.name.in_(names), Score.value.is_not(None))
        .order_by(Score.created_at, Score.id)
    ):
        found.setdefault(score.trace_id, []).append(score)
    return found


def _span_errors(session: Session, ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """The first failed span (name, error) of each trace in ``ids``."""
    if not ids:
        return {}
    found: dict[str, tuple[str, str | None]] = {}
    for trace_id, name, error in session.execute(
        select(Span.trace_id, Span.name, Span.error).where(Span.trace_id.in_(ids), Span.status == "error")
        .order_by(Span.start_time, Span.id)
    ):
        found.setdefault(trace_id, (name, error))
    return found


def _reasons(
    rule: _Rule, trace: Any, period: Mapping[tuple[str, int], float | None],
    scores: Sequence[Any], span_error: tuple[str, str | None] | None,
) -> list[str]:
    """Why ``rule`` surfaces ``trace`` (empty when it does not); mirrors ``_rule_test``."""
    params = rule.params_json or {}
    duration, cost = trace.duration_ms, trace.cost_usd
    if rule.kind == "error":
        if trace.status == "error" and (trace.error or span_error is None):
            return [f"error: {_first_line(trace.error)}" if trace.error else "error"]
        if trace.status == "error" or trace.error_count:
            failed = f"{trace.error_count} failed span{'s' if trace.error_count != 1 else ''}"
            if span_error is not None:
                name, error = span_error
                return [f"error in span {name}: {_first_line(error)}" if error else f"{failed} ({name})"]
            return [failed]
        return []
    if rule.kind == "latency_above":
        threshold = params["threshold_ms"]
        return [f"latency {_duration(duration)} over {_duration(threshold)}"] if _above(duration, threshold) else []
    if rule.kind == "latency_p95":
        p95 = period.get(("duration_ms", 95))
        return [f"latency {_duration(duration)} above the period's p95 ({_duration(p95)})"] \
            if p95 is not None and _above(duration, p95) else []
    if rule.kind == "cost_outlier":
        threshold = _cost_threshold(rule, period)
        if threshold is None or not _above(cost, threshold):
            return []
        baseline = threshold / params["factor"]
        return [f"cost {_money(cost)}, {cost / baseline:.1f}x the period's {params['baseline']} ({_money(baseline)})"]
    reasons = []
    for score in scores:
        if score.name != params["score_name"] or (params["sources"] and score.source not in params["sources"]):
            continue
        if rule.kind == "negative_feedback" and score.value <= params["max_value"]:
            verdict = "down" if score.name == "thumbs" else f"{score.value:g}"
            reasons.append(f"{score.name} {verdict} from {_who(score)}" + _said(score))
        elif rule.kind == "low_score" and score.value < params["below"]:
            reasons.append(f"{score.name} {score.value:g} under {params['below']:g} from {_who(score)}" + _said(score))
    if len(reasons) > _MAX_REASONS_PER_RULE:
        extra = len(reasons) - _MAX_REASONS_PER_RULE
        reasons = [*reasons[:_MAX_REASONS_PER_RULE], f"and {extra} more {params['score_name']} score{'s' * (extra > 1)}"]
    return reasons


def _above(value: float | None, threshold: float) -> bool:
    return value is not None and value > threshold


def _who(score: Any) -> str:
    label = SOURCE_LABELS.get(score.source, score.source)
    if score.source == "human" and score.author:
        return f"{score.author}"
    return label


def _said(score: Any) -> str:
    text = score.comment or score.label
    return f": {_clip(text)!r}" if text else ""


def _first_line(text: str | None) -> str:
    return _clip((text or "").strip().splitlines()[0] if (text or "").strip() else "")


def _clip(text: str, length: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _duration(ms: float | None) -> str:
    if ms is None:
        return "unknown"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"
    return f"{seconds / 60:.1f}".rstrip("0").rstrip(".") + " min"


def _money(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 1 else f"${value:.3g}"
