"""Checks for the notebooks' exercises: is a student's answer right, and if not, why not?

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
by name with :func:`register`, grouped below by notebook.
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
        print(f"{name}: your function does not pass its check yet, so the cells below use the "
              "package's reference instead.")
        return failed.verdict.reference
    return function


def _prefix_kept(side: Sequence[Any], kept: Any) -> bool:
    """Whether ``kept`` is a list holding the first tokens of ``side``, in order."""
    return isinstance(kept, list) and kept == list(side[:len(kept)])


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


# -- notebook 04 -----------------------------------------------------------------------------------
@register("04 optimizer steps")
def optimizer_steps(answer: Any, *, pairs: int, batch_size: int, epochs: int = 1) -> Verdict:
    """How many optimizer steps a run of ``epochs`` over ``pairs`` in batches of ``batch_size``
    takes, counted by the book's own batch loader (the last, smaller batch is a step too)."""
    from bertnli_helpers.data.dataset import RandomBatchSampler

    expected = len(RandomBatchSampler(pairs, batch_size)) * epochs
    return expect_equal(answer, expected, f"the number of optimizer steps ({pairs:,} pairs, "
                        f"batches of {batch_size}, {epochs} epoch(s))",
                        "One step per batch; a last batch with fewer pairs is a step too.")


@register("04 new parameters")
def new_parameters(answer: Any, *, hidden_size: int, pooling: str) -> Verdict:
    """How many of a classifier's numbers start from random values: measured on a classifier
    built with the package's own ``BERTClassifier`` at that hidden size and pooling."""
    from bertnli_helpers.model.bert import BERTClassifier, BertConfig, PretrainedBERT
    from bertnli_helpers.study.parameters import new_parameter_count

    config = BertConfig(vocab_size=8, hidden_size=hidden_size, num_layers=1, num_heads=1,
                        ffn_size=4, max_len=8)
    expected = new_parameter_count(BERTClassifier(PretrainedBERT(config), pooling=pooling))
    return expect_equal(answer, expected, f"the number of new parameters ({pooling!r} pooling, "
                        f"hidden size {hidden_size})",
                        "Count weights and biases of every layer that is not in the checkpoint: "
                        "the output layer, and for 'pair' the hidden layer that reads "
                        "4 x hidden numbers.")



def _pair_feature_cases(seed: int = 4) -> list[Case]:
    """(encoded, valid_lens, segments) batches: no padding, padding whose states are large (a
    head that averages them is far off), one pair, a one-token side, random shapes."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def batch(kind: str, p_lens: list[int], h_lens: list[int], seq: int, hidden: int = 4,
              padded: bool = True, pad_value: float = 0.0) -> Case:
        encoded = torch.randn(len(p_lens), seq, hidden, generator=generator)
        segments = torch.zeros(len(p_lens), seq, dtype=torch.long)
        for row, (p, h) in enumerate(zip(p_lens, h_lens)):
            segments[row, p + 2:p + h + 3] = 1  # <cls> p <sep> in 0, h <sep> in 1, padding in 0
            encoded[row, p + h + 3:] += pad_value
        valid = torch.tensor([p + h + 3 for p, h in zip(p_lens, h_lens)]) if padded else None
        return Case(kind, (encoded, valid, segments))

    cases = [batch("no padding (valid_lens is None)", [3, 3], [2, 2], 8, padded=False),
             batch("padded pairs", [5, 2], [3, 1], 11),
             batch("padding holding large values", [4, 1], [2, 2], 12, pad_value=100.0),
             batch("a batch of one pair", [6], [3], 12),
             batch("a one-token hypothesis", [7, 3], [1, 1], 11)]
    for _ in range(8):
        n = int(torch.randint(1, 5, (1,), generator=generator))
        p_lens = torch.randint(0, 9, (n,), generator=generator).tolist()
        h_lens = torch.randint(0, 6, (n,), generator=generator).tolist()
        cases.append(batch("random batches", p_lens, h_lens, max(p_lens) + max(h_lens) + 5,
                           hidden=int(torch.randint(2, 9, (1,), generator=generator))))
    return cases


def _quarters(result: Any) -> list[Any]:
    return list(result.chunk(4, dim=-1))


PAIR_FEATURE_RULES = (
    Rule("it returns a tensor of shape (batch, 4 x hidden)",
         lambda args, r: tuple(r.shape) == (args[0].shape[0], 4 * args[0].shape[2])),
    Rule("the third quarter is |u - v| of the first two quarters, u and v",
         lambda args, r: bool(_close(_quarters(r)[2], (_quarters(r)[0] - _quarters(r)[1]).abs()))),
    Rule("the fourth quarter is u * v",
         lambda args, r: bool(_close(_quarters(r)[3], _quarters(r)[0] * _quarters(r)[1]))),
)


def _close(a: Any, b: Any) -> bool:
    import torch

    return torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4)


@register("04 pair features")
def _pair_features(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_pair_features(encoded, valid_lens, segments)`` against the package's
    ``PairPooling`` head on the same tensors."""
    from bertnli_helpers.model.bert import PairPooling

    def reference(encoded: Any, valid_lens: Any, segments: Any) -> Any:
        return PairPooling(encoded.shape[-1])(encoded, valid_lens, segments)

    return check_function(answer, reference, _pair_feature_cases(), PAIR_FEATURE_RULES,
                          what="my_pair_features", same=_close,
                          mismatch_hint="u is the mean of the states of segment 0 ([CLS], the "
                                        "premise and the first [SEP]) and v of segment 1, each "
                                        "over the valid positions only: padding counts in "
                                        "neither.")


