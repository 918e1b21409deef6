"""Linear probes: how much of the label can a linear classifier read off frozen features?

Cosine similarity between pair vectors says how alike they are, not whether they hold what a
classifier needs. A linear probe answers that question: encode pairs with the frozen encoder,
read one vector per pair (the pooled ``<cls>``, or one of the classifier's pooling heads), fit a
logistic regression on train pairs and score it on dev pairs. Which dev pairs each probe gets
right is what :func:`bertnli_helpers.study.comparison.compare` and ``learning_check`` take, so the
probes are compared with their noise like every other comparison in the course.

One rule differs from fine-tuned runs. A run that did not learn may only need more steps, so the
course compares it with nothing; a probe is fitted to convergence, and one that stays at the
majority rate is itself a finding (these features hold little of the label a linear classifier
can read from this many pairs). So two probes scored on the same dev pairs are compared when at
least one of them learned; two probes at chance have nothing to rank (:func:`compare_probes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.model.bert import POOLING_HEADS, PretrainedBERT, pooling_head
from bertnli_helpers.model.inference import (
    evaluating,
    length_sorted_batches,
    model_device,
    to_device,
)
from bertnli_helpers.study.comparison import (
    CONFIDENCE,
    Comparison,
    LearningCheck,
    compare,
    learning_check,
)

POOLED_CLS = "pooled <cls>"
"""The pretrained pooler on the ``<cls>`` state: what the book's classifier reads."""
NOT_COMPARED = "not compared"
PROBE_NOTE = ("The probes are fitted once, on one sample of probe pairs: another sample would "
              "move both, which the interval over the scored pairs does not cover.")
"""The verdict of two probes that both stayed at the majority rate."""


def feature_kinds() -> list[str]:
    """Every kind of feature a probe can read: the pooled ``<cls>`` and each pooling head."""
    return [POOLED_CLS, *POOLING_HEADS]


@torch.inference_mode()
def frozen_features(bert: PretrainedBERT, dataset: SNLIBERTDataset,
                    kinds: Sequence[str] | None = None, *, batch_size: int = 128
                    ) -> dict[str, np.ndarray]:
    """One ``(pairs, width)`` float array per feature kind, in the dataset's order."""
    kinds = list(kinds or feature_kinds())
    unknown = [k for k in kinds if k not in feature_kinds()]
    if unknown:
        raise ValueError(f"unknown feature kinds {unknown}; choose from {feature_kinds()}")
    heads = {k: pooling_head(k, bert.config.hidden_size) for k in kinds if k != POOLED_CLS}
    device = model_device(bert)
    out: dict[str, np.ndarray] = {}
    with evaluating(bert):
        for idx, batch in length_sorted_batches(dataset, batch_size):
            (tokens, segments, valid), _ = to_device(batch, device)
            encoded, pooled = bert(tokens, segments, valid)
            for kind in kinds:
                vectors = pooled if kind == POOLED_CLS else heads[kind](encoded, valid, segments)
                if kind not in out:
                    out[kind] = np.zeros((len(dataset), vectors.shape[1]), dtype=np.float32)
                out[kind][idx] = vectors.float().cpu().numpy()
    return out


@dataclass(frozen=True)
class ProbeResult:
    """A fitted probe's score: which scored pairs it got right, and its accuracies."""

    kind: str
    correct: np.ndarray  # (scored pairs,) booleans
    train_accuracy: float
    width: int
    train_pairs: int

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


def linear_probe(train_features: np.ndarray, train_labels: Sequence[int],
                 scored_features: np.ndarray, scored_labels: Sequence[int], *,
                 kind: str = "features", c: float = 1.0, seed: int = 0) -> ProbeResult:
    """Fit a standardised logistic regression on ``train_features`` and score it.

    Standardising puts features of very different scales (a tanh output, a raw mean) on an
    equal footing; ``c`` is scikit-learn's inverse regularisation strength.
    """
    train_labels, scored_labels = np.asarray(train_labels), np.asarray(scored_labels)
    if len(train_features) != len(train_labels) or len(scored_features) != len(scored_labels):
        raise ValueError("each feature array needs one label per row")
    probe = make_pipeline(StandardScaler(),
                          LogisticRegression(C=c, max_iter=2000, random_state=seed))
    with threadpool_limits(1):  # small problems: threads cost more than they save
        probe.fit(train_features, train_labels)
        train_accuracy = float((probe.predict(train_features) == train_labels).mean())
        correct = probe.predict(scored_features) == scored_labels
    return ProbeResult(kind, correct, train_accuracy, int(train_features.shape[1]),
                       len(train_labels))


