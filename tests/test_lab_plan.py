"""The lab plan's times come from a measured course run, never typed in."""

import json
from pathlib import Path

import pytest

from bertnli_helpers.course.lab_plan import (
    MEASURED,
    NOT_MEASURED,
    SESSIONS,
    compute_phrase,
    load_times,
    measured_times,
    plan_table,
)
from bertnli_helpers.course.runner import course_notebooks

README = Path(__file__).resolve().parents[1] / "notebooks" / "README.md"


def test_the_notebooks_readme_holds_the_table_of_the_measured_run():
    assert plan_table(measured_times()) in README.read_text()


def test_every_notebook_is_in_one_session_and_measured():
    planned = [name for session in SESSIONS for name in session.notebooks]
    names = [path.stem for path in course_notebooks(None)]
    assert sorted(planned) == sorted(names) and len(set(planned)) == len(planned)
    for run in MEASURED.values():
        assert set(load_times(run.path)) == set(names), run.path
    for times in measured_times().values():  # reading and the measured compute fit 90 minutes
        assert all(s.reading_minutes + sum(times[n] for n in s.notebooks) / 60 <= 90
                   for s in SESSIONS)


@pytest.mark.parametrize(("seconds", "phrase"),
                         [(20, "under 1 min"), (59, "under 1 min"), (136, "about 2 min"),
                          (242, "about 4 min"), (642, "about 11 min")])
def test_compute_phrases(seconds, phrase):
    assert compute_phrase(seconds) == phrase


def test_a_slower_notebook_changes_the_table(tmp_path):
    rows = json.loads(MEASURED["fp32"].path.read_text())
    rows[3]["seconds"] *= 3
    slower = tmp_path / "summary.json"
    slower.write_text(json.dumps(rows))
    times = measured_times()
    assert plan_table({**times, "fp32": load_times(slower)}) != plan_table(times)


def test_each_precision_has_its_own_column_and_source_line():
    table = plan_table(measured_times())
    for precision, run in MEASURED.items():
        assert f"compute, {precision} (quick, measured)" in table
        assert run.when in table and run.path.name in table
    for precision, why in NOT_MEASURED.items():
        assert f"- {precision}: {why}." in table
