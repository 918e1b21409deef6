"""Scoring a fine-tuned run on any labelled NLI file: what kinds of pairs break the model.

:func:`score_file` runs a classifier over the pairs of an :class:`~.nli_files.NLIFile` and
returns a :class:`FileReport`: one row per pair (the columns of ``analysis.predictions_frame``,
the file's line and its extra fields), the accuracy in the file's label space, the two-class
view of a three-class model (contradiction and neutral read as non-entailment, as McCoy et al.,
2019, score models on HANS), accuracy per value of any field (``genre``, ``heuristic``, your
own), the confusion of gold labels against the model's three classes, and the most confident
failures. :func:`evaluate_file` does the same for a run folder; ``bertnli evaluate --file`` calls
it and writes the report to its own file, never into the run's ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.nli_files import NLIFile, read_nli_file, two_class_names
from bertnli_helpers.data.snli import LABEL_NAMES
from bertnli_helpers.data.tokenization import TextTokenizer
from bertnli_helpers.errors import SettingError
from bertnli_helpers.files import atomic_write_json, atomic_write_text
from bertnli_helpers.model.inference import predict
from bertnli_helpers.study.analysis import (
    add_slices,
    expected_calibration_error,
    predictions_frame,
    slice_accuracy,
)

__all__ = [
    "COMPUTED_COLUMNS", "PREDICTION_FORMATS", "FileReport", "check_by", "evaluate_file",
    "report_paths", "score_file", "write_report",
]

MISSING = "(missing)"
# Columns every report has, besides the file's own fields, that a breakdown can use.
COMPUTED_COLUMNS = ("gold_name", "predicted_name", "negation", "truncated", "length_bucket",
                    "overlap_bucket")


@dataclass
class FileReport:
    """A classifier's predictions on one labelled file, and what they say."""

    path: Path
    label_space: str  # "three" or "two": the file's labels
    frame: pd.DataFrame  # one row per pair; ``correct`` is judged in the file's label space
    dropped: int  # pairs of the file without a gold label
    precision: str | None = None  # the arithmetic that scored the pairs (fp32, bf16, fp16)

    @property
    def label_names(self) -> tuple[str, ...]:
        return LABEL_NAMES if self.label_space == "three" else ("entailment", "non-entailment")

    def summary(self) -> dict[str, Any]:
        """Pairs, accuracy (in the file's label space) and the two-class accuracy; for a
        three-class file also the mean cross-entropy and the calibration error (ECE)."""
        frame = self.frame
        out: dict[str, Any] = {
            "file": str(self.path), "label_space": self.label_space, "n": len(frame),
            "dropped": self.dropped, "accuracy": float(frame["correct"].mean()),
            "accuracy_two_class": float(frame["correct_two_class"].mean()),
            **self.majority(), "precision": self.precision,
        }
        if self.label_space == "three":
            gold_p = frame[[f"p_{n}" for n in LABEL_NAMES]].to_numpy()[
                np.arange(len(frame)), frame["gold"].to_numpy()]
            out["loss"] = float(-np.log(np.clip(gold_p, 1e-12, None)).mean())
            out["ece"] = expected_calibration_error(frame["confidence"], frame["correct"])
        return out

    def majority(self) -> dict[str, Any]:
        """The most common gold label and its share: the accuracy of a model that always says
        it, the floor an accuracy must clear; a file of one label gets a note saying so."""
        counts = self.frame["gold_name"].value_counts()
        out: dict[str, Any] = {"majority_label": str(counts.index[0]),
                               "majority_rate": float(counts.iloc[0] / counts.sum())}
        if len(counts) == 1:
            out["note"] = (f"every pair of the file is {counts.index[0]}: the accuracy is how "
                           "often the model says that label, not whether it tells the classes "
                           "apart")
        return out

    def by(self, column: str) -> pd.DataFrame:
        """Count and accuracy per value of ``column`` (and the two-class accuracy for a
        three-class file); a pair without the field counts under ``(missing)``."""
        check_by(self.path, self.frame.attrs.get("fields", []), [column])
        values = self.frame[column]
        if values.dtype == object:  # lists and dicts cannot be grouped; None is missing
            values = values.map(lambda v: MISSING if v is None or v != v else
                                v if isinstance(v, str | int | float | bool) else json.dumps(v))
        frame = self.frame.assign(**{column: values})
        table = slice_accuracy(frame, column)
        if self.label_space == "three":
            table["accuracy_two_class"] = frame.groupby(column, observed=False, sort=True)[
                "correct_two_class"].mean()
        return table

    def confusion(self) -> pd.DataFrame:
        """Gold labels of the file (rows) against the model's three classes (columns): for a
        two-class file, where its non-entailment pairs went."""
        gold = pd.Categorical(self.frame["gold_name"], categories=self.label_names)
        predicted = pd.Categorical(self.frame["predicted_name"], categories=LABEL_NAMES)
        return pd.crosstab(pd.Series(gold, name="gold"), pd.Series(predicted, name="predicted"),
                           dropna=False)

    def failures(self, k: int = 5, **where: Any) -> pd.DataFrame:
        """The ``k`` most confident errors (optionally only where ``column=value``)."""
        frame = self.frame[~self.frame["correct"]]
        for column, value in where.items():
            frame = frame[frame[column] == value]
        shown = ["line", "premise", "hypothesis", "gold_name", "predicted_name", "confidence"]
        return frame.sort_values("confidence", ascending=False)[shown].head(k)

    def to_dict(self, by: Sequence[str] = ()) -> dict[str, Any]:
        """The summary, the confusion and the ``by`` tables, for JSON."""
        confusion = self.confusion()
        out = {**self.summary(), "confusion": {g: {p: int(confusion.loc[g, p])
                                                   for p in confusion.columns}
                                               for g in confusion.index}}
        out["by"] = {column: [{"value": _plain(value), **{k: _plain(v) for k, v in row.items()}}
                              for value, row in self.by(column).iterrows()] for column in by}
        return out

    def write_predictions(self, path: str | os.PathLike[str]) -> Path:
        """One line per pair (line, texts, gold, predicted, probabilities, fields); the format
        follows the suffix: ``.jsonl``, ``.tsv`` or ``.csv``."""
        path = _predictions_path(path)
        keep = ["line", "premise", "hypothesis", "gold_name", "predicted_name",
                *[f"p_{n}" for n in LABEL_NAMES], "confidence", "correct",
                "predicted_two_class", "correct_two_class", *self.frame.attrs.get("fields", [])]
        return atomic_write_text(path, PREDICTION_FORMATS[path.suffix](self.frame[keep]))


