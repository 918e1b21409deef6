"""The book's fine-tuning step beside ours, on the same weights and the same batch.

The chapter fine-tunes with d2l's ``BERTModel``, a classifier that reads ``<cls>`` through the
pretrained pooler, Adam at 1e-4, the summed cross-entropy of ``d2l.train_batch_ch13``, and every
pair padded to 128 tokens. Ours is ``train.train_step`` with the book's preset but dynamic
padding. Starting from the same book-form checkpoint, one step each must give the same loss and
the same updated weights (padding changes the cost, not the result); the time of each step is
measured on top.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from bertnli_helpers.data.tokenization import TextTokenizer, book_word_counts, build_book_vocab
from bertnli_helpers.files import atomic_torch_save, atomic_write_json

BOOK_SMALL_SIZES = {"hidden": 256, "ffn": 512, "heads": 4, "layers": 2}  # the book's bert.small


class BookClassifier(nn.Module):
    """The chapter's NLI classifier on d2l's ``BERTModel``: its encoder, its pretrained pooler
    on ``<cls>``, and a new output layer. ``bert.mlm`` and ``bert.nsp`` are not registered here,
    so they are not among this module's parameters."""

    def __init__(self, bert: nn.Module, hidden_size: int, num_classes: int = 3) -> None:
        super().__init__()
        self.encoder = bert.encoder
        self.hidden = bert.hidden
        self.output = nn.Linear(hidden_size, num_classes)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        tokens, segments, valid_lens = inputs
        encoded = self.encoder(tokens, segments, valid_lens)
        return self.output(self.hidden(encoded[:, 0, :]))


def write_book_checkpoint(
    d2l: ModuleType, sentences: Sequence[str], folder: str | Path, *, min_freq: int = 2,
    max_len: int = 128, seed: int = 0, **sizes: int,
) -> tuple[nn.Module, TextTokenizer]:
    """A checkpoint in the book's form (``vocab.json`` + ``pretrained.params``) made by d2l's own
    ``BERTModel`` with random weights (the real ``bert.small`` needs a download). Dropout is 0,
    so that a training step is the same computation on both sides."""
    sizes = {**BOOK_SMALL_SIZES, **sizes}
    vocab = build_book_vocab(book_word_counts(sentences), min_freq=min_freq)
    torch.manual_seed(seed)
    bert = d2l.BERTModel(len(vocab), sizes["hidden"], sizes["ffn"], sizes["heads"],
                         sizes["layers"], 0.0, max_len=max_len)
    tokens = torch.zeros(1, 4, dtype=torch.long)  # one pass gives the lazy layers their shapes
    bert(tokens, tokens, torch.tensor([4]), torch.zeros(1, 1, dtype=torch.long))
    folder = Path(folder)
    atomic_write_json(folder / "vocab.json", vocab.idx_to_token)
    atomic_torch_save(folder / "pretrained.params", bert.state_dict())
    return bert, vocab


@dataclass(frozen=True)
class StepComparison:
    """One training step of the book's code and of ours, from the same weights on one batch."""

    pairs: int
    book_width: int  # tokens per row the book's step computes on (padded)
    our_width: int  # tokens per row of our batch (padded to its longest pair)
    book_loss: float  # mean cross-entropy of the step's batch
    our_loss: float
    book_loss_after: float  # the same batch's loss after the step
    our_loss_after: float
    book_seconds: float  # median of the timed steps
    our_seconds: float

    @property
    def slowdown(self) -> float:
        return self.book_seconds / self.our_seconds

    def rows(self) -> list[dict[str, object]]:
        return [
            {"code": "book (d2l.train_batch_ch13)", "tokens per row": self.book_width,
             "loss of the step": round(self.book_loss, 6),
             "loss after the step": round(self.book_loss_after, 6),
             "seconds per step": round(self.book_seconds, 4)},
            {"code": "ours (train.train_step)", "tokens per row": self.our_width,
             "loss of the step": round(self.our_loss, 6),
             "loss after the step": round(self.our_loss_after, 6),
             "seconds per step": round(self.our_seconds, 4)},
        ]


def _loss(net: nn.Module, inputs: Sequence[torch.Tensor], labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(net(tuple(inputs)), labels))


def one_step_each(d2l: ModuleType, book_net: nn.Module, our_net: nn.Module, dataset,
                  indices: Sequence[int], *, lr: float = 1e-4, timed_steps: int = 3
                  ) -> StepComparison:
    """One step of the book's loop and one of ours on the pairs ``indices`` of ``dataset``, then
    ``timed_steps`` more of each for the time (both models change; the losses are from the
    first step). Both nets must start from the same weights."""
    from bertnli_helpers.train.config import preset
    from bertnli_helpers.train.loop import start_loop, train_step

    book_inputs, labels = dataset.batch(indices, pad_to=dataset.max_len)  # the book pads all
    our_inputs, _ = dataset.batch(indices)
    trainer = torch.optim.Adam(book_net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss(reduction="none")
    devices = [torch.device("cpu")]

    def book_step() -> float:
        total, _ = d2l.train_batch_ch13(book_net, list(book_inputs), labels, loss, trainer,
                                        devices)
        return float(total.detach()) / len(indices)

    config = preset("book", batch_size=len(indices), epochs=1, lr=lr, bucket=True, pad_to=None,
                    micro_batch_size=None, device="cpu", precision="fp32")
    loop = start_loop(our_net, dataset, None, config)
    our_net.train()
    book_loss, our_loss = book_step(), train_step(loop, list(indices))
    book_after, our_after = _loss(book_net, book_inputs, labels), _loss(our_net, our_inputs,
                                                                        labels)
    book_times, our_times = [], []
    for _ in range(timed_steps):
        book_times.append(_timed(book_step))
        our_times.append(_timed(lambda: train_step(loop, list(indices))))
    return StepComparison(len(indices), book_inputs[0].shape[1], our_inputs[0].shape[1],
                          book_loss, our_loss, book_after, our_after,
                          _median(book_times), _median(our_times))


def _timed(step) -> float:
    tick = time.perf_counter()
    step()
    return time.perf_counter() - tick


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
