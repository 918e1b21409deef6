"""The fine-tuning engine on real SNLI pairs: learning, best-on-dev, checkpoints, resume, DDP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.snli import read_records
from bertnli_helpers.errors import CheckpointError
from bertnli_helpers.files import KILL_AT_WRITE_ENV
from bertnli_helpers.model.bert import BERTClassifier, BertConfig
from bertnli_helpers.model.checkpoints import (
    BEST_WEIGHTS_FILE,
    CHECKPOINT_FILE,
    HISTORY_FILE,
    load_best_weights,
)
from bertnli_helpers.model.inference import evaluate, predict
from bertnli_helpers.model.pretrained import load_pretrained
from bertnli_helpers.train.config import TrainConfig, preset
from bertnli_helpers.train.loop import fine_tune
from bertnli_helpers.train.optim import parameter_groups

from conftest import TINY

SCRIPTS = Path(__file__).parent / "scripts"


@pytest.fixture(scope="module")
def tiny_data(snli_dir):
    _, tok = load_pretrained("scratch", config=BertConfig(**TINY))
    train = SNLIBERTDataset(read_records(snli_dir, "train").sample(256, 1), tok, 64, cache=False)
    dev = SNLIBERTDataset(read_records(snli_dir, "dev").sample(96, 1), tok, 64, cache=False)
    return train, dev


def tiny_classifier(seed: int = 0, **changes) -> BERTClassifier:
    bert, _ = load_pretrained("scratch", config=BertConfig(**{**TINY, **changes}), seed=seed)
    torch.manual_seed(seed)
    return BERTClassifier(bert)


def test_fine_tune_learns_and_keeps_the_best_dev_weights(tiny_data, tmp_path):
    train, dev = tiny_data
    net = tiny_classifier()
    config = TrainConfig(epochs=3, batch_size=16, lr=3e-3, device="cpu", seed=0)
    result = fine_tune(net, train, dev, config, output_dir=tmp_path)
    epochs = [r for r in result.history if "train_loss" in r]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]  # it learns the training pairs
    assert all(r["examples_per_s"] > 0 and 0 <= r["padding_share"] < 0.5 for r in epochs)
    best = max(range(3), key=lambda i: epochs[i]["dev_accuracy"])
    assert result.best_epoch == best
    assert result.best_dev_accuracy == pytest.approx(epochs[best]["dev_accuracy"])
    # the model now holds the best-on-dev weights, which evaluate() confirms
    assert evaluate(net, dev)["accuracy"] == pytest.approx(result.best_dev_accuracy)
    for name in (CHECKPOINT_FILE, BEST_WEIGHTS_FILE, HISTORY_FILE, "train_config.json"):
        assert (tmp_path / name).exists(), name
    assert not list(tmp_path.glob("*.tmp"))
    saved = json.loads((tmp_path / "train_config.json").read_text())
    assert saved["train"]["lr"] == 3e-3 and saved["versions"]["torch"] == torch.__version__
    assert saved["model"]["hidden_size"] == 32
    fresh = tiny_classifier(seed=5)
    load_best_weights(fresh, tmp_path)
    assert evaluate(fresh, dev)["accuracy"] == pytest.approx(result.best_dev_accuracy)


def test_predict_is_in_dataset_order_and_matches_single_forward_passes(tiny_data):
    _, dev = tiny_data
    net = tiny_classifier().eval()
    probs = predict(net, dev, batch_size=7, precision="fp32")  # the plain forward's arithmetic
    assert probs.shape == (len(dev), 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    for i in (0, 13, len(dev) - 1):
        (ids, segments, valid), _ = dev[i]
        with torch.no_grad():
            logits = net((ids[None], segments[None], valid[None]))
        np.testing.assert_allclose(probs[i], logits.softmax(-1)[0].numpy(), atol=1e-5)
    metrics = evaluate(net, dev, precision="fp32")
    assert metrics["accuracy"] == pytest.approx((probs.argmax(1) == dev.encoded.labels).mean())


def test_frozen_encoder_stays_fixed_and_the_head_learns(tiny_data):
    train, _ = tiny_data
    bert, _ = load_pretrained("scratch", config=BertConfig(**TINY))
    net = BERTClassifier(bert, freeze_encoder=True)
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    head_before = net.output.weight.clone()
    fine_tune(net, train, None, TrainConfig(epochs=1, batch_size=32, lr=1e-3, device="cpu"))
    for k, v in net.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(net.output.weight, head_before)


def test_no_weight_decay_on_biases_and_layer_norms():
    net = tiny_classifier()
    decay, no_decay = parameter_groups(net, 0.01)
    names = {id(p): n for n, p in net.named_parameters()}
    assert all(not names[id(p)].endswith("bias") and "norm" not in names[id(p)]
               for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"encoder.embed_norm.weight",
                                                          "output.bias"}
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.01


def test_presets_and_config_validation():
    book = preset("book")
    assert (book.optimizer, book.lr, book.epochs, book.batch_size, book.pad_to, book.bucket) == (
        "adam", 1e-4, 5, 512, 128, False)
    assert preset("tuned", epochs=1).epochs == 1
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        preset("fast")
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")


@pytest.mark.parametrize("bucket", [True, False])
def test_micro_batches_take_the_same_step_as_the_whole_batch(tiny_data, bucket):
    train, _ = tiny_data
    nets = {}
    for micro in (None, 5):  # 5 does not divide 16: the last chunk is smaller
        nets[micro] = tiny_classifier(dropout=0.0)
        # fp32: bf16 rounds a chunk's matmuls differently from the whole batch's
        config = TrainConfig(epochs=1, batch_size=16, lr=1e-3, max_steps=3, device="cpu",
                             bucket=bucket, pad_to=None if bucket else 64, micro_batch_size=micro,
                             precision="fp32")
        losses = [r["train_loss"] for r in fine_tune(nets[micro], train, None, config).history]
        nets[micro].losses = losses
    whole, chunked = nets[None].state_dict(), nets[5].state_dict()
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], atol=2e-5, rtol=1e-4)
    assert nets[5].losses == pytest.approx(nets[None].losses, abs=1e-5)
    assert preset("book").micro_batch_size == 64  # so that the book's batch of 512 fits a laptop
    with pytest.raises(ValueError, match="micro_batch_size"):
        TrainConfig(micro_batch_size=0)


def test_book_preset_pads_every_batch_to_128(tiny_data):
    train, _ = tiny_data
    net = tiny_classifier(max_len=128)
    config = preset("book", epochs=1, batch_size=64, device="cpu")
    result = fine_tune(net, train, None, config)
    assert result.history[0]["padding_share"] > 0.6  # SNLI pairs are ~25 tokens of 128


def test_resume_refuses_a_different_recipe(tiny_data, tmp_path):
    train, dev = tiny_data
    config = TrainConfig(epochs=1, batch_size=32, device="cpu", max_steps=2)
    fine_tune(tiny_classifier(), train, dev, config, output_dir=tmp_path)
    with pytest.raises(CheckpointError, match="batch_size=32.*batch_size=16"):
        fine_tune(tiny_classifier(), train, dev, config.replace(batch_size=16),
                  resume_from=tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        fine_tune(tiny_classifier(), train, dev, config, resume_from=tmp_path / "nowhere")


def _cli(*args: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "bertnli_helpers.cli", *args]


def test_a_killed_run_resumes_to_the_same_result(snli_dir, tmp_path):
    """A real subprocess is killed (SIGKILL) after a mid-epoch checkpoint, then resumed."""
    common = ["finetune", "--model", "scratch", "--data-dir", str(snli_dir), "--train-size", "384",
              "--dev-size", "64", "--test-size", "64", "--max-len", "64", "--epochs", "2",
              "--batch-size", "16", "--lr", "5e-4", "--checkpoint-every", "4", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    subprocess.run(_cli(*common, "--output", str(whole)), check=True, env=env,
                   capture_output=True, timeout=600)

    broken = tmp_path / "broken"
    proc = subprocess.Popen(_cli(*common, "--output", str(broken)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = broken / CHECKPOINT_FILE
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["step"] >= 8:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = torch.load(checkpoint, weights_only=True)
    assert 8 <= interrupted_at["step"] < 48 and not (broken / "metrics.json").exists()
    subprocess.run(_cli(*common, "--output", str(broken), "--resume"), check=True, env=env,
                   capture_output=True, timeout=600)

    done, resumed = (json.loads((d / "metrics.json").read_text()) for d in (whole, broken))
    assert resumed["dev_accuracy"] == done["dev_accuracy"]
    assert resumed["test_accuracy"] == done["test_accuracy"]
    a = torch.load(whole / BEST_WEIGHTS_FILE, weights_only=True)
    b = torch.load(broken / BEST_WEIGHTS_FILE, weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    history_a = json.loads((whole / HISTORY_FILE).read_text())
    history_b = json.loads((broken / HISTORY_FILE).read_text())
    assert [r["train_loss"] for r in history_a] == pytest.approx(
        [r["train_loss"] for r in history_b], rel=1e-5)


# --train-size 256, batches of 32: 8 steps an epoch; --max-steps 20 ends inside the third epoch.
LAST_WRITE_RUN = ["finetune", "--model", "scratch", "--train-size", "256", "--dev-size", "64",
                  "--test-size", "64", "--max-len", "48", "--batch-size", "32", "--lr", "5e-4",
                  "--max-steps", "20", "--checkpoint-every", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def uninterrupted(snli_dir, tmp_path_factory):
    whole = tmp_path_factory.mktemp("uninterrupted") / "run"
    subprocess.run(_cli(*LAST_WRITE_RUN, "--data-dir", str(snli_dir), "--output", str(whole)),
                   check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                   timeout=600)
    return whole


def _writes_of(name: str, history: list[dict]) -> int:
    """How many times the uninterrupted run wrote ``name``: the number of its last write."""
    if name == BEST_WEIGHTS_FILE:  # once per new best dev accuracy
        best, count = -1.0, 0
        for record in history:
            if record.get("dev_accuracy", -1.0) > best:
                best, count = record["dev_accuracy"], count + 1
        return count
    if name == CHECKPOINT_FILE:  # every 2 steps (10), and at the end of each of the 3 epochs
        return 20 // 2 + 3
    return 3  # history.json: at the end of each epoch


@pytest.mark.parametrize("name", [BEST_WEIGHTS_FILE, CHECKPOINT_FILE, HISTORY_FILE])
def test_killed_at_the_last_write_resumes_to_the_uninterrupted_result(
        uninterrupted, snli_dir, tmp_path, name):
    """A real subprocess is SIGKILLed half-way through its last write of ``name`` (files.py's
    test hook), then resumed: same metrics, history and weights, and no temporary file left."""
    history = json.loads((uninterrupted / HISTORY_FILE).read_text())
    run = tmp_path / "run"
    common = [*LAST_WRITE_RUN, "--data-dir", str(snli_dir), "--output", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(_cli(*common), env={**env, KILL_AT_WRITE_ENV:
                                                f"{name}:{_writes_of(name, history)}"},
                            capture_output=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list(run.glob(f".{name}.*.tmp")), "the kill left no half-written file"
    subprocess.run(_cli(*common, "--resume"), check=True, env=env, capture_output=True,
                   timeout=600)

    done, resumed = (json.loads((d / "metrics.json").read_text()) for d in (uninterrupted, run))
    for key in ("best_epoch", "dev_accuracy", "test_accuracy", "train_pairs"):
        assert resumed[key] == done[key], key
    assert resumed["train_seconds"] > 0
    assert len(json.loads((run / HISTORY_FILE).read_text())) == len(history) == 3
    assert [r["dev_accuracy"] for r in json.loads((run / HISTORY_FILE).read_text())] == [
        r["dev_accuracy"] for r in history]
    a = torch.load(uninterrupted / BEST_WEIGHTS_FILE, weights_only=True)
    b = torch.load(run / BEST_WEIGHTS_FILE, weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    assert not list(run.glob(".*.tmp")), "a killed write's temporary file survived the resume"


def test_torchrun_with_two_gloo_processes_matches_one_process(snli_dir, tmp_path):
    if shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists():
        pytest.fail("torchrun is not installed with torch")
    script = str(SCRIPTS / "ddp_finetune.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    subprocess.run([sys.executable, script, str(snli_dir), str(single)], check=True, env=env,
                   timeout=600, capture_output=True)
    double = tmp_path / "double"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         script, str(snli_dir), str(double)],
        env=env, timeout=600, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    one = torch.load(f"{single}.pt", weights_only=True)
    two = torch.load(f"{double}.pt", weights_only=True)
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=2e-4, rtol=1e-3)
    h1, h2 = (json.loads(Path(f"{p}.json").read_text()) for p in (single, double))
    assert [r["train_loss"] for r in h2] == pytest.approx([r["train_loss"] for r in h1], rel=1e-3)
    assert [r["dev_accuracy"] for r in h2] == pytest.approx([r["dev_accuracy"] for r in h1])
    assert sum(r["step"] for r in h1) == sum(r["step"] for r in h2)
