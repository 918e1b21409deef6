"""Class-wide comparisons: students' grids of one recipe gathered into one grid.

Tiny scratch BERTs (2 steps on 32 real SNLI pairs) on CPU, where a seed's run is the same run
wherever it is made: two grids with seeds {0} and {1}, gathered, must equal one grid with seeds
{0, 1} number for number (run times aside).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bertnli_helpers.cli import CLASS_HANDOUT, main


def compare(snli_dir: Path, output: Path, seeds: str, *extra: str) -> int:
    return main(["compare", "--model", "scratch", "--data-dir", str(snli_dir),
                 "--train-size", "32", "--dev-size", "24", "--test-size", "24",
                 "--batch-size", "16", "--max-steps", "2", "--device", "cpu", "--jobs", "1",
                 "--vary", "truncation=longest_first,ratio", "--seeds", seeds,
                 "--output", str(output), *extra])


def table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:  # how long each run took is its machine's, not the result
        row.pop("minutes", None)
        row.pop("examples/s", None)
    return rows


@pytest.fixture(scope="module")
def grids(tmp_path_factory, snli_dir) -> Path:
    root = tmp_path_factory.mktemp("grids")
    for name, seeds in (("alice", "0"), ("bob", "1"), ("one", "0,1")):
        assert compare(snli_dir, root / name, seeds) == 0
    return root


@pytest.mark.slow
def test_two_students_seeds_gathered_equal_one_grid_of_both_seeds(grids, capsys):
    capsys.readouterr()
    assert main(["compare", "--gather", str(grids / "alice"), str(grids / "bob"),
                 "--output", str(grids / "class")]) == 0
    out = capsys.readouterr().out
    assert "gathered 4 runs from 2 grids: seeds 0, 1" in out
    for name in ("results.csv", "verdicts.csv"):
        assert table(grids / "class" / name) == table(grids / "one" / name), name
    assert table(grids / "class" / "results.csv")[0]["seeds"] == "2"
    assert (grids / "class" / "grid.png").stat().st_size > 0
    gathered = json.loads((grids / "class" / "grid.json").read_text())
    assert gathered["seeds"] == [0, 1] and len(gathered["gathered_from"]) == 2


@pytest.mark.slow
def test_a_seed_found_twice_counts_once(grids, capsys):
    capsys.readouterr()
    assert main(["compare", "--gather", str(grids / "alice"), str(grids / "one"),
                 "--output", str(grids / "twice")]) == 0
    assert "2 duplicate run(s) dropped" in capsys.readouterr().out
    assert table(grids / "twice" / "verdicts.csv") == table(grids / "one" / "verdicts.csv")


@pytest.mark.slow
def test_a_grid_of_another_recipe_is_refused_naming_it_and_the_setting(grids, snli_dir,
                                                                          capsys):
    assert compare(snli_dir, grids / "carol", "2", "--lr", "1e-3") == 0
    capsys.readouterr()
    assert main(["compare", "--gather", str(grids / "alice"), str(grids / "carol"),
                 "--output", str(grids / "mixed")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(grids / "carol") in error and "config.lr" in error
    assert not (grids / "mixed").exists()


def test_gather_never_writes_over_a_folder_that_is_not_a_class_grid(grids, capsys):
    mine = grids / "notes"
    mine.mkdir(exist_ok=True)
    (mine / "results.csv").write_text("mine")
    assert main(["compare", "--gather", str(grids / "alice"), "--output", str(mine)]) == 2
    assert (mine / "results.csv").read_text() == "mine"
    assert main(["compare", "--gather", str(grids / "alice"), "--vary", "max_len=16,32",
                 "--output", str(grids / "x")]) == 2
    assert "--vary" in capsys.readouterr().err


def test_a_one_seed_grid_prints_how_to_hand_out_seeds(grids, snli_dir, capsys):
    capsys.readouterr()
    assert compare(snli_dir, grids / "alice", "0") == 0  # every cell re-used: seconds
    out = capsys.readouterr().out
    assert CLASS_HANDOUT in out and "--seeds n" in out and "--gather" in out
