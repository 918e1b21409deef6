"""Comparison grids on a real Ray cluster: a head node and a worker node started by the test.

The cluster lives in its own network and pid namespaces (``unshare``; tests/scripts/
ray_cluster.sh says why), and ``bertnli compare --backend ray --ray-address`` joins it from
inside. Skipped only where namespaces cannot be made and this is not CI.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bertnli_helpers.cli import main
from bertnli_helpers.errors import UsageError
from bertnli_helpers.study.backends import BackendOptions, cell_resources, open_backend

SCRIPT = Path(__file__).parent / "scripts" / "ray_cluster.sh"
NAMESPACES = ["unshare", "-n", "-p", "-f", "--mount-proc"]
TIMING = ["examples/s", "minutes"]  # the only columns that may differ between two runs


def _namespaces_work() -> bool:
    try:
        return subprocess.run([*NAMESPACES, "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def _cluster_or_skip() -> None:
    if os.environ.get("CI"):
        return  # CI runs as root with Ray installed: a failure there must show, not skip
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    if not _namespaces_work():
        pytest.skip("cannot make network and pid namespaces here (unshare -n -p needs root)")


@pytest.fixture
def ray_temp() -> Iterator[Path]:
    """A short folder for the cluster's sockets (a Unix socket path must stay short)."""
    folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def grid_command(snli_dir: Path, out: Path, *extra: str, device: str = "cpu") -> list[str]:
    return [sys.executable, "-m", "bertnli_helpers.cli", "compare", "--model", "scratch",
            "--data-dir", str(snli_dir), "--train-size", "64", "--dev-size", "32",
            "--test-size", "40", "--batch-size", "16", "--max-steps", "4", "--device", device,
            "--vary", "truncation=longest_first,ratio", "--seeds", "0,1", "--output", str(out),
            *extra]


def on_cluster(temp: Path, steps: str) -> subprocess.CompletedProcess:
    """Run the bash ``steps`` inside a fresh two-node cluster; its output is in the result."""
    _cluster_or_skip()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "RAY": str(Path(sys.executable).parent / "ray"), "PYTHON": sys.executable}
    return subprocess.run([*NAMESPACES, "bash", str(SCRIPT), str(temp), "bash", "-c", steps],
                          env=env, capture_output=True, text=True, timeout=900)


def ray_grid(snli_dir: Path, out: Path, *extra: str) -> str:
    command = grid_command(snli_dir, out, "--backend", "ray", *extra)
    return shlex.join(command).replace("ADDRESS", '"$RAY_TEST_ADDRESS"')


def cluster_logs(temp: Path, run: subprocess.CompletedProcess) -> str:
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in temp.glob("*.log"))
    return f"{run.stdout[-6000:]}\n{run.stderr[-6000:]}{logs}"


def test_a_grid_on_a_two_node_cluster_gives_the_local_results_number_for_number(
        tmp_path, snli_dir, ray_temp):
    local = subprocess.run(grid_command(snli_dir, tmp_path / "local", "--jobs", "1"),
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert local.returncode == 0, local.stdout + local.stderr
    run = on_cluster(ray_temp, ray_grid(snli_dir, tmp_path / "ray", "--ray-address", "ADDRESS"))
    assert run.returncode == 0, cluster_logs(ray_temp, run)
    assert "cells run as Ray tasks on the Ray cluster at 127.0.0.1:6380, 2 nodes" in run.stdout
    assert run.stdout.count(": trained,") == 4
    for name in ("results.csv", "verdicts.csv"):
        ours, theirs = (pd.read_csv(tmp_path / side / name) for side in ("ray", "local"))
        pd.testing.assert_frame_equal(ours.drop(columns=TIMING, errors="ignore"),
                                      theirs.drop(columns=TIMING, errors="ignore"))
    assert sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").glob(
        "cells/*/*/metrics.json")) == sorted(
        p.relative_to(tmp_path / "local") for p in (tmp_path / "local").glob(
            "cells/*/*/metrics.json"))


KILL_WORKER_MID_GRID = """
set -u
cells() {{ ls {out}/cells/*/*/scored_probs.npy 2>/dev/null | wc -l; }}
{grid} >{temp}/first.out 2>&1 &
first=$!
for _ in $(seq 1500); do [ "$(cells)" -ge 2 ] && break; sleep 0.2; done
echo "cells finished when the worker node was killed: $(cells)"
raylet=$(pgrep -f -- "--node_manager_port=$RAY_TEST_WORKER_PORT" | head -n 1)
kill -9 "$raylet" && echo "worker node killed: raylet $raylet"
wait $first; echo "first run: exit $?"
find {out}/cells -name metrics.json -printf '%p %T@\\n' | sort >{temp}/after-first.txt
{grid} >{temp}/second.out 2>&1; echo "second run: exit $?"
find {out}/cells -name metrics.json -printf '%p %T@\\n' | sort >{temp}/after-second.txt
"""


