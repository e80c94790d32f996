"""OTLP ingest throughput: spans/s from the first request until every span is queryable in SQLite.

The gateway's app with its OTLP routes is served by uvicorn in a process of their own (as the
gateway runs apart from the apps that export to it). Realistic GenAI spans (traces of one agent span and three chat
spans, each chat carrying about 1 KB of input and output messages, tokens, model, parameters)
are encoded beforehand as protobuf batches of 512 spans, as the SDK's BatchSpanProcessor sends
them, and posted by a few concurrent senders over keep-alive connections. A request is answered
once its transaction has committed; the clock stops after a final ``count(*)`` has seen them all.

    python -m bench.otlp [--spans 100000] [--senders 4] [--batch 512]

Run it on a quiet machine, e.g. ``flock /tmp/looplab-bench.lock .venv/bin/python -m bench.otlp``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

BATCH = 512
SENDERS = 4
_QUESTION = ("Our customer writes: I ordered the blue backpack last week and it still has not shipped. "
             "The tracking page says label created. Can you tell me when it will arrive and whether I can "
             "change the delivery address to my office? ") * 2
_ANSWER = ("I am sorry for the wait. The backpack left our warehouse this morning and should arrive within "
           "two business days. You can change the delivery address from the tracking page until it is out "
           "for delivery; I have added a note to your order as well. ")


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _chat_attributes(i: int) -> list[KeyValue]:
    messages = [{"role": "system", "parts": [{"type": "text", "content": "You are a support agent for a shop."}]},
                {"role": "user", "parts": [{"type": "text", "content": f"{_QUESTION} (#{i})"}]}]
    output = [{"role": "assistant", "parts": [{"type": "text", "content": _ANSWER}], "finish_reason": "stop"}]
    return [_kv(k, v) for k, v in {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini", "gen_ai.request.temperature": 0.2, "gen_ai.request.max_tokens": 512,
        "gen_ai.usage.input_tokens": 210 + i % 50, "gen_ai.usage.output_tokens": 60 + i % 20,
        "gen_ai.response.id": f"chatcmpl-{i:012d}", "gen_ai.response.finish_reasons": "stop",
        "gen_ai.input.messages": json.dumps(messages), "gen_ai.output.messages": json.dumps(output),
    }.items()]


def make_spans(count: int) -> list[Span]:
    """``count`` spans: traces of an agent span (sent last, as it ends last) and three chat spans."""
    spans: list[Span] = []
    now = time.time_ns()
    trace = 0
    while len(spans) < count:
        trace_id = os.urandom(16)
        root_id = os.urandom(8)
        start = now + trace * 1_000_000
        for step in range(3):
            span = Span(trace_id=trace_id, span_id=os.urandom(8), parent_span_id=root_id, name="chat gpt-4o-mini",
                        kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start + step * 300_000_000,
                        end_time_unix_nano=start + step * 300_000_000 + 250_000_000)
            span.attributes.extend(_chat_attributes(trace * 3 + step))
            spans.append(span)
        root = Span(trace_id=trace_id, span_id=root_id, name="support agent", kind=Span.SPAN_KIND_SERVER,
                    start_time_unix_nano=start, end_time_unix_nano=start + 1_000_000_000)
        root.attributes.extend([_kv("session.id", f"session-{trace % 1000}"), _kv("user.id", f"user-{trace % 300}"),
                                _kv("input.value", "where is my backpack?"), _kv("output.value", "arriving soon")])
        spans.append(root)
        trace += 1
    return spans[:count]


def make_bodies(spans: list[Span], batch: int) -> list[bytes]:
    """Protobuf ``ExportTraceServiceRequest`` bodies of ``batch`` spans each, one resource and scope."""
    bodies = []
    for first in range(0, len(spans), batch):
        resource_spans = ResourceSpans()
        resource_spans.resource.attributes.extend([_kv("service.name", "support-bot"), _kv("service.version", "1.4.2"),
                                                   _kv("telemetry.sdk.language", "python")])
        scope = ScopeSpans()
        scope.scope.name = "opentelemetry.instrumentation.openai"
        scope.spans.extend(spans[first:first + batch])
        resource_spans.scope_spans.append(scope)
        bodies.append(ExportTraceServiceRequest(resource_spans=[resource_spans]).SerializeToString())
    return bodies


def app() -> Any:
    """The app uvicorn serves: the gateway's, as ``looplab gateway`` builds it (a factory, so that
    several worker processes can each build one)."""
    from looplab.gateway.cli import gateway_app
    from looplab.gateway.settings import GatewaySettings
    from looplab.otlp.http import DEFAULT_MAX_BODY_BYTES

    return gateway_app(GatewaySettings(database_url=os.environ["LOOPLAB_BENCH_OTLP_URL"]), DEFAULT_MAX_BODY_BYTES,
                       int(os.environ["LOOPLAB_BENCH_OTLP_PROCESSES"]))


def _serve(url: str, port: int, workers: int, processes: int) -> None:
    import uvicorn

    os.environ["LOOPLAB_BENCH_OTLP_URL"] = url
    os.environ["LOOPLAB_BENCH_OTLP_PROCESSES"] = str(processes)
    uvicorn.run("bench.otlp:app", factory=True, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                workers=workers)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the OTLP server did not start")


def _send(port: int, bodies: list[bytes], failures: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for body in bodies:
            conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                failures.append(f"{response.status}: {answer[:200]!r}")
    finally:
        conn.close()


def throughput(spans: int = 100_000, senders: int = SENDERS, batch: int = BATCH, workers: int = 1,
               processes: int | None = None) -> dict[str, Any]:
    """OTLP ingest into a fresh SQLite file: spans/s until all are queryable, and what was measured."""
    from sqlalchemy import text

    from looplab.otlp.pool import default_processes
    from looplab.store.engine import dispose_engines, get_engine

    processes = default_processes() if processes is None else processes
    with tempfile.TemporaryDirectory(prefix="looplab-bench-otlp-") as folder:
        url = f"sqlite:///{Path(folder) / 'looplab.db'}"
        get_engine(url)  # migrated before the clock starts, as the gateway does on start
        bodies = make_bodies(make_spans(spans), batch)
        port = _free_port()
        server = multiprocessing.get_context("spawn").Process(target=_serve, args=(url, port, workers, processes))
        server.start()
        try:
            _wait_listening(port)
            # Warm up each process (engine, pricing cache): at once, so that every one gets some.
            warm_ups = workers * max(2, processes) * 2
            warming = [threading.Thread(target=_send, args=(port, [body], []))
                       for body in make_bodies(make_spans(8 * warm_ups), 8)]
            for thread in warming:
                thread.start()
            for thread in warming:
                thread.join()
            failures: list[str] = []
            shares = [bodies[i::senders] for i in range(senders)]
            threads = [threading.Thread(target=_send, args=(port, share, failures)) for share in shares]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with get_engine(url).connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM spans")).scalar_one() - 8 * warm_ups
                traces = conn.execute(text("SELECT count(*) FROM traces")).scalar_one() - 2 * warm_ups
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            server.join(10)
            dispose_engines()
        size = sum(len(b) for b in bodies)
    return {
        "spans": spans, "stored": stored, "traces": traces, "requests": len(bodies), "batch": batch,
        "senders": senders, "workers": workers, "processes": processes, "failures": len(failures), "first_failure": failures[0] if failures else None,
        "seconds": round(elapsed, 2), "spans_per_s": round(stored / elapsed), "mb_per_s": round(size / elapsed / 1e6, 1),
        "bytes_per_span": round(size / spans),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=SENDERS)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--processes", type=int, default=None,
                        help="export processes (looplab gateway --otlp-processes; default: as it, 0: threads)")
    args = parser.parse_args()
    result = throughput(args.spans, args.senders, args.batch, args.workers, args.processes)
    print(f"OTLP ingest into SQLite: {result['spans_per_s']:,} spans/s until queryable "
          f"({result['stored']:,} of {result['spans']:,} spans, {result['traces']:,} traces, "
          f"{result['requests']} requests of {result['batch']} from {result['senders']} senders to "
          f"{result['workers']} uvicorn worker(s) with {result['processes']} export process(es) each, "
          f"{result['seconds']} s, {result['bytes_per_span']} B/span, {result['mb_per_s']} MB/s, "
          f"{result['failures']} failed requests)")
    if result["first_failure"]:
        print(f"first failure: {result['first_failure']}")


if __name__ == "__main__":
    main()
