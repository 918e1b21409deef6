"""Notebook 4's training step and notebook 5's cue count: the reference passes, typical mistakes
fail with a hint that names the case and the broken rule (never the expected value), the stub
is unanswered, and the notebooks ask each exercise before any cell prints its answer."""

from __future__ import annotations

import re

import nbformat
import pytest
import torch
import torch.nn.functional as F
from test_exercises import fails, unanswered_says_so
from test_notebooks import BEGIN, STUB, _exercises, student_edition
from torch import nn

from bertnli_helpers.course.checks_training import package_step
from bertnli_helpers.course.exercises import ExerciseNotPassed, check
from bertnli_helpers.course.runner import NOTEBOOK_DIR
from bertnli_helpers.study.analysis import cue_counts, cue_table, words

NUMBER = re.compile(r"\d\.\d|\d{3,}")  # a loss, a parameter, a count: what a hint must not hold


# -- 04 train step -------------------------------------------------------------------------------
def _step(model, optimizer, scheduler, inputs, labels, max_grad_norm, *, zero=True, clip=True,
          schedule=True, zero_late=False, reduction="mean"):
    """A training step with one thing left out or moved, as students write them."""
    if zero:
        optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs), labels, reduction=reduction)
    loss.backward()
    if zero_late:  # the gradients cleared between backward and the optimizer's step
        optimizer.zero_grad()
    if clip and max_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if schedule:
        scheduler.step()
    return loss.item()


def _hint(name, answer) -> str:
    hint = fails(name, answer)
    assert not NUMBER.search(hint), f"the hint holds a number: {hint}"
    return hint


def test_04_train_step_function():
    assert check("04 train step", package_step)
    assert check("04 train step", _step)
    no_zero = _hint("04 train step", lambda *a: _step(*a, zero=False))
    assert "two steps in a row" in no_zero and "old gradients cleared" in no_zero
    no_clip = _hint("04 train step", lambda *a: _step(*a, clip=False))
    assert "far above max_grad_norm" in no_clip and "clip their total norm" in no_clip
    no_schedule = _hint("04 train step", lambda *a: _step(*a, schedule=False))
    assert "learning rate after the step differs" in no_schedule
    late = _hint("04 train step", lambda *a: _step(*a, zero_late=True))
    assert "did not change" in late and "do not clear the gradients between" in late
    summed = _hint("04 train step", lambda *a: _step(*a, reduction="sum"))
    assert "mean cross-entropy" in summed
    unanswered_says_so("04 train step")
    with pytest.raises(ExerciseNotPassed, match="def package_step"):  # reveal shows the source
        check("04 train step", lambda *a: _step(*a, clip=False), reveal=True)


def test_04_train_step_catches_leftover_gradients_on_the_first_step():
    def zero_after(model, optimizer, scheduler, inputs, labels, max_grad_norm):
        # clears the gradients only after stepping: the first step adds to leftovers
        loss = _step(model, optimizer, scheduler, inputs, labels, max_grad_norm, zero=False)
        optimizer.zero_grad()
        return loss

    hint = _hint("04 train step", zero_after)
    assert "gradients left over" in hint and "old gradients cleared" in hint


# -- 05 cue counts -------------------------------------------------------------------------------
def _cues(hypotheses, labels, cue, split=words, once=True):
    counts = [0, 0, 0]
    for text, label in zip(hypotheses, labels):
        found = split(text)
        counts[label] += (cue in found) if once else found.count(cue)
    return counts


def test_05_cue_counts_function():
    assert check("05 cue counts", cue_counts)
    assert check("05 cue counts", _cues)
    split = _hint("05 cue counts", lambda h, y, c: _cues(h, y, c, split=str.split))
    assert "capitalised cue" in split and "words(text)" in split
    inside = _hint("05 cue counts", lambda h, y, c: _cues(h, y, c, split=str.lower))
    assert "inside a longer word" in inside
    twice = _hint("05 cue counts", lambda h, y, c: _cues(h, y, c, once=False))
    assert "twice in one hypothesis" in twice and "each hypothesis counts once" in twice
    unanswered_says_so("05 cue counts")


def test_cue_table_counts_with_the_function_given_and_says_when_a_cue_is_beyond_noise():
    hypotheses = ["Nobody is here."] * 30 + ["A man sleeps."] * 60 + ["The dog runs outdoors."] * 30
    labels = [1] * 30 + [0, 1, 2] * 20 + [0] * 30
    table = cue_table(hypotheses, labels, {"nobody": "contradiction", "tall": "neutral",
                                           "man": "entailment"})
    assert table.loc["nobody", "hypotheses"] == 30
    assert table.loc["nobody", "share of the class"] == 1
    assert table.loc["nobody", "verdict"] == "more often"
    assert table.loc["tall", "verdict"] == "absent" and table.loc["tall", "hypotheses"] == 0
    assert table.loc["man", "verdict"] in ("within noise", "less often")
    calls = []
    cue_table(hypotheses, labels, {"nobody": "contradiction"},
              count=lambda h, y, c: calls.append(c) or cue_counts(h, y, c))
    assert calls == ["nobody"]


