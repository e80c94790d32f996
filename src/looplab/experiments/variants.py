"""Variants: the one thing an experiment changes.

A variant is either a **prompt** (system prompt, a Jinja2 user template rendered with the dataset
item's ``input``, a model and its params) or a **code task** (``module:function`` called as
``function(input, params)``, e.g. a retrieval strategy and its ``top_k``).

Variants are saved and versioned by name: saving the same name with a changed configuration adds
a version, saving it unchanged returns the version already stored. What is versioned is what
decides the output (kind, model, system, prompt or task, params); the evaluators named in a
variant file belong to the experiment, not to the variant.

A variant file (YAML) for ``looplab experiment run``::

    name: support-answer
    model: openai:gpt-4o-mini
    params: {temperature: 0.2}
    system: You answer customer questions in two sentences.
    prompt: "{{ input.question }}"        # or: task: mypkg.rag:answer
    evaluators: [exact-match, {name: polite, kind: llm_judge, ...}]

Templates see the item's ``input`` (and its ``expected`` output and ``metadata``, for offline mock
models that answer from a reference). They run in Jinja2's sandbox with ``StrictUndefined``: a template naming a field the item
does not have fails with a message naming the field and the item, never with an empty string.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from looplab.errors import ConfigError, NotFound
from looplab.store.engine import read_session, write_session
from looplab.store.models import Variant
from looplab.store.types import utcnow

FILE_KEYS = ("name", "model", "params", "system", "prompt", "task", "evaluators", "description")
_TASK_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplateError(ConfigError):
    """A template that cannot be parsed, or that names a field a dataset item lacks."""


@dataclass(frozen=True)
class VariantSpec:
    """A variant as written in a file or a form, before it is saved.

    ``evaluators`` (names of saved evaluators, or inline definitions) travel with the spec from a
    variant file to ``create_experiment``; they are not part of the variant's versioned config.
    """

    name: str
    kind: str  # "prompt" | "code"
    model: str | None = None
    system: str | None = None
    prompt: str | None = None
    task: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    evaluators: tuple[Any, ...] = ()
    description: str | None = None

    def __post_init__(self) -> None:
        check_spec(self)

    @property
    def config(self) -> dict[str, Any]:
        """What is versioned: everything that decides the output, and nothing else."""
        config: dict[str, Any] = {"kind": self.kind}
        for key in ("model", "system", "prompt", "task"):
            value = getattr(self, key)
            if value is not None:
                config[key] = value
        config["params"] = dict(self.params)
        return _json_normal(config)

    @classmethod
    def from_config(cls, name: str, config: Mapping[str, Any]) -> VariantSpec:
        return cls(name=name, kind=config.get("kind", "prompt"), model=config.get("model"),
                   system=config.get("system"), prompt=config.get("prompt"), task=config.get("task"),
                   params=dict(config.get("params") or {}))


@dataclass(frozen=True)
class SavedVariant:
    """One stored version of a variant."""

    id: int
    name: str
    version: int
    kind: str
    config: dict[str, Any]
    created_by: str | None
    created_at: datetime
    created: bool = False  # this save added the version (False: an identical one existed)

    @property
    def spec(self) -> VariantSpec:
        return VariantSpec.from_config(self.name, self.config)


def _json_normal(value: Any) -> Any:
    """``value`` as it reads back from a JSON column (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"A variant's configuration must be JSON data (text, numbers, lists, objects): {err}.") from None


def check_spec(spec: VariantSpec) -> None:
    """``ConfigError`` saying what is wrong with ``spec``; templates are parsed here, tasks are not imported."""
    where = f"Variant {spec.name!r}" if spec.name else "The variant"
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise ConfigError("A variant needs a name.")
    if spec.kind not in ("prompt", "code"):
        raise ConfigError(f"{where}: kind must be prompt or code, not {spec.kind!r}.")
    if not isinstance(spec.params, dict):
        raise ConfigError(f"{where}: params must be a mapping (key: value), not {type(spec.params).__name__}.")
    if spec.kind == "prompt":
        if spec.task is not None:
            raise ConfigError(f"{where}: give either prompt (a template) or task (module:function), not both.")
        if not isinstance(spec.prompt, str) or not spec.prompt.strip():
            raise ConfigError(f"{where}: a prompt variant needs a prompt (the user message template).")
        if not isinstance(spec.model, str) or ":" not in spec.model:
            raise ConfigError(f"{where}: a prompt variant needs a model such as openai:gpt-4o-mini, "
                              f"anthropic:claude-3-5-haiku-latest or mock:support (got {spec.model!r}).")
        parse_template(spec.prompt, f"{where}, prompt")
        if spec.system is not None:
            if not isinstance(spec.system, str):
                raise ConfigError(f"{where}: system must be text.")
            parse_template(spec.system, f"{where}, system")
    else:
        if spec.prompt is not None or spec.system is not None:
            raise ConfigError(f"{where}: a code task takes no prompt or system; put what it needs in params.")
        if not isinstance(spec.task, str) or not _TASK_PATTERN.match(spec.task):
            raise ConfigError(f"{where}: task must be module:function, e.g. mypkg.rag:answer (got {spec.task!r}).")
        if spec.model is not None and not isinstance(spec.model, str):
            raise ConfigError(f"{where}: model must be text.")


