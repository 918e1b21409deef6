"""Checks of notebooks 1-3: packing a pair, the vocabulary and padding, truncation.

Each computes the expected answer with the package's own function from what the exercise gave."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bertnli_helpers.course.checking import (
    Case,
    Rule,
    Verdict,
    _prefix_kept,
    check_function,
    expect_equal,
    register,
)

# -- notebook 01 -----------------------------------------------------------------------------------

EMBEDDING_PARTS = ("encoder.token_embedding", "encoder.pos_embedding", "encoder.segment_embedding",
                   "encoder.embed_norm")


def embedding_share(model: Any) -> float:
    """The share of a BERT's parameters that sit in its embeddings (token, position, segment,
    and the embedding LayerNorm where the flavour has one)."""
    sizes = [(name, p.numel()) for name, p in model.named_parameters()]
    total = sum(n for _, n in sizes)
    return sum(n for name, n in sizes if name.startswith(EMBEDDING_PARTS)) / total


@register("01 embedding share")
def _embedding_share(answer: float, *, model: Any) -> Verdict:
    expected = embedding_share(model)
    if abs(float(answer) - expected) <= 0.005:
        return Verdict(True, f"The embeddings hold {expected:.1%} of the parameters.",
                       reference=expected)
    hint = ("Did you count only the token table? Add the position and segment tables."
            if abs(float(answer) - model.encoder.token_embedding.weight.numel() /
                   sum(p.numel() for p in model.parameters())) <= 0.005 else
            "Sum the numel() of the parameters whose names start with the embedding tables, "
            "divided by the sum over all parameters.")
    return Verdict(False, f"The embedding share is not {float(answer):.1%}. {hint}",
                   reference=expected)


@register("01 packed pair")
def _packed_pair(answer: tuple[list[str], list[int]], *, tokenizer: Any, premise: str,
                 hypothesis: str) -> Verdict:
    expected = tokenizer.pack_tokens(tokenizer.tokenize(premise), tokenizer.tokenize(hypothesis))
    tokens, segments = (list(part) for part in answer)
    if tokens != expected[0]:  # expect_equal keeps the expected sequences out of its hint
        return expect_equal(tokens, expected[0], "The packed tokens",
                            "<cls> premise <sep> hypothesis <sep>, each side as the tokenizer "
                            "splits it.", verb="are")
    return expect_equal(segments, expected[1], "The segment ids",
                        "0 for <cls>, the premise and its <sep>; 1 for the hypothesis and the "
                        "last <sep>.", verb="are")


def _tokens(prefix: str, n: int) -> list[str]:
    """``n`` distinct tokens (``p0 p1 ...``): a result's order and origin can be read off."""
    return [f"{prefix}{i}" for i in range(n)]


def _lengths_cases(kinds: Sequence[tuple[str, int, int, int]], randoms: int,
                   seed: int) -> list[Case]:
    """Cases ``(premise tokens, hypothesis tokens, budget)``: the named edge cases, then
    ``randoms`` pairs of random lengths and budgets (a fixed seed: the same cases every run)."""
    import random

    rng = random.Random(seed)
    drawn = [("random lengths", rng.randint(0, 30), rng.randint(0, 30), rng.randint(0, 40))
             for _ in range(randoms)]
    return [Case(kind, (_tokens("p", p), _tokens("h", h), b))
            for kind, p, h, b in [*kinds, *drawn]]


PACK_RULES = (
    Rule("it returns (tokens, segments), two lists of the same length",
         lambda args, r: len(r) == 2 and isinstance(r[0], list) and isinstance(r[1], list)
         and len(r[0]) == len(r[1])),
    Rule("the pair starts with [CLS] and ends with [SEP], with one [SEP] between the sides",
         lambda args, r: r[0][0] == args[2] and r[0][-1] == args[3]
         and r[0].count(args[3]) == 2),
    Rule("each side's tokens appear whole and in order, the premise first",
         lambda args, r: r[0][1:-1] == [*args[0], args[3], *args[1]]),
    Rule("segment ids are 0 up to and including the first [SEP], then 1",
         lambda args, r: r[1] == [0] * (len(args[0]) + 2) + [1] * (len(args[1]) + 1)),
)


