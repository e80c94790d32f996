"""A comparison and its verdict as a pull-request comment (markdown) and as JSON (``--report``).

Also the number formatting the gate's reasons use, so the words and the tables agree.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from looplab.experiments.comparison import (
    Comparison,
    EvaluatorComparison,
    ItemComparison,
    MetricDelta,
    output_text,
)

if TYPE_CHECKING:
    from looplab.experiments.gate import Verdict

_MARKS = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}


# --- Numbers in words ---------------------------------------------------------------------------


def fmt(value: float | None, *, signed: bool = False) -> str:
    """A number for people: 3 significant digits, thousands separated, ``n/a`` for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    sign = "+" if signed and value > 0 else ""
    if abs(value) >= 1000:
        return f"{sign}{value:,.0f}"
    if value == 0:
        return "0"
    return f"{sign}{value:.3g}"


def fmt_p(p: float | None) -> str:
    """A p-value: ``< 0.0001`` when tiny, else 2 significant digits."""
    if p is None:
        return "n/a"
    return "< 0.0001" if p < 0.0001 else f"{p:.2g}"


def fmt_metric(name: str, value: float | None, *, signed: bool = False) -> str:
    """A cost (``$0.0012``) or a latency (``1,234 ms``)."""
    if value is None:
        return "n/a"
    if name == "cost_usd":
        sign = "+" if signed and value > 0 else ("-" if value < 0 else "")
        return f"{sign}${fmt(abs(value))}"
    return f"{fmt(value, signed=signed)} ms"


def fmt_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def describe_evaluator(e: EvaluatorComparison, confidence: float = 0.95) -> str:
    """``mean 0.8 -> 0.62 (-0.18, 95% CI -0.25 to -0.11), p = 0.0012 (McNemar) over 50 items``."""
    if e.n == 0:
        return f"no item was scored on both sides ({e.baseline_n} in the baseline, {e.candidate_n} in the candidate)"
    test = "McNemar" if e.test == "mcnemar" else "permutation"
    return (f"mean {fmt(e.baseline_mean)} -> {fmt(e.candidate_mean)} ({fmt(e.mean_delta, signed=True)}, "
            f"{confidence:.0%} CI {fmt(e.ci_low)} to {fmt(e.ci_high)}), p = {fmt_p(e.p_value)} ({test}) "
            f"over {e.n} items")


# --- Markdown -------------------------------------------------------------------------------------


def render_markdown(comparison: Comparison, verdict: Verdict, *, top: int = 5) -> str:
    """A pull-request comment: the headline (SHIP / DON'T SHIP), the reasons, a table per evaluator
    (means, delta, CI, p, win/tie/loss), cost/latency/errors, and the ``top`` worst items."""
    c, b = comparison.candidate, comparison.baseline
    mark = "✅" if verdict.outcome == "ship" else "❌"
    lines = [
        f"## {mark} {verdict.headline}: `{_cell(c.name)}` (#{c.id}) vs baseline `{_cell(b.name)}` (#{b.id})",
        "",
        (f"Dataset **{_cell(c.dataset_name or str(c.dataset_id))}** version {_time(c.dataset_version)} · "
        f"{comparison.common_items} items compared · policy `{_cell(verdict.policy_name)}`"),
    ]
    if verdict.unreliable_judges:
        lines.append(f"Unreliable judges (reported, not deciding): {', '.join(verdict.unreliable_judges)}")
    if comparison.warnings:
        lines.append("")
        lines.extend(f"> ⚠️ {w}" for w in comparison.warnings)
    lines += ["", "**Reasons**", ""]
    lines += [f"- {_MARKS[r.status]} **{r.status}**: {r.message}" for r in verdict.reasons]
    if comparison.evaluators:
        lines += ["", "### Evaluators", "",
                  f"| Evaluator | Baseline | Candidate | Delta | {comparison.confidence:.0%} CI | p | Win / tie / loss | n |",
                  "|---|---:|---:|---:|---|---:|---|---:|"]
        for e in comparison.evaluators:
            name = _cell(e.name) + ("" if e.higher_is_better else " (lower is better)") \
                + (" (unreliable)" if e.name in verdict.unreliable_judges else "")
            ci = "n/a" if e.ci_low is None else f"[{fmt(e.ci_low)}, {fmt(e.ci_high)}]"
            test = "" if e.test == "none" else (" (McNemar)" if e.binary else " (perm.)")
            lines.append(f"| {name} | {fmt(e.baseline_mean)} | {fmt(e.candidate_mean)} | "
                         f"{fmt(e.mean_delta, signed=True)} | {ci} | {fmt_p(e.p_value)}{test} | "
                         f"{e.wins} / {e.ties} / {e.losses} | {e.n} |")
    lines += ["", "### Cost and latency", "", "| | Baseline | Candidate | Delta | Ratio |", "|---|---:|---:|---:|---:|"]
    for label, metric in (("cost", comparison.cost), ("latency", comparison.latency)):
        lines.append(_metric_row(f"Mean {label}", metric, "mean"))
        lines.append(_metric_row(f"p95 {label}", metric, "p95"))
    lines.append(_metric_row("Total cost", comparison.cost, "total"))
    errors = comparison.errors
    lines.append(f"| Errors | {errors.baseline} | {errors.candidate} | {errors.candidate - errors.baseline:+d} "
                 f"({errors.new} new, {errors.fixed} fixed) | |")
    regressions = comparison.top_regressions(top)
    if regressions:
        lines += ["", "### Top regressions", "", "| Item | Change | Baseline output | Candidate output |",
                  "|---|---|---|---|"]
        for item in regressions:
            lines.append(f"| `{_cell(item.dataset_item_id)}` | {_cell(_change(item))} | "
                         f"{_cell(_short(item.baseline_output))} | {_cell(_short(item.candidate_output))} |")
    return "\n".join(lines) + "\n"


