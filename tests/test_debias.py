"""Debiasing: the objectives against hand computation, the training hook (default path unchanged,
bias looked up by pair index), cross-fitted bias probabilities, the calibration comparison, and
a study of plain against debiased tiny scratch runs, re-used when run again."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedKFold

from bertnli_helpers.data.snli import SampleWarning, read_records
from bertnli_helpers.study.analysis import (
    baseline_pipeline,
    compare_calibration,
    expected_calibration_error,
    fit_hypothesis_baseline,
)
from bertnli_helpers.study.debias import PLAIN, bias_expert_probs, debias_study
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.loop import Callback, batch_loss
from bertnli_helpers.train.objectives import OBJECTIVES
from bertnli_helpers.train.runs import RunInfo, finetune_run

from conftest import TINY

CONFIG = TrainConfig(epochs=1, batch_size=16, max_steps=3, device="cpu", eval_batch_size=64)


@pytest.fixture(scope="module")
def train_sample(snli_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        return read_records(snli_dir, "train")


def test_objectives_against_hand_computation():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    bias = torch.softmax(torch.randn(6, 3), -1)
    ce = OBJECTIVES["cross_entropy"].loss(logits, labels, None)
    assert torch.equal(ce, F.cross_entropy(logits, labels, reduction="sum"))
    p_model = logits.softmax(-1)
    product = p_model * bias
    by_hand = -torch.log(product[range(6), labels] / product.sum(-1)).sum()
    assert torch.allclose(OBJECTIVES["product_of_experts"].loss(logits, labels, bias), by_hand)
    weights = 1 - bias[range(6), labels]
    by_hand = (weights * -torch.log(p_model[range(6), labels])).sum()
    assert torch.allclose(OBJECTIVES["reweight"].loss(logits, labels, bias), by_hand)
    uniform = torch.full((6, 3), 1 / 3)  # an expert that knows nothing changes nothing
    assert torch.allclose(OBJECTIVES["product_of_experts"].loss(logits, labels, uniform), ce)


def test_product_of_experts_learns_little_from_what_the_expert_knows():
    logits = torch.zeros(2, 3, requires_grad=True)
    labels = torch.tensor([0, 0])
    bias = torch.tensor([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01]])  # right, then wrong
    OBJECTIVES["product_of_experts"].loss(logits, labels, bias).backward()
    right, wrong = logits.grad.norm(dim=1)
    assert right < 0.1 * wrong


def test_batch_loss_looks_up_the_bias_of_the_batch_pairs():
    table = torch.softmax(torch.randn(10, 3), -1)
    loop = SimpleNamespace(bias_probs=table, device=torch.device("cpu"),
                           config=TrainConfig(objective="product_of_experts"))
    logits, labels = torch.randn(3, 3), torch.tensor([2, 0, 1])
    expected = OBJECTIVES["product_of_experts"].loss(logits, labels, table[[7, 1, 4]])
    assert torch.equal(batch_loss(loop, logits, labels, [7, 1, 4]), expected)


def test_objective_is_checked(snli_dir, tmp_path, train_sample):
    with pytest.raises(ValueError, match="objective must be one of"):
        TrainConfig(objective="focal")
    info = RunInfo(model="scratch", max_len=48, model_config=dict(TINY))
    train, dev = train_sample.sample(32, 0), read_records(snli_dir, "dev").sample(16, 0)
    config = CONFIG.replace(objective="product_of_experts")
    with pytest.raises(ValueError, match="needs bias_probs"):
        finetune_run(tmp_path / "a", info, train, dev, None, config)
    with pytest.raises(ValueError, match=r"one row per training pair \(32\)"):
        finetune_run(tmp_path / "b", info, train, dev, None, config,
                     bias_probs=np.full((31, 3), 1 / 3))


def test_uniform_bias_trains_as_cross_entropy(snli_dir, tmp_path, train_sample):
    """The hook changes only the loss: an expert that knows nothing gives the plain run."""
    info = RunInfo(model="scratch", max_len=48, model_config=dict(TINY))
    train, dev = train_sample.sample(32, 0), read_records(snli_dir, "dev").sample(16, 0)
    plain = finetune_run(tmp_path / "plain", info, train, dev, None, CONFIG)
    uniform = finetune_run(tmp_path / "poe", info, train, dev, None,
                           CONFIG.replace(objective="product_of_experts"),
                           bias_probs=np.full((32, 3), 1 / 3))
    for a, b in zip(plain.net.state_dict().values(), uniform.net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)
    inputs = [json.loads((tmp_path / name / "run_inputs.json").read_text())["data"]
              for name in ("plain", "poe")]
    assert "bias" not in inputs[0] and len(inputs[1]["bias"]["sha1"]) == 16
    other = finetune_run(tmp_path / "poe", info, train, dev, None,
                         CONFIG.replace(objective="product_of_experts"),
                         bias_probs=np.tile([0.5, 0.25, 0.25], (32, 1)))
    assert not other.reused  # another bias expert: trained again


def test_cross_fitted_bias_is_out_of_fold(train_sample):
    _, hypotheses, labels = train_sample.triple("raw")
    probs = bias_expert_probs(hypotheses, labels, folds=5, seed=0)
    assert probs.shape == (len(labels), 3) and np.allclose(probs.sum(1), 1)
    folding = StratifiedKFold(5, shuffle=True, random_state=0)
    fit_on, held_out = next(folding.split(hypotheses, labels))
    expert = baseline_pipeline().fit([hypotheses[i] for i in fit_on], np.asarray(labels)[fit_on])
    assert np.allclose(probs[held_out], expert.predict_proba([hypotheses[i] for i in held_out]))
    out_of_fold = np.mean(probs.argmax(1) == labels)
    in_sample = fit_hypothesis_baseline(hypotheses, labels).accuracy(hypotheses, labels)
    assert 0.4 < out_of_fold < in_sample - 0.1  # an expert asked about its own pairs recites
    with pytest.raises(ValueError, match="smallest class has 1"):
        bias_expert_probs(["a", "b", "c", "d"], [0, 1, 2, 0], folds=2)


def test_calibration_comparison():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.34, 1.0, (2, 3000))
    calibrated = rng.random((2, 3000)) < confidence
    overconfident = rng.random((2, 3000)) < confidence - 0.25
    result = compare_calibration(confidence, calibrated, confidence, overconfident, "cal", "over")
    assert result.ece_a == pytest.approx(np.mean([expected_calibration_error(
        confidence[k], calibrated[k]) for k in range(2)]))
    assert result.verdict == "better" and result.high < 0 < result.ece_b - result.ece_a
    assert result.sentence().startswith("cal is better calibrated than over: ECE")
    same = compare_calibration(confidence[0], calibrated[0], confidence[0], calibrated[0])
    assert same.verdict == "within noise" and same.difference == 0
    assert "does not show" in same.sentence()
    with pytest.raises(ValueError, match="same non-empty shape"):
        compare_calibration(confidence, calibrated, confidence[0], calibrated[0])


class _Count(Callback):
    runs = 0

    def on_train_begin(self, state) -> None:
        _Count.runs += 1


def test_study_of_plain_against_debiased(snli_dir, tmp_path, train_sample):
    info = RunInfo(model="scratch", max_len=48, model_config=dict(TINY))
    train = train_sample.sample(60, 0)
    dev, test = read_records(snli_dir, "dev").sample(16, 0), read_records(snli_dir, "test").sample(
        80, 0)
    main = finetune_run(tmp_path / "main", info, train, dev, test, CONFIG.replace(seed=0))
    study = debias_study(tmp_path / "study", info, train, dev, test, CONFIG, seeds=(0, 1),
                         folds=3, plain_folders={0: main.folder},
                         callbacks=lambda name, seed: [_Count()])
    assert _Count.runs == 3  # seed 0's plain run is the main run, re-used
    assert study.folders[PLAIN][0] == str(main.folder)
    assert study.probs[PLAIN].shape == study.probs["product_of_experts"].shape == (2, 80, 3)
    table = study.table()
    assert list(table.index) == [(PLAIN, 0), (PLAIN, 1), ("product_of_experts", 0),
                                 ("product_of_experts", 1)]
    hard = study.hard
    correct = study.correct("product_of_experts")
    assert table.loc[("product_of_experts", 1), "hard_accuracy"] == correct[1, hard].mean()
    comparisons = study.comparisons()
    assert comparisons["hard"].n_pairs == hard.sum() and comparisons["test"].n_seeds == 2
    assert comparisons["test"].accuracy_b == study.correct(PLAIN).mean()
    assert study.expert["train_out_of_fold_accuracy"] < study.expert["train_in_sample_accuracy"]
    json.dumps(study.to_dict())
    again = debias_study(tmp_path / "study", info, train, dev, test, CONFIG, seeds=(0, 1),
                         folds=3, plain_folders={0: main.folder},
                         callbacks=lambda name, seed: [_Count()])
    assert _Count.runs == 3 and np.array_equal(again.probs[PLAIN], study.probs[PLAIN])
    with pytest.raises(ValueError, match="not a debiasing objective"):
        debias_study(tmp_path / "x", info, train, dev, test, CONFIG, method="cross_entropy")


def test_runs_saved_before_objectives_existed_are_still_reused(snli_dir, tmp_path, train_sample):
    info = RunInfo(model="scratch", max_len=48, model_config=dict(TINY))
    train, dev = train_sample.sample(32, 0), read_records(snli_dir, "dev").sample(16, 0)
    finetune_run(tmp_path, info, train, dev, None, CONFIG)
    path = tmp_path / "run_inputs.json"
    saved = json.loads(path.read_text())
    del saved["train_config"]["objective"]  # as runs made before TrainConfig.objective
    path.write_text(json.dumps(saved))
    assert finetune_run(tmp_path, info, train, dev, None, CONFIG).reused
    assert not finetune_run(tmp_path, info, train, dev, None,
                            CONFIG.replace(objective="product_of_experts"),
                            bias_probs=np.full((32, 3), 1 / 3)).reused
