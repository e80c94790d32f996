"""``mock:<name>``: an offline, deterministic model, so the demo and the tests run without keys.

The same (name, messages, params) always gives the same answer: everything is derived from a
SHA-256 of them. Calls are recorded as ``llm`` spans (provider ``mock``) like real ones, under
whatever ``looplab.trace(...)`` is active. Tokens are approximate (whitespace-separated words;
input gets +3 like the fake server) and the cost is ``0.0``: the mock is free, so 0 is the honest
number here (real providers give ``None`` when the price is unknown).

Names
-----

``mock:echo``
    Answers with the last user message, unchanged.

``mock:judge``
    Answers LLM-judge prompts. It reads these sections anywhere in the messages (tags are
    case-insensitive; when a tag appears several times, the last complete block counts, so the
    instructions may mention ``<output>`` in prose without a closing tag)::

        <output>the answer being judged</output>
        <expected>the reference answer</expected>     (or <reference>...</reference>)
        <labels>fail, pass</labels>                   (optional: categorical, worst first)
        <scale>1-5</scale>                            (optional: numeric range, default 0-1)

    It computes the similarity of output and expected (``difflib.SequenceMatcher`` ratio of the
    lower-cased, whitespace-collapsed texts, in [0, 1]) and answers ``{"reasoning": "...",
    "score": <number>}``; with ``<labels>`` it answers ``{"reasoning": "...", "label": "..."}``.

    * score: ``min + similarity * (max - min)``, rounded to a whole number when both ends of the
      scale are whole numbers and the range is wider than 1 (``1-5`` gives 1..5), else to 2
      decimals (the default ``0-1`` scale gives the similarity itself).
    * label: labels are listed worst first; the label at index ``min(n - 1, floor(similarity *
      n))``: with ``fail, pass``, a similarity of 0.5 or more passes.
    * no ``<expected>``/``<reference>``: the judge cannot compare, so an empty output gets the
      bottom of the scale and any other output a hash-derived similarity in [0.6, 1.0).
    * no ``<output>`` at all: the bottom of the scale, with a reasoning that says so.

    With ``json_output=True`` the text is the JSON object only; otherwise a sentence, then the
    JSON in a fenced ``json`` block (to exercise a judge's JSON extraction).

any other name (``mock:support``, ``mock:baseline``, ...)
    A support assistant. Each call is *good* or *degraded*: a hash of (name, messages, params
    other than ``quality`` and ``latency_ms``) gives a number u in [0, 1), and the answer is good
    when ``u < quality``. ``params["quality"]`` is in [0, 1], default 0.8. Raising ``quality``
    only turns degraded items good (never the reverse), so two variants differing in quality
    compare as expected on the same dataset; two names give different items their bad days.

    The mock looks for the reference answer the prompt template rendered, in any message:

    * a ``<expected>...</expected>`` or ``<reference>...</reference>`` block, or
    * a line starting with ``Reference answer:``, ``Expected answer:`` or ``Expected output:``
      (case-insensitive): the rest of that line and the lines after it up to a blank line.

    Good: the reference answer, copied exactly (an exact-match or contains check passes, a
    judge's similarity is 1). Degraded: one of (by hash) the reference's first third followed by
    a vague ending, the reference with every other word dropped, or a generic off-topic reply:
    all well below 0.7 similarity to the reference. Without a reference, a good answer is a
    helpful templated reply that repeats the question's key words, a degraded one a vague
    deflection ("I'm not sure...").

Params
------

Besides ``quality``: ``max_tokens`` cuts the answer to that many words (``finish_reason``
``"length"``), ``stop`` (a string or list) cuts it before the first stop string, ``seed`` and the
others are only part of the hash, and ``latency_ms`` sleeps that many milliseconds before
answering (no sleep by default; useful to benchmark concurrent experiments). ``json_output=True``
wraps a non-judge answer as ``{"answer": "..."}``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import time
from typing import Any

from looplab.errors import ConfigError
from looplab.providers.models import (
    MOCK_PARAMS,
    Completion,
    ModelRef,
    check_params,
    content_text,
)
from looplab.tracing.context import finish_span, open_span

DEFAULT_QUALITY = 0.8

_NOT_HASHED = ("quality", "latency_ms")


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()


def _unit(digest: bytes, salt: int = 0) -> float:
    """A number in [0, 1) from 8 bytes of the digest."""
    start = (salt * 8) % 24
    return int.from_bytes(digest[start : start + 8], "big") / 2**64


def _words(text: str) -> int:
    return len(text.split())


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def similarity(a: str, b: str) -> float:
    """How alike two texts are, in [0, 1] (difflib ratio of lower-cased, whitespace-collapsed texts)."""
    return difflib.SequenceMatcher(None, _normal(a), _normal(b), autojunk=False).ratio()


def _block(text: str, *tags: str) -> str | None:
    """The content of the last complete ``<tag>...</tag>`` block for any of ``tags``."""
    found: tuple[int, str] | None = None
    for tag in tags:
        pattern = re.compile(rf"<{tag}>((?:(?!<{tag}>).)*?)</{tag}>", re.IGNORECASE | re.DOTALL)
        for match in pattern.finditer(text):
            if found is None or match.start() > found[0]:
                found = (match.start(), match.group(1).strip())
    return found[1] if found else None


_REFERENCE_LINE = re.compile(r"^[ \t]*(?:reference answer|expected answer|expected output)[ \t]*:[ \t]*(.*)$",
                             re.IGNORECASE | re.MULTILINE)


def find_reference(text: str) -> str | None:
    """The reference answer a prompt template rendered, if any (see the module docstring)."""
    block = _block(text, "expected", "reference")
    if block:
        return block
    match = None
    for match in _REFERENCE_LINE.finditer(text):
        pass
    if match is None:
        return None
    lines = [match.group(1)]
    for line in text[match.end() :].split("\n")[1:]:
        if not line.strip():
            break
        lines.append(line)
    reference = "\n".join(lines).strip()
    return reference or None


def _all_text(messages: list[dict[str, Any]]) -> str:
    return "\n\n".join(content_text(m.get("content")) for m in messages)


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


# --- the support assistant ------------------------------------------------------------------------

_STOPWORDS = frozenset(
    "a an the i my me we our you your is are was were be been am do does did can could would should will "
    "to of in on for with at by from about how what why when where which who whom this that these those it "
    "its and or but not no so if then there here have has had please hi hello thanks thank".split()
)

_GOOD_TEMPLATES = (
    ("Thanks for reaching out! About {topic}: open Settings, find the {key} section and follow the steps "
     "there; the change applies right away. If anything looks off, reply here and I'll take a look."),
    ("Happy to help with {topic}. You can manage {key} from your account page: choose the option you need, "
     "confirm, and you'll get an email once it's done."),
    ("Good question about {topic}. The quickest way is through the {key} page in your dashboard; it walks "
     "you through each step, and our help center has a short guide on it too."),
)
_VAGUE = (
    "I'm not sure about that. Please contact support for more help.",
    "Sorry, I can't help with that right now. Could you try again later?",
    "That depends on several things. You may want to check the documentation.",
)


def _keywords(question: str) -> list[str]:
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", question.lower()) if w not in _STOPWORDS and len(w) > 2]
    seen: list[str] = []
    for word in words:
        if word not in seen:
            seen.append(word)
    return seen


def _degrade(reference: str, digest: bytes) -> str:
    choice = int(_unit(digest, 1) * 3)
    words = reference.split()
    if choice == 0 and len(words) >= 6:
        return " ".join(words[: max(2, len(words) // 3)]) + " ... I'm not sure about the rest, sorry."
    if choice == 1 and len(words) >= 6:
        return " ".join(words[::2])
    return _VAGUE[int(_unit(digest, 2) * len(_VAGUE))]


def _support_answer(messages: list[dict[str, Any]], good: bool, digest: bytes) -> str:
    reference = find_reference(_all_text(messages))
    if reference is not None:
        return reference if good else _degrade(reference, digest)
    if not good:
        return _VAGUE[int(_unit(digest, 2) * len(_VAGUE))]
    keys = _keywords(_last_user(messages))
    topic = " ".join(keys[:3]) or "your question"
    key = keys[0] if keys else "account"
    return _GOOD_TEMPLATES[int(_unit(digest, 1) * len(_GOOD_TEMPLATES))].format(topic=topic, key=key)


# --- the judge ------------------------------------------------------------------------------------

_SCALE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|–|\.\.|to)\s*(-?\d+(?:\.\d+)?)\s*$")


def _scale(text: str | None) -> tuple[float, float, bool]:
    if not text:
        return 0.0, 1.0, False
    match = _SCALE.match(text)
    if not match:
        return 0.0, 1.0, False
    low, high = float(match.group(1)), float(match.group(2))
    whole = low.is_integer() and high.is_integer() and (high - low) > 1
    return low, high, whole


def judge(messages: list[dict[str, Any]], digest: bytes) -> dict[str, Any]:
    """The mock judge's verdict as a dict (see the module docstring)."""
    text = _all_text(messages)
    output = _block(text, "output")
    expected = _block(text, "expected", "reference")
    labels_text = _block(text, "labels")
    labels = [label.strip() for label in re.split(r"[,\n|]", labels_text or "") if label.strip()]
    if output is None:
        sim, reasoning = 0.0, "The prompt has no <output>...</output> section, so there is nothing to judge."
    elif expected is not None:
        sim = similarity(output, expected)
        reasoning = f"The output matches the expected answer with a similarity of {sim:.2f}."
    elif not output.strip():
        sim, reasoning = 0.0, "The output is empty."
    else:
        sim = 0.6 + 0.4 * _unit(digest, 3)
        reasoning = "No expected answer to compare with; the output reads as a plausible answer."
    if labels:
        label = labels[min(len(labels) - 1, math.floor(sim * len(labels)))]
        return {"reasoning": reasoning, "label": label}
    low, high, whole = _scale(_block(text, "scale"))
    value = low + sim * (high - low)
    score: float | int = round(value) if whole else round(value, 2)
    return {"reasoning": reasoning, "score": score}


