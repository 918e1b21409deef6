"""Debiasing against the hypothesis-only model, measured: the same runs with and without it.

The **bias expert** is the bag-of-words hypothesis-only model of ``analysis`` (it never reads the
premise, so what it gets right comes from annotation artifacts). It is built from the train
pairs only, in two ways:

* for **training** the debiased model, each train pair needs the expert's probabilities. An
  expert fitted on all of train and asked about those same pairs would mostly recite their
  labels (it has memorised them), and a product of experts would then find almost nothing left
  to learn. So the probabilities are **cross-fitted**: train is cut into ``folds`` parts and
  each part is scored by an expert fitted on the other parts (out-of-fold predictions);
* the **hard subset** of test (pairs the hypothesis-only model gets wrong, Gururangan et al.,
  2018) comes from an expert fitted on all of train, as in notebook 5.

:func:`debias_study` fine-tunes the plain model (cross-entropy) and the debiased one (a
debiasing objective of ``objectives.OBJECTIVES``, product of experts by default) with the same
recipe, pairs and seeds, and returns what both do on test, on its hard and easy pairs, and how
well calibrated they are, with paired verdicts (``comparison.compare``,
``analysis.compare_calibration``). The notebook and ``benchmarks/debias.py`` both call it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import LABEL_NAMES, SNLISplit
from bertnli_helpers.errors import SettingError
from bertnli_helpers.model.inference import predict
from bertnli_helpers.study.analysis import (
    BaselineConfig,
    CalibrationComparison,
    baseline_pipeline,
    compare_calibration,
    expected_calibration_error,
    fit_hypothesis_baseline,
)
from bertnli_helpers.study.comparison import Comparison, compare
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.loop import Callback
from bertnli_helpers.train.objectives import OBJECTIVES
from bertnli_helpers.train.runs import RunInfo, finetune_run

__all__ = ["DEFAULT_METHOD", "PLAIN", "DebiasStudy", "bias_expert_probs", "debias_study"]

PLAIN = "plain"
DEFAULT_METHOD = "product_of_experts"
# The hypothesis-only model reads the annotators' sentences (for the book's vocabulary, the
# parse text differs only in spacing, which a bag of words ignores).
TEXT = "raw"


def bias_expert_probs(
    hypotheses: Sequence[str], labels: Sequence[int], *, folds: int = 5, seed: int = 0,
    config: BaselineConfig | None = None,
) -> np.ndarray:
    """The hypothesis-only expert's class probabilities ``(n, 3)`` of each training pair,
    out-of-fold: pair ``i`` is scored by an expert fitted on the folds that do not hold it."""
    labels = np.asarray(labels)
    smallest = np.bincount(labels, minlength=len(LABEL_NAMES)).min()
    if folds < 2 or smallest < folds:
        raise SettingError(f"cross-fitting over {folds} folds needs at least 2 folds and {folds} "
                         f"pairs of every class; the smallest class has {smallest}")
    folding = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=1, user_api="blas"):  # as fit_hypothesis_baseline, for speed
        return cross_val_predict(baseline_pipeline(config), list(hypotheses), labels,
                                 cv=folding, method="predict_proba")


@dataclass
class DebiasStudy:
    """Test predictions of the plain and the debiased model, seed by seed, and what they say."""

    method: str
    seeds: tuple[int, ...]
    labels: np.ndarray  # gold labels of the test pairs
    hard: np.ndarray  # True where the hypothesis-only expert (fitted on train) is wrong
    probs: dict[str, np.ndarray]  # PLAIN / method -> (seeds, pairs, classes)
    expert: dict[str, float] = field(default_factory=dict)  # the bias expert's own accuracies
    folders: dict[str, list[str]] = field(default_factory=dict)

    def correct(self, name: str) -> np.ndarray:
        """``(seeds, pairs)``: which test pairs model ``name`` got right with each seed."""
        return self.probs[name].argmax(-1) == self.labels

    def comparisons(self) -> dict[str, Comparison]:
        """Debiased against plain on all test pairs, the hard ones and the easy ones (a subset
        without pairs, possible on a tiny sample, is left out)."""
        plain, debiased = self.correct(PLAIN), self.correct(self.method)
        subsets = {"test": np.ones_like(self.hard), "hard": self.hard, "easy": ~self.hard}
        return {name: compare(debiased[:, keep], plain[:, keep], f"{self.method} ({name})",
                              f"plain ({name})") for name, keep in subsets.items() if keep.any()}

    def calibration(self) -> CalibrationComparison:
        """Debiased against plain: ECE on the test pairs, with its paired interval."""
        confidence = {name: p.max(-1) for name, p in self.probs.items()}
        return compare_calibration(confidence[self.method], self.correct(self.method),
                                   confidence[PLAIN], self.correct(PLAIN),
                                   f"{self.method}", "plain")

    def table(self) -> pd.DataFrame:
        """One row per model and seed: accuracy on test, hard and easy pairs, and ECE."""
        rows = []
        for name in (PLAIN, self.method):
            correct = self.correct(name)
            for k, seed in enumerate(self.seeds):
                rows.append({"model": name, "seed": seed,
                             "test_accuracy": correct[k].mean(),
                             "hard_accuracy": correct[k, self.hard].mean(),
                             "easy_accuracy": correct[k, ~self.hard].mean(),
                             "ece": expected_calibration_error(self.probs[name][k].max(-1),
                                                               correct[k])})
        return pd.DataFrame(rows).set_index(["model", "seed"])

    def to_dict(self) -> dict[str, Any]:
        """Everything the benchmark writes to JSON."""
        calibration = self.calibration()
        return {
            "method": self.method, "seeds": list(self.seeds), "test_pairs": len(self.labels),
            "hard_pairs": int(self.hard.sum()), "bias_expert": self.expert,
            "rows": self.table().reset_index().to_dict(orient="records"),
            "comparisons": {name: {**c.row(), "sentence": c.sentence()}
                            for name, c in self.comparisons().items()},
            "calibration": {"ece_a": calibration.ece_a, "ece_b": calibration.ece_b,
                            "difference": calibration.difference, "low": calibration.low,
                            "high": calibration.high, "verdict": calibration.verdict,
                            "sentence": calibration.sentence()},
            "folders": self.folders,
        }


def debias_study(
    folder: str | Path, info: RunInfo, train: SNLISplit, dev: SNLISplit, test: SNLISplit,
    config: TrainConfig, *, seeds: Sequence[int] = (0,), method: str = DEFAULT_METHOD,
    folds: int = 5, plain_folders: Mapping[int, str | Path] | None = None,
    callbacks: Callable[[str, int], Sequence[Callback]] | None = None,
    baseline: BaselineConfig | None = None,
) -> DebiasStudy:
    """Fine-tune plain and debiased models on the same pairs, one of each per seed (runs in
    ``folder``, re-used when finished), and score both on ``test``.

    ``config`` is the plain recipe; the debiased run differs only in its ``objective``.
    ``plain_folders`` maps a seed to an existing plain run made with this very recipe and
    pairs (notebook 5 passes notebook 4's main run), re-used instead of trained again.
    ``callbacks(name, seed)`` gives each run's callbacks (a progress bar).
    """
    if method not in OBJECTIVES or not OBJECTIVES[method].needs_bias:
        known = ", ".join(k for k, o in OBJECTIVES.items() if o.needs_bias)
        raise SettingError(f"{method!r} is not a debiasing objective; choose one of {known}")
    _, train_h, train_y = train.triple(TEXT)
    _, test_h, test_y = test.triple(TEXT)
    expert = fit_hypothesis_baseline(train_h, train_y, baseline)
    out_of_fold = bias_expert_probs(train_h, train_y, folds=folds, config=baseline)
    study = DebiasStudy(
        method, tuple(seeds), np.asarray(test_y), expert.hard_mask(test_h, test_y), {},
        expert={"test_accuracy": expert.accuracy(test_h, test_y),
                "train_out_of_fold_accuracy": float(np.mean(out_of_fold.argmax(1) == train_y)),
                "train_in_sample_accuracy": expert.accuracy(train_h, train_y), "folds": folds})
    plain_folders = dict(plain_folders or {})
    for name, objective, bias in ((PLAIN, "cross_entropy", None), (method, method, out_of_fold)):
        runs = []
        for seed in seeds:
            where = Path(plain_folders.get(seed, "")) if name == PLAIN and seed in plain_folders \
                else Path(folder) / f"{name}-seed{seed}"
            outcome = finetune_run(where, info, train, dev, test,
                                   config.replace(seed=seed, objective=objective),
                                   callbacks=callbacks(name, seed) if callbacks else (),
                                   keep_checkpoint=False, bias_probs=bias)
            test_set = SNLIBERTDataset(test, outcome.tokenizer, info.max_len, info.truncation)
            runs.append(predict(outcome.net, test_set))
            study.folders.setdefault(name, []).append(str(where))
        study.probs[name] = np.stack(runs)
    return study
