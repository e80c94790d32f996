"""The small statistics an experiment comparison needs, vectorised with numpy (no scipy).

Every function takes paired differences ``candidate - baseline`` (one number per item both
experiments ran) and is reproducible: random draws come from ``numpy.random.default_rng(seed)``.

Resampling cost grows with items x resamples, so the two resampling procedures pick the cheapest
way to draw from the *same* distribution:

- differences that take few distinct values (pass/fail, 1-5 ratings, scores in steps of 0.1) are
  resampled through their counts (a multinomial for the bootstrap, one binomial per distinct
  magnitude for sign flips): exact in distribution and fast at any number of items;
- otherwise items are resampled one by one while that stays under ``_DRAW_BUDGET`` draws;
- beyond that (thousands of items with continuous scores) the bootstrap and sign-flip
  distributions are replaced by their normal limits (mean +- z * sd / sqrt(n); z = sum / sqrt(sum
  of squares)), which at that size differ from 10,000 resamples by less than the resampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist

import numpy as np

# Above this many random draws (items x resamples) per statistic, resampling one item at a time
# takes seconds; see the module docstring for what is used instead.
_DRAW_BUDGET = 10_000_000
# Differences with at most this many distinct values are resampled through their counts.
_FEW_VALUES = 32
# Distinct values are found after rounding away float noise (0.3 - 0.1 != 0.2).
_DECIMALS = 12


def _as_array(diffs: Iterable[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(list(diffs) if not isinstance(diffs, np.ndarray) else diffs, dtype=float)
    if values.ndim != 1:
        raise ValueError("expected a flat sequence of paired differences")
    if not np.all(np.isfinite(values)):
        raise ValueError("paired differences must be finite numbers")
    return values


def bootstrap_ci(diffs: Sequence[float] | np.ndarray, *, confidence: float = 0.95, resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean paired difference.

    Resamples the items (pairs) with replacement ``resamples`` times and returns the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled means. The same
    ``diffs`` and ``seed`` always give the same interval; a constant vector gives ``(c, c)``.
    Raises ``ValueError`` for no differences or a confidence outside (0, 1).
    """
    values = _as_array(diffs)
    n = values.size
    if n == 0:
        raise ValueError("a confidence interval needs at least one paired difference")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    tail = (1 - confidence) / 2
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    distinct, counts = np.unique(np.round(values, _DECIMALS), return_counts=True)
    if distinct.size <= _FEW_VALUES:
        # Drawing n items with replacement = drawing how many times each distinct value comes up.
        means = rng.multinomial(n, counts / n, size=resamples) @ distinct / n
    elif n * resamples <= _DRAW_BUDGET:
        means = np.empty(resamples)
        chunk = max(1, 2_000_000 // n)
        for start in range(0, resamples, chunk):
            stop = min(resamples, start + chunk)
            picks = rng.integers(0, n, size=(stop - start, n), dtype=np.int64 if n >= 2**31 else np.int32)
            means[start:stop] = np.take(values, picks).mean(axis=1)
    else:
        # The bootstrap distribution of a mean of this many items is normal to within resampling noise.
        spread = float(values.std()) / math.sqrt(n)  # plug-in sd, as the bootstrap's own
        z = NormalDist().inv_cdf(1 - tail)
        centre = float(values.mean())
        return centre - z * spread, centre + z * spread
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_permutation_p(diffs: Sequence[float] | np.ndarray, *, seed: int = 0, max_exact: int = 16,
                         resamples: int = 10_000) -> float:
    """Two-sided p-value of the paired permutation (sign-flip) test of "mean difference is 0".

    Under the null each pair's difference is as likely positive as negative; the p-value is the
    share of sign assignments whose |sum| is at least the observed |sum|. Zero differences do not
    change any sum and are left out. With at most ``max_exact`` non-zero differences all
    ``2**n`` assignments are enumerated (exact); otherwise ``resamples`` seeded random ones are
    drawn and ``(1 + hits) / (1 + resamples)`` is returned (never 0). No differences, or all zero,
    give 1.0.
    """
    values = _as_array(diffs)
    values = values[values != 0]
    n = values.size
    if n == 0:
        return 1.0
    observed = abs(float(values.sum()))
    slack = 1e-9 * max(1.0, float(np.abs(values).sum()))  # sums equal up to float rounding count as hits
    if n <= max_exact:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        sums = np.abs(signs @ values)
        return float(np.count_nonzero(sums >= observed - slack)) / 2**n
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    rng = np.random.default_rng(seed)
    magnitudes, counts = np.unique(np.round(np.abs(values), _DECIMALS), return_counts=True)
    if magnitudes.size <= _FEW_VALUES:
        # m pairs of magnitude a contribute a * (2 * Binomial(m, 1/2) - m) to the flipped sum.
        sums = np.zeros(resamples)
        for magnitude, count in zip(magnitudes, counts):
            sums += magnitude * (2 * rng.binomial(int(count), 0.5, size=resamples) - int(count))
        observed = abs(float((np.sign(values) * np.round(np.abs(values), _DECIMALS)).sum()))
    elif n * resamples <= _DRAW_BUDGET:
        sums = np.empty(resamples)
        chunk = max(1, 2_000_000 // n)
        for start in range(0, resamples, chunk):
            stop = min(resamples, start + chunk)
            signs = 1 - 2 * rng.integers(0, 2, size=(stop - start, n), dtype=np.int8)
            sums[start:stop] = signs @ values
    else:
        # The sign-flip sum has mean 0 and variance sum(d^2), and is normal at this size.
        z = observed / math.sqrt(float(np.square(values).sum()))
        return min(1.0, math.erfc(z / math.sqrt(2)))
    hits = int(np.count_nonzero(np.abs(sums) >= observed - slack))
    return (1 + hits) / (1 + resamples)


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for pass/fail pairs.

    ``b`` and ``c`` are the discordant pairs (passed only in the baseline, passed only in the
    candidate); under the null each is Binomial(b + c, 1/2), so
    ``p = min(1, 2 * sum_{k <= min(b, c)} C(b + c, k) / 2**(b + c))``. No discordant pairs give 1.0.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant pair counts cannot be negative")
    n = int(b) + int(c)
    k = min(int(b), int(c))
    if n == 0:
        return 1.0
    if n <= 1000:  # exact integers
        return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
    # log C(n, i) by running sums of log((n - i + 1) / i), then a stable log-sum-exp.
    i = np.arange(1, k + 1)
    log_comb = np.concatenate([[0.0], np.cumsum(np.log(n - i + 1) - np.log(i))])
    top = log_comb.max()
    log_tail = top + math.log(float(np.exp(log_comb - top).sum())) - n * math.log(2)
    return min(1.0, 2 * math.exp(log_tail))


def nearest_rank(values: Iterable[float | None], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (``q`` in [0, 1], e.g. 0.95 for p95).

    The value at rank ``ceil(q * n)`` (at least 1) of the sorted values: always one of the values,
    never an interpolation. ``None`` and NaN are left out; no values give ``None``.
    """
    if not 0 <= q <= 1:
        raise ValueError("q is a fraction between 0 and 1 (0.95 for p95)")
    array = np.asarray([v for v in values if v is not None], dtype=float)
    array = array[~np.isnan(array)]
    if array.size == 0:
        return None
    rank = max(1, math.ceil(round(q * array.size, 9)))  # round: 0.95 * 20 is 19.000000000000004
    return float(np.partition(array, rank - 1)[rank - 1])


def win_tie_loss(diffs: Sequence[float] | np.ndarray, tie: float = 1e-9) -> tuple[int, int, int]:
    """How many pairs the candidate won (difference > ``tie``), tied (|difference| <= ``tie``) and
    lost (difference < ``-tie``); higher scores are better."""
    values = _as_array(diffs)
    wins = int(np.count_nonzero(values > tie))
    losses = int(np.count_nonzero(values < -tie))
    return wins, values.size - wins - losses, losses
