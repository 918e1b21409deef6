"""The course itself: every notebook runs top to bottom (tiny profile, real SNLI, real kernel)."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from bertnli_helpers.course.runner import (
    MAIN_RUN_PREFIX,
    NOTEBOOK_DIR,
    RUNS_DIR,
    course_notebooks,
    folder_size,
    get_profile,
    read_results,
    summary_table,
)
from bertnli_helpers.model.checkpoints import BEST_WEIGHTS_FILE, CHECKPOINT_FILE

EXPECTED = ["01_pretrained_bert", "02_snli_dataset", "03_truncation", "04_fine_tuning",
            "05_error_analysis", "06_exercises", "07_pretraining"]


def test_the_course_has_its_notebooks_in_reading_order():
    assert [nb.stem for nb in course_notebooks()] == EXPECTED
    assert [nb.stem for nb in course_notebooks(["3", "05_error_analysis"])] == [
        "03_truncation", "05_error_analysis"]
    with pytest.raises(ValueError, match="no notebook '9'"):
        course_notebooks(["9"])


@pytest.mark.parametrize("name", EXPECTED)
def test_notebooks_are_stored_clean_with_a_parameters_cell(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters' (papermill)"
    for parameter in ("profile", "model", "data_dir", "device", "seed"):
        assert f"{parameter} =" in tagged[0].source
    assert nb.cells[0].cell_type == "markdown" and "learn" in nb.cells[0].source.lower()
    assert any("exercise" in c.source.lower() for c in nb.cells if c.cell_type == "markdown")
    text = "\n".join(c.source for c in code)
    assert "bertnli_helpers" in text


# Code a notebook should call from the package, not write again: marker -> what to call instead.
REIMPLEMENTED = {
    ".lower().split()": "the tokenizer's own split (tok.tokenize) or book_word_counts",
    "book_tokenizer(": "tokenization.build_book_vocab",
    "findall(": "tokenizer.prepare_typed for typed text",
    "was_training": "inference.evaluating",
    ".training": "inference.evaluating",
    "html.escape(": "widgets.tokens_html",
    "metrics.json": "runs.finetune_run, which re-uses a finished run by its fingerprint",
    "load_best_weights(": "runs.finetune_run or runs.load_finetuned",
    "keepdim=True)": "model.masked_mean",
}
DEFINITION = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s", re.MULTILINE)
ANSWER_TAG = "answer"  # a cell tagged so holds what the student writes (docs/exercises.md)


@pytest.mark.parametrize("name", EXPECTED)
def test_notebooks_call_the_package_instead_of_reimplementing_it(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"{name} cell {index}"
        if ANSWER_TAG not in cell.metadata.get("tags", []):
            assert not DEFINITION.search(cell.source), (
                f"{where} defines a function or class: move it into bertnli_helpers (with a "
                "test) and show it with show_source, or make it an exercise's answer cell if "
                "the student writes it")
        for marker, instead in REIMPLEMENTED.items():
            assert marker not in cell.source, f"{where} re-implements package code ({marker!r}): " \
                f"call {instead}"


def test_profiles_are_ordered_by_size():
    tiny, quick = get_profile("tiny"), get_profile("quick")
    assert tiny.train_size < quick.train_size and get_profile("full").train_size is None
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_notebook_runs_in_the_tiny_profile(tiny_course):
    out, summary = tiny_course
    failed = [row for row in summary if row["status"] != "ok"]
    assert not failed, failed
    assert [row["notebook"] for row in summary] == EXPECTED
    for name in EXPECTED:
        executed = nbformat.read(out / f"{name}.ipynb", as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, (name, errors[:1])
        assert (out / f"{name}.html").stat().st_size > 10_000
    results = read_results(out)
    assert set(results) == set(EXPECTED), "each notebook records its key numbers"
    assert 0.0 <= results["04_fine_tuning"]["test_accuracy"] <= 1.0
    assert "| 04_fine_tuning |" in summary_table(summary)
    assert json.loads((out / "summary.json").read_text())[0]["status"] == "ok"
    index = (out / "index.html").read_text()
    assert all(f'href="{name}.html"' in index for name in EXPECTED)
    assert '<b id="profile">tiny</b>' in index and '<b id="model">minilm</b>' in index


@pytest.mark.slow
def test_only_the_main_run_keeps_its_weights_after_the_course(tiny_course):
    out, _ = tiny_course
    runs = sorted(path.parent for path in out.rglob("run.json"))
    main = [run for run in runs if run.name.startswith(MAIN_RUN_PREFIX)]
    assert len(main) == 1 and main[0].parent == out / RUNS_DIR
    assert len(runs) > 1, "the tiny course makes comparison runs"
    assert all((run / "metrics.json").exists() for run in runs)  # every run's record stays
    weights = [*out.rglob(BEST_WEIGHTS_FILE), *out.rglob(CHECKPOINT_FILE)]
    assert [path.parent for path in weights] == main
    assert folder_size(out) < 200e6


def test_notebook_context_train_config_lets_the_notebook_override_anything(snli_dir, tmp_path):
    from bertnli_helpers.course.runner import setup_notebook

    ctx = setup_notebook("04_fine_tuning", profile="tiny", data_dir=str(snli_dir), device="cpu",
                         output_dir=str(tmp_path))
    config = ctx.train_config("tuned", compare=True, seed=7, lr=3e-4)
    assert (config.seed, config.lr, config.device) == (7, 3e-4, "cpu")
    assert config.epochs == ctx.profile.compare_epochs
    assert config.max_steps == ctx.profile.compare_max_steps
    assert config.batch_size == ctx.profile.compare_batch_size
    assert ctx.train_config("book", compare=True).batch_size == 512  # the book keeps its batch


def test_notebook_context_builds_runs_with_the_pooling_that_suits_the_model(snli_dir, tmp_path):
    from bertnli_helpers.course.runner import setup_notebook

    ctx = setup_notebook("04_fine_tuning", profile="tiny", data_dir=str(snli_dir), device="cpu",
                         output_dir=str(tmp_path))
    assert ctx.model == "minilm" and ctx.pooling == "pair"
    assert ctx.run_info(max_len=32).pooling == "pair" and ctx.run_info().max_len == 128
    assert ctx.run_info(pooling="cls").pooling == "cls"
    book = setup_notebook("04_fine_tuning", profile="tiny", model="bert.small",
                          data_dir=str(snli_dir), device="cpu", output_dir=str(tmp_path))
    assert book.pooling == "cls" and book.run_info().model == "bert.small"


def test_summary_table_keeps_small_rates_readable():
    from bertnli_helpers.course.runner import summary_table

    table = summary_table([{"notebook": "06_exercises", "seconds": 3.0, "status": "ok",
                            "key numbers": {"best_lr": 1e-4, "dev_accuracy": 0.52149}}])
    assert "best_lr 0.0001" in table and "dev_accuracy 0.521" in table


# -- the exercise cells: nbgrader's convention (docs/exercises.md) ---------------------------------
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "answer = None  # your answer"
CHECK_CALL = re.compile(r'check\("(\d\d [^"]+)", (\w+)')


def _nbgrader(cell) -> dict:
    return dict(cell.metadata.get("nbgrader", {}))


def _exercises(name):
    """(answer cell, check cell) pairs of a notebook, in order."""
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    cells = nb.cells
    return [(cell, cells[i + 1]) for i, cell in enumerate(cells)
            if ANSWER_TAG in cell.metadata.get("tags", [])], cells


def student_edition(source: str) -> str:
    """What nbgrader's ClearSolutions makes of an answer cell: each solution region replaced
    by the stub, at the indentation of its BEGIN line."""
    lines, out, inside = source.split("\n"), [], False
    for line in lines:
        if line.strip() == BEGIN:
            inside = True
            out.append(line[:len(line) - len(line.lstrip())] + STUB)
        elif line.strip() == END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("name", EXPECTED)
def test_exercise_cells_follow_the_nbgrader_convention(name):
    from bertnli_helpers.course.exercises import CHECKS

    pairs, cells = _exercises(name)
    assert pairs, f"{name} has no answer cell"
    number = name[:2]
    for answer, checked in pairs:
        meta = _nbgrader(answer)
        grade_id = meta.get("grade_id", "")
        assert meta == {"solution": True, "grade": False, "locked": False,
                        "grade_id": grade_id, "schema_version": 3}, (name, meta)
        assert re.fullmatch(rf"{number}-[a-z0-9-]+", grade_id), grade_id
        assert answer.source.count(BEGIN) == answer.source.count(END) == 1
        assert answer.source.index(BEGIN) < answer.source.index(END)
        assert "check" in checked.metadata.get("tags", []), f"{grade_id}: a check cell follows"
        check_meta = _nbgrader(checked)
        points = check_meta.get("points")
        assert check_meta == {"solution": False, "grade": True, "locked": True, "points": points,
                              "grade_id": f"{grade_id}-check", "schema_version": 3}
        assert isinstance(points, int) and points > 0
        call = CHECK_CALL.search(checked.source)
        assert call and call.group(1) in CHECKS and call.group(1).startswith(number), grade_id
    ids = [_nbgrader(c)["grade_id"] for c in cells if "grade_id" in _nbgrader(c)]
    assert len(ids) == len(set(ids)), "grade ids are unique"
    others = [c for c in cells if ANSWER_TAG not in c.metadata.get("tags", [])]
    assert not any(BEGIN in c.source or _nbgrader(c).get("solution") for c in others), \
        "only answer cells hold what nbgrader treats as a solution"


FUNCTION_EXERCISES = [("01_pretrained_bert", "pack_pair"), ("02_snli_dataset", "my_padding_share"),
                      ("03_truncation", "my_ratio"), ("04_fine_tuning", "my_pair_features"),
                      ("05_error_analysis", "my_confusion"),
                      ("07_pretraining", "my_replace_mlm_tokens")]


@pytest.mark.parametrize(("name", "function"), FUNCTION_EXERCISES)
def test_function_exercises_pass_in_the_teacher_edition_and_ask_in_the_student_edition(
        name, function):
    import torch

    from bertnli_helpers.course.exercises import ExerciseNotPassed, check
    from bertnli_helpers.model.pretrained import load_pretrained

    pairs, _ = _exercises(name)
    answer, checked = next((a, c) for a, c in pairs if f"def {function}(" in a.source)
    given = {"tokenizer": load_pretrained("minilm")[1]} if "tokenizer=" in checked.source else {}
    for edition, passes in ((answer.source, True), (student_edition(answer.source), False)):
        scope = {"torch": torch, "check": check, **given}
        exec(edition, scope)  # the notebook's own cell
        if passes:
            exec(checked.source, scope)  # raises ExerciseNotPassed unless right
        else:
            assert STUB in edition and BEGIN not in edition
            with pytest.raises(ExerciseNotPassed, match="still returns None"):
                exec(checked.source, scope)
