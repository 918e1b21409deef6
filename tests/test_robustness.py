"""Scoring a run on any labelled NLI file: the same figure as ``--split test`` on SNLI's own test
file in both forms, MultiNLI and two-class files, breakdowns, predictions files, and a run's
``metrics.json`` left alone. A tiny scratch BERT trained for 2 steps: what is checked is the
bookkeeping, not what the model learned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from test_nli_files import multinli_rows, snli_rows, write_jsonl, write_snli_txt

from bertnli_helpers.data.dataset import SNLIBERTDataset
from bertnli_helpers.data.nli_files import read_nli_file
from bertnli_helpers.data.snli import SampleWarning, read_records
from bertnli_helpers.model.inference import evaluate
from bertnli_helpers.study.robustness import evaluate_file, report_paths, score_file, write_report
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.runs import RunInfo, finetune_run, load_finetuned

from conftest import TINY


@pytest.fixture(scope="module")
def run(snli_dir, tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        train = read_records(snli_dir, "train").sample(48, 0)
    dev = read_records(snli_dir, "dev").sample(32, 0)
    folder = tmp_path_factory.mktemp("run")
    info = RunInfo(model="scratch", max_len=48, model_config=dict(TINY), pooling="pair")
    finetune_run(folder, info, train, dev, None,
                 TrainConfig(epochs=1, batch_size=16, max_steps=2, device="cpu"))
    return folder


def bertnli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bertnli_helpers.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_snli_test_file_gives_the_split_figure_in_both_forms(run, snli_dir, tmp_path):
    """The issue's 'done when': ``--file`` on SNLI's test file (JSONL and TXT) equals
    ``--split test``, and neither file run touches the run's metrics.json."""
    common = ["--run", str(run), "--data-dir", str(snli_dir), "--device", "cpu"]
    split = bertnli("evaluate", *common, "--split", "test")
    assert split.returncode == 0, split.stderr
    by_split = json.loads(split.stdout)
    metrics = (run / "metrics.json").read_text()
    txt = write_snli_txt(tmp_path / "snli_1.0_test.txt", snli_rows(snli_dir))
    for path in (snli_dir / "snli_1.0_test.jsonl.gz", txt):
        done = bertnli("evaluate", *common, "--file", str(path))
        assert done.returncode == 0, done.stderr
        by_file = json.loads(done.stdout)
        assert by_file["n"] == by_split["n"] == 9824
        assert by_file["accuracy"] == by_split["accuracy"]
        assert by_file["loss"] == pytest.approx(by_split["loss"], rel=1e-6)
        report, predictions_file = report_paths(run, path)
        assert report.name.startswith("eval-snli_1.0_test-")
        assert json.loads(report.read_text())["accuracy"] == by_split["accuracy"]
        assert (run / "metrics.json").read_text() == metrics
    predictions = pd.read_json(predictions_file, lines=True)
    assert len(predictions) == 9824 and predictions["correct"].mean() == by_split["accuracy"]
    assert {"pairID", "captionID", "label1"} <= set(predictions.columns)


def test_multinli_file_by_genre_through_the_cli(run, snli_dir, tmp_path):
    path = write_jsonl(tmp_path / "multinli_1.0_dev_matched.jsonl", multinli_rows(snli_dir, 80))
    out, preds = tmp_path / "report.json", tmp_path / "preds.tsv"
    done = bertnli("evaluate", "--run", str(run), "--device", "cpu", "--file", str(path),
                   "--by", "genre", "--by", "negation", "--out", str(out),
                   "--predictions", str(preds))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report == json.loads(done.stdout)
    genres = {row["value"]: row for row in report["by"]["genre"]}
    assert set(genres) == {"fiction", "government", "slate", "telephone", "travel"}
    assert sum(row["count"] for row in genres.values()) == report["n"]
    table = pd.read_csv(preds, sep="\t")
    for genre, row in genres.items():
        assert table[table["genre"] == genre]["correct"].mean() == pytest.approx(row["accuracy"])
    assert sum(sum(row.values()) for row in report["confusion"].values()) == report["n"]
    assert 0 <= report["accuracy_two_class"] <= 1 and report["label_space"] == "three"