@register("01 pack pair")
def _pack_pair(answer: Callable[..., Any], *, tokenizer: Any) -> Verdict:
    """A student's ``pack_pair(p_tokens, h_tokens, cls, sep)`` against the tokenizer's own."""
    cls, sep = tokenizer.specials.cls, tokenizer.specials.sep
    kinds = [("an empty premise", 0, 3, 0), ("an empty hypothesis", 3, 0, 0),
             ("both sides empty", 0, 0, 0), ("one token a side", 1, 1, 0),
             ("a long premise", 40, 2, 0)]
    cases = [Case(c.kind, (*c.args[:2], cls, sep)) for c in _lengths_cases(kinds, 30, seed=1)]

    def reference(p_tokens: list[str], h_tokens: list[str], cls: str, sep: str) -> Any:
        return tuple(tokenizer.pack_tokens(p_tokens, h_tokens))

    return check_function(answer, reference, cases, PACK_RULES, what="pack_pair",
                          same=lambda a, b: (list(a[0]), list(a[1])) == (list(b[0]), list(b[1])),
                          mismatch_hint="Compare it with tokenizer.pack_tokens on one pair.")


@register("01 swapped pair")
def _swapped_pair(answer: Any, **_: Any) -> Verdict:
    expected = {"position", "segment"}
    given = {str(name).lower().removesuffix(" embedding") for name in answer}
    if given == expected:
        return Verdict(True, "Each word keeps its token row, but moves to another position "
                             "and to the other segment (only [CLS] keeps all three).",
                       reference=expected)
    why = ("A token's own row never changes: the token embedding depends only on the token. "
           if "token" in given else "")
    return Verdict(False, f"{why}Compare, for one word of the premise, its place in the packed "
                          "pair and its segment id before and after the swap.",
                   reference=expected)


@register("01 unknown words")
def _unknown_words(answer: int, *, tokenizer: Any, text: str) -> Verdict:
    tokens = tokenizer.tokenize(tokenizer.prepare_typed(text))
    unknown = [t for t in tokens if tokenizer[t] == tokenizer.unk_id]
    return expect_equal(int(answer), len(unknown), "The number of <unk> tokens",
                        "Tokenize the text as the widgets do (tokenizer.prepare_typed first), "
                        "then count the tokens whose id is the tokenizer's unk_id.")


# -- notebook 02 -----------------------------------------------------------------------------------

@register("02 vocabulary size")
def _vocabulary_size(answer: int, *, word_counts: Any, min_freq: int) -> Verdict:
    from bertnli_helpers.data.tokenization import BOOK_RESERVED, build_book_vocab

    expected = len(build_book_vocab(word_counts, min_freq=min_freq))
    words = expected - len(BOOK_RESERVED)
    hint = (f"Count the reserved tokens too ({len(BOOK_RESERVED)} of them)."
            if int(answer) == words else
            f"Count the words seen at least {min_freq} times, plus the reserved tokens.")
    return expect_equal(int(answer), expected, f"The vocabulary size at min_freq={min_freq}", hint)


@register("02 unknown by side")
def _unknown_by_side(answer: dict[str, int], *, tokenizer: Any, premises: Any,
                     hypotheses: Any) -> Verdict:
    def unknown(texts: Any) -> int:
        return sum(tokenizer[t] == tokenizer.unk_id for text in texts
                   for t in tokenizer.tokenize(text))

    expected = {"premise": unknown(premises), "hypothesis": unknown(hypotheses)}
    return expect_equal(dict(answer), expected, "The unknown word tokens per side",
                        "Tokenize each side's texts and count the tokens whose id is <unk>'s.",
                        verb="are")


