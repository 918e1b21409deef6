"""The classroom: the student edition, graded by nbgrader's own commands.

The nbgrader flow runs on a small lab notebook written here in the course's exercise convention
(answer cells with nbgrader solution metadata, check cells calling the package's real checks as
``assert check(...)``), so it holds whether ``check`` returns a falsy Verdict or raises.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from bertnli_helpers.cli import main
from bertnli_helpers.course.release import CODE_STUB, MANIFEST, SOLUTION_TAG, student_edition
from bertnli_helpers.course.runner import course_notebooks

pytest.importorskip("nbgrader")

VENV_BIN = Path(sys.executable).parent  # nbgrader runs alembic by name
SECRET = "WORKED-SOLUTION-SENTENCE"


def _meta(grade_id: str, *, solution: bool, points: int | None = None) -> dict:
    nbgrader = {"solution": solution, "grade": points is not None, "locked": not solution,
                "grade_id": grade_id, "schema_version": 3}
    if points is not None:
        nbgrader["points"] = points
    return {"tags": ["answer" if solution else "check"], "nbgrader": nbgrader}


def lab_notebook() -> nbformat.NotebookNode:
    """A teacher notebook with a value exercise (2 points), a function exercise (3 points) and a
    worked solution in a ``solution``-tagged cell."""
    cells = [
        nbformat.v4.new_markdown_cell("# Lab\n\nTwo exercises."),
        nbformat.v4.new_code_cell("from bertnli_helpers.course.exercises import check"),
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = (6, 2)\n### END SOLUTION",
                                  metadata=_meta("03-ratio-lengths", solution=True)),
        nbformat.v4.new_code_cell(
            'assert check("03 ratio lengths", answer, p_len=12, h_len=4, budget=8)',
            metadata=_meta("03-ratio-lengths-check", solution=False, points=2)),
        nbformat.v4.new_code_cell(
            "def optimizer_steps(pairs, batch_size, epochs):\n    ### BEGIN SOLUTION\n"
            "    return -(-pairs // batch_size) * epochs\n    ### END SOLUTION",
            metadata=_meta("04-optimizer-steps", solution=True)),
        nbformat.v4.new_code_cell(
            'assert check("04 optimizer steps", optimizer_steps(100, 8, 2), pairs=100, '
            "batch_size=8, epochs=2)",
            metadata=_meta("04-optimizer-steps-check", solution=False, points=3)),
        nbformat.v4.new_markdown_cell(f"### Solution\n\n{SECRET}: ceil(100 / 8) x 2 = 26.",
                                      metadata={"tags": [SOLUTION_TAG]}),
        nbformat.v4.new_markdown_cell("The end."),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    return nb


SUBMISSIONS = {  # student -> (answer cell index -> source), on top of the released notebook
    "alice": {2: "answer = (6, 2)",
              4: "def optimizer_steps(pairs, batch_size, epochs):\n"
                 "    return -(-pairs // batch_size) * epochs"},
    "bob": {2: "answer = (4, 4)"},  # a wrong value; the function left as handed out
}


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(VENV_BIN / "nbgrader"), *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """A course folder after generate_assignment, two submissions, autograde, feedback, export."""
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(
        "from bertnli_helpers.course.release import configure_nbgrader\n"
        "c = get_config()  # noqa: F821\n"
        "c.CourseDirectory.course_id = 'bertnli'\n"
        "configure_nbgrader(c)\n")
    (course / "source" / "lab1").mkdir(parents=True)
    nbformat.write(lab_notebook(), course / "source" / "lab1" / "lab.ipynb")
    nbgrader(course, "generate_assignment", "lab1", "--create")
    released = nbformat.read(course / "release" / "lab1" / "lab.ipynb", as_version=4)
    for student, answers in SUBMISSIONS.items():
        submission = nbformat.from_dict(json.loads(nbformat.writes(released)))
        for index, source in answers.items():
            submission.cells[index].source = source
        folder = course / "submitted" / student / "lab1"
        folder.mkdir(parents=True)
        nbformat.write(submission, folder / "lab.ipynb")
    nbgrader(course, "autograde", "lab1", "--create")
    nbgrader(course, "generate_feedback", "lab1")
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    return course


@pytest.mark.slow
def test_nbgrader_hands_out_what_release_writes(graded):
    handed_out = nbformat.read(graded / "release" / "lab1" / "lab.ipynb", as_version=4)
    ours = student_edition(lab_notebook())
    assert [c.source for c in handed_out.cells] == [c.source for c in ours.cells]
    text = "\n".join(c.source for c in handed_out.cells)
    assert SECRET not in text and "(6, 2)" not in text and "-(-pairs" not in text
    assert handed_out.cells[2].source == CODE_STUB
    assert handed_out.cells[4].source == (
        f"def optimizer_steps(pairs, batch_size, epochs):\n    {CODE_STUB}")


@pytest.mark.slow
def test_autograde_scores_right_answers_full_and_wrong_or_missing_zero(graded):
    with open(graded / "grades.csv", newline="") as f:
        scores = {row["student_id"]: (float(row["raw_score"]), float(row["max_score"]))
                  for row in csv.DictReader(f)}
    assert scores == {"alice": (5.0, 5.0), "bob": (0.0, 5.0)}
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gb:
        cells = {(student, grade_id): gb.find_grade(grade_id, "lab", "lab1", student).score
                 for student in SUBMISSIONS
                 for grade_id in ("03-ratio-lengths-check", "04-optimizer-steps-check")}
    assert cells == {("alice", "03-ratio-lengths-check"): 2.0,
                     ("alice", "04-optimizer-steps-check"): 3.0,
                     ("bob", "03-ratio-lengths-check"): 0.0,
                     ("bob", "04-optimizer-steps-check"): 0.0}


def _page_text(path: Path) -> str:
    """An HTML page's text as a reader sees it (syntax highlighting splits code into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


