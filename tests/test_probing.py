"""Linear probes on frozen features: the features are the model's own, the probe reads them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import read_records
from bertnli_helpers.model.bert import masked_mean
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.study.comparison import learning_check
from bertnli_helpers.study.probing import (
    NOT_COMPARED,
    POOLED_CLS,
    ProbeResult,
    compare_probes,
    feature_kinds,
    frozen_features,
    linear_probe,
    overfits,
    probe_all,
    probe_sentence,
    verdict_reading,
)


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


LABELS = np.arange(400) % 3  # balanced: majority rate 1/3


def probe(kind: str, hits: int, train_accuracy: float) -> ProbeResult:
    correct = np.zeros(400, dtype=bool)
    correct[:hits] = True
    return ProbeResult(kind, correct, train_accuracy, 384, 400)


def test_probe_sentence_never_advises_training_longer_and_reads_the_train_gap():
    memorised = probe("cls", 150, 1.0)  # dev 0.375: at chance, train 1.0
    check = learning_check(memorised.correct, LABELS)
    assert not check.learned and overfits(memorised)
    text = probe_sentence(memorised, check)
    assert "trains longer" not in text and "more probe pairs" in text and "1.000" in text
    blind = probe("mean", 150, 0.36)
    text = probe_sentence(blind, learning_check(blind.correct, LABELS))
    assert not overfits(blind) and "finds little of the label" in text
    good = probe("pair", 240, 0.62)
    text = probe_sentence(good, learning_check(good.correct, LABELS))
    assert text.startswith("The probe on pair learned") and "does not memorise" in text


def test_probes_are_compared_when_one_learned_and_table_and_sentence_agree():
    pair, cls, mean = probe("pair", 240, 1.0), probe("cls", 150, 1.0), probe("mean", 145, 1.0)
    one_learned = compare_probes(pair, cls, LABELS)
    assert one_learned.verdict == "better" == one_learned.row()["verdict"]
    assert "better than cls" in one_learned.sentence()
    neither = compare_probes(mean, cls, LABELS, "mean", "cls")
    assert neither.verdict == NOT_COMPARED == neither.row()["verdict"]
    assert neither.row()["A - B"] is None and "not compared" in neither.sentence()


def test_verdict_reading_groups_the_kinds_by_verdict():
    base = probe("pooled <cls>", 150, 1.0)
    versus = [compare_probes(probe(k, hits, 1.0), base, LABELS)
              for k, hits in (("cls", 152), ("mean", 148), ("pair", 240))]
    readings = {"better": "{kinds} {were} ahead", NOT_COMPARED: "{kinds} {were} not compared"}
    expected = "`cls` and `mean` were not compared; `pair` was ahead."
    assert verdict_reading(versus, readings) == expected
    assert verdict_reading([], readings) == ""
