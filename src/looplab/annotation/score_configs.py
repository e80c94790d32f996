"""Score configs: named ways to score a trace, and turning what a person entered into a score.

Four data types, each with a rubric (``description``, Markdown) that annotators and judges read:

- ``numeric``: a number, optionally bounded by ``min_value``/``max_value`` and on a grid of ``step``
  from ``min_value`` (or from 0);
- ``categorical``: one of at least two options, each ``{label, value}``; ``value`` is what charts
  average, and ``None`` for every option when the labels have no order (tone: friendly, curt...);
- ``boolean``: yes or no, stored as value 1 / 0 with label ``"true"`` / ``"false"``;
- ``text``: free text, stored as the score's comment (no value, no label).

Configs are archived, never deleted: scores point at them (``scores.config_id``) and keep their
name as text. A config that already has scores keeps its name and data type (create a new one
to change them); its range, options and rubric may change.

Writing scores: ``score_value`` checks one raw value against a config and gives the row's value and
label; ``score_fields`` adds the comment; ``scores_for_label`` builds the ``scores`` rows of one
person's label (used by annotation queues); ``record_manual_score`` scores a trace directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session, write_session
from looplab.store.models import SCORE_DATA_TYPES, Score, ScoreConfig, Trace
from looplab.store.types import utcnow
from looplab.tracing.ids import new_id

MAX_NAME_LENGTH = 100
MAX_LABEL_LENGTH = 255  # scores.label
BOOLEAN_LABELS = {True: "true", False: "false"}
_TRUE_WORDS = {"true", "yes", "y", "1", "pass", "thumbs up"}
_FALSE_WORDS = {"false", "no", "n", "0", "fail", "thumbs down"}


@dataclass(frozen=True)
class Category:
    """One option of a categorical config: its label and the number charts average (or ``None``)."""

    label: str
    value: float | None = None


@dataclass(frozen=True)
class ScoreConfigView:
    """A score config as services, pages and widgets read it (detached from any session)."""

    id: int | None
    name: str
    data_type: str  # numeric, categorical, boolean, text
    min_value: float | None = None
    max_value: float | None = None
    step: float | None = None
    categories: tuple[Category, ...] = ()
    description: str | None = None
    created_at: datetime | None = None
    archived_at: datetime | None = None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @property
    def labels(self) -> list[str]:
        """The categorical options' labels, in order."""
        return [c.label for c in self.categories]

    @property
    def ordered(self) -> bool:
        """A categorical config whose options carry values (so they can be averaged)."""
        return any(c.value is not None for c in self.categories)

    def category(self, label: str) -> Category | None:
        """The option with this label, or ``None``."""
        return next((c for c in self.categories if c.label == label), None)

    def summary(self) -> str:
        """A short description of what the config accepts, e.g. ``0 to 1, step 0.01``."""
        if self.data_type == "numeric":
            low = "-∞" if self.min_value is None else _number(self.min_value)
            high = "∞" if self.max_value is None else _number(self.max_value)
            step = f", step {_number(self.step)}" if self.step else ""
            return f"{low} to {high}{step}"
        if self.data_type == "categorical":
            return ", ".join(c.label if c.value is None else f"{c.label} ({_number(c.value)})"
                             for c in self.categories)
        if self.data_type == "boolean":
            return "true (1) or false (0)"
        return "free text"


ScoreConfigLike = Union[ScoreConfigView, ScoreConfig]


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def as_view(config: ScoreConfigLike) -> ScoreConfigView:
    """A ``ScoreConfigView`` of a view (returned as is) or of a ``ScoreConfig`` row."""
    if isinstance(config, ScoreConfigView):
        return config
    categories = tuple(
        Category(label=str(c.get("label")), value=None if c.get("value") is None else float(c["value"]))
        for c in (config.categories_json or []) if isinstance(c, Mapping)
    )
    return ScoreConfigView(
        id=config.id, name=config.name, data_type=config.data_type, min_value=config.min_value,
        max_value=config.max_value, step=config.step, categories=categories, description=config.description,
        created_at=config.created_at, archived_at=config.archived_at,
    )


# --- Validation -----------------------------------------------------------------------------------


def _finite(field: str, value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name}: {field} must be a number, not {value}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {field} must be a number; got {value!r}.") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name}: {field} must be a finite number; got {value!r}.")
    return number


