"""The lab plan's times come from a measured course run, never typed in."""

import json
from pathlib import Path

import pytest

from bertnli_helpers.course.lab_plan import (
    MEASURED,
    SESSIONS,
    compute_phrase,
    load_times,
    plan_table,
)
from bertnli_helpers.course.runner import course_notebooks

README = Path(__file__).resolve().parents[1] / "notebooks" / "README.md"


def test_the_notebooks_readme_holds_the_table_of_the_measured_run():
    assert plan_table(load_times(MEASURED)) in README.read_text()


def test_every_notebook_is_in_one_session_and_measured():
    planned = [name for session in SESSIONS for name in session.notebooks]
    names = [path.stem for path in course_notebooks(None)]
    assert sorted(planned) == sorted(names) and len(set(planned)) == len(planned)
    assert set(load_times(MEASURED)) == set(names)
    assert all(s.reading_minutes + 10 <= 90 for s in SESSIONS)  # room for the compute


@pytest.mark.parametrize(("seconds", "phrase"),
                         [(20, "under 1 min"), (59, "under 1 min"), (136, "about 2 min"),
                          (242, "about 4 min"), (642, "about 11 min")])
def test_compute_phrases(seconds, phrase):
    assert compute_phrase(seconds) == phrase


def test_a_slower_notebook_changes_the_table(tmp_path):
    rows = json.loads(MEASURED.read_text())
    rows[3]["seconds"] *= 3
    slower = tmp_path / "summary.json"
    slower.write_text(json.dumps(rows))
    assert plan_table(load_times(slower)) != plan_table(load_times(MEASURED))
