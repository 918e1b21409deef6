"""Truncation strategies: properties on random pairs, the book's loop as oracle, real SNLI pairs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertnli_helpers.data import truncation as tr
from bertnli_helpers.data.snli import read_snli

NO_SIDE_EMPTIED = {"longest_first", "longest_first_keep_end", "ratio", "head_tail"}
PREFIX = {"longest_first", "ratio", "only_premise", "only_hypothesis"}


def book_loop(p_tokens: list, h_tokens: list, budget: int) -> tuple[list, list]:
    """The book's rule as the book runs it: pop the longer side (the hypothesis on ties)."""
    p, h = list(p_tokens), list(h_tokens)
    while len(p) + len(h) > budget:
        if len(p) > len(h):
            p.pop()
        else:
            h.pop()
    return p, h


def is_prefix(kept: list, tokens: list) -> bool:
    return kept == tokens[: len(kept)]


def is_suffix(kept: list, tokens: list) -> bool:
    return kept == tokens[len(tokens) - len(kept) :]


def is_head_tail(kept: list, tokens: list) -> bool:
    head, tail = tr.head_tail_counts(len(kept))
    return kept == tokens[:head] + tokens[len(tokens) - tail :]


# Distinct tokens per position, so that 'which tokens were kept' is unambiguous.
pairs = st.tuples(
    st.integers(0, 70).map(lambda n: [f"p{i}" for i in range(n)]),
    st.integers(0, 70).map(lambda n: [f"h{i}" for i in range(n)]),
    st.integers(0, 150),
)


@pytest.mark.parametrize("name", sorted(tr.STRATEGIES))
@settings(max_examples=300, deadline=None)
@given(pair=pairs)
def test_strategy_properties(name, pair):
    p, h, budget = pair
    p_before, h_before = list(p), list(h)
    fn = tr.STRATEGIES[name]
    kp, kh = fn(p, h, budget)
    assert (p, h) == (p_before, h_before), "inputs mutated"
    assert kp is not p and kh is not h
    assert len(kp) + len(kh) == min(budget, len(p) + len(h)), "over budget or budget not used"
    if len(p) + len(h) <= budget:
        assert (kp, kh) == (p, h), "a pair that fits was changed"
    if name in PREFIX:
        assert is_prefix(kp, p) and is_prefix(kh, h)
    elif name == "longest_first_keep_end":
        assert is_suffix(kp, p) and is_suffix(kh, h)
    elif name == "head_tail":
        assert is_head_tail(kp, p) and is_head_tail(kh, h)
    if name in NO_SIDE_EMPTIED and p and h and budget >= 2:
        assert kp and kh, "a side was emptied"
    if name == "only_premise" and len(h) <= budget:
        assert kh == h
    if name == "only_hypothesis" and len(p) <= budget:
        assert kp == p


@pytest.mark.parametrize("name", sorted(tr.STRATEGIES))
def test_accepts_any_sequence_and_budget_zero(name):
    fn = tr.STRATEGIES[name]
    assert fn(("a", "b"), range(3), 0) == ([], [])
    assert fn((), (), 5) == ([], [])
    kp, kh = fn(("a", "b", "c"), range(3), 4)
    assert isinstance(kp, list) and isinstance(kh, list) and len(kp) + len(kh) == 4


@pytest.mark.parametrize("name", sorted(tr.STRATEGIES))
def test_bad_budget(name):
    with pytest.raises(ValueError, match="budget must be >= 0"):
        tr.STRATEGIES[name](["a"], ["b"], -1)
    with pytest.raises(TypeError):
        tr.STRATEGIES[name](["a"], ["b"], 2.0)


def test_registry_names():
    assert set(tr.STRATEGIES) == {
        "longest_first",
        "longest_first_keep_end",
        "ratio",
        "only_premise",
        "only_hypothesis",
        "head_tail",
    }


# --- longest_first is the book's rule --------------------------------------------------------


