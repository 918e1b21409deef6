"""Grids of variants x seeds: parsing, tables and verdicts, and a real grid killed and resumed."""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bertnli_helpers.errors import GridError
from bertnli_helpers.study.grids import (
    SETTINGS,
    CellResult,
    GridResult,
    GridSpec,
    cell_recipe,
    parse_vary,
    run_grid,
    variant_slug,
)
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.runs import RunInfo

from conftest import TINY


def test_vary_parses_values_and_refuses_what_cannot_vary():
    vary = parse_vary(["truncation=longest_first,ratio", "max-len=16,32", "lr=1e-4,3e-4"])
    assert vary == {"truncation": ("longest_first", "ratio"), "max_len": (16, 32),
                    "lr": (1e-4, 3e-4)}
    with pytest.raises(GridError, match="cannot vary 'warmup'; what can vary: truncation"):
        parse_vary(["warmup=0.1"])
    with pytest.raises(GridError, match="unknown value 'shortest'; choose from longest_first"):
        parse_vary(["truncation=shortest"])
    with pytest.raises(GridError, match="'x' is not a valid max_len"):
        parse_vary(["max_len=16,x"])
    with pytest.raises(GridError, match="repeated"):
        parse_vary(["max_len=16,16"])
    with pytest.raises(GridError, match="NAME=VALUE"):
        parse_vary(["max_len"])
    assert set(SETTINGS) >= {"truncation", "max_len", "lr", "batch_size", "epochs", "pooling",
                             "freeze_encoder", "model", "precision", "train_size"}


def test_cells_change_only_the_varied_setting_and_the_seed():
    spec = GridSpec(RunInfo("minilm", pooling="pair"), TrainConfig(lr=1e-4),
                    {"truncation": ("longest_first", "ratio"), "lr": (1e-4, 3e-4)}, seeds=(0, 1),
                    baseline={"truncation": "ratio"}, train_size=500)
    assert len(list(spec.cells())) == 8
    assert spec.baseline_variant() == (("truncation", "ratio"), ("lr", 1e-4))
    info, config, size = cell_recipe(spec, (("truncation", "ratio"), ("lr", 3e-4)), 1)
    assert (info.truncation, info.pooling, config.lr, config.seed, size) == (
        "ratio", "pair", 3e-4, 1, 500)
    assert variant_slug((("model", "runs/my model"),)) == "model=runs-my-model"
    with pytest.raises(GridError, match="baseline lr=0.1 is not one of the values"):
        GridSpec(RunInfo("minilm"), TrainConfig(), {"lr": (1e-4,)}, baseline={"lr": 0.1})


def test_only_runs_one_change_comparisons_that_share_the_baseline():
    spec = GridSpec(RunInfo("minilm", pooling="pair"), TrainConfig(lr=1e-4),
                    {"pooling": ("pair", "cls"), "freeze_encoder": (False, True),
                     "lr": (1e-4, 1e-3)}, seeds=(0, 1),
                    only=({"pooling": "cls"}, {"freeze_encoder": True},
                          {"freeze_encoder": True, "lr": 1e-3}, {}))
    base = (("pooling", "pair"), ("freeze_encoder", False), ("lr", 1e-4))
    assert spec.variants() == [
        base,
        (("pooling", "cls"), ("freeze_encoder", False), ("lr", 1e-4)),
        (("pooling", "pair"), ("freeze_encoder", True), ("lr", 1e-4)),
        (("pooling", "pair"), ("freeze_encoder", True), ("lr", 1e-3)),
    ]  # the baseline once, first; no combination nobody asked for (cls + frozen)
    assert len(list(spec.cells())) == 8
    full = GridSpec(RunInfo("minilm"), TrainConfig(), dict(spec.vary))
    assert len(full.variants()) == 8
    with pytest.raises(GridError, match="variant pooling=mean is not one of the values"):
        GridSpec(RunInfo("minilm"), TrainConfig(), {"pooling": ("pair", "cls")},
                 only=({"pooling": "mean"},))


def fake_cell(variant, seed, correct, labels):
    metrics = {"dev_accuracy": float(np.mean(correct)), "examples_per_s": 100.0,
               "train_seconds": 60.0}
    return CellResult(variant, seed, metrics, np.asarray(correct, bool), np.asarray(labels),
                      False, Path("."))


