"""The student edition of the course: every notebook with its solutions taken out.

The teacher edition is what ``notebooks/`` holds. The student edition is made with nbgrader's
own preprocessors, used as a library, so it is exactly what ``nbgrader generate_assignment``
would hand out: cells tagged ``solution`` are removed, each ``### BEGIN SOLUTION`` ...
``### END SOLUTION`` region becomes the answer stub (:data:`CODE_STUB` in code, nbgrader's text
stub in markdown), and outputs are cleared; every other cell stays as it is. A course graded
with nbgrader gets the same edition from ``nbgrader generate_assignment`` through
:func:`configure_nbgrader`. nbgrader is an
optional dependency (the ``classroom`` extra), imported only here and only when a release is
made.

A release folder keeps a manifest (:data:`MANIFEST`) of what it wrote, so ``make release`` can
run again and refresh its own files, while a file it did not write, or one changed since (a
student's work, a teacher's edit), is never overwritten.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bertnli_helpers.errors import UsageError
from bertnli_helpers.files import atomic_write_json, atomic_write_text, run_folder_lock

CODE_STUB = "answer = None  # your answer"
SOLUTION_TAG = "solution"
MANIFEST = "release.json"
EXTRA = "classroom"


def _nbgrader() -> Any:
    """The ``nbgrader.preprocessors`` module, or a clear error naming the extra that installs it."""
    try:
        from nbgrader import preprocessors
    except ImportError:
        raise UsageError(f"the student edition is made with nbgrader, which is not installed: "
                         f"pip install -e '.[{EXTRA}]' (or pip install nbgrader==0.9.6)") from None
    return preprocessors


def _edition_config() -> Any:
    """The settings that make a student edition, shared by :func:`student_edition` and a
    course's ``nbgrader_config.py`` (:func:`configure_nbgrader`): one home for the rule."""
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = {SOLUTION_TAG}
    config.ClearSolutions.code_stub = {"python": CODE_STUB}
    return config


def _preprocessors() -> list[Any]:
    """Remove the solution cells, replace the solution regions, clear the outputs: in order."""
    from nbconvert.preprocessors import TagRemovePreprocessor

    graders = _nbgrader()
    config = _edition_config()
    return [TagRemovePreprocessor(config=config), graders.ClearSolutions(config=config),
            graders.ClearOutput(config=config)]


def configure_nbgrader(c: Any) -> None:
    """Make ``nbgrader generate_assignment`` hand out what ``bertnli release`` writes: call it
    from a course's ``nbgrader_config.py`` with nbgrader's ``c = get_config()``."""
    from nbconvert.preprocessors import TagRemovePreprocessor
    from nbgrader.converters import GenerateAssignment

    c.merge(_edition_config())
    defaults = GenerateAssignment.class_traits()["preprocessors"].default()
    c.GenerateAssignment.preprocessors = [TagRemovePreprocessor, *defaults]


def student_edition(nb: Any) -> Any:
    """The student version of a teacher notebook (an nbformat node; the argument is unchanged)."""
    student = copy.deepcopy(nb)
    for preprocessor in _preprocessors():
        student, _ = preprocessor.preprocess(student, {})
    return student


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _written_before(output: Path) -> dict[str, str]:
    """The files an earlier release wrote into ``output`` and their SHA-256 then."""
    manifest = output / MANIFEST
    if not manifest.exists():
        return {}
    try:
        files = dict(json.loads(manifest.read_text(encoding="utf-8"))["files"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{manifest} is not a release manifest: choose another --output, or "
                         "remove the file if it is yours to remove") from None
    return {str(name): str(digest) for name, digest in files.items()}


def _refuse_foreign_files(output: Path, names: Iterable[str]) -> None:
    """Stop before writing anything if a target exists that this command did not write, or that
    was changed since it wrote it."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file, not a folder: choose a folder")
    before = _written_before(output)
    for name in names:
        target = output / name
        if target.exists() and before.get(name) != _digest(target):
            raise UsageError(f"{target} exists and was not written by an earlier release (or was "
                             "changed since): choose another --output, or move that file away")


def release(notebooks: list[Path], output: str | Path) -> list[Path]:
    """Write the student edition of ``notebooks`` into ``output``; return the paths written."""
    import nbformat

    output = Path(output)
    _nbgrader()  # nbgrader missing: said before any folder is made
    names = [path.name for path in notebooks]
    _refuse_foreign_files(output, names)
    editions = {path.name: student_edition(nbformat.read(path, as_version=4))
                for path in notebooks}  # every notebook made before the first write
    with run_folder_lock(output):
        _refuse_foreign_files(output, names)  # again, now that no one else writes here
        written = []
        for name, nb in editions.items():
            written.append(atomic_write_text(output / name, nbformat.writes(nb) + "\n"))
        files = {**_written_before(output), **{p.name: _digest(p) for p in written}}
        atomic_write_json(output / MANIFEST, {"edition": "student", "files": files})
    return written
