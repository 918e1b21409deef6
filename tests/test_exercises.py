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


# -- notebook 04 -----------------------------------------------------------------------------------
def test_04_optimizer_steps_counts_the_last_short_batch():
    assert check("04 optimizer steps", 2, pairs=1000, batch_size=512)
    assert check("04 optimizer steps", 126, pairs=1000, batch_size=16, epochs=2)
    wrong = check("04 optimizer steps", 1, pairs=1000, batch_size=512)
    assert not wrong and "should be 2, not 1" in str(wrong)


def test_04_new_parameters_counts_what_the_checkpoint_does_not_hold():
    assert check("04 new parameters", 384 * 3 + 3, hidden_size=384, pooling="cls")
    pair = 4 * 384 * 384 + 384 + 384 * 3 + 3
    assert check("04 new parameters", pair, hidden_size=384, pooling="pair")
    assert not check("04 new parameters", 384 * 3 + 3, hidden_size=384, pooling="pair")
