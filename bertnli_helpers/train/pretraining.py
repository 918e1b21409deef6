"""Where pretrained weights come from: the book's masked language modelling (MLM) and
next-sentence prediction (NSP), on sentences of SNLI's train split.

The data pieces follow the book's code (d2l) rule for rule and random draw for random draw, so a
test checks them against it with the same seeds:

* :func:`nsp_pairs` is ``_get_nsp_data_from_paragraph``: each sentence with the one after it,
  or, half of the time, with a random sentence from anywhere (then labelled "not next");
* :func:`mlm_example` is ``_get_mlm_data_from_tokens``: 15% of the tokens (never a special
  token) are to be predicted; of those, 80% become ``<mask>``, 10% a random token, 10% stay;
* :class:`MaskLM` and :class:`NextSentencePred` are the book's heads, with the book's parameter
  names, so a checkpoint holds the same ``mlm.*`` and ``nsp.*`` keys as ``bert.small``.

:func:`pretrain` is a short loop over named steps (:func:`start_pretraining`,
:func:`resume_pretraining`, :func:`pretrain_step`, :func:`log_window`,
:func:`save_pretraining_checkpoint`) with the fine-tuning loop's progress bar, atomic
checkpoints and resume. :func:`save_pretrained` writes the book's format (``vocab.json`` +
``pretrained.params``, zipped), which ``load_pretrained(path)`` and d2l's ``BERTModel`` read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertnli_helpers.data.snli import SNLISplit
from bertnli_helpers.data.tokenization import (
    BOOK_RESERVED,
    BOOK_SPECIALS,
    TextTokenizer,
    book_word_counts,
    build_book_vocab,
)
from bertnli_helpers.devices import resolve_device
from bertnli_helpers.errors import (
    CheckpointError,
    EmptySplitError,
    SettingError,
    finite_number,
)
from bertnli_helpers.files import atomic_write_json
from bertnli_helpers.hub import sha1_of
from bertnli_helpers.model.bert import BertConfig, BERTEncoder, init_bert_weights
from bertnli_helpers.model.checkpoints import (
    library_versions,
    load_checkpoint,
    load_tensors,
    save_checkpoint,
)
from bertnli_helpers.model.precision import PRECISIONS, autocast, autocast_dtype
from bertnli_helpers.model.pretrained import (
    BOOK_IGNORED,
    BOOK_KEY_RULES,
    BOOK_PARAMS_FILE,
    rename_keys,
    save_book_folder,
    zip_book_folder,
)
from bertnli_helpers.train.optim import check_loss, make_optimizer, make_scheduler

Tokens = list[str]

MLM_SHARE = 0.15  # of a sequence's tokens, predicted
MASK_SHARE = 0.8  # of those, replaced by <mask>
KEEP_SHARE_OF_REST = 0.5  # of the rest, kept unchanged; the others get a random token
NEXT_SHARE = 0.5  # of the sentence pairs, the true next sentence
NEVER_PREDICTED = frozenset(BOOK_RESERVED)
PRETRAIN_CHECKPOINT = "pretrain_checkpoint.pt"
PRETRAIN_HISTORY = "pretrain_history.json"
PRETRAIN_CONFIG = "pretrain_config.json"
CHECKPOINT_NAME = "pretrained"  # the folder inside the zip, as bert.small.torch is in the book's


# -- the corpus ----------------------------------------------------------------------------
def snli_paragraphs(split: SNLISplit) -> list[list[Tokens]]:
    """Each pair as a two-sentence "paragraph" (premise, then hypothesis), split and
    lower-cased as the book splits SNLI's parse text. No labels are read."""
    premises, hypotheses, _ = split.triple("book")
    return [[p.lower().split(), h.lower().split()] for p, h in zip(premises, hypotheses)]


# -- next-sentence pairs and masked tokens (the book's rules and random draws) --------------
def nsp_pairs(
    paragraph: Sequence[Tokens], paragraphs: Sequence[Sequence[Tokens]], vocab: TextTokenizer,
    max_len: int, rng: random.Random,
) -> list[tuple[Tokens, list[int], bool]]:
    """``(tokens, segments, is_next)`` for each sentence of ``paragraph`` and the next one, the
    second replaced half of the time by a random sentence of ``paragraphs``; pairs longer than
    ``max_len`` once packed (``<cls> a <sep> b <sep>``) are dropped, as in the book."""
    pairs = []
    for first, following in pairwise(paragraph):
        second, is_next = following, True
        if not rng.random() < NEXT_SHARE:
            second, is_next = rng.choice(rng.choice(paragraphs)), False
        if len(first) + len(second) + 3 > max_len:
            continue
        tokens, segments = vocab.pack_tokens(list(first), list(second))
        pairs.append((tokens, segments, is_next))
    return pairs


