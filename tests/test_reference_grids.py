"""Stored reference grids (study/reference.py): read, sentences from their verdict rows, and
one clear error for a folder that is there but broken."""

import shutil

import pytest

from bertnli_helpers.errors import GridError
from bertnli_helpers.study.reference import RECIPES, read_reference_grid, reference_folder

TRUNCATION = reference_folder("truncation-grid")
RATIO_16 = "truncation=ratio, max_len=16"
LONGEST_16 = "truncation=longest_first, max_len=16"


def test_the_stored_truncation_grid_reads_with_three_seeds():
    grid = read_reference_grid(TRUNCATION)
    assert grid.seeds == 3
    assert RATIO_16 in set(grid.results["variant"])


def test_a_sentence_states_the_verdict_and_numbers_of_its_row():
    grid = read_reference_grid(TRUNCATION)
    row = grid.verdict_row(RATIO_16, LONGEST_16)
    sentence = grid.sentence(RATIO_16, LONGEST_16, "ratio", "longest-first")
    assert f"{100 * row['A - B']:+.1f} points" in sentence
    assert row["verdict"] in sentence and "3 seeds" in sentence


def test_within_noise_is_said_as_such(tmp_path):
    folder = tmp_path / "grid"
    shutil.copytree(TRUNCATION, folder)
    verdicts = folder / "verdicts.csv"
    lines = verdicts.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",within noise"
    verdicts.write_text("\n".join(lines) + "\n")
    grid = read_reference_grid(folder)
    a, b = grid.verdicts.iloc[0]["A"], grid.verdicts.iloc[0]["B"]
    assert "within noise" in grid.sentence(a, b)


def test_an_absent_pair_and_an_absent_folder_are_said(tmp_path):
    grid = read_reference_grid(TRUNCATION)
    assert "no verdict" in grid.sentence(LONGEST_16, RATIO_16)
    assert read_reference_grid(tmp_path / "nowhere") is None


def test_an_incomplete_folder_names_what_is_missing(tmp_path):
    folder = tmp_path / "grid"
    shutil.copytree(TRUNCATION, folder)
    (folder / "verdicts.csv").unlink()
    with pytest.raises(GridError, match="verdicts.csv missing"):
        read_reference_grid(folder)


def test_a_garbled_grid_file_is_one_error(tmp_path):
    folder = tmp_path / "grid"
    shutil.copytree(TRUNCATION, folder)
    (folder / "grid.json").write_text("{not json")
    with pytest.raises(GridError, match="cannot read"):
        read_reference_grid(folder)


# -- what notebook 3 shows of it: the command, the primer and the student's finding beside it --
RATIO_32 = "truncation=ratio, max_len=32"
LONGEST_32 = "truncation=longest_first, max_len=32"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_grid_knows_the_command_that_docs_benchmarks_gives_for_it(name):
    grid = read_reference_grid(reference_folder(name))
    docs = (TRUNCATION.parents[2] / "docs" / "benchmarks.md").read_text()
    written = " ".join(docs.replace("\\\n", " ").replace(".venv/bin/", "").split())
    assert grid.command and grid.command in written
    assert f"--seeds {','.join(map(str, grid.grid['seeds']))}" in grid.command
    assert "2 epochs" in grid.recipe and "--epochs 2" in grid.command


def test_the_primer_reads_its_examples_off_the_verdict_rows():
    grid = read_reference_grid(TRUNCATION)
    primer = grid.primer()
    better = grid.verdicts[grid.verdicts["verdict"] == "better"].iloc[0]
    noise = grid.verdicts[grid.verdicts["verdict"] == "within noise"].iloc[0]
    assert f"{100 * better['A - B']:+.1f} points" in primer
    assert f"{-100 * better['A - B']:+.1f} points" in primer  # worse: the same row turned round
    assert f"{100 * noise['95% low']:+.1f} to {100 * noise['95% high']:+.1f}" in primer
    assert f"over its {grid.seeds} seeds" in primer and "every variant learned" in primer


def test_a_primer_names_the_variants_that_did_not_learn(tmp_path):
    folder = tmp_path / "grid"
    shutil.copytree(TRUNCATION, folder)
    results = folder / "results.csv"
    results.write_text(results.read_text().replace("3/3", "1/3", 1))
    grid = read_reference_grid(folder)
    assert not grid.all_learned(LONGEST_16) and grid.all_learned(RATIO_16)
    assert f"`{LONGEST_16}`" in grid.primer().splitlines()[-1]
    assert grid.command is None  # a copy under another name: the course does not know it


def test_a_students_finding_is_set_beside_the_reference_verdict():
    grid = read_reference_grid(TRUNCATION)
    same = grid.beside("within noise", RATIO_32, LONGEST_32, "ratio", "longest_first")
    assert same.startswith("Your runs: within noise, as in the reference.")
    other = grid.beside("within noise", RATIO_16, LONGEST_16, "ratio", "longest_first")
    assert "says worse" in other and "ratio is worse than longest_first" in other
    idle = grid.beside("only longest_first learned", RATIO_16, LONGEST_16, "ratio",
                       "longest_first")
    assert "cannot say how ratio and longest_first compare" in idle
    assert "every seed of both learned (3/3 and 3/3)" in idle and "worse" in idle
