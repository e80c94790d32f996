"""Online evaluation: run saved evaluators on a sample of recent production traces.

Which traces: those that started in ``[since, until)``, except the traces of judge calls
themselves (tagged ``looplab-judge``), kept when a hash of their id falls under the sample rate.
The hash makes sampling deterministic: the same trace is in or out of a 10 % sample on every run
and for every evaluator, and a 20 % sample holds the 10 % one.

What an evaluator reads from a trace: its input and output, the outputs of its ``retrieval`` spans
as context, and as expected output the one of a dataset item made from the trace, if any.

A trace is never evaluated twice by the same evaluator version: traces already holding a score
of that evaluator name and version are skipped (checked again in the transaction that writes).
Results become scores (``score_rows``): source ``llm_judge`` or ``code``, with ``evaluator_id``
and ``evaluator_version``, so Monitoring charts them like any score. A judge whose provider failed
writes nothing for that trace, so the next run tries it again.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select

from looplab.errors import ConfigError
from looplab.evaluation.base import EvalCase, EvalResult, Evaluator, as_text
from looplab.evaluation.judges import JUDGE_TAG
from looplab.evaluation.registry import EvaluatorInfo, get_evaluator, score_rows
from looplab.store.engine import read_session, write_session
from looplab.store.models import DatasetItem, Score, Span, Trace, TraceTag
from looplab.store.models import Evaluator as EvaluatorRow
from looplab.store.types import utcnow

CHUNK = 200
WRITE_EVERY = 50
Progress = Callable[[int, int], None]


def in_sample(trace_id: str, rate: float) -> bool:
    """Whether ``trace_id`` is in a sample of ``rate`` (0 to 1), the same answer every time."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(trace_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@dataclass
class EvaluatorRun:
    """What one evaluator did in an online run."""

    name: str
    version: int
    evaluator_version: str
    kind: str
    evaluated: int = 0
    skipped: int = 0  # already evaluated by this version
    errors: int = 0
    passed: int = 0
    failed: int = 0
    values: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    first_error: str | None = None

    @property
    def mean(self) -> float | None:
        return sum(self.values) / len(self.values) if self.values else None


@dataclass
class OnlineRun:
    """The outcome of ``run_online``."""

    since: datetime
    until: datetime
    sample_rate: float
    traces_in_window: int = 0
    sampled: int = 0
    scores_written: int = 0
    evaluators: list[EvaluatorRun] = field(default_factory=list)

    @property
    def evaluated(self) -> int:
        return sum(e.evaluated for e in self.evaluators)

    @property
    def cost_usd(self) -> float:
        return sum(e.cost_usd for e in self.evaluators)


def _context(output: Any) -> list[str]:
    if output is None:
        return []
    if isinstance(output, dict):
        for key in ("documents", "docs", "results", "chunks", "context"):
            if isinstance(output.get(key), list):
                return _context(output[key])
    if isinstance(output, list):
        texts = []
        for item in output:
            if isinstance(item, dict):
                text = next((item[k] for k in ("page_content", "content", "text", "document", "chunk")
                             if isinstance(item.get(k), str)), None)
                texts.append(text if text is not None else as_text(item))
            else:
                texts.append(as_text(item))
        return [t for t in texts if t]
    text = as_text(output)
    return [text] if text else []


def sample_traces(url: str, since: datetime, until: datetime, rate: float) -> tuple[int, list[str]]:
    """(traces in the window, the sampled ids oldest first), judge traces left out."""
    is_judge = exists().where(TraceTag.trace_id == Trace.id, TraceTag.tag == JUDGE_TAG)
    total, chosen = 0, []
    with read_session(url) as session:
        ids = session.scalars(select(Trace.id).where(Trace.start_time >= since, Trace.start_time < until, ~is_judge)
                              .order_by(Trace.start_time, Trace.id).execution_options(yield_per=5000))
        for trace_id in ids:
            total += 1
            if in_sample(trace_id, rate):
                chosen.append(trace_id)
    return total, chosen


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _done(session: Any, name: str, version: str, trace_ids: Sequence[str]) -> set[str]:
    """The traces among ``trace_ids`` already scored by evaluator ``name`` at ``version``."""
    named = select(EvaluatorRow.id).where(EvaluatorRow.name == name)
    return set(session.scalars(select(Score.trace_id).where(
        Score.trace_id.in_(list(trace_ids)), Score.evaluator_version == version, Score.evaluator_id.in_(named))))


def _cases(session: Any, trace_ids: Sequence[str]) -> dict[str, EvalCase]:
    rows = session.execute(select(Trace.id, Trace.input_json, Trace.output_json, Trace.metadata_json)
                           .where(Trace.id.in_(list(trace_ids)))).all()
    context: dict[str, list[str]] = defaultdict(list)
    for trace_id, output in session.execute(
            select(Span.trace_id, Span.output_json).where(Span.trace_id.in_(list(trace_ids)), Span.kind == "retrieval")
            .order_by(Span.start_time)):
        context[trace_id].extend(_context(output))
    expected: dict[str, Any] = {}
    for trace_id, value in session.execute(
            select(DatasetItem.source_trace_id, DatasetItem.expected_output_json)
            .where(DatasetItem.source_trace_id.in_(list(trace_ids)), DatasetItem.valid_to.is_(None),
                   DatasetItem.expected_output_json.is_not(None))
            .order_by(DatasetItem.valid_from)):
        expected[trace_id] = value
    return {row.id: EvalCase(input=row.input_json, output=row.output_json, expected=expected.get(row.id),
                             context=context.get(row.id) or None, metadata=row.metadata_json)
            for row in rows}


