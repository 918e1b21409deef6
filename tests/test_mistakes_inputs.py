"""A hostile first week, part two (issue 28): bad inputs are refused by name and lose nothing.

Each test makes the mistake for real (the real ``bertnli`` command through ``cli.main``, real
tiny ``scratch`` runs on real SNLI pairs, real files) and asserts exit 2, one line naming the
file or argument, and that every byte the user had is unchanged. One test (or one parametrized
test) per item of the issue; add yours beside them:

6. every float argument is finite (``--lr nan`` / ``inf`` / ``-1``; ``--vary lr=nan``);
7. a full disk says "no space left on device writing FILE" and leaves no partial or lock file;
8. every field read from a run folder (``run.json``, ``metrics.json``) is checked, by name;
9. a non-finite loss stops fine-tuning and pretraining (exit 2, nothing saved as a finished
   run), no JSON file ever holds NaN, ``predict`` never prints ``nan``;
11. ``evaluate --file`` gives the majority-class rate, says when the file has one label, and
    honours and records ``--precision``;
12. ``compare`` checks every cell's recipe before the first cell trains;
14. ``predict`` and ``evaluate --file`` read pairs files by one reader, with the same errors;
    ``predict``'s TSV quotes tabs and newlines;
cosmetics: the error messages the issue lists name the right thing.
"""

from __future__ import annotations

import csv
import errno
import gzip
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from bertnli_helpers import cli
from bertnli_helpers.files import LOCK_FILE, TEMP_SUFFIX, atomic_write_json

TINY = ["--model", "scratch", "--train-size", "32", "--dev-size", "16", "--test-size", "16",
        "--max-steps", "2", "--batch-size", "16", "--max-len", "32", "--device", "cpu"]


def bertnli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``bertnli ARGS`` as the console script does; its exit code, stdout and stderr."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as stop:  # argparse refuses an argument before main's own handling
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(code: int, err: str, *names: object) -> str:
    """Exit 2 and exactly one ``bertnli ...: error: ...`` line, naming every one of ``names``."""
    assert code == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines()
             if line.startswith("bertnli ") and ": error: " in line]
    assert len(lines) == 1, err[-3000:]
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) and the SHA-1 of its bytes."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def no_non_finite_json(folder: Path) -> None:
    for path in folder.rglob("*.json"):
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text, path
        json.loads(text)  # bare NaN would not even be JSON to other readers; this one is


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, snli_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("mistakes") / "run"
    code = cli.main(["finetune", *TINY, "--data-dir", str(snli_dir), "--output", str(run)])
    assert code == 0
    return run


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


# -- 6 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["finetune", "--lr", "nan"], ["finetune", "--lr", "inf"], ["finetune", "--lr", "-1"],
    ["pretrain", "--lr", "nan"], ["pretrain", "--lr=-inf"],
    ["compare", "--vary", "truncation=ratio", "--lr", "inf"],
    ["compare", "--vary", "lr=1e-4,nan"],
], ids=lambda c: " ".join(c))
def test_6_every_float_argument_must_be_finite(capsys, tmp_path, snli_dir, command):
    out = tmp_path / "out"
    code, _, err = bertnli(capsys, *command, "--data-dir", snli_dir, "--output", out)
    line = one_error_line(code, err, "lr")
    assert any(value in line for value in ("nan", "inf", "-1")), line
    assert not out.exists()


