"""Building evaluators from specs, saving them (versioned) in the ``evaluators`` table, and turning
their results into ``scores`` rows.

A spec is a check's name (``"exact_match"``) or a dict with a ``type``: one of the code checks
(``looplab.evaluation.checks``) or ``judge`` (``looplab.evaluation.judges``; ``llm_judge`` is
accepted too). Any spec may say ``higher_is_better: false`` (see ``higher_is_better``). Saving a
spec under a name keeps its version when the config is the same and adds version + 1 when it
changed; old versions stay, so scores keep pointing at what produced them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from looplab.errors import ConfigError, NotFound
from looplab.evaluation.base import EvalResult, Evaluator
from looplab.evaluation.checks import CHECK_TYPES, build_check
from looplab.evaluation.judges import build_judge
from looplab.store.engine import read_session, write_session
from looplab.store.models import Evaluator as EvaluatorRow
from looplab.store.models import Score
from looplab.store.types import utcnow
from looplab.tracing.ids import new_id

EVALUATOR_TYPES = (*CHECK_TYPES, "judge")
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class EvaluatorInfo:
    """A saved evaluator version as pages and services read it."""

    id: int
    name: str
    version: int
    kind: str  # code | llm_judge
    config: dict[str, Any]
    score_config_id: int | None
    created_at: datetime
    archived_at: datetime | None = None

    @property
    def type(self) -> str:
        return str(self.config.get("type"))

    def summary(self) -> str:
        """The config in one line, without its type and name: ``template=correctness, model=mock:judge``."""
        shown = {k: v for k, v in self.config.items() if k not in ("type", "name")}
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}"
                         for k, v in shown.items())


def normalize_spec(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """The spec as a dict with a canonical ``type``; ``ConfigError`` when it is neither a name nor a dict."""
    if isinstance(spec, str):
        spec = {"type": spec.strip()}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"An evaluator spec is a check's name or an object with a type; got {type(spec).__name__}.")
    spec = dict(spec)
    kind = spec.get("type")
    if kind == "llm_judge":
        kind = spec["type"] = "judge"
    if kind not in EVALUATOR_TYPES:
        raise ConfigError(f"Unknown evaluator type {kind!r}; choose one of {', '.join(EVALUATOR_TYPES)}.")
    if not isinstance(spec.get("higher_is_better", True), bool):
        raise ConfigError(f"higher_is_better is true or false; got {spec['higher_is_better']!r}.")
    return spec


def higher_is_better(config: Mapping[str, Any] | None) -> bool:
    """Whether a higher score of this evaluator is the better one (the default). Set
    ``higher_is_better: false`` for scores where less is better: a hallucination rate, a length,
    an error count; comparisons and ship gates then read a drop as an improvement."""
    return bool((config or {}).get("higher_is_better", True))


def kind_of(spec: Mapping[str, Any]) -> str:
    return "llm_judge" if spec.get("type") == "judge" else "code"


def build_evaluator(spec: str | Mapping[str, Any], *, url: str | None = None, score_config: Any = None) -> Evaluator:
    """An evaluator from its spec; raises ``ConfigError`` saying what is wrong.

    ``"exact_match"``, ``{"type": "contains", "values": [...]}``, ``{"type": "custom", "function":
    "pkg.mod:fn"}``, ``{"type": "judge", "template": "correctness", "model": "mock:judge"}``... A
    rubric judge names its score config (``"score_config": "tone"``): give ``url`` to read it from the
    database, or pass the ``ScoreConfigView`` as ``score_config`` (an inline dict in the spec works too).
    """
    spec = normalize_spec(spec)
    if spec["type"] != "judge":
        return build_check(spec["type"], spec)
    if spec.get("template") == "rubric" and score_config is None:
        score_config = _resolve_score_config(spec.get("score_config"), url)
    return build_judge(spec, score_config)


def _resolve_score_config(ref: Any, url: str | None) -> Any:
    from looplab.annotation.score_configs import get_score_config, validate_score_config

    if ref in (None, ""):
        raise ConfigError("judge: the rubric template needs a score config (score_config: its name).")
    if isinstance(ref, Mapping):
        fields = dict(ref)
        return validate_score_config(fields.pop("name", ""), fields.pop("data_type", ""), **fields)
    if url is None:
        raise ConfigError(f"judge: the score config {ref!r} is read from a database; none was given.")
    try:
        return get_score_config(url, ref)
    except NotFound:
        raise ConfigError(f"judge: there is no score config {ref!r}.") from None


def _info(row: EvaluatorRow) -> EvaluatorInfo:
    return EvaluatorInfo(id=row.id, name=row.name, version=row.version, kind=row.kind, config=dict(row.config_json),
                         score_config_id=row.score_config_id, created_at=row.created_at, archived_at=row.archived_at)


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, ensure_ascii=False, default=str)


def save_evaluator(url: str, name: str, spec: str | Mapping[str, Any]) -> EvaluatorInfo:
    """Save ``spec`` as evaluator ``name``: the same config as its latest version returns that
    version; a changed one adds version + 1 (and unarchives the name). Checks the spec first by
    building it; raises ``ConfigError`` then, and nothing is written."""
    name = (name or "").strip()
    if not name:
        raise ConfigError("An evaluator needs a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"The name {name[:20]!r}... is longer than {MAX_NAME_LENGTH} characters.")
    config = normalize_spec(spec)
    config.pop("name", None)
    evaluator = build_evaluator({**config, "name": name}, url=url)
    score_config_id = getattr(evaluator, "config_id", None)
    if config.get("template") == "rubric" and score_config_id is not None:
        config["score_config"] = getattr(evaluator, "config").name  # stored by name, linked by id
    for attempt in range(3):
        try:
            with write_session(url) as session:
                latest = session.scalars(select(EvaluatorRow).where(EvaluatorRow.name == name)
                                         .order_by(EvaluatorRow.version.desc()).limit(1)).first()
                if latest is not None and _canonical(latest.config_json) == _canonical(config):
                    latest.archived_at = None
                    session.flush()
                    return _info(latest)
                row = EvaluatorRow(name=name, version=(latest.version + 1) if latest else 1, kind=kind_of(config),
                                   config_json=config, score_config_id=score_config_id, created_at=utcnow())
                session.add(row)
                session.flush()
                return _info(row)
        except IntegrityError:  # someone saved the same name at the same moment: read again
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def list_evaluators(url: str, include_archived: bool = False, all_versions: bool = False) -> list[EvaluatorInfo]:
    """The evaluators by name, each at its latest version (every version with ``all_versions``)."""
    with read_session(url) as session:
        query = select(EvaluatorRow)
        if not all_versions:
            newest = (select(EvaluatorRow.name, func.max(EvaluatorRow.version).label("v"))
                      .group_by(EvaluatorRow.name).subquery())
            query = query.join(newest, (newest.c.name == EvaluatorRow.name) & (newest.c.v == EvaluatorRow.version))
        if not include_archived:
            query = query.where(EvaluatorRow.archived_at.is_(None))
        return [_info(r) for r in session.scalars(query.order_by(EvaluatorRow.name, EvaluatorRow.version))]


def get_evaluator_info(url: str, name: str, version: int | None = None) -> EvaluatorInfo:
    """One saved evaluator (its latest version unless ``version``); raises ``NotFound``."""
    with read_session(url) as session:
        query = select(EvaluatorRow).where(EvaluatorRow.name == name)
        if version is not None:
            query = query.where(EvaluatorRow.version == int(version))
        row = session.scalars(query.order_by(EvaluatorRow.version.desc()).limit(1)).first()
        if row is None:
            which = f" version {version}" if version is not None else ""
            raise NotFound(f"There is no evaluator {name!r}{which}.")
        return _info(row)


def get_evaluator(url: str, name: str, version: int | None = None) -> tuple[EvaluatorInfo, Evaluator]:
    """A saved evaluator (latest version unless ``version``), built and ready to evaluate.
    Raises ``NotFound``, or ``ConfigError`` when it can no longer be built (a custom function
    that moved, a score config that is gone)."""
    info = get_evaluator_info(url, name, version)
    return info, build_evaluator({**info.config, "name": info.name}, url=url)


def archive_evaluator(url: str, name: str) -> None:
    """Hide every version of ``name`` from lists; its scores stay."""
    with write_session(url) as session:
        rows = session.scalars(select(EvaluatorRow).where(EvaluatorRow.name == name)).all()
        if not rows:
            raise NotFound(f"There is no evaluator {name!r}.")
        now = utcnow()
        for row in rows:
            row.archived_at = row.archived_at or now


def score_rows(result: EvalResult, *, trace_id: str | None = None, experiment_item_id: int | None = None,
               evaluator_id: int | None = None, span_id: str | None = None,
               created_at: datetime | None = None) -> list[Score]:
    """The ``scores`` rows (not yet added to a session) recording ``result`` on a trace or an
    experiment item: source ``llm_judge`` for judges (``metadata["kind"]``), ``code`` otherwise; ``evaluator_version`` is the result's version; the reasoning is the comment.

    A result with an ``error`` is recorded too (no value nor label, the error as comment and in
    ``metadata["error"]``), so it is not evaluated again, except when the judge's provider failed
    (``metadata["provider_error"]``): that one is worth trying again later, and gives no rows.
    """
    if trace_id is None and experiment_item_id is None:
        raise ValueError("a score belongs to a trace or an experiment item: give trace_id or experiment_item_id")
    meta = dict(result.metadata or {})
    if result.error and meta.get("provider_error"):
        return []
    source = "llm_judge" if meta.get("kind") == "llm_judge" else "code"
    meta.update({"evaluator": result.evaluator})
    for key in ("input_tokens", "output_tokens", "cost_usd", "passed"):
        if getattr(result, key) is not None:
            meta[key] = getattr(result, key)
    comment = result.reasoning
    if result.error:
        meta["error"] = result.error
        comment = f"Evaluator error: {result.error}"
    label = result.label
    if label is None and result.passed is not None and result.value is None:
        label = "pass" if result.passed else "fail"
    return [Score(
        id=new_id(), trace_id=trace_id, span_id=span_id, experiment_item_id=experiment_item_id, name=result.name[:255],
        value=None if result.error else result.value, label=None if result.error else (label[:255] if label else None),
        comment=comment, source=source, author=result.evaluator[:255], config_id=result.config_id,
        evaluator_id=evaluator_id, evaluator_version=result.version[:64], created_at=created_at or utcnow(),
        metadata_json=meta,
    )]