def run_online(
    url: str,
    evaluators: Sequence[str],
    *,
    since: datetime,
    until: datetime | None = None,
    sample_rate: float = 0.1,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> OnlineRun:
    """Run the saved evaluators named ``evaluators`` (their latest versions) on the traces of
    ``[since, until)`` sampled at ``sample_rate``; writes their scores and returns what happened.
    Raises ``NotFound`` for an unknown evaluator and ``ConfigError`` for a bad rate or window."""
    if not evaluators:
        raise ConfigError("Name at least one evaluator to run (--evaluator NAME).")
    if isinstance(sample_rate, bool) or not 0.0 < float(sample_rate) <= 1.0:
        raise ConfigError(f"The sample rate must be above 0 and at most 1 (0.1 is 10 %); got {sample_rate!r}.")
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1.")
    until = until or utcnow()
    if since >= until:
        raise ConfigError("The window is empty: since must be before until.")
    built: list[tuple[EvaluatorInfo, Evaluator]] = [get_evaluator(url, name) for name in dict.fromkeys(evaluators)]
    run = OnlineRun(since=since, until=until, sample_rate=float(sample_rate))
    stats = {info.name: EvaluatorRun(info.name, info.version, ev.version, info.kind) for info, ev in built}
    run.evaluators = list(stats.values())
    run.traces_in_window, sampled = sample_traces(url, since, until, float(sample_rate))
    run.sampled = len(sampled)

    todo: list[tuple[str, EvaluatorInfo, Evaluator]] = []
    with read_session(url) as session:
        for chunk in _chunks(sampled):
            for info, ev in built:
                done = _done(session, info.name, ev.version, chunk)
                stats[info.name].skipped += len(done)
                todo.extend((t, info, ev) for t in chunk if t not in done)
    total = len(todo)
    finished = 0
    if progress:
        progress(0, total)
    pending_rows: list[tuple[str, EvaluatorInfo, EvalResult]] = []

    def record(trace_id: str, info: EvaluatorInfo, result: EvalResult) -> None:
        stat = stats[info.name]
        stat.evaluated += 1
        if result.error:
            stat.errors += 1
            stat.first_error = stat.first_error or result.error
        else:
            if result.value is not None:
                stat.values.append(result.value)
            if result.passed is not None:
                stat.passed += bool(result.passed)
                stat.failed += not result.passed
        stat.input_tokens += result.input_tokens or 0
        stat.output_tokens += result.output_tokens or 0
        stat.cost_usd += result.cost_usd or 0.0
        pending_rows.append((trace_id, info, result))

    def flush_rows() -> None:
        if not pending_rows:
            return
        with write_session(url) as session:
            by_evaluator: dict[tuple[str, str], list[str]] = defaultdict(list)
            for trace_id, info, result in pending_rows:
                by_evaluator[(info.name, result.version)].append(trace_id)
            already = {key: _done(session, key[0], key[1], ids) for key, ids in by_evaluator.items()}
            for trace_id, info, result in pending_rows:
                if trace_id in already[(info.name, result.version)]:
                    continue  # another run got there first
                rows = score_rows(result, trace_id=trace_id, evaluator_id=info.id)
                session.add_all(rows)
                run.scores_written += len(rows)
        pending_rows.clear()

    for chunk_start in range(0, total, CHUNK):
        chunk = todo[chunk_start:chunk_start + CHUNK]
        with read_session(url) as session:
            cases = _cases(session, list(dict.fromkeys(t for t, _, _ in chunk)))
        jobs = [(t, info, ev, cases[t]) for t, info, ev in chunk if t in cases]
        finished += len(chunk) - len(jobs)  # traces deleted since sampling
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="looplab-eval") as pool:
            futures: dict[Future[EvalResult], tuple[str, EvaluatorInfo]] = {
                pool.submit(ev.evaluate, case): (t, info) for t, info, ev, case in jobs}
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in done:
                    trace_id, info = futures[future]
                    try:
                        result = future.result()
                    except Exception as err:  # an evaluator must not raise; if one does, one trace fails
                        result = EvalResult(evaluator=info.name, version=stats[info.name].evaluator_version,
                                            value=None, label=None, passed=None, reasoning=None,
                                            error=f"{type(err).__name__}: {err}")
                    record(trace_id, info, result)
                    finished += 1
                if len(pending_rows) >= WRITE_EVERY:
                    flush_rows()
                if progress:
                    progress(finished, total)
        flush_rows()
    if progress:
        progress(total, total)
    return run
