"""bertnli_helpers: the implementation behind the bertnli course (fine-tuning BERT on SNLI)."""

from __future__ import annotations

__version__ = "0.1.0"

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import read_records, read_snli
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.inference import evaluate, predict
from bertnli_helpers.model.pretrained import load_pretrained, load_pretrained_model
from bertnli_helpers.train.config import TrainConfig, preset
from bertnli_helpers.train.loop import fine_tune

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
