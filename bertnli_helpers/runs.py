"""A fine-tuning run's folder: what model and encoding it used, so it can be loaded again.

``run.json`` records the pretrained model, the encoding (``max_len``, truncation) and the
classifier settings; with ``best_model.pt`` beside it, ``load_finetuned(folder)`` rebuilds the
fine-tuned classifier and its tokenizer. Notebook 5 analyses what notebook 4 trained this way,
and ``bertnli evaluate`` / ``predict`` use the same function.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import SNLIBERTDataset
from .devices import resolve_device
from .model import BERTClassifier, BertConfig
from .pretrained import load_pretrained
from .snli import SNLISplit
from .tokenization import TextTokenizer
from .train import (
    BEST_WEIGHTS_FILE,
    HISTORY_FILE,
    Callback,
    CheckpointError,
    TrainConfig,
    _atomic_write_text,
    evaluate,
    fine_tune,
    load_best_weights,
)

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"


@dataclass
class RunInfo:
    """How to rebuild a run's classifier: model name and encoding settings."""

    model: str
    max_len: int = 128
    truncation: str = "longest_first"
    freeze_encoder: bool = False
    pooling: str = "cls"  # what the MLP classifies: "cls" (the book) or "mean" of the tokens
    model_config: dict[str, Any] | None = None  # for "scratch" models
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / RUN_FILE
        _atomic_write_text(json.dumps(dataclasses.asdict(self), indent=2), path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> RunInfo:
        path = Path(folder) / RUN_FILE
        if not path.exists():
            raise CheckpointError(
                f"{folder} is not a fine-tuning run folder (no {RUN_FILE}); "
                "pass the --output folder of 'bertnli finetune' or of notebook 4"
            )
        return cls(**json.loads(path.read_text()))


def is_finished_run(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / RUN_FILE).exists() and (folder / BEST_WEIGHTS_FILE).exists()


def build_classifier(
    info: RunInfo, device: str | torch.device | None = "cpu"
) -> tuple[BERTClassifier, TextTokenizer]:
    """The untrained classifier a run started from (pretrained encoder, new output layer)."""
    config = BertConfig(**info.model_config) if info.model == "scratch" and info.model_config \
        else None
    bert, tokenizer = load_pretrained(info.model, config=config, device="cpu")
    net = BERTClassifier(bert, freeze_encoder=info.freeze_encoder, pooling=info.pooling)
    return net.to(resolve_device(device)), tokenizer


def load_finetuned(
    folder: str | Path, device: str | torch.device | None = "cpu"
) -> tuple[BERTClassifier, TextTokenizer, RunInfo]:
    """The best-on-dev classifier of a finished run, in eval mode, with its tokenizer."""
    info = RunInfo.load(folder)
    net, tokenizer = build_classifier(info, "cpu")
    load_best_weights(net, folder)
    return net.to(resolve_device(device)).eval(), tokenizer, info


def write_metrics(folder: str | Path, metrics: dict[str, Any]) -> Path:
    path = Path(folder) / METRICS_FILE
    existing = json.loads(path.read_text()) if path.exists() else {}
    existing.update(metrics)
    _atomic_write_text(json.dumps(existing, indent=2), path)
    return path


@dataclass
class RunOutcome:
    """A finished run: the best-on-dev classifier, its tokenizer, metrics and history."""

    net: BERTClassifier
    tokenizer: TextTokenizer
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    reused: bool


def finetune_run(
    folder: str | Path,
    info: RunInfo,
    train: SNLISplit,
    dev: SNLISplit,
    test: SNLISplit | None,
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    reuse: bool = True,
) -> RunOutcome:
    """Fine-tune ``info.model`` into ``folder`` and evaluate it on test; with ``reuse``, a run
    already finished there is loaded instead of trained again (how notebooks share runs)."""
    folder = Path(folder)
    if reuse and is_finished_run(folder) and (folder / METRICS_FILE).exists():
        net, tokenizer, _ = load_finetuned(folder, device=config.device if config.device != "auto"
                                           else None)
        history = json.loads((folder / HISTORY_FILE).read_text())
        return RunOutcome(net, tokenizer, json.loads((folder / METRICS_FILE).read_text()),
                          history, reused=True)
    config_model = None
    if info.model == "scratch" and info.model_config:
        config_model = BertConfig(**info.model_config)
    bert, tokenizer = load_pretrained(info.model, config=config_model, device="cpu",
                                      seed=config.seed)
    torch.manual_seed(config.seed)  # the new output layer starts the same in every run
    net = BERTClassifier(bert, freeze_encoder=info.freeze_encoder, pooling=info.pooling)
    if info.model == "scratch":
        info.model_config = bert.config.to_dict()
    encode = {"max_len": info.max_len, "truncation": info.truncation}
    train_set = SNLIBERTDataset(train, tokenizer, **encode)
    dev_set = SNLIBERTDataset(dev, tokenizer, **encode)
    folder.mkdir(parents=True, exist_ok=True)
    result = fine_tune(net, train_set, dev_set, config, callbacks=callbacks, output_dir=folder,
                       resume_from=folder if resume else None)
    metrics: dict[str, Any] = {
        "model": info.model,
        "best_epoch": result.best_epoch + 1,
        "dev_accuracy": result.best_dev_accuracy,
        "train_pairs": len(train_set),
        "train_seconds": result.train_seconds,
        "examples_per_s": _mean([r["examples_per_s"] for r in result.history
                                 if "examples_per_s" in r]),
    }
    if test is not None:
        test_metrics = evaluate(net, SNLIBERTDataset(test, tokenizer, **encode))
        metrics.update(test_accuracy=test_metrics["accuracy"], test_loss=test_metrics["loss"])
    info.save(folder)
    write_metrics(folder, metrics)
    return RunOutcome(net.eval(), tokenizer, metrics, result.history, reused=False)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
