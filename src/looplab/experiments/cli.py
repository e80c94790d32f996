"""``looplab experiment ...``: run a variant file over a dataset, gate it against a baseline, compare,
list, promote, and follow or cancel a run launched from the UI (status, cancel).

``looplab experiment run`` and ``compare`` are made for CI: they print a markdown summary fit for a
pull-request comment on stdout (``run`` draws its progress bar on stderr), and exit 0 on SHIP (or,
for ``run``, when there is no baseline to compare with), 1 on DON'T SHIP, 2 on any error.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from looplab.cli_options import DbOption, progress_bar
from looplab.config import DEFAULT_DATABASE_URL
from looplab.errors import ConfigError, LooplabError, NotFound
from looplab.experiments.records import (
    ExperimentInfo,
    experiment_progress,
    get_experiment,
    list_experiments,
    mean_latency_ms,
    promote_experiment,
    score_summary,
)
from looplab.experiments.runner import RunSummary, create_experiment, run_experiment
from looplab.experiments.variants import diff_variants, load_variant_file, save_variant

experiment_app = typer.Typer(
    help="Experiments: run a variant over a dataset, compare it with a baseline, decide whether it ships.",
    no_args_is_help=True,
)

SHIP, DONT_SHIP, ERROR = 0, 1, 2


@experiment_app.command("run")
def run_command(
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset to run over (its current version is pinned).")],
    variant: Annotated[Path, typer.Option("--variant", exists=True, dir_okay=False, readable=True,
                                          help="A variant file (YAML): name, model, params, system, prompt or task, "
                                               "evaluators.")],
    db: DbOption = DEFAULT_DATABASE_URL,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="The experiment's name; default: <variant>-v<version>-<UTC time>. Naming an unfinished "
                       "experiment of the same variant and dataset resumes it.")] = None,
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", help="The experiment to compare with; default: the dataset's promoted baseline, if any.")] = None,
    gate: Annotated[Optional[Path], typer.Option(
        "--gate", exists=True, dir_okay=False, readable=True,
        help="A ship policy (YAML) deciding SHIP / DON'T SHIP; default: looplab's default policy.")] = None,
    report: Annotated[Optional[Path], typer.Option(
        "--report", dir_okay=False, help="Also write the report to this file: .md for markdown, .json for JSON.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=256,
                                             help="How many items run at once.")] = 8,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each model call.")] = 60.0,
    max_retries: Annotated[int, typer.Option("--max-retries", min=0,
                                             help="Retries of a rate-limited, timed-out or failed model call.")] = 4,
) -> None:
    """Run a variant over a dataset, compare it with its baseline, print the verdict (exit 0 ship, 1 don't, 2 error)."""
    _exit_with(lambda: _run(db, dataset, variant, name, baseline, gate, report, concurrency, timeout, max_retries),
               interrupted="Interrupted; run the same command with --name to resume where it stopped.")


def _exit_with(decide: Any, interrupted: str = "Interrupted.") -> None:
    """Exit with what ``decide()`` returns (SHIP or DON'T SHIP); anything unexpected exits 2 (ERROR),
    never 1: CI must not read a crash as a DON'T SHIP."""
    try:
        code = decide()
    except LooplabError:
        raise  # the root command prints it and exits 2
    except KeyboardInterrupt:
        typer.echo(interrupted, err=True)
        raise typer.Exit(ERROR) from None
    except Exception as err:
        typer.echo(f"Error: {type(err).__name__}: {err}", err=True)
        raise typer.Exit(ERROR) from None
    raise typer.Exit(code)


def _run(db: str, dataset: str, variant_file: Path, name: str | None, baseline: str | None, gate: Path | None,
         report: Path | None, concurrency: int, timeout: float, max_retries: int) -> int:
    if report is not None and report.suffix.lower() not in (".md", ".json"):
        raise ConfigError(f"--report {report}: name a .md (markdown) or .json file.")
    spec = load_variant_file(variant_file)
    policy = _policy(gate)
    created_by = _who()
    saved = save_variant(db, spec, created_by=created_by)
    name = name or f"{saved.name}-v{saved.version}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    base = _baseline(db, dataset, baseline)
    experiment_id = _existing(db, name, dataset, saved.id)
    if experiment_id is None:
        experiment_id = create_experiment(db, name, dataset, saved, spec.evaluators,
                                          baseline=base.id if base else None, concurrency=concurrency,
                                          created_by=created_by)
    typer.echo(f"Running {name!r}: {saved.name} v{saved.version} over {dataset!r}"
               + (f", against {base.name!r}" if base else ", no baseline") + ".", err=True)
    with progress_bar(f"{name}") as progress:
        summary = run_experiment(db, experiment_id, progress=progress, timeout=timeout, max_retries=max_retries)
    if summary.status != "completed":
        raise ConfigError(f"Experiment {name!r} was {summary.status} before it finished "
                          f"({summary.done} of {summary.total} items); run the same command with --name {name} "
                          "to resume.")
    info = get_experiment(db, experiment_id)
    if base is None:
        markdown = _summary_markdown(db, info, summary)
        typer.echo(markdown)
        _write_report(report, markdown, lambda: _summary_dict(db, info, summary))
        return SHIP
    return _gate(db, info, base, policy, report, created_by)


def _gate(db: str, info: ExperimentInfo, base: ExperimentInfo, policy: Any, report: Path | None,
          created_by: str | None) -> int:
    """Compare ``info`` with ``base``, decide with ``policy``, record the decision, print the report;
    the exit status (SHIP or DON'T SHIP)."""
    diff = diff_variants(base.variant, info.variant, base.dataset_version, info.dataset_version)
    if diff.warning:
        typer.echo(f"Warning: {diff.warning}", err=True)
    from looplab.experiments.comparison import compare
    from looplab.experiments.gate import decide, record_decision
    from looplab.experiments.report import as_dict, render_markdown

    comparison = compare(db, info.id, base.id)
    verdict = decide(comparison, policy, _unreliable_judges(db, info))
    record_decision(db, comparison, verdict, policy, created_by=created_by)
    markdown = render_markdown(comparison, verdict)
    typer.echo(markdown)
    _write_report(report, markdown, lambda: as_dict(comparison, verdict))
    return SHIP if verdict.outcome == "ship" else DONT_SHIP


def _who() -> str | None:
    """Who runs the command, for the records: the CI actor, else the login name."""
    return os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or None


def _policy(gate: Path | None) -> Any:
    from looplab.experiments.gate import DEFAULT_POLICY, Policy

    return Policy.from_yaml_file(gate) if gate is not None else DEFAULT_POLICY


def _baseline(db: str, dataset: str, baseline: str | None) -> ExperimentInfo | None:
    if baseline is not None:
        return _finished(get_experiment(db, baseline))
    from looplab.datasets import get_dataset
    from looplab.experiments.gate import promoted_baseline

    promoted = promoted_baseline(db, get_dataset(db, dataset).id)
    if promoted is None:
        return None
    return get_experiment(db, promoted if isinstance(promoted, int) else promoted.id)


def _finished(base: ExperimentInfo) -> ExperimentInfo:
    """``base`` when it can be a baseline (completed); ``ConfigError`` otherwise."""
    if base.status != "completed":
        raise ConfigError(f"The baseline {base.name!r} is {base.status}; compare with a completed experiment.")
    return base


def _existing(db: str, name: str, dataset: str, variant_id: int) -> int | None:
    """The id of an unfinished experiment ``name`` of this variant and dataset (to resume), else None."""
    try:
        info = get_experiment(db, name)
    except NotFound:
        return None
    if info.dataset != dataset or info.variant_id != variant_id:
        raise ConfigError(f"An experiment named {name!r} already exists with another variant or dataset; "
                          "pick another name.")
    if info.status == "completed":
        raise ConfigError(f"The experiment {name!r} has already completed; pick another name to run again.")
    return info.id


def _unreliable_judges(db: str, info: ExperimentInfo) -> set[str]:
    """This experiment's evaluators that disagree with people where both scored the same items."""
    names = {e["name"] for e in info.evaluators}
    if not names:
        return set()
    from looplab.evaluation.judge_agreement import judge_agreement

    return {a.evaluator for a in judge_agreement(db) if a.evaluator in names and a.agreement.reliable is False}


def _write_report(path: Path | None, markdown: str, data: Any) -> None:
    if path is None:
        return
    text = markdown if path.suffix.lower() == ".md" else json.dumps(data(), indent=2, ensure_ascii=False, default=str)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError as err:
        raise ConfigError(f"Cannot write {path}: {err.strerror or err}.") from None
    finally:
        partial.unlink(missing_ok=True)
    typer.echo(f"Report written to {path}.", err=True)


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.4f}"