def test_two_class_file_is_scored_in_both_views(run, tmp_path):
    path = tmp_path / "heuristics_evaluation_set.txt"
    lines = ["gold_label\tsentence1\tsentence2\theuristic"]
    for i in range(12):
        lines.append(f"non-entailment\tThe doctor {i} saw the lawyer.\tThe lawyer saw the doctor "
                     f"{i}.\tlexical_overlap")
        lines.append(f"entailment\tThe doctor near the actor {i} ran.\tThe doctor ran.\t"
                     "subsequence")
    path.write_text("\n".join(lines) + "\n")
    report = evaluate_file(run, path, device="cpu", by=["heuristic"])
    frame = report.frame
    assert report.label_space == "two" and "loss" not in report.summary()
    mapped = np.where(frame["predicted_name"] == "entailment", "entailment", "non-entailment")
    assert report.summary()["accuracy"] == pytest.approx(np.mean(mapped == frame["gold_name"]))
    confusion = report.confusion()
    assert list(confusion.index) == ["entailment", "non-entailment"]
    assert list(confusion.columns) == ["entailment", "contradiction", "neutral"]
    assert confusion.to_numpy().sum() == 24
    by = report.by("heuristic")
    assert list(by["count"]) == [12, 12]
    failures = report.failures(3)
    assert len(failures) <= 3 and not frame.loc[failures.index, "correct"].any()
    assert list(failures["confidence"]) == sorted(failures["confidence"], reverse=True)


def test_python_equivalent_matches_evaluate(run, snli_dir, tmp_path):
    net, tokenizer, info = load_finetuned(run)
    dev = read_records(snli_dir, "dev").sample(50, 4)
    expected = evaluate(net, SNLIBERTDataset(dev, tokenizer, info.max_len, info.truncation))
    path = write_jsonl(tmp_path / "dev50.jsonl", [
        {"sentence1": r.premise, "sentence2": r.hypothesis, "gold_label": r.label_name,
         "agreement": "unanimous" if len(set(r.annotator_labels)) == 1 else "split"}
        for r in dev.records])
    report = score_file(net, tokenizer, read_nli_file(path), max_len=info.max_len,
                        truncation=info.truncation)
    assert report.summary()["accuracy"] == expected["accuracy"]
    assert set(report.by("agreement").index) <= {"unanimous", "split"}
    json_path, preds = report_paths(run, path)
    assert json_path.parent == run and json_path.name.startswith("eval-dev50-")
    assert preds == json_path.with_name(f"{json_path.stem}-predictions.jsonl")
    content = write_report(report, json_path, preds, by=["agreement"])
    assert content["by"]["agreement"] and json_path.exists() and preds.exists()


def test_bad_requests_fail_before_any_work(run, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"sentence1": "A", "sentence2": "B",
                                               "gold_label": "neutral"}])
    with pytest.raises(ValueError, match=r"has no field 'genre'; break down by one of"):
        evaluate_file(run, path, by=["genre"])
    unknown = bertnli("evaluate", "--run", str(run), "--file", str(path), "--by", "genre")
    assert unknown.returncode == 2 and "no field 'genre'" in unknown.stderr
    assert not list(run.glob("eval-a*"))
    split_only = bertnli("evaluate", "--run", str(run), "--split", "dev", "--by", "genre")
    assert split_only.returncode == 2 and "--by: only with --file" in split_only.stderr
    nolabel = tmp_path / "nolabel.jsonl"
    nolabel.write_text('{"premise": "A", "hypothesis": "B"}\n')
    failed = bertnli("evaluate", "--run", str(run), "--file", str(nolabel))
    assert failed.returncode == 2 and "nolabel.jsonl, line 1: no label" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    bad_suffix = bertnli("evaluate", "--run", str(run), "--file", str(path), "--predictions",
                         str(tmp_path / "p.xlsx"))
    assert bad_suffix.returncode == 2 and "name it .jsonl, .tsv, .csv" in bad_suffix.stderr
