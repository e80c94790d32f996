"""The ``looplab`` command: a thin front over the same service functions the UI calls.

Each area of the loop is a sub-app (``looplab db ...``, ``looplab export ...``); a new one is a
``typer.Typer`` added with ``app.add_typer``. Errors meant for users (``LooplabError``) become
``Error: <message>`` on stderr and exit status 2 in one place, ``LooplabGroup.invoke``, so no
command needs its own try/except.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import sys
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import IO, Annotated, Any, Callable, Iterator, Optional

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from typer.core import TyperGroup

from looplab import __version__
from looplab.annotation.queues_cli import queue_app
from looplab.annotation.users_cli import users_app
from looplab.cli_options import DbOption, progress_bar
from looplab.config import DEFAULT_DATABASE_URL
from looplab.datasets.cli import dataset_app
from looplab.demo import seed
from looplab.errors import ConfigError, LooplabError
from looplab.evaluation.cli import evaluate_app
from looplab.experiments.cli import experiment_app
from looplab.gateway.cli import gateway_command
from looplab.store.engine import get_engine, upgrade
from looplab.store.lifecycle import (
    Removed,
    delete_user,
    prune_traces,
    reclaimable_bytes,
)
from looplab.store.queries import (
    TRACE_CSV_COLUMNS,
    iter_traces_for_export,
    trace_csv_row,
)
from looplab.timeparse import WHEN_HELP, parse_when

USER_ERROR_EXIT = 2


class LooplabGroup(TyperGroup):
    """The root command: turns a ``LooplabError`` raised anywhere below into a message and exit 2."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LooplabError as err:
            typer.echo(f"Error: {err}", err=True)
            raise typer.Exit(USER_ERROR_EXIT) from None
        except BrokenPipeError:
            # The reader went away (`looplab export traces | head`): stop quietly, as Unix tools do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(1) from None


app = typer.Typer(
    name="looplab",
    cls=LooplabGroup,
    help="looplab: trace LLM calls, monitor them, label, experiment, evaluate and decide.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the database: create it and migrate its schema.", no_args_is_help=True)
export_app = typer.Typer(help="Export recorded data as JSONL or CSV.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(export_app, name="export")
app.add_typer(dataset_app, name="dataset")
app.add_typer(users_app, name="users")
app.add_typer(queue_app, name="queue")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(experiment_app, name="experiment")
app.command("gateway")(gateway_command)



def _version(value: bool) -> None:
    if value:
        typer.echo(f"looplab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show looplab's version and exit."),
    ] = None,
) -> None:
    """looplab: trace LLM calls, monitor them, label, experiment, evaluate and decide."""


# --- looplab db -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(db: DbOption = DEFAULT_DATABASE_URL) -> None:
    """Migrate the database to the newest schema, creating it if it is new."""
    before, after, applied = upgrade(db)
    where = _display_url(db)
    if before == after:
        typer.echo(f"{where} is already at the newest schema ({after}); nothing to do.")
        return
    typer.echo(f"Upgraded {where} from {before or 'an empty database'} to {after}:")
    for line in applied:
        typer.echo(f"  {line}")


# --- looplab ui -----------------------------------------------------------------------------------

APP_ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"


