"""One set of runs for a class: a read-only shared run store that students re-use.

A teacher's grid is written as usual; two students then run the same grid against a REAL
read-only view of it (a read-only bind mount when the tests run as root, whom chmod does not
stop; a chmod'ed folder otherwise), each into their own folder. The shared folder's bytes and
modification times must not change, and nothing is locked there.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from bertnli_helpers.cli import main
from bertnli_helpers.data.snli import SampleWarning, read_records
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.runs import SHARED_RUNS_ENV, RunInfo, finetune_run

from conftest import TINY


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``root``: its SHA-256 (folders: '-') and mtime in ns."""
    found = {}
    for path in sorted([root, *root.rglob("*")]):
        digest = "-" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        found[str(path.relative_to(root))] = (digest, path.stat().st_mtime_ns)
    return found


def grid_command(snli_dir: Path, output: Path, seeds: str) -> list[str]:
    return [sys.executable, "-m", "bertnli_helpers.cli", "compare", "--model", "scratch",
            "--data-dir", str(snli_dir), "--train-size", "32", "--dev-size", "24",
            "--test-size", "24", "--batch-size", "16", "--max-steps", "2", "--device", "cpu",
            "--vary", "truncation=longest_first,ratio", "--seeds", seeds, "--jobs", "1",
            "--output", str(output)]


def read_only_runner(shared: Path, view: Path) -> tuple[list[str], Path]:
    """A command prefix under which ``view`` is ``shared`` made read-only for real, and the
    folder the student process should read."""
    if os.geteuid() != 0:
        for path in [shared, *shared.rglob("*")]:
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        return [], shared
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare: no way to make a folder read-only for root")
    view.mkdir()
    script = (f"mount --bind '{shared}' '{view}' && mount -o remount,bind,ro '{view}' && "
              f"touch '{view}/probe' 2>/dev/null && exit 99; exec \"$@\"")
    return ["unshare", "-m", "sh", "-c", script, "sh"], view


def results(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # timings are the runs' own; what is compared is the scores
        row.pop("minutes")
        row.pop("examples/s")
    return rows


@pytest.mark.slow
def test_students_reuse_a_read_only_shared_grid_without_touching_it(tmp_path, snli_dir):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    env.pop(SHARED_RUNS_ENV, None)
    shared = tmp_path / "shared"
    teacher = subprocess.run(grid_command(snli_dir, shared / "grid", "0"), env=env,
                             capture_output=True, text=True, timeout=600)
    assert teacher.returncode == 0, teacher.stdout + teacher.stderr
    before = snapshot(shared)
    prefix, readable = read_only_runner(shared, tmp_path / "view")

    alice = tmp_path / "alice" / "grid"  # through the environment variable
    done = subprocess.run(prefix + grid_command(snli_dir, alice, "0"), capture_output=True,
                          text=True, timeout=600,
                          env={**env, SHARED_RUNS_ENV: str(readable / "grid")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": re-used,") == 2 and ": trained," not in done.stdout
    assert results(alice) == results(shared / "grid")
    assert not list(alice.glob("cells/*/*/best_model.pt"))  # nothing trained or copied

    bob = tmp_path / "bob" / "grid"  # through the option, with one seed the teacher did not run
    done = subprocess.run(prefix + grid_command(snli_dir, bob, "0,1") +
                          ["--shared-runs", str(readable / "grid")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": re-used,") == 2 and done.stdout.count(": trained,") == 2
    assert sorted(p.parent.name for p in bob.glob("cells/*/*/metrics.json")) == ["seed1"] * 2
    assert snapshot(shared) == before


def test_a_shared_store_that_is_not_a_folder_is_refused_before_any_write(tmp_path, capsys):
    out = tmp_path / "grid"
    code = main(["compare", "--model", "scratch", "--vary", "truncation=longest_first,ratio",
                 "--shared-runs", str(tmp_path / "nowhere"), "--output", str(out)])
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.count("\n") == 0 and "nowhere" in error
    assert not out.exists()


def test_finetune_run_loads_a_finished_shared_run_and_writes_nothing(tmp_path, snli_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleWarning)
        train = read_records(snli_dir, "train").sample(32, 1)
    dev = read_records(snli_dir, "dev")
    dev, test = dev.sample(24, 1), dev.sample(24, 2)
    info = RunInfo(model="scratch", max_len=48, model_config=dict(TINY))
    config = TrainConfig(epochs=1, batch_size=16, max_steps=2, device="cpu", eval_batch_size=64)
    made = finetune_run(tmp_path / "shared" / "run", info, train, dev, test, config)
    before = snapshot(tmp_path / "shared")
    mine = tmp_path / "mine" / "run"
    again = finetune_run(mine, info, train, dev, test, config, keep_checkpoint=False,
                         shared=tmp_path / "shared" / "run")
    assert again.reused and again.folder == tmp_path / "shared" / "run"
    assert again.metrics == made.metrics
    assert snapshot(tmp_path / "shared") == before  # its checkpoint kept, nothing locked
    assert not mine.exists()
    other = finetune_run(mine, info, train, dev, test, config.replace(lr=1e-3),
                         shared=tmp_path / "shared" / "run")  # other settings: trained here
    assert not other.reused and other.folder == mine and (mine / "metrics.json").exists()
    assert snapshot(tmp_path / "shared") == before
