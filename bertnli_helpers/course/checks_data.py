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


# A padded pair the check compares: what a function that refuses (ValueError) returns instead
REFUSED = "refused with a ValueError"


def _refusing(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, with a ValueError turned into ``REFUSED``: refusing a pair that does not
    fit is the right answer there, and the check compares it like any result."""
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except ValueError:
            return REFUSED

    return call


def _packed(p_len: int, h_len: int) -> tuple[list[int], list[int]]:
    """The ids and segments of a packed pair with sides of ``p_len`` and ``h_len`` tokens
    (ids 101 and 102 stand for [CLS] and [SEP]; the sides' ids count up from 1000)."""
    ids = [101, *range(1000, 1000 + p_len), 102, *range(2000, 2000 + h_len), 102]
    return ids, [0] * (p_len + 2) + [1] * (h_len + 1)


def _pad_cases(randoms: int = 40, seed: int = 4) -> list[Case]:
    """(ids, segments, max_len, pad_id) cases: empty sides, a pair exactly max_len long, one
    longer, a pad id other than 0, then random pairs (some too long for their max_len)."""
    import random

    rng = random.Random(seed)
    named = [("an empty premise", 0, 4, 12, 0), ("an empty hypothesis", 5, 0, 12, 0),
             ("both sides empty", 0, 0, 6, 0), ("a pair exactly max_len long", 3, 4, 10, 0),
             ("max_len one more than the pair", 3, 4, 11, 0),
             ("a pair longer than max_len", 6, 5, 9, 0), ("a pad id other than 0", 2, 3, 12, 1),
             ("a long pair and a wide row", 30, 20, 128, 0)]
    drawn = [("random lengths", rng.randint(0, 20), rng.randint(0, 20), rng.randint(3, 45),
              rng.choice([0, 1, 3])) for _ in range(randoms)]
    return [Case(kind, (*_packed(p, h), width, pad_id)) for kind, p, h, width, pad_id in
            [*named, *drawn]]


def _fits(args: tuple) -> bool:
    return len(args[0]) <= args[2]


PAD_RULES = (
    Rule("a pair longer than max_len is refused with a ValueError (padding never cuts tokens: "
         "choosing what to drop is truncation's job)",
         lambda args, r: _fits(args) or r == REFUSED),
    Rule("a pair that fits in max_len is padded, not refused",
         lambda args, r: not _fits(args) or r != REFUSED),
    Rule("it returns (ids, segments, valid_len): two lists max_len long and a whole number",
         lambda args, r: r == REFUSED or (len(r) == 3 and len(list(r[0])) == args[2]
                                          and len(list(r[1])) == args[2]
                                          and int(r[2]) == r[2])),
    Rule("valid_len is the pair's own length, the number of real tokens in the row",
         lambda args, r: r == REFUSED or int(r[2]) == len(args[0])),
    Rule("the row starts with the pair's ids, unchanged, and every position after them holds "
         "pad_id",
         lambda args, r: r == REFUSED
         or list(r[0]) == [*args[0], *[args[3]] * (args[2] - len(args[0]))]),
    Rule("the segments are the pair's own, then 0 on every padding position (padding belongs "
         "to no sentence; valid_len masks it)",
         lambda args, r: r == REFUSED or list(r[1]) == [*args[1], *[0] * (args[2] - len(args[1]))]),
)


@register("01 pad pair")
def _pad_pair(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_pad(ids, segments, max_len, pad_id)`` against ``dataset.pad_packed``."""
    from dataclasses import replace

    from bertnli_helpers.data.dataset import pad_packed

    def same(a: Any, b: Any) -> bool:
        if REFUSED in (a, b):
            return a == b
        return (list(a[0]), list(a[1]), int(a[2])) == (list(b[0]), list(b[1]), int(b[2]))

    verdict = check_function(_refusing(answer), _refusing(pad_packed), _pad_cases(), PAD_RULES,
                             what="my_pad", same=same,
                             mismatch_hint="Compare it with pad_packed on one short pair.")
    return replace(verdict, reference=pad_packed)  # the package's function, not the wrapper


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


def _vocab_cases(randoms: int = 30, seed: int = 5) -> list[Case]:
    """(word_counts, min_freq, reserved) cases: min_freq 1, a word exactly at min_freq, ties
    in an order that is not alphabetical, a counted reserved token, nothing kept, random."""
    import random
    from collections import Counter

    from bertnli_helpers.data.tokenization import BOOK_RESERVED

    rng = random.Random(seed)
    named = [("a word seen exactly min_freq times", {"a": 9, "dog": 5, "cat": 4}, 5),
             ("min_freq 1 (every word kept)", {"dog": 3, "a": 7, "runs": 1}, 1),
             ("ties in frequency (not in alphabetical order)",
              {"zebra": 4, "man": 6, "apple": 4, "kite": 4}, 2),
             ("a reserved token among the counted words", {"<unk>": 8, "dog": 6, "<pad>": 2}, 1),
             ("no word seen min_freq times", {"dog": 2, "cat": 1}, 3),
             ("no words at all", {}, 1)]
    cases = [Case(kind, (Counter(counts), min_freq, BOOK_RESERVED))
             for kind, counts, min_freq in named]
    cases.append(Case("other reserved tokens", (Counter({"b": 2, "a": 2}), 1, ("<unk>", "<pad>"))))
    words = [f"w{i}" for i in range(40)]
    for _ in range(randoms):
        chosen = rng.sample(words, rng.randint(1, 25))
        counts = Counter({w: rng.randint(1, 8) for w in chosen})  # many ties
        cases.append(Case("random counts", (counts, rng.randint(1, 6), BOOK_RESERVED)))
    return cases


def _kept_words(args: tuple) -> set:
    counts, min_freq, reserved = args
    return {w for w, c in counts.items() if c >= min_freq} - set(reserved)


VOCAB_RULES = (
    Rule("it returns a list of tokens (strings), each token once",
         lambda args, r: isinstance(r, list) and all(isinstance(t, str) for t in r)
         and len(set(r)) == len(r)),
    Rule("the reserved tokens come first, in their given order, even when a word of the counts "
         "is one of them",
         lambda args, r: r[:len(args[2])] == list(args[2])),
    Rule("every word seen at least min_freq times is in it, and no word seen fewer times",
         lambda args, r: set(r[len(args[2]):]) == _kept_words(args)),
    Rule("a more frequent word comes before a less frequent one",
         lambda args, r: all(args[0][a] >= args[0][b] for a, b in
                             zip(r[len(args[2]):], r[len(args[2]) + 1:]))),
)


@register("02 my vocab")
def _my_vocab(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_vocab(word_counts, min_freq, reserved)`` against the package's
    ``tokenization.book_vocab_tokens`` (what ``build_book_vocab`` builds its vocabulary from)."""
    from bertnli_helpers.data.tokenization import book_vocab_tokens

    return check_function(answer, book_vocab_tokens, _vocab_cases(), VOCAB_RULES,
                          what="my_vocab",
                          same=lambda a, b: list(a) == list(b),
                          mismatch_hint="Words seen equally often keep the order they have in "
                                        "word_counts: sort by the count alone, with a stable "
                                        "sort (sorted(..., reverse=True) or "
                                        "Counter.most_common() keep ties in order).")


def _which_side_loses_more(counted: dict[str, tuple[int, int]]) -> str:
    """Which side's words are unknown more often, with a 95% interval for the difference of the
    two shares (normal approximation, word tokens counted as independent draws)."""
    import math

    (u_p, n_p), (u_h, n_h) = counted["premise"], counted["hypothesis"]
    p, h = u_p / max(n_p, 1), u_h / max(n_h, 1)
    half = 1.96 * math.sqrt(p * (1 - p) / max(n_p, 1) + h * (1 - h) / max(n_h, 1))
    interval = (f"premises minus hypotheses {p - h:+.2%}, 95% interval {p - h - half:+.2%} to "
                f"{p - h + half:+.2%}")
    if abs(p - h) <= half:
        return f"the difference is within noise ({interval})"
    side = "premises" if p > h else "hypotheses"
    return f"the {side} lose words more often, beyond noise ({interval})"


@register("02 unknown by side")
def _unknown_by_side(answer: dict[str, float], *, tokenizer: Any, premises: Any,
                     hypotheses: Any) -> Verdict:
    """How often each side's words are unknown: the share of its word tokens that are <unk>
    (a count alone would favour the longer side)."""
    def unknown_and_words(texts: Any) -> tuple[int, int]:
        tokens = [t for text in texts for t in tokenizer.tokenize(text)]
        return sum(tokenizer[t] == tokenizer.unk_id for t in tokens), len(tokens)

    counted = {"premise": unknown_and_words(premises), "hypothesis": unknown_and_words(hypotheses)}
    expected = {side: unknown / max(words, 1) for side, (unknown, words) in counted.items()}
    given = {str(side): float(value) for side, value in dict(answer).items()}
    if set(given) != set(expected):
        return Verdict(False, 'Give one share per side: {"premise": ..., "hypothesis": ...}.',
                       reference=expected)
    if all(abs(given[side] - expected[side]) <= 1e-4 for side in expected):
        return Verdict(True, f"{expected['premise']:.2%} of the premises' words and "
                             f"{expected['hypothesis']:.2%} of the hypotheses' are unknown: "
                             f"{_which_side_loses_more(counted)}.", reference=expected)
    looks_counted = any(value > 1 for value in given.values()) or given == {
        side: float(unknown) for side, (unknown, _) in counted.items()}
    hint = ("These look like counts; the question asks how often, and premises are longer: "
            "divide each side's unknown tokens by its number of word tokens."
            if looks_counted else
            "For each side: the tokens whose id is <unk>'s, divided by all its word tokens.")
    return Verdict(False, f"The shares of unknown words per side are not those. {hint}",
                   reference=expected)


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