def replace_mlm_tokens(
    tokens: Sequence[str], candidates: list[int], num_preds: int, vocab: TextTokenizer,
    rng: random.Random,
) -> tuple[Tokens, list[tuple[int, str]]]:
    """The first ``num_preds`` of the shuffled ``candidates`` become prediction targets: 80%
    ``<mask>``, 10% unchanged, 10% a random vocabulary entry (drawn, as the book draws it, from
    the whole list). Returns the new tokens and ``(position, original token)`` pairs."""
    masked = list(tokens)
    targets: list[tuple[int, str]] = []
    rng.shuffle(candidates)
    for position in candidates[:num_preds]:
        if rng.random() < MASK_SHARE:
            masked[position] = BOOK_SPECIALS.mask
        elif rng.random() < KEEP_SHARE_OF_REST:
            masked[position] = tokens[position]
        else:
            masked[position] = rng.choice(vocab.idx_to_token)
        targets.append((position, tokens[position]))
    return masked, targets


def mlm_example(
    tokens: Sequence[str], vocab: TextTokenizer, rng: random.Random
) -> tuple[list[int], list[int], list[int]]:
    """Input ids with 15% of the tokens replaced, the predicted positions (ascending) and the
    ids to predict there. Special tokens are never predicted."""
    candidates = [i for i, token in enumerate(tokens) if token not in NEVER_PREDICTED]
    num_preds = max(1, round(len(tokens) * MLM_SHARE))
    masked, targets = replace_mlm_tokens(tokens, candidates, num_preds, vocab, rng)
    targets.sort(key=lambda target: target[0])
    return vocab[masked], [p for p, _ in targets], vocab[[t for _, t in targets]]


@dataclass(frozen=True)
class PretrainExample:
    """One pretraining input: a masked sentence pair and what to predict about it."""

    token_ids: list[int]
    pred_positions: list[int]
    mlm_labels: list[int]
    segments: list[int]
    is_next: bool


def pretraining_examples(
    paragraphs: Sequence[Sequence[Tokens]], vocab: TextTokenizer, max_len: int,
    rng: random.Random | int = 0,
) -> list[PretrainExample]:
    """The book's pretraining set (``_WikiTextDataset``): next-sentence pairs of every
    paragraph, then each pair masked. The masks are drawn once, as in the book."""
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    pairs = [pair for paragraph in paragraphs
             for pair in nsp_pairs(paragraph, paragraphs, vocab, max_len, rng)]
    return [PretrainExample(*mlm_example(tokens, vocab, rng), segments, is_next)
            for tokens, segments, is_next in pairs]


def examples_fingerprint(examples: Sequence[PretrainExample]) -> str:
    """A short SHA-1 of the examples, so a resumed run can check it trains on the same ones."""
    digest = hashlib.sha1()
    for ex in examples:
        digest.update(repr((ex.token_ids, ex.pred_positions, ex.mlm_labels, ex.is_next)).encode())
    return digest.hexdigest()[:16]


class PretrainBatch(NamedTuple):
    """Examples padded to the longest in the batch (the book pads every one to ``max_len``)."""

    tokens: torch.Tensor  # (batch, seq)
    segments: torch.Tensor  # (batch, seq)
    valid_lens: torch.Tensor  # (batch,)
    pred_positions: torch.Tensor  # (batch, preds); padding slots point at position 0
    mlm_weights: torch.Tensor  # (batch, preds): 1 for a real prediction, 0 for a padding slot
    mlm_labels: torch.Tensor  # (batch, preds)
    nsp_labels: torch.Tensor  # (batch,): 1 = is next

    def to(self, device: torch.device) -> PretrainBatch:
        return PretrainBatch(*(t.to(device) for t in self))


