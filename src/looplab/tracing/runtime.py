"""Process-wide tracing state: the settings in force and the one background writer.

Nothing here is needed by another process or replica: it only holds what this process has yet
to write.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

from looplab.config import Settings, settings_from_env

_settings: Settings | None = None
_writer: Any = None  # looplab.tracing.writer.Writer, imported lazily to keep `import looplab` light
_lock = threading.Lock()


def settings() -> Settings:
    """The settings in force: those given to ``configure``, else read from the environment."""
    global _settings
    current = _settings
    if current is None:
        with _lock:
            if _settings is None:
                _settings = settings_from_env()
            current = _settings
    return current


def writer() -> Any:
    """The background writer, created (not yet started) on first use."""
    global _writer
    current = _writer
    if current is None:
        from looplab.tracing.writer import Writer

        with _lock:
            if _writer is None:
                _writer = Writer(settings())
            current = _writer
    return current


def configure(**changes: Any) -> Settings:
    """Change the given settings (``None`` keeps a value); pending records are written first."""
    return install(settings().with_changes(**changes))


def install(new: Settings) -> Settings:
    """Put ``new`` settings in force as a whole; records already queued go to the old database."""
    global _settings, _writer
    old_writer = _writer
    if old_writer is not None:
        old_writer.close(timeout=10.0)
    with _lock:
        _settings = new
        _writer = None
    return new


def flush(timeout: float | None = 30.0) -> bool:
    """Block until everything recorded so far is written; False when storage refused some of it."""
    current = _writer
    if current is None:
        return True
    return bool(current.flush(timeout=timeout))


def stats() -> dict[str, Any]:
    """Counters of the writer: recorded, written, dropped, failed writes, the last error."""
    current = _writer
    if current is None:
        return {"queued": 0, "written": 0, "dropped": 0, "rejected": 0, "write_failures": 0, "last_error": None}
    return dict(current.stats())


def _after_fork_in_child() -> None:
    # The writer thread does not survive fork; the child starts its own on first record, and its
    # pooled database connections must not be shared with the parent's.
    global _writer, _lock
    _writer = None
    _lock = threading.Lock()  # another thread may have held it at fork time
    from looplab.store.engine import forget_engines_after_fork

    forget_engines_after_fork()


def _at_exit() -> None:
    current = _writer
    if current is not None:
        current.close(timeout=10.0)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
