"""Measuring training speed: examples/s and tokens/s of a recipe's batching on real pairs."""

from __future__ import annotations

import itertools
import time

import torch
import torch.nn.functional as F
from torch import nn

from .data import SNLIBERTDataset
from .devices import resolve_device
from .distributed import DistInfo
from .inference import to_device
from .optim import make_optimizer
from .precision import autocast, autocast_dtype, resolve_precision
from .train import TrainConfig, batch_sampler


def _epochs(sampler):
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield iter(sampler)
        epoch += 1


def measure_throughput(
    model: nn.Module,
    dataset: SNLIBERTDataset,
    config: TrainConfig,
    *,
    steps: int = 10,
    warmup: int = 2,
) -> dict[str, float]:
    """Training examples/s and tokens/s of ``config``'s batching on ``dataset`` (weights are
    restored afterwards, so the model is unchanged). Compares dynamic padding with padding to
    ``max_len`` on the same model and data. The step runs in ``config.precision`` as
    ``fine_tune`` would (``"auto"``: bf16 autocast where the device computes it natively)."""
    device = resolve_device(config.device)
    dtype = autocast_dtype(config.precision, device)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.to(device).train()
    optimizer = make_optimizer(model, config)
    sampler = batch_sampler(dataset, config, DistInfo())
    batches = itertools.chain.from_iterable(_epochs(sampler))  # small data: go round again
    examples = tokens = computed = 0
    seconds = 0.0
    for step in range(warmup + steps):
        indices = next(batches)
        inputs, labels = to_device(dataset.batch(indices, pad_to=config.pad_to), device)
        tick = time.perf_counter()
        with autocast(device, dtype):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            seconds += time.perf_counter() - tick
            examples += len(labels)
            tokens += int(inputs[2].sum())
            computed += inputs[0].numel()
    model.load_state_dict(saved)
    return {
        "examples_per_s": examples / max(seconds, 1e-9),
        "tokens_per_s": tokens / max(seconds, 1e-9),
        "padding_share": 1 - tokens / max(1, computed),
        "steps": steps,
        "precision": resolve_precision(config.precision, device),
    }