def collate(examples: Sequence[PretrainExample], pad_id: int) -> PretrainBatch:
    width = max(len(ex.token_ids) for ex in examples)
    preds = max(len(ex.pred_positions) for ex in examples)

    def padded(rows: Iterable[list[int]], size: int, fill: int) -> torch.Tensor:
        return torch.tensor([row + [fill] * (size - len(row)) for row in rows])

    return PretrainBatch(
        padded((ex.token_ids for ex in examples), width, pad_id),
        padded((ex.segments for ex in examples), width, 0),
        torch.tensor([len(ex.token_ids) for ex in examples]),
        padded((ex.pred_positions for ex in examples), preds, 0),
        padded(([1] * len(ex.pred_positions) for ex in examples), preds, 0).float(),
        padded((ex.mlm_labels for ex in examples), preds, 0),
        torch.tensor([int(ex.is_next) for ex in examples]),
    )


# -- the heads and the model -----------------------------------------------------------------
class MaskLM(nn.Module):
    """The book's masked-LM head: an MLP on the encoder's states at the predicted positions."""

    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU(),
                                 nn.LayerNorm(hidden_size), nn.Linear(hidden_size, vocab_size))

    def forward(self, encoded: torch.Tensor, pred_positions: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, hidden)``, ``(batch, preds)`` -> logits ``(batch, preds, vocab)``."""
        rows = torch.arange(encoded.shape[0], device=encoded.device)[:, None]
        return self.mlp(encoded[rows, pred_positions])


class NextSentencePred(nn.Module):
    """The book's next-sentence head: two logits from the pooled ``<cls>`` state."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.output = nn.Linear(hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.output(pooled)


class BERTPretrainer(nn.Module):
    """The book's ``BERTModel``: encoder, the pooler ``hidden`` (Linear + Tanh on ``<cls>``),
    and the two pretraining heads. Fine-tuning keeps the encoder and the pooler only."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = BERTEncoder(config)
        self.hidden = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.Tanh())
        self.mlm = MaskLM(config.vocab_size, config.hidden_size)
        self.nsp = NextSentencePred(config.hidden_size)
        init_bert_weights(self)

    def forward(
        self, tokens: torch.Tensor, segments: torch.Tensor,
        valid_lens: torch.Tensor | None = None, pred_positions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        encoded = self.encoder(tokens, segments, valid_lens)
        mlm_logits = self.mlm(encoded, pred_positions) if pred_positions is not None else None
        return encoded, mlm_logits, self.nsp(self.hidden(encoded[:, 0, :]))


def pretraining_losses(
    model: nn.Module, batch: PretrainBatch
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The MLM loss (mean cross-entropy over the real predictions, padding slots weighted 0), the
    NSP loss, and the counts of correct predictions of each."""
    _, mlm_logits, nsp_logits = model(batch.tokens, batch.segments, batch.valid_lens,
                                      batch.pred_positions)
    weights = batch.mlm_weights.reshape(-1)
    per_slot = F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]).float(),
                               batch.mlm_labels.reshape(-1), reduction="none")
    mlm_loss = (per_slot * weights).sum() / (weights.sum() + 1e-8)
    nsp_loss = F.cross_entropy(nsp_logits.float(), batch.nsp_labels)
    hits = (mlm_logits.argmax(-1).reshape(-1) == batch.mlm_labels.reshape(-1)).float()
    counts = {"mlm_correct": float((hits * weights).sum()), "mlm_predictions": float(weights.sum()),
              "nsp_correct": float((nsp_logits.argmax(-1) == batch.nsp_labels).sum()),
              "pairs": float(len(batch.nsp_labels))}
    return mlm_loss, nsp_loss, counts


