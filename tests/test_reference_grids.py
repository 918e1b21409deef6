"""Stored reference grids (study/reference.py): read, sentences from their verdict rows, and
one clear error for a folder that is there but broken."""

import shutil

import pytest

from bertnli_helpers.errors import GridError
from bertnli_helpers.study.reference import read_reference_grid, reference_folder

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
