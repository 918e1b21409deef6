"""Fine-tuning: one loop for CPU, one GPU, and ``torchrun``, written as named steps.

``fine_tune(model, train, dev, config)`` reads top to bottom: :func:`start_loop` puts the pieces
together (device, optimizer, schedule, precision), :func:`resume_loop` continues an interrupted
run, :func:`run_epoch` calls :func:`train_step` (one optimizer step over a batch, in
micro-batches) for each batch, and :func:`close_epoch` writes the epoch's record, evaluates on
dev, keeps the best weights and saves a checkpoint. The book's recipe is the ``"book"`` preset, so
the course can compare it honestly with the tuned one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertnli_helpers.data.dataset import LengthBucketSampler, RandomBatchSampler, SNLIBERTDataset
from bertnli_helpers.devices import resolve_device
from bertnli_helpers.errors import CheckpointError, EmptySplitError, SettingError
from bertnli_helpers.files import atomic_torch_save, atomic_write_json
from bertnli_helpers.model.checkpoints import (
    BEST_WEIGHTS_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    library_versions,
    load_checkpoint,
    save_checkpoint,
)
from bertnli_helpers.model.inference import evaluate, to_device
from bertnli_helpers.model.precision import (
    autocast,
    autocast_dtype,
    describe_precision,
    resolve_precision,
)
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.distributed import (
    DistInfo,
    all_sum,
    evaluate_distributed,
    init_distributed,
)
from bertnli_helpers.train.objectives import OBJECTIVES
from bertnli_helpers.train.optim import check_loss, make_optimizer, make_scheduler

__all__ = [
    "BEST_WEIGHTS_FILE", "CHECKPOINT_FILE", "CONFIG_FILE", "HISTORY_FILE",
    "Callback", "FineTuneResult", "TrainState", "fine_tune",
]


# -- what callbacks see ---------------------------------------------------------------------------
@dataclass
class TrainState:
    """What callbacks see: the running totals of the current epoch and the history so far."""

    config: TrainConfig
    epoch: int = 0
    step: int = 0  # optimizer steps done
    total_steps: int = 0
    steps_per_epoch: int = 0
    batch_in_epoch: int = 0
    loss: float = float("nan")  # last batch
    history: list[dict[str, float]] = field(default_factory=list)
    best_dev_accuracy: float = -1.0
    best_epoch: int = -1
    is_main: bool = True
    stop: bool = False


class Callback:
    """Hooks into the loop; every method is optional."""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_evaluate(self, state: TrainState, record: dict[str, float]) -> None: ...
    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


@dataclass
class FineTuneResult:
    history: list[dict[str, float]]
    best_dev_accuracy: float
    best_epoch: int
    steps: int
    train_seconds: float  # optimizer steps only, over every epoch (resumed ones included)
    output_dir: Path | None
    precision: str = "fp32"  # the arithmetic it ran in: "fp32", "bf16" or "fp16"


# -- batches -----------------------------------------------------------------------------------
def batch_sampler(
    dataset: SNLIBERTDataset, config: TrainConfig, info: DistInfo, *, shuffle: bool = True
):
    """The training batches: length-bucketed unless the config asks for the book's loader."""
    if config.bucket:
        return LengthBucketSampler(
            dataset.lengths, config.batch_size // info.world_size, shuffle=shuffle,
            seed=config.seed, num_replicas=info.world_size, rank=info.rank,
        )
    if info.world_size > 1:
        raise ValueError("distributed runs need bucket=True (its sampler splits global batches)")
    return RandomBatchSampler(len(dataset), config.batch_size, shuffle=shuffle, seed=config.seed)


def micro_batches(indices: Sequence[int], size: int | None) -> list[Sequence[int]]:
    """A batch's indices in chunks of ``size`` (all at once when ``size`` is None)."""
    if size is None or size >= len(indices):
        return [indices]
    return [indices[i:i + size] for i in range(0, len(indices), size)]


