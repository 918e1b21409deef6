"""From predictions to insight: a table of pairs, metrics, calibration, slices, a hypothesis-only
baseline and attention maps.

Everything starts from :func:`predictions_frame`, one pandas row per pair. The other functions take
that frame (or its columns) and return small tables, so that a notebook can print them and
:mod:`~bertnli_helpers.study.plots` can draw them. Metrics come from scikit-learn; what scikit-
learn does not have (expected calibration error with bin counts, accuracy by slice) is written here
and documented.

Conventions, written down once:

* **Words** (for overlap and negation): the lower-cased text split into runs of letters and digits,
  apostrophes inside a word kept (``don't``, ``n't``), every other punctuation mark dropped.
* **Word overlap**: the share of the hypothesis's *distinct* words that also occur in the premise
  (0 for a hypothesis with no words). Annotators writing entailments copied premise words, so
  high overlap is a shortcut a model can learn.
* **Negation**: the hypothesis holds a word of :data:`NEGATION_WORDS` or a word ending in ``n't``.
  Gururangan et al. (2018) found such words mark contradictions in SNLI.
* **Calibration bins**: ``n_bins`` equal-width bins over [0, 1], right-closed ``(lo, hi]`` (the
  first also holds 0), the same assignment as ``sklearn.calibration.calibration_curve``. With
  three classes the top probability is at least 1/3, so the lowest bins stay empty.
* **Length buckets**: by default the quartiles of the packed length in the frame (each bucket
  about a quarter of the pairs; ties make them uneven), or fixed edges you pass to compare
  models on the same buckets. Buckets are right-closed, the first one also holds its lower edge.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits
from torch import nn

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import LABEL_NAMES, SNLIRecord, SNLISplit
from bertnli_helpers.data.tokenization import TextTokenizer
from bertnli_helpers.model.inference import evaluating, predict

__all__ = [
    "NEGATION_WORDS",
    "PROB_COLUMNS",
    "SLICES",
    "BaselineConfig",
    "ConfidenceGap",
    "HypothesisBaseline",
    "SliceSpec",
    "accuracy",
    "add_slices",
    "all_slices",
    "attention_for_pair",
    "baseline_pipeline",
    "bucket",
    "compare_calibration",
    "confidence_bins",
    "confidence_gap",
    "confusion",
    "easy_hard_accuracy",
    "ece_from_curve",
    "expected_calibration_error",
    "fit_hypothesis_baseline",
    "hypothesis_only_dataset",
    "negation_words",
    "per_class_metrics",
    "predictions_frame",
    "quantile_edges",
    "reliability_curve",
    "slice_accuracy",
    "summary",
    "word_overlap",
    "words",
]

LABELS = list(range(len(LABEL_NAMES)))
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{name}" for name in LABEL_NAMES)
NEGATION_WORDS: frozenset[str] = frozenset({
    "no", "not", "never", "nobody", "nothing", "none", "nowhere", "neither", "nor", "cannot",
    "n't",
})
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


# -- pair features ------------------------------------------------------------------------------
def words(text: str) -> list[str]:
    """Lower-cased words of a text, punctuation dropped, inner apostrophes kept (``n't``)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def word_overlap(premise: str, hypothesis: str) -> float:
    """Share of the hypothesis's distinct words found in the premise (0 when it has none)."""
    hyp = set(words(hypothesis))
    return len(hyp & set(words(premise))) / len(hyp) if hyp else 0.0


def negation_words(text: str) -> list[str]:
    """The negation words of a text, in order: :data:`NEGATION_WORDS` or ending in ``n't``."""
    return [w for w in words(text) if w in NEGATION_WORDS or w.endswith("n't")]


# -- the table ----------------------------------------------------------------------------------
def _check_probs(probs: np.ndarray, n: int) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, len(LABEL_NAMES)):
        raise ValueError(
            f"probs must have shape ({n}, {len(LABEL_NAMES)}) (one row per pair of the dataset, "
            f"one column per class), got {probs.shape}"
        )
    return probs