def test_longest_first_lengths_equal_the_loop_exhaustively():
    for lp in range(26):
        for lh in range(26):
            for budget in range(lp + lh + 2):
                kp, kh = book_loop([0] * lp, [0] * lh, budget)
                assert tr.longest_first_lengths(lp, lh, budget) == (len(kp), len(kh))


@settings(max_examples=500, deadline=None)
@given(
    p=st.lists(st.sampled_from("abc"), max_size=60),
    h=st.lists(st.sampled_from("abc"), max_size=60),
    budget=st.integers(0, 130),
)
def test_longest_first_equals_the_book_loop(p, h, budget):
    assert tr.longest_first(p, h, budget) == book_loop(p, h, budget)
    keep_p, keep_h = book_loop(p, h, budget)
    assert tr.longest_first_keep_end(p, h, budget) == (
        p[len(p) - len(keep_p) :],
        h[len(h) - len(keep_h) :],
    )


def test_longest_first_on_real_snli_pairs(snli_dir, d2l):
    """Whitespace tokens of the book's text of every dev pair, at small and usual budgets."""
    premises, hypotheses, _ = read_snli(snli_dir, "dev")
    p_all, h_all = d2l.tokenize(premises), d2l.tokenize(hypotheses)
    truncated = 0
    for budget in (0, 1, 2, 3, 5, 8, 13, 21, 47):
        for p, h in zip(p_all, h_all, strict=True):
            got = tr.longest_first(p, h, budget)
            assert got == book_loop(p, h, budget), (p, h, budget)
            truncated += len(p) + len(h) > budget
    assert truncated > 20_000  # the small budgets cut almost everything


def test_longest_first_worked_examples():
    assert tr.longest_first_lengths(10, 4, 8) == (4, 4)
    assert tr.longest_first_lengths(10, 4, 11) == (7, 4)
    assert tr.longest_first_lengths(5, 5, 7) == (4, 3)  # ties cut the hypothesis first
    assert tr.longest_first_lengths(4, 9, 5) == (3, 2)
    assert tr.longest_first_lengths(3, 3, 1) == (1, 0)
    assert tr.longest_first_lengths(3, 4, 100) == (3, 4)


# --- ratio, head_tail, only_* ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lp", "lh", "budget", "expected"),
    [
        (30, 10, 20, (15, 5)),  # exact shares
        (10, 5, 10, (6, 4)),  # 6.67 / 3.33: premise floor, hypothesis the rest
        (7, 3, 5, (3, 2)),  # 3.5 / 1.5
        (100, 1, 50, (49, 1)),  # hypothesis share 0.5 rounds up to 1
        (1, 100, 50, (1, 49)),  # premise share 0.495 floors to 0: corrected to 1
        (3, 3, 1, (0, 1)),  # budget 1: the one token goes to the hypothesis
        (0, 10, 4, (0, 4)),
        (10, 0, 4, (4, 0)),
        (3, 4, 7, (3, 4)),  # fits: untouched
    ],
)
def test_ratio_rounding(lp, lh, budget, expected):
    assert tr.ratio_lengths(lp, lh, budget) == expected
    kp, kh = tr.ratio(list(range(lp)), list(range(lh)), budget)
    assert (len(kp), len(kh)) == expected


@settings(max_examples=300, deadline=None)
@given(lp=st.integers(0, 300), lh=st.integers(0, 300), budget=st.integers(0, 600))
def test_ratio_is_proportional_within_one_token(lp, lh, budget):
    kp, _ = tr.ratio_lengths(lp, lh, budget)
    if lp + lh > budget:
        share = budget * lp / (lp + lh)
        assert share - 1 < kp <= max(share, 1)


