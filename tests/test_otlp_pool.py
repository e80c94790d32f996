"""OTLP exports run in worker processes (``looplab gateway``'s default): stored as on threads, errors
answered as on threads, and no process left behind, whether the server stops or dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from looplab.errors import ConfigError, StoreError
from looplab.otlp.http import otlp_routes
from looplab.otlp.pool import ExportPool
from tests.otlp_builders import (
    PB,
    genai_chat_attributes,
    new_span_id,
    new_trace_id,
    request,
    span,
)
from tests.stored import stored_spans, stored_traces


@pytest.fixture
def pool() -> Iterator[ExportPool]:
    running = ExportPool(2)
    try:
        yield running
    finally:
        running.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not yet reaped by its (dead) parent is a zombie: gone all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return os.name != "posix" or not Path("/proc").exists()


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_exports_sent_at_once_are_all_stored_and_a_bad_one_is_explained(pool: ExportPool, db_url: str) -> None:
    traces = [new_trace_id() for _ in range(8)]
    bodies = [request(span(t, new_span_id(), "chat gpt-4o-mini", attributes=genai_chat_attributes()),
                      span(t, new_span_id(), "tool", attributes={"my.custom": "kept"})).SerializeToString()
              for t in traces]
    with TestClient(Starlette(routes=otlp_routes(db_url, pool=pool))) as client:
        with ThreadPoolExecutor(4) as senders:
            answers = list(senders.map(lambda body: client.post("/v1/traces", content=body, headers=PB), bodies))
        cut = client.post("/v1/traces", content=bodies[0][:-7], headers=PB)
    assert [a.status_code for a in answers] == [200] * 8
    # The error raised in an export process comes back as the same answer threads give.
    assert cut.status_code == 400 and b"not a valid OTLP protobuf" in cut.content
    assert {t["id"] for t in stored_traces(db_url)} == {t.hex() for t in traces}
    assert len(stored_spans(db_url)) == 16


def test_a_killed_export_process_costs_one_503_then_new_processes_take_over(pool: ExportPool) -> None:
    async def scenario() -> tuple[int, str, int]:
        first = await pool.run(os.getpid)
        os.kill(first, signal.SIGKILL)
        assert _gone_within([first], 10)
        await asyncio.sleep(0.2)  # the pool notices its process is gone
        with pytest.raises(StoreError) as refused:
            await pool.run(os.getpid)
        return first, str(refused.value), await pool.run(os.getpid)

    killed, message, replacement = asyncio.run(scenario())
    assert "send it again" in message
    assert replacement not in (killed, os.getpid())


_SERVER = """
import asyncio, os, sys
from looplab.otlp.pool import ExportPool
pool = ExportPool(2)
async def main():
    pids = set()
    while len(pids) < 2:  # both processes started and answering
        pids.update(await asyncio.gather(*(pool.run(os.getpid) for _ in range(8))))
    print(" ".join(map(str, sorted(pids))), flush=True)
asyncio.run(main())
{end}
"""


@pytest.mark.parametrize(("end", "how"), [
    ("pool.close()", "closed on shutdown"),
    ("os._exit(0)", "the server exits without closing them"),
    ("os.kill(os.getpid(), 9)", "the server is killed"),
])
def test_no_export_process_outlives_the_server(end: str, how: str) -> None:
    server = subprocess.run([sys.executable, "-c", textwrap.dedent(_SERVER.format(end=end))], capture_output=True,
                            text=True, timeout=120, check=False, cwd=Path(__file__).parent.parent)
    pids = [int(p) for p in server.stdout.split()]
    assert len(pids) == 2, server.stderr
    assert _gone_within(pids, 10), f"export processes left running when {how}"


def test_a_redact_hook_other_processes_cannot_import_is_refused_up_front(pool: ExportPool, db_url: str) -> None:
    with pytest.raises(ConfigError, match="top level of a module"):
        otlp_routes(db_url, redact=lambda value: value, pool=pool)