# -- the notebooks: exercises work in both editions and come before their answers ---------------
@pytest.mark.parametrize(("name", "function"), [("04_fine_tuning", "my_train_step"),
                                                ("05_error_analysis", "my_cue_counts")])
def test_the_new_function_exercises_pass_as_taught_and_ask_in_the_student_edition(name, function):
    pairs, _ = _exercises(name)
    answer, checked = next((a, c) for a, c in pairs if f"def {function}(" in a.source)
    for edition, passes in ((answer.source, True), (student_edition(answer.source), False)):
        scope = {"torch": torch, "check": check}
        exec(edition, scope)
        if passes:
            exec(checked.source, scope)
        else:
            assert STUB in edition and BEGIN not in edition
            with pytest.raises(ExerciseNotPassed, match="still returns None"):
                exec(checked.source, scope)


def _cells(name):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4).cells


def _first(cells, needle) -> int:
    return next(i for i, c in enumerate(cells) if needle in c.source)


@pytest.mark.parametrize(("name", "check_call", "gives_it_away"), [
    ("04_fine_tuning", 'check("04 new parameters"', "new_parameter_count(net):,"),
    ("04_fine_tuning", 'check("04 optimizer steps"', "step_counts[512]"),
    ("04_fine_tuning", 'check("04 train step"', "step = student_or_reference(my_train_step"),
    ("05_error_analysis", 'check("05 hard errors"', "easy_hard_accuracy(frame, hard)"),
    ("05_error_analysis", 'check("05 uniform cross share"', "uniform attention would send"),
    ("05_error_analysis", 'check("05 cue counts"', "cue_table(train_hypotheses"),
])
def test_each_exercise_comes_before_the_cell_that_prints_its_answer(name, check_call,
                                                                     gives_it_away):
    cells = _cells(name)
    assert _first(cells, check_call) < _first(cells, gives_it_away)


@pytest.mark.parametrize("name", ["04_fine_tuning", "05_error_analysis"])
def test_first_cell_has_the_four_parts_and_key_results_are_predicted(name):
    cells = _cells(name)
    parts = ("**What you will do.**", "**What you will learn.**", "**What you hand in.**",
             "**What you need first.**")
    places = [cells[0].source.index(part) for part in parts]  # each there, in this order
    assert places == sorted(places)
    assert sum("**Predict, then run.**" in c.source for c in cells) >= 5
    everything = "\n".join(c.source for c in cells)
    for typed in ("550,000", "5,498", "2,000 dev", "45 minutes", "25 minutes",
                  "where those intervals overlap"):
        assert typed not in everything, typed


def test_the_head_comparison_shows_a_stored_reference_grid_or_says_it_is_absent(
        tmp_path, monkeypatch, capsys):
    import json

    from bertnli_helpers.study import reference

    cell = _cells("04_fine_tuning")[_first(_cells("04_fine_tuning"),
                                           'read_reference_grid(reference_folder("pooling-grid"))')]
    shown = []
    scope = {"Markdown": lambda text: text, "display": shown.append, "other_pooling": "cls",
             "verdict": "neither learned", "ctx": type("Ctx", (), {"pooling": "pair"})()}
    monkeypatch.setattr(reference, "REFERENCE_ROOT", tmp_path)
    exec(cell.source, dict(scope))  # no stored grid: one line, no error
    assert "no stored reference grid" in capsys.readouterr().out and not shown
    folder = tmp_path / "pooling-grid"
    folder.mkdir()
    (folder / "grid.json").write_text(json.dumps({
        "vary": {"pooling": ["pair", "cls"]}, "seeds": [0, 1, 2], "baseline": "pooling=pair",
        "recipe": {"info": {"model": "minilm"}, "config": {"epochs": 2, "batch_size": 32,
                                                            "lr": 1e-4},
                   "train_size": None, "dev_size": 2000, "score_on": "test"}}))
    (folder / "results.csv").write_text("variant,seeds,test mean,learned\n"
                                        "pooling=pair,3,0.8,3/3\npooling=cls,3,0.7,3/3\n")
    (folder / "verdicts.csv").write_text(
        "A,B,accuracy A,accuracy B,A - B,95% low,95% high,McNemar p,verdict\n"
        "pooling=cls,pooling=pair,0.7,0.8,-0.1,-0.12,-0.08,0.0,worse\n")
    exec(cell.source, dict(scope))
    label, _, sentence = shown
    assert "not this notebook's runs" in label and "--seeds 0,1,2" in label
    assert sentence.startswith("Your runs: neither learned, so they cannot say how the 'cls' "
                               "head and the 'pair' head compare once both learn")
    assert "every seed of both learned (3/3 and 3/3)" in sentence
    assert "Reference grid: the 'cls' head is worse than the 'pair' head" in sentence
    assert "-10.0 points" in sentence
