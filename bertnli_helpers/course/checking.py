"""How an exercise is checked: a verdict when right, a hint (never the answer) when not.

Where an exercise has one right answer (a count, a packed sequence, a truncation result, a
parameter count), the notebook's check cell calls ``check("name", answer, ...)``; where the
student writes a function, ``check("name", my_function, ...)`` runs it on many generated cases
against the package's own implementation (:func:`check_function`). Each check computes the
expected answer with the package's own code from what the exercise gave the student, so the
check and the lesson cannot drift apart.

``check`` returns a :class:`Verdict` when the answer is right and raises
:class:`ExerciseNotPassed` (an ``AssertionError``, so nbgrader's autograder scores the cell 0)
when it is wrong or missing. A hint says what rule the answer breaks, never the expected value;
``check(..., reveal=True)`` shows the reference answer beside the verdict. Checks are registered
by name with :func:`register`, in ``checks_data`` (notebooks 1-3), ``checks_training`` (4, 7)
and ``checks_analysis`` (5, 6); notebooks import them all through ``exercises``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """A checked answer: right or not, and a sentence that says why. ``answered`` is False
    when there was no answer yet: then it is neither right nor wrong, and says nothing of
    the expected value (a cell run before the student wrote anything must not give it away).
    ``reference`` is the package's answer, kept out of every message unless revealed."""

    correct: bool
    message: str
    answered: bool = True
    reference: Any = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        if not self.answered:
            return self.message
        return ("Right: " if self.correct else "Not yet: ") + self.message

    def _repr_markdown_(self) -> str:
        if not self.answered:
            return f"✏️ {self.message}"
        return ("✅ **Right.** " if self.correct else "❌ **Not yet.** ") + self.message


UNANSWERED_MESSAGE = "Write your answer above (in place of `None`), then run this cell."
UNANSWERED = Verdict(False, UNANSWERED_MESSAGE, answered=False)


class ExerciseNotPassed(AssertionError):
    """A wrong or missing answer: an AssertionError (what nbgrader's autograder counts as a
    failed test), whose message is the hint, shown by Jupyter as one line, not a traceback."""

    def __init__(self, name: str, verdict: Verdict) -> None:
        super().__init__(f"{name}: {verdict}")
        self.name = name
        self.verdict = verdict

    def _render_traceback_(self) -> list[str]:
        mark = "✏️" if not self.verdict.answered else "❌"
        return [f"{mark} {self}"]


CHECKS: dict[str, Callable[..., Verdict]] = {}


def register(name: str) -> Callable[[Callable[..., Verdict]], Callable[..., Verdict]]:
    """Add a check under ``name`` (a decorator)."""
    def add(function: Callable[..., Verdict]) -> Callable[..., Verdict]:
        if name in CHECKS:
            raise ValueError(f"a check named {name!r} is already registered")
        CHECKS[name] = function
        return function

    return add


def check(name: str, answer: Any, *, reveal: bool = False, **given: Any) -> Verdict:
    """Check ``answer`` to exercise ``name``; ``given`` is what the exercise gave the student.

    Returns the Verdict when right; raises ExerciseNotPassed when wrong or unanswered (``None``,
    or a function whose body still returns ``None``). ``reveal`` adds the reference answer."""
    if name not in CHECKS:
        raise KeyError(f"no check named {name!r}; known: {', '.join(sorted(CHECKS))}")
    # None is the exercise cell as shipped: nothing to check, nothing to reveal
    verdict = UNANSWERED if answer is None else _judged(CHECKS[name], answer, given)
    if reveal:
        verdict = _revealed(verdict)
    if not verdict.correct:
        raise ExerciseNotPassed(name, verdict)
    return verdict


def _judged(judge: Callable[..., Verdict], answer: Any, given: dict[str, Any]) -> Verdict:
    """The check's verdict; an answer of the wrong kind (a list where a number is due, a pair
    that does not unpack) is a wrong answer with one line, not a traceback."""
    try:
        return judge(answer, **given)
    except (TypeError, ValueError) as error:
        return Verdict(False, f"This answer is not of the kind the exercise asks for "
                              f"({type(error).__name__}: {error}); read the exercise again.")


def _revealed(verdict: Verdict) -> Verdict:
    """The verdict with the reference answer appended (a function's as its source)."""
    if verdict.reference is None:
        shown = "answer the exercise first; the reference is shown beside a checked answer."
    elif callable(verdict.reference):
        shown = "\n\n```python\n" + _source(verdict.reference) + "```"
    else:
        shown = _shown(verdict.reference)
    return Verdict(verdict.correct, f"{verdict.message} Reference answer: {shown}",
                   verdict.answered, verdict.reference)


