"""Checks for the notebooks' exercises: is a student's answer right, and if not, why not?

Where an exercise has one right answer (a count, a packed sequence, a truncation result, a
parameter count), the notebook asks ``check("name", answer, ...)``. Each check computes the
expected answer with the package's own code from what the exercise gave the student, so the
check and the lesson cannot drift apart. Checks are registered by name with :func:`register`,
grouped below by notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """A checked answer: right or not, and a sentence that says why. ``answered`` is False
    when there was no answer yet: then it is neither right nor wrong, and says nothing of
    the expected value (a cell run before the student wrote anything must not give it away)."""

    correct: bool
    message: str
    answered: bool = True

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


UNANSWERED = Verdict(False, "Write your answer above (in place of `None`), then run this cell.",
                     answered=False)


CHECKS: dict[str, Callable[..., Verdict]] = {}


def register(name: str) -> Callable[[Callable[..., Verdict]], Callable[..., Verdict]]:
    """Add a check under ``name`` (a decorator)."""
    def add(function: Callable[..., Verdict]) -> Callable[..., Verdict]:
        if name in CHECKS:
            raise ValueError(f"a check named {name!r} is already registered")
        CHECKS[name] = function
        return function

    return add


def check(name: str, answer: Any, **given: Any) -> Verdict:
    """Check ``answer`` to exercise ``name``; ``given`` is what the exercise gave the student."""
    if name not in CHECKS:
        raise KeyError(f"no check named {name!r}; known: {', '.join(sorted(CHECKS))}")
    if answer is None:  # the exercise cell as shipped: nothing to check, nothing to reveal
        return UNANSWERED
    return CHECKS[name](answer, **given)


def expect_equal(answer: Any, expected: Any, what: str, hint: str = "", *,
                 verb: str = "is") -> Verdict:
    """The common case: the answer must equal the expected value (``verb`` "are" for plurals)."""
    if answer == expected:
        return Verdict(True, f"{what} {verb} {_shown(expected)}.")
    return Verdict(False, f"{what} should be {_shown(expected)}, not {_shown(answer)}." +
                   (f" {hint}" if hint else ""))


def _shown(value: Any) -> str:
    """A value as a student reads it: a set sorted, an empty one as 'none'."""
    if isinstance(value, (set, frozenset)):
        return ", ".join(map(repr, sorted(value))) if value else "none"
    return repr(value)


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
        return Verdict(True, f"The embeddings hold {expected:.1%} of the parameters.")
    hint = ("Did you count only the token table? Add the position and segment tables."
            if abs(float(answer) - model.encoder.token_embedding.weight.numel() /
                   sum(p.numel() for p in model.parameters())) <= 0.005 else
            "Sum the numel() of the parameters whose names start with the embedding tables, "
            "divided by the sum over all parameters.")
    return Verdict(False, f"The embedding share is {expected:.1%}, not {float(answer):.1%}. {hint}")


@register("01 packed pair")
def _packed_pair(answer: tuple[list[str], list[int]], *, tokenizer: Any, premise: str,
                 hypothesis: str) -> Verdict:
    expected = tokenizer.pack_tokens(tokenizer.tokenize(premise), tokenizer.tokenize(hypothesis))
    tokens, segments = (list(part) for part in answer)
    if tokens != expected[0]:
        return expect_equal(tokens, expected[0], "The packed tokens",
                            "<cls> premise <sep> hypothesis <sep>, each side as the tokenizer "
                            "splits it.", verb="are")
    return expect_equal(segments, expected[1], "The segment ids",
                        "0 for <cls>, the premise and its <sep>; 1 for the hypothesis and the "
                        "last <sep>.", verb="are")


@register("01 swapped pair")
def _swapped_pair(answer: Any, **_: Any) -> Verdict:
    expected = {"position", "segment"}
    given = {str(name).lower().removesuffix(" embedding") for name in answer}
    if given == expected:
        return Verdict(True, "Each token keeps its token row, but moves to another position "
                             "and to the other segment.")
    why = ("A token's own row never changes: the token embedding depends only on the token. "
           if "token" in given else "")
    return Verdict(False, f"{why}After the swap each token stands at another position and in "
                          "the other segment: the answer is {'position', 'segment'}.")


@register("01 unknown words")
def _unknown_words(answer: int, *, tokenizer: Any, text: str) -> Verdict:
    tokens = tokenizer.tokenize(tokenizer.prepare_typed(text))
    unknown = [t for t in tokens if tokenizer[t] == tokenizer.unk_id]
    return expect_equal(int(answer), len(unknown), "The number of <unk> tokens",
                        f"The words the vocabulary lacks are {unknown}.")


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

    from bertnli_helpers.data.dataset import LengthBucketSampler

    lengths = np.asarray(lengths)
    batches = [np.asarray(b) for b in LengthBucketSampler(lengths, batch_size,
                                                          pool_batches=pool_batches, seed=seed)]
    computed = sum(lengths[b].max() * len(b) for b in batches)
    expected = float(1 - lengths.sum() / computed)
    if abs(float(answer) - expected) <= 0.001:
        return Verdict(True, f"With pools of {pool_batches} batches, {expected:.1%} of the "
                             "computed positions are padding.")
    return Verdict(False, f"The padding share is {expected:.1%}, not {float(answer):.1%}: each "
                          "batch computes (its longest length) x (its pairs) positions; the "
                          "padding share is 1 - (sum of lengths) / (positions computed).")


# -- notebook 03 -----------------------------------------------------------------------------------

@register("03 truncated pair")
def _truncated_pair(answer: tuple[list[str], list[str]], *, strategy: str, premise: Any,
                    hypothesis: Any, max_len: int) -> Verdict:
    from bertnli_helpers.data.truncation import SPECIAL_TOKENS_PER_PAIR, STRATEGIES

    budget = max_len - SPECIAL_TOKENS_PER_PAIR
    p_kept, h_kept = STRATEGIES[strategy](list(premise), list(hypothesis), budget)
    kept = tuple(list(side) for side in answer)
    if len(kept[0]) + len(kept[1]) != len(p_kept) + len(h_kept):
        return Verdict(False, f"{strategy} keeps {len(p_kept) + len(h_kept)} tokens in all "
                              f"(max_len {max_len} minus {SPECIAL_TOKENS_PER_PAIR} special "
                              f"tokens), not {len(kept[0]) + len(kept[1])}.")
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



# -- notebook 05 -----------------------------------------------------------------------------------
@register("05 hard errors")
def _hard_errors(answer: Any, *, correct: Any, hard: Any) -> Verdict:
    """How many hard pairs (the hypothesis-only baseline gets them wrong) the model misses."""
    import numpy as np

    expected = int((~np.asarray(correct, dtype=bool) & np.asarray(hard, dtype=bool)).sum())
    return expect_equal(answer, expected, "the number of hard pairs the model gets wrong",
                        "Count the rows that are hard and not correct: (~correct & hard).sum().")


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
        return Verdict(True, f"T = {expected:g} gives the lowest cross-entropy on these pairs.")
    return Verdict(False, f"T = {float(answer):g} has cross-entropy {cross_entropy(answer):.4f}; "
                   f"T = {expected:g} has {cross_entropy(expected):.4f}. Divide the "
                   "log-probabilities by T, take the softmax again, and score the gold class.")


@register("05 uniform cross share")
def _uniform_cross_share(answer: Any, *, segments: Any) -> Verdict:
    """The crossing share of a head that attends to every token of the pair alike."""
    import numpy as np

    from bertnli_helpers.study.analysis import uniform_cross_share

    expected = uniform_cross_share(segments)
    if np.isclose(float(answer), expected, atol=1e-3):
        return Verdict(True, f"uniform attention sends {expected:.3f} of its weight across.")
    n0, n1 = int((np.asarray(segments) == 0).sum()), int((np.asarray(segments) == 1).sum())
    return Verdict(False, f"{expected:.3f}, not {float(answer):.3f}: each of the {n0} tokens of "
                   f"side 0 gives {n1}/{n0 + n1} of its attention to side 1, and the other way "
                   f"round; divide the total by the {n0 + n1} query rows.")


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
        return Verdict(True, f"about {expected:,.0f} PFLOP.")
    return Verdict(False, f"about {expected:,.0f} PFLOP, not {float(answer):,.0f}: FLOPs per "
                   "example (training_flops over the sample of lengths, divided by its size) "
                   "times pairs times epochs, divided by 1e15.")
