"""Linear probes: how much of the label can a linear classifier read off frozen features?

Cosine similarity between pair vectors says how alike they are, not whether they hold what a
classifier needs. A linear probe answers that question: encode pairs with the frozen encoder,
read one vector per pair (the pooled ``<cls>``, or one of the classifier's pooling heads), fit a
logistic regression on train pairs and score it on dev pairs. Which dev pairs each probe gets
right is what :func:`bertnli_helpers.comparison.compare` and ``learning_check`` take, so the
probes are compared with their noise like every other comparison in the course.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .data import SNLIBERTDataset
from .inference import evaluating, length_sorted_batches, model_device, to_device
from .model import POOLING_HEADS, PretrainedBERT, pooling_head

POOLED_CLS = "pooled <cls>"
"""The pretrained pooler on the ``<cls>`` state: what the book's classifier reads."""


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
    return ProbeResult(kind, correct, train_accuracy, int(train_features.shape[1]))


def probe_all(bert: PretrainedBERT, train: SNLIBERTDataset, scored: SNLIBERTDataset,
              kinds: Sequence[str] | None = None, *, c: float = 1.0, seed: int = 0
              ) -> dict[str, ProbeResult]:
    """A linear probe per feature kind, trained on ``train`` and scored on ``scored``."""
    train_x = frozen_features(bert, train, kinds)
    scored_x = frozen_features(bert, scored, kinds)
    return {kind: linear_probe(train_x[kind], train.encoded.labels, scored_x[kind],
                               scored.encoded.labels, kind=kind, c=c, seed=seed)
            for kind in train_x}
