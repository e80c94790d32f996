"""The sample data: two weeks of a customer-support assistant in production, ending now.

``seed(url)`` loads ``sample_data/`` (made by ``sample_data/generate.py``) into a database: the
score configs the sample's scores use, then about 2,000 traces with their spans and scores, and
the golden dataset of the support assistant (``datasets/support-golden.jsonl``, created only when
no dataset of that name exists).

The file's history ends at a fixed reference time; seeding moves it so that it ends at ``now``.
Every ISO 8601 date in the file moves by the same offset, payloads included (an order's
``placed_at`` in a tool result, the date in a system prompt), so a trace from yesterday talks
about yesterday's orders. The file is rewritten as text, before it is parsed: one regular
expression finds the dates wherever they are, and nothing has to know the payloads' shapes.

Trace ids are fixed in the file, so seeding again adds nothing. If a database holds part of the
sample (an interrupted seed), the rest is added on the same timeline as the part already there.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy import insert, select

from looplab.datasets.files import import_file
from looplab.errors import ConfigError
from looplab.store.engine import read_session, write_session
from looplab.store.ingest import CHUNK, insert_traces
from looplab.store.filters import TraceFilter
from looplab.store.models import (
    SCORE_DATA_TYPES,
    AnnotationQueue,
    Dataset,
    Experiment,
    Score,
    ScoreConfig,
    Trace,
)
from looplab.store.types import utcnow

# In a source checkout (where `make demo` runs), sample_data/ sits next to src/.
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"
TRACES_FILE = "traces.jsonl.gz"
SCORE_CONFIGS_FILE = "score_configs.yaml"
DATASET_FILE = "datasets/support-golden.jsonl"

Progress = Callable[[int, int], None]

# A date, optionally with a time and a UTC designator or offset: 2026-11-25, 2026-11-25T16:00:00.123456Z.
# The literal "20" (years 2000-2099) lets the regex engine jump between candidates: scanning the
# 16 MB sample takes 30 ms instead of 700 ms with a leading \d.
_ISO = re.compile(r"(20\d\d-\d\d-\d\d)(T\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)?)?(?![\d:])")
# Each line of the sample starts with its trace's id, so ids are read without parsing whole lines.
_LINE_ID = re.compile(rb'\{\s*"trace_id"\s*:\s*"([^"\\]+)"')
# Only the fields that say when something happened bound the history (payload dates may be in
# the future: an order's estimated delivery).
_EVENT_TIME = re.compile(rb'"(?:start_time|end_time|created_at)"\s*:\s*"([^"]+)"')


@dataclass(frozen=True)
class SeedResult:
    """What ``seed`` did: counts of what it added, and the time span the sample now covers."""

    traces_added: int
    traces_in_sample: int
    spans_added: int
    scores_added: int
    score_configs_added: tuple[str, ...]
    history_start: datetime
    history_end: datetime
    seconds: float
    dataset_added: str | None = None  # the sample dataset's name, when this seed created it
    dataset_items_added: int = 0
    queues_added: tuple[str, ...] = ()  # the sample annotation queues this seed created
    baseline_added: str | None = None  # the promoted baseline experiment this seed ran

    @property
    def nothing_added(self) -> bool:
        """True when the database already held the whole sample."""
        return (self.traces_added == 0 and not self.score_configs_added and self.dataset_added is None
                and not self.queues_added and self.baseline_added is None)


def seed(
    url: str,
    *,
    now: datetime | None = None,
    progress: Progress | None = None,
    sample_dir: Path | None = None,
    baseline: bool = True,
) -> SeedResult:
    """Load the sample score configs and traces into the database at ``url``, ending at ``now``.

    ``now`` defaults to the current UTC time (a naive datetime is taken as UTC). Score configs are
    added where none of the same name exists; traces already stored (same id) are skipped, so
    seeding twice adds nothing the second time. ``progress(done, total)`` is called as traces are
    written, ``total`` being the number of traces to add. With ``baseline``, the golden dataset gets
    two code evaluators and a promoted baseline experiment (``_add_baseline``), so the Experiments
    page has something to compare with from the start. Raises ``ConfigError`` when the sample
    files are missing or malformed, ``StoreError`` when the database cannot be opened or written.
    """
    started = time.perf_counter()
    moment = utcnow() if now is None else _utc(now)
    folder = sample_dir or SAMPLE_DIR
    configs = load_score_configs(folder / SCORE_CONFIGS_FILE)
    raw = _read(folder / TRACES_FILE)
    dataset_path = folder / DATASET_FILE
    try:
        dataset_bytes = dataset_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"The sample data is missing: there is no {dataset_path}.") from None
    except OSError as err:
        raise ConfigError(f"Cannot read the sample dataset in {dataset_path}: {err}") from None
    lines = [line for line in raw.split(b"\n") if line.strip()]
    ids = [_line_id(line) for line in lines]
    first_id, first_start, reference_end = _bounds(raw, lines)

    configs_added = _add_score_configs(url, configs, moment)
    stored, stored_start = _stored(url, ids, first_id)
    # Where a part of the sample is already stored, keep to its timeline; otherwise end at `now`.
    offset = (stored_start - first_start) if stored_start is not None else (moment - reference_end)
    # Only what is missing is shifted and parsed: seeding a seeded database is a quick no-op.
    missing = b"\n".join(line for line, trace_id in zip(lines, ids) if trace_id not in stored)
    new = [orjson.loads(line) for line in _shift_dates(missing, offset).split("\n") if line.strip()]

    total, done = len(new), 0
    if progress is not None:
        progress(0, total)
    for i in range(0, total, CHUNK):
        chunk = new[i:i + CHUNK]
        insert_traces(url, chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    dataset_added, dataset_items = _add_dataset(url, dataset_path, dataset_bytes)
    queues_added = _add_queues(url, ids, moment)
    baseline_added = _add_baseline(url, dataset_path.stem) if baseline else None
    return SeedResult(
        traces_added=total,
        traces_in_sample=len(lines),
        spans_added=sum(len(t.get("spans") or ()) for t in new),
        scores_added=sum(len(t.get("scores") or ()) for t in new),
        score_configs_added=configs_added,
        history_start=first_start + offset,
        history_end=reference_end + offset,
        seconds=time.perf_counter() - started,
        dataset_added=dataset_added,
        dataset_items_added=dataset_items,
        queues_added=queues_added,
        baseline_added=baseline_added,
    )


def _add_dataset(url: str, path: Path, data: bytes) -> tuple[str | None, int]:
    """Import the sample dataset (named after its file) unless a dataset of that name exists."""
    name = path.stem
    with read_session(url) as session:
        if session.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
            return None, 0
    result = import_file(url, name, data, format="jsonl", filename=path.name,
                         description="Reviewed answers of the Fern support assistant to common questions: "
                                     "the regression set new prompts and models are checked against.")
    return name, result.items_added


# The sample's annotation queues: what a team would set up on day one.
THUMBS_DOWN_QUEUE = "Thumbs-down review"
WEEKLY_QUEUE = "Weekly sample"


def _add_queues(url: str, ids: list[str], now: datetime) -> tuple[str, ...]:
    """A triage queue holding the sample's thumbs-down traces, and a double-labelled weekly queue
    filled by a 5% rule stratified by release; each only if no queue of that name exists."""
    from looplab.annotation import queues, rules  # noqa: PLC0415 (annotation imports the store, not demo)

    with read_session(url) as session:
        taken = set(session.scalars(select(AnnotationQueue.name)))
        thumbs_down = list(session.scalars(
            select(Score.trace_id).where(Score.name == "thumbs", Score.value == 0, Score.trace_id.in_(ids))
            .order_by(Score.created_at.desc())))
    added = []
    if THUMBS_DOWN_QUEUE not in taken:
        queue = queues.create_queue(
            url, THUMBS_DOWN_QUEUE, score_configs=["correctness", "tone"],
            instructions="Customers gave these replies a thumbs down. Is the reply wrong, or just unwelcome? "
                         "Correct the answer when it is wrong; add good corrections to the golden dataset.")
        queues.add_traces(url, queue.id, thumbs_down, reason="thumbs down from the customer")
        added.append(THUMBS_DOWN_QUEUE)
    if WEEKLY_QUEUE not in taken:
        queue = queues.create_queue(
            url, WEEKLY_QUEUE, score_configs=["correctness"], annotations_per_item=2,
            instructions="A random sample of last week's support chats, labelled by two people each so we "
                         "know how far our labels can be trusted.")
        rules.create_rule(url, queue.id, "5% of chats by release", TraceFilter(names=("support-chat",)),
                          0.05, stratify_by="release", now=now)
        added.append(WEEKLY_QUEUE)
    return tuple(added)


# The sample's first experiment: the offline mock model over the golden dataset, promoted as baseline.
BASELINE_EXPERIMENT = "support v1"
BASELINE_TEMPLATE = "{{ input.message }}\nReference answer: {{ expected.reply }}"
BASELINE_EVALUATORS = {"exact reply": "exact_match", "similar reply": {"type": "similarity", "threshold": 0.8}}


def _add_baseline(url: str, dataset: str) -> str | None:
    """Save the sample's evaluators, run ``support v1`` (the offline ``mock:support`` model, no key
    needed) over the golden dataset and promote it; only when no experiment ran on that dataset."""
    # Imported here: experiments pull in Jinja2 and the providers, which seeding traces does not need.
    from looplab.evaluation.registry import save_evaluator  # noqa: PLC0415
    from looplab.experiments.records import promote_experiment  # noqa: PLC0415
    from looplab.experiments.runner import create_experiment, run_experiment  # noqa: PLC0415
    from looplab.experiments.variants import VariantSpec  # noqa: PLC0415

    with read_session(url) as session:
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.name == dataset))
        if dataset_id is None or session.scalar(select(Experiment.id).where(
                (Experiment.dataset_id == dataset_id) | (Experiment.name == BASELINE_EXPERIMENT)).limit(1)):
            return None
    for name, spec in BASELINE_EVALUATORS.items():
        save_evaluator(url, name, spec)
    variant = VariantSpec(name="support-answer", kind="prompt", model="mock:support", prompt=BASELINE_TEMPLATE,
                          params={"quality": 0.9})
    experiment_id = create_experiment(url, BASELINE_EXPERIMENT, dataset, variant, evaluators=list(BASELINE_EVALUATORS),
                                      created_by="looplab seed")
    summary = run_experiment(url, experiment_id)
    if summary.status != "completed":
        raise ConfigError(f"The sample's baseline experiment ended {summary.status}; see `looplab experiment status "
                          f"'{BASELINE_EXPERIMENT}'`.")
    promote_experiment(url, experiment_id)
    import looplab  # noqa: PLC0415

    looplab.flush()  # the items' traces are written in the background: the seed is whole when it returns
    return BASELINE_EXPERIMENT


def load_score_configs(path: Path) -> list[dict[str, Any]]:
    """The score configs in a YAML file (a list of mappings), checked; raises ``ConfigError``."""
    try:
        configs = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"The sample data is missing: there is no {path}.") from None
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"Cannot read the score configs in {path}: {err}") from None
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise ConfigError(f"{path} must hold a list of score configs (mappings).")
    for config in configs:
        if not config.get("name") or config.get("data_type") not in SCORE_DATA_TYPES:
            raise ConfigError(
                f"Score config {config.get('name')!r} in {path} needs a name and a data_type "
                f"({', '.join(SCORE_DATA_TYPES)})."
            )
    return configs


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _read(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"The sample data is missing: there is no {path}. It ships in looplab's source tree "
            "(run `python sample_data/generate.py` to rebuild it)."
        ) from None
    except (OSError, EOFError) as err:
        raise ConfigError(f"Cannot read the sample data in {path}: {err}") from None


def _line_id(line: bytes) -> str:
    match = _LINE_ID.match(line)
    try:
        return match.group(1).decode() if match else orjson.loads(line)["trace_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"The sample data is malformed: a line without a trace_id ({err}): {line[:120]!r}") from None


def _bounds(raw: bytes, lines: list[bytes]) -> tuple[str, datetime, datetime]:
    """The first trace's id and start, and the latest event time in the file (its reference end)."""
    if not lines:
        raise ConfigError("The sample data is empty.")
    try:
        first = orjson.loads(lines[0])
        # The file's times all share one format (ISO 8601, microseconds, Z), so text order is time order.
        latest = max(m.decode() for m in _EVENT_TIME.findall(raw))
        return first["trace_id"], _parse(first["start_time"]), _parse(latest)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"The sample data is malformed: {err}") from None


