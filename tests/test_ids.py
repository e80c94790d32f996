"""Trace and span ids: the shape OpenTelemetry expects, time-sorted traces, distinct after fork."""

from __future__ import annotations

import os
import re
import time

from looplab.tracing.ids import new_span_id, new_trace_id


def test_ids_have_w3c_shapes_and_trace_ids_sort_by_time() -> None:
    first = new_trace_id()
    time.sleep(0.002)
    second = new_trace_id()
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{16}", new_span_id())
    assert first < second
    assert len({new_span_id() for _ in range(100_000)}) == 100_000


def test_forked_children_do_not_repeat_the_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_span_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 16).decode()
    assert child_id != new_span_id()
