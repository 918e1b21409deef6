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


# -- every registered check: right answers pass, wrong ones fail with a reason -----------------
def test_05_hard_errors():
    correct, hard = [True, False, False, True, False], [True, True, False, False, True]
    assert check("05 hard errors", 2, correct=correct, hard=hard)
    assert not check("05 hard errors", 3, correct=correct, hard=hard)


def test_05_best_temperature():
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3))
    logits[np.arange(300), labels] += 1.0
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)  # over-confident
    grid = np.linspace(0.5, 3, 26)
    right = check("05 best temperature", 3.0, probs=sharp, labels=labels, grid=grid)
    assert right, right.message  # dividing by 3 undoes the sharpening
    wrong = check("05 best temperature", 1.0, probs=sharp, labels=labels, grid=grid)
    assert not wrong and "cross-entropy" in wrong.message


def test_05_uniform_cross_share():
    segments = [0, 0, 0, 0, 1, 1]
    assert check("05 uniform cross share", 2 * 4 * 2 / 36, segments=segments)
    assert not check("05 uniform cross share", 0.5, segments=segments)


def test_06_runs_that_learned():
    from types import SimpleNamespace

    import numpy as np

    labels = np.array([0, 1, 2] * 100)
    learned = SimpleNamespace(correct=np.ones(300, dtype=bool), labels=labels)
    idle = SimpleNamespace(correct=labels == 0, labels=labels)  # always answers class 0
    grid = SimpleNamespace(cells=[learned, idle, learned])
    assert check("06 runs that learned", 2, grid=grid)
    assert not check("06 runs that learned", 3, grid=grid)


def test_06_strategies_that_keep_the_hypothesis():
    given = dict(p_lens=[20, 5, 12], h_lens=[6, 4, 3], max_len=16,
                 strategies=["longest_first", "ratio", "only_premise"])
    assert check("06 strategies that keep the hypothesis", ["longest_first", "only_premise"],
                 **given)
    assert not check("06 strategies that keep the hypothesis", "only_premise", **given)


def test_06_training_pflop():
    from bertnli_helpers.costs import training_flops
    from bertnli_helpers.model import BertConfig

    config = BertConfig(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
                        ffn_size=3072)
    lengths = [25, 30, 27]
    expected = training_flops(config, lengths) / 3 * 549_367 * 3 / 1e15
    assert check("06 training PFLOP", expected * 1.02, config=config, lengths=lengths,
                 pairs=549_367, epochs=3)
    assert not check("06 training PFLOP", expected / 3, config=config, lengths=lengths,
                     pairs=549_367, epochs=3)


def test_every_check_has_a_test_here():
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    assert all(f'"{name}"' in source for name in CHECKS if not name.startswith("test-only"))