# -- configuration ---------------------------------------------------------------------------
@dataclass
class PretrainConfig:
    """Everything that decides a pretraining run: model sizes, data, recipe."""

    hidden_size: int = 128  # the book's pretraining section: 128, FFN 256, 2 heads, 2 blocks
    ffn_size: int = 256
    # The book's format does not store the number of heads; its loader assumes heads 64 wide
    # (hidden_size // 64, at least 1), so keep to that for the checkpoint to load by path alone.
    num_heads: int = 2
    num_layers: int = 2
    max_len: int = 64  # the book's; also the position table of the saved model
    dropout: float = 0.1
    train_size: int | None = None  # train pairs whose sentences are used (None: all)
    min_freq: int = 5  # words seen fewer times are <unk> (the book's 5)
    steps: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    max_grad_norm: float | None = 1.0
    precision: str = "auto"
    log_every: int = 10  # steps per point of the loss curves
    checkpoint_every: int | None = None  # also checkpoint every N steps (always at the end)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise SettingError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        for name in ("lr", "dropout", "weight_decay", "warmup_ratio"):
            finite_number(getattr(self, name), name)
        if min(self.steps, self.batch_size, self.log_every, self.min_freq) < 1 or self.lr <= 0:
            raise SettingError("steps, batch_size, log_every and min_freq must be >= 1 and lr "
                               f"above 0 (lr is {self.lr})")
        if self.max_len < 8:
            raise SettingError(f"max_len {self.max_len} is too short for a sentence pair")

    def model_config(self, vocab_size: int) -> BertConfig:
        return BertConfig(vocab_size=vocab_size, hidden_size=self.hidden_size,
                          num_layers=self.num_layers, num_heads=self.num_heads,
                          ffn_size=self.ffn_size, max_len=self.max_len, dropout=self.dropout,
                          flavour="book")

    def replace(self, **changes: Any) -> PretrainConfig:
        return dataclasses.replace(self, **changes)


# Sizes per course profile: tiny (CI, seconds), quick (a CPU, about a minute and a half), full
# (a GPU, all of SNLI's train sentences, bert.small's sizes).
PRESETS: dict[str, PretrainConfig] = {
    "tiny": PretrainConfig(hidden_size=32, ffn_size=64, num_heads=1, num_layers=1, train_size=300,
                           min_freq=2, steps=12, batch_size=32, log_every=2),
    "quick": PretrainConfig(min_freq=2, steps=400, batch_size=64),
    "full": PretrainConfig(hidden_size=256, ffn_size=512, num_heads=4, steps=20_000,
                           batch_size=256, lr=5e-4, log_every=100, checkpoint_every=1000),
}