@app.command("ui")
def ui_command(
    db: DbOption = DEFAULT_DATABASE_URL,
    host: Annotated[str, typer.Option(help="Address to listen on; keep 127.0.0.1 unless you mean to share it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
) -> None:
    """Start the app (Overview, Monitoring, Traces, ...) on http://127.0.0.1:8501."""
    if importlib.util.find_spec("streamlit") is None:
        raise ConfigError("The app needs the ui extra: pip install 'looplab[ui]'.")
    if not APP_ENTRY_POINT.is_file():
        raise ConfigError(f"The app's files are not at {APP_ENTRY_POINT.parent}; run looplab ui from a source checkout.")
    get_engine(db)  # a database that cannot be opened is reported here, before the server starts
    typer.echo(f"looplab on http://{host}:{port} showing {_display_url(db)}; Ctrl+C stops it.")
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP_ENTRY_POINT), "--server.address", host,
        "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    # exec, so Ctrl+C and the exit status are Streamlit's own.
    os.execve(sys.executable, command, {**os.environ, "LOOPLAB_DATABASE_URL": db})


# --- looplab seed ---------------------------------------------------------------------------------


@app.command("seed")
def seed_command(db: DbOption = DEFAULT_DATABASE_URL) -> None:
    """Load the sample data: 14 days of a support assistant's traces and scores, ending now."""
    with progress_bar("Seeding the sample data") as progress:
        result = seed(db, progress=progress)
    where = _display_url(db)
    if result.nothing_added:
        typer.echo(f"{where} already holds the sample data ({result.traces_in_sample:,} traces); nothing added.")
        return
    typer.echo(f"Seeded {where} in {result.seconds:.1f} s:")
    if result.traces_added:
        already = result.traces_in_sample - result.traces_added
        typer.echo(
            f"  {result.traces_added:,} traces, {result.spans_added:,} spans and {result.scores_added:,} scores, "
            f"{result.history_start:%Y-%m-%d %H:%M} to {result.history_end:%Y-%m-%d %H:%M} UTC"
            + (f" ({already:,} traces of the sample were already there)" if already else "")
        )
    if result.score_configs_added:
        count = len(result.score_configs_added)
        typer.echo(f"  {count} score config{'' if count == 1 else 's'}: {', '.join(result.score_configs_added)}")
    if result.dataset_added:
        typer.echo(f"  dataset {result.dataset_added} with {result.dataset_items_added:,} items")
    if result.queues_added:
        typer.echo(f"  annotation queues: {', '.join(result.queues_added)}")
    if result.baseline_added:
        typer.echo(f"  experiment {result.baseline_added!r} over {result.dataset_added or 'the golden dataset'}, "
                   "promoted as the baseline to compare with")


# --- looplab export -------------------------------------------------------------------------------


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


@export_app.command("traces")
def export_traces(
    db: DbOption = DEFAULT_DATABASE_URL,
    since: Annotated[
        Optional[str], typer.Option(help=f"Only traces that started at or after this time: {WHEN_HELP}.")
    ] = None,
    until: Annotated[
        Optional[str], typer.Option(help="Only traces that started before this time (same forms as --since).")
    ] = None,
    format_: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="jsonl: one JSON object a trace, spans nested. csv: one row a trace, no spans, a span_count.",
        ),
    ] = ExportFormat.jsonl,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", dir_okay=False, help="Write to this file instead of stdout."),
    ] = None,
) -> None:
    """Export traces (oldest first) with their spans, streaming page by page."""
    now = datetime.now(timezone.utc)
    start = _when("--since", since, now)
    end = _when("--until", until, now)
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"--since ({since}) must be before --until ({until}).")
    _require_existing_database(db)
    traces = iter_traces_for_export(db, start, end, with_spans=format_ is ExportFormat.jsonl)
    write = _write_jsonl if format_ is ExportFormat.jsonl else _write_csv
    if out is None:
        write(traces, sys.stdout)
        sys.stdout.flush()
        return
    count = _write_file(out, lambda stream: write(traces, stream))
    typer.echo(f"Exported {count} trace{'' if count == 1 else 's'} to {out}.", err=True)


