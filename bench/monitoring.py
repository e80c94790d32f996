"""Monitoring and Traces page queries at scale: every query those pages run, timed on a big SQLite file.

Run with ``python -m bench.monitoring [--spans 1000000] [--keep PATH]``. Generates ``--spans``
spans (five a trace, so 200,000 traces for a million spans) spread over the last 30 days, with
several names, models, releases, users, tags and scores on about a third of the traces, written
with raw ``executemany`` (not the tracing writer, which is measured in ``bench/tracing.py``). Then
times each service function for the 24h, 7d and 30d windows, with and without a filter, and
prints the median of three runs in milliseconds. Asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import accumulate
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from looplab.store.engine import dispose_engines, upgrade
from looplab.store.filters import TraceFilter

SPANS_PER_TRACE = 5
DAYS = 30
NAMES = ["support-chat", "search-answer", "summarize-ticket", "classify-intent", "draft-reply", "agent-run"]
MODELS = [("gpt-4o-mini", "openai", 0.15, 0.60), ("gpt-4o", "openai", 2.5, 10.0),
          ("claude-sonnet-4", "anthropic", 3.0, 15.0), ("claude-haiku-3.5", "anthropic", 0.8, 4.0),
          ("gemini-2.0-flash", "google", 0.1, 0.4)]
RELEASES = [f"v1.{i}.0" for i in range(8)]
TAGS = ["beta", "mobile", "web", "enterprise", "free-tier", "eu", "us", "retry", "cached", "experiment-a"]
USERS = 5_000
SESSIONS = 40_000

TRACE_SQL = (
    "INSERT INTO traces (id, name, start_time, end_time, duration_ms, session_id, user_id, release, environment,"
    " tags_json, metadata_json, input_json, output_json, status, error, span_count, error_count, input_tokens,"
    " output_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SPAN_SQL = (
    "INSERT INTO spans (trace_id, id, parent_id, kind, name, start_time, end_time, duration_ms, input_json,"
    " output_json, provider, model, params_json, finish_reason, input_tokens, output_tokens, cached_tokens,"
    " cost_usd, pricing_source, ttft_ms, status, error, attributes_json)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
TAG_SQL = "INSERT INTO trace_tags (trace_id, tag) VALUES (?, ?)"
SCORE_SQL = (
    "INSERT INTO scores (id, trace_id, span_id, name, value, label, comment, source, author, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class _TextTime:
    """Epoch seconds as the text SQLAlchemy's SQLite DateTime stores (naive UTC), second part cached."""

    def __init__(self) -> None:
        self._second, self._prefix = -1, ""

    def __call__(self, seconds: float) -> str:
        whole = int(seconds)
        if whole != self._second:
            self._second, self._prefix = whole, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
        return f"{self._prefix}.{int((seconds - whole) * 1e6):06d}"


