"""Running notebooks: the set-up cell's one note, and kernels that start without warnings."""

from __future__ import annotations

import warnings

import nbformat

from bertnli_helpers.course.runner import execute_notebook, setup_notebook
from bertnli_helpers.data.snli import (
    SampleWarning,
    read_records,
    train_sample_note,
    write_official_txt,
)


def test_setup_says_once_that_train_is_a_sample_and_then_stays_quiet(snli_dir, tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setup_notebook("03_truncation", profile="tiny", data_dir=str(snli_dir), device="cpu",
                       output_dir=str(tmp_path))
        printed = capsys.readouterr().out
        assert printed.count("a sample") == 1 and "549,367" in printed
        read_records(snli_dir, "train")
        read_records(snli_dir, "train")
    assert not [w for w in caught if issubclass(w.category, SampleWarning)]


def test_no_sample_note_for_a_train_file_of_official_size(snli_dir, tmp_path):
    assert "a sample" in train_sample_note(snli_dir)
    line = (tmp_path / "line.txt")
    write_official_txt(snli_dir, "dev", tmp_path, limit=1)
    header, row = (tmp_path / "snli_1.0_dev.txt").read_text().splitlines()
    line.write_text(header + "\n" + "\n".join([row] * 549_367) + "\n")
    line.rename(tmp_path / "snli_1.0_train.txt")
    assert train_sample_note(tmp_path) is None


def test_notebooks_run_without_the_kernels_tcp_warning(tmp_path, capfd):
    notebook = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    notebook.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("print(x + 1)")]
    source = tmp_path / "one.ipynb"
    nbformat.write(notebook, source)
    execute_notebook(source, tmp_path / "out.ipynb", {"x": 41}, timeout=120)
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "42\n"
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out