@pytest.mark.slow
def test_feedback_gives_each_student_their_score_and_failed_checks(graded):
    alice, bob = (_page_text(graded / "feedback" / name / "lab1" / "lab.html")
                  for name in ("alice", "bob"))
    assert "Score: 5.0 / 5.0" in alice and "Score: 0.0 / 5.0" in bob
    assert "AssertionError" not in alice and "ExerciseNotPassed" not in alice
    assert "Not yet" in bob and "Write your answer" in bob  # a wrong and a missing answer
    assert "answer = (4, 4)" in bob  # the student's own answer beside the check it failed
    for score in ("Score: 0.0 / 2.0", "Score: 0.0 / 3.0"):
        assert score in bob
    for score in ("Score: 2.0 / 2.0", "Score: 3.0 / 3.0"):
        assert score in alice
    assert SECRET not in alice + bob


# -- the course's own notebooks ----------------------------------------------------------------
def _solution_lines(nb) -> list[str]:
    """Every line of solution text: whole ``solution`` cells and BEGIN/END SOLUTION regions."""
    lines = []
    for cell in nb.cells:
        inside = SOLUTION_TAG in cell.metadata.get("tags", [])
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line:
                inside = True
            elif "### END SOLUTION" in line:
                inside = SOLUTION_TAG in cell.metadata.get("tags", [])
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def _kept(cell) -> dict:
    """What the student edition must keep of a cell that is not an answer cell."""
    return {"id": cell.get("id"), "cell_type": cell.cell_type, "source": cell.source,
            "metadata": cell.metadata}


@pytest.mark.parametrize("path", course_notebooks(), ids=lambda p: p.stem)
def test_student_edition_of_each_notebook_has_no_solution_and_keeps_the_rest(path):
    teacher = nbformat.read(path, as_version=4)
    student = student_edition(teacher)
    others = {line.strip() for c in teacher.cells
              if SOLUTION_TAG not in c.metadata.get("tags", [])
              for line in c.source.splitlines()}
    text = "\n".join(c.source for c in student.cells)
    student_lines = {line.strip() for line in text.splitlines()}
    leaked = [line for line in _solution_lines(teacher)
              if line not in others and line in student_lines]
    assert not leaked, f"solution text in the student edition of {path.name}: {leaked[:3]}"
    for cell in teacher.cells:
        if SOLUTION_TAG in cell.metadata.get("tags", []):
            assert cell.source not in text
    shown = [c for c in teacher.cells if SOLUTION_TAG not in c.metadata.get("tags", [])]
    assert len(student.cells) == len(shown)
    for before, after in zip(shown, student.cells):
        if not before.metadata.get("nbgrader", {}).get("solution"):
            assert _kept(after) == _kept(before)
        assert after.get("outputs", []) == [] and after.get("execution_count") is None
    assert student.metadata == teacher.metadata


def test_release_writes_every_notebook_and_runs_again_over_its_own_files(tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["release", "--output", str(out)]) == 0
    names = sorted(p.name for p in out.glob("*.ipynb"))
    assert names == [p.name for p in course_notebooks()]
    assert json.loads((out / MANIFEST).read_text())["files"].keys() == set(names)
    assert main(["release", "--output", str(out)]) == 0  # its own, unchanged files: refreshed


def test_release_never_overwrites_a_file_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["release", "--output", str(out), "--notebooks", "3"]) == 0
    mine = out / "03_truncation.ipynb"
    mine.write_text(mine.read_text() + " ")  # a student's (or teacher's) change
    other = out / "01_pretrained_bert.ipynb"
    other.write_text("a notebook of the user's")
    capsys.readouterr()
    assert main(["release", "--output", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "01_pretrained_bert.ipynb" in error
    assert other.read_text() == "a notebook of the user's"
    assert mine.read_text().endswith(" ")
    assert not (out / "02_snli_dataset.ipynb").exists()  # refused before any write


def test_release_without_nbgrader_names_the_classroom_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nbgrader", None)  # as if not installed
    out = tmp_path / "student"
    assert main(["release", "--output", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "classroom" in error and "nbgrader" in error
    assert not out.exists()