def _payloads(rng: random.Random, size: int, count: int = 64) -> list[str]:
    words = "the order parcel refund account password invoice delivery address warranty shipping".split()
    return [json.dumps({"messages": [{"role": "user", "content": " ".join(rng.choices(words, k=size // 7))}]})
            for _ in range(count)]


def generate(path: Path, spans: int, now: datetime, seed: int = 7) -> dict[str, int]:
    """Write ``spans`` spans (``spans // 5`` traces) over the ``DAYS`` days before ``now`` into ``path``.

    Each trace: a root span, a retrieval, an LLM call, a tool call and a second LLM call; 3% fail
    (rate limits on the second call). Users follow a Zipf-like law (the busiest of 5,000 has about
    10% of the traffic). About 5% of traces get thumbs from their user, 20% an LLM-judge
    correctness score, 10% a code check and 1% a human label.
    """
    url = f"sqlite:///{path}"
    upgrade(url)  # the schema exactly as looplab migrates it
    rng = random.Random(seed)
    text_time = _TextTime()
    traces = spans // SPANS_PER_TRACE
    trace_in, trace_out = _payloads(rng, 200), _payloads(rng, 300)
    llm_in, llm_out = _payloads(rng, 800), _payloads(rng, 300)
    small = _payloads(rng, 60)
    users = [f"user-{i:05d}" for i in range(USERS)]
    user_weights = list(accumulate(1 / (i + 1) for i in range(USERS)))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-200000")
    # Secondary indexes are dropped while loading and built again after: same schema, found faster.
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                           " AND tbl_name IN ('traces', 'spans', 'trace_tags', 'scores')").fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    first = now.timestamp() - DAYS * 86400
    total_seconds = DAYS * 86400
    starts = sorted(rng.random() * total_seconds for _ in range(traces))
    counts = {"traces": 0, "spans": 0, "scores": 0, "tags": 0}
    batch = 5_000
    for offset in range(0, traces, batch):
        trace_rows: list[tuple[Any, ...]] = []
        span_rows: list[tuple[Any, ...]] = []
        tag_rows: list[tuple[Any, ...]] = []
        score_rows: list[tuple[Any, ...]] = []
        for i in range(offset, min(offset + batch, traces)):
            start = first + starts[i]
            ms = int(start * 1000)
            trace_id = f"{ms:012x}{rng.getrandbits(80):020x}"
            name = NAMES[min(int(rng.expovariate(0.6)), len(NAMES) - 1)]
            model, provider, in_price, out_price = MODELS[min(int(rng.expovariate(0.7)), len(MODELS) - 1)]
            failed = rng.random() < 0.03
            # Latency: log-normal around 0.75 s a call with a long tail, a little slower in later releases.
            release_index = min(int(starts[i] / total_seconds * len(RELEASES)), len(RELEASES) - 1)
            llm_ms = [rng.lognormvariate(6.6 + 0.03 * release_index, 0.6) for _ in range(2)]
            ttft = [d * rng.uniform(0.1, 0.4) for d in llm_ms]
            retrieval_ms, tool_ms = rng.uniform(20, 200), rng.uniform(5, 400)
            duration = sum(llm_ms) + retrieval_ms + tool_ms + rng.uniform(2, 20)
            end = start + duration / 1000
            in_tokens = [rng.randint(200, 3000) for _ in range(2)]
            out_tokens = [rng.randint(20, 800) for _ in range(2)]
            costs = [(a * in_price + b * out_price) / 1e6 for a, b in zip(in_tokens, out_tokens)]
            tags = rng.sample(TAGS, k=rng.choice((0, 1, 1, 2)))
            user = rng.choices(users, cum_weights=user_weights)[0]
            session = f"session-{rng.randrange(SESSIONS):06d}"
            error = "RateLimitError: 429 Too Many Requests" if failed else None
            status = "error" if failed else "ok"
            start_text, end_text = text_time(start), text_time(end)
            trace_rows.append((
                trace_id, name, start_text, end_text, duration, session, user,
                RELEASES[release_index], "production" if rng.random() < 0.9 else "staging",
                json.dumps(tags) if tags else None, None, rng.choice(trace_in), None if failed else rng.choice(trace_out),
                status, error, SPANS_PER_TRACE, 1 if failed else 0, sum(in_tokens), sum(out_tokens), sum(costs),
            ))
            root = f"{rng.getrandbits(64):016x}"
            cursor = start + 0.001
            steps = [("retrieval", "retrieve", retrieval_ms, None), ("llm", "chat", llm_ms[0], 0),
                     ("tool", "lookup_order", tool_ms, None), ("llm", "chat", llm_ms[1], 1)]
            span_rows.append((trace_id, root, None, "span", name, start_text, end_text, duration,
                              rng.choice(trace_in), None, None, None, None, None, None, None, None, None, None, None,
                              status, error, None))
            for kind, span_name, span_ms, llm in steps:
                span_end = cursor + span_ms / 1000
                if llm is None:
                    span_rows.append((trace_id, f"{rng.getrandbits(64):016x}", root, kind, span_name,
                                      text_time(cursor), text_time(span_end), span_ms, rng.choice(small),
                                      rng.choice(small), None, None, None, None, None, None, None, None, None, None,
                                      "ok", None, None))
                else:
                    span_failed = failed and llm == 1
                    span_rows.append((trace_id, f"{rng.getrandbits(64):016x}", root, kind, span_name,
                                      text_time(cursor), text_time(span_end), span_ms, rng.choice(llm_in),
                                      None if span_failed else rng.choice(llm_out), provider, model,
                                      '{"temperature": 0}', None if span_failed else "stop", in_tokens[llm],
                                      out_tokens[llm], 0, costs[llm], "genai-prices", ttft[llm],
                                      "error" if span_failed else "ok", error if span_failed else None, None))
                cursor = span_end
            tag_rows.extend((trace_id, tag) for tag in tags)
            created = text_time(end + 5)
            draw = rng.random
            if draw() < 0.05:
                up = draw() < 0.8
                score_rows.append((f"{ms:012x}{rng.getrandbits(80):020x}", trace_id, None, "thumbs", 1.0 if up else 0.0,
                                   None, None if up or draw() < 0.5 else "wrong answer", "user_feedback", user,
                                   created))
            if draw() < 0.2:
                score_rows.append((f"{ms:012x}{rng.getrandbits(80):020x}", trace_id, None, "correctness",
                                   round(rng.betavariate(5, 1.5), 3), None, None, "llm_judge", "judge-v1", created))
            if draw() < 0.1:
                score_rows.append((f"{ms:012x}{rng.getrandbits(80):020x}", trace_id, None, "valid_json",
                                   1.0 if draw() < 0.95 else 0.0, None, None, "code", None, created))
            if draw() < 0.01:
                score_rows.append((f"{ms:012x}{rng.getrandbits(80):020x}", trace_id, None, "correctness",
                                   rng.choice((0.0, 0.5, 1.0)), None, None, "human", "expert", created))
        conn.execute("BEGIN")
        conn.executemany(TRACE_SQL, trace_rows)
        conn.executemany(SPAN_SQL, span_rows)
        conn.executemany(TAG_SQL, tag_rows)
        conn.executemany(SCORE_SQL, score_rows)
        conn.execute("COMMIT")
        counts["traces"] += len(trace_rows)
        counts["spans"] += len(span_rows)
        counts["tags"] += len(tag_rows)
        counts["scores"] += len(score_rows)
    for _, sql in indexes:
        conn.execute(sql)
    conn.close()
    return counts


def median_ms(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def _size(result: Any) -> str:
    """What a query returned, in a few characters: rows, a count, or spans of a trace."""
    for attribute in ("rows", "spans"):
        if hasattr(result, attribute):
            return f"{len(getattr(result, attribute)):,} {attribute}"
    if isinstance(result, (list, dict)):
        return f"{len(result):,} rows"
    return f"{result:,}" if isinstance(result, int) else type(result).__name__


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def cases(url: str, now: datetime) -> Iterator[tuple[str, str, Callable[[], Any]]]:
    """(query, window and filter, call) for each query the Monitoring and Traces pages run."""
    from looplab.monitoring import attention, metrics

    attention.ensure_default_rules(url)  # what the Monitoring page does on its first visit
    for range_key in ("24h", "7d", "30d"):
        for label, lists in (("", {}), ("name", {"names": ["search-answer"]}),
                             ("model", {"models": ["claude-sonnet-4"]}), ("tag", {"tags": ["eu"]})):
            if label in ("model", "tag") and range_key != "7d":
                continue
            flt = TraceFilter.last(range_key, now, **lists)
            where = range_key + (f" + {label}" if label else "")
            yield "timeseries", where, lambda flt=flt: metrics.timeseries(url, flt)
            yield "ttft_timeseries", where, lambda flt=flt: metrics.ttft_timeseries(url, flt)
            yield "score_timeseries", where, lambda flt=flt: metrics.score_timeseries(url, flt)
            yield "summary(compare)", where, lambda flt=flt: metrics.summary(url, flt, compare=True)
            for by in metrics.BREAKDOWNS:
                yield f"breakdown({by})", where, lambda flt=flt, by=by: metrics.breakdown(url, flt, by)
            yield "filter_options", where, lambda flt=flt: metrics.filter_options(url, flt)
            yield "attention_items", where, lambda flt=flt: attention.attention_items(url, flt, limit=50)
            yield "attention_count", where, lambda flt=flt: attention.attention_count(url, flt)
    explorer = _optional("looplab.explorer")
    list_traces = getattr(explorer, "list_traces", None)
    trace_detail = getattr(explorer, "trace_detail", None)
    if list_traces is not None:
        for range_key in ("24h", "7d", "30d"):
            for label, lists in (("", {}), ("name", {"names": ["search-answer"]}), ("user", {"user_ids": ["user-00001"]})):
                flt = TraceFilter.last(range_key, now, **lists)
                where = range_key + (f" + {label}" if label else "")
                yield "explorer.list_traces (page 1)", where, lambda flt=flt: list_traces(url, flt)
        if trace_detail is not None:
            from sqlalchemy import select

            from looplab.store.engine import read_session
            from looplab.store.models import Trace

            with read_session(url) as session:
                some_id = session.scalar(select(Trace.id).order_by(Trace.start_time.desc()).limit(1).offset(1000))
            yield "explorer.trace_detail", "one trace", lambda: trace_detail(url, some_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans to generate (five a trace)")
    parser.add_argument("--keep", type=Path, help="keep the database at this path (reused when it exists)")
    parser.add_argument("--runs", type=int, default=3, help="runs per query; the median is printed")
    parser.add_argument("--no-analyze", action="store_true", help="do not run ANALYZE after generating")
    parser.add_argument("--only", help="only time queries whose name contains this text")
    parser.add_argument("--fresh-rollups", action="store_true",
                        help="forget the kept file's per-day rollups first, to time building a month of them")
    args = parser.parse_args()

    folder = tempfile.TemporaryDirectory(prefix="looplab-bench-")
    path = args.keep or Path(folder.name) / "monitoring.db"
    if args.keep and path.exists():
        conn = sqlite3.connect(path)  # windows end just after its newest trace
        newest = conn.execute("SELECT max(start_time) FROM traces").fetchone()[0]
        conn.close()
        now = datetime.fromisoformat(newest).replace(tzinfo=timezone.utc) + timedelta(seconds=1)
        print(f"reusing {path}")
    else:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        started = time.perf_counter()
        counts = generate(path, args.spans, now)
        elapsed = time.perf_counter() - started
        print(f"generated {counts['traces']:,} traces, {counts['spans']:,} spans, {counts['scores']:,} scores, "
              f"{counts['tags']:,} tags in {elapsed:.1f} s ({path.stat().st_size / 1e6:,.0f} MB)")
        if not args.no_analyze:
            started = time.perf_counter()
            conn = sqlite3.connect(path)
            conn.execute("ANALYZE")
            conn.close()
            print(f"ANALYZE in {time.perf_counter() - started:.1f} s")
    url = f"sqlite:///{path}"
    _roll_up(url, now, args.fresh_rollups)
    rows = []
    try:
        for query, where, call in cases(url, now):
            if args.only and args.only not in query:
                continue
            call()  # warm: the first run pays for opening the engine and reading pages from disk
            ms, result = median_ms(call, args.runs)
            size = _size(result)
            rows.append((query, where, ms, size))
            print(f"{query:32} {where:16} {ms:8.1f} ms  ({size})", flush=True)
        print()
        print(_table(rows))
    finally:
        dispose_engines()
        folder.cleanup()


def _roll_up(url: str, now: datetime, fresh: bool) -> None:
    """Build the closed days' rollups the 30-day breakdowns read, as a first look at a month does,
    and print how long that took (nothing to build on a kept file, unless ``fresh``)."""
    from sqlalchemy import delete

    from looplab.monitoring import rollups
    from looplab.store.engine import write_session
    from looplab.store.models import RollupDay

    if fresh:
        with write_session(url) as session:
            session.execute(delete(RollupDay))
    days = rollups.closed_days(now - timedelta(days=30), now)
    started = time.perf_counter()
    built = rollups.ensure_days(url, days)
    print(f"rollups: built {built} of the month's {len(days)} closed days in {time.perf_counter() - started:.1f} s")


def _table(rows: list[tuple[str, str, float, str]]) -> str:
    """The timings as a Markdown table: a row per query, a column per window and filter."""
    columns = list(dict.fromkeys(where for _, where, _, _ in rows))
    queries = list(dict.fromkeys(query for query, _, _, _ in rows))
    cells = {(query, where): ms for query, where, ms, _ in rows}
    lines = ["| query (ms, median of 3) | " + " | ".join(columns) + " |",
             "| --- |" + " ---: |" * len(columns)]
    for query in queries:
        lines.append(f"| {query} | " + " | ".join(
            f"{cells[query, where]:.0f}" if (query, where) in cells else "" for where in columns) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
