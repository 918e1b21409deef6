"""Scoring a classifier: class probabilities and accuracy, without the training stack.

Pairs are scored in length-sorted batches (little padding) under ``torch.inference_mode``; the
analysis, the widgets, the CLI and the training loop's dev evaluation all call these.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.devices import resolve_device
from bertnli_helpers.model.precision import autocast, autocast_dtype


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode (no dropout) inside the block, its previous mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def to_device(batch, device: torch.device):
    """A dataset batch ``((tokens, segments, valid_lens), labels)`` moved to ``device``."""
    (tokens, segments, valid), labels = batch
    return (tokens.to(device), segments.to(device), valid.to(device)), labels.to(device)


def length_sorted_batches(
    dataset: SNLIBERTDataset, batch_size: int, order: Sequence[int] | None = None
):
    """``(indices, batch)`` over ``dataset`` (or ``order``) with similar lengths together."""
    if order is None:
        order = np.argsort(dataset.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, dataset.batch(idx)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def predict(
    model: nn.Module,
    dataset: SNLIBERTDataset,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Class probabilities ``(n, 3)`` in the dataset's order.

    ``precision="auto"`` scores in bf16 where the device computes it natively (see
    ``precision.py``); ``"fp32"`` for bit-for-bit comparisons with a plain forward pass."""
    device = resolve_device(device) if device is not None else model_device(model)
    dtype = autocast_dtype(precision, device)
    probs = np.zeros((len(dataset), model.output.out_features), dtype=np.float32)
    with evaluating(model):
        for idx, batch in length_sorted_batches(dataset, batch_size):
            inputs, _ = to_device(batch, device)
            with autocast(device, dtype):
                logits = model(inputs)
            probs[idx] = logits.float().softmax(-1).cpu().numpy()
    return probs


def evaluate(
    model: nn.Module,
    dataset: SNLIBERTDataset,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    precision: str = "auto",
) -> dict[str, float]:
    """Accuracy and mean cross-entropy on a labelled dataset."""
    probs = predict(model, dataset, batch_size=batch_size, device=device, precision=precision)
    labels = dataset.encoded.labels
    picked = probs[np.arange(len(labels)), labels]
    return {
        "accuracy": float((probs.argmax(1) == labels).mean()),
        "loss": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
        "n": len(labels),
    }