def _source(function: Callable[..., Any]) -> str:
    """A function's source, or its name where Python keeps none (a builtin, a partial)."""
    target = getattr(function, "func", function)
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        return f"{getattr(target, '__qualname__', target)!r}\n"


def expect_equal(answer: Any, expected: Any, what: str, hint: str = "", *,
                 verb: str = "is") -> Verdict:
    """The common case: the answer must equal the expected value (``verb`` "are" for plurals).
    A wrong answer's message repeats the answer and the hint, never the expected value."""
    if answer == expected:
        return Verdict(True, f"{what} {verb} {_shown(expected)}.", reference=expected)
    return Verdict(False, f"{what} {verb} not {_shown(answer)}." + (f" {hint}" if hint else ""),
                   reference=expected)


def _shown(value: Any) -> str:
    """A value as a student reads it: a set sorted, an empty one as 'none'."""
    if isinstance(value, (set, frozenset)):
        return ", ".join(map(repr, sorted(value))) if value else "none"
    return repr(value)


# -- function exercises: many generated cases, stated rules, the package's function -----------

@dataclass(frozen=True)
class Case:
    """One call of a student's function: its arguments, and the kind of case a hint names."""

    kind: str
    args: tuple


@dataclass(frozen=True)
class Rule:
    """An invariant every right answer keeps: ``holds(args, result)``; ``text`` is the rule as
    a hint states it (never a value the reference computes)."""

    text: str
    holds: Callable[[tuple, Any], bool]


def check_function(function: Callable[..., Any], reference: Callable[..., Any],
                   cases: Iterable[Case], rules: Sequence[Rule] = (), *, what: str,
                   mismatch_hint: str, same: Callable[[Any, Any], bool] | None = None) -> Verdict:
    """Run a student's ``function`` on every case; the first case that raises, returns None
    (the stub), breaks a rule, or differs from ``reference`` fails it, and the hint names the
    case's kind and the broken rule. ``same`` compares results (default ``==``)."""
    same = same or (lambda a, b: a == b)
    cases = list(cases)
    for case in cases:
        try:  # each call gets its own copy: a function that shuffles its input or draws from
            result = function(*copy.deepcopy(case.args))  # a generator changes no other call
        except Exception as error:  # a student's bug is the finding, not a crash
            return Verdict(False, f"{what} raised {type(error).__name__} ({error}) on a case "
                                  f"with {case.kind}.", reference=reference)
        if result is None:
            return Verdict(False, f"Write the body of {what} above (it still returns None), "
                                  "then run this cell.", answered=False, reference=reference)
        broken = next((rule for rule in rules if not _holds(rule, case.args, result)), None)
        if broken is not None:
            return Verdict(False, f"On a case with {case.kind}, {what} breaks a rule: "
                                  f"{broken.text}.", reference=reference)
        if not same(result, reference(*copy.deepcopy(case.args))):
            return Verdict(False, f"On a case with {case.kind}, {what} keeps every rule but "
                                  f"differs from the package's function. {mismatch_hint}",
                           reference=reference)
    kinds = len({case.kind for case in cases})
    return Verdict(True, f"{what} agrees with the package's function on all {len(cases)} cases "
                         f"({kinds} kinds, edge cases included) and keeps every rule.",
                   reference=reference)


def _holds(rule: Rule, args: tuple, result: Any) -> bool:
    """Whether ``rule`` holds; a result of the wrong shape breaks it rather than crashing."""
    try:
        return bool(rule.holds(args, result))
    except Exception:  # e.g. an int where a pair of lists was due
        return False


def student_or_reference(function: Callable[..., Any] | None, name: str,
                         **given: Any) -> Callable[..., Any]:
    """The student's ``function`` when it passes check ``name``, else the package's reference,
    with one printed line saying so: the cells that use it run in both editions."""
    try:
        check(name, function, **given)
    except ExerciseNotPassed as failed:
        if failed.verdict.reference is None:
            raise
        kind = "function" if callable(function) else "answer"  # a value too: 06's variant
        print(f"{name}: your {kind} does not pass its check yet, so the cells below use the "
              "package's reference instead.")
        return failed.verdict.reference
    return function


def _prefix_kept(side: Sequence[Any], kept: Any) -> bool:
    """Whether ``kept`` is a list holding the first tokens of ``side``, in order."""
    return isinstance(kept, list) and kept == list(side[:len(kept)])