def _summary_markdown(db: str, info: ExperimentInfo, summary: RunSummary) -> str:
    variant = info.variant
    what = variant.get("model") or variant.get("task") or ""
    latency = mean_latency_ms(db, info.id)
    lines = [
        f"## Experiment `{info.name}`",
        "",
        f"{variant.get('name')} v{variant.get('version')} (`{what}`) over `{info.dataset}` "
        f"(version {info.dataset_version:%Y-%m-%d %H:%M:%S} UTC). No baseline to compare with: promote a run "
        f"with `looplab experiment promote {info.name}` to make it one.",
        "",
        f"- Items: {summary.done} of {summary.total}, {summary.errors} error{'' if summary.errors == 1 else 's'}",
        f"- Cost: {_money(summary.cost_usd)}; mean latency: "
        + ("n/a" if latency is None else f"{latency:,.0f} ms"),
        "",
    ]
    scores = score_summary(db, info.id)
    if scores:
        lines += ["| score | mean | scored | errors |", "| --- | ---: | ---: | ---: |"]
        for s in scores:
            mean = "n/a" if s.mean is None else f"{s.mean:.3f}"
            lines.append(f"| {s.name} | {mean} | {s.count} | {s.errors} |")
    else:
        lines.append("No evaluators: add `evaluators:` to the variant file to score the outputs.")
    return "\n".join(lines)