# -- the pieces of one run ---------------------------------------------------------------------
@dataclass
class EpochSums:
    """Running totals of the epoch in progress (saved in checkpoints taken mid-epoch)."""

    loss: float = 0.0
    correct: float = 0.0
    examples: float = 0.0
    tokens: float = 0.0
    padded: float = 0.0
    seconds: float = 0.0


@dataclass
class Loop:
    """Everything one fine-tuning run works with, built by :func:`start_loop`."""

    model: nn.Module  # wrapped in DistributedDataParallel under torchrun
    base_model: nn.Module  # the classifier itself
    train: SNLIBERTDataset
    dev: SNLIBERTDataset | None
    config: TrainConfig
    device: torch.device
    info: DistInfo
    sampler: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None  # autocast dtype, None for fp32
    precision: str  # what config.precision means here: "fp32", "bf16" or "fp16"
    state: TrainState
    callbacks: Sequence[Callback] = ()
    out: Path | None = None
    best_weights: dict[str, torch.Tensor] | None = None
    sums: EpochSums = field(default_factory=EpochSums)
    epoch_open: bool = False  # batches of this epoch ran, its record is not written yet
    bias_probs: torch.Tensor | None = None  # (train pairs, classes): a debiasing objective's

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0 of a run with a folder)."""
        return self.out is not None and self.info.is_main

    @property
    def finished(self) -> bool:
        return self.state.step >= self.state.total_steps

    def notify(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self.state, *args)


def start_loop(
    model: nn.Module, train: SNLIBERTDataset, dev: SNLIBERTDataset | None, config: TrainConfig,
    callbacks: Sequence[Callback] = (), output_dir: str | Path | None = None,
    bias_probs: Any = None,
) -> Loop:
    """Device, process group, optimizer, schedule and precision for a run from step 0."""
    check_not_empty(train, dev)
    bias = _bias_table(config, bias_probs, len(train))
    device = resolve_device(config.device)
    info = init_distributed(device)
    if info.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if config.batch_size % info.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} must divide evenly over {info.world_size} processes")
    torch.manual_seed(config.seed)
    base_model = model.to(device)
    if info.world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = batch_sampler(train, config, info)
    total_steps = len(sampler) * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    optimizer = make_optimizer(base_model, config)
    dtype = autocast_dtype(config.precision, device)
    if info.is_main:  # once per run, so a log says which arithmetic produced its numbers
        print(describe_precision(config.precision, device), flush=True)
    state = TrainState(config=config, total_steps=total_steps, steps_per_epoch=len(sampler),
                       is_main=info.is_main)
    return Loop(model, base_model, train, dev, config, device, info, sampler, optimizer,
                make_scheduler(optimizer, config, total_steps),
                torch.amp.GradScaler(device.type, enabled=dtype == torch.float16), dtype,
                resolve_precision(config.precision, device), state, callbacks,
                Path(output_dir) if output_dir is not None else None,
                bias_probs=bias)


def _bias_table(config: TrainConfig, bias_probs: Any, n: int) -> torch.Tensor | None:
    """The bias expert's probabilities of every training pair, checked against the objective."""
    needs = OBJECTIVES[config.objective].needs_bias
    if needs and bias_probs is None:
        raise SettingError(f"objective {config.objective!r} needs bias_probs: the bias expert's "
                         "class probabilities of every training pair (see debias.py)")
    if not needs:
        return None
    table = torch.as_tensor(bias_probs, dtype=torch.float32)
    if table.ndim != 2 or table.shape[0] != n:
        raise SettingError(f"bias_probs must have one row per training pair ({n}), got shape "
                         f"{tuple(table.shape)}")
    return table


def batch_loss(loop: Loop, logits: torch.Tensor, labels: torch.Tensor,
               indices: Sequence[int]) -> torch.Tensor:
    """The config's objective on one (micro-)batch, summed; a debiasing objective also reads
    the bias expert's probabilities of these pairs, looked up by their dataset indices."""
    bias = None
    if loop.bias_probs is not None:
        bias = loop.bias_probs[torch.as_tensor(indices, dtype=torch.long)].to(loop.device)
    return OBJECTIVES[loop.config.objective].loss(logits, labels, bias)


