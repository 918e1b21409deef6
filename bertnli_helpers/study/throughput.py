"""Measuring training speed: examples/s and tokens/s of a recipe's batching on real pairs."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.devices import resolve_device
from bertnli_helpers.model.inference import to_device
from bertnli_helpers.model.precision import autocast, autocast_dtype, resolve_precision
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.distributed import DistInfo
from bertnli_helpers.train.loop import batch_sampler
from bertnli_helpers.train.optim import make_optimizer


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


FASTER, SLOWER, SAME_SPEED = "faster", "slower", "within noise"


def interleaved_throughput(
    model: nn.Module,
    setups: dict[str, tuple[SNLIBERTDataset, TrainConfig]],
    *,
    steps: int = 10,
    warmup: int = 2,
    repeats: int = 3,
) -> dict[str, list[float]]:
    """Examples/s of every setup (a dataset and its batching), measured ``repeats`` times in
    turn: A, B, C, A, B, C, ... A busy machine slows whatever runs while it is busy, so taking
    turns spreads its disturbance over all setups, and repeat ``k`` of each can be paired."""
    speeds: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(repeats):
        for name, (dataset, config) in setups.items():
            speeds[name].append(measure_throughput(model, dataset, config, steps=steps,
                                                   warmup=warmup)["examples_per_s"])
    return speeds


@dataclass(frozen=True)
class SpeedComparison:
    """A's speed over B's, from paired repeats: the ratio (geometric mean), its 95% interval
    and a verdict (``faster``, ``slower`` or ``within noise``)."""

    name_a: str
    name_b: str
    ratio: float
    low: float
    high: float
    repeats: int
    verdict: str

    def sentence(self) -> str:
        if self.repeats < 2:
            return (f"{self.name_a} against {self.name_b}: {self.ratio:.2f}x the examples/s from "
                    "a single timing each: no interval, so no verdict.")
        measured = (f"{self.ratio:.2f}x the examples/s (95% interval {self.low:.2f}x to "
                    f"{self.high:.2f}x, {self.repeats} paired repeats)")
        if self.verdict == SAME_SPEED:
            return (f"{self.name_a} against {self.name_b}: {measured}: within noise, so these "
                    "timings do not show that either is faster.")
        return f"{self.name_a} is {self.verdict} than {self.name_b}: {measured}."


def compare_speeds(speeds_a: Sequence[float], speeds_b: Sequence[float], name_a: str = "A",
                   name_b: str = "B", confidence: float = 0.95) -> SpeedComparison:
    """Compare paired repeats (repeat ``k`` of A was taken beside repeat ``k`` of B) by the
    t-interval of their log ratios; fewer than two repeats give no interval: within noise."""
    logs = np.log(np.asarray(speeds_a, dtype=np.float64) / np.asarray(speeds_b, dtype=np.float64))
    if logs.size == 0:
        raise ValueError("no repeats to compare")
    mean = float(logs.mean())
    if logs.size < 2:
        low, high = -np.inf, np.inf
    else:
        half = stats.t.ppf(1 - (1 - confidence) / 2, logs.size - 1) * logs.std(ddof=1) / np.sqrt(
            logs.size)
        low, high = mean - half, mean + half
    verdict = FASTER if low > 0 else SLOWER if high < 0 else SAME_SPEED
    return SpeedComparison(name_a, name_b, float(np.exp(mean)), float(np.exp(low)),
                           float(np.exp(high)), int(logs.size), verdict)
