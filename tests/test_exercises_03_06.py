"""The exercises of notebooks 3 and 6 added for issue 29: my_tokens_dropped (03), my_verdict and
my_variant (06), and the reworded strategies check. Each: the reference passes, three typical
mistakes fail with a hint that names the case and the rule but not the expected value, and the
unanswered stub says so."""

from __future__ import annotations

import pytest
from test_exercises import fails, unanswered, unanswered_says_so

from bertnli_helpers.course.exercises import check, student_or_reference


# -- 03 tokens dropped -------------------------------------------------------------------------
def _dropped(p_lens, h_lens, budget, strategy):
    """Per side, the tokens ``strategy`` drops from the pairs that exceed ``budget``."""
    dropped_p = dropped_h = 0
    for p, h in zip(p_lens, h_lens):
        if p + h > budget:
            kept_p, kept_h = strategy(range(p), range(h), budget)
            dropped_p, dropped_h = dropped_p + p - len(kept_p), dropped_h + h - len(kept_h)
    return dropped_p, dropped_h


def _no_special_tokens(p_lens, h_lens, max_len, strategy):  # the budget taken as max_len
    return _dropped(p_lens, h_lens, max_len, strategy)


def _sides_swapped(p_lens, h_lens, max_len, strategy):
    p, h = _dropped(p_lens, h_lens, max_len - 3, strategy)
    return h, p


def _kept_not_dropped(p_lens, h_lens, max_len, strategy):
    kept_p = kept_h = 0
    for p, h in zip(p_lens, h_lens):
        a, b = strategy(range(p), range(h), max_len - 3)
        kept_p, kept_h = kept_p + len(a), kept_h + len(b)
    return kept_p, kept_h


def test_03_tokens_dropped_reference_passes_and_mistakes_name_the_case_and_the_rule():
    from bertnli_helpers.course.checks_data import tokens_dropped_reference

    right = check("03 tokens dropped", tokens_dropped_reference)
    assert "cases" in right.message
    mine = lambda p, h, m, s: _dropped(p, h, m - 3, s)  # noqa: E731 - a student's right answer
    assert check("03 tokens dropped", mine)
    no_specials = fails("03 tokens dropped", _no_special_tokens)
    assert "max_len - 3" in no_specials and "exceed their budget" in no_specials
    swapped = fails("03 tokens dropped", _sides_swapped)
    assert "keeps every rule" in swapped and "premise's count comes first" in swapped
    kept = fails("03 tokens dropped", _kept_not_dropped)
    assert "every pair fitting" in kept and "loses nothing" in kept
    unanswered_says_so("03 tokens dropped")


def test_03_tokens_dropped_agrees_with_section_4s_table_on_real_lengths():
    from bertnli_helpers.course.checks_data import tokens_dropped_reference
    from bertnli_helpers.data.truncation import STRATEGIES, truncation_summary

    p_lens, h_lens = [14, 9, 22, 5], [7, 3, 4, 6]
    for row in truncation_summary(p_lens, h_lens, 16):
        counts = tokens_dropped_reference(p_lens, h_lens, 16, STRATEGIES[row["strategy"]])
        assert counts == (row["premise_tokens_dropped"], row["hypothesis_tokens_dropped"])


# -- 06 my verdict -----------------------------------------------------------------------------
def _interval_only(low, high, p_value):  # forgets McNemar
    return "better" if low > 0 else "worse" if high < 0 else "within noise"


def _p_only(low, high, p_value):  # reads the direction from the middle, the interval ignored
    if p_value >= 0.05:
        return "within noise"
    return "better" if low + high > 0 else "worse"


def _inclusive(low, high, p_value):  # an interval that touches 0 counted as excluding it
    if p_value < 0.05 and low >= 0:
        return "better"
    if p_value < 0.05 and high <= 0:
        return "worse"
    return "within noise"


def test_06_my_verdict_reference_passes_and_mistakes_name_the_case_and_the_rule():
    from bertnli_helpers.study.comparison import verdict_of

    assert "cases" in check("06 my verdict", verdict_of).message
    interval = fails("06 my verdict", _interval_only)
    assert "McNemar's p not small" in interval and "McNemar's test to agree" in interval
    p_only = fails("06 my verdict", _p_only)
    assert "across 0" in p_only and "whole interval" in p_only
    inclusive = fails("06 my verdict", _inclusive)
    assert "exactly 0" in inclusive and "low > 0" in inclusive
    unanswered_says_so("06 my verdict")


# -- 06 my variant -----------------------------------------------------------------------------
RECIPE = {"model": ["minilm"], "lr": [1e-4], "truncation": ["longest_first"], "max_len": [128],
          "train_size": [600]}


@pytest.mark.parametrize("variant", [{"max_len": [32]}, {"lr": [2e-5, 3e-4]},
                                     {"truncation": ["ratio"]}, {"train_size": [300, 150]},
                                     {"model": ["scratch"]}, {"lr": [1]}])
def test_06_my_variant_accepts_one_setting_with_new_values(variant):
    verdict = check("06 my variant", variant, recipe=RECIPE, most=2)
    assert "one-change comparison" in verdict.message


def test_06_my_variant_says_what_is_allowed():
    given = {"recipe": RECIPE, "most": 2}
    assert "exactly one setting" in fails("06 my variant", {"lr": [2e-5], "max_len": [32]},
                                          **given)
    assert "not a setting of the recipe" in fails("06 my variant", {"epochs": [3]}, **given)
    assert "int values" in fails("06 my variant", {"max_len": ["32"]}, **given)
    assert "1 to 2 values" in fails("06 my variant", {"lr": [1e-5, 2e-5, 3e-5]}, **given)
    assert "is the baseline" in fails("06 my variant", {"max_len": [128, 32]}, **given)
    assert "not a strategy" in fails("06 my variant", {"truncation": ["middle"]}, **given)
    assert "cannot exceed" in fails("06 my variant", {"train_size": [5000]}, **given)
    assert "a dict of one setting" in fails("06 my variant", ["lr", 2e-5], **given)
    assert "Write your answer" in unanswered("06 my variant", **given)


def test_06_my_variant_falls_back_to_the_example_with_one_line(capsys):
    from bertnli_helpers.course.checks_analysis import VARIANT_EXAMPLE

    assert student_or_reference({"epochs": [3]}, "06 my variant", recipe=RECIPE) == VARIANT_EXAMPLE
    assert "does not pass its check yet" in capsys.readouterr().out
    mine = {"lr": [2e-5]}
    assert student_or_reference(mine, "06 my variant", recipe=RECIPE) is mine


# -- 06 strategies that keep the hypothesis: a sentence for none, one or several -------------
def test_06_strategies_check_reads_right_for_none_one_and_several():
    given = dict(p_lens=[20, 5, 12], h_lens=[6, 4, 3], max_len=16,
                 strategies=["longest_first", "ratio", "only_premise"])
    several = check("06 strategies that keep the hypothesis", ["longest_first", "only_premise"],
                    **given).message
    assert "'longest_first', 'only_premise' keep every" in several
    one = fails("06 strategies that keep the hypothesis", "only_premise", **given)
    assert "'only_premise' keeps every" in one and "token is" not in one
    none = fails("06 strategies that keep the hypothesis", [], **given)
    assert "no strategy keeps" in none and "is none" not in none
    tight = dict(given, h_lens=[30, 30, 30], strategies=["longest_first", "ratio"])
    assert "no strategy keeps" in check("06 strategies that keep the hypothesis", [],
                                        **tight).message