# --- the call -------------------------------------------------------------------------------------


def _cut(text: str, params: dict[str, Any]) -> tuple[str, str]:
    finish = "stop"
    stop = params.get("stop", params.get("stop_sequences"))
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cuts = [text.find(s) for s in stops if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and _words(text) > max_tokens:
        text = " ".join(text.split()[:max_tokens])
        finish = "length"
    return text, finish


def complete_mock(ref: ModelRef, model: str, messages: list[dict[str, Any]], params: dict[str, Any] | None,
                  json_output: bool) -> Completion:
    """Answer offline and deterministically; recorded as an ``llm`` span when tracing is on."""
    params = check_params("mock", params, MOCK_PARAMS)
    quality = params.get("quality", DEFAULT_QUALITY)
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0.0 <= quality <= 1.0:
        raise ConfigError(f"The mock's quality parameter must be a number from 0 to 1, got {quality!r}.")
    latency = params.get("latency_ms", 0)
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
        raise ConfigError(f"The mock's latency_ms parameter must be a number of milliseconds >= 0, got {latency!r}.")

    record = open_span("llm", "mock.complete")
    started = time.perf_counter()
    if latency:
        time.sleep(latency / 1000.0)
    hashed = {k: v for k, v in params.items() if k not in _NOT_HASHED}
    digest = _digest(ref.name, messages, hashed, json_output)
    name = ref.name.lower()
    if name == "judge":
        verdict = judge(messages, digest)
        payload = json.dumps(verdict)
        text = payload if json_output else f"Here is my assessment.\n```json\n{payload}\n```"
        finish = "stop"
    else:
        if name == "echo":
            answer = _last_user(messages)
        else:
            answer = _support_answer(messages, _unit(_digest(ref.name, messages, hashed)) < quality, digest)
        answer, finish = _cut(answer, params)
        text = json.dumps({"answer": answer}) if json_output else answer
    input_tokens = sum(_words(content_text(m.get("content"))) for m in messages) + 3
    output_tokens = _words(text)
    latency_ms = (time.perf_counter() - started) * 1000.0
    if record is not None:
        record.provider = "mock"
        record.model = ref.name
        record.input = messages
        record.params = {**params, **({"json_output": True} if json_output else {})} or None
        record.output = {"role": "assistant", "content": text}
        record.finish_reason = finish
        record.input_tokens = input_tokens
        record.output_tokens = output_tokens
        record.cost_usd = 0.0
        finish_span(record)
    return Completion(text=text, model=model, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=0.0,
                      latency_ms=latency_ms, finish_reason=finish)
