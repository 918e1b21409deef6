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


# -- notebook 06 -----------------------------------------------------------------------------------