def _summary_dict(db: str, info: ExperimentInfo, summary: RunSummary) -> dict[str, Any]:
    return {
        "experiment": {"id": info.id, "name": info.name, "dataset": info.dataset,
                       "dataset_version": info.dataset_version.isoformat(), "variant": info.variant},
        "baseline": None,
        "outcome": None,
        "items": {"total": summary.total, "done": summary.done, "errors": summary.errors},
        "cost_usd": summary.cost_usd,
        "mean_latency_ms": mean_latency_ms(db, info.id),
        "scores": [{"name": s.name, "mean": s.mean, "count": s.count, "errors": s.errors}
                   for s in score_summary(db, info.id)],
    }


@experiment_app.command("list")
def list_command(
    db: DbOption = DEFAULT_DATABASE_URL,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Only experiments over this dataset.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many, newest first.")] = 50,
) -> None:
    """List experiments, newest first: status, items done, errors, cost; * marks promoted baselines."""
    experiments = list_experiments(db, dataset=dataset, limit=limit)
    if not experiments:
        typer.echo("No experiments yet. Run one with `looplab experiment run --dataset NAME --variant FILE.yaml`.")
        return
    width = max(len(e.name) for e in experiments)
    typer.echo(f"  {'name':<{width}}  {'status':<9}  {'items':>11}  {'errors':>6}  {'cost':>10}  variant / dataset")
    for e in experiments:
        p = experiment_progress(db, e.id)
        mark = "*" if e.promoted_at else " "
        typer.echo(f"{mark} {e.name:<{width}}  {e.status:<9}  {f'{p.done}/{p.total}':>11}  {p.errors:>6}  "
                   f"{_money(p.cost_usd):>10}  {e.variant.get('name')} v{e.variant.get('version')} / {e.dataset}")


