"""Costs from a config: parameter counts match a built model, FLOPs add up as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertnli_helpers.model.bert import BertConfig, PretrainedBERT, count_parameters
from bertnli_helpers.study.costs import (
    estimate_training,
    layer_parameters,
    parameter_count,
    training_flops,
)


@pytest.mark.parametrize("flavour", ["book", "hf"])
@pytest.mark.parametrize("sizes", [dict(hidden_size=64, num_layers=3, num_heads=4, ffn_size=128),
                                   dict(hidden_size=768, num_layers=12, num_heads=12,
                                        ffn_size=3072)])
def test_parameter_count_matches_the_built_model(flavour, sizes):
    config = BertConfig(vocab_size=30522, flavour=flavour, **sizes)
    with torch.device("meta"):  # shapes only
        model = PretrainedBERT(config)
    assert parameter_count(config) == count_parameters(model)
    assert layer_parameters(config) == count_parameters(model.encoder.blocks)


def test_training_flops_are_six_per_weight_per_token_plus_attention():
    config = BertConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, ffn_size=64)
    weights = 6 * layer_parameters(config)
    one = training_flops(config, [10])
    assert one == weights * 10 + 12 * 2 * 32 * 100
    assert training_flops(config, [10, 10]) == 2 * one  # a batch costs the sum of its pairs
    assert training_flops(config, [20]) > 2 * one  # attention grows with the square


def test_estimate_training_scales_with_pairs_epochs_and_speed():
    config = BertConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, ffn_size=64)
    lengths = np.array([20, 30, 25])
    estimate = estimate_training(config, lengths, pairs=1000, epochs=3, examples_per_s=50.0)
    assert estimate.examples == 3000 and estimate.hours == pytest.approx(3000 / 50 / 3600)
    assert estimate.flops == pytest.approx(training_flops(config, lengths) / 3 * 3000)
    assert estimate.flops_per_s == pytest.approx(estimate.flops / 60)
    with pytest.raises(ValueError, match="positive"):
        estimate_training(config, lengths, pairs=10, epochs=1, examples_per_s=0)
