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


def start_fake_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.llm_server", "--port", "0"],
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


def bench_overhead(base_url: str, calls: int, block: int, db: str) -> None:
    runtime.install(Settings(database_url=db))
    raw = openai.OpenAI(base_url=base_url + "/v1", api_key="bench", max_retries=0)
    wrapped = looplab.wrap_openai(openai.OpenAI(base_url=base_url + "/v1", api_key="bench", max_retries=0))
    messages = [{"role": "system", "content": "You are a support assistant."},
                {"role": "user", "content": "Where is my parcel? " * 20}]

    def one(client: openai.OpenAI) -> float:
        start = time.perf_counter()
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0)
        return (time.perf_counter() - start) * 1e6

    for _ in range(200):  # warm up connections, imports, the writer and the price cache
        one(raw)
        one(wrapped)
    looplab.flush()
    raw_times: list[float] = []
    wrapped_times: list[float] = []
    block_deltas: list[float] = []
    for b in range(calls // block):
        order = (raw, wrapped) if b % 2 == 0 else (wrapped, raw)
        means = {}
        for client in order:
            times = [one(client) for _ in range(block)]
            (raw_times if client is raw else wrapped_times).extend(times)
            means[client is wrapped] = statistics.fmean(times)
        block_deltas.append(means[True] - means[False])
    looplab.flush()
    print(f"\nWrapper overhead, chat.completions.create against the fake server ({len(raw_times)} calls each, "
          f"paired blocks of {block}, alternating order)")
    print(f"  raw SDK call       median {statistics.median(raw_times):8.1f} µs   p99 {percentile(raw_times, .99):8.1f} µs")
    print(f"  wrapped SDK call   median {statistics.median(wrapped_times):8.1f} µs   "
          f"p99 {percentile(wrapped_times, .99):8.1f} µs")
    print(f"  added, median of per-block differences: {statistics.median(block_deltas):6.1f} µs")
    print(f"  added at the median call: {statistics.median(wrapped_times) - statistics.median(raw_times):6.1f} µs;"
          f" at p99: {percentile(wrapped_times, .99) - percentile(raw_times, .99):6.1f} µs")
    print(f"  writer: {looplab.stats()}")


def bench_writer(spans: int, db: str) -> None:
    payload_in = {"messages": [{"role": "user", "content": "x" * 1000}]}
    payload_out = {"role": "assistant", "content": "y" * 1000}
    runtime.install(Settings(database_url=db, max_queue_size=spans + 10))
    with looplab.trace("warm-up"):
        pass
    looplab.flush()
    start = time.perf_counter()
    per_trace = 4
    for _ in range(spans // per_trace):
        with looplab.trace("bench", user_id="u1", tags=["bench"]):
            for _ in range(per_trace - 1):
                record = open_span("llm", "call")
                assert record is not None
                record.input, record.output = payload_in, payload_out
                record.provider, record.model = "openai", "gpt-4o-mini"
                record.input_tokens, record.output_tokens = 250, 250
                finish_span(record)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=4000, help="SDK calls for the overhead benchmark, per side")
    parser.add_argument("--block", type=int, default=100, help="calls per paired block")
    parser.add_argument("--spans", type=int, default=200_000, help="spans for the writer benchmark")
    args = parser.parse_args()
    proc, base_url = start_fake_server()
    try:
        with tempfile.TemporaryDirectory() as folder:
            bench_overhead(base_url, args.calls, args.block, f"sqlite:///{Path(folder) / 'overhead.db'}")
            bench_writer(args.spans, f"sqlite:///{Path(folder) / 'writer.db'}")
            runtime.install(Settings(database_url=f"sqlite:///{Path(folder) / 'none.db'}"))
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