# --- Files ----------------------------------------------------------------------------------------


def load_variant_file(path: str | Path) -> VariantSpec:
    """Read a variant file (YAML); ``ConfigError`` naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"Cannot read the variant file {path}: {err.strerror or err}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"The variant file {path} is not UTF-8 text.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"The variant file {path} is not valid YAML{at}: {getattr(err, 'problem', None) or err}.") from None
    try:
        return variant_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def variant_from_dict(data: Any) -> VariantSpec:
    """A ``VariantSpec`` from a variant file's content (a mapping with the keys in ``FILE_KEYS``)."""
    if not isinstance(data, dict):
        raise ConfigError("A variant file holds a mapping with name, model, params, system, prompt or task, "
                          "and evaluators.")
    unknown = sorted(set(map(str, data)) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"Unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                          f"a variant file may hold {', '.join(FILE_KEYS)}.")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("A variant file needs a name.")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"params must be a mapping (key: value), not {type(params).__name__}.")
    evaluators = data.get("evaluators") or []
    if isinstance(evaluators, (str, dict)):
        evaluators = [evaluators]
    if not isinstance(evaluators, list) or not all(isinstance(e, (str, dict)) for e in evaluators):
        raise ConfigError("evaluators must be a list of evaluator names or definitions (mappings).")
    if "prompt" in data and "task" in data:
        raise ConfigError("Give either prompt (a template) or task (module:function), not both.")
    if "prompt" not in data and "task" not in data:
        raise ConfigError("A variant needs a prompt (a Jinja2 template of the user message) or a task "
                          "(module:function).")
    return VariantSpec(
        name=name.strip(), kind="code" if "task" in data else "prompt", model=data.get("model"),
        system=data.get("system"), prompt=data.get("prompt"), task=data.get("task"), params=params,
        evaluators=tuple(evaluators), description=data.get("description"),
    )


# --- Templates and tasks --------------------------------------------------------------------------


def parse_template(source: str, where: str) -> Any:
    try:
        return _compiled(source)
    except TemplateSyntaxError as err:
        raise TemplateError(f"{where}: the template does not parse (line {err.lineno}): {err.message}.") from None


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Any:
    """Compiling a template costs about a millisecond: once per template, not once per item."""
    return _ENV.from_string(source)


def _missing_field(err: UndefinedError) -> str:
    message = str(err)
    for pattern in (r"has no attribute '([^']+)'", r"has no element ([^ ]+)", r"'([^']+)' is undefined"):
        found = re.search(pattern, message)
        if found:
            return found.group(1)
    return message


def _fields(value: Any) -> str:
    if isinstance(value, dict):
        return f"its input has {', '.join(map(str, value)) or 'no fields'}"
    return f"its input is {type(value).__name__}, not an object"


def render(source: str, input: Any, *, expected: Any = None, metadata: Mapping[str, Any] | None = None,
           item_id: str | None = None, where: str = "The template") -> str:
    """Render a template in the sandbox with the item's ``input``, ``expected`` output and ``metadata``.

    ``expected`` is there for offline ``mock:`` models, which answer with the reference answer a
    prompt shows them; a real prompt has no business showing the model the answer.
    A field the item lacks raises ``TemplateError`` naming the field and the item.
    """
    template = parse_template(source, where)
    try:
        return str(template.render(input=input, expected=expected, metadata=dict(metadata or {})))
    except UndefinedError as err:
        item = f"dataset item {item_id}" if item_id else "the dataset item"
        raise TemplateError(f"{where} uses {_missing_field(err)!r}, which {item} does not have "
                            f"({_fields(input)}).") from None
    except Exception as err:  # the sandbox refusing something, a filter failing on this input, ...
        item = f"dataset item {item_id}" if item_id else "the dataset item"
        raise TemplateError(f"{where} cannot be rendered for {item}: {err}.") from None


def render_messages(spec: VariantSpec, input: Any, *, expected: Any = None, metadata: Mapping[str, Any] | None = None,
                    item_id: str | None = None) -> list[dict[str, str]]:
    """The chat messages a prompt variant sends for one item: system (if any), then user."""
    assert spec.prompt is not None
    context = {"expected": expected, "metadata": metadata, "item_id": item_id}
    messages = []
    if spec.system:
        messages.append({"role": "system", "content": render(spec.system, input, **context,
                                                             where=f"The system prompt of {spec.name!r}")})
    messages.append({"role": "user", "content": render(spec.prompt, input, **context,
                                                       where=f"The prompt of {spec.name!r}")})
    return messages


def resolve_task(task: str) -> Callable[[Any, dict[str, Any]], Any]:
    """Import ``module:function``; ``ConfigError`` when it cannot be found or called."""
    if not _TASK_PATTERN.match(task or ""):
        raise ConfigError(f"task must be module:function, e.g. mypkg.rag:answer (got {task!r}).")
    module_name, _, function_name = task.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"Cannot import {module_name!r} for the task {task}: {err}.") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"The module {module_name!r} has no function {function_name!r} (task {task}).")
    return function  # type: ignore[no-any-return]


