"""bertnli_helpers: the implementation behind the bertnli course (fine-tuning BERT on SNLI)."""

from __future__ import annotations

__version__ = "0.1.0"

from .data import SNLIBERTDataset
from .inference import evaluate, predict
from .model import BERTClassifier, BertConfig
from .pretrained import load_pretrained, load_pretrained_model
from .snli import read_records, read_snli
from .train import TrainConfig, fine_tune, preset

__all__ = [
    "BERTClassifier",
    "BertConfig",
    "SNLIBERTDataset",
    "TrainConfig",
    "__version__",
    "evaluate",
    "fine_tune",
    "load_pretrained",
    "load_pretrained_model",
    "predict",
    "preset",
    "read_records",
    "read_snli",
]
