"""The bertnli command as a user runs it: real subprocesses, real SNLI, clear errors, exit 2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertnli_helpers import hub
from bertnli_helpers.cli import build_parser
from bertnli_helpers.course.runner import PROFILES
from bertnli_helpers.data.snli import SPLITS
from bertnli_helpers.data.truncation import STRATEGIES
from bertnli_helpers.model.bert import POOLING_HEADS
from bertnli_helpers.model.pretrained import NAMED_MODELS


def bertnli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "bertnli_helpers.cli", *args], env=env,
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_help_lists_every_subcommand():
    out = bertnli("--help", check=True).stdout
    for command in ("download", "finetune", "evaluate", "predict", "truncation-report", "course"):
        assert command in out


def argument(command: str, dest: str) -> argparse.Action:
    """The parser's action that fills ``dest`` for ``bertnli COMMAND``."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(a for a in commands.choices[command]._actions if a.dest == dest)


def test_choices_are_read_from_the_registries():
    assert list(argument("finetune", "pooling").choices) == ["auto", *POOLING_HEADS]
    assert list(argument("finetune", "truncation").choices) == list(STRATEGIES)
    assert list(argument("truncation-report", "strategies").choices) == list(STRATEGIES)
    assert list(argument("evaluate", "split").choices) == list(SPLITS)
    assert list(argument("truncation-report", "split").choices) == list(SPLITS)
    assert list(argument("course", "profile").choices) == list(PROFILES)
    assert all(name in argument("finetune", "model").help for name in NAMED_MODELS)
    assert all(name in argument("download", "names").help for name in hub.REGISTRY)


def test_a_registered_pooling_head_becomes_a_choice(monkeypatch):
    monkeypatch.setitem(POOLING_HEADS, "max", POOLING_HEADS["mean"])
    args = build_parser().parse_args(["finetune", "--output", "run", "--pooling", "max"])
    assert args.pooling == "max"


def test_strategy_names_are_read_as_get_strategy_reads_them():
    args = build_parser().parse_args(["finetune", "--output", "run",
                                      "--truncation", "longest-first"])
    assert args.truncation == "longest_first"


