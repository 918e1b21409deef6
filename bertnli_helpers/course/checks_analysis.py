"""Checks of notebooks 5 and 6: error analysis, calibration, the chapter's exercises.

Grid answers are read off the grid the notebook ran, so they hold in every profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bertnli_helpers.course.checking import (
    Case,
    Rule,
    Verdict,
    _shown,
    check_function,
    expect_equal,
    register,
)


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


def _cue_cases(seed: int = 7) -> list[Case]:
    """(hypotheses, labels, cue) calls: no hypotheses, a cue never used, a capitalised cue and
    one before punctuation, a cue inside a longer word, a cue twice in one hypothesis, and
    random sentences from a small vocabulary."""
    import random

    draw = random.Random(seed)
    named = [
        ("no hypotheses at all", [], [], "nobody"),
        ("a cue no hypothesis holds", ["A man sleeps.", "Two dogs run."], [1, 0], "cat"),
        ("a capitalised cue at the start", ["Nobody is sleeping.", "A man is asleep."], [1, 2],
         "nobody"),
        ("a cue right before punctuation", ["The man is sleeping.", "He is sleeping, alone."],
         [1, 1], "sleeping"),
        ("a cue inside a longer word", ["A catfish swims.", "The cat sits.", "Cats play."],
         [0, 1, 2], "cat"),
        ("a cue twice in one hypothesis", ["No man, no dog.", "No one is here."], [1, 2], "no"),
    ]
    cases = [Case(kind, (hypotheses, labels, cue)) for kind, hypotheses, labels, cue in named]
    vocabulary = ["a", "man", "woman", "nobody", "is", "sleeping", "outdoors", "tall", "cat",
                  "dog", "the", "Nobody", "Outdoors.", "sleeping.", "tall,"]
    for _ in range(30):
        n = draw.randint(1, 25)
        hypotheses = [" ".join(draw.choices(vocabulary, k=draw.randint(1, 7))) for _ in range(n)]
        labels = [draw.randrange(3) for _ in range(n)]
        cases.append(Case("random hypotheses", (hypotheses, labels,
                                                draw.choice(["nobody", "sleeping", "outdoors",
                                                             "tall", "cat"]))))
    return cases


CUE_RULES = (
    Rule("it returns three counts, one per class in the order of LABEL_NAMES",
         lambda args, r: len(list(r)) == 3),
    Rule("the counts are whole numbers, none negative",
         lambda args, r: all(int(n) == n and n >= 0 for n in r)),
    Rule("no class counts more hypotheses than it has (each hypothesis counts once)",
         lambda args, r: all(n <= list(args[1]).count(c) for c, n in enumerate(r))),
)


@register("05 cue counts")
def _cue_counts(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_cue_counts(hypotheses, labels, cue)`` against ``analysis.cue_counts``."""
    from bertnli_helpers.study.analysis import cue_counts

    return check_function(answer, cue_counts, _cue_cases(), CUE_RULES, what="my_cue_counts",
                          same=lambda a, b: [int(n) for n in a] == list(b),
                          mismatch_hint="Split each hypothesis into lower-cased words with "
                                        "words(text), count a hypothesis under its label when "
                                        "the cue is one of its words, and once only.")


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
    return _strategies_verdict(answer, expected)


def _strategies_verdict(answer: set[str], expected: set[str]) -> Verdict:
    """The verdict in a sentence that reads right for none, one or several strategies."""
    def said(names: set[str]) -> str:
        if not names:
            return "no strategy keeps"
        return (f"{_shown(names)} {'keeps' if len(names) == 1 else 'keep'}")

    hint = "Read the hypothesis_tokens_dropped column of truncation_summary."
    if answer == expected:
        return Verdict(True, f"Yes: {said(expected)} every hypothesis token here.",
                       reference=expected)
    return Verdict(False, f"It is not that {said(answer)} every hypothesis token. {hint}",
                   reference=expected)


def _verdict_cases(seed: int = 7) -> list[Case]:
    """(low, high, p_value) triples: the edges (an end at 0, p at 0.05) and random intervals."""
    import random

    named = [("an interval above 0 and a small p", 0.01, 0.05, 0.001),
             ("an interval below 0 and a small p", -0.04, -0.01, 0.002),
             ("an interval across 0", -0.02, 0.03, 0.4),
             ("an interval above 0 but McNemar's p not small", 0.002, 0.03, 0.2),
             ("an interval below 0 but McNemar's p not small", -0.03, -0.001, 0.09),
             ("a small p but an interval across 0", -0.001, 0.02, 0.01),
             ("an interval whose low end is exactly 0", 0.0, 0.02, 0.001),
             ("an interval whose high end is exactly 0", -0.02, 0.0, 0.001),
             ("p just above 0.05", 0.01, 0.03, 0.0501), ("p just under 0.05", 0.01, 0.03, 0.0499)]
    cases = [Case(kind, (low, high, p)) for kind, low, high, p in named]
    draw = random.Random(seed)
    for _ in range(40):
        centre, half = draw.uniform(-0.05, 0.05), draw.uniform(0.001, 0.03)
        cases.append(Case("a random interval", (centre - half, centre + half,
                                                draw.choice([0.0, 0.001, 0.03, 0.2, 0.7]))))
    return cases


