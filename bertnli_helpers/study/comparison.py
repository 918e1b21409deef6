"""Is one classifier really better than another? Paired comparisons with their noise.

Two classifiers scored on the same pairs are compared pair by pair: the difference in accuracy,
a 95% interval for it from a paired bootstrap (pairs resampled, and seeds too when each side was
trained with several seeds), McNemar's exact test on the pairs where they disagree, and a
verdict: ``better``, ``worse`` or ``within noise``. Prose that states a direction is generated
from the verdict (:meth:`Comparison.sentence`), so it cannot contradict the numbers beside it.
A second check asks whether a run learned at all: is its accuracy above the majority-class rate
by more than chance allows?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BETTER, WORSE, WITHIN_NOISE = "better", "worse", "within noise"
NEITHER_LEARNED = "neither learned"
CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000
_CHUNK = 250


def _as_correct(correct: np.ndarray | Sequence) -> np.ndarray:
    """``(seeds, pairs)`` booleans: one row per training seed, one column per scored pair."""
    array = np.asarray(correct, dtype=bool)
    return array[None, :] if array.ndim == 1 else array


def correct_mask(probs_or_predictions: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Which pairs a classifier got right, from its probabilities ``(n, 3)`` or its labels."""
    predicted = np.asarray(probs_or_predictions)
    if predicted.ndim == 2:
        predicted = predicted.argmax(1)
    return predicted == np.asarray(labels)


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact two-sided McNemar test: among pairs only one side gets right, is the split 50/50?"""
    a_only = int((correct_a & ~correct_b).sum())
    b_only = int((~correct_a & correct_b).sum())
    if a_only + b_only == 0:
        return 1.0
    return float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue)


def paired_bootstrap_interval(
    correct_a: np.ndarray, correct_b: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE, seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the accuracy difference, resampling seeds and then pairs.

    ``correct_a``/``correct_b`` are ``(seeds, pairs)``; seed ``k`` of both sides is scored on
    the same pairs. Resampling the seeds captures training noise, the pairs the test sample's.
    """
    rng = np.random.default_rng(seed)
    seeds, n = correct_a.shape
    diff = correct_a.astype(np.float64) - correct_b.astype(np.float64)
    means = []
    for start in range(0, samples, _CHUNK):  # chunks keep memory at _CHUNK x n
        size = min(_CHUNK, samples - start)
        picked_seeds = rng.integers(0, seeds, size=(size, seeds))
        weights = np.stack([np.bincount(row, minlength=seeds) / seeds for row in picked_seeds])
        rows = weights @ diff  # each sample's seed-resampled mean difference per pair
        picked_pairs = rng.integers(0, n, size=(size, n))
        means.append(np.take_along_axis(rows, picked_pairs, axis=1).mean(1))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.concatenate(means), [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    """A against B on the same pairs: accuracies, difference (A - B), its interval, verdict."""

    name_a: str
    name_b: str
    accuracy_a: float
    accuracy_b: float
    difference: float
    low: float
    high: float
    p_value: float  # McNemar over every (seed, pair)
    n_pairs: int
    n_seeds: int
    verdict: str
    one_run_note: str = ("One training seed: the interval covers the sample of pairs, not how "
                         "much a run with another seed would differ, so read it as a hint, not "
                         "a result.")  # said after a direction read from one run per side

    def sentence(self) -> str:
        """One sentence that states only what the numbers support."""
        points = f"{100 * self.difference:+.1f} points"
        interval = (f"95% interval {100 * self.low:+.1f} to {100 * self.high:+.1f} points, "
                    f"{self.n_pairs:,} pairs" + (f" x {self.n_seeds} seeds" if self.n_seeds > 1
                                                 else ""))
        if self.verdict == WITHIN_NOISE:
            return (f"{self.name_a} against {self.name_b}: {points} ({interval}): within noise, "
                    f"so this run does not show that either is better.")
        caveat = f" {self.one_run_note}" if self.n_seeds == 1 and self.one_run_note else ""
        return f"{self.name_a} is {self.verdict} than {self.name_b}: {points} ({interval}).{caveat}"

    def row(self) -> dict[str, object]:
        """The comparison as a table row (for pandas and Markdown tables)."""
        return {"A": self.name_a, "B": self.name_b, "accuracy A": round(self.accuracy_a, 4),
                "accuracy B": round(self.accuracy_b, 4), "A - B": round(self.difference, 4),
                "95% low": round(self.low, 4), "95% high": round(self.high, 4),
                "McNemar p": round(self.p_value, 4), "verdict": self.verdict}


def verdict_of(low: float, high: float, p_value: float, alpha: float = 1 - CONFIDENCE) -> str:
    """``better``/``worse`` only when the interval excludes zero and McNemar agrees."""
    if p_value < alpha and low > 0:
        return BETTER
    if p_value < alpha and high < 0:
        return WORSE
    return WITHIN_NOISE


def compare(
    correct_a: np.ndarray | Sequence, correct_b: np.ndarray | Sequence,
    name_a: str = "A", name_b: str = "B", *, seed: int = 0,
) -> Comparison:
    """Compare two classifiers from which pairs each got right (``(pairs,)`` for one run each,
    ``(seeds, pairs)`` for several seeds, row ``k`` of both scored on the same pairs)."""
    a, b = _as_correct(correct_a), _as_correct(correct_b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"both sides need the same non-empty (seeds, pairs) shape, not "
                         f"{a.shape} and {b.shape}")
    low, high = paired_bootstrap_interval(a, b, seed=seed)
    p_value = mcnemar_p(a.ravel(), b.ravel())
    return Comparison(name_a, name_b, float(a.mean()), float(b.mean()),
                      float(a.mean() - b.mean()), low, high, p_value, a.shape[1], a.shape[0],
                      verdict_of(low, high, p_value))


@dataclass(frozen=True)
class LearningCheck:
    """Did a run learn? Its accuracy against always answering the most common class."""

    accuracy: float
    majority_rate: float
    low: float  # lower end of the 95% interval of the accuracy
    n: int

    @property
    def learned(self) -> bool:
        return self.low > self.majority_rate

    def sentence(self, name: str = "the run") -> str:
        ci = f"95% interval from {self.low:.3f}"
        if self.learned:
            return (f"{name} learned: accuracy {self.accuracy:.3f} ({ci}) is above the "
                    f"majority-class rate {self.majority_rate:.3f}.")
        return (f"{name} did not learn measurably: accuracy {self.accuracy:.3f} ({ci}) is not "
                f"above the majority-class rate {self.majority_rate:.3f}; compare it with "
                "nothing until it trains longer.")


def finding(comparison: Comparison, not_learned: Sequence[tuple[str, str]] = ()) -> str:
    """The verdict to report: the paired one when both sides learned, else which side learned
    (``not_learned``: ``(name, note)`` per side that did not): one side learning in a budget
    where the other does not is a finding, but no accuracy difference is read from it."""
    if not not_learned:
        return comparison.verdict
    if len(not_learned) == 2:
        return NEITHER_LEARNED
    (loser, _), = not_learned
    return f"only {comparison.name_b if loser == comparison.name_a else comparison.name_a} learned"


def finding_sentence(comparison: Comparison, not_learned: Sequence[tuple[str, str]] = ()) -> str:
    """:func:`finding` as a sentence, with each idle side's note."""
    notes = " and ".join(note for _, note in not_learned)
    verdict = finding(comparison, not_learned)
    if verdict == NEITHER_LEARNED:
        return (f"Neither {comparison.name_a} nor {comparison.name_b} learned in this budget "
                f"({notes}), so their accuracies say nothing about which is better; train longer.")
    if not_learned:
        winner = verdict.removeprefix("only ").removesuffix(" learned")
        loser = not_learned[0][0]
        return (f"{winner} learned and {loser} did not ({notes}): with this budget, that is the "
                "finding. Which reaches the higher accuracy, and by how much, needs both sides to "
                "learn.")
    return comparison.sentence()


def learning_check(correct: np.ndarray | Sequence, labels: Sequence[int]) -> LearningCheck:
    """Exact binomial (Clopper-Pearson) lower bound of the accuracy against the majority rate."""
    hits = np.asarray(correct, dtype=bool)
    labels = np.asarray(labels)
    majority = float(np.bincount(labels).max() / len(labels))
    test = stats.binomtest(int(hits.sum()), len(hits))
    low = test.proportion_ci(confidence_level=CONFIDENCE, method="exact").low
    return LearningCheck(float(hits.mean()), majority, float(low), len(hits))


def seed_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (0 for a single seed)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def compare_groups(
    correct_a: np.ndarray | Sequence, correct_b: np.ndarray | Sequence,
    name_a: str = "A", name_b: str = "B", *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
) -> Comparison:
    """One classifier on two different groups of pairs (easy and hard, say): the difference of
    its accuracies, a 95% bootstrap interval (each group resampled on its own) and Fisher's
    exact test. Not paired: the groups hold different pairs, so ``n_pairs`` is both together."""
    a = np.asarray(correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b, dtype=bool).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f"both groups need pairs, not {a.size} and {b.size}")
    rng = np.random.default_rng(seed)
    means_a = rng.binomial(a.size, a.mean(), samples) / a.size  # resampling a group of 0/1s
    means_b = rng.binomial(b.size, b.mean(), samples) / b.size
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means_a - means_b, [tail, 100 - tail])
    table = [[int(a.sum()), int((~a).sum())], [int(b.sum()), int((~b).sum())]]
    p_value = float(stats.fisher_exact(table).pvalue)
    return Comparison(name_a, name_b, float(a.mean()), float(b.mean()),
                      float(a.mean() - b.mean()), float(low), float(high), p_value,
                      a.size + b.size, 1, verdict_of(float(low), float(high), p_value))
