"""Identifiers for traces and spans, in W3C Trace Context's shape.

A trace id is 32 hex characters whose first 12 are the creation time in milliseconds, so ids
sort by time; a span id is 16 random hex characters. Both fit OpenTelemetry's ids unchanged.
"""

from __future__ import annotations

import os
import time


def new_trace_id() -> str:
    """A 32-hex-character id that sorts by creation time."""
    return f"{time.time_ns() // 1_000_000:012x}{int.from_bytes(os.urandom(10), 'big'):020x}"


def new_span_id() -> str:
    """A random 16-hex-character id."""
    return os.urandom(8).hex()


def new_id() -> str:
    """A sortable id for other telemetry rows (scores)."""
    return new_trace_id()
