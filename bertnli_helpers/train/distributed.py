"""Several processes under ``torchrun``: who is who, and sums that every rank agrees on."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.model.inference import evaluating, length_sorted_batches, to_device
from bertnli_helpers.model.precision import autocast


@dataclass(frozen=True)
class DistInfo:
    """This process's place among ``world_size`` (1 when not started by ``torchrun``)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when started by ``torchrun`` (NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(world, dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")))


def all_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """``values`` summed over every rank (unchanged in a single process)."""
    if info.world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def evaluate_distributed(
    model: nn.Module, dataset: SNLIBERTDataset, info: DistInfo, device: torch.device,
    batch_size: int, dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Each rank scores a slice of dev; sums are reduced so every rank sees the same metrics."""
    loss_sum = correct = count = 0.0
    order = np.argsort(dataset.lengths, kind="stable")[info.rank :: info.world_size]
    with evaluating(model), torch.inference_mode():
        for _, batch in length_sorted_batches(dataset, batch_size, order):
            inputs, labels = to_device(batch, device)
            with autocast(device, dtype):  # the run's precision (None: fp32)
                logits = unwrap(model)(inputs).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(-1) == labels).sum().item()
            count += len(labels)
    loss_sum, correct, count = all_sum([loss_sum, correct, count], info, device)
    return {"accuracy": correct / count, "loss": loss_sum / count, "n": int(count)}
