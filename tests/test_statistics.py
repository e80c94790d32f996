"""The comparison's statistics against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from looplab.experiments.statistics import (
    bootstrap_ci,
    mcnemar_p,
    nearest_rank,
    paired_permutation_p,
    win_tie_loss,
)


def test_permutation_exact_small():
    # diffs [1, 2, 3]: the 8 sign assignments sum to +-6, +-4, +-2, 0, 0; |sum| >= 6 for 2 of them.
    assert paired_permutation_p([1, 2, 3]) == pytest.approx(2 / 8)
    # [1, -1]: sums 0, 2, -2, 0 against observed 0: every assignment is as extreme.
    assert paired_permutation_p([1, -1]) == 1.0
    # Zeros change no sum: [0, 0, 1, 2, 3] is the [1, 2, 3] case.
    assert paired_permutation_p([0, 0, 1, 2, 3]) == pytest.approx(2 / 8)
    # Five equal positive diffs: only all-plus and all-minus reach |sum| 5: 2 / 32.
    assert paired_permutation_p([0.1] * 5) == pytest.approx(2 / 32)


def test_permutation_no_difference():
    assert paired_permutation_p([]) == 1.0
    assert paired_permutation_p([0, 0, 0]) == 1.0


def test_permutation_exact_matches_monte_carlo():
    # 16 non-zero diffs are enumerated (65,536 assignments); with max_exact=10 they are sampled.
    diffs = [0.5, 1.0, -0.25, 0.75, 1.5, -0.5, 0.25, 1.25, 0.5, -1.0, 2.0, 0.5, 0.75, -0.25, 1.0, 0.25]
    exact = paired_permutation_p(diffs)
    sampled = paired_permutation_p(diffs, max_exact=10, resamples=20_000)
    assert sampled == pytest.approx(exact, abs=0.01)
    assert paired_permutation_p(diffs, max_exact=10) == paired_permutation_p(diffs, max_exact=10)  # seeded


def test_permutation_clear_shift_and_noise():
    rng = np.random.default_rng(7)
    shift = rng.normal(-0.5, 0.3, size=200)  # continuous: sampled item by item
    assert paired_permutation_p(shift) < 0.001
    noise = rng.normal(0.0, 1.0, size=200)
    assert paired_permutation_p(noise) > 0.05
    # Monte Carlo p is (1 + hits) / (1 + resamples): never 0.
    assert paired_permutation_p(shift, resamples=999) == pytest.approx(1 / 1000)


def test_permutation_few_distinct_values_many_items():
    # 60 pairs lost by 1, 40 won by 1: sign test. Under the null the sum is 2 * Binomial(100, 1/2) - 100,
    # so p = P(|2B - 100| >= 20) = 2 * P(B <= 40) = 0.0569 (exact binomial).
    exact = 2 * sum(math.comb(100, k) for k in range(41)) / 2**100
    assert exact == pytest.approx(0.0569, abs=1e-4)
    p = paired_permutation_p([-1.0] * 60 + [1.0] * 40)
    assert p == pytest.approx(exact, abs=0.01)


def test_mcnemar_by_hand():
    # b=1, c=7: n=8 discordant, p = 2 * (C(8,0) + C(8,1)) / 2^8 = 2 * 9 / 256 = 0.0703125.
    assert mcnemar_p(1, 7) == pytest.approx(0.0703125)
    assert mcnemar_p(7, 1) == pytest.approx(0.0703125)
    # b=0, c=5: p = 2 * 1 / 32 = 0.0625.
    assert mcnemar_p(0, 5) == pytest.approx(0.0625)
    # Balanced or nothing discordant: 1 (capped).
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 0) == 1.0
    # Large counts take the log-space path; it agrees with exact integers.
    exact = 2 * sum(math.comb(1500, k) for k in range(701)) / 2**1500
    assert mcnemar_p(700, 800) == pytest.approx(exact, rel=1e-9)
    with pytest.raises(ValueError):
        mcnemar_p(-1, 2)


def test_bootstrap_ci_constant_is_degenerate():
    assert bootstrap_ci([0.25, 0.25, 0.25, 0.25]) == (0.25, 0.25)
    assert bootstrap_ci([-1.0]) == (-1.0, -1.0)


def test_bootstrap_ci_covers_mean_and_is_seeded():
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.3, 1.0, size=100)
    low, high = bootstrap_ci(diffs)
    assert low < diffs.mean() < high
    # The normal-theory interval mean +- 1.96 * sd / sqrt(n) is close to the percentile one.
    half = 1.96 * diffs.std() / math.sqrt(diffs.size)
    assert low == pytest.approx(diffs.mean() - half, abs=0.05)
    assert high == pytest.approx(diffs.mean() + half, abs=0.05)
    assert bootstrap_ci(diffs, seed=3) == bootstrap_ci(diffs, seed=3)
    assert bootstrap_ci(diffs, seed=3) != bootstrap_ci(diffs, seed=4)
    narrow = bootstrap_ci(diffs, confidence=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_ci_two_values():
    # Pairs 0 and 1 in equal numbers (pass/fail deltas): resampled through counts.
    # Mean 0.5, sd of the mean sqrt(0.25 / 400) = 0.025, so the 95% interval is about 0.5 +- 0.049.
    low, high = bootstrap_ci([0.0, 1.0] * 200)
    assert low == pytest.approx(0.451, abs=0.01)
    assert high == pytest.approx(0.549, abs=0.01)


def test_bootstrap_ci_rejects_nothing():
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], confidence=1.5)


def test_nearest_rank():
    # n=5, p95: rank ceil(0.95 * 5) = ceil(4.75) = 5 -> the largest, 5.
    assert nearest_rank([5, 1, 3, 2, 4], 0.95) == 5
    # n=20 values 1..20, p95: rank ceil(19.0) = 19 -> 19 (no float drift to rank 20).
    assert nearest_rank(range(1, 21), 0.95) == 19
    # n=10, median: rank ceil(5) = 5 -> the 5th smallest.
    assert nearest_rank([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0.5) == 50
    # q=0 is the smallest, q=1 the largest; None and NaN are left out.
    assert nearest_rank([3, None, 1, float("nan"), 2], 0) == 1
    assert nearest_rank([3, None, 1, 2], 1) == 3
    assert nearest_rank([], 0.95) is None
    assert nearest_rank([None], 0.5) is None
    with pytest.raises(ValueError):
        nearest_rank([1], 95)


def test_win_tie_loss():
    assert win_tie_loss([1, 0, -1, 2, 1e-12, -0.5]) == (2, 2, 2)
    assert win_tie_loss([0.05, -0.05], tie=0.1) == (0, 2, 0)
    assert win_tie_loss([]) == (0, 0, 0)
