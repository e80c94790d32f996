"""The ``looplab`` command: database upgrade, trace export, and errors shown as messages."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner, Result

import looplab
from looplab.cli import app
from looplab.errors import ConfigError
from looplab.store.engine import get_engine, newest_revision, write_session
from looplab.store.models import Span, Trace
from looplab.store.queries import iter_traces_for_export
from looplab.timeparse import parse_when

TRACE_KEYS = {
    "trace_id", "name", "start_time", "end_time", "session_id", "user_id", "tags", "metadata", "release",
    "environment", "input", "output", "status", "error", "cost_usd", "input_tokens", "output_tokens", "spans",
}
SPAN_KEYS = {
    "span_id", "parent_id", "kind", "name", "provider", "model", "input", "output", "input_tokens",
    "output_tokens", "cached_tokens", "cost_usd", "latency_ms", "ttft_ms", "status", "error", "start_time",
    "end_time", "attributes",
}
CSV_COLUMNS = [
    "trace_id", "name", "start_time", "end_time", "session_id", "user_id", "tags", "metadata", "release",
    "environment", "input", "output", "status", "error", "cost_usd", "input_tokens", "output_tokens", "span_count",
]
LOOPLAB = Path(sys.executable).parent / "looplab"


def looplab_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line]


@looplab.observe(kind="retrieval")
def search(query: str) -> list[str]:
    return ["faq/shipping", "faq/returns"]


@looplab.observe(kind="tool", name="lookup_order")
def lookup(order_id: str) -> dict:
    return {"order_id": order_id, "status": "shipped"}


@looplab.observe
def answer(question: str) -> str:
    search(question)
    return f"Your parcel is {lookup('A-17')['status']}."


def record_support_traces() -> None:
    """Two traces through the tracing API: a nested one with tags and metadata, and a failing one."""
    with looplab.trace(
        "support-chat", input={"question": "Where is my parcel?"}, user_id="u-1", session_id="s-1",
        tags=["prod", "vip"], metadata={"plan": "pro"}, release="1.4.0", environment="production",
    ) as t:
        t.update(output=answer("Where is my parcel?"))
    with pytest.raises(RuntimeError), looplab.trace("failing-chat", input="hello"):
        raise RuntimeError("provider down")
    assert looplab.flush()


def insert_trace(url: str, trace_id: str, start: datetime, spans: int = 1) -> None:
    """A trace and its spans written straight to the store, at a chosen time."""
    with write_session(url) as session:
        session.add(Trace(id=trace_id, name=f"job-{trace_id}", start_time=start, end_time=start + timedelta(seconds=2),
                          duration_ms=2000.0, status="ok", tags_json=["batch"], span_count=spans,
                          input_tokens=10 * spans, output_tokens=5 * spans, cost_usd=0.001 * spans))
        for n in range(spans):
            session.add(Span(id=f"{trace_id}-s{n}", trace_id=trace_id, parent_id=None if n == 0 else f"{trace_id}-s0",
                             kind="llm" if n else "span", name=f"step-{n}", start_time=start + timedelta(milliseconds=n),
                             end_time=start + timedelta(seconds=1), duration_ms=999.0 - n, provider="openai",
                             model="gpt-4o-mini", input_tokens=10, output_tokens=5, cached_tokens=0,
                             cost_usd=0.001, ttft_ms=120.0, status="ok"))


# --- times -----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=timezone.utc)),
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=timezone.utc)),
        ("2026-11-01T10:00:00", datetime(2026, 11, 1, 10, tzinfo=timezone.utc)),  # naive means UTC
        ("2026-11-01T11:00:00+01:00", datetime(2026, 11, 1, 10, tzinfo=timezone.utc)),
        ("30m", NOW - timedelta(minutes=30)),
        ("24h", NOW - timedelta(hours=24)),
        (" 7d ", NOW - timedelta(days=7)),
        ("2W", NOW - timedelta(weeks=2)),
        ("90s", NOW - timedelta(seconds=90)),
    ],
)
def test_parse_when_reads_dates_and_durations(text: str, expected: datetime) -> None:
    parsed = parse_when(text, NOW)
    assert parsed == expected and parsed.tzinfo is timezone.utc


@pytest.mark.parametrize("text", ["", "yesterday", "-7d", "7 days", "1.5h", "2026-13-01", "10y"])
def test_parse_when_rejects_anything_else(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a time"):
        parse_when(text, NOW)


# --- export traces ----------------------------------------------------------------------------


def test_export_jsonl_has_every_field_and_the_span_tree(traced: str) -> None:
    record_support_traces()

    result = looplab_cli("export", "traces", "--db", traced)

    assert result.exit_code == 0, result.output
    chat, failing = jsonl(result.stdout)  # oldest first
    assert set(chat) == TRACE_KEYS and set(failing) == TRACE_KEYS
    assert chat["name"] == "support-chat" and failing["name"] == "failing-chat"
    assert chat["input"] == {"question": "Where is my parcel?"}
    assert chat["output"] == "Your parcel is shipped."
    assert (chat["user_id"], chat["session_id"]) == ("u-1", "s-1")
    assert chat["tags"] == ["prod", "vip"] and chat["metadata"] == {"plan": "pro"}
    assert (chat["release"], chat["environment"], chat["status"], chat["error"]) == ("1.4.0", "production", "ok", None)
    assert parse_time(chat["start_time"]) <= parse_time(chat["end_time"]) <= parse_time(failing["start_time"])

    spans = chat["spans"]
    assert all(set(span) == SPAN_KEYS for span in spans)
    assert [s["name"] for s in spans] == ["support-chat", "answer", "search", "lookup_order"]
    assert [s["kind"] for s in spans] == ["span", "span", "retrieval", "tool"]
    root, answer, search, lookup = spans
    assert root["parent_id"] is None
    assert answer["parent_id"] == root["span_id"]
    assert search["parent_id"] == answer["span_id"] and lookup["parent_id"] == answer["span_id"]
    assert search["input"] == {"query": "Where is my parcel?"} and search["output"] == ["faq/shipping", "faq/returns"]
    assert lookup["output"] == {"order_id": "A-17", "status": "shipped"}
    starts = [parse_time(s["start_time"]) for s in spans]
    assert starts == sorted(starts)
    assert all(s["latency_ms"] > 0 and s["status"] == "ok" and parse_time(s["end_time"]) for s in spans)

    assert failing["status"] == "error" and failing["error"] == "RuntimeError: provider down"
    assert failing["input"] == "hello" and failing["tags"] == [] and failing["metadata"] == {}
    assert [s["status"] for s in failing["spans"]] == ["error"]


def test_export_csv_has_one_row_a_trace(traced: str) -> None:
    record_support_traces()

    result = looplab_cli("export", "traces", "--db", traced, "--format", "csv")

    assert result.exit_code == 0, result.output
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert reader.fieldnames == CSV_COLUMNS
    chat, failing = list(reader)
    assert chat["name"] == "support-chat" and chat["span_count"] == "4"
    assert json.loads(chat["tags"]) == ["prod", "vip"] and json.loads(chat["metadata"]) == {"plan": "pro"}
    assert json.loads(chat["input"]) == {"question": "Where is my parcel?"}
    assert json.loads(chat["output"]) == "Your parcel is shipped."
    assert chat["error"] == "" and chat["start_time"].endswith("Z")
    assert failing["status"] == "error" and failing["error"] == "RuntimeError: provider down"
    assert failing["span_count"] == "1" and json.loads(failing["input"]) == "hello"


def test_export_to_a_file(traced: str, tmp_path: Path) -> None:
    record_support_traces()
    out = tmp_path / "traces.jsonl"

    result = looplab_cli("export", "traces", "--db", traced, "--out", str(out))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "Exported 2 traces" in result.stderr
    assert [t["name"] for t in jsonl(out.read_text(encoding="utf-8"))] == ["support-chat", "failing-chat"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".traces")) == []  # no partial left


def test_export_reads_the_database_url_from_the_environment(traced: str) -> None:
    record_support_traces()

    result = looplab_cli("export", "traces", env={"LOOPLAB_DATABASE_URL": traced})

    assert result.exit_code == 0, result.output
    assert len(jsonl(result.stdout)) == 2


def test_since_and_until_select_traces_by_start_time(db_url: str) -> None:
    now = datetime.now(timezone.utc)
    insert_trace(db_url, "t-2019", datetime(2019, 12, 30, 12, tzinfo=timezone.utc))
    insert_trace(db_url, "t-jan2", datetime(2020, 1, 2, 8, tzinfo=timezone.utc), spans=3)
    insert_trace(db_url, "t-recent", now - timedelta(hours=1))

    def exported(*args: str) -> list[str]:
        result = looplab_cli("export", "traces", "--db", db_url, *args)
        assert result.exit_code == 0, result.output
        return [t["trace_id"] for t in jsonl(result.stdout)]

    assert exported() == ["t-2019", "t-jan2", "t-recent"]
    assert exported("--since", "2020-01-01") == ["t-jan2", "t-recent"]
    assert exported("--since", "2020-01-01", "--until", "2020-01-03T00:00:00Z") == ["t-jan2"]
    assert exported("--since", "2020-01-01", "--until", "2020-01-02T08:00:00") == []  # until is excluded
    assert exported("--since", "2020-01-02T09:00:00+01:00", "--until", "2020-01-02T08:00:01") == ["t-jan2"]
    assert exported("--since", "24h") == ["t-recent"]
    assert exported("--until", "30m", "--since", "7d") == ["t-recent"]
    assert exported("--until", "2020-01-01") == ["t-2019"]

    (jan2,) = jsonl(looplab_cli("export", "traces", "--db", db_url, "--since", "2020-01-01", "--until", "2020-01-03").stdout)
    assert jan2["start_time"] == "2020-01-02T08:00:00.000000Z"
    assert [s["span_id"] for s in jan2["spans"]] == ["t-jan2-s0", "t-jan2-s1", "t-jan2-s2"]
    assert [s["parent_id"] for s in jan2["spans"]] == [None, "t-jan2-s0", "t-jan2-s0"]
    assert jan2["spans"][1]["latency_ms"] == 998.0 and jan2["spans"][1]["ttft_ms"] == 120.0
    assert (jan2["input_tokens"], jan2["output_tokens"], jan2["cost_usd"]) == (30, 15, pytest.approx(0.003))


def test_export_pages_through_traces_that_share_a_start_time(db_url: str) -> None:
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    for n in range(7):
        insert_trace(db_url, f"t{n}", start + timedelta(seconds=n // 3), spans=n % 3 + 1)  # 3, 3 and 1 ties

    traces = list(iter_traces_for_export(db_url, page_size=2))

    assert [t["trace_id"] for t in traces] == [f"t{n}" for n in range(7)]
    assert [len(t["spans"]) for t in traces] == [n % 3 + 1 for n in range(7)]
    assert all(s["span_id"].startswith(f"{t['trace_id']}-") for t in traces for s in t["spans"])
    counts = [t["span_count"] for t in iter_traces_for_export(db_url, page_size=3, with_spans=False)]
    assert counts == [n % 3 + 1 for n in range(7)]


# --- errors -----------------------------------------------------------------------------------


def assert_user_error(result: Result, *phrases: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # not an uncaught exception
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in result.stderr


def test_bad_since_is_a_clear_error(sqlite_url: str) -> None:
    get_engine(sqlite_url)

    result = looplab_cli("export", "traces", "--db", sqlite_url, "--since", "yesterday")

    assert_user_error(result, "--since", "'yesterday' is not a time", "24h", "2026-11-01")
    assert result.stdout == ""


def test_since_after_until_is_an_error(sqlite_url: str) -> None:
    get_engine(sqlite_url)
    result = looplab_cli("export", "traces", "--db", sqlite_url, "--since", "1h", "--until", "2h")
    assert_user_error(result, "--since (1h) must be before --until (2h)")


@pytest.mark.parametrize("command", [["export", "traces"], ["db", "upgrade"]])
def test_unopenable_database_is_a_clear_error(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "looplab.db"

    result = looplab_cli(*command, "--db", f"sqlite:///{missing}")

    assert_user_error(result, "does not exist", str(missing.parent))
    assert not missing.parent.exists()


def test_not_a_url_is_a_clear_error() -> None:
    assert_user_error(looplab_cli("export", "traces", "--db", "looplab.db"), "not a database URL")


def test_export_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"

    result = looplab_cli("export", "traces", "--db", f"sqlite:///{missing}")

    assert_user_error(result, "no looplab database", str(missing), "looplab db upgrade")
    assert not missing.exists()


def test_unwritable_out_is_a_clear_error(sqlite_url: str, tmp_path: Path) -> None:
    get_engine(sqlite_url)
    out = tmp_path / "missing" / "traces.jsonl"
    assert_user_error(looplab_cli("export", "traces", "--db", sqlite_url, "--out", str(out)), "Cannot write", str(out))


# --- db upgrade -------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_is_idempotent(sqlite_url: str) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    head = newest_revision()
    assert head and not path.exists()

    first = looplab_cli("db", "upgrade", "--db", sqlite_url)
    assert first.exit_code == 0, first.output
    assert f"from an empty database to {head}" in first.stdout and "initial schema" in first.stdout
    assert path.exists()
    tables = set(inspect(get_engine(sqlite_url)).get_table_names())
    assert {"traces", "spans", "trace_tags", "scores", "alembic_version"} <= tables

    second = looplab_cli("db", "upgrade", "--db", sqlite_url)
    assert second.exit_code == 0, second.output
    assert f"already at the newest schema ({head})" in second.stdout


def test_db_upgrade_on_a_migrated_database_does_nothing(db_url: str) -> None:
    get_engine(db_url)  # opening the store migrates it
    result = looplab_cli("db", "upgrade", "--db", db_url)
    assert result.exit_code == 0, result.output
    assert "already at the newest schema" in result.stdout


# --- the installed entry point ----------------------------------------------------------------


def _env_without_looplab() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOOPLAB_")}


def test_installed_entry_point_lists_the_commands(tmp_path: Path) -> None:
    assert LOOPLAB.exists(), f"{LOOPLAB} missing: install the package (pip install -e .)"

    done = subprocess.run([str(LOOPLAB), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=_env_without_looplab())

    assert done.returncode == 0, done.stderr
    assert "db" in done.stdout and "export" in done.stdout


def test_installed_entry_point_shows_errors_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([str(LOOPLAB), "export", "traces", "--db", f"sqlite:///{tmp_path}/nope/x.db"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_env_without_looplab())

    assert done.returncode == 2
    assert done.stderr.startswith("Error: ") and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_looplab_ui_serves_the_app_on_the_given_port(tmp_path: Path) -> None:
    import urllib.request

    from tests.browser import free_port, wait_for_health

    port = free_port()
    db = f"sqlite:///{tmp_path / 'ui.db'}"
    process = subprocess.Popen([str(LOOPLAB), "ui", "--db", db, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
            assert page.status == 200
        assert (tmp_path / "ui.db").exists()  # opened (and migrated) before the server started
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_looplab_ui_reports_a_database_it_cannot_open(tmp_path: Path) -> None:
    result = looplab_cli("ui", "--db", f"sqlite:///{tmp_path / 'no' / 'x.db'}")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_the_command_needs_no_gateway_extra_until_the_gateway_starts() -> None:
    """`looplab` itself imports nothing of the gateway's optional dependencies (Starlette, uvicorn,
    httpx2, protobuf), so every other command works without `looplab[gateway]` installed."""
    code = ("import sys, looplab.cli; print(sorted(m for m in ('starlette', 'uvicorn', 'httpx2', 'google.protobuf') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