def preset(name: str, **changes: Any) -> PretrainConfig:
    if name not in PRESETS:
        raise SettingError(f"unknown pretraining preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**changes)


def new_pretrainer(config: PretrainConfig, vocab_size: int) -> BERTPretrainer:
    """A freshly initialised model of ``config``'s sizes, the same for the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return BERTPretrainer(config.model_config(vocab_size))


def prepare_pretraining(
    train: SNLISplit, config: PretrainConfig
) -> tuple[TextTokenizer, list[PretrainExample]]:
    """The vocabulary and the examples, from the train split's sentences only."""
    sample = train.sample(config.train_size, config.seed)
    premises, hypotheses, _ = sample.triple("book")
    vocab = build_book_vocab(book_word_counts(premises + hypotheses), min_freq=config.min_freq)
    return vocab, pretraining_examples(snli_paragraphs(sample), vocab, config.max_len, config.seed)


# -- the loop --------------------------------------------------------------------------------
@dataclass
class PretrainState:
    """What callbacks see (the names ``callbacks.ProgressBar`` reads, as in fine-tuning)."""

    config: PretrainConfig
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    loss: float = float("nan")
    history: list[dict[str, float]] = field(default_factory=list)
    is_main: bool = True
    stop: bool = False


@dataclass
class PretrainLoop:
    """Everything one pretraining run works with, built by :func:`start_pretraining`."""

    model: BERTPretrainer
    examples: Sequence[PretrainExample]
    config: PretrainConfig
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None
    state: PretrainState
    pad_id: int
    callbacks: Sequence[Any] = ()
    out: Path | None = None
    window: Counter = field(default_factory=Counter)  # sums since the last history point
    seconds: float = 0.0

    def notify(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self.state, *args)


def start_pretraining(
    model: BERTPretrainer, examples: Sequence[PretrainExample], config: PretrainConfig,
    pad_id: int, callbacks: Sequence[Any] = (), output_dir: str | Path | None = None,
) -> PretrainLoop:
    """Device, optimizer (AdamW, no decay on biases and norms), warm-up and decay, precision."""
    if not examples:
        raise EmptySplitError(
            "no pretraining examples: every sentence pair was longer than max_len")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model.to(device).train()
    optimizer = make_optimizer(model, config)  # reads lr, optimizer, weight_decay
    dtype = autocast_dtype(config.precision, device)
    return PretrainLoop(
        model, examples, config, device, optimizer,
        make_scheduler(optimizer, config, config.steps),
        torch.amp.GradScaler(device.type, enabled=dtype == torch.float16), dtype,
        PretrainState(config, total_steps=config.steps), pad_id, callbacks,
        Path(output_dir) if output_dir is not None else None)


RESUME_MAY_DIFFER = ("device", "log_every", "checkpoint_every")


def resume_pretraining(loop: PretrainLoop, path: str | Path) -> None:
    """Continue from a checkpoint of the same settings and examples."""
    ckpt = load_checkpoint(path)
    wanted = {k: v for k, v in dataclasses.asdict(loop.config).items()
              if k not in RESUME_MAY_DIFFER}
    saved = {k: v for k, v in ckpt.get("config", {}).items() if k not in RESUME_MAY_DIFFER}
    differ = [f"{k}={saved.get(k)!r} (now {v!r})" for k, v in wanted.items() if saved.get(k) != v]
    if ckpt.get("examples") != examples_fingerprint(loop.examples):
        differ.append("other examples (data, vocabulary or seed)")
    if differ:
        raise CheckpointError(f"cannot resume {path}: it was made with {', '.join(differ)}; "
                              "delete it (or choose another output folder) to start afresh")
    loop.model.load_state_dict(ckpt["model"])
    loop.optimizer.load_state_dict(ckpt["optimizer"])
    loop.scheduler.load_state_dict(ckpt["scheduler"])
    loop.scaler.load_state_dict(ckpt["scaler"])
    loop.state.step, loop.state.history = ckpt["step"], ckpt["history"]
    loop.window, loop.seconds = Counter(ckpt["window"]), ckpt["seconds"]
    torch.set_rng_state(ckpt["rng"]["torch"])
    if "cuda" in ckpt["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The examples of optimizer step ``step``: a fresh shuffle every epoch, from ``seed`` and the
    epoch alone, so a resumed run draws the batches it would have drawn."""
    per_epoch = -(-n // batch_size)
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[index * batch_size:(index + 1) * batch_size].tolist()


def pretrain_step(loop: PretrainLoop, indices: Sequence[int]) -> dict[str, float]:
    """One optimizer step on the MLM loss plus the NSP loss, as in the book."""
    batch = collate([loop.examples[i] for i in indices], loop.pad_id).to(loop.device)
    loop.optimizer.zero_grad(set_to_none=True)
    with autocast(loop.device, loop.dtype):
        mlm_loss, nsp_loss, counts = pretraining_losses(loop.model, batch)
    check_loss((mlm_loss + nsp_loss).item(), loop.state.step, loop.config.lr)
    loop.scaler.scale(mlm_loss + nsp_loss).backward()
    if loop.config.max_grad_norm is not None:
        loop.scaler.unscale_(loop.optimizer)
        nn.utils.clip_grad_norm_(loop.model.parameters(), loop.config.max_grad_norm)
    loop.scaler.step(loop.optimizer)
    loop.scaler.update()
    loop.scheduler.step()
    loop.state.step += 1
    return {"mlm_loss": mlm_loss.item(), "nsp_loss": nsp_loss.item(), "steps": 1.0, **counts}


def log_window(loop: PretrainLoop) -> None:
    """Turn the sums since the last point into one point of the loss curves."""
    w = loop.window
    if not w["steps"]:
        return
    loop.state.history.append({
        "step": loop.state.step,
        "mlm_loss": w["mlm_loss"] / w["steps"],
        "nsp_loss": w["nsp_loss"] / w["steps"],
        "mlm_accuracy": w["mlm_correct"] / max(1.0, w["mlm_predictions"]),
        "nsp_accuracy": w["nsp_correct"] / max(1.0, w["pairs"]),
        "lr": loop.scheduler.get_last_lr()[0],
    })
    loop.window = Counter()


def save_pretraining_checkpoint(loop: PretrainLoop) -> None:
    if loop.out is None:
        return
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    save_checkpoint(loop.out / PRETRAIN_CHECKPOINT, {
        "model": loop.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(), "scaler": loop.scaler.state_dict(),
        "step": loop.state.step, "history": loop.state.history, "window": dict(loop.window),
        "seconds": loop.seconds, "rng": rng, "config": dataclasses.asdict(loop.config),
        "model_config": loop.model.config.to_dict(),
        "examples": examples_fingerprint(loop.examples)})
    atomic_write_json(loop.out / PRETRAIN_HISTORY, loop.state.history)


@dataclass
class PretrainResult:
    history: list[dict[str, float]]
    steps: int
    train_seconds: float  # optimizer steps only, resumed ones included
    resumed_at: int  # the step the run started from (0: a fresh run)
    output_dir: Path | None


def pretrain(
    model: BERTPretrainer, examples: Sequence[PretrainExample], config: PretrainConfig,
    *, pad_id: int, callbacks: Sequence[Any] = (), output_dir: str | Path | None = None,
    resume: bool = False,
) -> PretrainResult:
    """Pretrain ``model`` for ``config.steps`` steps on MLM + NSP.

    With ``output_dir``, a resumable checkpoint (every ``checkpoint_every`` steps and at the end),
    the history and the config are written there atomically; with ``resume``, a checkpoint found
    there is continued (a finished one is simply loaded), provided it was made with the same
    settings and examples.
    """
    loop = start_pretraining(model, examples, config, pad_id, callbacks, output_dir)
    checkpoint = loop.out / PRETRAIN_CHECKPOINT if loop.out is not None else None
    if resume and checkpoint is not None and checkpoint.exists():
        resume_pretraining(loop, checkpoint)
    resumed_at = loop.state.step
    if loop.out is not None:
        atomic_write_json(loop.out / PRETRAIN_CONFIG, {
            "pretrain": dataclasses.asdict(config), "model": model.config.to_dict(),
            "examples": len(examples), "versions": library_versions()})
    loop.notify("on_train_begin")
    while loop.state.step < config.steps and not loop.state.stop:
        tick = time.perf_counter()
        numbers = pretrain_step(loop, batch_indices(len(examples), config.batch_size,
                                                    config.seed, loop.state.step))
        loop.seconds += time.perf_counter() - tick
        loop.window.update(numbers)
        loop.state.loss = numbers["mlm_loss"] + numbers["nsp_loss"]
        if loop.state.step % config.log_every == 0 or loop.state.step == config.steps:
            log_window(loop)
        loop.notify("on_step_end")
        if config.checkpoint_every and loop.state.step % config.checkpoint_every == 0:
            save_pretraining_checkpoint(loop)
    if loop.state.step > resumed_at or not (checkpoint and checkpoint.exists()):
        save_pretraining_checkpoint(loop)
    loop.notify("on_train_end")
    model.eval()
    return PretrainResult(loop.state.history, loop.state.step, loop.seconds, resumed_at,
                          loop.out)


# -- saving in the book's format -------------------------------------------------------------
@dataclass(frozen=True)
class SavedCheckpoint:
    folder: Path  # vocab.json + pretrained.params
    zip_path: Path  # the same, zipped as the book ships bert.small
    sha1: str


def save_pretrained(
    model: BERTPretrainer, tokenizer: TextTokenizer, output_dir: str | Path,
    name: str = CHECKPOINT_NAME,
) -> SavedCheckpoint:
    """Write ``<output_dir>/<name>/`` and ``<output_dir>/<name>.zip`` in the book's format, heads
    included (as in ``bert.small``), and return them with the zip's SHA-1."""
    folder = save_book_folder(Path(output_dir) / name, model.state_dict(), tokenizer)
    zip_path = zip_book_folder(folder, Path(output_dir) / f"{name}.zip")
    return SavedCheckpoint(folder, zip_path, sha1_of(zip_path))


# -- what the model learned, and what fine-tuning keeps of it --------------------------------
@torch.inference_mode()
def masked_predictions(
    model: BERTPretrainer, vocab: TextTokenizer, sentences: Sequence[Tokens],
    positions: Sequence[int], k: int = 3,
) -> list[list[str]]:
    """The ``k`` likeliest words for one ``<mask>`` put at ``positions[i]`` of ``sentences[i]``
    (a single-segment input, ``<cls> sentence <sep>``)."""
    model.eval()
    device = next(model.parameters()).device
    guesses = []
    for sentence, position in zip(sentences, positions):
        masked = [*sentence[:position], BOOK_SPECIALS.mask, *sentence[position + 1:]]
        tokens, segments = vocab.pack_tokens(masked)
        ids = torch.tensor([vocab[tokens]], device=device)
        at = torch.tensor([[position + 1]], device=device)  # +1: <cls> comes first
        _, logits, _ = model(ids, torch.tensor([segments], device=device), None, at)
        guesses.append(vocab.to_tokens(logits[0, 0].topk(k).indices.tolist()))
    return guesses


@torch.inference_mode()
def pretraining_correct(
    model: BERTPretrainer, examples: Sequence[PretrainExample], pad_id: int,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Which masked tokens (one entry per real prediction) and which next-sentence labels (one per
    example) the model gets right: the paired scores that ``comparison.compare`` reads."""
    model.eval()
    device = next(model.parameters()).device
    mlm, nsp = [], []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start:start + batch_size], pad_id).to(device)
        _, mlm_logits, nsp_logits = model(batch.tokens, batch.segments, batch.valid_lens,
                                          batch.pred_positions)
        hits = mlm_logits.argmax(-1) == batch.mlm_labels
        mlm.append(hits[batch.mlm_weights.bool()].cpu().numpy())
        nsp.append((nsp_logits.argmax(-1) == batch.nsp_labels).cpu().numpy())
    return np.concatenate(mlm), np.concatenate(nsp)


def masked_token_counts(examples: Sequence[PretrainExample]) -> Counter[int]:
    """How often each token id is a masked target in ``examples`` (the words MLM is asked for)."""
    return Counter(label for ex in examples for label in ex.mlm_labels)


def unigram_baseline(
    train_examples: Sequence[PretrainExample], held_out: Sequence[PretrainExample],
) -> tuple[int, np.ndarray]:
    """MLM's frequency baseline: always answer the token masked most often in the pretraining
    (train) examples. Returns that token id and which held-out masked tokens it gets right, in
    the order of :func:`pretraining_correct`'s MLM scores, so ``comparison.compare`` can pair
    the two: a head that beats only an untrained network may have learned word frequencies."""
    counts = masked_token_counts(train_examples)
    if not counts:
        raise ValueError("the training examples hold no masked token to count")
    token = counts.most_common(1)[0][0]
    hits = np.array([label == token for ex in held_out for label in ex.mlm_labels], dtype=bool)
    return token, hits


def scored_sentence(comparison: Any, unit: str) -> str:
    """A comparison's generated sentence with its items named (``masked tokens`` for MLM, where
    ``Comparison.sentence`` says pairs) and without its full stop, to join several in one line."""
    return comparison.sentence().rstrip(".").replace(f"{comparison.n_pairs:,} pairs",
                                                     f"{comparison.n_pairs:,} {unit}")


CHECKPOINT_PARTS = {"encoder.": "encoder", "hidden.": "pooler (hidden)", "mlm.": "MLM head",
                    "nsp.": "NSP head"}


def checkpoint_usage(folder: str | Path, classifier: nn.Module) -> list[dict[str, Any]]:
    """Each part of a book checkpoint: its tensors and parameters, and how many of them the
    classifier took over (the loader renames them with the same table). A last row counts the
    classifier's parameters that no checkpoint gave it (its new layers)."""
    raw: Mapping[str, torch.Tensor] = load_tensors(Path(folder) / BOOK_PARAMS_FILE,
                                                  "book checkpoint")
    own = classifier.state_dict()
    rows: dict[str, dict[str, Any]] = {}
    taken = set()
    for key, tensor in raw.items():
        part = next((name for prefix, name in CHECKPOINT_PARTS.items()
                     if key.startswith(prefix)), "other")
        row = rows.setdefault(part, {"part": part, "tensors": 0, "parameters": 0,
                                     "used by the classifier": 0})
        row["tensors"] += 1
        row["parameters"] += tensor.numel()
        renamed, _ = rename_keys({key: tensor}, BOOK_KEY_RULES, BOOK_IGNORED)
        ours = next(iter(renamed), None)
        if ours in own:
            row["used by the classifier"] += tensor.numel()
            taken.add(ours)
    new = sum(v.numel() for k, v in own.items() if k not in taken)
    return [*rows.values(), {"part": "classifier's new layers (not in the checkpoint)",
                             "tensors": sum(k not in taken for k in own), "parameters": new,
                             "used by the classifier": new}]