def _records_columns(
    records: SNLISplit | Sequence[SNLIRecord], labels: np.ndarray
) -> dict[str, list]:
    rows = records.records if isinstance(records, SNLISplit) else list(records)
    if len(rows) != len(labels):
        raise ValueError(f"{len(rows)} records for a dataset of {len(labels)} pairs")
    if any(r.label != int(y) for r, y in zip(rows, labels)):
        raise ValueError("the records' labels differ from the dataset's: not the same pairs?")
    agreement = [
        sum(a == r.label_name for a in r.annotator_labels) / max(1, len(r.annotator_labels))
        for r in rows
    ]
    return {"pair_id": [r.pair_id for r in rows], "agreement": agreement}


def predictions_frame(
    model: nn.Module | None,
    dataset: SNLIBERTDataset,
    *,
    records: SNLISplit | Sequence[SNLIRecord] | None = None,
    probs: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per pair of ``dataset`` (in its order): text, gold and predicted class, class
    probabilities, confidence, token lengths, truncation, word overlap and negation.

    ``probs`` (``(n, 3)``, e.g. from an earlier :func:`~bertnli_helpers.train.loop.predict`) skips
    the model, which may then be None. ``records`` (the split the dataset was built from) adds
    ``pair_id`` and ``agreement`` (share of annotators who chose the gold label).
    """
    n = len(dataset)
    if probs is None:
        if model is None:
            raise ValueError("pass a model, or the precomputed probs of this dataset")

        probs = predict(model, dataset)
    probs = _check_probs(probs, n)
    enc = dataset.encoded
    gold = enc.labels.astype(np.int64)
    predicted = probs.argmax(axis=1)
    names = np.asarray(LABEL_NAMES)
    columns: dict[str, object] = {}
    if records is not None:
        columns.update(_records_columns(records, gold))
    columns.update({
        "premise": dataset.premises,
        "hypothesis": dataset.hypotheses,
        "gold": gold,
        "gold_name": names[gold],
        "predicted": predicted,
        "predicted_name": names[predicted],
        **{col: probs[:, k] for k, col in enumerate(PROB_COLUMNS)},
        "confidence": probs.max(axis=1),
        "correct": predicted == gold,
        "premise_len": enc.premise_full.astype(np.int64),
        "hypothesis_len": enc.hypothesis_full.astype(np.int64),
        "packed_len": enc.lengths.astype(np.int64),
        "truncated": enc.truncated,
        "overlap": [word_overlap(p, h) for p, h in zip(dataset.premises, dataset.hypotheses)],
        "negation": [bool(negation_words(h)) for h in dataset.hypotheses],
    })
    return pd.DataFrame(columns)


# -- metrics (scikit-learn) ---------------------------------------------------------------------
def accuracy(frame: pd.DataFrame) -> float:
    """Share of pairs whose predicted class is the gold one."""
    return float(accuracy_score(frame["gold"], frame["predicted"]))


def per_class_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (rows in label order); 0 where undefined."""
    precision, recall, f1, support = precision_recall_fscore_support(
        frame["gold"], frame["predicted"], labels=LABELS, zero_division=0
    )
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support},
        index=pd.Index(LABEL_NAMES, name="class"),
    )


def confusion(frame: pd.DataFrame, *, normalize: bool = False) -> pd.DataFrame:
    """Confusion matrix, gold classes as rows and predicted as columns; ``normalize``: each row
    divided by its gold count (so the diagonal is each class's recall)."""
    matrix = confusion_matrix(
        frame["gold"], frame["predicted"], labels=LABELS, normalize="true" if normalize else None
    )
    return pd.DataFrame(
        matrix,
        index=pd.Index(LABEL_NAMES, name="gold"),
        columns=pd.Index(LABEL_NAMES, name="predicted"),
    )


# -- calibration ------------------------------------------------------------------------------
def confidence_bins(confidence: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """The bin of each confidence: ``n_bins`` equal-width bins ``(lo, hi]`` (the first also
    holds 0), assigned as sklearn's ``calibration_curve`` assigns them."""
    return np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], confidence)


