"""Checks for the notebooks' exercises: is a student's answer right, and if not, why not?

Where an exercise has one right answer (a count, a packed sequence, a truncation result, a
parameter count), the notebook asks ``check("name", answer, ...)``. Each check computes the
expected answer with the package's own code from what the exercise gave the student, so the
check and the lesson cannot drift apart. Checks are registered by name with :func:`register`,
grouped below by notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """A checked answer: right or not, and a sentence that says why."""

    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        return ("Right: " if self.correct else "Not yet: ") + self.message

    def _repr_markdown_(self) -> str:
        return ("✅ **Right.** " if self.correct else "❌ **Not yet.** ") + self.message


CHECKS: dict[str, Callable[..., Verdict]] = {}


def register(name: str) -> Callable[[Callable[..., Verdict]], Callable[..., Verdict]]:
    """Add a check under ``name`` (a decorator)."""
    def add(function: Callable[..., Verdict]) -> Callable[..., Verdict]:
        if name in CHECKS:
            raise ValueError(f"a check named {name!r} is already registered")
        CHECKS[name] = function
        return function

    return add


def check(name: str, answer: Any, **given: Any) -> Verdict:
    """Check ``answer`` to exercise ``name``; ``given`` is what the exercise gave the student."""
    if name not in CHECKS:
        raise KeyError(f"no check named {name!r}; known: {', '.join(sorted(CHECKS))}")
    return CHECKS[name](answer, **given)


def expect_equal(answer: Any, expected: Any, what: str, hint: str = "") -> Verdict:
    """The common case: the answer must equal the expected value."""
    if answer == expected:
        return Verdict(True, f"{what} is {expected!r}.")
    return Verdict(False, f"{what} should be {expected!r}, not {answer!r}." +
                   (f" {hint}" if hint else ""))


# -- notebook 01 -----------------------------------------------------------------------------------


# -- notebook 02 -----------------------------------------------------------------------------------


# -- notebook 03 -----------------------------------------------------------------------------------


# -- notebook 04 -----------------------------------------------------------------------------------


# -- notebook 05 -----------------------------------------------------------------------------------
@register("05 hard errors")
def _hard_errors(answer: Any, *, correct: Any, hard: Any) -> Verdict:
    """How many hard pairs (the hypothesis-only baseline gets them wrong) the model misses."""
    import numpy as np

    expected = int((~np.asarray(correct, dtype=bool) & np.asarray(hard, dtype=bool)).sum())
    return expect_equal(answer, expected, "the number of hard pairs the model gets wrong",
                        "Count the rows that are hard and not correct: (~correct & hard).sum().")


@register("05 best temperature")
def _best_temperature(answer: Any, *, probs: Any, labels: Any, grid: Any) -> Verdict:
    """The temperature of ``grid`` with the lowest cross-entropy of ``probs`` on ``labels``."""
    import numpy as np

    logs = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    labels = np.asarray(labels)

    def cross_entropy(t: float) -> float:
        scaled = logs / t
        scaled -= scaled.max(1, keepdims=True)
        log_softmax = scaled - np.log(np.exp(scaled).sum(1, keepdims=True))
        return float(-log_softmax[np.arange(len(labels)), labels].mean())

    expected = float(min(grid, key=cross_entropy))
    if np.isclose(float(answer), expected):
        return Verdict(True, f"T = {expected:g} gives the lowest cross-entropy on these pairs.")
    return Verdict(False, f"T = {float(answer):g} has cross-entropy {cross_entropy(answer):.4f}; "
                   f"T = {expected:g} has {cross_entropy(expected):.4f}. Divide the "
                   "log-probabilities by T, take the softmax again, and score the gold class.")


@register("05 uniform cross share")
def _uniform_cross_share(answer: Any, *, segments: Any) -> Verdict:
    """The crossing share of a head that attends to every token of the pair alike."""
    import numpy as np

    from .analysis import uniform_cross_share

    expected = uniform_cross_share(segments)
    if np.isclose(float(answer), expected, atol=1e-3):
        return Verdict(True, f"uniform attention sends {expected:.3f} of its weight across.")
    n0, n1 = int((np.asarray(segments) == 0).sum()), int((np.asarray(segments) == 1).sum())
    return Verdict(False, f"{expected:.3f}, not {float(answer):.3f}: each of the {n0} tokens of "
                   f"side 0 gives {n1}/{n0 + n1} of its attention to side 1, and the other way "
                   f"round; divide the total by the {n0 + n1} query rows.")


# -- notebook 06 -----------------------------------------------------------------------------------
@register("06 runs that learned")
def _runs_that_learned(answer: Any, *, grid: Any) -> Verdict:
    """How many cells of a grid beat the majority class measurably (``learning_check``)."""
    from .comparison import learning_check

    expected = sum(learning_check(c.correct, c.labels).learned for c in grid.cells)
    return expect_equal(answer, expected, f"the number of the {len(grid.cells)} runs that learned",
                        "Call learning_check(cell.correct, cell.labels) on every cell of the "
                        "grid and count .learned.")


@register("06 strategies that keep the hypothesis")
def _strategies_keeping_hypothesis(answer: Any, *, p_lens: Any, h_lens: Any, max_len: int,
                                   strategies: Any) -> Verdict:
    """Which strategies drop no hypothesis token on these pairs at ``max_len``."""
    from .truncation import truncation_summary

    rows = truncation_summary(list(p_lens), list(h_lens), max_len, list(strategies))
    expected = {r["strategy"] for r in rows if r["hypothesis_tokens_dropped"] == 0}
    answer = {answer} if isinstance(answer, str) else set(answer)
    return expect_equal(answer, expected, "the strategies that keep every hypothesis token",
                        "Read the hypothesis_tokens_dropped column of truncation_summary.")


@register("06 training PFLOP")
def _training_pflop(answer: Any, *, config: Any, lengths: Any, pairs: int, epochs: int) -> Verdict:
    """Training arithmetic of ``epochs`` over ``pairs`` pairs, in PFLOP (within 5%)."""
    import numpy as np

    from .costs import training_flops

    lengths = np.asarray(lengths, dtype=np.float64)
    expected = training_flops(config, lengths) / len(lengths) * pairs * epochs / 1e15
    if abs(float(answer) - expected) <= 0.05 * expected:
        return Verdict(True, f"about {expected:,.0f} PFLOP.")
    return Verdict(False, f"about {expected:,.0f} PFLOP, not {float(answer):,.0f}: FLOPs per "
                   "example (training_flops over the sample of lengths, divided by its size) "
                   "times pairs times epochs, divided by 1e15.")
