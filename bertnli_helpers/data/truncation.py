"""Pair truncation strategies: which tokens of a (premise, hypothesis) pair fit BERT's input.

A strategy is a pure function ``fn(p_tokens, h_tokens, budget) -> (p_kept, h_kept)``. ``budget``
is the number of content tokens allowed: ``max_len - SPECIAL_TOKENS_PER_PAIR``. Every
strategy returns new lists (the inputs are never mutated), keeps the order of the tokens, decides
from the two lengths alone (never from token values, which is what lets ``truncate_with_report``
locate what was dropped), and promises:

- a pair that fits (``len(p) + len(h) <= budget``) comes back whole;
- otherwise exactly ``budget`` tokens are kept: the budget is used in full;
- budget 0 gives two empty lists; a negative budget is a ``ValueError``.

What each keeps, and whether it promises *no side emptied* (both sides keep at least one token when
both are non-empty and ``budget >= 2``):

================================ ============================================ =================
strategy                         keeps                                        no side emptied
================================ ============================================ =================
``longest_first``                the book's rule: a prefix of each side       yes
``longest_first_keep_end``       longest_first's counts, a suffix of each     yes
``ratio``                        a prefix of each, shares ~ lengths           yes
``head_tail``                    longest_first's counts, head + tail of each  yes
``only_premise``                 the whole hypothesis, a prefix of p          no
``only_hypothesis``              the whole premise, a prefix of h             no
================================ ============================================ =================
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = [
    "HEAD_SHARE",
    "SPECIAL_TOKENS_PER_PAIR",
    "STRATEGIES",
    "Strategy",
    "TruncationReport",
    "get_strategy",
    "head_tail",
    "head_tail_counts",
    "longest_first",
    "longest_first_keep_end",
    "longest_first_lengths",
    "only_hypothesis",
    "only_premise",
    "ratio",
    "ratio_lengths",
    "truncate_with_report",
    "truncation_summary",
]

T = TypeVar("T")
Strategy = Callable[[Sequence[T], Sequence[T], int], tuple[list[T], list[T]]]

# head_tail keeps this share of a side's kept tokens from its start and the rest from its end:
# 128 of 510 in Sun et al. (2019), "How to Fine-Tune BERT for Text Classification?", whose
# head+tail was the best way to cut long texts there.
HEAD_SHARE = 0.25

# <cls> p <sep> h <sep>: what a packed pair holds besides its tokens, so the truncation
# budget of a pair is max_len minus this (the dataset, widgets and plots all import it).
SPECIAL_TOKENS_PER_PAIR = 3


def _check_budget(budget: int) -> int:
    budget = operator.index(budget)  # ints (numpy's too), never floats
    if budget < 0:
        raise ValueError(f"budget must be >= 0 (it is max_len - 3), got {budget}")
    return budget


def longest_first_lengths(len_p: int, len_h: int, budget: int) -> tuple[int, int]:
    """Kept lengths under the book's rule, in O(1) instead of one pop per dropped token.

    The book's loop pops the longer side (the hypothesis on ties) until the pair fits. It first
    shortens the longer side to the shorter one's length; if that is enough, the shorter side is
    whole and the longer keeps ``budget - shorter``. Otherwise the pops alternate, hypothesis
    first, leaving the premise ``ceil(budget / 2)`` and the hypothesis ``floor(budget / 2)``.
    """
    _check_budget(budget)
    if len_p + len_h <= budget:
        return len_p, len_h
    shorter = min(len_p, len_h)
    if budget >= 2 * shorter:
        return (budget - len_h, len_h) if len_p > len_h else (len_p, budget - len_p)
    return budget - budget // 2, budget // 2


def ratio_lengths(len_p: int, len_h: int, budget: int) -> tuple[int, int]:
    """Kept lengths proportional to the sides' lengths (the book's exercise).

    When the pair does not fit, the premise keeps ``floor(budget * len_p / (len_p + len_h))`` and
    the hypothesis the rest, ``ceil(budget * len_h / (len_p + len_h))``: the rounding favours the
    hypothesis, by less than one token. Neither share exceeds its side, so the budget is used in
    full. One correction: if both sides are non-empty, ``budget >= 2`` and the premise's share
    rounded down to 0, it keeps 1 token taken from the hypothesis (the hypothesis's share is never
    0 then). Examples: (30, 10, 20) -> (15, 5); (10, 5, 10) -> (6, 4); (1, 100, 50) -> (1, 49).
    """
    _check_budget(budget)
    total = len_p + len_h
    if total <= budget:
        return len_p, len_h
    keep_p = budget * len_p // total
    if keep_p == 0 and len_p > 0 and len_h > 0 and budget >= 2:
        keep_p = 1
    return keep_p, budget - keep_p


def head_tail_counts(kept: int, head_share: float = HEAD_SHARE) -> tuple[int, int]:
    """How many of ``kept`` tokens come from the head and from the tail: the head gets
    ``ceil(kept * head_share)`` (so a single kept token is the first one), the tail the rest."""
    if not 0.0 <= head_share <= 1.0:
        raise ValueError(f"head_share must be in [0, 1], got {head_share}")
    head = min(kept, math.ceil(round(kept * head_share, 9)))
    return head, kept - head


def _prefix(tokens: Sequence[T], keep: int) -> list[T]:
    return list(tokens[:keep])


def _suffix(tokens: Sequence[T], keep: int) -> list[T]:
    return list(tokens[len(tokens) - keep :])


def _head_and_tail(tokens: Sequence[T], keep: int, head_share: float) -> list[T]:
    head, tail = head_tail_counts(keep, head_share)
    return list(tokens[:head]) + list(tokens[len(tokens) - tail :])


def longest_first(
    p_tokens: Sequence[T], h_tokens: Sequence[T], budget: int
) -> tuple[list[T], list[T]]:
    """The book's rule: drop the last token of the longer side, of the hypothesis on ties."""
    keep_p, keep_h = longest_first_lengths(len(p_tokens), len(h_tokens), budget)
    return _prefix(p_tokens, keep_p), _prefix(h_tokens, keep_h)