def reliability_curve(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, n_bins: int = 10
) -> pd.DataFrame:
    """Per equal-width confidence bin ``(lo, hi]``: mean confidence, accuracy and count.

    Every bin has a row; an empty one has count 0 and NaN means.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.shape != hit.shape or conf.ndim != 1:
        raise ValueError("confidence and correct must be 1-d and of the same length")
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise ValueError("confidence must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = confidence_bins(conf, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=conf, minlength=n_bins) / count
        acc = np.bincount(bins, weights=hit, minlength=n_bins) / count
    return pd.DataFrame({
        "lower": edges[:-1],
        "upper": edges[1:],
        "mean_confidence": mean_conf,
        "accuracy": acc,
        "count": count,
    })


def ece_from_curve(curve: pd.DataFrame) -> float:
    """Expected calibration error of a reliability curve: the count-weighted mean gap between
    accuracy and confidence over the non-empty bins."""
    filled = curve[curve["count"] > 0]
    total = filled["count"].sum()
    if total == 0:
        return math.nan
    gaps = (filled["accuracy"] - filled["mean_confidence"]).abs()
    return float((gaps * filled["count"]).sum() / total)


def expected_calibration_error(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, n_bins: int = 10
) -> float:
    """ECE (Guo et al., 2017) over ``n_bins`` equal-width bins: 0 for a calibrated model."""
    return ece_from_curve(reliability_curve(confidence, correct, n_bins))


def summary(frame: pd.DataFrame, n_bins: int = 10) -> dict[str, float]:
    """The headline numbers of a frame, for printing or ``runs.write_metrics``."""
    return {
        "n": len(frame),
        "accuracy": accuracy(frame),
        "macro_f1": float(per_class_metrics(frame)["f1"].mean()),
        "ece": expected_calibration_error(frame["confidence"], frame["correct"], n_bins),
        "mean_confidence": float(frame["confidence"].mean()),
    }



@dataclass(frozen=True)
class ConfidenceGap:
    """Mean confidence minus accuracy on the same pairs, with a 95% bootstrap interval over
    pairs, and a verdict: ``over-confident`` (the interval above 0), ``under-confident`` (below
    0) or ``within noise``."""

    gap: float
    low: float
    high: float
    n_pairs: int
    verdict: str

    def sentence(self, who: str = "the model") -> str:
        """One sentence that states a direction only where the interval supports one."""
        numbers = (f"mean confidence minus accuracy {self.gap:+.3f} (95% interval "
                   f"{self.low:+.3f} to {self.high:+.3f}, bootstrap over {self.n_pairs:,} pairs)")
        if self.verdict == "within noise":
            return (f"On average {who} is neither measurably over- nor under-confident: "
                    f"{numbers}, within noise.")
        return f"On average {who} is **{self.verdict}**: {numbers}."


def confidence_gap(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, *,
    samples: int = 1000, seed: int = 0,
) -> ConfidenceGap:
    """How far the mean confidence is from the accuracy, and whether that is beyond the noise of
    the pairs: a gap smaller than the sampling noise of an accuracy says no direction."""
    confidence = np.asarray(confidence, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    if confidence.shape != hits.shape or confidence.ndim != 1 or confidence.size == 0:
        raise ValueError("confidence and correct need one same non-empty length")
    per_pair = confidence - hits
    rng = np.random.default_rng(seed)
    means = np.array([per_pair[rng.integers(0, per_pair.size, per_pair.size)].mean()
                      for _ in range(samples)])
    low, high = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    verdict = "over-confident" if low > 0 else "under-confident" if high < 0 else "within noise"
    return ConfidenceGap(float(per_pair.mean()), low, high, int(per_pair.size), verdict)

# -- comparing calibration ----------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationComparison:
    """A against B on the same pairs: ECE of each (mean over seeds), difference A - B, its 95%
    interval from a paired bootstrap, and a verdict: A ``better`` calibrated (lower ECE),
    ``worse`` or ``within noise``."""

    name_a: str
    name_b: str
    ece_a: float
    ece_b: float
    difference: float
    low: float
    high: float
    n_pairs: int
    n_seeds: int
    verdict: str

    def sentence(self) -> str:
        """One sentence that states only what the interval supports."""
        numbers = (f"ECE {self.ece_a:.3f} against {self.ece_b:.3f}, {self.difference:+.3f} (95% "
                   f"interval {self.low:+.3f} to {self.high:+.3f}, {self.n_pairs:,} pairs"
                   + (f" x {self.n_seeds} seeds)" if self.n_seeds > 1 else ")"))
        if self.verdict == "within noise":
            return (f"Calibration of {self.name_a} against {self.name_b}: {numbers}: within "
                    "noise, so this run does not show that either is better calibrated.")
        return f"{self.name_a} is {self.verdict} calibrated than {self.name_b}: {numbers}."


def _ece_rows(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE of each row of ``(runs, pairs)`` arrays, vectorised over the rows."""
    runs, n = confidence.shape
    bins = confidence_bins(confidence, n_bins) + n_bins * np.arange(runs)[:, None]
    size = runs * n_bins
    gap = np.bincount(bins.ravel(), weights=(correct - confidence).ravel(), minlength=size)
    return np.abs(gap).reshape(runs, n_bins).sum(1) / n


