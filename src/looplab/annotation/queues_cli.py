"""``looplab queue ...``: annotation queues from the terminal: their progress, their rules, and
how far their annotators agree."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from looplab.annotation import agreement, queues, rules
from looplab.cli_options import DbOption
from looplab.config import DEFAULT_DATABASE_URL

queue_app = typer.Typer(help="Annotation queues: progress, rules, agreement.", no_args_is_help=True)


@queue_app.command("list")
def list_command(db: DbOption = DEFAULT_DATABASE_URL) -> None:
    """List queues: items done of all, labels wanted per item, score configs."""
    found = queues.list_queues(db)
    if not found:
        typer.echo("No annotation queues yet. Create one on the app's Annotate page.")
        return
    width = max(len(q.name) for q in found)
    typer.echo(f"{'name':<{width}}  {'done':>7}  {'items':>7}  per item  scores")
    for q in found:
        typer.echo(f"{q.name:<{width}}  {q.done:>7,}  {q.items:>7,}  {q.annotations_per_item:>8}  "
                   f"{', '.join(q.score_configs)}")


@queue_app.command("sync")
def sync_command(
    db: DbOption = DEFAULT_DATABASE_URL,
    queue: Annotated[Optional[str], typer.Option(help="Only this queue's rules (by name).")] = None,
) -> None:
    """Run the queues' rules now: queue a sample of the traces stored since they last ran (for cron;
    the app also runs them, at most once a minute)."""
    queue_id = queues.find_queue(db, queue).id if queue else None
    added = rules.run_rules(db, queue_id=queue_id)
    if not added:
        typer.echo("No enabled rules.")
        return
    for name, count in added.items():
        typer.echo(f"{name}: {count:,} trace{'' if count == 1 else 's'} queued")


@queue_app.command("agreement")
def agreement_command(
    name: Annotated[str, typer.Argument(help="The queue, by name.")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """How far a queue's annotators agree, per score config, and how many items they disagree on."""
    found = queues.find_queue(db, name)
    stats = agreement.agreement(db, found.id)
    width = max([len(a.config) for a in stats] + [5])
    typer.echo(f"{'score':<{width}}  {'value':>6}  {'reading':<12}  {'items':>6}  {'split':>6}  statistic")
    for a in stats:
        value = "" if a.value is None else f"{a.value:.3f}"
        typer.echo(f"{a.config:<{width}}  {value:>6}  {a.reading:<12}  {a.items:>6,}  {a.disagreements:>6,}  "
                   f"{a.statistic or a.note or ''}")