def longest_first_keep_end(
    p_tokens: Sequence[T], h_tokens: Sequence[T], budget: int
) -> tuple[list[T], list[T]]:
    """The book's counts, but dropped from the start of each side, keeping the sentence ends."""
    keep_p, keep_h = longest_first_lengths(len(p_tokens), len(h_tokens), budget)
    return _suffix(p_tokens, keep_p), _suffix(h_tokens, keep_h)


def ratio(p_tokens: Sequence[T], h_tokens: Sequence[T], budget: int) -> tuple[list[T], list[T]]:
    """Each side keeps a prefix, its share of the budget proportional to its length
    (rounding: see ``ratio_lengths``), so a long premise cannot crowd out a short hypothesis."""
    keep_p, keep_h = ratio_lengths(len(p_tokens), len(h_tokens), budget)
    return _prefix(p_tokens, keep_p), _prefix(h_tokens, keep_h)


def only_premise(
    p_tokens: Sequence[T], h_tokens: Sequence[T], budget: int
) -> tuple[list[T], list[T]]:
    """Cut only the premise's end, keeping the hypothesis whole. If the hypothesis alone exceeds
    the budget, the premise is emptied and the hypothesis cut to the budget (its prefix)."""
    keep_h = min(len(h_tokens), _check_budget(budget))
    keep_p = min(len(p_tokens), budget - keep_h)
    return _prefix(p_tokens, keep_p), _prefix(h_tokens, keep_h)


def only_hypothesis(
    p_tokens: Sequence[T], h_tokens: Sequence[T], budget: int
) -> tuple[list[T], list[T]]:
    """Cut only the hypothesis's end, keeping the premise whole. If the premise alone exceeds
    the budget, the hypothesis is emptied and the premise cut to the budget (its prefix)."""
    keep_p = min(len(p_tokens), _check_budget(budget))
    keep_h = min(len(h_tokens), budget - keep_p)
    return _prefix(p_tokens, keep_p), _prefix(h_tokens, keep_h)


def head_tail(
    p_tokens: Sequence[T], h_tokens: Sequence[T], budget: int, *, head_share: float = HEAD_SHARE
) -> tuple[list[T], list[T]]:
    """Drop the middle of each side instead of its end (long-text practice for BERT).

    Per side, the kept counts are the book's (``longest_first_lengths``), so only *which* tokens
    survive differs from ``longest_first``. Of a side's ``k`` kept tokens, ``ceil(k * head_share)``
    come from its start and the rest from its end (``head_tail_counts``; default share 1/4).
    """
    keep_p, keep_h = longest_first_lengths(len(p_tokens), len(h_tokens), budget)
    return (
        _head_and_tail(p_tokens, keep_p, head_share),
        _head_and_tail(h_tokens, keep_h, head_share),
    )


STRATEGIES: dict[str, Strategy] = {
    "longest_first": longest_first,
    "longest_first_keep_end": longest_first_keep_end,
    "ratio": ratio,
    "only_premise": only_premise,
    "only_hypothesis": only_hypothesis,
    "head_tail": head_tail,
}


