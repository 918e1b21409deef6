"""Mistakes a user makes in the first week, made for real: nothing a user has is ever lost.

Issue 28, one test per item: each makes the mistake on real files (tiny ``scratch`` runs on real
SNLI pairs, a real SIGINT to a real process, a real second process holding a lock), and checks
exit 2 with one line naming the file, and that the sha256 of every file the user had is unchanged.

1.  finetune into an interrupted run without --resume is refused (step named).
2.  finetune into a non-empty folder that is not a run of ours is refused.
3.  evaluate's report paths never replace the input file or one of the run's own files.
4.  default report names never collide (two files of one name; two samples of one split).
5.  Ctrl-C in ``course`` keeps the earlier finished notebook and records "interrupted".
10. ``finetune --resume`` continues the recipe of run_inputs.json; without the file, refused.
13. pretrain, course and compare hold their folder's lock: a second writer is refused.
15. compare writes only into a new folder or a grid of its own; --gather refuses options it ignores.

Items 6-9, 11, 12 and 14 (argument values, full disks, NaN, one-class files, grids, pair
files) belong here too: add a test per item, named after what it proves.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_cli import SMALL, bertnli, one_line_error

from bertnli_helpers.data.snli import read_records
from bertnli_helpers.files import KILL_AT_WRITE_ENV, LOCK_FILE, is_temp_path

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def hashes(*places: Path) -> dict[str, str]:
    """sha256 of every file under ``places`` (files or folders), by path: all but the lock and
    temporary files a killed bertnli left, which the next holder of the folder removes."""
    files = [p for place in places
             for p in ([place] if place.is_file() else sorted(place.rglob("*")))
             if p.is_file() and p.name != LOCK_FILE and not is_temp_path(p)]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def finetune(run: Path, snli_dir: Path, *extra: str, env: dict | None = None):
    args = [PY, "-m", "bertnli_helpers.cli", "finetune", "--model", "scratch", "--data-dir",
            str(snli_dir), *SMALL, "--output", str(run), *extra]
    return subprocess.run(args, env={**ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, snli_dir) -> Path:
    """A run killed (SIGKILL) while writing its second checkpoint: the first, at step 1, stays."""
    run = tmp_path_factory.mktemp("interrupted") / "run"
    killed = finetune(run, snli_dir, "--checkpoint-every", "1",
                      env={KILL_AT_WRITE_ENV: "checkpoint.pt:2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (run / "checkpoint.pt").exists() and not (run / "run.json").exists()
    return run


@pytest.fixture
def interrupted_copy(interrupted, tmp_path) -> Path:
    return Path(shutil.copytree(interrupted, tmp_path / "run"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, snli_dir) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    done = finetune(run, snli_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    return run


@pytest.fixture
def finished_copy(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "finished"))


def pairs_file(path: Path, snli_dir: Path, start: int, n: int = 12) -> Path:
    """Real dev pairs in SNLI's JSONL form."""
    records = read_records(snli_dir, "dev").records[start:start + n]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"sentence1": r.premise, "sentence2": r.hypothesis,
                                        "gold_label": r.label_name}) + "\n" for r in records))
    return path


# -- 1, 2: finetune never replaces what a folder holds ---------------------------------------------
def test_1_finetune_refuses_an_interrupted_run_without_resume(interrupted_copy, snli_dir):
    before = hashes(interrupted_copy)
    result = finetune(interrupted_copy, snli_dir)
    line = one_line_error(result, interrupted_copy)
    assert "interrupted run at step 1" in line and "--resume" in line
    assert hashes(interrupted_copy) == before


def test_2_finetune_refuses_a_folder_that_is_not_a_run(tmp_path, snli_dir):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "metrics.json").write_text('{"my": "own figures"}\n')
    (folder / "history.json").write_text("[1, 2, 3]\n")
    before = hashes(folder)
    line = one_line_error(finetune(folder, snli_dir), folder)
    assert "no run.json" in line and "metrics.json" in line
    assert hashes(folder) == before and sorted(p.name for p in folder.iterdir()) == [
        "history.json", "metrics.json"]


# -- 3, 4: evaluate's reports ---------------------------------------------------------------------
def evaluate(run: Path, snli_dir: Path, *args: str):
    return bertnli("evaluate", "--run", str(run), "--data-dir", str(snli_dir), "--device", "cpu",
                   *args)


