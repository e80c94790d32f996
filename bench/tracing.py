"""Tracing benchmarks: wrapper overhead on the caller's thread, and writer throughput.

Run with ``make bench`` or ``python -m bench.tracing [--calls N] [--spans N]``. Prints figures;
asserts nothing. The fake LLM server runs in a separate process so that it does not compete with
the measured process for the GIL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

import looplab
from looplab.config import Settings
from looplab.tracing import runtime
from looplab.tracing.context import finish_span, open_span


def start_fake_server(latency: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.llm_server", "--port", "0", "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"fake LLM server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_overhead(base_url: str, calls: int, block: int, db: str, upstream_ms: float) -> None:
    runtime.install(Settings(database_url=db))
    raw = openai.OpenAI(base_url=base_url + "/v1", api_key="bench", max_retries=0)
    wrapped = openai.OpenAI(base_url=base_url + "/v1", api_key="bench", max_retries=0)
    # Time the SDK call inside the wrapper too, so looplab's own time on the caller's thread
    # (outer minus inner) is measured in place, caches and all.
    completions = wrapped.chat.completions
    sdk_create = completions.create
    inner_ns: list[int] = []

    def timed_create(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter_ns()
        try:
            return sdk_create(*args, **kwargs)
        finally:
            inner_ns.append(time.perf_counter_ns() - start)

    completions.create = timed_create
    looplab.wrap_openai(wrapped)
    messages = [{"role": "system", "content": "You are a support assistant."},
                {"role": "user", "content": "Where is my parcel? " * 20}]

    def one(client: openai.OpenAI) -> float:
        start = time.perf_counter_ns()
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)
        return time.perf_counter_ns() - start

    for _ in range(100):  # warm up connections, imports, the writer and the price cache
        one(raw)
        one(wrapped)
    looplab.flush()
    inner_ns.clear()
    raw_times: list[float] = []
    wrapped_times: list[float] = []
    block_deltas: list[float] = []
    cpu = {False: 0.0, True: 0.0}  # process CPU seconds (all threads) spent in raw / wrapped blocks
    for b in range(calls // block):
        order = (raw, wrapped) if b % 2 == 0 else (wrapped, raw)
        means = {}
        for client in order:
            is_wrapped = client is wrapped
            if is_wrapped:
                looplab.flush()  # the previous wrapped block's writing is charged to that block
            cpu_start = time.process_time()
            times = [one(client) / 1000 for _ in range(block)]
            if is_wrapped:
                looplab.flush()
            cpu[is_wrapped] += time.process_time() - cpu_start
            (wrapped_times if is_wrapped else raw_times).extend(times)
            means[is_wrapped] = statistics.fmean(times)
        block_deltas.append(means[True] - means[False])
    own = [outer - inner / 1000 for outer, inner in zip(wrapped_times, inner_ns, strict=True)]
    print(f"\nWrapper overhead, chat.completions.create, fake upstream answering in {upstream_ms:g} ms "
          f"({len(raw_times)} calls each, paired blocks of {block}, alternating order)")
    print(f"  raw SDK call       median {statistics.median(raw_times):9.1f} µs   p99 {percentile(raw_times, .99):9.1f} µs")
    print(f"  wrapped SDK call   median {statistics.median(wrapped_times):9.1f} µs   "
          f"p99 {percentile(wrapped_times, .99):9.1f} µs")
    print(f"  looplab's own time on the caller's thread: median {statistics.median(own):6.1f} µs, "
          f"p99 {percentile(own, .99):6.1f} µs")
    print(f"  added end to end (median of paired block differences, background writer included): "
          f"{statistics.median(block_deltas):6.1f} µs")
    cpu_added = (cpu[True] - cpu[False]) / len(wrapped_times) * 1e6
    print(f"  added CPU per call in this process, writer included: {cpu_added:6.1f} µs")
    stats = looplab.stats()
    print(f"  writer: written {stats['written']}, dropped {stats['dropped']}, failures {stats['write_failures']}")


PER_TRACE = 4


def record_bench_traces(spans: int) -> None:
    """Record ``spans`` spans, 1 KB of input and output each, as fast as the caller can."""
    payload_in = {"messages": [{"role": "user", "content": "x" * 1000}]}
    payload_out = {"role": "assistant", "content": "y" * 1000}
    for _ in range(spans // PER_TRACE):
        with looplab.trace("bench", user_id="u1", tags=["bench"]):
            for _ in range(PER_TRACE - 1):
                record = open_span("llm", "call")
                assert record is not None
                record.input, record.output = payload_in, payload_out
                record.provider, record.model = "openai", "gpt-4o-mini"
                record.input_tokens, record.output_tokens = 250, 250
                finish_span(record)


def bench_writer(spans: int, db: str) -> None:
    runtime.install(Settings(database_url=db, max_queue_size=spans + 10))
    with looplab.trace("warm-up"):
        pass
    looplab.flush()
    start = time.perf_counter()
    per_trace = PER_TRACE
    record_bench_traces(spans)
    submitted = time.perf_counter() - start
    looplab.flush(timeout=600)
    total = time.perf_counter() - start
    stats = looplab.stats()
    print(f"\nWriter throughput into SQLite, {spans} spans with 1 KB input and 1 KB output each "
          f"({spans // per_trace} traces of {per_trace} spans)")
    print(f"  recorded (caller side) in {submitted:6.2f} s = {spans / submitted:9.0f} spans/s")
    print(f"  all written and queryable in {total:6.2f} s = {spans / total:9.0f} spans/s")
    print(f"  written {stats['written']}, dropped {stats['dropped']}, rejected {stats['rejected']}; "
          f"database {os.path.getsize(db.removeprefix('sqlite:///')) / 1e6:.0f} MB")


def bench_drain(spans: int, db: str) -> None:
    """The writer alone: the same spans recorded first (not timed), then queued at once and drained."""
    runtime.install(Settings(database_url=db, max_queue_size=spans + 10))
    with looplab.trace("warm-up"):
        pass
    looplab.flush()
    writer = runtime.writer()
    held: list[object] = []
    writer.submit = held.append  # keep the records back while they are made
    try:
        record_bench_traces(spans)
    finally:
        del writer.submit
    start = time.perf_counter()
    writer._queue.extend(held)  # all queued at once: the caller is idle from here on
    del held
    looplab.flush(timeout=600)
    total = time.perf_counter() - start
    stats = looplab.stats()
    print(f"\nWriter alone, draining {spans} queued spans (same spans; the caller idle)")
    print(f"  all written and queryable in {total:6.2f} s = {spans / total:9.0f} spans/s")
    print(f"  written {stats['written']}, dropped {stats['dropped']}, rejected {stats['rejected']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=4000, help="SDK calls per side with an instant upstream")
    parser.add_argument("--slow-calls", type=int, default=1000, help="SDK calls per side with a 20 ms upstream")
    parser.add_argument("--block", type=int, default=50, help="calls per paired block")
    parser.add_argument("--spans", type=int, default=200_000, help="spans for the writer benchmark")
    parser.add_argument("--drain", type=int, default=100_000, help="queued spans for the writer-alone benchmark")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for upstream_ms, calls in ((0.0, args.calls), (20.0, args.slow_calls)):
            if not calls:
                continue
            proc, base_url = start_fake_server(upstream_ms / 1000)
            try:
                bench_overhead(base_url, calls, args.block, f"sqlite:///{Path(folder) / f'overhead{upstream_ms:g}.db'}",
                               upstream_ms)
            finally:
                proc.kill()
        if args.spans:
            bench_writer(args.spans, f"sqlite:///{Path(folder) / 'writer.db'}")
        if args.drain:
            bench_drain(args.drain, f"sqlite:///{Path(folder) / 'drain.db'}")
        runtime.install(Settings(database_url=f"sqlite:///{Path(folder) / 'none.db'}"))


if __name__ == "__main__":
    main()