def _parse(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text))


def _shift_dates(raw: bytes, offset: timedelta) -> str:
    """The file's text with every ISO 8601 date and date-time moved by ``offset``.

    A date-time moves by the offset exactly; a date alone (an estimated delivery day) by the
    offset rounded to whole days, which keeps it on the same day relative to its trace most of the
    time (exactly when the offset is a whole number of days).
    """
    days = timedelta(days=round(offset / timedelta(days=1)))

    def moved(match: re.Match[str]) -> str:
        day, clock = match.group(1), match.group(2)
        if match.start() and match.string[match.start() - 1].isdigit():
            return match.group(0)  # the tail of a longer number, not a date
        try:
            if clock is None:
                return (date.fromisoformat(day) + days).isoformat()
            shifted = _parse(day + clock) + offset
        except ValueError:
            return match.group(0)  # looked like a date but is not one (2026-13-45): leave it
        return shifted.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    try:
        return _ISO.sub(moved, raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"The sample data is not UTF-8 text: {err}") from None


def _stored(url: str, ids: list[str], first_id: str) -> tuple[set[str], datetime | None]:
    """Which of ``ids`` the database holds, and the stored start time of ``first_id`` (if stored)."""
    stored: set[str] = set()
    with read_session(url) as session:
        for i in range(0, len(ids), CHUNK):
            stored.update(session.scalars(select(Trace.id).where(Trace.id.in_(ids[i:i + CHUNK]))))
        start = session.scalar(select(Trace.start_time).where(Trace.id == first_id)) if first_id in stored else None
    return stored, start


def _add_score_configs(url: str, configs: list[dict[str, Any]], now: datetime) -> tuple[str, ...]:
    """Insert the configs whose names are not taken yet (archived ones count); returns their names."""
    with write_session(url) as session:
        taken = set(session.scalars(select(ScoreConfig.name)))
        rows = [
            {
                "name": c["name"], "data_type": c["data_type"], "min_value": c.get("min_value"),
                "max_value": c.get("max_value"), "step": c.get("step"), "categories_json": c.get("categories"),
                "description": (c.get("description") or "").strip() or None, "created_at": now,
            }
            for c in configs
            if c["name"] not in taken
        ]
        if rows:
            session.execute(insert(ScoreConfig.__table__), rows)
    return tuple(r["name"] for r in rows)
