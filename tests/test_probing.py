"""Linear probes on frozen features: the features are the model's own, the probe reads them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertnli_helpers.comparison import learning_check
from bertnli_helpers.data import SNLIBERTDataset
from bertnli_helpers.model import masked_mean
from bertnli_helpers.pretrained import load_pretrained
from bertnli_helpers.probing import (
    POOLED_CLS,
    feature_kinds,
    frozen_features,
    linear_probe,
    probe_all,
)
from bertnli_helpers.snli import read_records


@pytest.fixture(scope="module")
def minilm():
    return load_pretrained("minilm")


def test_frozen_features_are_the_models_own_vectors(minilm, snli_dir):
    bert, tok = minilm
    bert.train()
    dev = SNLIBERTDataset(read_records(snli_dir, "dev").sample(12, 0), tok, max_len=64, cache=False)
    features = frozen_features(bert, dev, batch_size=5)  # batches of mixed lengths, reordered
    assert bert.training, "the model's mode is restored"
    assert set(features) == set(feature_kinds())
    assert features["pair"].shape == (12, 4 * bert.config.hidden_size)
    (ids, seg, valid), _ = dev.batch([7])
    with torch.no_grad():
        bert.eval()
        encoded, pooled = bert(ids, seg, valid)
        bert.train()
    np.testing.assert_allclose(features[POOLED_CLS][7], pooled[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(features["mean"][7], masked_mean(encoded, valid)[0].numpy(),
                               atol=1e-5)
    with pytest.raises(ValueError, match="unknown feature kinds"):
        frozen_features(bert, dev, ["max"])


def test_a_probe_reads_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    x_train, x_dev = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    label = lambda x: x[:, :3].argmax(1)  # noqa: E731  (linear in the features)
    readable = linear_probe(x_train, label(x_train), x_dev, label(x_dev))
    assert readable.accuracy > 0.85 and readable.width == 8
    noise = linear_probe(x_train, rng.integers(0, 3, 300), x_dev, rng.integers(0, 3, 300))
    assert noise.accuracy < 0.5
    with pytest.raises(ValueError, match="one label per row"):
        linear_probe(x_train, label(x_train)[:10], x_dev, label(x_dev))


def test_minilm_pair_features_hold_the_label(minilm, snli_dir):
    bert, tok = minilm
    train, dev = (SNLIBERTDataset(read_records(snli_dir, split).sample(300, 0), tok, max_len=64,
                                  cache=False) for split in ("train", "dev"))
    probes = probe_all(bert, train, dev, ["pair", "mean"])
    assert learning_check(probes["pair"].correct, dev.encoded.labels).learned
    assert all(0 <= p.train_accuracy <= 1 for p in probes.values())