# -- notebook 05 -----------------------------------------------------------------------------------
@register("05 hard errors")
def _hard_errors(answer: Any, *, correct: Any, hard: Any) -> Verdict:
    """How many hard pairs (the hypothesis-only baseline gets them wrong) the model misses."""
    import numpy as np

    expected = int((~np.asarray(correct, dtype=bool) & np.asarray(hard, dtype=bool)).sum())
    return expect_equal(answer, expected, "the number of hard pairs the model gets wrong",
                        "Count the rows that are hard and not correct: (~correct & hard).sum().")


def _confusion_cases(seed: int = 6) -> list[Case]:
    """(gold, predicted) label lists: all right, all wrong, a class never predicted, a class
    absent from gold, one pair, and random ones."""
    import random

    draw = random.Random(seed)
    named = [("every prediction right", [0, 1, 2, 2, 1], [0, 1, 2, 2, 1]),
             ("every prediction wrong", [0, 1, 2, 0], [1, 2, 0, 2]),
             ("a class never predicted", [0, 1, 2, 1, 0], [0, 0, 2, 2, 0]),
             ("a class absent from gold", [0, 0, 1, 1], [0, 2, 1, 2]),
             ("one pair", [2], [1])]
    cases = [Case(kind, (gold, predicted)) for kind, gold, predicted in named]
    for _ in range(30):
        n = draw.randint(1, 40)
        cases.append(Case("random labels", ([draw.randrange(3) for _ in range(n)],
                                            [draw.randrange(3) for _ in range(n)])))
    return cases


def _counts(result: Any) -> Any:
    import numpy as np

    return np.asarray(result, dtype=float)


CONFUSION_RULES = (
    Rule("it returns a 3 x 3 table, one row and one column per class, absent classes included",
         lambda args, r: _counts(r).shape == (3, 3)),
    Rule("the cells are counts that add up to the number of pairs",
         lambda args, r: (_counts(r) >= 0).all() and _counts(r).sum() == len(args[0])),
    Rule("row i sums to the number of pairs whose gold label is i (gold in rows)",
         lambda args, r: list(_counts(r).sum(1)) == [args[0].count(i) for i in range(3)]),
    Rule("column j sums to the number of pairs predicted as j (predictions in columns)",
         lambda args, r: list(_counts(r).sum(0)) == [args[1].count(j) for j in range(3)]),
)


