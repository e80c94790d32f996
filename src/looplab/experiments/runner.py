"""Run a variant over a pinned dataset version: concurrent, traced, evaluated, resumable.

``create_experiment`` saves the variant (a new version only when it changed), pins the dataset's
current version and the evaluators' versions, and stores a ``pending`` experiment.
``run_experiment`` runs it:

* **Concurrency**: a pool of ``concurrency`` threads (the provider SDKs are synchronous) calls the
  model; at most twice that many items are handed to the pool at once, and items are streamed
  from the dataset, so memory stays flat however many items there are. Results are written by the
  calling thread in small batches (each item with its scores, in one transaction).
* **Retries**: a ``ProviderError`` that says ``retryable`` (429, 5xx, timeouts, connection errors)
  is retried up to ``max_retries`` times with exponential backoff and full jitter, never sooner
  than the provider's ``retry_after``. Anything else (a 400, a template naming a missing field, a
  code task raising) is the item's error, recorded, and the run goes on. A ``ConfigError`` from
  the provider (no API key, unknown params) stops the run as ``failed``: every item would fail alike.
* **Tracing**: each item runs inside ``looplab.trace(f"experiment {name}", ...)``; the model call is
  an ``llm`` span under it, and the trace id is stored on the item. When this process has not
  configured tracing, it is pointed at the experiment's database.
* **Heartbeat and cancel**: every ``poll_interval`` seconds the run writes ``heartbeat_at`` and reads
  ``cancel_requested``. Cancelled, it starts no new item, finishes the ones in flight, writes them,
  and ends as ``cancelled``.
* **Resume**: running an experiment again (after a crash, a cancel, or to retry errors) skips every
  item that has an ``ok`` result, so a finished item is never paid twice. Items that ended in an
  error are run again (their error rows and scores are deleted first): errors are mostly rate
  limits and timeouts worth another try, and a comparison should not rest on them. Pass
  ``retry_errors=False`` to keep them.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

import looplab
from looplab.datasets import current_version, get_dataset, items_at, iter_items
from looplab.datasets.items import ItemVersion
from looplab.errors import ConfigError, LooplabError, NotFound
from looplab.experiments.records import (
    ExperimentInfo,
    experiment_progress,
    get_experiment,
)
from looplab.experiments.variants import (
    SavedVariant,
    TemplateError,
    VariantSpec,
    get_variant,
    render_messages,
    resolve_task,
    save_variant,
)
from looplab.store.engine import read_session, write_session
from looplab.store.models import Experiment, ExperimentItem, Score
from looplab.store.types import utcnow
from looplab.tracing import runtime

log = logging.getLogger("looplab.experiments")

EXPERIMENT_ENVIRONMENT = "experiment"  # the environment of the traces an experiment's items record

Progress = Callable[[int, int], None]

# A run whose heartbeat is older than this, and whose process is gone, has stalled.
STALE_AFTER = timedelta(seconds=30)
MAX_CONCURRENCY = 256
MAX_RETRY_DELAY = 60.0
_WRITE_BATCH = 50
_WRITE_EVERY = 0.5  # seconds: results wait at most this long to be written
_CHUNK = 200  # items looked up at once for "already done"
_ITEMS = ExperimentItem.__table__
_SCORES = Score.__table__


@dataclass(frozen=True)
class RunSummary:
    """How a call of ``run_experiment`` ended."""

    experiment_id: int
    name: str
    status: str  # completed | cancelled | failed
    total: int
    done: int  # items with a stored result, this run and earlier ones
    ok: int
    errors: int
    skipped: int  # items already done by an earlier run, not run again
    ran: int  # items run by this call
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    seconds: float
    error: str | None = None


@dataclass
class _Result:
    item: ItemVersion
    trace_id: str | None
    output: Any
    latency_ms: float
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    error: str | None
    evaluations: list[tuple[Any, Any]] = field(default_factory=list)  # (pinned evaluator, EvalResult)


@dataclass(frozen=True)
class _PinnedEvaluator:
    id: int | None
    name: str
    version: str
    evaluator: Any  # looplab.evaluation.base.Evaluator


# --- Creating ------------------------------------------------------------------------------------


def _saved_variant(url: str, variant: VariantSpec | SavedVariant | str, created_by: str | None) -> SavedVariant:
    if isinstance(variant, SavedVariant):
        return variant
    if isinstance(variant, VariantSpec):
        return save_variant(url, variant, created_by=created_by)
    if isinstance(variant, str):
        return get_variant(url, variant)
    raise ConfigError(f"variant must be a VariantSpec, a saved variant or a variant's name, not {type(variant).__name__}.")


def _pin_evaluators(url: str, evaluators: Iterable[Any]) -> list[dict[str, Any]]:
    """Each evaluator (a saved one's name, or an inline definition saved here under its ``name``)
    as ``{"id", "name", "version"}``: the saved row, and the version its scores will carry."""
    from looplab.evaluation.registry import (
        build_evaluator,
        get_evaluator_info,
        save_evaluator,
    )

    pinned = []
    for entry in evaluators:
        if isinstance(entry, str):
            info = get_evaluator_info(url, entry)
        elif isinstance(entry, dict):
            spec = dict(entry)
            name = spec.pop("name", None)
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"An inline evaluator needs a name: {entry!r}.")
            info = save_evaluator(url, name, spec)
        else:
            raise ConfigError(f"An evaluator is a saved evaluator's name or a definition (a mapping), not {entry!r}.")
        built = build_evaluator({**info.config, "name": info.name}, url=url)  # a bad one fails before anything runs
        pinned.append({"id": info.id, "name": info.name, "version": built.version})
    names = [p["name"] for p in pinned]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"Evaluator{'s' if len(twice) > 1 else ''} {', '.join(twice)} named twice.")
    return pinned


def create_experiment(
    url: str,
    name: str,
    dataset: str,
    variant: VariantSpec | SavedVariant | str,
    evaluators: Iterable[Any] = (),
    baseline: int | str | None = None,
    concurrency: int = 8,
    created_by: str | None = None,
) -> int:
    """Store a pending experiment: ``variant`` over ``dataset`` as it is now; returns its id.

    ``variant`` is a ``VariantSpec`` (saved here, as a new version if it changed), a saved variant
    or a saved variant's name (its newest version). ``evaluators`` are saved evaluators' names or
    inline definitions; their versions are pinned. ``baseline`` is an experiment (name or id) over
    the same dataset to compare with.
    """
    name = (name or "").strip()
    if not name:
        raise ConfigError("An experiment needs a name.")
    if not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, got {concurrency!r}.")
    info = get_dataset(url, dataset)
    version = current_version(url, dataset)
    if version is None:
        raise ConfigError(f"The dataset {dataset!r} holds no items yet; add some before running an experiment.")
    item_count = items_at(url, dataset, version, limit=1).total
    if item_count == 0:
        raise ConfigError(f"The dataset {dataset!r} holds no items now; add some before running an experiment.")
    saved = _saved_variant(url, variant, created_by)
    if saved.kind == "code":
        resolve_task(saved.config["task"])  # an unimportable task fails now, not on every item
    pinned = _pin_evaluators(url, evaluators)
    baseline_id = None
    if baseline is not None:
        base = get_experiment(url, baseline)
        if base.dataset_id != info.id:
            raise ConfigError(f"The baseline {base.name!r} ran over the dataset {base.dataset!r}, not {dataset!r}: "
                              "compare experiments over the same dataset.")
        baseline_id = base.id
    variant_json = {"name": saved.name, "version": saved.version, **saved.config}
    try:
        with write_session(url) as session:
            taken = session.scalar(select(Experiment.id).where(Experiment.name == name))
            if taken is not None:
                raise ConfigError(f"An experiment named {name!r} already exists; pick another name.")
            row = Experiment(
                name=name, dataset_id=info.id, dataset_version=version, variant_json=variant_json,
                variant_id=saved.id, baseline_id=baseline_id, status="pending", item_count=item_count,
                concurrency=concurrency, cancel_requested=False, created_by=created_by,
                metadata_json={"evaluators": pinned}, created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        raise ConfigError(f"An experiment named {name!r} already exists; pick another name.") from None


def request_cancel(url: str, experiment_id: int) -> ExperimentInfo:
    """Ask a run to stop: it finishes the items in flight and ends ``cancelled``.

    A pending experiment nobody runs yet is cancelled at once; a finished one is left as it is.
    """
    with write_session(url) as session:
        row = session.get(Experiment, experiment_id)
        if row is None:
            raise NotFound(f"There is no experiment with id {experiment_id}.")
        stalled = row.status == "running" and is_stale(row.heartbeat_at) and not pid_alive(row.worker_pid)
        if (row.status == "pending" and row.worker_pid is None) or stalled:
            row.status = "cancelled"
            row.finished_at = utcnow()
        elif row.status in ("pending", "running"):
            row.cancel_requested = True
    return get_experiment(url, experiment_id)


# --- Running -------------------------------------------------------------------------------------


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id runs on this machine (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _claim(url: str, experiment_id: int) -> None:
    """Mark the experiment running in this process, unless another live run holds it."""
    now = utcnow()
    with write_session(url) as session:
        row = session.scalar(select(Experiment).where(Experiment.id == experiment_id).with_for_update())
        if row is None:
            raise NotFound(f"There is no experiment with id {experiment_id}.")
        me = os.getpid()
        if (row.status == "running" and row.worker_pid not in (None, me) and row.heartbeat_at is not None
                and now - row.heartbeat_at < STALE_AFTER):
            raise ConfigError(f"Experiment {row.name!r} is already running (process {row.worker_pid}, last heartbeat "
                              f"{(now - row.heartbeat_at).total_seconds():.0f} s ago); cancel it or wait for it.")
        row.status = "running"
        row.worker_pid = me
        row.heartbeat_at = now
        row.error = None
        row.finished_at = None
        row.started_at = row.started_at or now


def _ensure_tracing(url: str) -> None:
    """Record item traces into the experiment's database unless this process chose where to record."""
    if getattr(runtime, "_settings", None) is None:
        looplab.configure(database_url=url)


def _dataset_name(url: str, dataset_id: int) -> str:
    from looplab.store.models import Dataset

    with read_session(url) as session:
        name = session.scalar(select(Dataset.name).where(Dataset.id == dataset_id))
    if name is None:
        raise NotFound(f"The experiment's dataset (id {dataset_id}) no longer exists.")
    return name


def _load_evaluators(url: str, pinned: list[dict[str, Any]]) -> list[_PinnedEvaluator]:
    """Build the evaluators pinned at creation, from their stored definitions."""
    if not pinned:
        return []
    from looplab.evaluation.registry import build_evaluator
    from looplab.store.models import Evaluator as EvaluatorRow

    out = []
    with read_session(url) as session:
        for entry in pinned:
            row = session.get(EvaluatorRow, entry["id"]) if entry.get("id") is not None else None
            if row is None:
                raise ConfigError(f"The evaluator {entry['name']!r} this experiment was created with no longer exists.")
            built = build_evaluator({**dict(row.config_json), "name": row.name}, url=url)
            if built.version != entry["version"]:
                log.warning("evaluator %s is now version %s; the experiment pinned %s", entry["name"], built.version,
                            entry["version"])
            out.append(_PinnedEvaluator(row.id, built.name, built.version, built))
    return out


def _chunks(items: Iterator[ItemVersion], size: int) -> Iterator[list[ItemVersion]]:
    chunk: list[ItemVersion] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _done_ids(url: str, experiment_id: int, item_ids: list[str]) -> set[str]:
    with read_session(url) as session:
        return set(session.scalars(select(ExperimentItem.dataset_item_id).where(
            ExperimentItem.experiment_id == experiment_id, ExperimentItem.dataset_item_id.in_(item_ids))))


def _clear_errors(url: str, experiment_id: int) -> int:
    """Delete the error rows of a previous run (their scores go with them) so those items run again."""
    with write_session(url) as session:
        ids = list(session.scalars(select(ExperimentItem.id).where(ExperimentItem.experiment_id == experiment_id,
                                                                   ExperimentItem.status == "error")))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            session.execute(delete(Score).where(Score.experiment_item_id.in_(chunk)))
            session.execute(delete(ExperimentItem).where(ExperimentItem.id.in_(chunk)))
        return len(ids)


def call_with_retries(
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    timeout: float,
    max_retries: int,
    base_delay: float = 1.0,
    stop: threading.Event | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> tuple[Any, int]:
    """``providers.complete``, retried on retryable errors; returns the completion and the attempts made.

    The n-th retry waits a random time up to ``base_delay * 2**n`` (full jitter, at most a minute),
    and never less than the provider's ``retry_after``.
    """
    from looplab.providers import ProviderError, complete

    attempt = 0
    while True:
        attempt += 1
        try:
            return complete(model, messages, params=params or None, timeout=timeout), attempt
        except ProviderError as err:
            if not err.retryable or attempt > max_retries:
                if err.retryable:
                    raise ProviderError(f"{err} (gave up after {attempt} attempts)", status=err.status,
                                        retryable=True, retry_after=err.retry_after) from err
                raise
            delay = random.uniform(0, min(MAX_RETRY_DELAY, base_delay * 2 ** (attempt - 1)))
            if err.retry_after is not None:
                delay = max(delay, min(float(err.retry_after), MAX_RETRY_DELAY))
            log.debug("retrying %s in %.2f s after: %s", model, delay, err)
            if stop is not None:
                stop.wait(delay)
            else:
                (sleep or time.sleep)(delay)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    return repr(value)


class _Run:
    """One call of ``run_experiment``: the state shared by the coordinating thread and the pool."""

    def __init__(self, url: str, info: ExperimentInfo, *, timeout: float, max_retries: int, retry_base_delay: float,
                 poll_interval: float, stop: threading.Event | None) -> None:
        self.url = url
        self.info = info
        self.spec = VariantSpec.from_config(info.variant.get("name") or info.name, info.variant)
        self.task = resolve_task(self.spec.task) if self.spec.kind == "code" else None
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.poll_interval = poll_interval
        self.external_stop = stop
        self.halt = threading.Event()  # set on cancel or failure: retries stop waiting
        self.evaluators = _load_evaluators(url, info.evaluators)

    # -- one item, in a pool thread --------------------------------------------------------------

    def run_item(self, item: ItemVersion) -> _Result:
        from looplab.providers import ProviderError

        output: Any = None
        error: str | None = None
        tokens_in = tokens_out = None
        cost = None
        started = time.perf_counter()
        # Environment "experiment": Monitoring and Traces can tell these from production traffic.
        handle = looplab.trace(
            f"experiment {self.info.name}", input=item.input, environment=EXPERIMENT_ENVIRONMENT,
            metadata={"experiment": self.info.name, "experiment_id": self.info.id, "dataset_item_id": item.item_id,
                      "variant": f"{self.spec.name} v{self.info.variant.get('version')}"},
        )
        try:
            with handle as trace:
                if self.task is None:
                    messages = render_messages(self.spec, item.input, expected=item.expected_output,
                                               metadata=item.metadata, item_id=item.item_id)
                    completion, _attempts = call_with_retries(
                        self.spec.model or "", messages, self.spec.params, timeout=self.timeout,
                        max_retries=self.max_retries, base_delay=self.retry_base_delay, stop=self.halt)
                    output = completion.text
                    tokens_in, tokens_out, cost = completion.input_tokens, completion.output_tokens, completion.cost_usd
                else:
                    params = dict(self.spec.params)
                    if self.spec.model is not None:
                        params.setdefault("model", self.spec.model)
                    value = self.task(item.input, params)
                    if hasattr(value, "input_tokens") and hasattr(value, "text"):  # a Completion
                        tokens_in, tokens_out = value.input_tokens, value.output_tokens
                        cost = getattr(value, "cost_usd", None)
                    output = _jsonable(value)
                trace.update(output=output)
        except (TemplateError, ProviderError) as err:
            error = str(err)
        except ConfigError:
            raise  # the provider is not set up: every item would fail alike
        except Exception as err:  # a code task's own failure is the item's error
            error = f"{type(err).__name__}: {err}"
        latency_ms = (time.perf_counter() - started) * 1000
        result = _Result(item, handle.trace_id, output, latency_ms, tokens_in, tokens_out, cost, error)
        if error is None:
            result.evaluations = self.evaluate(item, output)
        return result

    def evaluate(self, item: ItemVersion, output: Any) -> list[tuple[Any, Any]]:
        if not self.evaluators:
            return []
        from looplab.evaluation.base import EvalCase, EvalResult

        metadata = dict(item.metadata or {})
        context = metadata.get("context")
        case = EvalCase(input=item.input, output=output, expected=item.expected_output,
                        context=context if isinstance(context, list) else None, metadata=metadata)
        out = []
        for pinned in self.evaluators:
            try:
                result = pinned.evaluator.evaluate(case)
            except Exception as err:  # an evaluator must not raise; if one does, it is that score's error
                result = EvalResult(evaluator=pinned.name, version=pinned.version, value=None, label=None, passed=None,
                                    reasoning=None, error=f"{type(err).__name__}: {err}")
            out.append((pinned, result))
        return out

    # -- writing, in the coordinating thread -------------------------------------------------------

    def write(self, results: list[_Result]) -> None:
        if not results:
            return
        from looplab.evaluation.registry import score_rows

        now = utcnow()
        rows = [{"experiment_id": self.info.id, "dataset_item_id": r.item.item_id,
                 "dataset_item_row_id": r.item.version_id, "trace_id": r.trace_id, "output_json": r.output,
                 "latency_ms": r.latency_ms, "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                 "cost_usd": r.cost_usd, "status": "error" if r.error else "ok", "error": r.error, "created_at": now}
                for r in results]
        with write_session(self.url) as session:
            # Core inserts (not ORM objects): a batch of items is one statement, their ids come back in order.
            ids = list(session.scalars(insert(_ITEMS).returning(_ITEMS.c.id, sort_by_parameter_order=True), rows))
            scores = []
            for item_id, result in zip(ids, results):
                for pinned, evaluation in result.evaluations:
                    for score in score_rows(evaluation, experiment_item_id=item_id, evaluator_id=pinned.id,
                                            created_at=now):
                        scores.append({c.key: getattr(score, c.key) for c in _SCORES.columns})
            if scores:
                session.execute(insert(_SCORES), scores)

    def poll(self) -> bool:
        """Write the heartbeat; True when a cancel was asked for."""
        with write_session(self.url) as session:
            session.execute(update(Experiment).where(Experiment.id == self.info.id).values(heartbeat_at=utcnow()))
            return bool(session.scalar(select(Experiment.cancel_requested).where(Experiment.id == self.info.id)))


def run_experiment(
    url: str,
    experiment_id: int,
    *,
    progress: Progress | None = None,
    timeout: float = 60.0,
    max_retries: int = 4,
    retry_base_delay: float = 1.0,
    retry_errors: bool = True,
    poll_interval: float = 2.0,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Run (or resume) an experiment in this process; returns when it completed, was cancelled or failed.

    ``progress(done, total)`` is called as items finish (done counts earlier runs' items too).
    ``timeout`` bounds each model call; ``max_retries`` retryable failures are retried per call.
    ``retry_errors``: run again the items an earlier run left in error (see the module doc).
    ``poll_interval``: seconds between heartbeats / cancel checks. ``stop``: an event that asks
    the run to stop like a cancel (the worker sets it on SIGTERM). A failure that stops the run
    (database gone, provider not configured) marks it ``failed`` and is raised.
    """
    if max_retries < 0:
        raise ConfigError("max_retries must be 0 or more.")
    started = time.perf_counter()
    _claim(url, experiment_id)
    info = get_experiment(url, experiment_id)
    try:
        run = _Run(url, info, timeout=timeout, max_retries=max_retries, retry_base_delay=retry_base_delay,
                   poll_interval=poll_interval, stop=stop)
        dataset = _dataset_name(url, info.dataset_id)
        if retry_errors:
            _clear_errors(url, experiment_id)
    except BaseException as err:
        _finish(url, experiment_id, "failed", _message(err))
        raise
    _ensure_tracing(url)
    before = experiment_progress(url, experiment_id)
    total = info.item_count
    done = before.done
    ran = 0
    if progress is not None:
        progress(done, total)

    pending: list[_Result] = []
    finished_queue: queue.SimpleQueue[tuple[_Result | None, BaseException | None]] = queue.SimpleQueue()
    submitted: deque[Future[None]] = deque()
    in_flight = 0
    cancelled = False
    failure: BaseException | None = None
    last_write = time.monotonic()
    last_poll = 0.0  # the first check comes at once: a cancel may have been asked before the run began
    concurrency = info.concurrency or 8
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"looplab-experiment-{experiment_id}")

    def work(item: ItemVersion) -> None:
        try:
            finished_queue.put((run.run_item(item), None))
        except BaseException as err:  # handed to the coordinating thread, which stops the run
            finished_queue.put((None, err))

    def collect(block: bool) -> None:
        """Take the results that finished (waiting up to ``poll_interval`` for one when ``block``)."""
        nonlocal in_flight, done, ran, failure
        got = 0
        try:
            entry = finished_queue.get(timeout=poll_interval) if block else finished_queue.get_nowait()
            while True:
                in_flight -= 1
                got += 1
                result, error = entry
                if error is not None:
                    failure = failure or error
                    run.halt.set()
                elif result is not None:
                    pending.append(result)
                    done += 1
                    ran += 1
                entry = finished_queue.get_nowait()
        except queue.Empty:
            pass
        while submitted and submitted[0].done():
            submitted.popleft()
        if got and progress is not None:
            progress(done, total)

    def drop_queued() -> None:
        """Cancel the items handed to the pool that have not started; those running finish."""
        nonlocal in_flight
        for future in submitted:
            if future.cancel():
                in_flight -= 1
        submitted.clear()

    def maintain(force: bool = False) -> None:
        nonlocal last_write, last_poll, cancelled
        now = time.monotonic()
        if pending and (force or len(pending) >= _WRITE_BATCH or now - last_write >= _WRITE_EVERY):
            batch = pending[:]
            pending.clear()
            run.write(batch)
            last_write = now
        if force or now - last_poll >= poll_interval:
            last_poll = now
            if run.poll() or (stop is not None and stop.is_set()):
                cancelled = True
                run.halt.set()

    try:
        with closing(iter_items(url, dataset, info.dataset_version)) as items:
            for chunk in _chunks(items, _CHUNK):
                if cancelled or failure is not None:
                    break
                finished_ids = _done_ids(url, experiment_id, [i.item_id for i in chunk])
                for item in chunk:
                    if item.item_id in finished_ids:
                        continue
                    while in_flight >= 2 * concurrency and failure is None and not cancelled:
                        collect(block=True)
                        maintain()
                    if stop is not None and stop.is_set():
                        cancelled = True
                    if cancelled or failure is not None:
                        break
                    submitted.append(executor.submit(work, item))
                    in_flight += 1
                    collect(block=False)
                    maintain()
        if cancelled or failure is not None:
            drop_queued()
        while in_flight > 0:
            collect(block=True)
            maintain()
        maintain(force=True)
    except BaseException as err:  # the database went away, Ctrl+C, ...
        failure = failure or err
        run.halt.set()
        drop_queued()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

    if failure is not None:
        try:  # keep what finished: a resume will not pay for it again
            collect(block=False)
            run.write(pending)
        except Exception:
            log.exception("could not write the last results of experiment %s", experiment_id)
        _finish(url, experiment_id, "failed", _message(failure))
        looplab.flush(timeout=30)
        raise failure
    status = "cancelled" if cancelled else "completed"
    _finish(url, experiment_id, status, None)
    looplab.flush(timeout=30)
    after = experiment_progress(url, experiment_id)
    if progress is not None:
        progress(after.done, total)
    return RunSummary(experiment_id=experiment_id, name=info.name, status=status, total=total, done=after.done,
                      ok=after.done - after.errors, errors=after.errors, skipped=before.done, ran=ran,
                      cost_usd=after.cost_usd, input_tokens=after.input_tokens, output_tokens=after.output_tokens,
                      seconds=time.perf_counter() - started)


def _message(err: BaseException) -> str:
    if isinstance(err, LooplabError):
        return str(err)
    if isinstance(err, KeyboardInterrupt):
        return "Interrupted."
    return f"{type(err).__name__}: {err}"


def _finish(url: str, experiment_id: int, status: str, error: str | None) -> None:
    now = utcnow()
    try:
        with write_session(url) as session:
            session.execute(update(Experiment).where(Experiment.id == experiment_id).values(
                status=status, error=error, finished_at=now, heartbeat_at=now, cancel_requested=False))
    except Exception:
        log.exception("could not mark experiment %s %s", experiment_id, status)


def experiment_items(url: str, experiment_id: int) -> list[dict[str, Any]]:
    """Every stored item result of an experiment (for tests and small reports), in dataset item order."""
    with read_session(url) as session:
        rows = session.scalars(select(ExperimentItem).where(ExperimentItem.experiment_id == experiment_id)
                               .order_by(ExperimentItem.dataset_item_id))
        return [{"id": r.id, "dataset_item_id": r.dataset_item_id, "trace_id": r.trace_id, "output": r.output_json,
                 "latency_ms": r.latency_ms, "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                 "cost_usd": r.cost_usd, "status": r.status, "error": r.error} for r in rows]


def is_stale(heartbeat_at: datetime | None, now: datetime | None = None) -> bool:
    if heartbeat_at is None:
        return True
    return (now or utcnow()) - heartbeat_at > STALE_AFTER