@register("02 padding share")
def _padding_share(answer: float, *, lengths: Any, batch_size: int, pool_batches: int,
                   seed: int) -> Verdict:
    import numpy as np

    from bertnli_helpers.data.dataset import LengthBucketSampler, padding_share

    batches = list(LengthBucketSampler(np.asarray(lengths), batch_size,
                                       pool_batches=pool_batches, seed=seed))
    expected = padding_share(lengths, batches)
    if abs(float(answer) - expected) <= 0.001:
        return Verdict(True, f"With pools of {pool_batches} batches, {expected:.1%} of the "
                             "computed positions are padding.", reference=expected)
    return Verdict(False, f"The padding share is not {float(answer):.1%}: each batch computes "
                          "(its longest length) x (its pairs) positions; the padding share is "
                          "1 - (sum of lengths) / (positions computed).", reference=expected)


def _batches(lengths: Sequence[int], sizes: Sequence[int]) -> list[list[int]]:
    """Consecutive batches of the given sizes over ``range(len(lengths))``."""
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [list(range(start, start + size)) for start, size in zip(starts, sizes)]


def _padding_cases(seed: int = 2) -> list[Case]:
    """(lengths, batches) cases: equal lengths, singletons, one long pair, ragged, random."""
    import random

    rng = random.Random(seed)
    named = [("equal lengths in every batch", [7, 7, 3, 3], [2, 2]),
             ("batches of one pair", [5, 9, 2], [1, 1, 1]),
             ("one long pair among short ones", [40, 3, 3, 3], [4]),
             ("a last, smaller batch", [4, 6, 8, 5, 9], [2, 2, 1])]
    cases = [Case(kind, (lengths, _batches(lengths, sizes))) for kind, lengths, sizes in named]
    for _ in range(20):
        sizes = [rng.randint(1, 6) for _ in range(rng.randint(1, 5))]
        lengths = [rng.randint(1, 60) for _ in range(sum(sizes))]
        order = rng.sample(range(len(lengths)), len(lengths))  # batches of shuffled indices
        batches = [[order[i] for i in batch] for batch in _batches(lengths, sizes)]
        cases.append(Case("random batches", (lengths, batches)))
    return cases


PADDING_RULES = (
    Rule("the share is a number from 0 (no padding) up to, not including, 1",
         lambda args, r: 0.0 <= float(r) < 1.0),
    Rule("batches whose pairs are equally long have no padding: the share is 0",
         lambda args, r: float(r) == 0.0 or any(
             len({args[0][i] for i in batch}) > 1 for batch in args[1])),
)


