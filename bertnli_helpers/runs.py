"""A fine-tuning run's folder: what model and encoding it used, so it can be loaded again.

``run.json`` records the pretrained model, the encoding (``max_len``, truncation) and the
classifier settings; with ``best_model.pt`` beside it, ``load_finetuned(folder)`` rebuilds the
fine-tuned classifier and its tokenizer. Notebook 5 analyses what notebook 4 trained this way,
and ``bertnli evaluate`` / ``predict`` use the same function.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .devices import resolve_device
from .model import BERTClassifier, BertConfig
from .pretrained import load_pretrained
from .tokenization import TextTokenizer
from .train import BEST_WEIGHTS_FILE, CheckpointError, _atomic_write_text, load_best_weights

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"


@dataclass
class RunInfo:
    """How to rebuild a run's classifier: model name and encoding settings."""

    model: str
    max_len: int = 128
    truncation: str = "longest_first"
    freeze_encoder: bool = False
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
    net = BERTClassifier(bert, freeze_encoder=info.freeze_encoder)
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
