"""Training objectives: the loss of one batch, summed over its pairs.

``TrainConfig.objective`` names one of :data:`OBJECTIVES`. The default is plain cross-entropy.
The others *debias*: they also read a fixed **bias expert**'s class probabilities for each
training pair (here the hypothesis-only model, whose right answers come from annotation
artifacts) and train the main model to explain what that expert cannot:

* ``product_of_experts`` (Clark et al., EMNLP 2019; He et al., 2019): the training prediction
  is ``softmax(log p_model + log p_bias)``. Where the bias expert is already confidently right,
  the product is right whatever the main model says, so that pair's gradient is small; where it
  is wrong, the main model must overcome it. At test time the main model is used alone.
* ``reweight`` (example reweighting, as compared by Utama et al., ACL 2020): each pair's
  cross-entropy weighted by ``1 - p_bias(gold)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["OBJECTIVES", "Objective"]

EPS = 1e-12  # keeps log(p_bias) finite when the bias expert gives a class probability 0


@dataclass(frozen=True)
class Objective:
    """``loss(logits, labels, bias_probs)`` -> summed loss; ``needs_bias``: it reads the bias
    expert's probabilities ``(batch, classes)`` of the batch's pairs (None otherwise)."""

    loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    needs_bias: bool


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="sum")


def product_of_experts(logits: torch.Tensor, labels: torch.Tensor,
                       bias: torch.Tensor | None) -> torch.Tensor:
    # cross_entropy normalises the summed log-probabilities again: the product's softmax
    combined = F.log_softmax(logits, dim=-1) + bias.clamp_min(EPS).log()
    return F.cross_entropy(combined, labels, reduction="sum")


def reweighted(logits: torch.Tensor, labels: torch.Tensor,
               bias: torch.Tensor | None) -> torch.Tensor:
    weights = 1.0 - bias.gather(1, labels[:, None]).squeeze(1)
    return (weights * F.cross_entropy(logits, labels, reduction="none")).sum()


OBJECTIVES: dict[str, Objective] = {
    "cross_entropy": Objective(cross_entropy, needs_bias=False),
    "product_of_experts": Objective(product_of_experts, needs_bias=True),
    "reweight": Objective(reweighted, needs_bias=True),
}