def test_table_and_verdicts_from_cells():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    spec = GridSpec(RunInfo("minilm"), TrainConfig(), {"lr": (1e-4, 3e-4, 1e-3)}, seeds=(0, 1))
    result = GridResult(spec)
    for seed in (0, 1):
        base = rng.random(600) < 0.70
        result.cells.append(fake_cell((("lr", 1e-4),), seed, base, labels))
        result.cells.append(fake_cell((("lr", 3e-4),), seed, base | (rng.random(600) < 0.5),
                                      labels))
        result.cells.append(fake_cell((("lr", 1e-3),), seed, rng.random(600) < 0.2, labels))
    table = result.table()
    assert list(table["variant"]) == ["lr=0.0001", "lr=0.0003", "lr=0.001"]
    assert table.loc[0, "seeds"] == 2 and table.loc[0, "learned"] == "2/2"
    verdicts = result.verdicts()
    assert verdicts.loc[0, "verdict"] == "better"
    sentences = result.sentences()
    assert sentences[0].startswith("lr=0.0003 is better than lr=0.0001")
    assert sentences[1].startswith("lr=0.0001 learned and lr=0.001 did not")
    assert "lr=0.001 has 0 of 2 seeds above the majority class" in sentences[1]
    assert verdicts.loc[1, "verdict"] == "only lr=0.0001 learned"


def test_neither_side_learning_is_said_so():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 600)
    spec = GridSpec(RunInfo("minilm"), TrainConfig(), {"lr": (1e-4, 1e-3)}, seeds=(0, 1))
    result = GridResult(spec)
    for seed in (0, 1):
        for lr in (1e-4, 1e-3):
            result.cells.append(fake_cell((("lr", lr),), seed, rng.random(600) < 0.2, labels))
    assert result.verdicts().loc[0, "verdict"] == "neither learned"
    assert result.sentences()[0].startswith("Neither lr=0.001 nor lr=0.0001 learned")


def test_two_settings_are_compared_one_change_at_a_time():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 900)
    spec = GridSpec(RunInfo("minilm"), TrainConfig(),
                    {"truncation": ("longest_first", "ratio"), "max_len": (16, 24, 32)})
    result = GridResult(spec)
    gain = {"longest_first": 0.0, "ratio": 0.2}  # ratio better at every length
    for truncation, max_len in itertools.product(("longest_first", "ratio"), (16, 24, 32)):
        correct = rng.random(900) < 0.5 + gain[truncation] + (max_len - 16) / 200
        result.cells.append(fake_cell((("truncation", truncation), ("max_len", max_len)), 0,
                                      correct, labels))
    pairs = result.one_change_pairs()
    assert len(pairs) == 7  # 3 truncation changes (one per max_len), 2 x 2 max_len changes
    for variant, reference in pairs:
        assert sum(a != b for a, b in zip(variant, reference)) == 1
    verdicts = result.verdicts()
    by_ratio = verdicts[verdicts["A"].str.startswith("truncation=ratio")
                        & verdicts["B"].str.startswith("truncation=longest_first")]
    assert [a.split(", ")[1] for a in by_ratio["A"]] == ["max_len=16", "max_len=24",
                                                         "max_len=32"]
    assert set(by_ratio["verdict"]) == {"better"}
    assert len(result.sentences()) == 7
    fig = result.figure()  # accuracy by max_len, one line per strategy, a dot per seed
    ax = fig.axes[0]
    assert ax.get_xlabel() == "max_len" and [t.get_text() for t in ax.get_xticklabels()] == [
        "16", "24", "32"]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        "longest_first", "majority class", "ratio"]


def test_correct_for_stacks_one_variants_seeds_in_seed_order():
    labels = np.zeros(4, dtype=int)
    spec = GridSpec(RunInfo("minilm"), TrainConfig(), {"lr": (1e-4,), "max_len": (16, 32)},
                    seeds=(0, 1))
    result = GridResult(spec)
    rows = {(16, 1): [1, 1, 0, 0], (16, 0): [1, 0, 0, 0], (32, 0): [0, 0, 0, 1],
            (32, 1): [0, 0, 1, 1]}
    for (max_len, seed), correct in rows.items():
        result.cells.append(fake_cell((("lr", 1e-4), ("max_len", max_len)), seed, correct,
                                      labels))
    np.testing.assert_array_equal(result.correct_for(max_len=16), [[1, 0, 0, 0], [1, 1, 0, 0]])
    assert result.correct_for(lr=1e-4, max_len=32).shape == (2, 4)
    with pytest.raises(GridError, match="matches 2 variants"):
        result.correct_for(lr=1e-4)
    with pytest.raises(GridError, match="matches 0 variants"):
        result.correct_for(max_len=64)


