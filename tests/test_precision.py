"""The precision rule: what "auto" picks on which hardware, where the choice is said and kept,
and that a bf16 run really trains. No timing assertions: speed is the benchmarks' job."""

from __future__ import annotations

import json
import os

import pytest
import torch

from bertnli_helpers.cli import build_parser
from bertnli_helpers.course import runner as course
from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import read_records
from bertnli_helpers.model import precision
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.inference import evaluate, predict
from bertnli_helpers.model.precision import (
    PRECISION_ENV,
    autocast_dtype,
    cpuinfo_flags,
    describe_precision,
    precision_override,
    resolve_precision,
)
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.study.throughput import measure_throughput
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.loop import CONFIG_FILE, fine_tune
from bertnli_helpers.train.runs import INPUTS_FILE, METRICS_FILE, RunInfo, finetune_run

CPU = torch.device("cpu")
TINY = dict(vocab_size=30522, hidden_size=32, num_layers=1, num_heads=2, ffn_size=64, max_len=64,
            flavour="hf")


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend the CPU has exactly the given features (the detection, mocked)."""
    monkeypatch.delenv(PRECISION_ENV, raising=False)

    def pretend(*features: str) -> None:
        monkeypatch.setattr(precision, "cpu_features", lambda: frozenset(features))

    return pretend


def test_auto_is_bf16_on_a_cpu_that_computes_bf16_natively(cpu_with):
    for features in (("avx512f", "avx512_bf16"), ("amx_tile", "amx_bf16")):
        cpu_with(*features)
        assert resolve_precision("auto", CPU) == "bf16"
        assert autocast_dtype("auto", CPU) == torch.bfloat16
        assert "natively" in describe_precision("auto", CPU)


def test_auto_is_fp32_on_a_cpu_without_native_bf16(cpu_with):
    cpu_with("avx2", "avx512f", "fma3")  # AVX-512, but bf16 only emulated
    assert resolve_precision("auto", CPU) == "fp32"
    assert autocast_dtype("auto", CPU) is None
    assert "no native bf16" in describe_precision("auto", CPU)


def test_an_explicit_precision_overrides_the_detection(cpu_with):
    cpu_with("avx512_bf16")
    assert resolve_precision("fp32", CPU) == "fp32" and autocast_dtype("fp32", CPU) is None
    cpu_with()
    assert resolve_precision("bf16", CPU) == "bf16"  # asked for: emulated, but as asked
    assert "as asked" in describe_precision("bf16", CPU)
    with pytest.raises(ValueError, match="fp16 autocast needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", CPU)


def test_the_environment_replaces_auto_but_not_an_explicit_choice(cpu_with, monkeypatch):
    cpu_with("avx512_bf16")
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert resolve_precision("auto", CPU) == "fp32"
    assert PRECISION_ENV in describe_precision("auto", CPU)
    assert resolve_precision("bf16", CPU) == "bf16"
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ValueError, match=PRECISION_ENV):
        resolve_precision("auto", CPU)


def test_other_devices_keep_their_rule(cpu_with):
    cpu_with("avx512_bf16")
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    if torch.cuda.is_available():  # what CUDA had before: bf16 where supported, else fp16
        expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        assert resolve_precision("auto", torch.device("cuda")) == expected


def test_cpu_flags_are_read_from_proc_cpuinfo_when_torch_cannot_say(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                    "flags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile amx_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert {"avx512_bf16", "amx_bf16"} <= cpuinfo_flags(info)
    assert "fpu" in cpuinfo_flags(info) and cpuinfo_flags(tmp_path / "missing") == frozenset()
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(precision, "cpuinfo_flags", lambda: frozenset({"avx512_bf16"}))
    precision.cpu_features.cache_clear()
    try:
        assert precision.native_bf16_features() == ["avx512_bf16"]
    finally:
        precision.cpu_features.cache_clear()


# -- a bf16 run, end to end -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data(snli_dir):
    _, tok = load_pretrained("scratch", config=BertConfig(**TINY))
    train = SNLIBERTDataset(read_records(snli_dir, "train").sample(256, 1), tok, 64, cache=False)
    dev = SNLIBERTDataset(read_records(snli_dir, "dev").sample(64, 1), tok, 64, cache=False)
    return train, dev


def _tiny_classifier() -> BERTClassifier:
    bert, _ = load_pretrained("scratch", config=BertConfig(**TINY), seed=0)
    torch.manual_seed(0)
    return BERTClassifier(bert)


def test_a_bf16_run_trains_says_so_once_and_keeps_fp32_weights(tiny_data, tmp_path, capsys):
    train, dev = tiny_data
    net = _tiny_classifier()
    config = TrainConfig(epochs=3, batch_size=16, lr=3e-3, device="cpu", precision="bf16")
    result = fine_tune(net, train, dev, config, output_dir=tmp_path)
    losses = [r["train_loss"] for r in result.history if "train_loss" in r]
    assert losses[-1] < losses[0]  # it learns
    assert result.precision == "bf16"
    assert all(p.dtype == torch.float32 for p in net.parameters())  # master weights stay fp32
    said = [line for line in capsys.readouterr().out.splitlines() if "precision" in line]
    assert said == ["precision bf16 (bf16 autocast, fp32 weights; as asked)"]  # once per run
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["precision"] == "bf16"
    # scoring in bf16 picks the same classes as fp32 on nearly every pair
    bf16, fp32 = (predict(net, dev, precision=p) for p in ("bf16", "fp32"))
    assert (bf16.argmax(1) == fp32.argmax(1)).mean() >= 0.95
    assert evaluate(net, dev, precision="bf16")["n"] == len(dev)


def test_the_run_folder_records_the_precision_that_ran(snli_dir, tmp_path, cpu_with):
    cpu_with("avx512_bf16")  # "auto" is bf16 here, whatever this machine has
    splits = [read_records(snli_dir, split).sample(32, 0) for split in ("train", "dev", "test")]
    info = RunInfo(model="scratch", max_len=64, model_config=TINY)
    config = TrainConfig(epochs=1, batch_size=16, max_steps=2, device="cpu")
    outcome = finetune_run(tmp_path, info, *splits, config)
    assert outcome.metrics["precision"] == "bf16"
    assert json.loads((tmp_path / METRICS_FILE).read_text())["precision"] == "bf16"
    inputs = json.loads((tmp_path / INPUTS_FILE).read_text())
    assert inputs["train_config"]["precision"] == "bf16"  # what ran, not "auto"
    assert finetune_run(tmp_path, info, *splits, config.replace(precision="bf16")).reused
    assert not finetune_run(tmp_path, info, *splits, config.replace(precision="fp32")).reused


def test_measure_throughput_runs_in_the_configs_precision(tiny_data):
    train, _ = tiny_data
    net = _tiny_classifier()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for asked in ("fp32", "bf16"):
        config = TrainConfig(batch_size=16, device="cpu", precision=asked)
        speed = measure_throughput(net, train, config, steps=2, warmup=1)
        assert speed["precision"] == asked and speed["examples_per_s"] > 0
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights restored


# -- where users choose it ---------------------------------------------------------------------
def test_the_cli_takes_precision_and_defaults_to_auto():
    parser = build_parser()
    for command in (["finetune", "--output", "x"], ["evaluate", "--run", "x"],
                    ["predict", "--run", "x", "p", "h"], ["course"],
                    ["compare", "--vary", "lr=1e-4,3e-4", "--output", "x"]):
        assert parser.parse_args(command).precision == "auto"
        assert parser.parse_args([*command, "--precision", "fp32"]).precision == "fp32"
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--run", "x", "--precision", "fp8"])


def test_the_course_runs_with_auto_unless_told_otherwise(snli_dir, tmp_path, capsys):
    assert all(p.precision == "auto" for p in course.PROFILES.values())
    ctx = course.setup_notebook("04_fine_tuning", profile="tiny", data_dir=str(snli_dir),
                                device="cpu", output_dir=str(tmp_path))
    assert ctx.precision == "auto" and ctx.train_config().precision == "auto"
    assert "precision " in capsys.readouterr().out
    fixed = course.setup_notebook("04_fine_tuning", profile="tiny", data_dir=str(snli_dir),
                                  device="cpu", output_dir=str(tmp_path), precision="fp32")
    assert fixed.train_config().precision == "fp32"


def test_the_course_precision_reaches_every_kernel_and_is_restored(monkeypatch, tmp_path,
                                                                   snli_dir):
    seen = []
    monkeypatch.setattr(course, "execute_notebook",
                        lambda *args, **kwargs: seen.append(os.environ.get(PRECISION_ENV)))
    monkeypatch.setenv(PRECISION_ENV, "bf16")  # the caller's own setting comes back afterwards
    course.run_course(profile="tiny", output=tmp_path, notebooks=["01", "02"],
                      data_dir=str(snli_dir), html=False, precision="fp32")
    assert seen == ["fp32", "fp32"] and os.environ[PRECISION_ENV] == "bf16"
    monkeypatch.delenv(PRECISION_ENV)
    with precision_override("bf16"):
        assert resolve_precision("auto", CPU) == "bf16"
    assert PRECISION_ENV not in os.environ
    with precision_override(None):  # nothing asked: nothing set
        assert PRECISION_ENV not in os.environ
