"""Worker processes for OTLP exports: decoding, mapping and storing spans off the server's process.

An export is pure Python for most of its time (about 100 µs a span), so in one process requests
queue on the GIL however many threads run them. A pool of processes takes every request as it
comes (the server's event loop keeps serving the proxy and the scores API), and the work shares
itself out evenly, which uvicorn workers do not: each keeps the connections it accepted, and an
exporter's keep-alive connections often all land on one of them.

Children never outlive the server: they ignore Ctrl+C (the server shuts them down) and each
leaves on its own within a second of its parent's death, whatever the cause.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from looplab.errors import StoreError

log = logging.getLogger("looplab")

# Beyond a few, processes mostly wait for SQLite's single writer.
MAX_DEFAULT_PROCESSES = 4
_PARENT_CHECK_SECONDS = 0.5


def default_processes() -> int:
    """The number of export processes ``looplab gateway`` starts by default: one a CPU core, at most four."""
    return min(os.cpu_count() or 1, MAX_DEFAULT_PROCESSES)


def _start_child(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_leave_with_parent, args=(parent,), name="looplab-otlp-parent-watch",
                     daemon=True).start()
    import looplab.otlp.http  # noqa: F401  (imported now, not by the first request)

    # What start-up built lives as long as the process: kept out of the collector's walks.
    gc.collect()
    gc.freeze()


def _leave_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    os._exit(0)


class ExportPool:
    """A pool of processes running one function (an OTLP export) at a time each.

    Processes start with the first call; ``close`` (the server's shutdown) stops them. A pool
    whose process died (killed, out of memory) is replaced, and that call raises ``StoreError``
    (an exporter retries on the 503 it becomes).
    """

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("an export pool needs at least one process")
        self.processes = processes
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child, initargs=(os.getpid(),))
            return self._executor

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in one of the processes; its result, or the exception it raised."""
        executor = self._current()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
        except BrokenProcessPool as err:
            with self._lock:
                if self._executor is executor:
                    self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            log.warning("looplab: an OTLP export process stopped (%s); starting new ones", err)
            raise StoreError("The process storing this export stopped; send it again") from err

    def close(self) -> None:
        """Let the processes finish what they run, then stop them."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def can_send(value: Any) -> bool:
    """Whether ``value`` (a redact hook) can be handed to another process (pickled by reference)."""
    try:
        pickle.dumps(value)
    except (pickle.PicklingError, AttributeError, TypeError):  # a lambda, a nested function, an open file
        return False
    return True
