"""The notebooks' exercises: import ``check`` and ``student_or_reference`` from here.

The framework (what a verdict and a hint are, how a student's function is run on generated
cases) is in ``checking``; the checks, registered by name, are in ``checks_data`` (notebooks
1-3), ``checks_training`` (4, 7) and ``checks_analysis`` (5, 6). Importing this module loads
them all, so ``check("03 my ratio", ...)`` finds its check.
"""

from bertnli_helpers.course import checks_analysis, checks_data, checks_training  # noqa: F401
from bertnli_helpers.course.checking import (
    CHECKS,
    UNANSWERED,
    Case,
    ExerciseNotPassed,
    Rule,
    Verdict,
    check,
    check_function,
    expect_equal,
    register,
    student_or_reference,
)
from bertnli_helpers.course.checks_data import EMBEDDING_PARTS, embedding_share

__all__ = ["CHECKS", "EMBEDDING_PARTS", "UNANSWERED", "Case", "ExerciseNotPassed", "Rule",
           "Verdict", "check", "check_function", "embedding_share", "expect_equal", "register",
           "student_or_reference"]
