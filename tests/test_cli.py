"""The bertnli command as a user runs it: real subprocesses, real SNLI, clear errors, exit 2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from bertnli_helpers import hub
from bertnli_helpers.cli import build_parser
from bertnli_helpers.course import PROFILES
from bertnli_helpers.model import POOLING_HEADS
from bertnli_helpers.pretrained import NAMED_MODELS
from bertnli_helpers.snli import SPLITS
from bertnli_helpers.truncation import STRATEGIES


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
