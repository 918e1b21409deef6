"""Parameter groups of a classifier and which tensors one backward pass reaches."""

from __future__ import annotations

import torch

from bertnli_helpers.model.bert import BERTClassifier, BertConfig, PretrainedBERT, count_parameters
from bertnli_helpers.study.parameters import (
    gradient_table,
    new_parameter_count,
    parameter_table,
    reads_pretrained_pooler,
    tensors_with_gradients,
    unused_pretrained,
)

CONFIG = BertConfig(vocab_size=30, hidden_size=16, num_layers=2, num_heads=2, ffn_size=32,
                    max_len=16, dropout=0.0)


def batch():
    torch.manual_seed(0)
    tokens = torch.randint(5, 30, (4, 9))
    segments = (torch.arange(9) >= 5).long().expand(4, 9)
    return (tokens, segments, torch.tensor([9, 8, 7, 9])), torch.tensor([0, 1, 2, 1])


def by_group(frame):
    return frame.set_index("group").to_dict("index")


def test_cls_classifier_reuses_the_pooler_and_adds_only_the_output_layer():
    bert = PretrainedBERT(CONFIG)
    net = BERTClassifier(bert, pooling="cls")
    assert reads_pretrained_pooler(net)
    table = by_group(parameter_table(net, unused_pretrained(bert, net)))
    assert table["pooler (hidden)"]["origin"] == "loaded from the checkpoint"
    assert table["output layer"] == {"origin": "new, random", "trained": "fine-tuned",
                                     "tensors": 2, "parameters": 16 * 3 + 3}
    assert sum(row["parameters"] for row in table.values()) == count_parameters(net)
    assert new_parameter_count(net) == 16 * 3 + 3


def test_pair_classifier_leaves_the_pretrained_pooler_unused():
    bert = PretrainedBERT(CONFIG)
    net = BERTClassifier(bert, pooling="pair", freeze_encoder=True)
    table = by_group(parameter_table(net, unused_pretrained(bert, net)))
    assert table["encoder"]["trained"] == "frozen"
    assert table["new hidden layer (pair head)"]["parameters"] == 4 * 16 * 16 + 16
    unused = table["pretrained pooler (hidden), unused"]
    assert (unused["origin"], unused["parameters"]) == ("loaded, not used", 16 * 16 + 16)
    assert new_parameter_count(net) == 4 * 16 * 16 + 16 + 16 * 3 + 3


def test_backward_reaches_every_trained_tensor_and_no_frozen_one():
    inputs, labels = batch()
    full = BERTClassifier(PretrainedBERT(CONFIG), pooling="cls")
    reached = tensors_with_gradients(full, inputs, labels)
    # the segment table's second row and unused token rows get zero gradient, but the
    # embedding tensors as a whole do get one; every tensor in the path is reached
    assert all(reached.values()) and len(reached) == len(list(full.parameters()))
    frozen = BERTClassifier(PretrainedBERT(CONFIG), pooling="pair", freeze_encoder=True)
    table = by_group(gradient_table(frozen, inputs, labels))
    assert table["encoder"]["with a gradient"] == 0 and table["encoder"]["tensors"] > 0
    assert table["output layer"]["with a gradient"] == 2
    assert all(p.grad is None for p in frozen.encoder.parameters())