@pytest.mark.parametrize(("flag", "target"), [
    ("--out", "input"), ("--predictions", "input"), ("--out", "metrics.json"),
    ("--out", "run.json"), ("--out", "checkpoint.pt")])
def test_3_a_report_never_replaces_the_input_or_a_run_file(finished, snli_dir, tmp_path, flag,
                                                          target):
    data = pairs_file(tmp_path / "pairs.jsonl", snli_dir, 0)
    path = data if target == "input" else finished / target
    before = hashes(finished, data)
    line = one_line_error(evaluate(finished, snli_dir, "--file", str(data), flag, str(path)),
                          path)
    assert ("input file" if target == "input" else "run's own files") in line
    assert hashes(finished, data) == before


def test_3_predictions_as_the_input_file_of_another_name_is_refused(finished, snli_dir,
                                                                      tmp_path):
    data = pairs_file(tmp_path / "pairs.jsonl", snli_dir, 0)
    (tmp_path / "link.jsonl").symlink_to(data)
    before = hashes(finished, data)
    result = evaluate(finished, snli_dir, "--file", str(data), "--predictions",
                      str(tmp_path / "link.jsonl"))
    assert "input file" in one_line_error(result, "link.jsonl")
    assert hashes(finished, data) == before


def test_4_reports_of_two_files_of_one_name_are_kept_apart(finished_copy, snli_dir, tmp_path):
    first = pairs_file(tmp_path / "a" / "test.jsonl", snli_dir, 0)
    second = pairs_file(tmp_path / "b" / "test.jsonl", snli_dir, 100)
    assert evaluate(finished_copy, snli_dir, "--file", str(first)).returncode == 0
    reports = sorted(finished_copy.glob("eval-test-*.json"))
    assert len(reports) == 1
    kept = hashes(*reports, *finished_copy.glob("eval-test-*-predictions.jsonl"))
    assert evaluate(finished_copy, snli_dir, "--file", str(second)).returncode == 0
    assert hashes(*(Path(p) for p in kept)) == kept
    assert len(list(finished_copy.glob("eval-test-*.json"))) == 2
    sampled = evaluate(finished_copy, snli_dir, "--file", str(first), "--size", "5")
    assert sampled.returncode == 0 and len(list(finished_copy.glob("eval-test-*.json"))) == 3
    assert hashes(*(Path(p) for p in kept)) == kept


def test_4_a_small_sample_of_a_split_keeps_the_larger_ones_entry(finished_copy, snli_dir):
    for size in ("30", "10"):
        assert evaluate(finished_copy, snli_dir, "--split", "dev", "--size", size).returncode == 0
    evaluations = json.loads((finished_copy / "metrics.json").read_text())["evaluations"]
    assert evaluations["dev-30pairs-seed0"]["n"] == 30
    assert evaluations["dev-10pairs-seed0"]["n"] == 10


# -- 5: course under Ctrl-C ------------------------------------------------------------------------
def course_command(out: Path, snli_dir: Path) -> list[str]:
    return [PY, "-m", "bertnli_helpers.cli", "course", "--profile", "tiny", "--notebooks", "01",
            "--output", str(out), "--data-dir", str(snli_dir), "--device", "cpu"]


def a_cell_has_run(out: Path) -> bool:
    """Whether the partial executed copy papermill is writing records a finished cell."""
    for path in out.iterdir():
        if is_temp_path(path):
            try:
                return '"status": "completed"' in path.read_text()
            except FileNotFoundError:
                return False
    return False