@register("02 padding share function")
def _padding_share_function(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_padding_share(lengths, batches)`` against ``dataset.padding_share``."""
    import math

    from bertnli_helpers.data.dataset import padding_share

    return check_function(answer, padding_share, _padding_cases(), PADDING_RULES,
                          what="my_padding_share",
                          same=lambda a, b: math.isclose(float(a), b, abs_tol=1e-9),
                          mismatch_hint="Each batch computes (its longest length) x (its pairs) "
                                        "positions; the share is 1 - real / computed over all "
                                        "batches together, not a mean of per-batch shares.")


# -- notebook 03 -----------------------------------------------------------------------------------

@register("03 truncated pair")
def _truncated_pair(answer: tuple[list[str], list[str]], *, strategy: str, premise: Any,
                    hypothesis: Any, max_len: int) -> Verdict:
    from bertnli_helpers.data.truncation import SPECIAL_TOKENS_PER_PAIR, STRATEGIES

    budget = max_len - SPECIAL_TOKENS_PER_PAIR
    p_kept, h_kept = STRATEGIES[strategy](list(premise), list(hypothesis), budget)
    kept = tuple(list(side) for side in answer)
    if len(kept[0]) + len(kept[1]) != len(p_kept) + len(h_kept):
        return Verdict(False, f"{strategy} does not keep {len(kept[0]) + len(kept[1])} tokens "
                              f"in all: a pair longer than the budget keeps max_len ({max_len}) "
                              f"minus the {SPECIAL_TOKENS_PER_PAIR} special tokens.",
                       reference=(p_kept, h_kept))
    return expect_equal(kept, (p_kept, h_kept), f"What {strategy} keeps",
                        "The counts per side are right only if the sides match too: "
                        "which side loses tokens, and from which end?")


@register("03 ratio lengths")
def _ratio_lengths(answer: tuple[int, int], *, p_len: int, h_len: int, budget: int) -> Verdict:
    from bertnli_helpers.data.truncation import ratio_lengths

    expected = tuple(int(n) for n in ratio_lengths(p_len, h_len, budget))
    return expect_equal(tuple(int(n) for n in answer), expected,
                        f"ratio_lengths({p_len}, {h_len}, {budget})",
                        "Each side gets budget x its share of the length, rounded so that the "
                        "two add up to the budget exactly (see show_source(ratio_lengths)).")


def _ratio_share_kept(args: tuple, r: Any) -> bool:
    """Each side keeps within one token of budget x its length / both lengths (when cut)."""
    p, h, budget = args
    total = len(p) + len(h)
    if total <= budget:
        return True
    return all(abs(len(kept) - budget * len(side) / total) < 1 + 1e-9
               for kept, side in zip(r, (p, h)))


RATIO_RULES = (
    Rule("it returns (premise kept, hypothesis kept), two lists",
         lambda args, r: len(r) == 2 and all(isinstance(side, list) for side in r)),
    Rule("a pair that fits the budget is kept whole",
         lambda args, r: len(args[0]) + len(args[1]) > args[2]
         or (r[0], r[1]) == (list(args[0]), list(args[1]))),
    Rule("when the pair is longer than the budget, the kept lengths add up to the budget",
         lambda args, r: len(args[0]) + len(args[1]) <= args[2]
         or len(r[0]) + len(r[1]) == args[2]),
    Rule("each side keeps its first tokens, in their order (a prefix of its own side)",
         lambda args, r: _prefix_kept(args[0], r[0]) and _prefix_kept(args[1], r[1])),
    Rule("each side keeps within one token of its share, budget x its length / (both lengths)",
         _ratio_share_kept),
    Rule("no side is emptied when both sides have tokens and the budget holds one for each",
         lambda args, r: not (args[0] and args[1] and args[2] >= 2) or (r[0] and r[1])),
)

RATIO_EDGE_CASES = (
    ("an empty premise", 0, 8, 5), ("an empty hypothesis", 8, 0, 5), ("both sides empty", 0, 0, 0),
    ("budget 0", 6, 3, 0), ("budget 1", 6, 3, 1), ("budget 1 and one token a side", 1, 1, 1),
    ("a tie (sides of equal length)", 5, 5, 7), ("a tie with an odd budget", 4, 4, 3),
    ("a pair that fits", 3, 2, 10), ("a pair exactly as long as the budget", 4, 3, 7),
    ("a one-token premise and a long hypothesis", 1, 100, 50),
    ("a long premise and a one-token hypothesis", 30, 1, 6),
    ("shares that end in .5", 1, 1, 1), ("shares that end in .5", 3, 1, 2),
)


@register("03 my ratio")
def _my_ratio(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_ratio(premise, hypothesis, budget)`` against ``truncation.ratio`` on the
    edge cases and 200 random ones, and on the ratio rule's invariants."""
    from bertnli_helpers.data.truncation import ratio

    return check_function(answer, ratio, _lengths_cases(RATIO_EDGE_CASES, 200, seed=3),
                          RATIO_RULES, what="my_ratio",
                          mismatch_hint="Round the premise's share down and give the hypothesis "
                                        "the rest; a premise whose share rounds to 0 keeps one "
                                        "token when both sides have tokens and the budget is "
                                        "2 or more.")


def tokens_dropped_reference(p_lens: Sequence[int], h_lens: Sequence[int], max_len: int,
                             strategy: Callable[..., Any]) -> tuple[int, int]:
    """The package's answer: section 4's table reads these two columns of truncation_summary."""
    from bertnli_helpers.data.truncation import truncation_summary

    row = truncation_summary(list(p_lens), list(h_lens), max_len, [strategy])[0]
    return int(row["premise_tokens_dropped"]), int(row["hypothesis_tokens_dropped"])


def _over_budget(args: tuple) -> int:
    """Tokens by which the pairs exceed their budget: what every strategy drops."""
    p_lens, h_lens, max_len, _ = args
    budget = max_len - 3
    return sum(max(0, p + h - budget) for p, h in zip(p_lens, h_lens))


def _two_counts(r: Any) -> bool:
    import numbers

    return len(r) == 2 and all(isinstance(n, numbers.Integral) and n >= 0 for n in r)


DROPPED_RULES = (
    Rule("it returns (premise tokens dropped, hypothesis tokens dropped), two whole numbers, "
         "neither negative", lambda args, r: _two_counts(r)),
    Rule("no side loses more tokens than the sample's side holds",
         lambda args, r: r[0] <= sum(args[0]) and r[1] <= sum(args[1])),
    Rule("a sample whose every pair fits max_len (with <cls> and the two <sep>) loses nothing",
         lambda args, r: _over_budget(args) > 0 or tuple(r) == (0, 0)),
    Rule("every strategy keeps exactly budget = max_len - 3 tokens of a pair that does not fit, "
         "so the two counts add up to the tokens by which the pairs exceed their budget",
         lambda args, r: r[0] + r[1] == _over_budget(args)),
)


def _dropped_cases(seed: int = 4) -> list[Case]:
    """(p_lens, h_lens, max_len, strategy) samples: the edge cases, then random samples under
    the strategies whose sides differ (longest_first, ratio, only_premise, only_hypothesis)."""
    import random

    from bertnli_helpers.data.truncation import STRATEGIES

    lf, ratio = STRATEGIES["longest_first"], STRATEGIES["ratio"]
    named = [("every pair fitting", [3, 5, 2], [2, 1, 4], 16, lf),
             ("a pair exactly max_len long", [7, 2], [3, 2], 13, lf),
             ("a pair one token too long", [8, 2], [3, 2], 13, ratio),
             ("max_len 3 (a budget of 0)", [4, 1], [2, 0], 3, lf),
             ("an empty hypothesis", [12, 9], [0, 0], 8, ratio),
             ("a long premise and a short hypothesis", [20, 18, 4], [4, 3, 2], 12, lf),
             ("a hypothesis longer than the premise", [3, 2], [15, 11], 10, lf),
             ("only_premise on long premises", [20, 14], [5, 4], 11, STRATEGIES["only_premise"]),
             ("only_hypothesis on long premises", [20, 14], [5, 4], 11,
              STRATEGIES["only_hypothesis"])]
    cases = [Case(kind, (p, h, m, fn)) for kind, p, h, m, fn in named]
    rng = random.Random(seed)
    for name in ("longest_first", "ratio", "only_premise", "only_hypothesis"):
        for _ in range(10):
            n = rng.randint(1, 12)
            cases.append(Case(f"a random sample under {name}",
                              ([rng.randint(0, 30) for _ in range(n)],
                               [rng.randint(0, 20) for _ in range(n)], rng.randint(3, 40),
                               STRATEGIES[name])))
    return cases


@register("03 tokens dropped")
def _tokens_dropped(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_tokens_dropped(p_lens, h_lens, max_len, strategy)`` against the two
    columns of ``truncation_summary`` that section 4's table reads."""
    return check_function(answer, tokens_dropped_reference, _dropped_cases(), DROPPED_RULES,
                          what="my_tokens_dropped",
                          same=lambda a, b: tuple(int(n) for n in a) == b,
                          mismatch_hint="Call strategy(range(p), range(h), max_len - 3) on each "
                                        "pair that does not fit and count, per side, the tokens "
                                        "it did not keep; the premise's count comes first.")