def test_head_tail_counts_and_layout():
    assert [tr.head_tail_counts(k) for k in range(6)] == [
        (0, 0),
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 3),
    ]
    assert tr.head_tail_counts(510) == (128, 382)  # Sun et al.'s 128 + 382
    assert tr.head_tail_counts(7, head_share=0.5) == (4, 3)
    assert tr.head_tail_counts(10, head_share=0.7) == (7, 3)  # no float rounding up
    p, h = list(range(10)), list(range(100, 104))
    assert tr.head_tail(p, h, 9) == ([0, 1, 7, 8, 9], [100, 101, 102, 103])
    assert tr.head_tail(p, h, 9, head_share=1.0) == ([0, 1, 2, 3, 4], h)
    with pytest.raises(ValueError, match="head_share"):
        tr.head_tail_counts(3, head_share=1.5)


def test_only_one_side():
    p, h = list("abcdef"), list("xyz")
    assert tr.only_premise(p, h, 5) == (list("ab"), h)
    assert tr.only_hypothesis(p, h, 7) == (p, list("x"))
    assert tr.only_premise(p, h, 2) == ([], list("xy"))  # hypothesis alone over budget
    assert tr.only_hypothesis(p, h, 4) == (list("abcd"), [])


# --- registry and reports --------------------------------------------------------------------


def test_get_strategy():
    assert tr.get_strategy("ratio") is tr.ratio
    assert tr.get_strategy("longest-first") is tr.longest_first
    assert tr.get_strategy(tr.head_tail) is tr.head_tail
    with pytest.raises(ValueError, match="unknown truncation strategy 'middle'") as err:
        tr.get_strategy("middle")
    assert all(name in str(err.value) for name in tr.STRATEGIES)


def test_report_says_what_was_dropped():
    p = ["a", "man", "is", "playing", "a", "guitar", "on", "stage"]
    h = ["a", "man", "plays"]
    report = tr.truncate_with_report("longest_first", p, h, 6)
    assert report.strategy == "longest_first" and report.budget == 6 and report.truncated
    assert report.premise_kept == ["a", "man", "is"]
    assert report.premise_dropped == ["playing", "a", "guitar", "on", "stage"]
    assert report.premise_dropped_at == (3, 4, 5, 6, 7)
    assert (report.hypothesis_kept, report.hypothesis_dropped) == (h, [])
    assert report.dropped_count == 5

    end = tr.truncate_with_report("longest_first_keep_end", p, h, 6)
    assert end.premise_kept == ["guitar", "on", "stage"]
    assert end.premise_dropped == ["a", "man", "is", "playing", "a"]
    assert end.premise_dropped_at == (0, 1, 2, 3, 4)  # the first 'a', not the kept one

    fits = tr.truncate_with_report("ratio", p, h, 20)
    assert not fits.truncated and fits.dropped_count == 0 and fits.premise_kept == p


@settings(max_examples=200, deadline=None)
@given(pair=pairs, name=st.sampled_from(sorted(tr.STRATEGIES)))
def test_report_partitions_each_side(pair, name):
    p, h, budget = pair
    report = tr.truncate_with_report(name, p, h, budget)
    assert (report.premise_kept, report.hypothesis_kept) == tr.STRATEGIES[name](p, h, budget)
    kept_at = [i for i in range(len(p)) if i not in report.premise_dropped_at]
    assert [p[i] for i in kept_at] == report.premise_kept
    assert [p[i] for i in report.premise_dropped_at] == report.premise_dropped
    assert len(report.hypothesis_kept) + len(report.hypothesis_dropped) == len(h)
    assert report.truncated == (len(p) + len(h) > budget)


def test_report_refuses_strategies_it_cannot_explain():
    def drops_stopwords(p, h, budget):
        return [t for t in p if t != "a"][:budget], list(h)[: max(0, budget - len(p))]

    def reverses(p, h, budget):
        return list(p)[::-1], list(h)

    with pytest.raises(ValueError, match="token values"):
        tr.truncate_with_report(drops_stopwords, ["a", "dog"], ["b"], 3)
    with pytest.raises(ValueError, match="ordered subsequence of the premise"):
        tr.truncate_with_report(reverses, ["a", "dog"], ["b"], 3)
    assert tr.truncate_with_report(tr.ratio, ["x"], ["y"], 1).strategy == "ratio"
