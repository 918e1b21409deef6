"""The optimizer and the learning-rate schedule of fine-tuning."""

from __future__ import annotations

import math

import torch
from torch import nn

from bertnli_helpers.errors import NonFiniteError
from bertnli_helpers.train.config import TrainConfig


def check_loss(loss: float, step: int, lr: float) -> float:
    """Stop a run whose loss is NaN or infinite before the optimizer steps on it: its weights
    would turn to NaN and every later file (checkpoint, metrics, the book-format zip) with them."""
    if not math.isfinite(loss):
        raise NonFiniteError(
            f"the training loss is {loss} at step {step + 1} (learning rate {lr:g}): the run "
            "diverged and was stopped, nothing of this step was saved; lower --lr and run again")
    return loss


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay weights of Linear layers and embeddings; never biases or LayerNorm parameters."""
    decay, no_decay = [], []
    norms = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith("bias") or id(param) in norms:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def can_fuse(model: nn.Module) -> bool:
    """PyTorch's fused Adam kernels run on CPU and CUDA float weights; elsewhere use the default."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
               for p in model.parameters())


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (or the book's Adam), fused into one kernel where PyTorch can: the default
    per-parameter update is a large share of a small BERT's step on the CPU."""
    fused = {"fused": True} if can_fuse(model) else {}
    if config.optimizer == "adam":
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **fused)
    return torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr, **fused)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """The multiple of the peak learning rate at ``step``: linear warm-up, then linear decay."""
    if schedule == "constant":
        return 1.0
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = round(config.warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup, config.schedule))