def test_a_real_grid_killed_mid_way_re_runs_nothing_that_had_finished(tmp_path, snli_dir):
    out = tmp_path / "grid"
    command = [sys.executable, "-m", "bertnli_helpers.cli", "compare", "--model", "scratch",
               "--data-dir", str(snli_dir), "--train-size", "48", "--dev-size", "32",
               "--test-size", "40", "--batch-size", "16", "--max-steps", "2", "--device", "cpu",
               "--vary", "truncation=longest_first,ratio", "--vary", "max_len=16,32",
               "--seeds", "0,1", "--output", str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while len(list(out.glob("cells/*/*/scored_probs.npy"))) < 3 and time.time() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    finished = {p.parent: p.parent.joinpath("metrics.json").stat().st_mtime_ns
                for p in out.glob("cells/*/*/scored_probs.npy")}
    assert 3 <= len(finished) < 8

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("re-used") >= len(finished)
    assert second.stdout.count("trained") + second.stdout.count("re-used") == 8
    for folder, mtime in finished.items():
        assert folder.joinpath("metrics.json").stat().st_mtime_ns == mtime
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and set(table["seeds"]) == {2}
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert len(verdicts) == 4  # each a one-setting change: 2 of truncation, 2 of max_len
    assert set(zip(verdicts["A"], verdicts["B"])) == {
        ("truncation=ratio, max_len=16", "truncation=longest_first, max_len=16"),
        ("truncation=longest_first, max_len=32", "truncation=longest_first, max_len=16"),
        ("truncation=ratio, max_len=32", "truncation=longest_first, max_len=32"),
        ("truncation=ratio, max_len=32", "truncation=ratio, max_len=16")}
    assert (out / "verdicts.md").read_text().startswith("| A | B |")
    assert (out / "grid.png").read_bytes().startswith(b"\x89PNG")


def test_labels_leave_out_the_settings_every_run_shares():
    labels = np.array([0, 1, 2] * 50)
    spec = GridSpec(RunInfo("minilm"), TrainConfig(), {"lr": (1e-4, 3e-4), "max_len": (16,)})
    result = GridResult(spec)
    rng = np.random.default_rng(1)
    for lr in (1e-4, 3e-4):
        result.cells.append(fake_cell((("lr", lr), ("max_len", 16)), 0, rng.random(150) < 0.8,
                                      labels))
    assert result.constant_settings() == (("max_len", 16),)
    assert list(result.table()["variant"]) == ["lr=0.0001", "lr=0.0003"]
    assert result.verdicts().loc[0, "A"] == "lr=0.0003" and "max_len" not in result.sentences()[0]
    only = GridResult(GridSpec(RunInfo("minilm"), TrainConfig(), {"max_len": (16,)}))
    assert only.label((("max_len", 16),)) == "max_len=16"  # nothing varies: the full name


def test_against_baseline_names_the_sides_and_refuses_a_side_that_did_not_learn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 800)
    spec = GridSpec(RunInfo("minilm"), TrainConfig(), {"pooling": ("pair", "cls"),
                                                       "batch_size": (16, 512)},
                    only=({"pooling": "cls"}, {"batch_size": 512}))
    result = GridResult(spec)
    base = rng.random(800) < 0.75
    result.cells.append(fake_cell((("pooling", "pair"), ("batch_size", 16)), 0, base, labels))
    result.cells.append(fake_cell((("pooling", "cls"), ("batch_size", 16)), 0,
                                  base & (rng.random(800) < 0.8), labels))
    result.cells.append(fake_cell((("pooling", "pair"), ("batch_size", 512)), 0,
                                  rng.random(800) < 0.2, labels))
    comparison, idle = result.against_baseline({"pooling": "cls"}, "the cls head", "pair")
    assert (comparison.name_a, comparison.name_b, comparison.verdict, idle) == (
        "the cls head", "pair", "worse", [])
    assert result.sentence({"pooling": "cls"}, "the cls head", "pair").startswith(
        "the cls head is worse than pair")
    assert "batches of 512 has 0 of 1 seed above the majority class" in \
        result.sentence({"batch_size": 512}, "batches of 512", "batches of 16")
    assert len(result.sentences()) == 2
    assert list(result.table()["variant"]) == ["baseline", "pooling=cls", "batch_size=512"]


def test_grids_sharing_a_cell_store_train_a_run_once_and_read_it_back_without_weights(
        tmp_path, snli_dir):
    store = tmp_path / "cells"

    def spec(vary):
        return GridSpec(RunInfo("scratch", model_config=dict(TINY)),
                        TrainConfig(batch_size=16, epochs=1, max_steps=2, device="cpu"), vary,
                        train_size=48, dev_size=32, data_dir=str(snli_dir), score_on="dev",
                        cell_store=str(store))

    first_spec = spec({"truncation": ("longest_first", "ratio"), "max_len": (32,)})
    first = run_grid(first_spec, tmp_path / "a", progress=False)
    second = run_grid(spec({"max_len": (32, 16), "truncation": ("longest_first",)}),
                      tmp_path / "b", progress=False)
    assert [c.reused for c in first.cells] == [False, False]
    assert [c.reused for c in second.cells] == [True, False]  # longest_first at 32: first's
    assert len(list(store.iterdir())) == 3
    for weights in store.glob("*/best_model.pt"):
        weights.unlink()  # what the course does to save disk
    again = run_grid(first_spec, tmp_path / "a", progress=False)
    assert [c.reused for c in again.cells] == [True, True]
    for old, new in zip(first.cells, again.cells):
        np.testing.assert_array_equal(old.correct, new.correct)
        assert old.metrics == new.metrics
    changed = run_grid(dataclasses.replace(first_spec, seeds=(1,)), tmp_path / "a",
                       progress=False)
    assert [c.reused for c in changed.cells] == [False, False]  # another seed: other runs
