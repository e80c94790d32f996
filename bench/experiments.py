"""The experiment runner: throughput against the ideal, and memory as items grow.

Run with ``python -m bench.experiments [--items 500] [--latency 0.1] [--concurrency 16]
[--memory-sizes 1000,5000,20000]``. Asserts nothing.

1. **Throughput**: ``--items`` items through the real ``openai`` client (``openai:`` model string)
   against the fake LLM server started standalone (``python -m tests.fakes.llm_server``) with
   ``--latency`` seconds per answer, ``--concurrency`` at once, traced into the same SQLite file,
   with an exact-match evaluator. The ideal wall time is items x latency / concurrency; the
   target is at least 80% of ideal (wall time at most 1.25x the ideal).
2. **Memory**: each size in a fresh process (so peak RSS is that run's own), items through the
   offline ``mock:`` provider with ``latency_ms`` 1, concurrency 16: peak RSS of the process and
   tracemalloc's peak of Python allocations during ``run_experiment`` alone. Flat means the peak
   does not grow with the number of items.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import looplab
from looplab.datasets import NewItem, add_items, create_dataset
from looplab.experiments.runner import create_experiment, run_experiment
from looplab.experiments.variants import VariantSpec
from looplab.store.engine import dispose_engines


def _dataset(url: str, count: int) -> None:
    create_dataset(url, "bench")
    for start in range(0, count, 5000):
        add_items(url, "bench", [NewItem(input={"question": f"Where is parcel {i}?"}, expected_output=f"answer {i}")
                                 for i in range(start, min(count, start + 5000))])


def _timed_run(url: str, name: str, variant: VariantSpec, concurrency: int, items: int) -> dict[str, Any]:
    """One experiment over the bench dataset: wall seconds, CPU ms an item, and its summary."""
    eid = create_experiment(url, name, "bench", variant, evaluators=[{"name": "exact", "type": "exact_match"}],
                            concurrency=concurrency)
    started, cpu = time.perf_counter(), time.process_time()
    summary = run_experiment(url, eid)
    return {"wall_s": time.perf_counter() - started, "cpu_ms": (time.process_time() - cpu) / items * 1000,
            "ok": summary.ok, "errors": summary.errors}


def throughput(items: int, latency: float, concurrency: int, rounds: int = 2) -> dict[str, Any]:
    """The runner's wall time over ``items`` items, traced and untraced, alternated ``rounds`` times.

    The first run of a fresh process also pays for importing the SDK (about 0.8 s for ``openai``),
    opening connections and compiling statements; it is reported on its own ("cold") and the
    alternated runs that follow it are the runner's steady pace.
    """
    server = subprocess.Popen([sys.executable, "-m", "tests.fakes.llm_server", "--port", "0", "--latency", str(latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        base = ready[1]
        os.environ["OPENAI_API_KEY"] = "sk-bench-0123456789abcdef"
        os.environ["OPENAI_BASE_URL"] = base + "/v1"
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            _dataset(url, items)
            variant = VariantSpec(name="bench", kind="prompt", model="openai:gpt-4o-mini", system="Answer briefly.",
                                  prompt="{{ input.question }}")
            looplab.configure(database_url=url)
            cold = _timed_run(url, "cold", variant, concurrency, items)
            runs: dict[str, list[dict[str, Any]]] = {"traced": [], "untraced": []}
            for i in range(rounds):
                for mode in (("traced", "untraced") if i % 2 == 0 else ("untraced", "traced")):
                    looplab.configure(database_url=url, enabled=mode == "traced")
                    runs[mode].append(_timed_run(url, f"{mode} {i}", variant, concurrency, items))
            looplab.configure(enabled=False)
            dispose_engines()
            sdk = _pool(items, concurrency, _sdk_call(base))
            provider = _pool(items, concurrency, _provider_call)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {"items": items, "ideal_s": items * latency / concurrency, "cold": cold, **runs,
            "sdk_s": sdk, "provider_s": provider}


def _sdk_call(base: str) -> Any:
    import openai

    client = openai.OpenAI(base_url=base + "/v1", api_key="sk-bench-0123456789abcdef", max_retries=0)
    return lambda i: client.chat.completions.create(model="gpt-4o-mini",
                                                    messages=[{"role": "user", "content": f"Where is parcel {i}?"}])


def _provider_call(i: int) -> Any:
    from looplab.providers import complete

    return complete("openai:gpt-4o-mini", [{"role": "user", "content": f"Where is parcel {i}?"}])


def _pool(items: int, concurrency: int, call: Any) -> float:
    """Wall time of ``items`` calls in a plain pool of ``concurrency`` threads: the ceiling for the runner."""
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, range(concurrency)))  # connections opened, imports done
        started = time.perf_counter()
        list(pool.map(call, range(items)))
        return time.perf_counter() - started


def memory_one(count: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        _dataset(url, count)
        variant = VariantSpec(name="bench-mock", kind="prompt", model="mock:support",
                              params={"quality": 0.8, "latency_ms": 1},
                              prompt="{{ input.question }}\nReference answer: {{ expected }}")
        eid = create_experiment(url, "memory", "bench", variant, evaluators=[{"name": "exact", "type": "exact_match"}],
                                concurrency=concurrency)
        rss_before = _rss_mb()
        samples = [rss_before]
        running = threading.Event()
        running.set()

        def sample() -> None:
            while running.is_set():
                samples.append(_rss_mb())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        tracemalloc.start()
        started = time.perf_counter()
        summary = run_experiment(url, eid)
        wall = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        running.clear()
        sampler.join()
        dispose_engines()
    return {"items": count, "ok": summary.ok, "wall_s": wall, "items_per_s": count / wall,
            "tracemalloc_peak_mb": peak / 2**20, "peak_rss_mb": max(samples), "rss_before_mb": rss_before,
            "rss_growth_mb": max(samples) - rss_before}


def _rss_mb() -> float:
    """This process's resident memory now (Linux), in MB."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--memory-sizes", default="1000,5000,20000")
    parser.add_argument("--memory-one", type=int, help=argparse.SUPPRESS)  # the child process of part 2
    args = parser.parse_args()
    if args.memory_one:
        print(json.dumps(memory_one(args.memory_one, args.concurrency)))
        return

    result = throughput(args.items, args.latency, args.concurrency)
    ideal = result["ideal_s"]
    print(f"Throughput: {args.items} items, fake server {args.latency * 1000:.0f} ms a call, "
          f"concurrency {args.concurrency}, openai client, one evaluator (ideal {ideal:.2f} s; target >= 80% of it)")
    print(f"{'ok':>6} {'errors':>6} {'wall s':>8} {'of ideal':>9} {'CPU ms/item':>12}")
    rows = [("run_experiment, traced, first run of the process (cold)", result["cold"])]
    rows += [(f"run_experiment, {mode}, warm run {i + 1}", run)
             for mode in ("traced", "untraced") for i, run in enumerate(result[mode])]
    for label, run in rows:
        print(f"{run['ok']:>6} {run['errors']:>6} {run['wall_s']:>8.2f} {ideal / run['wall_s']:>8.0%} "
              f"{run['cpu_ms']:>12.1f}  {label}")
    for label, key in (("openai SDK alone, same pool, untraced", "sdk_s"),
                       ("providers.complete, same pool, untraced", "provider_s")):
        print(f"{'':>6} {'':>6} {result[key]:>8.2f} {ideal / result[key]:>8.0%} {'':>12}  {label}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print()
    print(f"Memory: mock provider (1 ms a call), concurrency {args.concurrency}, each size in a fresh process")
    print(f"{'items':>7} {'wall s':>8} {'items/s':>8} {'tracemalloc peak MB':>20} {'RSS before MB':>14} "
          f"{'peak RSS MB':>12} {'RSS growth MB':>14}")
    for size in (int(s) for s in args.memory_sizes.split(",") if s):
        out = subprocess.run([sys.executable, "-m", "bench.experiments", "--memory-one", str(size),
                              "--concurrency", str(args.concurrency)], capture_output=True, text=True, check=True)
        m = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{m['items']:>7} {m['wall_s']:>8.1f} {m['items_per_s']:>8.0f} {m['tracemalloc_peak_mb']:>20.1f} "
              f"{m['rss_before_mb']:>14.0f} {m['peak_rss_mb']:>12.0f} {m['rss_growth_mb']:>14.1f}")


if __name__ == "__main__":
    main()
