"""Identifiers for traces and spans, in W3C Trace Context's shape.

A trace id is 32 hex characters whose first 12 are the creation time in milliseconds, so ids
sort by time; a span id is 16 random hex characters. Both fit OpenTelemetry's ids unchanged.
They come from ``random`` (reseeded in each forked child by Python itself), not ``os.urandom``:
ids need to be unique, not secret, and a system call per id showed up in the wrapper's overhead.
"""

from __future__ import annotations

import random
import time

_bits = random.getrandbits


def new_trace_id() -> str:
    """A 32-hex-character id that sorts by creation time."""
    return f"{time.time_ns() // 1_000_000:012x}{_bits(80):020x}"


def new_span_id() -> str:
    """A random 16-hex-character id."""
    return f"{_bits(64):016x}"


def new_id() -> str:
    """A sortable id for other telemetry rows (scores)."""
    return new_trace_id()
