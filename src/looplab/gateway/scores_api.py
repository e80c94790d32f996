"""``POST /api/scores``: feedback (thumbs up/down, ratings, labels) from a production app.

The score goes through ``looplab.score``, the same path as scores recorded in code: it is queued
to the background writer and lands in the ``scores`` table that Monitoring and the trace view read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import orjson
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import looplab
from looplab.errors import StoreError
from looplab.gateway.errors import GatewayError
from looplab.gateway.recording import RecentTraces
from looplab.store.engine import get_engine
from looplab.store.models import SCORE_SOURCES

_FIELDS = ("trace_id", "span_id", "name", "value", "label", "comment", "source", "author", "metadata")
# Column widths of the scores table: a longer value would be refused by the database later, after
# the caller was told the score was recorded.
_MAX_CHARS = {"trace_id": 64, "span_id": 64, "name": 255, "label": 255, "author": 255}


@dataclass(frozen=True)
class ScoreInput:
    """A checked ``POST /api/scores`` body."""

    trace_id: str
    name: str
    value: float | None
    label: str | None
    comment: str | None
    source: str
    span_id: str | None
    author: str | None
    metadata: dict[str, Any] | None


def _bad(message: str) -> GatewayError:
    return GatewayError(400, message)


def _text(payload: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = payload.get(key)
    if value is None:
        if required:
            raise _bad(f"{key} is required.")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _bad(f"{key} must be a non-empty string; got {value!r}.")
    limit = _MAX_CHARS.get(key)
    if limit is not None and len(value) > limit:
        raise _bad(f"{key} is {len(value)} characters long; at most {limit} fit.")
    return value


def parse_score(body: bytes) -> ScoreInput:
    """Check a request body; raises ``GatewayError`` (400) saying what is wrong."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise _bad(f"the body is not valid JSON ({err}).") from None
    if not isinstance(payload, dict):
        raise _bad("the body must be a JSON object like "
                   '{"trace_id": "...", "name": "thumbs", "value": 1}.')
    unknown = sorted(set(payload) - set(_FIELDS))
    if unknown:
        raise _bad(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                   f"a score has {', '.join(_FIELDS)}.")
    value = payload.get("value")
    if value is not None:
        if not isinstance(value, (int, float)):  # bool is an int: true/false count as 1/0
            raise _bad(f"value must be a number or true/false; got {value!r}.")
        value = float(value)
        if not math.isfinite(value):
            raise _bad("value must be a finite number.")
    label = _text(payload, "label")
    if value is None and label is None:
        raise _bad("give a value (a number or true/false), a label, or both.")
    source = payload.get("source", "user_feedback")
    if source not in SCORE_SOURCES:
        raise _bad(f"source must be one of {', '.join(SCORE_SOURCES)}; got {source!r}.")
    metadata = payload.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("metadata must be a JSON object.")
    comment = payload.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise _bad(f"comment must be a string; got {comment!r}.")
    return ScoreInput(
        trace_id=_text(payload, "trace_id", required=True) or "",
        name=_text(payload, "name", required=True) or "",
        value=value,
        label=label,
        comment=comment,
        source=source,
        span_id=_text(payload, "span_id"),
        author=_text(payload, "author"),
        metadata=metadata,
    )


def stored_trace_has(database_url: str, trace_id: str, span_id: str | None) -> tuple[bool, bool]:
    """Whether the trace is stored, and (when ``span_id`` is given) whether that span is one of its own."""
    engine = get_engine(database_url).execution_options(looplab_read_only=True)
    with engine.connect() as conn:
        trace = conn.execute(text("SELECT 1 FROM traces WHERE id = :id"), {"id": trace_id}).first()
        if trace is None or span_id is None:
            return trace is not None, trace is not None
        span = conn.execute(text("SELECT 1 FROM spans WHERE id = :span AND trace_id = :trace"),
                            {"span": span_id, "trace": trace_id}).first()
        return True, span is not None


# Another gateway process (``--workers``), or an app's own writer, may have recorded the trace a
# moment ago and still hold it in its queue (written every 0.1 s by default): look again for
# about a second before answering 404.
_LOOK_AGAIN_AFTER = (0.05, 0.1, 0.2, 0.3, 0.4)


async def _find_stored(database_url: str, score: ScoreInput) -> tuple[bool, bool]:
    """Whether the score's trace (and span) are stored, waiting a little for a trace just recorded."""
    for pause in _LOOK_AGAIN_AFTER:
        found = await _look_up(database_url, score)
        if all(found):
            return found
        await anyio.sleep(pause)
    return await _look_up(database_url, score)


async def _look_up(database_url: str, score: ScoreInput) -> tuple[bool, bool]:
    try:
        return await anyio.to_thread.run_sync(stored_trace_has, database_url, score.trace_id, score.span_id)
    except (StoreError, SQLAlchemyError) as err:
        raise GatewayError(503, f"the database cannot be read to find the trace: {err}",
                           "storage_unavailable") from None


def score_routes(database_url: str, recent: RecentTraces) -> list[Route]:
    """The ``POST /api/scores`` route, recording into ``database_url``."""

    async def post_score(request: Request) -> JSONResponse:
        score = parse_score(await request.body())
        # A trace this process recorded a moment ago may still wait in the writer's queue; the
        # score is queued behind it, so it is accepted without looking in the database.
        recent_span = recent.span_of(score.trace_id)
        if recent_span is not None:
            trace_found, span_found = True, score.span_id in (None, recent_span)
        else:
            trace_found, span_found = await _find_stored(database_url, score)
        if not trace_found:
            raise GatewayError(404, f"no trace {score.trace_id!r}: scores attach to recorded traces.", "not_found")
        if not span_found:
            raise GatewayError(404, f"trace {score.trace_id!r} has no span {score.span_id!r}.", "not_found")
        score_id = looplab.score(
            score.trace_id, score.name, score.value, label=score.label, comment=score.comment, source=score.source,
            span_id=score.span_id, author=score.author, metadata=score.metadata,
        )
        if score_id is None:
            raise GatewayError(503, "tracing is disabled in this gateway (LOOPLAB_ENABLED=0): scores are not recorded.",
                               "recording_disabled")
        return JSONResponse({"id": score_id, "trace_id": score.trace_id}, status_code=201)

    return [Route("/api/scores", post_score, methods=["POST"], name="scores")]