def check_not_empty(train: SNLIBERTDataset, dev: SNLIBERTDataset | None) -> None:
    """No pairs to learn from (or to choose the best epoch on) is an error, not a run whose
    dev accuracy is -1 and whose metrics are NaN."""
    for name, data in (("train", train), ("dev", dev)):
        if data is not None and len(data) == 0:
            raise EmptySplitError(f"the {name} set has no pairs: give a non-empty {name} split")


RESUME_MUST_MATCH = ("batch_size", "seed", "bucket", "pad_to", "lr", "epochs", "optimizer",
                     "objective")


def check_resumable(saved: dict[str, Any], config: TrainConfig, source: str | Path) -> None:
    """Refuse to continue a run (its config as ``saved``) with a recipe that would make it
    another run; ``source`` names where ``saved`` was read."""
    for key in RESUME_MUST_MATCH:
        made_with = saved.get(key, getattr(TrainConfig, key))  # older runs: the default
        if made_with != getattr(config, key):
            raise CheckpointError(
                f"cannot resume from {source}: it was made with {key}={made_with!r}, "
                f"this run has {key}={getattr(config, key)!r}; pass the same setting, or choose "
                "another output folder for a new run")


def resume_loop(loop: Loop, checkpoint_path: str | Path) -> int:
    """Continue from a checkpoint; returns how many batches of its epoch were already done."""
    ckpt = load_checkpoint(checkpoint_path)
    check_resumable(ckpt["config"], loop.config, checkpoint_path)
    loop.base_model.load_state_dict(ckpt["model"])
    loop.optimizer.load_state_dict(ckpt["optimizer"])
    loop.scheduler.load_state_dict(ckpt["scheduler"])
    loop.scaler.load_state_dict(ckpt["scaler"])
    state = loop.state
    state.step, state.epoch, state.batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt[
        "batch_in_epoch"]
    state.history = ckpt["history"]
    state.best_dev_accuracy, state.best_epoch = ckpt["best_dev_accuracy"], ckpt["best_epoch"]
    loop.best_weights = ckpt.get("best_model")
    if ckpt.get("epoch_sums"):  # stopped inside an epoch whose record is not written yet
        loop.sums, loop.epoch_open = EpochSums(**ckpt["epoch_sums"]), True
    _restore_rng(ckpt["rng"])
    return state.batch_in_epoch


def train_step(loop: Loop, indices: Sequence[int]) -> float:
    """One optimizer step on one batch, returning its mean loss.

    The batch runs in micro-batches when the config asks (the same step with less memory):
    forward under autocast, the summed loss of the config's objective, backward; then clip,
    step, schedule.
    """
    config, sums = loop.config, loop.sums
    global_count = all_sum([float(len(indices))], loop.info, loop.device)[0]
    loop.optimizer.zero_grad(set_to_none=True)
    chunks = micro_batches(indices, config.micro_batch_size)
    step_loss = 0.0
    for k, chunk in enumerate(chunks):
        inputs, labels = to_device(loop.train.batch(chunk, pad_to=config.pad_to), loop.device)
        last = k == len(chunks) - 1
        # DDP all-reduces gradients once per step, after the last micro-batch
        sync = nullcontext() if last or loop.info.world_size == 1 else loop.model.no_sync()
        with sync:
            with autocast(loop.device, loop.dtype):
                logits = loop.model(inputs)
            loss_sum = batch_loss(loop, logits.float(), labels, chunk)
            # DDP averages gradients over ranks; scaling by world/global count makes the step
            # identical to one process seeing the whole global batch at once.
            loop.scaler.scale(loss_sum * (loop.info.world_size / global_count)).backward()
        step_loss += check_loss(loss_sum.item(), loop.state.step, config.lr)
        sums.correct += (logits.argmax(-1) == labels).sum().item()
        sums.tokens += float(inputs[2].sum().item())
        sums.padded += float(inputs[0].numel())
    if config.max_grad_norm is not None:
        loop.scaler.unscale_(loop.optimizer)
        nn.utils.clip_grad_norm_(loop.base_model.parameters(), config.max_grad_norm)
    loop.scaler.step(loop.optimizer)
    loop.scaler.update()
    loop.scheduler.step()
    loop.state.step += 1
    sums.loss += step_loss
    sums.examples += len(indices)
    return step_loss / len(indices)