def compare_calibration(
    confidence_a: np.ndarray, correct_a: np.ndarray, confidence_b: np.ndarray,
    correct_b: np.ndarray, name_a: str = "A", name_b: str = "B", *, n_bins: int = 10,
    samples: int = 1000, seed: int = 0,
) -> CalibrationComparison:
    """Compare the ECE of two classifiers scored on the same pairs (``(pairs,)`` each, or
    ``(seeds, pairs)``, row ``k`` of both on the same pairs). The interval resamples seeds and
    pairs together, as ``comparison.compare`` does for accuracy."""
    arrays = [np.atleast_2d(np.asarray(x, dtype=np.float64))
              for x in (confidence_a, correct_a, confidence_b, correct_b)]
    if len({a.shape for a in arrays}) != 1 or arrays[0].size == 0:
        raise ValueError("confidences and correct masks need one same non-empty shape")
    seeds, n = arrays[0].shape
    rng = np.random.default_rng(seed)
    diffs = np.empty(samples)
    for k in range(samples):
        rows, cols = rng.integers(0, seeds, seeds)[:, None], rng.integers(0, n, (seeds, n))
        conf_a, hit_a, conf_b, hit_b = (a[rows, cols] for a in arrays)
        diffs[k] = (_ece_rows(conf_a, hit_a, n_bins) - _ece_rows(conf_b, hit_b, n_bins)).mean()
    ece_a = float(_ece_rows(arrays[0], arrays[1], n_bins).mean())
    ece_b = float(_ece_rows(arrays[2], arrays[3], n_bins).mean())
    low, high = (float(x) for x in np.percentile(diffs, [2.5, 97.5]))
    verdict = "better" if high < 0 else "worse" if low > 0 else "within noise"
    return CalibrationComparison(name_a, name_b, ece_a, ece_b, ece_a - ece_b, low, high, n,
                                 seeds, verdict)


# -- slices -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceSpec:
    """How the numeric slices are cut: ``length_edges`` None means quantile buckets (of
    ``length_column``) in this frame, ``length_quantiles`` of them."""

    length_column: str = "packed_len"
    length_edges: tuple[float, ...] | None = None
    length_quantiles: int = 4
    overlap_edges: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def quantile_edges(values: Sequence[float] | np.ndarray, q: int = 4) -> np.ndarray:
    """Edges that cut ``values`` into ``q`` buckets of about equal size (duplicates merged).

    For whole numbers the edges are rounded down, which puts every value in the same bucket
    ``(lo, hi]`` as before and keeps the labels whole.
    """
    values = np.asarray(values, dtype=np.float64)
    edges = np.quantile(values, np.linspace(0, 1, q + 1))
    if np.all(np.mod(values, 1) == 0):
        edges = np.floor(edges)
    return np.unique(edges)


