"""A real HTTP fake of the OpenAI and Anthropic APIs, for tests and benchmarks.

The ``openai`` and ``anthropic`` SDKs sit on ``httpx2``, which HTTP-mocking libraries that patch
``httpx`` do not see, so the SDKs are pointed at this local server instead. It speaks just enough
of each wire format for the real SDK clients to parse replies into their typed objects:

* OpenAI ``POST /v1/chat/completions`` (plain and ``stream=True``), ``POST /v1/responses`` (plain
  and ``stream=True``) and ``POST /v1/embeddings``;
* Anthropic ``POST /v1/messages`` (plain and ``stream: true``);
* anything else answers 404 with a provider-style JSON error.

Usage::

    with FakeLLM() as fake:
        client = OpenAI(base_url=fake.openai_base_url, api_key="test")
        fake.enqueue(Reply(text="hi"), Reply(status=429))
        ...
        assert fake.requests[0].headers["authorization"] == "Bearer test"

Knobs:

* ``fake.latency``: seconds to wait before answering every request (default 0: no sleep at all).
* ``fake.chunk_delay``: seconds between SSE events of a streamed answer (default 0).
* ``fake.enqueue(Reply(...), ...)``: scripted replies, consumed FIFO by the next model requests
  (unknown paths do not consume one). With the queue empty, a default ``Reply()`` is used.
* ``fake.reset()``: clear recorded requests, the queue, the knobs and the id counter.

``Reply`` fields (all optional):

* ``text``: assistant text. Default ``"Echo: " + <last user message text>``, or
  ``{"answer": "Echo: ..."}`` when the request asks for JSON output (``response_format`` /
  ``text.format`` of type ``json_object`` / ``json_schema``). With ``tool_calls`` and no ``text``
  the reply has no text at all. For an error reply, ``text`` is the error message.
* ``tool_calls``: ``[{"name": str, "arguments": dict}]``, rendered as the provider's native tool
  calls (streamed as argument deltas too).
* ``status``: HTTP status; ``>= 400`` sends the provider's native error body. 429 and 5xx also
  carry ``retry-after: 0`` and ``retry-after-ms: 1``: the SDKs ignore a zero ``retry-after`` and
  fall back to ~0.5 s backoff, the 1 ms one makes their retries immediate.
* ``malformed``: 200 with a body that is not JSON (streams: a garbled ``data:`` line after the
  first event, then the end of the stream).
* ``delay``: latency for this reply, overriding ``fake.latency``.
* ``stream_error_after``: when streaming, send a provider error event after this many content
  events (text / argument deltas; after all of them if there are fewer) and end the stream.
  OpenAI chat: ``data: {"error": {...}}``; Responses: the native ``error`` event followed by
  ``response.failed`` (the SDK yields those, it does not raise); Anthropic: ``event: error``.
* ``usage``: overrides of ``input_tokens``, ``output_tokens``, ``cached_tokens`` (and, Anthropic
  only, ``cache_creation_tokens``), written verbatim into each provider's native fields, so
  provider semantics apply: OpenAI's prompt tokens include the cached ones, Anthropic's
  ``input_tokens`` do not.

Default usage is deterministic: input tokens = whitespace-separated words in all request message
text (system / instructions included) + 3; output tokens = words in the reply text + number of
tool calls; cached tokens 0.

Standalone: ``python -m tests.fakes.llm_server --port 0 [--latency S] [--chunk-delay S]`` prints
``READY http://127.0.0.1:PORT`` (flushed) and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import hashlib
import itertools
import json
import math
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeLLM", "RecordedRequest", "Reply"]

_USAGE_KEYS = frozenset({"input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens"})


@dataclasses.dataclass
class Reply:
    """One scripted answer; every field is optional (see the module docstring)."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int = 200
    malformed: bool = False
    delay: float | None = None
    stream_error_after: int | None = None
    usage: dict[str, int] | None = None

    def __post_init__(self) -> None:
        # Fail in the test that builds a bad Reply, not later inside a server thread.
        for call in self.tool_calls or []:
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise ValueError(f"tool call needs a str 'name': {call!r}")
            if not isinstance(call.get("arguments", {}), dict):
                raise ValueError(f"tool call 'arguments' must be a dict: {call!r}")
        unknown = set(self.usage or {}) - _USAGE_KEYS
        if unknown:
            raise ValueError(f"unknown usage keys {sorted(unknown)}; use {sorted(_USAGE_KEYS)}")


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """A request as the fake received it: headers have lower-case keys, body is parsed JSON."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


# --------------------------------------------------------------------------------------------
# Small helpers shared by the providers
# --------------------------------------------------------------------------------------------

_WORD_CHUNK = re.compile(r"\s*\S+\s*")
_WORDS_PER_CHUNK = 2  # few enough that a short echo still streams in several chunks
_ARGS_PER_CHUNK = 12  # characters of tool-call JSON per argument delta
_TEXT_KEYS = ("content", "text", "output", "arguments", "input")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _word_count(text: str) -> int:
    return len(text.split())


def _collect_text(value: Any, out: list[str]) -> None:
    """Gather message text: strings under content/text/output/arguments/input keys, recursively."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect_text(item, out)
    elif isinstance(value, dict):
        for key in _TEXT_KEYS:
            if key in value:
                _collect_text(value[key], out)
        if isinstance(value.get("function"), dict):  # chat assistant tool calls in history
            _collect_text(value["function"], out)