PREDICTION_FORMATS: dict[str, Callable[[pd.DataFrame], str]] = {
    ".jsonl": lambda frame: frame.to_json(orient="records", lines=True, force_ascii=False),
    ".tsv": lambda frame: frame.to_csv(sep="\t", index=False),
    ".csv": lambda frame: frame.to_csv(index=False),
}


def _predictions_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.suffix not in PREDICTION_FORMATS:
        raise SettingError(f"predictions file {path}: name it {', '.join(PREDICTION_FORMATS)}")
    return path


def _plain(value: Any) -> Any:
    """A JSON-ready number or text (numpy scalars made Python's, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def check_by(path: Path, fields: Sequence[str], by: Sequence[str]) -> None:
    """Fail early, naming the choices, when a breakdown asks for a field the file lacks."""
    known = [*fields, *COMPUTED_COLUMNS]
    for column in by:
        if column not in known:
            raise SettingError(f"{path} has no field {column!r}; break down by one of "
                             f"{', '.join(known)}")


def score_file(
    model: nn.Module, tokenizer: TextTokenizer, pairs: NLIFile, *, max_len: int = 128,
    truncation: str = "longest_first", batch_size: int = 256, device: Any = None,
    precision: str = "auto",
) -> FileReport:
    """Run ``model`` over the file's pairs, encoded as in training, in ``precision`` (recorded in
    the report as it resolves on the model's device), and build the report."""
    from bertnli_helpers.devices import resolve_device
    from bertnli_helpers.model.inference import model_device
    from bertnli_helpers.model.precision import resolve_precision

    used = resolve_precision(precision, resolve_device(device) if device else model_device(model))
    dataset = SNLIBERTDataset(pairs.triple(tokenizer), tokenizer, max_len, truncation)
    probs = predict(model, dataset, batch_size=batch_size, device=device, precision=precision)
    frame = predictions_frame(None, dataset, probs=probs)
    gold = pairs.gold_names()
    frame.insert(0, "line", [p.line for p in pairs.pairs])
    frame["gold_name"] = gold
    frame["gold"] = [pairs.label_names.index(name) for name in gold]
    frame["predicted_two_class"] = two_class_names(frame["predicted_name"])
    frame["correct_two_class"] = frame["predicted_two_class"] == two_class_names(gold)
    if pairs.label_space == "two":
        frame["correct"] = frame["correct_two_class"]
    fields = []
    for name in pairs.field_names:  # a field named like a computed column keeps both
        column = name if name not in frame else f"field_{name}"
        frame[column] = [p.fields.get(name) for p in pairs.pairs]
        fields.append(column)
    frame = add_slices(frame)
    frame.attrs["fields"] = fields
    return FileReport(pairs.path, pairs.label_space, frame, pairs.dropped, used)