@register("05 confusion matrix")
def _confusion_matrix(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_confusion(gold, predicted)`` against ``analysis.confusion``."""
    import numpy as np
    import pandas as pd

    from bertnli_helpers.study.analysis import confusion

    def reference(gold: list[int], predicted: list[int]) -> Any:
        return confusion(pd.DataFrame({"gold": gold, "predicted": predicted})).to_numpy()

    return check_function(answer, reference, _confusion_cases(), CONFUSION_RULES,
                          what="my_confusion",
                          same=lambda a, b: np.array_equal(_counts(a), _counts(b)),
                          mismatch_hint="Cell (i, j) counts the pairs with gold label i that "
                                        "were predicted as j.")


@register("05 best temperature")
def _best_temperature(answer: Any, *, probs: Any, labels: Any, grid: Any) -> Verdict:
    """The temperature of ``grid`` with the lowest cross-entropy of ``probs`` on ``labels``."""
    import numpy as np

    logs = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    labels = np.asarray(labels)

    def cross_entropy(t: float) -> float:
        scaled = logs / t
        scaled -= scaled.max(1, keepdims=True)
        log_softmax = scaled - np.log(np.exp(scaled).sum(1, keepdims=True))
        return float(-log_softmax[np.arange(len(labels)), labels].mean())

    expected = float(min(grid, key=cross_entropy))
    if np.isclose(float(answer), expected):
        return Verdict(True, f"T = {expected:g} gives the lowest cross-entropy on these pairs.",
                       reference=expected)
    return Verdict(False, f"T = {float(answer):g} (cross-entropy {cross_entropy(answer):.4f}) "
                   "is not the lowest of the grid. Divide the log-probabilities by T, take the "
                   "softmax again, score the gold class, and try every T of the grid.",
                   reference=expected)


@register("05 uniform cross share")
def _uniform_cross_share(answer: Any, *, segments: Any) -> Verdict:
    """The crossing share of a head that attends to every token of the pair alike."""
    import numpy as np

    from bertnli_helpers.study.analysis import uniform_cross_share

    expected = uniform_cross_share(segments)
    if np.isclose(float(answer), expected, atol=1e-3):
        return Verdict(True, f"uniform attention sends {expected:.3f} of its weight across.",
                       reference=expected)
    return Verdict(False, f"Not {float(answer):.3f}: each token of side 0 gives side 1 the "
                   "share (side-1 tokens) / (all tokens) of its attention, and the other way "
                   "round; divide the total by the number of query rows.", reference=expected)


# -- notebook 06 -----------------------------------------------------------------------------------
@register("06 runs that learned")
def _runs_that_learned(answer: Any, *, grid: Any) -> Verdict:
    """How many cells of a grid beat the majority class measurably (``learning_check``)."""
    from bertnli_helpers.study.comparison import learning_check

    expected = sum(learning_check(c.correct, c.labels).learned for c in grid.cells)
    return expect_equal(answer, expected, f"the number of the {len(grid.cells)} runs that learned",
                        "Call learning_check(cell.correct, cell.labels) on every cell of the "
                        "grid and count .learned.")


@register("06 strategies that keep the hypothesis")
def _strategies_keeping_hypothesis(answer: Any, *, p_lens: Any, h_lens: Any, max_len: int,
                                   strategies: Any) -> Verdict:
    """Which strategies drop no hypothesis token on these pairs at ``max_len``."""
    from bertnli_helpers.data.truncation import truncation_summary

    rows = truncation_summary(list(p_lens), list(h_lens), max_len, list(strategies))
    expected = {r["strategy"] for r in rows if r["hypothesis_tokens_dropped"] == 0}
    answer = {answer} if isinstance(answer, str) else set(answer)
    return expect_equal(answer, expected, "the strategies that keep every hypothesis token",
                        "Read the hypothesis_tokens_dropped column of truncation_summary.")


@register("06 training PFLOP")
def _training_pflop(answer: Any, *, config: Any, lengths: Any, pairs: int, epochs: int) -> Verdict:
    """Training arithmetic of ``epochs`` over ``pairs`` pairs, in PFLOP (within 5%)."""
    import numpy as np

    from bertnli_helpers.study.costs import training_flops

    lengths = np.asarray(lengths, dtype=np.float64)
    expected = training_flops(config, lengths) / len(lengths) * pairs * epochs / 1e15
    if abs(float(answer) - expected) <= 0.05 * expected:
        return Verdict(True, f"about {expected:,.0f} PFLOP.", reference=expected)
    return Verdict(False, f"Not {float(answer):,.0f} PFLOP (within 5%): FLOPs per example "
                   "(training_flops over the sample of lengths, divided by its size) times "
                   "pairs times epochs, divided by 1e15.", reference=expected)


# -- notebook 07 -----------------------------------------------------------------------------------

def _masking_cases(seed: int = 5) -> list[Case]:
    """(tokens, candidates, num_preds, vocab, rng) calls on a small vocabulary: no prediction,
    one, more than the candidates, no candidates, and pairs of random length with random seeds."""
    import random
    from collections import Counter

    from bertnli_helpers.data.tokenization import build_book_vocab

    words = [f"w{i}" for i in range(30)]
    vocab = build_book_vocab(Counter({word: 5 for word in words}), min_freq=1)
    draw = random.Random(seed)

    def case(kind: str, length: int, num_preds: int, with_candidates: bool = True) -> Case:
        tokens = ["<cls>", *draw.choices(words, k=length), "<sep>"]
        candidates = list(range(1, length + 1)) if with_candidates else []
        return Case(kind, (tokens, candidates, num_preds, vocab, random.Random(draw.random())))

    cases = [case("no token to predict", 6, 0), case("one token to predict", 6, 1),
             case("more to predict than candidates", 3, 5), case("no candidates", 4, 2, False)]
    cases += [case("random pairs and seeds", draw.randint(1, 40), draw.randint(1, 8))
              for _ in range(60)]
    return cases


def _targets_ok(args: tuple, r: Any) -> bool:
    """The targets: min(num_preds, candidates) distinct candidate positions, each with the
    token that stood there."""
    tokens, candidates, num_preds = args[:3]
    positions = [position for position, _ in r[1]]
    return (len(positions) == min(num_preds, len(candidates)) == len(set(positions))
            and set(positions) <= set(candidates)
            and all(original == tokens[position] for position, original in r[1]))


MASKING_RULES = (
    Rule("it returns (masked tokens, targets): a list as long as the tokens, and a list of "
         "(position, original token) pairs",
         lambda args, r: len(r) == 2 and isinstance(r[0], list) and len(r[0]) == len(args[0])
         and all(len(target) == 2 for target in r[1])),
    Rule("the first num_preds of the shuffled candidates are the targets (all of them when "
         "there are fewer), each with the token that stood there",
         _targets_ok),
    Rule("only target positions change",
         lambda args, r: all(new == old for i, (new, old) in enumerate(zip(r[0], args[0]))
                             if i not in {position for position, _ in r[1]})),
    Rule("a target becomes <mask>, stays, or becomes a vocabulary token",
         lambda args, r: all(r[0][position] in args[3].token_to_idx for position, _ in r[1])),
)


@register("07 mlm masking")
def _mlm_masking(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_replace_mlm_tokens(tokens, candidates, num_preds, vocab, rng)`` against
    ``pretraining.replace_mlm_tokens``: the same draws from the same seed, so equal results."""
    from bertnli_helpers.train.pretraining import replace_mlm_tokens

    return check_function(answer, replace_mlm_tokens, _masking_cases(), MASKING_RULES,
                          what="my_replace_mlm_tokens",
                          mismatch_hint="Draw as the book does, from the rng given: shuffle the "
                                        "candidates once; then per target one rng.random() < 0.8 "
                                        "for <mask>, else a second rng.random() < 0.5 to keep "
                                        "the token, else rng.choice(vocab.idx_to_token).")