# --- Saved, versioned variants --------------------------------------------------------------------


def _saved(row: Variant, created: bool = False) -> SavedVariant:
    return SavedVariant(id=row.id, name=row.name, version=row.version, kind=row.kind, config=dict(row.config_json),
                        created_by=row.created_by, created_at=row.created_at, created=created)


def save_variant(url: str, spec: VariantSpec, *, created_by: str | None = None) -> SavedVariant:
    """Store ``spec``: a new version when its config differs from the newest one of that name,
    else the newest one as it is (``created`` tells which)."""
    config = spec.config
    for attempt in range(3):
        try:
            with write_session(url) as session:
                newest = session.scalar(select(Variant).where(Variant.name == spec.name)
                                        .order_by(Variant.version.desc()).limit(1))
                if newest is not None and newest.config_json == config:
                    return _saved(newest)
                row = Variant(name=spec.name, version=(newest.version + 1) if newest else 1, kind=spec.kind,
                              config_json=config, created_by=created_by, created_at=utcnow())
                session.add(row)
                session.flush()
                return _saved(row, created=True)
        except IntegrityError:  # another process saved a version of this name at the same moment
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def get_variant(url: str, name: str, version: int | None = None) -> SavedVariant:
    """The variant ``name`` at ``version`` (``None``: the newest); ``NotFound`` otherwise."""
    with read_session(url) as session:
        query = select(Variant).where(Variant.name == name)
        query = query.where(Variant.version == version) if version is not None else query.order_by(
            Variant.version.desc()).limit(1)
        row = session.scalar(query)
        if row is None:
            what = f"variant {name!r}" + (f" version {version}" if version is not None else "")
            raise NotFound(f"There is no {what}.")
        return _saved(row)


def get_variant_by_id(url: str, variant_id: int) -> SavedVariant:
    with read_session(url) as session:
        row = session.get(Variant, variant_id)
        if row is None:
            raise NotFound(f"There is no variant with id {variant_id}.")
        return _saved(row)


def list_variants(url: str) -> list[SavedVariant]:
    """The newest version of every variant, by name."""
    with read_session(url) as session:
        newest = (select(Variant.name, func.max(Variant.version).label("version"))
                  .group_by(Variant.name).subquery())
        rows = session.scalars(select(Variant).join(newest, (Variant.name == newest.c.name)
                                                    & (Variant.version == newest.c.version))
                               .order_by(Variant.name))
        return [_saved(r) for r in rows]


def variant_versions(url: str, name: str) -> list[SavedVariant]:
    """Every version of ``name``, oldest first."""
    with read_session(url) as session:
        return [_saved(r) for r in session.scalars(select(Variant).where(Variant.name == name)
                                                   .order_by(Variant.version))]


# --- Change one variable --------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str  # "model", "system", "prompt", "task", "kind", "params.<key>", "dataset version"
    before: Any
    after: Any


@dataclass(frozen=True)
class VariantDiff:
    """What differs between two runs' setups. ``fields`` lists the changed fields; ``warning`` is
    set when more than one thing changed, since the comparison can then not say which one mattered."""

    changes: list[FieldChange]

    @property
    def fields(self) -> list[str]:
        return [c.field for c in self.changes]

    @property
    def warning(self) -> str | None:
        if len(self.changes) <= 1:
            return None
        return (f"{len(self.changes)} things changed ({', '.join(self.fields)}): change one variable at a time to "
                "know which one made the difference.")


def _as_config(variant: VariantSpec | SavedVariant | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(variant, VariantSpec):
        return variant.config
    if isinstance(variant, SavedVariant):
        return variant.config
    config = dict(variant)
    if "config" in config and isinstance(config["config"], dict):  # an experiment's variant_json
        config = dict(config["config"])
    return config


_UNSET = object()


def diff_variants(a: VariantSpec | SavedVariant | Mapping[str, Any], b: VariantSpec | SavedVariant | Mapping[str, Any],
                  dataset_version_a: datetime | None = None, dataset_version_b: datetime | None = None) -> VariantDiff:
    """The fields that differ from ``a`` (the baseline) to ``b`` (the candidate): kind, model,
    system, prompt, task, each param (``params.<key>``), and the dataset version when both are given."""
    ca, cb = _as_config(a), _as_config(b)
    changes = []
    for key in ("kind", "model", "system", "prompt", "task"):
        if ca.get(key) != cb.get(key):
            changes.append(FieldChange(key, ca.get(key), cb.get(key)))
    pa, pb = ca.get("params") or {}, cb.get("params") or {}
    for key in sorted(set(pa) | set(pb), key=str):
        before, after = pa.get(key, _UNSET), pb.get(key, _UNSET)
        if before != after:
            changes.append(FieldChange(f"params.{key}", None if before is _UNSET else before,
                                       None if after is _UNSET else after))
    if dataset_version_a is not None and dataset_version_b is not None and dataset_version_a != dataset_version_b:
        changes.append(FieldChange("dataset version", dataset_version_a, dataset_version_b))
    return VariantDiff(changes)
