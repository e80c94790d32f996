"""Gateway benchmark: latency the gateway adds over calling the upstream directly.

Run with ``python -m bench.gateway [--clients 32] [--requests 4000] [--upstream-ms 50]`` (under
``flock /tmp/looplab-bench.lock`` on a shared machine). Prints figures; asserts nothing.

Three processes: the fake LLM server (the upstream), ``looplab gateway`` recording into a fresh
SQLite file, and this one driving ``--clients`` concurrent clients (asyncio, one pooled
``httpx2.AsyncClient``, as the SDKs use). Each client alternates a direct call and a call through
the gateway, switching which goes first, so both see the same load over the same run; the added
latency is the gateway's percentile minus the direct one. Also timed: the first streamed byte
through the gateway against directly, one client at a time, and, when ``bench/otlp.py`` exists,
its OTLP ingest throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from bench.tracing import percentile, start_fake_server

_COMMAND = """
import typer
from looplab.gateway.cli import gateway_command
app = typer.Typer(add_completion=False)
app.command()(gateway_command)
app()
"""
_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Where is my parcel P-1234?"}]}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_gateway(upstream: str, db: str, log: Path, workers: int = 1) -> tuple[subprocess.Popen[str], str]:
    """``looplab gateway`` in its own process, forwarding to ``upstream``; returns it and its URL.

    Its output goes to the file ``log`` (a pipe nobody reads would stall it once full).
    """
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _COMMAND, "--port", str(port), "--db", db, "--openai-base-url", upstream + "/v1",
             "--anthropic-base-url", upstream, "--workers", str(workers)],
            stdout=out, stderr=subprocess.STDOUT, text=True, env={**os.environ, "LOOPLAB_API_KEY": ""})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway did not start: {log.read_text()}")
        try:
            if httpx2.get(url + "/healthz").status_code == 200:
                return proc, url
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the gateway did not answer /healthz within 30 s")
        time.sleep(0.1)


async def _paired_load(direct: str, gateway: str, clients: int, requests: int) -> tuple[list[float], list[float]]:
    direct_ms: list[float] = []
    gateway_ms: list[float] = []
    limits = httpx2.Limits(max_connections=2 * clients, max_keepalive_connections=2 * clients)
    async with httpx2.AsyncClient(limits=limits, timeout=60) as client:
        headers = {"authorization": "Bearer bench"}

        async def one(url: str, into: list[float]) -> None:
            started = time.perf_counter()
            response = await client.post(url + "/v1/chat/completions", json=_BODY, headers=headers)
            into.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()

        async def run_client(index: int, count: int) -> None:
            for i in range(count):
                if (i + index) % 2:
                    await one(direct, direct_ms)
                    await one(gateway, gateway_ms)
                else:
                    await one(gateway, gateway_ms)
                    await one(direct, direct_ms)

        per_client = max(1, requests // clients // 2)
        await asyncio.gather(*(run_client(i, 2) for i in range(clients)))  # warm up pools and caches
        direct_ms.clear()
        gateway_ms.clear()
        await asyncio.gather(*(run_client(i, per_client) for i in range(clients)))
    return direct_ms, gateway_ms


def _first_byte_ms(url: str, calls: int) -> list[float]:
    body = {**_BODY, "stream": True}
    times: list[float] = []
    with httpx2.Client(timeout=60) as client:
        for _ in range(calls + 3):
            started = time.perf_counter()
            with client.stream("POST", url + "/v1/chat/completions", json=body,
                               headers={"authorization": "Bearer bench"}) as response:
                chunks = response.iter_raw()
                next(chunks)
                times.append((time.perf_counter() - started) * 1000)
                for _chunk in chunks:
                    pass
    return times[3:]


def _row(name: str, direct: list[float], through: list[float]) -> str:
    cells = [f"{percentile(direct, q):7.2f} {percentile(through, q):7.2f} {percentile(through, q) - percentile(direct, q):+7.2f}"
             for q in (0.5, 0.9, 0.99)]
    return f"{name:<28} " + "   ".join(cells)


def bench_gateway(clients: int, requests: int, upstream_ms: float, stream_calls: int,
                  workers: int = 1) -> dict[str, Any]:
    """Run the paired load and the first-byte comparison; print and return the figures."""
    fake, upstream = start_fake_server(latency=upstream_ms / 1000)
    with tempfile.TemporaryDirectory(prefix="looplab-bench-gateway-") as folder:
        db = f"sqlite:///{Path(folder) / 'looplab.db'}"
        log = Path(folder) / "gateway.log"
        gateway_proc, gateway = start_gateway(upstream, db, log, workers)
        try:
            started = time.perf_counter()
            direct_ms, gateway_ms = asyncio.run(_paired_load(upstream, gateway, clients, requests))
            elapsed = time.perf_counter() - started
            direct_first = _first_byte_ms(upstream, stream_calls)
            gateway_first = _first_byte_ms(gateway, stream_calls)
        finally:
            gateway_proc.terminate()
            gateway_proc.wait(30)
            fake.terminate()
            fake.wait(10)
            problems = [line for line in log.read_text().splitlines() if "WARNING" in line or "ERROR" in line
                        or "Warning" in line or "Error" in line]
            if problems:
                print("gateway log:", *problems[:20], sep="\n  ")
        from sqlalchemy import create_engine, text

        engine = create_engine(db)
        with engine.connect() as conn:
            recorded = conn.execute(text("SELECT count(*) FROM spans")).scalar_one()
        engine.dispose()
    calls = len(direct_ms) + len(gateway_ms)
    print(f"{clients} concurrent clients, {calls:,} calls in {elapsed:.1f} s ({calls / elapsed:,.0f}/s, half of them "
          f"through the gateway, {workers} gateway worker(s)), upstream latency {upstream_ms:g} ms; "
          f"{recorded:,} spans recorded "
          f"(warm-up and first-byte calls included)")
    print(f"{'ms':<28} {'p50: direct gateway added':>25}   {'p90: direct gateway added':>25}   "
          f"{'p99: direct gateway added':>25}")
    print(_row("plain chat completion", direct_ms, gateway_ms))
    print(_row("streamed, first byte (1 client)", direct_first, gateway_first))
    return {
        "added_p50_ms": percentile(gateway_ms, 0.5) - percentile(direct_ms, 0.5),
        "added_p99_ms": percentile(gateway_ms, 0.99) - percentile(direct_ms, 0.99),
        "first_byte_added_p50_ms": percentile(gateway_first, 0.5) - percentile(direct_first, 0.5),
        "calls_per_s": calls / elapsed,
        "recorded_spans": recorded,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=12000,
                        help="calls in all, half of them through the gateway (enough for a steady p99)")
    parser.add_argument("--upstream-ms", type=float, default=200.0, help="the fake upstream's latency per call")
    parser.add_argument("--stream-calls", type=int, default=50)
    parser.add_argument("--otlp-spans", type=int, default=50_000, help="0 skips the OTLP ingest figure")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes (looplab gateway --workers)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    bench_gateway(args.clients, args.requests, args.upstream_ms, args.stream_calls, args.workers)
    if args.otlp_spans and importlib.util.find_spec("bench.otlp") is not None:
        from bench import otlp

        figures = otlp.throughput(args.otlp_spans, workers=args.workers)
        print("OTLP ingest: " + ", ".join(f"{key} {value:,.0f}" if isinstance(value, (int, float)) else f"{key} {value}"
                                         for key, value in figures.items()))
    elif args.otlp_spans:
        print("OTLP ingest: bench/otlp.py is not there; skipped")


if __name__ == "__main__":
    main()
