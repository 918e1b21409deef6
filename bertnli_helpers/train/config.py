"""What decides a fine-tuning run: ``TrainConfig`` and the named recipes (the book's, a tuned one).

Its own module so that the optimizer and the loop both read it without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bertnli_helpers.errors import SettingError, finite_number
from bertnli_helpers.model.precision import PRECISIONS
from bertnli_helpers.train.objectives import OBJECTIVES

__all__ = ["PRESETS", "TrainConfig", "preset"]


@dataclass
class TrainConfig:
    """Everything that decides a fine-tuning run (saved beside every checkpoint)."""

    epochs: int = 3
    batch_size: int = 32  # global batch: split across processes under torchrun
    lr: float = 5e-5
    optimizer: str = "adamw"  # "adamw" (decoupled decay) or "adam" (the book)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"  # "linear" warm-up then decay, or "constant"
    max_grad_norm: float | None = 1.0
    precision: str = "auto"  # "auto" (bf16/fp16 on CUDA, bf16 on a CPU with native bf16, else
    # fp32; see precision.py), "fp32", "bf16", "fp16"
    bucket: bool = True  # length-bucketed batches padded to their longest pair
    pad_to: int | None = None  # pad every batch to this width (the book: 128)
    micro_batch_size: int | None = None  # run each batch in chunks: the same step, less memory
    eval_every: int | None = None  # also evaluate on dev every N optimizer steps
    eval_batch_size: int = 256
    checkpoint_every: int | None = None  # steps between resumable checkpoints (and each epoch)
    max_steps: int | None = None  # stop early (tiny profiles and tests)
    seed: int = 0
    device: str = "auto"
    keep_best: bool = True  # restore the best-on-dev weights at the end
    objective: str = "cross_entropy"  # a name in objectives.OBJECTIVES (debiasing ones too)

    def __post_init__(self) -> None:
        checks = {
            "optimizer": (self.optimizer, ("adamw", "adam")),
            "schedule": (self.schedule, ("linear", "constant")),
            "precision": (self.precision, PRECISIONS),
            "objective": (self.objective, tuple(OBJECTIVES)),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise SettingError(f"{name} must be one of {allowed}, not {value!r}")
        for name in ("lr", "weight_decay", "warmup_ratio", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None:
                finite_number(value, name)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.lr <= 0:
            raise SettingError(f"lr must be above 0, not {self.lr}")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise SettingError("micro_batch_size must be >= 1 (or None: the whole batch at once)")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, TrainConfig] = {
    # The book: Adam 1e-4, 5 epochs, batch 512, every pair padded to 128, no schedule or clipping.
    # Each batch of 512 runs in micro-batches of 64: the same step, but minilm needs ~2 GB of
    # activations instead of ~15 GB, so the recipe fits a laptop.
    "book": TrainConfig(
        epochs=5, batch_size=512, lr=1e-4, optimizer="adam", weight_decay=0.0, warmup_ratio=0.0,
        schedule="constant", max_grad_norm=None, bucket=False, pad_to=128, micro_batch_size=64,
    ),
    # Tuned for small BERTs on SNLI: AdamW, warm-up + linear decay, dynamic padding.
    "tuned": TrainConfig(
        epochs=4, batch_size=32, lr=1e-4, optimizer="adamw", weight_decay=0.01, warmup_ratio=0.1,
        schedule="linear", max_grad_norm=1.0, bucket=True,
    ),
}


def preset(name: str, **changes: Any) -> TrainConfig:
    """A named recipe, optionally changed: ``preset("book", epochs=1)``."""
    if name not in PRESETS:
        raise SettingError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**changes)