def evaluate_dev(loop: Loop, record: dict[str, float]) -> None:
    """Score dev into ``record``; keep (and write) the weights if they are the best so far."""
    if loop.dev is None:
        return
    if loop.info.world_size > 1:
        metrics = evaluate_distributed(loop.model, loop.dev, loop.info, loop.device,
                                       loop.config.eval_batch_size, loop.dtype)
    else:
        metrics = evaluate(loop.base_model, loop.dev, batch_size=loop.config.eval_batch_size,
                           device=loop.device, precision=loop.precision)
    record.update(dev_accuracy=metrics["accuracy"], dev_loss=metrics["loss"])
    state = loop.state
    if metrics["accuracy"] > state.best_dev_accuracy:
        state.best_dev_accuracy, state.best_epoch = metrics["accuracy"], state.epoch
        loop.best_weights = {k: v.detach().cpu().clone()
                             for k, v in loop.base_model.state_dict().items()}
        if loop.writes:
            atomic_torch_save(loop.out / BEST_WEIGHTS_FILE, loop.best_weights)
    loop.notify("on_evaluate", record)


def checkpoint(loop: Loop, epoch: int, batch_in_epoch: int) -> None:
    """Write everything needed to continue at ``batch_in_epoch`` of ``epoch`` (rank 0 only)."""
    if not loop.writes:
        return
    save_checkpoint(loop.out / CHECKPOINT_FILE, {
        "model": loop.base_model.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "scaler": loop.scaler.state_dict(),
        "step": loop.state.step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "epoch_sums": dataclasses.asdict(loop.sums) if loop.epoch_open else None,
        "history": loop.state.history,
        "best_dev_accuracy": loop.state.best_dev_accuracy,
        "best_epoch": loop.state.best_epoch,
        "best_model": loop.best_weights,
        "rng": _capture_rng(),
        "config": dataclasses.asdict(loop.config),
    })


def epoch_record(loop: Loop, epoch: int) -> dict[str, float]:
    """The epoch's line of the history: loss, accuracy and speed summed over every process."""
    names = [f.name for f in dataclasses.fields(EpochSums)]
    totals = dict(zip(names, all_sum([getattr(loop.sums, n) for n in names], loop.info,
                                     loop.device)))
    seconds = totals["seconds"] / loop.info.world_size
    return {
        "epoch": epoch + 1,
        "step": loop.state.step,
        "train_loss": totals["loss"] / max(1.0, totals["examples"]),
        "train_accuracy": totals["correct"] / max(1.0, totals["examples"]),
        "examples_per_s": totals["examples"] / max(seconds, 1e-9),
        "tokens_per_s": totals["tokens"] / max(seconds, 1e-9),
        "padding_share": 1.0 - totals["tokens"] / max(1.0, totals["padded"]),
        "train_seconds": seconds,
        "lr": loop.scheduler.get_last_lr()[0],
    }


def close_epoch(loop: Loop, epoch: int) -> None:
    """Record the epoch, evaluate on dev, write the history, then save a checkpoint.

    The checkpoint comes last: until it is written, a resume repeats this whole step (the
    previous checkpoint still says the epoch is open), so a kill at any of these writes loses
    nothing and leaves no file out of step with the others.
    """
    record = epoch_record(loop, epoch)
    evaluate_dev(loop, record)
    loop.state.history.append(record)
    loop.epoch_open = False
    if loop.writes:
        atomic_write_json(loop.out / HISTORY_FILE, loop.state.history)
    done = loop.state.batch_in_epoch >= loop.state.steps_per_epoch
    checkpoint(loop, epoch + 1 if done else epoch, 0 if done else loop.state.batch_in_epoch)
    loop.notify("on_epoch_end", record)


