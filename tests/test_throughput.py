"""Timing comparisons: paired repeats, a ratio with its interval, and 'within noise'."""

from __future__ import annotations

import warnings

import pytest
import torch

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import SampleWarning, read_records
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.study.throughput import compare_speeds, interleaved_throughput
from bertnli_helpers.train.config import TrainConfig


def test_compare_speeds_calls_a_steady_gap_and_not_a_noisy_one():
    steady = compare_speeds([20.0, 21.0, 19.5, 20.5], [10.0, 10.4, 9.8, 10.1], "short", "long")
    assert steady.verdict == "faster" and steady.low < steady.ratio < steady.high
    assert steady.ratio == pytest.approx(2.0, rel=0.05) and "faster than long" in steady.sentence()
    assert compare_speeds([10.0, 10.4], [20.0, 21.0]).verdict == "slower"
    noisy = compare_speeds([10.0, 14.0, 8.0], [11.0, 9.0, 12.0])
    assert noisy.verdict == "within noise" and "within noise" in noisy.sentence()
    single = compare_speeds([30.0], [10.0])  # one repeat: no interval, so no verdict
    assert single.verdict == "within noise" and single.ratio == pytest.approx(3.0)
    assert "single timing" in single.sentence() and "inf" not in single.sentence()
    with pytest.raises(ValueError):
        compare_speeds([], [])


def test_interleaved_throughput_measures_every_setup_each_repeat(snli_dir):
    torch.set_num_threads(1)
    bert, tokenizer = load_pretrained("scratch", config=BertConfig(
        vocab_size=30522, hidden_size=32, num_layers=1, num_heads=2, ffn_size=64, flavour="hf"))
    net = BERTClassifier(bert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        pairs = read_records(snli_dir, "dev").sample(40, 0)
    data = SNLIBERTDataset(pairs, tokenizer, max_len=32, cache=False)
    config = TrainConfig(batch_size=8, device="cpu")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    speeds = interleaved_throughput(
        net, {"dynamic": (data, config), "padded": (data, config.replace(bucket=False, pad_to=32))},
        steps=2, warmup=0, repeats=2)
    assert set(speeds) == {"dynamic", "padded"} and all(len(v) == 2 for v in speeds.values())
    assert all(s > 0 for v in speeds.values() for s in v)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # unchanged