def strategy_fingerprint(name: str) -> str | None:
    """A digest of the code of a strategy that is not the package's own (a student's function
    registered from a notebook), so that a run made with an earlier version of it is not taken
    for a run of this one; None for the package's strategies, versioned with the package."""
    function = get_strategy(name)
    if (getattr(function, "__module__", None) or "").startswith("bertnli_helpers."):
        return None
    try:
        code = inspect.getsource(function)
    except (OSError, TypeError):  # no source at hand: the compiled code says as much
        compiled = getattr(function, "__code__", None)
        code = repr((compiled.co_code, compiled.co_consts) if compiled else function)
    return hashlib.sha1(code.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def get_strategy(name: str | Strategy) -> Strategy:
    """The strategy registered under ``name`` ('-' read as '_'); a callable is returned as is."""
    if callable(name):
        return name
    key = str(name).strip().replace("-", "_")
    if key not in STRATEGIES:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown truncation strategy {name!r}; known strategies: {known}")
    return STRATEGIES[key]


@dataclass(frozen=True)
class TruncationReport(Generic[T]):
    """What a strategy kept and dropped of one pair; dropped positions index the input sides."""

    strategy: str
    budget: int
    premise_kept: list[T]
    hypothesis_kept: list[T]
    premise_dropped: list[T]
    hypothesis_dropped: list[T]
    premise_dropped_at: tuple[int, ...] = field(repr=False)
    hypothesis_dropped_at: tuple[int, ...] = field(repr=False)

    @property
    def truncated(self) -> bool:
        return bool(self.premise_dropped or self.hypothesis_dropped)

    @property
    def dropped_count(self) -> int:
        return len(self.premise_dropped) + len(self.hypothesis_dropped)


def _kept_positions(kept: list[int], length: int, side: str, name: str) -> set[int]:
    ordered = all(a < b for a, b in itertools.pairwise(kept))
    if not ordered or (kept and not 0 <= kept[0] <= kept[-1] < length):
        raise ValueError(f"strategy {name!r} did not keep an ordered subsequence of the {side}")
    return set(kept)


def truncate_with_report(
    strategy: str | Strategy, p_tokens: Sequence[T], h_tokens: Sequence[T], budget: int
) -> TruncationReport[T]:
    """Truncate one pair and say what was dropped, where. Runs the strategy on positions, then
    checks that the real tokens give the same result (strategies must be positional)."""
    fn = get_strategy(strategy)
    name = strategy if isinstance(strategy, str) else getattr(fn, "__name__", repr(fn))
    p_pos, h_pos = fn(range(len(p_tokens)), range(len(h_tokens)), budget)
    p_set = _kept_positions(list(p_pos), len(p_tokens), "premise", name)
    h_set = _kept_positions(list(h_pos), len(h_tokens), "hypothesis", name)
    p_kept, h_kept = fn(p_tokens, h_tokens, budget)
    if p_kept != [p_tokens[i] for i in p_pos] or h_kept != [h_tokens[i] for i in h_pos]:
        raise ValueError(f"strategy {name!r} depends on token values, not only on positions")
    p_drop = tuple(i for i in range(len(p_tokens)) if i not in p_set)
    h_drop = tuple(i for i in range(len(h_tokens)) if i not in h_set)
    return TruncationReport(
        strategy=name,
        budget=budget,
        premise_kept=p_kept,
        hypothesis_kept=h_kept,
        premise_dropped=[p_tokens[i] for i in p_drop],
        hypothesis_dropped=[h_tokens[i] for i in h_drop],
        premise_dropped_at=p_drop,
        hypothesis_dropped_at=h_drop,
    )


def truncation_summary(
    premise_lengths: Sequence[int],
    hypothesis_lengths: Sequence[int],
    max_len: int,
    strategies: Sequence[str] | None = None,
) -> list[dict[str, float | str]]:
    """Per strategy: how many pairs lose tokens at ``max_len`` and how many tokens each side loses.

    Works on lengths alone (strategies are positional), so it is cheap on a whole split.
    """
    budget = _check_budget(max_len - SPECIAL_TOKENS_PER_PAIR)
    rows = []
    for name in strategies or list(STRATEGIES):
        fn = get_strategy(name)
        truncated = dropped_p = dropped_h = emptied = 0
        for len_p, len_h in zip(premise_lengths, hypothesis_lengths):
            if len_p + len_h <= budget:
                continue
            kept_p, kept_h = fn(range(len_p), range(len_h), budget)
            truncated += 1
            dropped_p += len_p - len(kept_p)
            dropped_h += len_h - len(kept_h)
            emptied += (len_p > 0 and not kept_p) or (len_h > 0 and not kept_h)
        n = max(1, len(premise_lengths))
        rows.append({
            "strategy": name,
            "max_len": max_len,
            "pairs": len(premise_lengths),
            "truncated_share": truncated / n,
            "premise_tokens_dropped": dropped_p,
            "hypothesis_tokens_dropped": dropped_h,
            "sides_emptied": emptied,
        })
    return rows