def _content_text(content: Any) -> str:
    """Text of one message's content: a string or a list of text-ish parts / blocks."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif part.get("type") == "tool_result":
                    parts.append(_content_text(part.get("content")))
    return " ".join(p for p in parts if p)


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _content_text(message.get("content"))
    return ""


def _text_chunks(text: str) -> list[str]:
    """Split text into pieces of a few words whose concatenation is exactly ``text``."""
    words = _WORD_CHUNK.findall(text)
    if not words:  # empty or whitespace only
        return [text] if text else []
    return ["".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)]


def _arg_chunks(arguments: str) -> list[str]:
    return [arguments[i : i + _ARGS_PER_CHUNK] for i in range(0, len(arguments), _ARGS_PER_CHUNK)] or [""]


@dataclasses.dataclass
class _Plan:
    """A reply resolved against one request: what to say and how many tokens it cost."""

    model: str
    text: str | None
    tool_calls: list[dict[str, Any]]  # each {"name", "arguments": dict, "json": str, "n": int}
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    stream_error_after: int | None
    malformed: bool


# Content events are tagged so the writer can inject errors after N of them.
_META, _CONTENT, _CONTENT_END = 0, 1, 2
_Event = tuple[int, str | None, Any]  # (kind, SSE event name, JSON payload)

_REASONS = {status.value: status.phrase for status in HTTPStatus}
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_message(status: int, text: str | None) -> str:
    if text is not None:
        return text
    if status == 429:
        return "Rate limit reached (fake)."
    return f"Fake error {status}."


def _openai_error(status: int, message: str) -> dict[str, Any]:
    err_type, code = _OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def _anthropic_error(status: int, message: str, request_id: str) -> dict[str, Any]:
    err_type = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": err_type, "message": message}, "request_id": request_id}


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops SYNs under concurrent benchmarks (1 s retransmit stalls).
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], fake: FakeLLM) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Condition()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a possibly slow DNS lookup; skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping connections (early stream close, pool shutdown) are normal; stay quiet.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 handler.

    ``handle_one_request`` is replaced by a lean parser: the stdlib one runs every request's
    headers through ``email.parser``, which was most of the per-request cost in benchmarks.
    Responses are written in one ``sendall`` (head and body together) for the same reason.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE writes must not wait for delayed ACKs
    server: _Server
    request_headers: dict[str, str]

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)
                self.server.connections_lock.notify_all()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # no stderr noise, and faster

    def handle_one_request(self) -> None:
        self.close_connection = True
        self.response_started = False
        try:
            line = self.rfile.readline(65537)
            parts = line.split()
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
                return  # EOF (client closed its pooled connection) or garbage: hang up
            self.command, self.path, self.request_version = (p.decode("latin-1") for p in parts)
            headers: dict[str, str] = {}
            while True:
                raw = self.rfile.readline(65537)
                if raw in (b"\r\n", b"\n", b""):
                    break
                name, sep, value = raw.decode("latin-1").partition(":")
                if sep:
                    key = name.strip().lower()
                    value = value.strip()
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
            self.request_headers = headers
            connection = headers.get("connection", "").lower()
            self.close_connection = connection == "close" or (
                self.request_version == "HTTP/1.0" and connection != "keep-alive"
            )
            self.server.fake._handle(self)
        except OSError:
            self.close_connection = True  # the client went away
        except Exception as exc:
            # A bug in the fake: answer 500 so the SDK call fails visibly instead of hanging up,
            # then let the server print the traceback.
            self.close_connection = True
            if not self.response_started:
                body = _dumps(_openai_error(500, f"fake LLM server bug: {exc!r}"))
                self.send_body(500, body)
            raise

    # -- body / response helpers -------------------------------------------------------------

    def read_body(self) -> bytes:
        if self.request_headers.get("transfer-encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.request_headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _head(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        self.response_started = True
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def send_body(
        self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = (), content_type: str = "application/json"
    ) -> None:
        head = self._head(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
        self.wfile.write(head + body)

    def send_sse(self, chunks: list[bytes], delay: float, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send SSE events with chunked encoding, one HTTP chunk per event, ``delay`` apart."""
        out = self._head(
            200,
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache"),
                ("Transfer-Encoding", "chunked"),
                *headers,
            ],
        )
        for i, chunk in enumerate(chunks):
            if i and delay > 0:
                self.wfile.write(out)  # flush what is ready before waiting
                out = b""
                time.sleep(delay)
            out += b"%x\r\n%s\r\n" % (len(chunk), chunk)
        # The terminating chunk rides with the last event so the client sees the end of the body
        # together with it and can return the connection to its pool.
        self.wfile.write(out + b"0\r\n\r\n")


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeLLM:
    """A threaded local HTTP server imitating the OpenAI and Anthropic APIs (see module doc)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, chunk_delay: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.latency: float = latency
        self.chunk_delay: float = chunk_delay
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queue: collections.deque[Reply] = collections.deque()
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeLLM:
        """Bind and serve in a background daemon thread; returns self."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeLLM", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop kept-alive connections and close the listening socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        # Handler threads block reading the next request of pooled keep-alive connections:
        # shutting their sockets down makes them see EOF and exit (and close the socket).
        with server.connections_lock:
            for conn in list(server.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            server.connections_lock.wait_for(lambda: not server.connections, timeout=2.0)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- public state ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (only meaningful once started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for ``OpenAI(base_url=...)``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for ``Anthropic(base_url=...)``."""
        return self.url

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def enqueue(self, *replies: Reply) -> None:
        """Script the replies of the next model requests (FIFO)."""
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget requests and queued replies; knobs back to 0; ids restart."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self._ids = itertools.count(1)
        self.latency = 0.0
        self.chunk_delay = 0.0

    # -- request handling --------------------------------------------------------------------

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _handle(self, handler: _Handler) -> None:
        raw = handler.read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = handler.path.split("?", 1)[0]
        headers = handler.request_headers
        route = (handler.command, path)
        known = route in _ROUTES
        with self._lock:
            self._requests.append(RecordedRequest(handler.command, handler.path, headers, body))
            reply = (self._queue.popleft() if self._queue else Reply()) if known else Reply()

        delay = reply.delay if reply.delay is not None else self.latency
        if delay > 0:
            time.sleep(delay)

        # Errors are shaped for the provider being imitated: by route, else by the SDK's headers.
        if not known:
            anthropic = "anthropic-version" in headers or "x-api-key" in headers
            self._send_error(handler, 404, f"Invalid URL ({handler.command} {path})", anthropic)
            return
        anthropic = path == "/v1/messages"
        if reply.status >= 400:
            self._send_error(handler, reply.status, _error_message(reply.status, reply.text), anthropic)
            return
        if not isinstance(body, dict):
            self._send_error(handler, 400, "Request body must be a JSON object.", anthropic)
            return
        _ROUTES[route](self, handler, body, reply)

    def _send_error(self, handler: _Handler, status: int, message: str, anthropic: bool) -> None:
        request_id = f"req_fake{self._next_id():08d}"
        if anthropic:
            payload = _anthropic_error(status, message, request_id)
            headers = [("request-id", request_id)]
        else:
            payload = _openai_error(status, message)
            headers = [("x-request-id", request_id)]
        if status == 429 or status >= 500:
            headers += [("retry-after", "0"), ("retry-after-ms", "1")]
        handler.send_body(status, _dumps(payload), headers)

    def _send(self, handler: _Handler, payload: Any, plan: _Plan, header: str) -> None:
        """Send a plain JSON reply (or a truncated one when malformed)."""
        body = _dumps(payload)
        if plan.malformed:
            body = body[: max(1, len(body) // 2)]  # truncated JSON: what a cut-off proxy gives
        handler.send_body(200, body, [(header, f"req_fake{self._next_id():08d}")])

    def _stream(
        self,
        handler: _Handler,
        events: Iterator[_Event],
        plan: _Plan,
        encode: Callable[[str | None, Any], bytes],
        error: Callable[[], list[bytes]],
        header: str,
    ) -> None:
        """Encode events to SSE, injecting a garbled line or a provider error when asked."""
        chunks: list[bytes] = []
        emitted = 0
        for kind, name, data in events:
            if plan.malformed and chunks:
                garbled = (f"event: {name}\n" if name else "") + 'data: {"garbled": \n\n'
                chunks.append(garbled.encode())
                break
            if plan.stream_error_after is not None and (
                kind == _CONTENT_END or (kind == _CONTENT and emitted >= plan.stream_error_after)
            ):
                chunks.extend(error())
                break
            if kind == _CONTENT_END:
                continue
            chunks.append(encode(name, data))
            emitted += kind == _CONTENT
        handler.send_sse(chunks, self.chunk_delay, [(header, f"req_fake{self._next_id():08d}")])

    def _plan(
        self, reply: Reply, body: dict[str, Any], prompt_parts: list[Any], user_text: str, json_mode: bool
    ) -> _Plan:
        texts: list[str] = []
        for part in prompt_parts:
            _collect_text(part, texts)
        input_tokens = sum(_word_count(t) for t in texts) + 3
        tool_calls = [
            {
                "name": call["name"],
                "arguments": call.get("arguments") or {},
                "json": json.dumps(call.get("arguments") or {}),
                "n": self._next_id(),
            }
            for call in reply.tool_calls or []
        ]
        text = reply.text
        if text is None and not tool_calls:
            echo = "Echo: " + user_text
            text = json.dumps({"answer": echo}) if json_mode else echo
        output_tokens = (_word_count(text) if text else 0) + len(tool_calls)
        usage = reply.usage or {}
        return _Plan(
            model=str(body.get("model") or "fake-model"),
            text=text,
            tool_calls=tool_calls,
            input_tokens=int(usage.get("input_tokens", input_tokens)),
            output_tokens=int(usage.get("output_tokens", output_tokens)),
            cached_tokens=int(usage.get("cached_tokens", 0)),
            cache_creation_tokens=int(usage.get("cache_creation_tokens", 0)),
            stream_error_after=reply.stream_error_after,
            malformed=reply.malformed,
        )

    # -- OpenAI chat completions -------------------------------------------------------------

    def _chat(self, handler: _Handler, body: dict[str, Any], reply: Reply) -> None:
        messages = body.get("messages") or []
        fmt = body.get("response_format")
        json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
        plan = self._plan(reply, body, [messages], _last_user_text(messages), json_mode)
        completion_id = f"chatcmpl-fake{self._next_id():08d}"
        created = int(time.time())
        finish_reason = "tool_calls" if plan.tool_calls else "stop"
        usage = {
            "prompt_tokens": plan.input_tokens,
            "completion_tokens": plan.output_tokens,
            "total_tokens": plan.input_tokens + plan.output_tokens,
            "prompt_tokens_details": {"cached_tokens": plan.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        base = {"id": completion_id, "created": created, "model": plan.model, "system_fingerprint": "fp_fake"}

        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": plan.text, "refusal": None, "annotations": []}
            if plan.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": f"call_fake{call['n']:08d}",
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["json"]},
                    }
                    for call in plan.tool_calls
                ]
            payload = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
                "usage": usage,
                "service_tier": "default",
            }
            self._send(handler, payload, plan, "x-request-id")
            return

        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            data = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = None  # as the real API: null on every chunk but the last
            return data

        def events() -> Iterator[_Event]:
            first: dict[str, Any] = {"role": "assistant", "content": "" if plan.text is not None else None}
            yield _META, None, chunk({**first, "refusal": None})
            for piece in _text_chunks(plan.text or ""):
                yield _CONTENT, None, chunk({"content": piece})
            for index, call in enumerate(plan.tool_calls):
                start = {
                    "index": index,
                    "id": f"call_fake{call['n']:08d}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": ""},
                }
                yield _META, None, chunk({"tool_calls": [start]})
                for piece in _arg_chunks(call["json"]):
                    yield _CONTENT, None, chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            yield _CONTENT_END, None, None
            yield _META, None, chunk({}, finish_reason)
            if include_usage:
                yield _META, None, {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            yield _META, None, "[DONE]"

        def encode(_name: str | None, data: Any) -> bytes:
            return b"data: " + (data.encode() if isinstance(data, str) else _dumps(data)) + b"\n\n"

        def error() -> list[bytes]:
            payload = _openai_error(500, "The stream was interrupted (fake).")
            return [encode(None, payload)]

        self._stream(handler, events(), plan, encode, error, "x-request-id")

    # -- OpenAI responses --------------------------------------------------------------------

    def _responses(self, handler: _Handler, body: dict[str, Any], reply: Reply) -> None:
        text_cfg = body.get("text")
        fmt = text_cfg.get("format") if isinstance(text_cfg, dict) else None
        json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
        user_input = body.get("input")
        plan = self._plan(
            reply, body, [body.get("instructions"), user_input], _last_user_text(user_input), json_mode
        )
        response_id = f"resp_fake{self._next_id():08d}"
        created = int(time.time())

        items: list[dict[str, Any]] = []
        if plan.text is not None:
            items.append(
                {
                    "id": f"msg_fake{self._next_id():08d}",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": plan.text, "annotations": [], "logprobs": []}],
                }
            )
        for call in plan.tool_calls:
            items.append(
                {
                    "id": f"fc_fake{call['n']:08d}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": f"call_fake{call['n']:08d}",
                    "name": call["name"],
                    "arguments": call["json"],
                }
            )
        usage = {
            "input_tokens": plan.input_tokens,
            "input_tokens_details": {"cached_tokens": plan.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": plan.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": plan.input_tokens + plan.output_tokens,
        }

        def response(status: str, output: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
            return {
                "id": response_id,
                "object": "response",
                "created_at": created,
                "status": status,
                "completed_at": created if status == "completed" else None,
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"),
                "model": plan.model,
                "output": output,
                "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
                "previous_response_id": body.get("previous_response_id"),
                "reasoning": {"effort": None, "summary": None},
                "store": bool(body.get("store", True)),
                "temperature": body.get("temperature", 1.0),
                "text": text_cfg if isinstance(text_cfg, dict) else {"format": {"type": "text"}},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "top_p": body.get("top_p", 1.0),
                "truncation": "disabled",
                "usage": usage if with_usage else None,
                "user": None,
                "metadata": body.get("metadata") or {},
            }

        if not body.get("stream"):
            self._send(handler, response("completed", items, True), plan, "x-request-id")
            return

        seq = itertools.count()

        def ev(kind: int, data: dict[str, Any]) -> _Event:
            return kind, data["type"], {**data, "sequence_number": next(seq)}

        def events() -> Iterator[_Event]:
            yield ev(_META, {"type": "response.created", "response": response("in_progress", [], False)})
            yield ev(_META, {"type": "response.in_progress", "response": response("in_progress", [], False)})
            for index, item in enumerate(items):
                if item["type"] == "message":
                    text = item["content"][0]["text"]
                    started = {**item, "status": "in_progress", "content": []}
                    empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                    where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                    yield ev(_META, {"type": "response.output_item.added", "output_index": index, "item": started})
                    yield ev(_META, {"type": "response.content_part.added", **where, "part": empty_part})
                    for piece in _text_chunks(text):
                        yield ev(
                            _CONTENT, {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                        )
                    yield ev(_META, {"type": "response.output_text.done", **where, "text": text, "logprobs": []})
                    yield ev(_META, {"type": "response.content_part.done", **where, "part": item["content"][0]})
                else:
                    started = {**item, "status": "in_progress", "arguments": ""}
                    where = {"item_id": item["id"], "output_index": index}
                    yield ev(_META, {"type": "response.output_item.added", "output_index": index, "item": started})
                    for piece in _arg_chunks(item["arguments"]):
                        yield ev(_CONTENT, {"type": "response.function_call_arguments.delta", **where, "delta": piece})
                    yield ev(
                        _META,
                        {
                            "type": "response.function_call_arguments.done",
                            **where,
                            "name": item["name"],
                            "arguments": item["arguments"],
                        },
                    )
                yield ev(_META, {"type": "response.output_item.done", "output_index": index, "item": item})
            yield _CONTENT_END, None, None
            yield ev(_META, {"type": "response.completed", "response": response("completed", items, True)})

        def encode(name: str | None, data: Any) -> bytes:
            return b"event: " + (name or "").encode() + b"\ndata: " + _dumps(data) + b"\n\n"

        def error() -> list[bytes]:
            # The native shape: an `error` event, then `response.failed` carrying the error.
            message = "The stream was interrupted (fake)."
            failed = response("failed", [], False)
            failed["error"] = {"code": "server_error", "message": message}
            return [
                encode(*ev(_META, {"type": "error", "code": "server_error", "message": message, "param": None})[1:]),
                encode(*ev(_META, {"type": "response.failed", "response": failed})[1:]),
            ]

        self._stream(handler, events(), plan, encode, error, "x-request-id")

    # -- OpenAI embeddings -------------------------------------------------------------------

    def _embeddings(self, handler: _Handler, body: dict[str, Any], reply: Reply) -> None:
        raw_input = body.get("input")
        if isinstance(raw_input, str) or (
            isinstance(raw_input, list) and raw_input and all(isinstance(t, int) for t in raw_input)
        ):
            inputs: list[Any] = [raw_input]
        else:
            inputs = list(raw_input or [])
        # The SDK asks for base64 unless the caller chose a format, then decodes float32 itself.
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        tokens = 0
        for index, item in enumerate(inputs):
            key = item if isinstance(item, str) else json.dumps(item)
            tokens += max(1, _word_count(item) if isinstance(item, str) else len(item))
            vector = _embedding(key)
            value: Any = base64.b64encode(struct.pack("<8f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": value})
        if reply.usage and "input_tokens" in reply.usage:
            tokens = int(reply.usage["input_tokens"])
        payload = {
            "object": "list",
            "data": data,
            "model": str(body.get("model") or "fake-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        plan = _Plan("", None, [], 0, 0, 0, 0, None, reply.malformed)
        self._send(handler, payload, plan, "x-request-id")

    # -- Anthropic messages ------------------------------------------------------------------

    def _messages(self, handler: _Handler, body: dict[str, Any], reply: Reply) -> None:
        messages = body.get("messages") or []
        output_cfg = body.get("output_config")
        fmt = body.get("output_format") or (output_cfg.get("format") if isinstance(output_cfg, dict) else None)
        json_mode = isinstance(fmt, dict) and fmt.get("type") == "json_schema"
        plan = self._plan(reply, body, [body.get("system"), messages], _last_user_text(messages), json_mode)
        message_id = f"msg_fake{self._next_id():08d}"
        stop_reason = "tool_use" if plan.tool_calls else "end_turn"
        blocks: list[dict[str, Any]] = []
        if plan.text is not None:
            blocks.append({"type": "text", "text": plan.text})
        for call in plan.tool_calls:
            tool_id = f"toolu_fake{call['n']:08d}"
            blocks.append({"type": "tool_use", "id": tool_id, "name": call["name"], "input": call["arguments"]})
        usage = {
            "input_tokens": plan.input_tokens,
            "output_tokens": plan.output_tokens,
            "cache_creation_input_tokens": plan.cache_creation_tokens,
            "cache_read_input_tokens": plan.cached_tokens,
        }
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": plan.model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            self._send(handler, message, plan, "request-id")
            return

        def ev(kind: int, data: dict[str, Any]) -> _Event:
            return kind, data["type"], data  # Anthropic names each SSE event after its type

        def events() -> Iterator[_Event]:
            start_usage = {**usage, "output_tokens": 1}  # the real API reports ~1 at start
            start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
            yield ev(_META, {"type": "message_start", "message": start})
            for index, block in enumerate(blocks):
                if block["type"] == "text":
                    opened: dict[str, Any] = {"type": "text", "text": ""}
                    deltas = [{"type": "text_delta", "text": piece} for piece in _text_chunks(block["text"])]
                else:
                    opened = {**block, "input": {}}
                    pieces = ["", *_arg_chunks(json.dumps(block["input"]))]  # the API starts with ""
                    deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
                yield ev(_META, {"type": "content_block_start", "index": index, "content_block": opened})
                if index == 0:
                    yield ev(_META, {"type": "ping"})
                for delta in deltas:
                    yield ev(_CONTENT, {"type": "content_block_delta", "index": index, "delta": delta})
                yield ev(_META, {"type": "content_block_stop", "index": index})
            yield _CONTENT_END, None, None
            end = {"stop_reason": stop_reason, "stop_sequence": None}
            yield ev(_META, {"type": "message_delta", "delta": end, "usage": {"output_tokens": plan.output_tokens}})
            yield ev(_META, {"type": "message_stop"})

        def encode(name: str | None, data: Any) -> bytes:
            return b"event: " + (name or "").encode() + b"\ndata: " + _dumps(data) + b"\n\n"

        def error() -> list[bytes]:
            payload = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (fake)."}}
            return [encode("error", payload)]

        self._stream(handler, events(), plan, encode, error, "request-id")


def _embedding(text: str) -> list[float]:
    """A deterministic unit vector of length 8 derived from the text's hash."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b / 127.5 - 1.0 for b in digest[:8]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    # Round-trip through float32 so float and base64 encodings give identical numbers.
    return list(struct.unpack("<8f", struct.pack("<8f", *(x / norm for x in raw))))


_ROUTES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/chat/completions"): FakeLLM._chat,
    ("POST", "/v1/responses"): FakeLLM._responses,
    ("POST", "/v1/embeddings"): FakeLLM._embeddings,
    ("POST", "/v1/messages"): FakeLLM._messages,
}


def main(argv: list[str] | None = None) -> None:
    """Serve until killed, printing ``READY <url>`` once listening."""
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic HTTP server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between SSE events")
    args = parser.parse_args(argv)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    fake = FakeLLM(host=args.host, port=args.port, latency=args.latency, chunk_delay=args.chunk_delay).start()
    print(f"READY {fake.url}", flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
