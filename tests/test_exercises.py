"""Exercise checks: every registered check accepts the right answer and rejects a wrong one."""

from __future__ import annotations

import pytest

from bertnli_helpers.exercises import CHECKS, Verdict, check, expect_equal, register


def test_expect_equal_says_what_and_why():
    assert expect_equal(3, 3, "the number of special tokens")
    wrong = expect_equal(2, 3, "the number of special tokens", "Count <cls> and both <sep>.")
    assert not wrong and "should be 3, not 2" in str(wrong) and "<sep>" in str(wrong)
    assert wrong._repr_markdown_().startswith("❌")


def test_checks_are_found_by_name_and_names_are_unique():
    @register("test-only: twice")
    def twice(answer, *, x):
        return expect_equal(answer, 2 * x, "twice x")

    try:
        assert check("test-only: twice", 6, x=3) and not check("test-only: twice", 5, x=3)
        with pytest.raises(ValueError, match="already registered"):
            register("test-only: twice")(twice)
    finally:
        del CHECKS["test-only: twice"]
    with pytest.raises(KeyError, match="no check named"):
        check("nowhere", 1)
    assert isinstance(Verdict(True, "ok"), Verdict)