VERDICT_RULES = (
    Rule("it returns one of the three words 'better', 'worse' or 'within noise'",
         lambda args, r: r in ("better", "worse", "within noise")),
    Rule("'better' needs the whole interval above 0 (low > 0)",
         lambda args, r: r != "better" or args[0] > 0),
    Rule("'worse' needs the whole interval below 0 (high < 0)",
         lambda args, r: r != "worse" or args[1] < 0),
    Rule("'better' and 'worse' also need McNemar's test to agree (p below 0.05)",
         lambda args, r: r == "within noise" or args[2] < 0.05),
)


@register("06 my verdict")
def _my_verdict(answer: Callable[..., Any]) -> Verdict:
    """A student's ``my_verdict(low, high, p_value)`` against ``comparison.verdict_of``."""
    from bertnli_helpers.study.comparison import verdict_of

    return check_function(answer, verdict_of, _verdict_cases(), VERDICT_RULES, what="my_verdict",
                          mismatch_hint="A direction is read only when both tests say so: the "
                                        "interval excludes 0 and p < 0.05; anything else is "
                                        "'within noise'.")


VARIANT_KINDS = {"model": str, "lr": float, "truncation": str, "max_len": int, "train_size": int}
VARIANT_EXAMPLE = {"max_len": [32]}


def _variant_problem(answer: Any, recipe: dict[str, list], most: int) -> str | None:
    """What is wrong with a ``vary`` dict of one setting, or None when it is a valid variant."""
    if not isinstance(answer, dict):
        return (f"a variant is a dict of one setting and its values, like {{'lr': [3e-5]}}, "
                f"not a {type(answer).__name__}")
    if len(answer) != 1:
        return (f"a comparison changes one thing: name exactly one setting, not {len(answer)} "
                f"(settings: {', '.join(recipe)})")
    (name, values), = answer.items()
    if name not in recipe:
        return f"{name!r} is not a setting of the recipe; choose one of {', '.join(recipe)}"
    if not isinstance(values, (list, tuple)) or not 1 <= len(values) <= most:
        return (f"give the values as a list of 1 to {most} values (each is one more run per "
                "seed; the recipe's own value is added as the baseline)")
    return _values_problem(name, list(values), recipe[name][0])


def _values_problem(name: str, values: list, baseline: Any) -> str | None:
    """Whether each value has the setting's type and range, and differs from the baseline."""
    from bertnli_helpers.data.truncation import STRATEGIES

    kind = VARIANT_KINDS.get(name, type(baseline))
    for value in values:
        numeric = kind in (int, float) and isinstance(value, (int, float)) \
            and not isinstance(value, bool) and (kind is float or float(value).is_integer())
        if not (isinstance(value, kind) or numeric):
            return f"{name} takes {kind.__name__} values; {value!r} is a {type(value).__name__}"
        if kind in (int, float) and value <= 0:
            return f"{name} must be above 0, not {value!r}"
        if name == "truncation" and value not in STRATEGIES:
            return f"{value!r} is not a strategy; known: {', '.join(STRATEGIES)}"
        if name == "max_len" and not 4 <= value <= 512:
            return "max_len must be from 4 (room for a token) to 512 (the position table)"
        if name == "train_size" and value > baseline:
            return "train_size cannot exceed the comparison sample the recipe uses"
    if baseline in values:
        return (f"the recipe's own {name} is the baseline, added by the notebook; list only "
                "values that differ from it")
    if len(set(map(repr, values))) != len(values):
        return "each value once: a repeated value is the same run again"
    return None


@register("06 my variant")
def _my_variant(answer: Any, *, recipe: dict[str, list], most: int = 2) -> Verdict:
    """A ``vary`` dict of one setting of ``recipe`` and at most ``most`` new values."""
    problem = _variant_problem(answer, recipe, most)
    if problem is None:
        (name, values), = answer.items()
        return Verdict(True, f"one setting ({name}) with {len(values)} new value"
                             f"{'s' * (len(values) != 1)} against the recipe's "
                             f"{recipe[name][0]!r}: a one-change comparison.",
                       reference=VARIANT_EXAMPLE)
    return Verdict(False, f"Not a variant the notebook can run: {problem}.",
                   reference=VARIANT_EXAMPLE)


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
