"""Experiments run in a process of their own, so a run outlives the browser tab (or app) that started it.

``launch(url, experiment_id)`` starts ``python -m looplab.experiments.worker --db URL --experiment ID``
detached from the caller (a new session: closing the app, or Ctrl+C in its terminal, does not
reach it), with its output in a log file next to the SQLite database (or in the temp folder for
other databases). ``status`` reads its progress from the database; ``cancel`` asks it to stop
(it finishes the items in flight). Launching an experiment that was cancelled, failed or stalled
resumes it: finished items are not run again.

Run as a module, the worker runs one experiment and exits 0 when it completed or was cancelled,
1 when it failed. SIGTERM stops it like a cancel.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from looplab.errors import ConfigError, LooplabError
from looplab.experiments.records import experiment_progress, get_experiment
from looplab.experiments.runner import (
    STALE_AFTER,
    is_stale,
    pid_alive,
    request_cancel,
    run_experiment,
)
from looplab.store.engine import write_session
from looplab.store.models import Experiment
from looplab.store.types import utcnow

log = logging.getLogger("looplab.experiments.worker")

# Reaps launched workers when they exit, so a finished worker's pid does not linger as a zombie.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class WorkerStatus:
    """Where a run stands, for the Experiments page.

    ``state``: ``pending`` (created, not started), ``running`` (heartbeat fresh or its process
    alive), ``stalled`` (status running but no heartbeat for 30 s and its process gone: launch it
    again to resume), or ``finished`` (``status`` tells completed, cancelled or failed).
    """

    experiment_id: int
    name: str
    status: str  # the stored status: pending | running | completed | failed | cancelled
    state: str  # pending | running | stalled | finished
    done: int
    total: int
    errors: int
    cost_usd: float | None
    heartbeat_at: datetime | None
    worker_pid: int | None
    cancel_requested: bool
    error: str | None
    log_path: str | None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def log_path(url: str, experiment_id: int) -> Path:
    """Where the worker of ``experiment_id`` writes its output: beside a SQLite file, else in the temp folder."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        database = Path(parsed.database).expanduser().resolve()
        return database.with_name(f"{database.name}.experiment-{experiment_id}.log")
    return Path(tempfile.gettempdir()) / f"looplab-experiment-{experiment_id}.log"


def launch(url: str, experiment_id: int) -> int:
    """Start a detached worker process running (or resuming) the experiment; returns its pid."""
    info = get_experiment(url, experiment_id)
    if info.status == "running" and not is_stale(info.heartbeat_at):
        raise ConfigError(f"Experiment {info.name!r} is already running (process {info.worker_pid}).")
    if info.status == "completed" and experiment_progress(url, experiment_id).errors == 0:
        raise ConfigError(f"Experiment {info.name!r} has completed; there is nothing left to run.")
    path = log_path(url, experiment_id)
    command = [sys.executable, "-m", "looplab.experiments.worker", "--db", url, "--experiment", str(experiment_id)]
    with open(path, "ab") as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    _children[process.pid] = process
    threading.Thread(target=_reap, args=(process,), name=f"looplab-reap-{process.pid}", daemon=True).start()
    with write_session(url) as session:
        # The worker claims the run itself (status running, its pid); until then it is pending with this pid.
        session.execute(update(Experiment).where(Experiment.id == experiment_id, Experiment.status != "running")
                        .values(worker_pid=process.pid, heartbeat_at=utcnow(), status="pending", finished_at=None,
                                error=None))
    return process.pid


def _reap(process: subprocess.Popen[bytes]) -> None:
    process.wait()
    _children.pop(process.pid, None)


def status(url: str, experiment_id: int) -> WorkerStatus:
    """Progress (done of total, errors, cost so far) and whether the run is alive."""
    info = get_experiment(url, experiment_id)
    progress = experiment_progress(url, experiment_id)
    alive = pid_alive(info.worker_pid)
    if info.status in ("completed", "failed", "cancelled"):
        state = "finished"
    elif info.status == "running":
        state = "stalled" if is_stale(info.heartbeat_at) and not alive else "running"
    elif info.worker_pid is not None and not alive and is_stale(info.heartbeat_at):
        state = "stalled"  # launched, but the process died before it started the run
    else:
        state = "pending"
    path = log_path(url, experiment_id)
    return WorkerStatus(
        experiment_id=info.id, name=info.name, status=info.status, state=state, done=progress.done,
        total=info.item_count, errors=progress.errors, cost_usd=progress.cost_usd, heartbeat_at=info.heartbeat_at,
        worker_pid=info.worker_pid, cancel_requested=info.cancel_requested, error=info.error,
        log_path=str(path) if path.exists() else None,
    )


def cancel(url: str, experiment_id: int) -> WorkerStatus:
    """Ask the run to stop; it finishes the items in flight and ends ``cancelled`` (see ``status``)."""
    request_cancel(url, experiment_id)
    return status(url, experiment_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m looplab.experiments.worker",
                                     description="Run one looplab experiment to its end (or resume it).")
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--experiment", required=True, type=int, help="the experiment's id")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per model call")
    parser.add_argument("--max-retries", type=int, default=4, help="retries of a rate-limited or failed call")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("worker %s: experiment %s on %s", os.getpid(), args.experiment, _safe(args.db))
    last = [-1]

    def progress(done: int, total: int) -> None:
        step = max(1, total // 20)
        if done == total or done - last[0] >= step:
            last[0] = done
            log.info("%s of %s items", done, total)

    try:
        summary = run_experiment(args.db, args.experiment, progress=progress, timeout=args.timeout,
                                 max_retries=args.max_retries, stop=stop)
    except LooplabError as err:
        log.error("experiment %s failed: %s", args.experiment, err)
        return 1
    except Exception:
        log.exception("experiment %s failed", args.experiment)
        return 1
    log.info("experiment %s %s: %s of %s items, %s errors, %.1f s", summary.name, summary.status, summary.done,
             summary.total, summary.errors, summary.seconds)
    return 0


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


__all__ = ["STALE_AFTER", "WorkerStatus", "cancel", "launch", "log_path", "main", "status"]

if __name__ == "__main__":
    sys.exit(main())