def _edge_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def bucket(values: Sequence[float] | np.ndarray, edges: Sequence[float]) -> pd.Categorical:
    """Ordered buckets ``(lo, hi]`` (the first one also holds ``lo``), labelled ``"lo–hi"``.

    For whole numbers the label shows the values a bucket holds: edges (0, 10, 20, 21) give
    ``"0–10"``, ``"11–20"`` and ``"21"``. Values outside the edges become NaN.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges must be at least two increasing numbers, got {list(edges)}")
    values = np.asarray(values, dtype=np.float64)
    integral = bool(np.all(np.mod(values, 1) == 0) and np.all(np.mod(edges, 1) == 0))
    labels = []
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        start = lo if k == 0 or not integral else lo + 1
        labels.append(_edge_text(hi) if start == hi else f"{_edge_text(start)}–{_edge_text(hi)}")
    codes = pd.cut(values, edges, right=True, include_lowest=True, labels=False)
    codes = np.where(np.isnan(codes), -1, codes).astype(np.int64)
    return pd.Categorical.from_codes(codes, categories=labels, ordered=True)


def add_slices(frame: pd.DataFrame, spec: SliceSpec | None = None) -> pd.DataFrame:
    """A copy of the frame with ``length_bucket`` and ``overlap_bucket`` columns."""
    spec = spec or SliceSpec()
    lengths = frame[spec.length_column].to_numpy()
    edges = spec.length_edges
    if edges is None:
        edges = quantile_edges(lengths, spec.length_quantiles) if len(lengths) else (0, 1)
        if len(edges) < 2:  # every pair has the same length
            edges = (edges[0] - 1, edges[0])
    out = frame.copy()
    out["length_bucket"] = bucket(lengths, edges)
    out["overlap_bucket"] = bucket(frame["overlap"].to_numpy(), spec.overlap_edges)
    return out


def slice_accuracy(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Count and accuracy per value of ``column``; empty buckets of a categorical are kept."""
    grouped = frame.groupby(column, observed=False, sort=True)["correct"]
    table = pd.DataFrame({"count": grouped.size(), "accuracy": grouped.mean()})
    table["count"] = table["count"].astype(np.int64)
    return table


SLICES: dict[str, str] = {
    "length_bucket": "packed length",
    "overlap_bucket": "word overlap",
    "negation": "negation in hypothesis",
    "truncated": "truncated",
}


def all_slices(frame: pd.DataFrame, spec: SliceSpec | None = None) -> pd.DataFrame:
    """Every slice in one long table: ``slice``, ``bucket``, ``count``, ``accuracy``.

    Booleans read ``yes`` / ``no``; the buckets of each slice together hold every pair.
    """
    sliced = frame if {"length_bucket", "overlap_bucket"} <= set(frame) else add_slices(frame, spec)
    parts = []
    for column, title in SLICES.items():
        values = sliced[column]
        if values.dtype == bool:  # both answers shown, even when one holds no pair
            values = pd.Categorical(np.where(values, "yes", "no"), categories=["no", "yes"])
        table = slice_accuracy(sliced.assign(**{column: values}), column)
        table = table.reset_index(names="bucket")
        table["bucket"] = table["bucket"].astype(str)
        table.insert(0, "slice", title)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


# -- hypothesis-only baseline -------------------------------------------------------------------
@dataclass(frozen=True)
class BaselineConfig:
    """The bag-of-words model: ``vectorizer`` 'tfidf' or 'count', word n-grams, and the
    inverse regularisation strength ``C`` of the logistic regression."""

    vectorizer: str = "tfidf"
    ngram_range: tuple[int, int] = (1, 2)
    min_df: int = 1
    C: float = 1.0
    max_iter: int = 1000


