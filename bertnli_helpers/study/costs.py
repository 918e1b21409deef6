"""What a BERT costs before it runs: parameters and training arithmetic, from its config alone.

The chapter's first exercise asks for ``bert.base``; whether that is an afternoon or a week
depends on arithmetic that the config already fixes. Counting it from the sizes (rather than
from a built model) works for models that are not at hand, and costs no memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bertnli_helpers.model.bert import BertConfig

# forward: 2 FLOPs (multiply + add) per weight per token; backward: twice the forward
TRAINING_FLOPS_PER_WEIGHT = 6


def embedding_parameters(config: BertConfig) -> int:
    """Token, position and segment tables (and the Hugging Face flavour's LayerNorm)."""
    tables = (config.vocab_size + config.max_len + config.type_vocab_size) * config.hidden_size
    return tables + (2 * config.hidden_size if config.flavour == "hf" else 0)


def layer_parameters(config: BertConfig) -> int:
    """The transformer blocks: the weights every token is multiplied by, layer after layer."""
    h, f = config.hidden_size, config.ffn_size
    attention = 4 * (h * h + h)  # query, key, value, output projections
    feed_forward = h * f + f + f * h + h
    norms = 2 * 2 * h  # two LayerNorms, scale and shift
    return config.num_layers * (attention + feed_forward + norms)


def parameter_count(config: BertConfig) -> int:
    """All parameters of a ``PretrainedBERT`` of these sizes (encoder and ``<cls>`` pooler)."""
    pooler = config.hidden_size * config.hidden_size + config.hidden_size
    return embedding_parameters(config) + layer_parameters(config) + pooler


def training_flops(config: BertConfig, lengths: Sequence[int] | np.ndarray) -> float:
    """Floating-point operations of one training step over pairs of these token lengths.

    The weights cost 6 FLOPs per layer weight per token; attention adds its two products
    (scores and the weighted sum), which grow with the square of each pair's length.
    Embedding look-ups and the small classifier head are left out.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    weights = TRAINING_FLOPS_PER_WEIGHT * layer_parameters(config) * lengths.sum()
    attention = 3 * 2 * 2 * config.num_layers * config.hidden_size * (lengths ** 2).sum()
    return float(weights + attention)


@dataclass(frozen=True)
class TrainingEstimate:
    """How long a recipe takes at a measured speed, and the arithmetic rate that speed is."""

    examples: int  # training examples seen (pairs x epochs)
    flops: float
    examples_per_s: float

    @property
    def hours(self) -> float:
        return self.examples / self.examples_per_s / 3600

    @property
    def flops_per_s(self) -> float:
        return self.flops / (self.examples / self.examples_per_s)


def estimate_training(config: BertConfig, lengths: Sequence[int] | np.ndarray, *, pairs: int,
                      epochs: int, examples_per_s: float) -> TrainingEstimate:
    """The time ``epochs`` over ``pairs`` pairs would take at ``examples_per_s``; ``lengths``
    is a sample of packed pair lengths standing in for the whole training split's."""
    if examples_per_s <= 0:
        raise ValueError(f"examples_per_s must be positive, not {examples_per_s}")
    lengths = np.asarray(lengths, dtype=np.float64)
    per_example = training_flops(config, lengths) / len(lengths)
    return TrainingEstimate(pairs * epochs, per_example * pairs * epochs, examples_per_s)