def _when(option: str, text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_when(text, now)
    except ConfigError as err:
        raise ConfigError(f"{option}: {err}") from None


def _write_jsonl(traces: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for trace in traces:
        stream.write(json.dumps(trace, ensure_ascii=False))
        stream.write("\n")
        count += 1
    return count


def _write_csv(traces: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    writer = csv.writer(stream)
    writer.writerow(TRACE_CSV_COLUMNS)
    count = 0
    for trace in traces:
        writer.writerow(trace_csv_row(trace))
        count += 1
    return count


def _write_file(path: Path, write: Callable[[IO[str]], int]) -> int:
    """Write through ``write(stream)`` into ``path`` atomically: a failed export leaves no half file."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as stream:
            count = write(stream)
        os.replace(partial, path)
    except OSError as err:
        raise ConfigError(f"Cannot write {path}: {err.strerror or err}.") from None
    finally:
        partial.unlink(missing_ok=True)
    return count


# --- looplab prune / delete (data lifecycle) -------------------------------------------------------

OLDER_THAN_HELP = "an age in hours, days or weeks (12h, 90d, 2w) or a date (2026-01-01, UTC)"
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Count what would be removed; remove nothing.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking for confirmation.")]


@app.command("prune")
def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help=f"Remove traces that started before this: {OLDER_THAN_HELP}.")
    ],
    db: DbOption = DEFAULT_DATABASE_URL,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
) -> None:
    """Remove old traces (retention) with their spans, tags, scores, search entries and queue items."""
    cutoff = _older_than(older_than, datetime.now(timezone.utc))
    _require_existing_database(db)
    _remove(
        db,
        f"traces that started before {_moment(cutoff)}",
        lambda dry, progress: prune_traces(db, cutoff, dry_run=dry, progress=progress),
        dry_run=dry_run,
        yes=yes,
    )


@app.command("delete")
def delete_command(
    user_id: Annotated[
        str, typer.Option("--user-id", help="The end user whose traces to erase (the user_id they were recorded with).")
    ],
    db: DbOption = DEFAULT_DATABASE_URL,
    dry_run: DryRunOption = False,
    yes: YesOption = False,
) -> None:
    """Erase one user's traces with their spans, scores, search entries and queue items."""
    if not user_id.strip():
        raise ConfigError("--user-id is empty; give the user_id their traces were recorded with.")
    _require_existing_database(db)
    removed = _remove(
        db,
        f"traces of user {user_id!r}",
        lambda dry, progress: delete_user(db, user_id, dry_run=dry, progress=progress),
        dry_run=dry_run,
        yes=yes,
    )
    if removed is not None and removed.dataset_items_unlinked:
        typer.echo("The unlinked dataset items may still hold this user's data: review them in Datasets.")


def _echo_counts(heading: str, removed: Removed) -> None:
    typer.echo(heading)
    for line in removed.lines():
        typer.echo(f"  {line}")


def _remove(
    db: str, what: str, run: Callable[[bool, Any], Removed], *, dry_run: bool, yes: bool
) -> Removed | None:
    """Count, confirm (unless ``yes``), remove and report; returns what was removed (None when nothing was)."""
    where = _display_url(db)
    if dry_run or not yes:
        preview = run(True, None)
        if preview.nothing:
            typer.echo(f"No {what} in {where}; nothing to remove.")
            return None
        _echo_counts(f"{'Would remove' if dry_run else 'About to remove'} {what} from {where}:", preview)
        if dry_run:
            typer.echo("Dry run: nothing was removed.")
            return None
        typer.confirm("Remove them? This cannot be undone.", abort=True)
    with progress_bar("Removing traces") as progress:
        removed = run(False, progress)
    if removed.nothing:
        typer.echo(f"No {what} in {where}; nothing removed.")
        return None
    _echo_counts(f"Removed {what} from {where}:", removed)
    free = reclaimable_bytes(db)
    if free and free >= 1 << 20:
        # What sqlite-utils and Datasette users expect to be told: the file does not shrink by itself.
        path = make_url(db).database
        typer.echo(
            f"The SQLite file keeps its size: its {free / (1 << 20):,.1f} MB of free pages will hold new data. "
            f"To give them back to the disk, stop looplab's writers and run: sqlite3 {path} VACUUM"
        )
    return removed


def _older_than(text: str, now: datetime) -> datetime:
    """``--older-than``: an age (hours, days, weeks) before ``now`` or a date, as an aware UTC datetime."""
    match = re.fullmatch(r"(\d+)\s*([a-z]+)", text.strip().lower())
    if match and match.group(2) in ("s", "m"):
        # 3m reads as minutes to looplab and as months to many people: refuse rather than guess.
        raise ConfigError(
            f"--older-than {text!r} would count {'seconds' if match.group(2) == 's' else 'minutes'}; "
            f"retention is {OLDER_THAN_HELP}."
        )
    try:
        return parse_when(text, now)
    except ConfigError as err:
        if match and match.group(2) in ("h", "d", "w"):
            raise ConfigError(f"--older-than: {err}") from None
        raise ConfigError(f"--older-than {text!r} is not {OLDER_THAN_HELP}.") from None


def _moment(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


# --- Helpers --------------------------------------------------------------------------------------


def _display_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _require_existing_database(url: str) -> None:
    """Refuse to read from a SQLite file that does not exist (opening it would create an empty one)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # the store says what is wrong with the URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database).expanduser()
    if path.parent.is_dir() and not path.exists():
        raise ConfigError(
            f"There is no looplab database at {path.resolve()}. Point --db (or LOOPLAB_DATABASE_URL) at one, "
            "or create it with `looplab db upgrade`."
        )