@experiment_app.command("promote")
def promote_command(
    name: Annotated[str, typer.Argument(help="The completed experiment that becomes its dataset's baseline.")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Make an experiment its dataset's baseline: later runs without --baseline compare with it."""
    info = promote_experiment(db, name)
    typer.echo(f"{info.name!r} is now the baseline of {info.dataset!r}.")


@experiment_app.command("compare")
def compare_command(
    candidate: Annotated[str, typer.Argument(help="The experiment to judge (name or id).")],
    db: DbOption = DEFAULT_DATABASE_URL,
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", help="The experiment to compare with; default: the candidate's own baseline, else its "
                           "dataset's promoted baseline.")] = None,
    gate: Annotated[Optional[Path], typer.Option(
        "--gate", exists=True, dir_okay=False, readable=True,
        help="A ship policy (YAML) deciding SHIP / DON'T SHIP; default: looplab's default policy.")] = None,
    report: Annotated[Optional[Path], typer.Option(
        "--report", dir_okay=False, help="Also write the report to this file: .md for markdown, .json for JSON.")] = None,
) -> None:
    """Compare two finished experiments (one launched from the UI, say), record the decision, and
    exit 0 on SHIP, 1 on DON'T SHIP, 2 on error."""
    _exit_with(lambda: _compare(db, candidate, baseline, gate, report))


def _compare(db: str, candidate: str, baseline: str | None, gate: Path | None, report: Path | None) -> int:
    if report is not None and report.suffix.lower() not in (".md", ".json"):
        raise ConfigError(f"--report {report}: name a .md (markdown) or .json file.")
    info = _find(db, candidate)
    if info.status != "completed":
        raise ConfigError(f"{info.name!r} is {info.status}; compare a completed experiment "
                          f"(see `looplab experiment status {info.name}`).")
    if baseline is not None:
        base: ExperimentInfo | None = _finished(_find(db, baseline))
    elif info.baseline_id is not None:
        base = _finished(get_experiment(db, info.baseline_id))
    else:
        base = _baseline(db, info.dataset, None)
    if base is None:
        raise ConfigError(f"{info.name!r} has no baseline and its dataset {info.dataset!r} has no promoted one; "
                          "name one with --baseline.")
    if base.id == info.id:
        raise ConfigError(f"{info.name!r} cannot be compared with itself; name another experiment with --baseline.")
    return _gate(db, info, base, _policy(gate), report, _who())


@experiment_app.command("status")
def status_command(
    name: Annotated[str, typer.Argument(help="The experiment (name or id).")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """How far an experiment got: state, items done, errors, cost, its worker process and log."""
    from looplab.experiments.worker import status

    s = status(db, _find(db, name).id)
    state = {"running": "running", "pending": "waiting for its worker", "stalled": "stalled (its worker is gone; "
             "resume it from the Experiments page or rerun `looplab experiment run` with --name)",
             "finished": s.status}[s.state]
    if s.cancel_requested and s.state in ("running", "pending"):
        state += ", cancel requested"
    typer.echo(f"{s.name}: {state}")
    typer.echo(f"  items   {s.done} of {s.total} ({s.fraction:.0%}), {s.errors} error{'' if s.errors == 1 else 's'}")
    typer.echo(f"  cost    {_money(s.cost_usd)}")
    if s.worker_pid is not None:
        beat = f", last heartbeat {s.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if s.heartbeat_at else ""
        typer.echo(f"  worker  process {s.worker_pid}{beat}")
    if s.log_path:
        typer.echo(f"  log     {s.log_path}")
    if s.error:
        typer.echo(f"  error   {s.error}")


@experiment_app.command("cancel")
def cancel_command(
    name: Annotated[str, typer.Argument(help="The running experiment (name or id).")],
    db: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Stop a running experiment: it finishes the items in flight and ends cancelled (resumable)."""
    from looplab.experiments.worker import cancel

    info = _find(db, name)
    if info.status in ("completed", "failed", "cancelled"):
        raise ConfigError(f"{info.name!r} is already {info.status}; there is nothing to cancel.")
    s = cancel(db, info.id)
    if s.status == "cancelled":
        typer.echo(f"{s.name!r} is cancelled ({s.done} of {s.total} items done).")
    else:
        typer.echo(f"Asked {s.name!r} to stop: it finishes the items in flight, then ends cancelled "
                   f"({s.done} of {s.total} items done so far).")


def _find(db: str, name: str) -> ExperimentInfo:
    """An experiment named on the command line: by name, else (a number) by id."""
    try:
        return get_experiment(db, name)
    except NotFound:
        if not name.isdigit():
            raise
        return get_experiment(db, int(name))


__all__ = ["experiment_app"]
