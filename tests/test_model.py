"""The encoder's behaviour that fine-tuning relies on: masking, attention maps, freezing, errors."""

from __future__ import annotations

import pytest
import torch

from bertnli_helpers.errors import InputTooLongError
from bertnli_helpers.model.bert import (
    POOLING_HEADS,
    BERTClassifier,
    BertConfig,
    PoolingHead,
    PretrainedBERT,
    count_parameters,
    masked_mean,
)


def tiny(flavour: str) -> PretrainedBERT:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_layers=2, num_heads=4, ffn_size=64,
                        max_len=24, flavour=flavour)
    return PretrainedBERT(config).eval()


@pytest.mark.parametrize("flavour", ["book", "hf"])
def test_padding_never_changes_the_valid_positions(flavour):
    model = tiny(flavour)
    tokens = torch.randint(5, 50, (1, 9))
    segments = torch.tensor([[0] * 5 + [1] * 4])
    alone = model.encoder(tokens, segments, torch.tensor([9]))
    padded_tokens = torch.cat([tokens, torch.randint(5, 50, (1, 6))], dim=1)
    padded_segments = torch.cat([segments, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    padded = model.encoder(padded_tokens, padded_segments, torch.tensor([9]))
    torch.testing.assert_close(padded[:, :9], alone, atol=1e-5, rtol=1e-5)
    # without the valid length the padding would leak in
    leaked = model.encoder(padded_tokens, padded_segments, None)
    assert (leaked[:, :9] - alone).abs().max() > 1e-3


@pytest.mark.parametrize("flavour", ["book", "hf"])
def test_attention_maps_are_distributions_that_ignore_padding(flavour):
    model = tiny(flavour)
    tokens = torch.randint(5, 50, (2, 10))
    segments = torch.zeros_like(tokens)
    valid = torch.tensor([10, 6])
    maps = model.encoder.attention_maps(tokens, segments, valid)
    assert maps.shape == (2, 2, 4, 10, 10)  # layers, batch, heads, queries, keys
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 4, 10))
    assert maps[:, 1, :, :, 6:].abs().max() == 0  # padded keys get no attention
    # the explicit-softmax path gives the same hidden states as the fused kernel
    x = model.encoder.embed(tokens, segments)
    from bertnli_helpers.model.bert import padding_mask

    mask = padding_mask(valid, 10)
    fused, _ = model.encoder.blocks[0](x, mask)
    explicit, _ = model.encoder.blocks[0](x, mask, need_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


def test_classifier_reuses_the_pooler_and_freezes_the_encoder():
    bert = tiny("book").train()
    net = BERTClassifier(bert, freeze_encoder=True)
    assert net.hidden is bert.hidden and net.encoder is bert.encoder
    tokens = torch.randint(5, 50, (3, 8))
    logits = net((tokens, torch.zeros_like(tokens), torch.tensor([8, 5, 3])))
    assert logits.shape == (3, 3)
    logits.sum().backward()
    assert all(p.grad is None for p in net.encoder.parameters())
    assert net.output.weight.grad is not None and net.hidden[0].weight.grad is not None
    assert net.encoder_frozen
    assert count_parameters(net, trainable_only=True) == sum(
        p.numel() for p in [*net.hidden.parameters(), *net.output.parameters()]
    )


def test_input_longer_than_the_position_table_is_refused():
    model = tiny("hf")
    tokens = torch.randint(5, 50, (1, 25))
    with pytest.raises(InputTooLongError, match="25 tokens.*24"):
        model.encoder(tokens, torch.zeros_like(tokens), torch.tensor([25]))


def test_config_rejects_heads_that_do_not_divide_hidden():
    with pytest.raises(ValueError, match="not divisible"):
        BertConfig(vocab_size=10, hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="flavour"):
        BertConfig(vocab_size=10, flavour="gpt")
    assert BertConfig(vocab_size=10).layer_norm_eps == 1e-5
    assert BertConfig(vocab_size=10, flavour="hf").layer_norm_eps == 1e-12


def test_mean_pooling_averages_only_the_valid_tokens():
    bert = tiny("hf")
    net = BERTClassifier(bert, pooling="mean").eval()
    tokens = torch.randint(5, 50, (2, 7))
    segments = torch.zeros_like(tokens)
    valid = torch.tensor([7, 4])
    encoded = net.encoder(tokens, segments, valid)
    pooled = net.pool(encoded, valid)
    torch.testing.assert_close(pooled[1], encoded[1, :4].mean(0))
    torch.testing.assert_close(pooled[0], encoded[0].mean(0))
    alone = net((tokens[1:, :4], segments[1:, :4], valid[1:]))
    torch.testing.assert_close(net((tokens, segments, valid))[1:], alone, atol=1e-5, rtol=1e-5)
    assert BERTClassifier(bert).pooling == "cls"
    with pytest.raises(ValueError, match="pooling must be"):
        BERTClassifier(bert, pooling="max")


def test_pair_pooling_compares_the_premise_and_hypothesis_means():
    bert = tiny("hf")
    net = BERTClassifier(bert, pooling="pair").eval()
    tokens = torch.randint(5, 50, (2, 8))
    segments = torch.tensor([[0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]])
    valid = torch.tensor([5, 8])  # the first pair is padded after its 5 tokens
    encoded = net.encoder(tokens, segments, valid)
    pooled = net.pool(encoded, valid, segments)
    u, v = encoded[0, :3].mean(0), encoded[0, 3:5].mean(0)  # padding counts for neither side
    torch.testing.assert_close(pooled[0], torch.cat([u, v, (u - v).abs(), u * v]))
    hidden = bert.config.hidden_size
    assert net.hidden[0].in_features == 4 * hidden and net.output.in_features == hidden
    assert net((tokens, segments, valid)).shape == (2, 3)
    alone = net((tokens[:1, :5], segments[:1, :5], valid[:1]))
    torch.testing.assert_close(net((tokens, segments, valid))[:1], alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="segment ids"):
        net.pool(encoded, valid)


def test_masked_mean_is_the_mean_pooling_of_the_valid_tokens():
    encoded = torch.randn(3, 6, 4)
    valid = torch.tensor([6, 2, 1])
    pooled = masked_mean(encoded, valid)
    for row, n in enumerate(valid.tolist()):
        torch.testing.assert_close(pooled[row], encoded[row, :n].mean(0))
    torch.testing.assert_close(masked_mean(encoded, None), encoded.mean(1))
    net = BERTClassifier(tiny("hf"), pooling="mean").eval()
    tokens = torch.randint(5, 50, (3, 6))
    states = net.encoder(tokens, torch.zeros_like(tokens), valid)
    torch.testing.assert_close(net.pool(states, valid), masked_mean(states, valid))


def test_an_unknown_pooling_name_lists_the_registered_heads():
    with pytest.raises(ValueError, match="pooling must be") as info:
        BERTClassifier(tiny("hf"), pooling="max")
    for name in POOLING_HEADS:
        assert name in str(info.value)


class MaxPooling(PoolingHead):
    """A head registered by a test: the element-wise max and the ``<cls>`` state."""

    vectors = 2

    def forward(self, encoded, valid_lens, segments):
        return torch.cat([encoded.max(dim=1).values, encoded[:, 0, :]], dim=-1)


def test_a_registered_pooling_head_is_picked_up_by_the_classifier(monkeypatch):
    monkeypatch.setitem(POOLING_HEADS, "max", MaxPooling)
    bert = tiny("hf")
    net = BERTClassifier(bert, pooling="max").eval()
    tokens = torch.randint(5, 50, (2, 6))
    segments, valid = torch.zeros_like(tokens), torch.tensor([6, 6])
    encoded = net.encoder(tokens, segments, valid)
    torch.testing.assert_close(net.pool(encoded, valid),
                               torch.cat([encoded.max(dim=1).values, encoded[:, 0]], dim=-1))
    hidden = bert.config.hidden_size
    assert net.hidden is not bert.hidden and net.hidden[0].in_features == 2 * hidden
    assert net((tokens, segments, valid)).shape == (2, 3)


@pytest.mark.parametrize("pooling", list(POOLING_HEADS))
def test_pooling_heads_keep_the_classifier_parameter_names(pooling):
    """Saved runs load by these names: a head adds none of its own."""
    bert = tiny("hf")
    encoder_keys = [f"encoder.{k}" for k in bert.encoder.state_dict()]
    expected = [*encoder_keys, "hidden.0.weight", "hidden.0.bias", "output.weight", "output.bias"]
    assert list(BERTClassifier(bert, pooling=pooling).state_dict()) == expected