def test_5_ctrl_c_in_a_second_course_keeps_the_finished_notebook(tmp_path, snli_dir):
    out = tmp_path / "course"
    first = subprocess.run(course_command(out, snli_dir), env=ENV, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    executed = [out / "01_pretrained_bert.ipynb", out / "01_pretrained_bert.html"]
    before = hashes(*executed)
    second = subprocess.Popen(course_command(out, snli_dir), env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not a_cell_has_run(out):  # mid-notebook: its first cells ran, the rest not
            assert second.poll() is None and time.time() < deadline, second.stderr
            time.sleep(0.05)
        second.send_signal(signal.SIGINT)
        _, stderr = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert hashes(*executed) == before
    assert not [p for p in out.iterdir() if is_temp_path(p) or p.name == LOCK_FILE]
    summary = json.loads((out / "summary.json").read_text())
    assert [row["status"] for row in summary] == ["interrupted"]
    assert 'class="status-interrupted">interrupted' in (out / "index.html").read_text()


# -- 10: resume from run_inputs.json ---------------------------------------------------------------
def test_10_resume_continues_the_recorded_recipe(interrupted_copy, snli_dir):
    result = bertnli("finetune", "--output", str(interrupted_copy), "--resume", "--data-dir",
                     str(snli_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((interrupted_copy / "run.json").read_text())["model"] == "scratch"
    metrics = json.loads((interrupted_copy / "metrics.json").read_text())
    assert metrics["train_pairs"] == 64 and metrics["model"] == "scratch"
    history = json.loads((interrupted_copy / "history.json").read_text())
    assert history[-1]["step"] == 3


def test_10_resume_with_a_different_option_lists_it(interrupted_copy, snli_dir):
    before = hashes(interrupted_copy)
    result = bertnli("finetune", "--output", str(interrupted_copy), "--resume", "--data-dir",
                     str(snli_dir), "--max-len", "32")
    assert "max_len: 48 -> 32" in one_line_error(result, interrupted_copy)
    assert hashes(interrupted_copy) == before


def test_10_resume_without_run_inputs_is_refused(interrupted_copy, snli_dir):
    (interrupted_copy / "run_inputs.json").unlink()
    before = hashes(interrupted_copy)
    result = finetune(interrupted_copy, snli_dir, "--resume")
    assert "no run_inputs.json" in one_line_error(result, interrupted_copy)
    assert hashes(interrupted_copy) == before


# -- 13: one writer per folder ---------------------------------------------------------------------
HOLD = ("import sys; from bertnli_helpers.files import run_folder_lock\n"
        "with run_folder_lock(sys.argv[1]):\n    print('held', flush=True); sys.stdin.read()")


@contextmanager
def holding(folder: Path):
    """``folder`` locked by a real second process until the block ends; yields its pid."""
    holder = subprocess.Popen([PY, "-c", HOLD, str(folder)], env=ENV, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        holder.communicate("", timeout=60)


@pytest.fixture
def held(tmp_path):
    """A folder with a user's file, held by a second process."""
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    with holding(folder) as pid:
        yield folder, pid


@pytest.mark.parametrize("command", [
    ["pretrain", "--preset", "tiny"],
    ["course", "--profile", "tiny", "--notebooks", "01"],
    ["compare", "--model", "scratch", *SMALL, "--vary", "max_len=16,32"],
], ids=["pretrain", "course", "compare"])
def test_13_a_second_writer_is_refused_while_the_folder_is_held(held, snli_dir, command):
    folder, pid = held
    before = hashes(folder)
    result = bertnli(*command, "--data-dir", str(snli_dir), "--output", str(folder))
    assert f"pid {pid}" in one_line_error(result, folder)
    assert hashes(folder) == before


def test_13_evaluate_does_not_write_its_report_into_a_held_run(finished, snli_dir, tmp_path):
    data = pairs_file(tmp_path / "pairs.jsonl", snli_dir, 0)
    before = hashes(finished)
    with holding(finished) as pid:
        result = evaluate(finished, snli_dir, "--file", str(data))
    assert f"pid {pid}" in one_line_error(result, finished)
    assert hashes(finished) == before


# -- 15: compare's own folders -------------------------------------------------------------------
def test_15_compare_refuses_an_output_folder_that_is_not_a_grid(tmp_path, snli_dir):
    """A grid writes grid.json, its tables and grid.png: never over someone else's files."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.md").write_text("my own notes\n")
    before = hashes(out)
    result = bertnli("compare", "--vary", "lr=1e-4,3e-4", "--model", "scratch", *SMALL,
                     "--data-dir", str(snli_dir), "--output", str(out))
    one_line_error(result, out, "no grid.json")
    assert hashes(out) == before


def test_15_gather_refuses_options_it_would_ignore(tmp_path):
    """Recipe and backend options say nothing to --gather (the grids bring their own recipe)."""
    result = bertnli("compare", "--gather", str(tmp_path / "a"), str(tmp_path / "b"),
                     "--output", str(tmp_path / "class"), "--epochs", "3", "--backend", "ray")
    one_line_error(result, "--backend", "--epochs", "not with --gather")
    assert not (tmp_path / "class").exists()


def test_15_gather_names_a_grid_file_edited_by_hand(tmp_path):
    grids = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "grid.json").write_text(json.dumps({"vary": {}, "seeds": [0], "recipe": {}}))
        grids.append(str(folder))
    result = bertnli("compare", "--gather", *grids, "--output", str(tmp_path / "class"))
    one_line_error(result, "grid.json")