def _categories(raw: Iterable[Any] | None, name: str) -> tuple[Category, ...]:
    options: list[Category] = []
    for i, item in enumerate(raw or [], start=1):
        if isinstance(item, Category):
            label, value = item.label, item.value
        elif isinstance(item, Mapping):
            label, value = item.get("label"), item.get("value")
        elif isinstance(item, str):
            label, value = item, None
        else:
            raise ConfigError(f"{name}: option {i} must have a label and optionally a value; got {item!r}.")
        label = "" if label is None else str(label).strip()
        if not label:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue  # an empty row of an options editor
            raise ConfigError(f"{name}: option {i} has a value but no label.")
        if len(label) > MAX_LABEL_LENGTH:
            raise ConfigError(f"{name}: the label of option {i} is longer than {MAX_LABEL_LENGTH} characters.")
        if isinstance(value, float) and math.isnan(value):
            value = None
        options.append(Category(label=label, value=_finite(f"the value of {label!r}", value, name)))
    if len(options) < 2:
        raise ConfigError(f"{name}: a categorical config needs at least two options; it has {len(options)}.")
    seen: set[str] = set()
    for option in options:
        if option.label.lower() in seen:
            raise ConfigError(f"{name}: the option {option.label!r} appears twice; labels must be unique.")
        seen.add(option.label.lower())
    with_values = sum(o.value is not None for o in options)
    if 0 < with_values < len(options):
        missing = ", ".join(o.label for o in options if o.value is None)
        raise ConfigError(f"{name}: give every option a value, or none (labels without an order); "
                          f"{missing} {'has' if len(options) - with_values == 1 else 'have'} none.")
    return tuple(options)


