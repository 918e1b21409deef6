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
@register("04 optimizer steps")
def optimizer_steps(answer: Any, *, pairs: int, batch_size: int, epochs: int = 1) -> Verdict:
    """How many optimizer steps a run of ``epochs`` over ``pairs`` in batches of ``batch_size``
    takes, counted by the book's own batch loader (the last, smaller batch is a step too)."""
    from .data import RandomBatchSampler

    expected = len(RandomBatchSampler(pairs, batch_size)) * epochs
    return expect_equal(answer, expected, f"the number of optimizer steps ({pairs:,} pairs, "
                        f"batches of {batch_size}, {epochs} epoch(s))",
                        "One step per batch; a last batch with fewer pairs is a step too.")


@register("04 new parameters")
def new_parameters(answer: Any, *, hidden_size: int, pooling: str) -> Verdict:
    """How many of a classifier's numbers start from random values: measured on a classifier
    built with the package's own ``BERTClassifier`` at that hidden size and pooling."""
    from .model import BERTClassifier, BertConfig, PretrainedBERT
    from .parameters import new_parameter_count

    config = BertConfig(vocab_size=8, hidden_size=hidden_size, num_layers=1, num_heads=1,
                        ffn_size=4, max_len=8)
    expected = new_parameter_count(BERTClassifier(PretrainedBERT(config), pooling=pooling))
    return expect_equal(answer, expected, f"the number of new parameters ({pooling!r} pooling, "
                        f"hidden size {hidden_size})",
                        "Count weights and biases of every layer that is not in the checkpoint: "
                        "the output layer, and for 'pair' the hidden layer that reads "
                        "4 x hidden numbers.")



# -- notebook 05 -----------------------------------------------------------------------------------


# -- notebook 06 -----------------------------------------------------------------------------------