def evaluate_file(
    run: str | os.PathLike[str], path: str | os.PathLike[str], *, label_ids: str | None = None,
    size: int | None = None, seed: int = 0, device: Any = None, by: Sequence[str] = (),
    precision: str = "auto",
) -> FileReport:
    """Score a fine-tuned run folder on a labelled NLI file (``size``: a random sample of its
    pairs; ``by``: fields checked before any work): the Python side of ``bertnli evaluate --run
    RUN --file PATH``."""
    from bertnli_helpers.train.runs import load_finetuned

    pairs = read_nli_file(path, label_ids=label_ids).sample(size, seed)
    check_by(pairs.path, pairs.field_names, by)
    net, tokenizer, info = load_finetuned(run, device=device)
    return score_file(net, tokenizer, pairs, max_len=info.max_len, truncation=info.truncation,
                      precision=precision)


def report_paths(run: str | os.PathLike[str], path: str | os.PathLike[str],
                 out: str | os.PathLike[str] | None = None,
                 predictions: str | os.PathLike[str] | None = None, *,
                 size: int | None = None, seed: int = 0) -> tuple[Path, Path]:
    """Where a file's report and predictions go: ``--out`` / ``--predictions``, else
    ``eval-<file name>-<digest>.json`` and ``<that>-predictions.jsonl`` in the run folder, the
    digest of the file's full path and the sample (``size``, ``seed``), so that two files of one
    name, or two samples of one file, never share a report. A path that is the input file, one
    of a run's own files or a folder is refused (:func:`check_report_paths`)."""
    report = Path(out) if out is not None else Path(run) / default_report_name(path, size, seed)
    preds = (_predictions_path(predictions) if predictions is not None
             else report.with_name(f"{report.stem}-predictions.jsonl"))
    check_report_paths(report, preds, Path(path))
    return report, preds


def default_report_name(path: str | os.PathLike[str], size: int | None, seed: int) -> str:
    """``eval-<file name>-<digest>.json``: readable, and apart for each file and sample."""
    name = re.sub(r"(\.(jsonl|txt|tsv))?(\.gz)?$", "", Path(path).name)
    source = f"{Path(path).resolve()}" + ("" if size is None else f"\x1f{size}\x1f{seed}")
    return f"eval-{name}-{hashlib.sha1(source.encode()).hexdigest()[:8]}.json"


def check_report_paths(report: Path, predictions: Path, source: Path) -> None:
    """Refuse, before any work, a report or predictions path that would replace the input file,
    a run's own files (``run.json``, ``metrics.json``, weights, ...), a folder, or each other."""
    from bertnli_helpers.train.runs import is_run_file

    for flag, target in (("--out", report), ("--predictions", predictions)):
        if target.is_dir():
            raise SettingError(f"{flag} {target} is a folder: name a file for the report")
        if _same_file(target, source):
            raise SettingError(f"{flag} {target} is the input file: name another file, or the "
                               "input would be replaced by the report")
        if is_run_file(target):
            raise SettingError(f"{flag} {target} is one of the run's own files: name another "
                               "file, or the run would lose it")
    if _same_file(report, predictions):
        raise SettingError(f"--out and --predictions are the same file ({report}): name two")


def _same_file(a: Path, b: Path) -> bool:
    """One file under two names (a link, ``..``, a relative path), or the same new name."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def write_report(report: FileReport, json_path: Path, predictions_path: Path,
                 by: Sequence[str] = ()) -> dict[str, Any]:
    """Write the report's JSON and its predictions file (both atomically); return the JSON."""
    content = {**report.to_dict(by), "predictions_file": str(predictions_path)}
    report.write_predictions(predictions_path)
    atomic_write_json(json_path, content)
    return content