def test_a_worker_node_killed_mid_grid_then_the_grid_again_trains_nothing_twice(
        tmp_path, snli_dir, ray_temp):
    out = tmp_path / "grid"
    grid = ray_grid(snli_dir, out, "--vary", "max_len=16,32", "--ray-address", "ADDRESS")
    run = on_cluster(ray_temp, KILL_WORKER_MID_GRID.format(out=out, grid=grid, temp=ray_temp))
    logs = cluster_logs(ray_temp, run)
    assert run.returncode == 0 and "second run: exit 0" in run.stdout, logs
    killed_at = int(run.stdout.split("worker node was killed: ")[1].split()[0])
    assert 2 <= killed_at < 8, logs  # mid-grid: some cells done, some still to run
    assert "worker node killed: raylet " in run.stdout, logs
    first, second = ((ray_temp / f"{name}.out").read_text() for name in ("first", "second"))
    after_first = (ray_temp / "after-first.txt").read_text().splitlines()
    # every cell on disk after the first run is re-used, the rest trained: each cell trained once.
    # A cell can finish on the worker as it dies, unreported by the first run but on disk.
    reused, trained_again = second.count(": re-used,"), second.count(": trained,")
    assert reused == len(after_first) and reused + trained_again == 8, logs
    assert first.count(": trained,") <= reused, logs
    # nothing the first run finished was written again by the second
    after_second = set((ray_temp / "after-second.txt").read_text().splitlines())
    assert after_first and set(after_first) <= after_second
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and set(table["seeds"]) == {2}


def test_the_backends_refuse_what_they_cannot_run_before_writing(tmp_path, snli_dir, capsys,
                                                                 monkeypatch):
    out = tmp_path / "grid"
    base = grid_command(snli_dir, out)[3:]
    refusals = {
        ("--ray-address", "127.0.0.1:1"): "--ray-address is only for --backend ray, not local",
        ("--cpus-per-cell", "2"): "--cpus-per-cell is only for --backend ray, not local",
        ("--backend", "ray", "--ray-address", "127.0.0.1:1"): "--ray-address 127.0.0.1:1: no Ray "
        "head node answers there (Connection refused); start one with 'ray start --head'",
    }
    for flags, message in refusals.items():
        assert main([*base, *flags]) == 2, flags
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main([*grid_command(snli_dir, out, "--backend", "ray", device="cuda:1")[3:]]) == 2
    assert "--device cuda:1: with --backend ray each cell gets one GPU of its own and sees it " \
        "as cuda; pass --device cuda, cpu or auto" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where it is missing
    assert main([*base, "--backend", "ray"]) == 2
    assert "--backend ray needs Ray, which is not installed in this environment: pip install " \
        "'bertnli[ray]'" in capsys.readouterr().err
    assert not out.exists()  # every refusal came before the grid wrote anything


def test_cells_ask_ray_for_one_gpu_on_gpus_and_their_cpus_otherwise():
    cpus_only = [{"Resources": {"CPU": 8.0}}, {"Resources": {"CPU": 2.0}}]
    with_gpus = [{"Resources": {"CPU": 8.0, "GPU": 2.0}}]
    assert cell_resources("auto", with_gpus, 4) == {"num_gpus": 1, "num_cpus": 1}
    assert cell_resources("cuda", with_gpus, 4) == {"num_gpus": 1, "num_cpus": 1}
    assert cell_resources(None, cpus_only, 4) == {"num_cpus": 4}
    assert cell_resources("cpu", with_gpus, 2) == {"num_cpus": 2}  # asked for: no GPU taken
    with pytest.raises(UsageError, match="--device cuda: no node of the Ray cluster has a GPU"):
        cell_resources("cuda", cpus_only, 1)
    with pytest.raises(UsageError, match=r"the largest node of the Ray cluster has 8 CPU\(s\)"):
        cell_resources("cpu", cpus_only, 16)
    with pytest.raises(UsageError, match="unknown backend 'slurm'; choose from local, ray"):
        open_backend("slurm", BackendOptions(), 1)