# -- 7 ---------------------------------------------------------------------------------------------
class _FullDisk:
    """A file handle on a disk that fills after the small writes: a JSON file fits, the first
    big chunk (a tensor's bytes, written by torch.save) does not."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def write(self, data) -> int:
        if len(data) > 8192:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name: str):
        return getattr(self.handle, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def test_7_a_full_disk_names_the_file_and_leaves_no_partial_or_lock_file(
        capsys, tmp_path, snli_dir, monkeypatch):
    run = tmp_path / "run"
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args, **kwargs):  # only the run's folder is on the full disk
        handle = real_fdopen(fd, *args, **kwargs)
        on_disk = os.readlink(f"/proc/self/fd/{fd}").startswith(str(run))
        return _FullDisk(handle) if on_disk else handle

    monkeypatch.setattr(os, "fdopen", fdopen)
    code, _, err = bertnli(capsys, "finetune", *TINY, "--data-dir", snli_dir, "--output", run)
    line = one_error_line(code, err, "no space left on device writing", run)
    assert "inline_container" not in err and line.rstrip().endswith("run again")
    left = [p.name for p in run.iterdir()] if run.exists() else []
    assert not [n for n in left if n.endswith(TEMP_SUFFIX) or n == LOCK_FILE], left
    assert "run.json" not in left  # nothing claims a saved run


def test_7_a_real_full_tmpfs_says_so(capsys, tmp_path, snli_dir):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                             capture_output=True, check=False)
    if mounted.returncode:
        pytest.skip("no permission to mount a small tmpfs here (the injected test covers it)")
    try:
        run = disk / "run"
        code, _, err = bertnli(capsys, "finetune", *TINY, "--data-dir", snli_dir, "--output", run)
        one_error_line(code, err, "no space left on device writing", run)
        left = [p.name for p in run.iterdir()] if run.exists() else []
        assert not [n for n in left if n.endswith(TEMP_SUFFIX) or n == LOCK_FILE], left
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# -- 8 ---------------------------------------------------------------------------------------------
def _edit(path: Path, change) -> None:
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


@pytest.mark.parametrize(("file", "change", "field"), [
    ("run.json", lambda d: d.update(max_len="32"), "max_len"),
    ("run.json", lambda d: d.update(freeze_encoder="no"), "freeze_encoder"),
    ("run.json", lambda d: d.update(pooling="best"), "pooling"),
    ("run.json", lambda d: d.update(truncation=3), "truncation"),
    ("run.json", lambda d: d.update(model=["scratch"]), "model"),
    ("run.json", lambda d: d["model_config"].update(hidden_size="wide"),
     "model_config.hidden_size"),
    ("metrics.json", lambda d: d.update(evaluations=[1, 2]), "evaluations"),
], ids=["max_len text", "bool text", "pooling", "truncation number", "model list", "sizes",
        "evaluations"])
def test_8_a_hand_edited_run_file_is_refused_naming_file_and_field(
        capsys, run_copy, snli_dir, file, change, field):
    _edit(run_copy / file, change)
    before = tree(run_copy)
    code, _, err = bertnli(capsys, "evaluate", "--run", run_copy, "--data-dir", snli_dir,
                           "--size", "4")
    one_error_line(code, err, run_copy / file, field)
    assert tree(run_copy) == before


def test_8_metrics_json_that_is_no_object_is_named(capsys, run_copy, snli_dir):
    (run_copy / "metrics.json").write_text("[0.5]")
    before = tree(run_copy)
    code, _, err = bertnli(capsys, "evaluate", "--run", run_copy, "--data-dir", snli_dir,
                           "--size", "4")
    one_error_line(code, err, run_copy / "metrics.json", "JSON object")
    assert tree(run_copy) == before


# -- 9 ---------------------------------------------------------------------------------------------
def test_9_a_diverging_finetune_stops_with_a_clear_error_and_saves_no_run(
        capsys, tmp_path, snli_dir):
    run = tmp_path / "run"
    code, out, err = bertnli(capsys, "finetune", *TINY, "--lr", "1e30", "--data-dir", snli_dir,
                             "--output", run)
    one_error_line(code, err, "training loss is", "lower --lr")
    assert "run saved" not in out
    assert not (run / "run.json").exists() and not (run / "metrics.json").exists()
    no_non_finite_json(run)


def test_9_a_diverging_pretrain_writes_no_weights(capsys, tmp_path, snli_dir):
    out = tmp_path / "pretrained"
    code, stdout, err = bertnli(capsys, "pretrain", "--preset", "tiny", "--steps", "4",
                                "--lr", "1e30", "--device", "cpu", "--data-dir", snli_dir,
                                "--output", out)
    one_error_line(code, err, "training loss is")
    assert "book-format checkpoint" not in stdout
    assert not (out / "pretrained.zip").exists() and not list(out.rglob("*.params"))
    no_non_finite_json(out)


def test_9_json_files_refuse_nan_and_keep_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"accuracy": 0.5}\n')
    with pytest.raises(ValueError, match="JSON compliant"):
        atomic_write_json(path, {"accuracy": math.nan})
    assert path.read_text() == '{"accuracy": 0.5}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_9_predict_prints_no_nan_from_nan_weights(capsys, run_copy):
    import torch

    weights = run_copy / "best_model.pt"
    state = torch.load(weights, weights_only=True)
    state = {k: torch.full_like(v, math.nan) if v.is_floating_point() else v
             for k, v in state.items()}
    torch.save(state, weights)
    before = tree(run_copy)
    code, out, err = bertnli(capsys, "predict", "--run", run_copy, "A dog runs.", "An animal.")
    one_error_line(code, err, run_copy, "non-finite")
    assert "nan" not in out.lower()
    assert tree(run_copy) == before


# -- 11 --------------------------------------------------------------------------------------------
def test_11_evaluate_file_of_one_label_gives_the_majority_rate_and_precision(
        capsys, run_copy, tmp_path):
    pairs = tmp_path / "one_label.jsonl"
    pairs.write_text("".join(json.dumps({"sentence1": p, "sentence2": h,
                                         "gold_label": "entailment"}) + "\n"
                             for p, h in [("A dog runs.", "An animal moves."),
                                          ("Two men talk.", "People speak."),
                                          ("A girl sings.", "Someone makes a sound.")]))
    before = tree(run_copy)
    code, out, err = bertnli(capsys, "evaluate", "--run", run_copy, "--file", pairs,
                             "--precision", "fp32")
    assert code == 0, err
    report = json.loads(out)
    assert report["majority_label"] == "entailment" and report["majority_rate"] == 1.0
    assert "every pair of the file is entailment" in report["note"]
    assert report["precision"] == "fp32"
    assert "against 1.0000 for always saying entailment" in err
    saved_path, = run_copy.glob("eval-one_label-*.json")  # named after the file and sample
    saved = json.loads(saved_path.read_text())
    assert saved["precision"] == "fp32" and saved["majority_rate"] == 1.0
    after = tree(run_copy)
    assert {k: v for k, v in after.items() if k in before} == before  # reports added beside


# -- 12 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("vary", "named"), [
    ("model=scratch,minlm", "model=minlm"),
    ("max_len=16,3", "max_len=3"),
], ids=["model typo", "max_len too short"])
def test_12_compare_checks_every_cell_before_the_first_trains(
        capsys, tmp_path, snli_dir, vary, named):
    out = tmp_path / "grid"
    code, stdout, err = bertnli(capsys, "compare", *TINY, "--vary", vary, "--data-dir",
                                snli_dir, "--output", out)
    one_error_line(code, err, named, "nothing was run")
    assert "trained" not in stdout
    assert not out.exists()


# -- 14 --------------------------------------------------------------------------------------------
BAD_PAIRS_FILES = {
    "empty.tsv": b"",
    "empty-text.tsv": b"sentence1\tsentence2\tgold_label\nA dog.\t \tentailment\n",
    "empty.jsonl": b"\n\n",
    "bad.jsonl.gz": gzip.compress(b'{"sentence1": "A dog."\n'),
    "gzipped.jsonl": gzip.compress(b'{"sentence1": "A dog.", "sentence2": "A pet.", '
                                   b'"gold_label": "entailment"}\n'),
}


@pytest.mark.parametrize("name", list(BAD_PAIRS_FILES))
def test_14_predict_and_evaluate_file_refuse_a_bad_file_alike(capsys, finished_run, tmp_path,
                                                              name):
    path = tmp_path / name
    path.write_bytes(BAD_PAIRS_FILES[name])
    before = tree(finished_run)
    messages = []
    for command in (["predict", "--run", finished_run, "--file", path],
                    ["evaluate", "--run", finished_run, "--file", path]):
        line = one_error_line(*bertnli(capsys, *command)[::2], path)
        messages.append(line.split(": error: ", 1)[1])
    if name == "empty.jsonl":  # an evaluation needs labelled pairs, so it says which it lacks
        assert all("no" in m and "pairs in the file" in m for m in messages), messages
    else:
        assert messages[0] == messages[1]
    assert tree(finished_run) == before


def test_14_predict_reads_bom_header_gzip_and_quotes_tabs_and_newlines(
        capsys, finished_run, tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_bytes("\ufeffpremise\thypothesis\nA man plays.\tA person makes music.\n"
                    .encode("utf-8"))
    code, out, err = bertnli(capsys, "predict", "--run", finished_run, "--file", tsv)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out), delimiter="\t"))
    assert rows[0][0] == "label" and len(rows) == 2 and rows[1][4] == "A man plays."

    jsonl = tmp_path / "pairs.jsonl.gz"
    jsonl.write_bytes(gzip.compress(json.dumps({"premise": "A dog\truns.",
                                                "hypothesis": "An\nanimal."}).encode()))
    code, out, err = bertnli(capsys, "predict", "--run", finished_run, "--file", jsonl)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out), delimiter="\t"))
    assert len(rows) == 2 and all(len(row) == 6 for row in rows)
    assert "\t" in rows[1][4] and "\n" in rows[1][5]


# -- cosmetics -------------------------------------------------------------------------------------
def _cosmetic_cases(tmp: Path, snli_dir: Path, run: Path) -> dict[str, tuple[list, list]]:
    folder = tmp / "a_folder"
    folder.mkdir()
    not_zip = tmp / "model.bin"
    not_zip.write_text("weights?")
    a_file = tmp / "taken"
    a_file.write_text("mine")
    gz = tmp / "pairs.jsonl"
    gz.write_bytes(gzip.compress(b'{"premise": "A.", "hypothesis": "B."}\n'))
    data = ["--data-dir", snli_dir]
    return {
        "folder as --file": (["evaluate", "--run", run, "--file", folder], [folder, "folder"]),
        "non-zip --model": (["finetune", *TINY, *data, "--model", not_zip, "--output",
                             tmp / "o"], [not_zip, "not a .zip"]),
        "file as pretrain --output": (["pretrain", "--output", a_file], [a_file, "not a folder"]),
        "file as compare --output": (["compare", "--vary", "truncation=ratio", "--output",
                                      a_file], [a_file, "not a folder"]),
        "gzip named .jsonl": (["predict", "--run", run, "--file", gz], [gz, "gzip"]),
        "--lr -1": (["finetune", "--output", tmp / "o", "--lr", "-1"], ["--lr", "-1"]),
        "--max-len 3.5": (["finetune", "--output", tmp / "o", "--max-len", "3.5"],
                          ["--max-len", "3.5"]),
        "--baseline max_len": (["compare", *data, "--vary", "max_len=16,32", "--baseline",
                                "max_len", "--output", tmp / "g"], ["--baseline", "max_len"]),
        "download bogus": (["download", "bogus"], ["bogus", "known resources"]),
    }


COSMETICS = ["folder as --file", "non-zip --model", "file as pretrain --output",
             "file as compare --output", "gzip named .jsonl", "--lr -1", "--max-len 3.5",
             "--baseline max_len", "download bogus"]


@pytest.mark.parametrize("case", COSMETICS)
def test_cosmetic_errors_name_the_right_thing(capsys, tmp_path, snli_dir, finished_run, case):
    args, names = _cosmetic_cases(tmp_path, snli_dir, finished_run)[case]
    before = tree(tmp_path), tree(finished_run)
    line = one_error_line(*bertnli(capsys, *args)[::2], *names)
    for wrong in ("not found", "does not exist", "File exists", "invalid _max_len", "--vary",
                  "register()", LOCK_FILE, TEMP_SUFFIX):
        assert wrong not in line, line
    assert (tree(tmp_path), tree(finished_run)) == before


def test_cosmetic_freeze_encoder_help_does_not_say_cls(capsys):
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    help_line = text.split("--freeze-encoder")[-1].split("--pooling", 1)[0]  # not the usage
    assert "<cls>" not in help_line and "classifier" in help_line


def test_cosmetic_an_empty_train_file_is_no_low_resource_sample(capsys, tmp_path, snli_dir):
    data = tmp_path / "snli"
    data.mkdir()
    for split in ("dev", "test"):
        shutil.copy(snli_dir / f"snli_1.0_{split}.jsonl.gz", data)
    (data / "snli_1.0_train.jsonl").write_text("")
    before = tree(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = bertnli(capsys, "finetune", *TINY, "--data-dir", data, "--output",
                               tmp_path / "run")
    one_error_line(code, err, "train")
    assert not [w for w in caught if "low-resource" in str(w.message)]
    assert "low-resource" not in err
    assert tree(data) == before