def _metric_row(label: str, metric: MetricDelta, stat: str) -> str:
    base, cand = metric.figure(stat, "baseline"), metric.figure(stat, "candidate")
    delta = None if base is None or cand is None else cand - base
    return (f"| {label} | {fmt_metric(metric.name, base)} | {fmt_metric(metric.name, cand)} | "
            f"{fmt_metric(metric.name, delta, signed=True)} | {fmt_ratio(metric.ratio(stat))} |")


def _change(item: ItemComparison) -> str:
    parts = []
    if item.newly_failed:
        parts.append(f"now fails: {(item.candidate_error or 'error').splitlines()[0][:80]}")
    parts += [f"{name} {fmt(delta, signed=True)}" for name, delta in item.deltas.items() if abs(delta) > 1e-9]
    return ", ".join(parts) or "no change"


def _short(value: Any, limit: int = 120) -> str:
    text = " ".join(output_text(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _time(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"


# --- JSON -----------------------------------------------------------------------------------------


def summary_dict(comparison: Comparison) -> dict[str, Any]:
    """The comparison without its items: experiments, evaluators, cost, latency, errors, warnings."""
    return _jsonable({
        "candidate": asdict(comparison.candidate),
        "baseline": asdict(comparison.baseline),
        "common_items": comparison.common_items,
        "only_baseline": comparison.only_baseline,
        "only_candidate": comparison.only_candidate,
        "confidence": comparison.confidence,
        "evaluators": [asdict(e) for e in comparison.evaluators],
        "cost": _metric_dict(comparison.cost),
        "latency": _metric_dict(comparison.latency),
        "errors": asdict(comparison.errors),
        "judge_versions": comparison.judge_versions,
        "warnings": list(comparison.warnings),
    })


def item_dict(item: ItemComparison, *, diffs: bool = False) -> dict[str, Any]:
    """One item side by side; with ``diffs``, the word diffs as ``[op, text]`` lists."""
    data = asdict(item)
    data["changed"] = item.changed
    data["newly_failed"] = item.newly_failed
    if diffs:
        data["diff_vs_expected"] = [list(s) for s in item.diff_vs_expected()]
        data["diff_vs_baseline"] = [list(s) for s in item.diff_vs_baseline()]
    return _jsonable(data)


def as_dict(comparison: Comparison, verdict: Verdict | None = None, *, items: str = "all",
            diffs: bool = False) -> dict[str, Any]:
    """The comparison (and the verdict, when given) as JSON-able data for ``--report out.json``.

    ``items``: ``all`` (worst first), ``changed`` (only items whose scores or status changed) or
    ``none``; ``diffs`` adds the word diffs to each item written.
    """
    if items not in ("all", "changed", "none"):
        raise ValueError("items is one of all, changed, none")
    data = summary_dict(comparison)
    if verdict is not None:
        data["verdict"] = verdict.to_dict()
    chosen = [] if items == "none" else comparison.changed_items() if items == "changed" else comparison.items
    data["items"] = [item_dict(i, diffs=diffs) for i in chosen]
    return data


def _metric_dict(metric: MetricDelta) -> dict[str, Any]:
    data = asdict(metric)
    data.update(mean_delta=metric.mean_delta, p95_delta=metric.p95_delta, mean_ratio=metric.mean_ratio,
                p95_ratio=metric.p95_ratio, total_ratio=metric.total_ratio)
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