def probe_all(bert: PretrainedBERT, train: SNLIBERTDataset, scored: SNLIBERTDataset,
              kinds: Sequence[str] | None = None, *, c: float = 1.0, seed: int = 0
              ) -> dict[str, ProbeResult]:
    """A linear probe per feature kind, trained on ``train`` and scored on ``scored``."""
    train_x = frozen_features(bert, train, kinds)
    scored_x = frozen_features(bert, scored, kinds)
    return {kind: linear_probe(train_x[kind], train.encoded.labels, scored_x[kind],
                               scored.encoded.labels, kind=kind, c=c, seed=seed)
            for kind in train_x}


def overfits(result: ProbeResult) -> bool:
    """Is the train accuracy above the 95% interval of the dev accuracy (memorised pairs)?"""
    hits = int(result.correct.sum())
    interval = stats.binomtest(hits, len(result.correct)).proportion_ci(
        confidence_level=CONFIDENCE, method="exact")
    return result.train_accuracy > interval.high


def probe_sentence(result: ProbeResult, check: LearningCheck, name: str | None = None) -> str:
    """Did the probe learn, and what would tell more: generated from its train and dev scores.

    A probe is fitted to convergence, so "train longer" is never the advice: a probe far better
    on its train pairs than on dev has memorised them (more probe pairs or a smaller ``c``, i.e.
    stronger regularisation, would tell more); one poor on both finds little to read.
    """
    name = name or f"The probe on {result.kind}"
    scores = (f"dev accuracy {check.accuracy:.3f} (95% interval from {check.low:.3f}) "
              f"against the majority-class rate {check.majority_rate:.3f}")
    fit = (f"train accuracy {result.train_accuracy:.3f} on its {result.train_pairs:,} pairs "
           f"with {result.width:,} features")
    if check.learned:
        head = f"{name} learned: {scores}."
        if overfits(result):
            return (f"{head} Its {fit} is well above dev: it memorises some of its pairs, so "
                    "more probe pairs or stronger regularisation could read more of the label.")
        return f"{head} Its {fit} is within dev's interval: it does not memorise its pairs."
    head = f"{name} did not learn measurably: {scores}."
    if overfits(result):
        return (f"{head} Its {fit} is far above dev: it memorises its pairs instead of finding "
                "the label, so training it longer cannot help; more probe pairs or stronger "
                "regularisation (a smaller c) would tell whether these features hold the label.")
    return (f"{head} Its {fit} is low too: a linear classifier finds little of the label in "
            "these features.")


@dataclass(frozen=True)
class ProbeComparison:
    """Probe A against probe B on the same dev pairs, or why they were not compared."""

    name_a: str
    name_b: str
    accuracy_a: float
    accuracy_b: float
    comparison: Comparison | None  # None: neither probe learned

    @property
    def verdict(self) -> str:
        return self.comparison.verdict if self.comparison else NOT_COMPARED

    def row(self) -> dict[str, object]:
        """A table row whose verdict is the sentence's (blank numbers when not compared)."""
        if self.comparison:
            return self.comparison.row()
        return {"A": self.name_a, "B": self.name_b, "accuracy A": round(self.accuracy_a, 4),
                "accuracy B": round(self.accuracy_b, 4), "A - B": None, "95% low": None,
                "95% high": None, "McNemar p": None, "verdict": NOT_COMPARED}

    def sentence(self) -> str:
        if self.comparison:
            return self.comparison.sentence()
        return (f"{self.name_a} against {self.name_b}: not compared, since neither probe is "
                "above the majority-class rate, so there is nothing to rank.")


def compare_probes(a: ProbeResult, b: ProbeResult, labels: Sequence[int],
                   name_a: str | None = None, name_b: str | None = None) -> ProbeComparison:
    """Compare two probes on the same scored pairs when at least one learned (module rule)."""
    name_a, name_b = name_a or a.kind, name_b or b.kind
    learned = [learning_check(r.correct, labels).learned for r in (a, b)]
    comparison = compare(a.correct, b.correct, name_a, name_b) if any(learned) else None
    if comparison is not None:  # a probe is fitted once: no training seed to speak of
        comparison = dataclasses.replace(comparison, one_run_note=PROBE_NOTE)
    return ProbeComparison(name_a, name_b, a.accuracy, b.accuracy, comparison)


def verdict_reading(comparisons: Sequence[ProbeComparison], readings: dict[str, str]) -> str:
    """One sentence from the verdicts: the A-sides grouped by verdict, each group read by its
    template in ``readings`` (``{kinds}`` the group, ``{were}`` its verb), so prose that explains
    a verdict is chosen by it and cannot contradict the table."""
    groups: dict[str, list[str]] = {}
    for c in comparisons:
        groups.setdefault(c.verdict, []).append(f"`{c.name_a}`")
    parts = []
    for verdict, kinds in groups.items():
        listed = " and ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds)
        verb = "were" if len(kinds) > 1 else "was"
        parts.append(readings[verdict].format(kinds=listed, were=verb))
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""