@dataclass
class HypothesisBaseline:
    """A fitted hypothesis-only classifier: it never sees the premise, so everything it gets
    right comes from annotation artifacts in the hypotheses."""

    pipeline: Pipeline
    config: BaselineConfig = field(default_factory=BaselineConfig)

    def predict(self, hypotheses: Sequence[str]) -> np.ndarray:
        return self.pipeline.predict(list(hypotheses))

    def predict_proba(self, hypotheses: Sequence[str]) -> np.ndarray:
        """Class probabilities ``(n, 3)`` in label order (usable as ``predictions_frame`` probs)."""
        return self.pipeline.predict_proba(list(hypotheses))

    def accuracy(self, hypotheses: Sequence[str], labels: Sequence[int]) -> float:
        return float(accuracy_score(labels, self.predict(hypotheses)))

    def hard_mask(self, hypotheses: Sequence[str], labels: Sequence[int]) -> np.ndarray:
        """True for the 'hard' pairs: those the baseline gets wrong (Gururangan et al., 2018)."""
        return self.predict(hypotheses) != np.asarray(labels)

    def top_words(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` n-grams with the largest weight for each class: the artifacts it learned."""
        vocab = self.pipeline.named_steps["vectorizer"].get_feature_names_out()
        coef = self.pipeline.named_steps["classifier"].coef_
        return pd.DataFrame(
            {name: vocab[np.argsort(-coef[c])[:k]] for c, name in enumerate(LABEL_NAMES)}
        )


def baseline_pipeline(config: BaselineConfig | None = None) -> Pipeline:
    """The unfitted bag-of-words pipeline (vectorizer, logistic regression) of ``config``."""
    config = config or BaselineConfig()
    if config.vectorizer not in ("tfidf", "count"):
        raise ValueError(f"vectorizer must be 'tfidf' or 'count', not {config.vectorizer!r}")
    vectorizer_class = TfidfVectorizer if config.vectorizer == "tfidf" else CountVectorizer
    return Pipeline([
        ("vectorizer", vectorizer_class(ngram_range=config.ngram_range, min_df=config.min_df)),
        ("classifier", LogisticRegression(C=config.C, max_iter=config.max_iter)),
    ])


def fit_hypothesis_baseline(
    hypotheses: Sequence[str], labels: Sequence[int], config: BaselineConfig | None = None
) -> HypothesisBaseline:
    """Fit a bag-of-words logistic regression on hypotheses alone (train split)."""
    config = config or BaselineConfig()
    pipeline = baseline_pipeline(config)
    # The solver makes many tiny BLAS calls, too small to share among threads: more BLAS threads
    # only add synchronisation, which on a busy machine makes the fit many times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        pipeline.fit(list(hypotheses), np.asarray(labels))
    return HypothesisBaseline(pipeline, config)


def hypothesis_only_dataset(
    pairs: SNLISplit | Sequence,
    tokenizer: TextTokenizer,
    max_len: int = 128,
    truncation: str = "longest_first",
    *,
    cache: str | bool | None = None,
) -> SNLIBERTDataset:
    """The pairs with every premise emptied (``<cls> <sep> h <sep>``), for fine-tuning a BERT
    that sees only hypotheses with ``fine_tune``; arguments as for ``SNLIBERTDataset``."""
    if isinstance(pairs, SNLISplit):
        _, hypotheses, labels = pairs.triple(tokenizer.text_form)
    else:
        _, hypotheses, labels = pairs
    empty = [""] * len(hypotheses)
    return SNLIBERTDataset(
        (empty, list(hypotheses), list(labels)), tokenizer, max_len, truncation, cache=cache
    )


def easy_hard_accuracy(frame: pd.DataFrame, hard_mask: Sequence[bool] | np.ndarray) -> pd.DataFrame:
    """The main model's count and accuracy on the easy pairs (the hypothesis-only baseline gets
    them right) and on the hard ones (it gets them wrong)."""
    hard = np.asarray(hard_mask, dtype=bool)
    if hard.shape != (len(frame),):
        raise ValueError(f"hard_mask has shape {hard.shape}, the frame {len(frame)} rows")
    subset = pd.Categorical(np.where(hard, "hard", "easy"), categories=["easy", "hard"])
    return slice_accuracy(frame.assign(subset=subset), "subset")


# -- annotation artifacts: how often a word comes with each label -------------------------------
def cue_counts(hypotheses: Sequence[str], labels: Sequence[int], cue: str) -> list[int]:
    """How many hypotheses of each label (``LABEL_NAMES`` order) hold the word ``cue``: the
    statistic behind an annotation artifact. Each hypothesis counts once, and words are those
    :func:`words` finds, so *Nobody,* holds *nobody* but *catfish* does not hold *cat*."""
    counts = [0] * len(LABEL_NAMES)
    cue = cue.lower()
    for text, label in zip(hypotheses, labels):
        if cue in words(text):
            counts[int(label)] += 1
    return counts


def cue_table(hypotheses: Sequence[str], labels: Sequence[int], cues: dict[str, str],
              count: Callable[..., Sequence[int]] = cue_counts) -> pd.DataFrame:
    """For each ``cue`` (word: the class it is said to signal), how many hypotheses hold it,
    how often those are of that class against the other hypotheses, with Fisher's test and a
    verdict (``comparison.compare_groups``). ``count`` is :func:`cue_counts` or a student's."""
    from bertnli_helpers.study.comparison import compare_groups

    labels = [int(label) for label in labels]
    totals = [labels.count(c) for c in range(len(LABEL_NAMES))]
    rows = []
    for cue, label_name in cues.items():
        counts = [int(n) for n in count(list(hypotheses), list(labels), cue)]
        c, held = LABEL_NAMES.index(label_name), sum(counts)
        rest, rest_of_class = len(labels) - held, totals[c] - counts[c]
        row = {"cue": cue, "class": label_name, "hypotheses": held,
               "share of the class": counts[c] / held if held else float("nan"),
               "share in the rest": rest_of_class / rest if rest else float("nan"),
               "fisher p": float("nan"), "verdict": "absent"}
        if held and rest:
            versus = compare_groups([True] * counts[c] + [False] * (held - counts[c]),
                                    [True] * rest_of_class + [False] * (rest - rest_of_class))
            verdict = {"better": "more often", "worse": "less often"}.get(versus.verdict,
                                                                           versus.verdict)
            row.update({"fisher p": versus.p_value, "verdict": verdict})
        rows.append(row)
    return pd.DataFrame(rows).set_index("cue")


# -- attention ----------------------------------------------------------------------------------
def attention_for_pair(
    model: nn.Module, dataset: SNLIBERTDataset, i: int
) -> tuple[list[str], np.ndarray]:
    """Tokens of pair ``i`` and its attention maps ``(layers, heads, seq, seq)``: row ``q`` of a
    map is how query token ``q`` spreads its attention over the tokens (it sums to 1)."""
    if not 0 <= i < len(dataset):
        raise IndexError(f"pair {i} is not in a dataset of {len(dataset)} pairs")
    device = next(model.parameters()).device
    (tokens, segments, valid), _ = dataset.batch([i])
    with evaluating(model):  # no embedding dropout in the maps
        maps = model.encoder.attention_maps(
            tokens.to(device), segments.to(device), valid.to(device)
        )
    return dataset.tokens_of(i), maps[:, 0].float().cpu().numpy()


def cross_attention_share(maps: np.ndarray, segments: Sequence[int] | np.ndarray) -> np.ndarray:
    """``(layers, heads)``: the share of all attention of one pair that crosses between the
    premise side (segment 0: ``<cls>``, premise, first ``<sep>``) and the hypothesis side
    (segment 1), in either direction. Each query's row sums to 1, so the share is in [0, 1]."""
    segments = np.asarray(segments)
    if maps.shape[-1] != len(segments):
        raise ValueError(f"maps cover {maps.shape[-1]} tokens, segments {len(segments)}")
    first, second = segments == 0, segments == 1
    crossing = (maps[..., first, :][..., second].sum(axis=(-1, -2))
                + maps[..., second, :][..., first].sum(axis=(-1, -2)))
    return crossing / len(segments)


def uniform_cross_share(segments: Sequence[int] | np.ndarray) -> float:
    """The crossing share of a head that attends to every token alike: ``2 n0 n1 / n^2``. It is
    what "crosses a lot" must be measured against: about 0.5 when the sides are of equal size."""
    segments = np.asarray(segments)
    n0, n1 = int((segments == 0).sum()), int((segments == 1).sum())
    return 2 * n0 * n1 / len(segments) ** 2


def heads_against_uniform(
    model: nn.Module, dataset: SNLIBERTDataset, indices: Sequence[int], confidence: float = 0.95
) -> pd.DataFrame:
    """Every head's crossing share over the pairs ``indices``, against uniform attention on the
    same pairs: the mean excess, its interval (Bonferroni-corrected over the heads, so that a
    head is not called 'more' by the luck of testing many) and a verdict."""
    from scipy import stats

    excess = []
    for i in indices:
        _, maps = attention_for_pair(model, dataset, int(i))
        segments = np.asarray(dataset.segments_of(int(i)))
        excess.append(cross_attention_share(maps, segments) - uniform_cross_share(segments))
    excess = np.stack(excess)  # (pairs, layers, heads)
    layers, heads = excess.shape[1:]
    mean = excess.mean(0)
    spread = (excess.std(0, ddof=1) / np.sqrt(len(excess)) if len(excess) > 1
              else np.full_like(mean, np.inf))  # one pair: no interval
    z = stats.norm.ppf(1 - (1 - confidence) / 2 / (layers * heads))
    low, high = mean - z * spread, mean + z * spread
    verdict = np.where(low > 0, "more than uniform",
                       np.where(high < 0, "less than uniform", "within noise"))
    index = pd.MultiIndex.from_product([range(layers), range(heads)], names=["layer", "head"])
    return pd.DataFrame({"excess": mean.ravel(), "low": low.ravel(), "high": high.ravel(),
                         "verdict": verdict.ravel()}, index=index).assign(pairs=len(excess))
