"""Which parameters a classifier holds, where each came from, and which ones a step updates.

Fine-tuning starts from a checkpoint made for other tasks. Some of its tensors are loaded and
trained further (the encoder, and the pooler when the classifier reads ``<cls>``), some are new
(the output layer, and the ``pair`` head's hidden layer), and some are loaded but never used
(the book checkpoint's masked-LM and next-sentence heads; the pooler when ``pair`` replaces it).
The book's MXNet code passes ``ignore_stale_grad=True`` so that its trainer accepts parameters
whose gradients were never computed. In PyTorch such a parameter keeps ``grad is None`` and the
optimizers skip it; this module lists the groups and proves, on a real batch, which tensors get
a gradient.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from bertnli_helpers.model.checkpoints import load_tensors

BOOK_PARAMS_FILE = "pretrained.params"
BOOK_UNUSED_HEADS = {r"^mlm\.": "masked-LM head (mlm)", r"^nsp\.": "next-sentence head (nsp)"}


def reads_pretrained_pooler(net: nn.Module) -> bool:
    """Whether the classifier's hidden layer is the pretrained pooler (it reads one vector of
    the hidden size, as ``cls`` and ``mean`` do) rather than a new one (``pair``: 4 vectors)."""
    return net.pooling_head.width == net.config.hidden_size


def group_of(name: str, net: nn.Module) -> tuple[str, str]:
    """``(group, origin)`` of a ``BERTClassifier`` parameter name."""
    if name.startswith("encoder."):
        return "encoder", "loaded from the checkpoint"
    if name.startswith("hidden."):
        if reads_pretrained_pooler(net):
            return "pooler (hidden)", "loaded from the checkpoint"
        return f"new hidden layer ({net.pooling} head)", "new, random"
    if name.startswith("output."):
        return "output layer", "new, random"
    return name.split(".")[0], "new, random"


def parameter_table(net: nn.Module, unused: Mapping[str, torch.Tensor] | None = None
                    ) -> pd.DataFrame:
    """One row per group: where it came from, whether training changes it, tensors, numbers.

    ``unused`` are tensors the checkpoint held that the classifier does not (see
    :func:`unused_pretrained` and :func:`unused_book_heads`), grouped by their first name part.
    """
    rows: dict[str, dict[str, object]] = {}
    for name, param in net.named_parameters():
        group, origin = group_of(name, net)
        row = rows.setdefault(group, {"group": group, "origin": origin, "trained": set(),
                                      "tensors": 0, "parameters": 0})
        row["trained"].add("fine-tuned" if param.requires_grad else "frozen")
        row["tensors"] += 1
        row["parameters"] += param.numel()
    for name, tensor in (unused or {}).items():
        group = _unused_group(name)
        row = rows.setdefault(group, {"group": group, "origin": "loaded, not used",
                                      "trained": {"never (not in the classifier)"},
                                      "tensors": 0, "parameters": 0})
        row["tensors"] += 1
        row["parameters"] += tensor.numel()
    frame = pd.DataFrame(rows.values())
    frame["trained"] = frame["trained"].map(lambda kinds: " and ".join(sorted(kinds)))
    return frame


def _unused_group(name: str) -> str:
    for pattern, label in BOOK_UNUSED_HEADS.items():
        if re.search(pattern, name):
            return label
    if name.startswith("hidden."):
        return "pretrained pooler (hidden), unused"
    return name.split(".")[0] + " (unused)"


def new_parameter_count(net: nn.Module) -> int:
    """How many of the classifier's numbers start from random values (not from a checkpoint)."""
    return sum(p.numel() for name, p in net.named_parameters()
               if group_of(name, net)[1].startswith("new"))


def unused_pretrained(bert: nn.Module, net: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters of the loaded ``PretrainedBERT`` that the classifier does not hold."""
    held = {id(p) for p in net.parameters()}
    return {name: p.detach() for name, p in bert.named_parameters() if id(p) not in held}


def unused_book_heads(folder: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a book-form checkpoint (``pretrained.params``) that loading leaves out:
    the pretraining heads, which fine-tuning never uses."""
    state = load_tensors(Path(folder) / BOOK_PARAMS_FILE, "book checkpoint")
    return {name: tensor for name, tensor in state.items()
            if any(re.search(pattern, name) for pattern in BOOK_UNUSED_HEADS)}


def tensors_with_gradients(model: nn.Module, inputs: Sequence[torch.Tensor],
                           labels: torch.Tensor) -> dict[str, bool]:
    """Run one forward and backward pass on a batch: for every parameter, did it receive a
    gradient (not None, not all zeros)? Gradients are cleared first and left for inspection."""
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(tuple(inputs)), labels)
    loss.backward()
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0)
            for name, p in model.named_parameters()}


def gradient_table(net: nn.Module, inputs: Sequence[torch.Tensor],
                   labels: torch.Tensor) -> pd.DataFrame:
    """Per group of :func:`parameter_table`: how many tensors a backward pass reached."""
    reached = tensors_with_gradients(net, inputs, labels)
    rows: dict[str, dict[str, object]] = {}
    for name, got in reached.items():
        group, _ = group_of(name, net)
        row = rows.setdefault(group, {"group": group, "tensors": 0, "with a gradient": 0})
        row["tensors"] += 1
        row["with a gradient"] += int(got)
    return pd.DataFrame(rows.values())
