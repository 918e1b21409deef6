"""Paired comparisons: the statistics against hand computations and scipy, and the verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bertnli_helpers.study.comparison import (
    BETTER,
    WITHIN_NOISE,
    WORSE,
    compare,
    correct_mask,
    learning_check,
    mcnemar_p,
    paired_bootstrap_interval,
    seed_spread,
)


def pairs(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * both + [1] * a_only + [0] * b_only + [0] * neither, dtype=bool)
    b = np.array([1] * both + [0] * a_only + [1] * b_only + [0] * neither, dtype=bool)
    return a, b


def test_mcnemar_matches_the_exact_binomial_by_hand():
    a, b = pairs(50, 3, 0, 10)
    # 3 discordant pairs, all for A: two-sided exact p = 2 * 0.5**3
    assert mcnemar_p(a, b) == pytest.approx(0.25)
    a, b = pairs(400, 30, 12, 58)
    assert mcnemar_p(a, b) == pytest.approx(stats.binomtest(30, 42, 0.5).pvalue)
    assert mcnemar_p(*pairs(5, 0, 0, 5)) == 1.0


def test_bootstrap_interval_is_close_to_the_paired_wald_interval():
    a, b = pairs(1500, 120, 60, 320)
    n, d = len(a), (120 - 60) / len(a)
    # the textbook standard error of a difference of paired proportions
    se = math.sqrt((120 + 60) / n - d**2) / math.sqrt(n)
    low, high = paired_bootstrap_interval(a[None], b[None], samples=4000)
    assert low == pytest.approx(d - 1.96 * se, abs=0.004)
    assert high == pytest.approx(d + 1.96 * se, abs=0.004)


def test_verdicts_follow_the_numbers_and_flip_with_the_sides():
    a, b = pairs(1500, 120, 60, 320)
    result = compare(a, b, "pretrained", "scratch")
    assert result.verdict == BETTER and result.low > 0
    assert "pretrained is better than scratch: +3.0 points" in result.sentence()
    reverse = compare(b, a)
    assert reverse.verdict == WORSE and reverse.difference == pytest.approx(-result.difference)
    close = compare(*pairs(1500, 70, 62, 368), "ratio", "longest-first")
    assert close.verdict == WITHIN_NOISE and close.low < 0 < close.high
    assert "within noise" in close.sentence() and "better than" not in close.sentence()
    assert "One training seed" in result.sentence()  # a direction from one seed is a hint
    several = compare(np.stack([a, a]), np.stack([b, b]), "pretrained", "scratch")
    assert several.verdict == BETTER and "One training seed" not in several.sentence()


def test_seeds_add_training_noise_to_the_interval():
    rng = np.random.default_rng(0)
    truth = rng.random(2000) < 0.7
    flips = [rng.random(2000) < 0.1 for _ in range(3)]
    a = np.stack([truth ^ f for f in flips])  # three seeds of one recipe
    one_seed = compare(a[0], a[1])
    assert one_seed.n_seeds == 1 and compare(a, a[::-1]).n_seeds == 3
    assert compare(a, a).verdict == WITHIN_NOISE and compare(a, a).difference == 0.0
    with pytest.raises(ValueError, match="same non-empty"):
        compare(a, a[:2])


def test_learning_check_against_the_majority_class():
    labels = np.array([0] * 40 + [1] * 35 + [2] * 25)
    chance = correct_mask(np.zeros(100, dtype=int), labels)  # always class 0: 40%
    check = learning_check(chance, labels)
    assert check.majority_rate == 0.4 and not check.learned
    assert "did not learn" in check.sentence()
    good = learning_check(np.arange(100) < 75, labels)
    assert good.learned and good.low == pytest.approx(
        stats.binomtest(75, 100).proportion_ci(method="exact").low)


def test_correct_mask_reads_probabilities_or_labels():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert correct_mask(probs, [0, 1]).tolist() == [True, False]
    assert correct_mask(np.array([0, 1]), [0, 1]).tolist() == [True, True]
    assert seed_spread([0.5, 0.7]) == pytest.approx((0.6, math.sqrt(0.02)))
    assert seed_spread([0.5]) == (0.5, 0.0)


def test_compare_groups_is_unpaired_and_calls_a_clear_gap():
    from bertnli_helpers.study.comparison import compare_groups

    rng = np.random.default_rng(0)
    easy, hard = rng.random(400) < 0.9, rng.random(300) < 0.6
    gap = compare_groups(easy, hard, "easy", "hard")
    assert gap.verdict == "better" and gap.n_pairs == 700 and gap.low > 0
    assert gap.difference == pytest.approx(easy.mean() - hard.mean())
    same = compare_groups(easy[:200], easy[200:], "first half", "second half")
    assert same.verdict == "within noise" and same.low < 0 < same.high
    assert compare_groups(hard, easy).verdict == "worse"
    with pytest.raises(ValueError, match="both groups"):
        compare_groups([], easy)