def run_epoch(loop: Loop, epoch: int, skip: int = 0) -> None:
    """Train on the epoch's batches (the first ``skip`` were done before a resume), then close
    it. Also evaluates and checkpoints every ``eval_every`` / ``checkpoint_every`` steps."""
    config, state = loop.config, loop.state
    state.epoch = epoch
    loop.sampler.set_epoch(epoch)
    if not loop.epoch_open:
        loop.sums, loop.epoch_open = EpochSums(), True
    for batch_index, indices in enumerate(loop.sampler):
        if batch_index < skip:
            continue
        if loop.finished or state.stop:
            break
        tick = time.perf_counter()
        state.loss = train_step(loop, indices)
        loop.sums.seconds += time.perf_counter() - tick
        state.batch_in_epoch = batch_index + 1
        loop.notify("on_step_end")
        if config.eval_every and state.step % config.eval_every == 0 and loop.dev is not None:
            record = {"epoch": epoch + state.batch_in_epoch / state.steps_per_epoch,
                      "step": state.step}
            evaluate_dev(loop, record)
            state.history.append(record)
        if config.checkpoint_every and state.step % config.checkpoint_every == 0:
            checkpoint(loop, epoch, state.batch_in_epoch)
    close_epoch(loop, epoch)


def fine_tune(
    model: nn.Module,
    train: SNLIBERTDataset,
    dev: SNLIBERTDataset | None,
    config: TrainConfig | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    output_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    bias_probs: Any = None,
) -> FineTuneResult:
    """Fine-tune ``model`` (a ``BERTClassifier``) on ``train``, choosing the best epoch on ``dev``.

    With ``output_dir``: checkpoints (every ``checkpoint_every`` steps and each epoch), the
    best weights, the config and the history are written there (by rank 0 only). With
    ``resume_from`` (a folder or checkpoint file), the run continues where that one stopped,
    and finishes an epoch whose last step ran but whose record was not written. A debiasing
    ``config.objective`` needs ``bias_probs``: the bias expert's class probabilities ``(n, 3)``
    of the ``n`` training pairs, in the dataset's order.
    """
    config = config or TrainConfig()
    loop = start_loop(model, train, dev, config, callbacks, output_dir, bias_probs)
    skip = resume_loop(loop, resume_from) if resume_from is not None else 0
    if loop.writes:
        atomic_write_json(loop.out / CONFIG_FILE, {
            "train": dataclasses.asdict(config), "precision": loop.precision,
            "model": _model_config(loop.base_model), "versions": library_versions()})
    loop.notify("on_train_begin")
    loop.model.train()
    for epoch in range(loop.state.epoch, config.epochs):
        if (loop.finished and not loop.epoch_open) or loop.state.stop:
            break
        run_epoch(loop, epoch, skip)
        skip = 0
    if config.keep_best and loop.best_weights is not None:
        loop.base_model.load_state_dict(loop.best_weights)
    loop.notify("on_train_end")
    state = loop.state
    return FineTuneResult(
        history=state.history, best_dev_accuracy=state.best_dev_accuracy,
        best_epoch=state.best_epoch, steps=state.step,
        train_seconds=sum(r.get("train_seconds", 0.0) for r in state.history),
        output_dir=loop.out, precision=loop.precision)


# -- small helpers -------------------------------------------------------------------------------
def _capture_rng() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _model_config(model: nn.Module) -> dict[str, Any] | None:
    config = getattr(model, "config", None)
    return config.to_dict() if hasattr(config, "to_dict") else None


def history_table(history: Iterable[dict[str, float]]) -> list[dict[str, float]]:
    """Epoch records only (drops mid-epoch evaluations), rounded for printing."""
    rows = []
    for record in history:
        if float(record.get("epoch", 0)).is_integer() and "train_loss" in record:
            rows.append({k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                         for k, v in record.items()})
    return rows