def test_bad_input_exits_2_with_one_clear_line_and_writes_nothing(tmp_path, snli_dir):
    missing = bertnli("finetune", "--data-dir", str(tmp_path / "nowhere"), "--output",
                      str(tmp_path / "run"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "run").exists()
    unknown = bertnli("finetune", "--model", "bert.huge", "--data-dir", str(snli_dir),
                      "--train-size", "8", "--output", str(tmp_path / "run"))
    assert unknown.returncode == 2 and "unknown model 'bert.huge'" in unknown.stderr
    assert not (tmp_path / "run").exists()
    assert bertnli("finetune", "--output", str(tmp_path / "r"), "--epochs", "0").returncode == 2
    not_a_run = bertnli("predict", "--run", str(tmp_path), "A dog runs.", "An animal moves.")
    assert not_a_run.returncode == 2 and "not a fine-tuning run folder" in not_a_run.stderr


def test_finetune_evaluate_predict_round_trip(tmp_path, snli_dir):
    run = tmp_path / "run"
    common = ["--data-dir", str(snli_dir), "--device", "cpu"]
    out = bertnli("finetune", "--model", "scratch", *common, "--train-size", "64", "--dev-size",
                  "32", "--test-size", "32", "--max-len", "48", "--max-steps", "3",
                  "--batch-size", "16", "--pooling", "pair", "--output", str(run),
                  check=True).stdout
    assert "test accuracy" in out
    assert json.loads((run / "run.json").read_text())["pooling"] == "pair"  # rebuilt so below
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["preset"] == "tuned"
    again = bertnli("finetune", "--model", "scratch", *common, "--output", str(run))
    assert again.returncode == 2 and "already holds a run" in again.stderr

    evaluated = json.loads(bertnli("evaluate", "--run", str(run), *common, "--split", "dev",
                                   "--size", "40", check=True).stdout)
    assert evaluated["n"] == 40 and 0 <= evaluated["accuracy"] <= 1

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("A man plays a guitar.\tA person makes music.\n"
                     "Two dogs run in a field.\tThe cats are asleep.\n")
    lines = bertnli("predict", "--run", str(run), "--file", str(pairs), check=True).stdout
    rows = [line.split("\t") for line in lines.strip().splitlines()]
    assert rows[0][:4] == ["label", "entailment", "contradiction", "neutral"]
    assert len(rows) == 3
    for row in rows[1:]:
        assert row[0] in ("entailment", "contradiction", "neutral")
        assert sum(float(x) for x in row[1:4]) == pytest.approx(1.0, abs=1e-3)
    bad = tmp_path / "bad.tsv"
    bad.write_text("only one column\n")
    broken = bertnli("predict", "--run", str(run), "--file", str(bad))
    assert broken.returncode == 2 and "line 1" in broken.stderr


def test_truncation_report_prints_every_strategy(snli_dir):
    out = bertnli("truncation-report", "--data-dir", str(snli_dir), "--size", "300",
                  "--max-len", "16", "32", check=True).stdout
    for strategy in ("longest_first", "ratio", "head_tail", "only_premise"):
        assert strategy in out
    assert "300 pairs" in out


# -- a hostile user's files, folders and arguments: one line naming the file, exit 2 ---------------
SMALL = ["--train-size", "64", "--dev-size", "64", "--test-size", "64", "--max-steps", "3",
         "--batch-size", "16", "--max-len", "48", "--device", "cpu"]


def one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
    """The error of a refused command: exit 2, no traceback, one line naming ``names``."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines()
             if line.startswith("bertnli ") and ": error: " in line]
    assert len(lines) == 1, result.stderr[-3000:]
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, snli_dir):
    run = tmp_path_factory.mktemp("finished") / "run"
    bertnli("finetune", "--model", "scratch", "--data-dir", str(snli_dir), *SMALL,
            "--output", str(run), check=True)
    return run


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of the finished run that a test may spoil."""
    import shutil

    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def minilm_copy(folder: Path, **config_changes) -> Path:
    """A Hugging Face folder like minilm's (the 90 MB weights linked, not copied)."""
    from bertnli_helpers.model.pretrained import minilm_folder

    source = minilm_folder()
    folder.mkdir()
    (folder / "vocab.txt").write_bytes((source / "vocab.txt").read_bytes())
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")
    config = json.loads((source / "config.json").read_text())
    config.update(config_changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def book_folder(folder: Path, params: bytes) -> Path:
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(["<unk>", "<pad>", "<cls>", "<sep>", "<mask>"]))
    (folder / "pretrained.params").write_bytes(params)
    return folder


def finetune_with(model: Path, snli_dir, tmp_path) -> subprocess.CompletedProcess:
    return bertnli("finetune", "--model", str(model), "--data-dir", str(snli_dir), *SMALL,
                   "--output", str(tmp_path / "out"))


class _Payload:
    """A pickle that runs code when loaded: it would create the file named."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _pickled_payload(tmp_path: Path) -> tuple[bytes, Path]:
    import io

    import torch

    witness = tmp_path / "payload-ran"
    buffer = io.BytesIO()
    torch.save({"weights": _Payload(witness)}, buffer)
    return buffer.getvalue(), witness


@pytest.mark.parametrize("params", [b"", b"PK\x03\x04 truncated", b"not a checkpoint"],
                         ids=["empty", "truncated", "garbage"])
def test_a_bad_pretrained_params_is_one_line_naming_it(tmp_path, snli_dir, params):
    folder = book_folder(tmp_path / "book", params)
    line = one_line_error(finetune_with(folder, snli_dir, tmp_path), folder / "pretrained.params")
    assert "empty" in line or "corrupt" in line


def test_a_config_json_without_hidden_size_is_one_line_naming_it(tmp_path, snli_dir):
    folder = minilm_copy(tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    del config["hidden_size"]
    (folder / "config.json").write_text(json.dumps(config))
    line = one_line_error(finetune_with(folder, snli_dir, tmp_path), folder / "config.json")
    assert "hidden_size" in line


def test_a_truncated_safetensors_is_one_line_naming_it(tmp_path, snli_dir):
    folder = minilm_copy(tmp_path / "hf")
    weights = folder / "model.safetensors"
    head = weights.read_bytes()[:4096]
    weights.unlink()
    weights.write_bytes(head)
    one_line_error(finetune_with(folder, snli_dir, tmp_path), weights)


def test_a_malicious_best_model_is_refused_without_running_it(run_copy, tmp_path, snli_dir):
    payload, witness = _pickled_payload(tmp_path)
    (run_copy / "best_model.pt").write_bytes(payload)
    result = bertnli("evaluate", "--run", str(run_copy), "--data-dir", str(snli_dir),
                     "--size", "8")
    line = one_line_error(result, run_copy / "best_model.pt")
    assert "weights_only=False" not in result.stderr and "must not be loaded" in line
    assert not witness.exists()


@pytest.mark.parametrize("cut", [0, 1000], ids=["empty", "truncated"])
def test_an_empty_or_truncated_best_model_is_one_line_naming_it(run_copy, snli_dir, cut):
    weights = run_copy / "best_model.pt"
    weights.write_bytes(weights.read_bytes()[:cut])
    one_line_error(bertnli("evaluate", "--run", str(run_copy), "--data-dir", str(snli_dir),
                           "--size", "8"), weights)


@pytest.mark.parametrize("text", ['{"model": "scratch", "colour": "red"}', '{"model": '],
                         ids=["unknown key", "bad JSON"])
def test_a_bad_run_json_is_one_line_naming_it(run_copy, text):
    (run_copy / "run.json").write_text(text)
    line = one_line_error(bertnli("predict", "--run", str(run_copy), "A dog.", "An animal."),
                          run_copy / "run.json")
    assert "colour" in line or "line 1" in line


def test_an_unwritable_cache_folder_is_one_line_naming_it(tmp_path):
    if os.geteuid() == 0:  # root writes through any mode bits: /sys refuses even root
        cache = Path("/sys")
    else:
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o555)
    env = {**os.environ, "BERTNLI_CACHE_DIR": str(cache)}
    result = subprocess.run([sys.executable, "-m", "bertnli_helpers.cli", "download", "SNLI"],
                            env=env, capture_output=True, text=True, timeout=120)
    one_line_error(result, cache)


def test_a_cache_dir_that_is_a_file_is_one_line_naming_it(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    env = {**os.environ, "BERTNLI_CACHE_DIR": str(cache)}
    result = subprocess.run([sys.executable, "-m", "bertnli_helpers.cli", "download", "SNLI"],
                            env=env, capture_output=True, text=True, timeout=120)
    line = one_line_error(result, cache)
    assert "BERTNLI_CACHE_DIR" in line


def test_an_output_that_is_a_file_is_one_line_naming_it(tmp_path, snli_dir):
    output = tmp_path / "out"
    output.write_text("mine")
    result = bertnli("finetune", "--model", "scratch", "--data-dir", str(snli_dir), *SMALL,
                     "--output", str(output))
    one_line_error(result, output)
    assert output.read_text() == "mine"


def test_a_config_json_that_is_not_json_names_the_file_and_line(tmp_path, snli_dir):
    folder = minilm_copy(tmp_path / "hf")
    (folder / "config.json").write_text('{\n  "hidden_size": 384,\n  oops\n}\n')
    line = one_line_error(finetune_with(folder, snli_dir, tmp_path), folder / "config.json")
    assert "line 3" in line


def test_a_pickled_pretrained_params_is_refused_without_pytorchs_advice(tmp_path, snli_dir):
    payload, witness = _pickled_payload(tmp_path)
    folder = book_folder(tmp_path / "book", payload)
    result = finetune_with(folder, snli_dir, tmp_path)
    line = one_line_error(result, folder / "pretrained.params")
    assert "weights_only=False" not in result.stderr and "must not be loaded" in line
    assert not witness.exists()


@pytest.mark.parametrize(("text", "where"), [
    ('{"premise": "A dog.", "hypothesis": "An animal."}\n{"premise": "A cat.",\n', "line 2"),
    ('{"premise": "A dog.", "hypothesis": "An animal."}\n[1, 2]\n', "line 2"),
], ids=["bad JSON", "not an object"])
def test_predict_file_errors_name_the_file_and_line(finished_run, tmp_path, text, where):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(text)
    line = one_line_error(bertnli("predict", "--run", str(finished_run), "--file", str(pairs)),
                          pairs)
    assert where in line


def test_evaluate_on_a_sample_keeps_the_runs_test_accuracy(run_copy, snli_dir):
    before = json.loads((run_copy / "metrics.json").read_text())
    out = json.loads(bertnli("evaluate", "--run", str(run_copy), "--data-dir", str(snli_dir),
                             "--size", "8", check=True).stdout)
    after = json.loads((run_copy / "metrics.json").read_text())
    assert after["test_accuracy"] == before["test_accuracy"]
    out.pop("split")
    assert after["evaluations"]["test-8pairs-seed0"] == {**out, "sample": 8, "seed": 0}


# -- checks that come first -----------------------------------------------------------------------
def test_a_max_len_beyond_the_models_positions_is_refused_before_encoding(tmp_path, snli_dir):
    result = bertnli("finetune", "--model", "minilm", "--data-dir", str(snli_dir), *SMALL[:-4],
                     "--max-len", "1000", "--output", str(tmp_path / "out"))
    line = one_line_error(result, "1000")
    assert "512" in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("device", ["cuda:7", "tpu"])
def test_an_unavailable_device_is_refused_before_loading_anything(tmp_path, snli_dir, device):
    result = bertnli("finetune", "--model", "scratch", "--data-dir", str(snli_dir), *SMALL[:-1],
                     device, "--output", str(tmp_path / "out"))
    one_line_error(result, device)
    assert "model scratch" not in result.stdout  # refused before the data were read
    assert not (tmp_path / "out").exists()


def test_an_unknown_notebook_is_refused_before_the_output_folder_is_made(tmp_path):
    output = tmp_path / "course_output"
    one_line_error(bertnli("course", "--notebooks", "99", "--output", str(output)), "99")
    assert not output.exists()


# -- empty splits ---------------------------------------------------------------------------------
@pytest.mark.parametrize("empty", ["train", "dev"])
def test_an_empty_split_is_an_error_naming_its_file(tmp_path, snli_dir, empty):
    data = tmp_path / "snli"
    data.mkdir()
    for split in ("train", "dev", "test"):
        name = f"snli_1.0_{split}.jsonl"
        if split == empty:
            (data / name).write_text("")
        else:
            (data / f"{name}.gz").symlink_to(snli_dir / f"{name}.gz")
    result = bertnli("finetune", "--model", "scratch", "--data-dir", str(data), *SMALL,
                     "--output", str(tmp_path / "out"))
    line = one_line_error(result, data / f"snli_1.0_{empty}.jsonl")
    assert "no usable pairs" in line
    assert not (tmp_path / "out" / "metrics.json").exists()


# -- one writer per run folder; a refused resume changes nothing ----------------------------------
def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_refused_resume_leaves_the_folder_byte_identical(run_copy, snli_dir):
    before = folder_bytes(run_copy)
    result = bertnli("finetune", "--model", "scratch", "--data-dir", str(snli_dir), *SMALL,
                     "--lr", "1e-3", "--output", str(run_copy), "--resume")
    line = one_line_error(result, run_copy)
    assert "lr" in line
    assert folder_bytes(run_copy) == before


def test_a_second_run_into_a_busy_folder_refuses_at_once_and_the_first_loses_nothing(
        tmp_path, snli_dir):
    run = tmp_path / "run"
    args = ["finetune", "--model", "scratch", "--data-dir", str(snli_dir), "--train-size", "512",
            "--dev-size", "64", "--test-size", "64", "--max-len", "48", "--batch-size", "16",
            "--max-steps", "30", "--checkpoint-every", "2", "--device", "cpu", "--output", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "bertnli_helpers.cli", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (run / "checkpoint.pt").exists() and first.poll() is None:
            assert time.time() < deadline
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second started"
        second = bertnli(*args)
        line = one_line_error(second, run)
        assert f"pid {first.pid}" in line
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err[-2000:]
    assert "run saved" in out
    for name in ("run.json", "metrics.json", "best_model.pt", "history.json", "run_inputs.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "metrics.json").read_text())["train_pairs"] == 512