def validate_score_config(
    name: str,
    data_type: str,
    *,
    min_value: Any = None,
    max_value: Any = None,
    step: Any = None,
    categories: Iterable[Any] | None = None,
    description: str | None = None,
) -> ScoreConfigView:
    """A checked, normalised (not yet saved) config; raises ``ConfigError`` saying what is wrong.

    Numeric: bounds optional, ``min_value < max_value`` when both are given, ``step > 0`` when
    given. Categorical: at least two options with unique labels. Boolean: always 0 to 1, step 1.
    Text: no range nor options.
    """
    name = (name or "").strip()
    if not name:
        raise ConfigError("A score config needs a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"The name {name[:20]!r}... is longer than {MAX_NAME_LENGTH} characters.")
    if data_type not in SCORE_DATA_TYPES:
        raise ConfigError(f"{name}: unknown data type {data_type!r}; choose one of {', '.join(SCORE_DATA_TYPES)}.")
    rubric = (description or "").strip() or None
    low = high = grid = None
    options: tuple[Category, ...] = ()
    if data_type == "numeric":
        low, high = _finite("the minimum", min_value, name), _finite("the maximum", max_value, name)
        grid = _finite("the step", step, name)
        if low is not None and high is not None and not low < high:
            raise ConfigError(f"{name}: the minimum ({_number(low)}) must be less than the maximum ({_number(high)}).")
        if grid is not None and grid <= 0:
            raise ConfigError(f"{name}: the step must be greater than 0; got {_number(grid)}.")
        if grid is not None and low is not None and high is not None and grid > high - low:
            raise ConfigError(f"{name}: the step ({_number(grid)}) is larger than the range "
                              f"{_number(low)} to {_number(high)}.")
    elif data_type == "categorical":
        options = _categories(categories, name)
    elif data_type == "boolean":
        low, high, grid = 0.0, 1.0, 1.0
    return ScoreConfigView(id=None, name=name, data_type=data_type, min_value=low, max_value=high, step=grid,
                           categories=options, description=rubric)


def _columns(view: ScoreConfigView) -> dict[str, Any]:
    return {
        "name": view.name, "data_type": view.data_type, "min_value": view.min_value, "max_value": view.max_value,
        "step": view.step, "description": view.description,
        "categories_json": [{"label": c.label, "value": c.value} for c in view.categories] or None,
    }


# --- Reading and writing configs ------------------------------------------------------------------


def list_score_configs(url: str, include_archived: bool = False) -> list[ScoreConfigView]:
    """The score configs by name; archived ones only with ``include_archived``."""
    with read_session(url) as session:
        query = select(ScoreConfig).order_by(ScoreConfig.name)
        if not include_archived:
            query = query.where(ScoreConfig.archived_at.is_(None))
        return [as_view(c) for c in session.scalars(query)]


def _row(session: Session, config: int | str) -> ScoreConfig:
    if isinstance(config, int):
        row = session.get(ScoreConfig, config)
    else:
        row = session.scalar(select(ScoreConfig).where(ScoreConfig.name == config))
    if row is None:
        raise NotFound(f"There is no score config {config!r}.")
    return row


def get_score_config(url: str, config: int | str) -> ScoreConfigView:
    """One config by id or name, archived or not; raises ``NotFound``."""
    with read_session(url) as session:
        return as_view(_row(session, config))


def _name_taken(session: Session, name: str, other_than: int | None = None) -> None:
    query = select(ScoreConfig.name, ScoreConfig.archived_at).where(ScoreConfig.name == name)
    if other_than is not None:
        query = query.where(ScoreConfig.id != other_than)
    taken = session.execute(query).first()
    if taken is not None:
        where = " (archived: unarchive it instead)" if taken.archived_at is not None else ""
        raise ConfigError(f"There is already a score config named {name!r}{where}; choose another name.")


def create_score_config(
    url: str,
    name: str,
    data_type: str,
    *,
    min_value: Any = None,
    max_value: Any = None,
    step: Any = None,
    categories: Iterable[Any] | None = None,
    description: str | None = None,
) -> ScoreConfigView:
    """Create a config (see ``validate_score_config`` for the rules); raises ``ConfigError`` when it is
    invalid or its name is taken. Nothing is written then."""
    view = validate_score_config(name, data_type, min_value=min_value, max_value=max_value, step=step,
                                 categories=categories, description=description)
    try:
        with write_session(url) as session:
            _name_taken(session, view.name)
            row = ScoreConfig(**_columns(view), created_at=utcnow())
            session.add(row)
            session.flush()
            return as_view(row)
    except IntegrityError:  # created by someone else between the check and the insert
        raise ConfigError(f"There is already a score config named {view.name!r}; choose another name.") from None


_KEEP: Any = object()


def update_score_config(
    url: str,
    config_id: int,
    *,
    name: str = _KEEP,
    data_type: str = _KEEP,
    min_value: Any = _KEEP,
    max_value: Any = _KEEP,
    step: Any = _KEEP,
    categories: Iterable[Any] | None = _KEEP,
    description: str | None = _KEEP,
) -> ScoreConfigView:
    """Change a config; arguments left out keep their current value. Raises ``NotFound``, and
    ``ConfigError`` for an invalid result or for a new name or data type of a config that already
    has scores. Nothing is written then."""
    try:
        with write_session(url) as session:
            row = _row(session, config_id)
            current = as_view(row)

            def pick(given: Any, now: Any) -> Any:
                return now if given is _KEEP else given

            view = validate_score_config(
                pick(name, current.name), pick(data_type, current.data_type),
                min_value=pick(min_value, current.min_value), max_value=pick(max_value, current.max_value),
                step=pick(step, current.step), categories=pick(categories, current.categories),
                description=pick(description, current.description),
            )
            if (view.name, view.data_type) != (current.name, current.data_type):
                used = session.scalar(select(exists().where(Score.config_id == row.id)))
                if used:
                    change = "name" if view.name != current.name else "data type"
                    raise ConfigError(f"{current.name} already has scores, so its {change} cannot change "
                                      "(their history would mix); create a new config instead.")
                if view.name != current.name:
                    _name_taken(session, view.name, other_than=row.id)
            for column, value in _columns(view).items():
                setattr(row, column, value)
            session.flush()
            return as_view(row)
    except IntegrityError:
        raise ConfigError(f"There is already a score config named {name!r}; choose another name.") from None


def archive_score_config(url: str, config_id: int) -> None:
    """Archive a config: hidden from new labels, kept for existing scores and charts."""
    with write_session(url) as session:
        row = _row(session, config_id)
        if row.archived_at is None:
            row.archived_at = utcnow()


def unarchive_score_config(url: str, config_id: int) -> None:
    """Bring an archived config back."""
    with write_session(url) as session:
        _row(session, config_id).archived_at = None


# --- From what a person entered to a score --------------------------------------------------------


def _empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def score_value(config: ScoreConfigLike, raw: Any) -> tuple[float | None, str | None]:
    """The ``(value, label)`` of a scores row for ``raw`` (what a person entered) under ``config``.

    numeric: the number, in range and on the step grid -> ``(number, None)``; categorical: one of
    the labels -> ``(its value or None, label)``; boolean: ``True``/``False`` (or 1/0, "yes"/"no")
    -> ``(1.0, "true")`` / ``(0.0, "false")``; text: non-empty text -> ``(None, None)``, the text
    being the score's comment (see ``score_fields``). Raises ``ConfigError`` naming the config for
    anything it does not accept, including no value at all.
    """
    view = as_view(config)
    name = view.name
    if _empty(raw):
        raise ConfigError(f"{name}: no value given.")
    if view.data_type == "numeric":
        if isinstance(raw, bool):
            raise ConfigError(f"{name}: give a number, not {raw}.")
        try:
            number = float(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: {raw!r} is not a number.") from None
        if not math.isfinite(number):
            raise ConfigError(f"{name}: {raw!r} is not a finite number.")
        low, high = view.min_value, view.max_value
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = (f"between {_number(low)} and {_number(high)}" if low is not None and high is not None
                      else f"at least {_number(low)}" if low is not None else f"at most {_number(high)}")
            raise ConfigError(f"{name} must be {bounds}; got {_number(number)}.")
        if view.step:
            base = low if low is not None else 0.0
            steps = (number - base) / view.step
            if abs(steps - round(steps)) > 1e-6:
                raise ConfigError(f"{name} goes in steps of {_number(view.step)} from {_number(base)}; "
                                  f"got {_number(number)}.")
            number = round(base + round(steps) * view.step, 12)
        return number, None
    if view.data_type == "categorical":
        label = str(raw).strip()
        option = view.category(label) or next(
            (c for c in view.categories if c.label.lower() == label.lower()), None)
        if option is None:
            raise ConfigError(f"{name} must be one of {', '.join(view.labels)}; got {label!r}.")
        return option.value, option.label
    if view.data_type == "boolean":
        if isinstance(raw, bool):
            flag = raw
        elif isinstance(raw, (int, float)) and raw in (0, 1):
            flag = bool(raw)
        elif isinstance(raw, str) and raw.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            flag = raw.strip().lower() in _TRUE_WORDS
        else:
            raise ConfigError(f"{name} is yes or no (true/false, 1/0); got {raw!r}.")
        return (1.0 if flag else 0.0), BOOLEAN_LABELS[flag]
    if not isinstance(raw, str):
        raise ConfigError(f"{name} is free text; got {raw!r}.")
    return None, None


@dataclass(frozen=True)
class ScoreFields:
    """What a scores row records for one raw value: its value, label and comment."""

    value: float | None
    label: str | None
    comment: str | None


def score_fields(config: ScoreConfigLike, raw: Any, comment: str | None = None) -> ScoreFields:
    """``score_value`` plus the comment: for a text config the text itself (then ``comment`` after
    a blank line, if any), otherwise ``comment``. Raises ``ConfigError`` like ``score_value``."""
    view = as_view(config)
    value, label = score_value(view, raw)
    note = (comment or "").strip() or None
    if view.data_type == "text":
        text = str(raw).strip()
        note = f"{text}\n\n{note}" if note else text
    return ScoreFields(value=value, label=label, comment=note)


def scores_for_label(
    configs: Sequence[ScoreConfigLike],
    values: Mapping[str, Any],
    *,
    trace_id: str,
    author: str,
    comment: str | None = None,
    created_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    span_id: str | None = None,
) -> list[Score]:
    """The ``scores`` rows (source ``human``, not yet added to a session) for one person's label:
    one per config in ``values`` (by config name) whose value is given. Every value is checked
    first; raises ``ConfigError`` for an unknown config name or a value a config rejects, so
    nothing is half-written."""
    by_name = {c.name: as_view(c) for c in configs}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ConfigError(f"No score config named {', '.join(unknown)} here.")
    moment = created_at or utcnow()
    rows: list[Score] = []
    for name, raw in values.items():
        if _empty(raw):
            continue
        view = by_name[name]
        fields = score_fields(view, raw, None if view.data_type == "text" else comment)
        rows.append(Score(
            id=new_id(), trace_id=trace_id, span_id=span_id, name=view.name, value=fields.value,
            label=fields.label, comment=fields.comment, source="human", author=author, config_id=view.id,
            created_at=moment, metadata_json=metadata,
        ))
    return rows


def record_manual_score(
    url: str,
    trace_id: str,
    config: ScoreConfigLike | int | str,
    raw_value: Any,
    author: str,
    comment: str | None = None,
    *,
    span_id: str | None = None,
) -> str:
    """Score a trace (or one of its spans) by hand with one config; returns the score's id.

    ``config`` is a config, its id or its name; it is read again so the current version is used.
    ``author`` is the viewer's username. Raises ``NotFound`` for an unknown trace or config, and
    ``ConfigError`` for an archived config or a value it does not accept.
    """
    if not author or not str(author).strip():
        raise ConfigError("A score made by a person needs its author.")
    key: int | str
    if isinstance(config, (int, str)):
        key = config
    else:
        view = as_view(config)
        key = view.id if view.id is not None else view.name
    with write_session(url) as session:
        row = _row(session, key)
        if row.archived_at is not None:
            raise ConfigError(f"{row.name} is archived; unarchive it on the Score configs page to score with it.")
        if session.get(Trace, trace_id) is None:
            raise NotFound(f"There is no trace {trace_id!r}.")
        if _empty(raw_value):
            raise ConfigError(f"{row.name}: no value given.")
        (score,) = scores_for_label([row], {row.name: raw_value}, trace_id=trace_id, author=str(author).strip(),
                                    comment=comment, span_id=span_id)
        session.add(score)
        return score.id
