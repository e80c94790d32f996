"""``looplab evaluate ...``: run evaluators on production traces, list them, check them against people."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Optional

import typer

from looplab.cli_options import DbOption, progress_bar
from looplab.config import DEFAULT_DATABASE_URL
from looplab.errors import ConfigError
from looplab.evaluation.judge_agreement import CORRELATION_THRESHOLD, KAPPA_THRESHOLD, MIN_ITEMS, judge_agreement
from looplab.evaluation.online import run_online
from looplab.evaluation.registry import list_evaluators
from looplab.timeparse import WHEN_HELP, parse_when

evaluate_app = typer.Typer(help="Evaluators: run them on production traces, list them, compare them with people.",
                           no_args_is_help=True)


def _when(option: str, text: str, now: datetime) -> datetime:
    try:
        return parse_when(text, now)
    except ConfigError as err:
        raise ConfigError(f"{option}: {err}") from None


@evaluate_app.command("online")
def online_command(
    evaluator: Annotated[list[str], typer.Option("--evaluator", "-e", help="A saved evaluator's name; repeatable.")],
    db: DbOption = DEFAULT_DATABASE_URL,
    since: Annotated[str, typer.Option(help=f"Traces that started at or after this time: {WHEN_HELP}.")] = "1h",
    until: Annotated[Optional[str], typer.Option(help="Traces that started before this time; default now.")] = None,
    sample: Annotated[float, typer.Option(help="Share of traces to evaluate, from 0 (exclusive) to 1; chosen by a "
                                               "hash of the trace id, so the same ones every run.")] = 0.1,
    concurrency: Annotated[int, typer.Option(help="Evaluations running at once (judge calls in flight).")] = 4,
) -> None:
    """Run evaluators on a sample of recent traces; their results become scores on the traces.
    A trace already scored by the same evaluator version is skipped."""
    import looplab

    now = datetime.now(timezone.utc)
    start = _when("--since", since, now)
    end = _when("--until", until, now) if until else now
    looplab.configure(database_url=db)  # judge calls are traced into the same database
    with progress_bar("Evaluating") as progress:
        run = run_online(db, evaluator, since=start, until=end, sample_rate=sample, concurrency=concurrency,
                         progress=progress)
    looplab.flush()
    typer.echo(f"{run.traces_in_window:,} traces from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, "
               f"{run.sampled:,} sampled at {sample:g}; {run.scores_written:,} scores written.")
    for e in run.evaluators:
        mean = f", mean {e.mean:.3g}" if e.mean is not None else ""
        passed = f", {e.passed} passed / {e.failed} failed" if e.passed or e.failed else ""
        cost = f", ${e.cost_usd:.4f}" if e.kind == "llm_judge" else ""
        typer.echo(f"  {e.name} v{e.version}: {e.evaluated} evaluated, {e.skipped} already done, "
                   f"{e.errors} errors{passed}{mean}{cost}")
        if e.first_error:
            typer.echo(f"    first error: {e.first_error}", err=True)


@evaluate_app.command("list")
def list_command(
    db: DbOption = DEFAULT_DATABASE_URL,
    archived: Annotated[bool, typer.Option("--archived", help="Include archived evaluators.")] = False,
) -> None:
    """List saved evaluators: name, kind, latest version, config."""
    found = list_evaluators(db, include_archived=archived)
    if not found:
        typer.echo("No evaluators yet. Create one on the Evaluators page of the app.")
        return
    width = max(len(e.name) for e in found)
    for e in found:
        flag = "  (archived)" if e.archived_at else ""
        typer.echo(f"{e.name:<{width}}  {e.kind:<9}  v{e.version:<3}  {e.type}: {e.summary()}{flag}")


@evaluate_app.command("agreement")
def agreement_command(
    db: DbOption = DEFAULT_DATABASE_URL,
    evaluator: Annotated[Optional[str], typer.Option("--evaluator", "-e", help="Only this evaluator.")] = None,
    kappa: Annotated[float, typer.Option(help="Reliable from this Cohen's kappa (labels).")] = KAPPA_THRESHOLD,
    correlation: Annotated[float, typer.Option(help="Reliable from this Spearman correlation (numbers).")]
    = CORRELATION_THRESHOLD,
    min_items: Annotated[int, typer.Option(help="Fewer items scored by both: too few to tell.")] = MIN_ITEMS,
) -> None:
    """How far each judge agrees with human scores of the same name: accuracy, kappa, correlation."""
    rows = judge_agreement(db, evaluator=evaluator, kappa_threshold=kappa, correlation_threshold=correlation,
                           min_items=min_items)
    if not rows:
        typer.echo("No trace or item has both an evaluator's score and a human score of the same name yet.")
        return
    for row in rows:
        a = row.agreement

        def fmt(x: float | None) -> str:
            return "-" if x is None else f"{x:.2f}"

        verdict = {True: "reliable", False: "UNRELIABLE", None: "too early to tell"}[a.reliable]
        typer.echo(f"{row.evaluator} ({row.evaluator_version}) on {row.score_name}: n={a.n}, accuracy {fmt(a.accuracy)}, "
                   f"kappa {fmt(a.kappa)}, pearson {fmt(a.pearson)}, spearman {fmt(a.spearman)}: {verdict}"
                   + (f" ({a.note})" if a.note else ""))
