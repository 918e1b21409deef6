"""environment.yml must install what pyproject.toml declares, so conda users get the same course.

No conda solver is run here (none is reachable): these checks read the two files (and the
Makefile's torch pin) and compare what they say.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[1]
COURSE_EXTRAS = ("minilm", "course")
"""The extras a learner needs: the offline model and the notebook tools (as ``make setup``)."""

_PROJECT_INSTALL = re.compile(r"^(?:-e\s+)?(?P<path>\.[^\[\s]*)(?:\[(?P<extras>[^\]]*)\])?$")


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def conda_specs(environment: dict) -> list[str]:
    return [d for d in environment["dependencies"] if isinstance(d, str)]


def pip_lines(environment: dict) -> list[str]:
    sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, "environment.yml needs exactly one pip: section"
    return sections[0]


def project_install(lines: list[str]) -> tuple[int, set[str]]:
    """Where the pip section installs this repository, and with which extras."""
    for index, line in enumerate(lines):
        if match := _PROJECT_INSTALL.match(line.strip()):
            assert (ROOT / match["path"]).resolve() == ROOT, f"{line!r} is not this repository"
            extras = {e.strip() for e in (match["extras"] or "").split(",") if e.strip()}
            return index, extras
    raise AssertionError("environment.yml's pip section does not install this project (-e .[...])")


def pinned_requirements(lines: list[str]) -> list[Requirement]:
    return [Requirement(line) for line in lines if not _PROJECT_INSTALL.match(line.strip())]


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_python_is_a_version_the_project_supports(environment, project):
    pins = [s for s in conda_specs(environment) if re.match(r"python\b", s)]
    assert len(pins) == 1 and (match := re.fullmatch(r"python=(\d+\.\d+)", pins[0])), pins
    supported = project["requires-python"]
    assert SpecifierSet(supported).contains(match[1]), f"python={match[1]} is not {supported}"


def test_every_runtime_and_course_dependency_is_installed(environment, project):
    lines = pip_lines(environment)
    _, extras = project_install(lines)
    assert set(COURSE_EXTRAS) <= extras, f"the project is installed without {COURSE_EXTRAS}"
    brought = names(project["dependencies"])
    for extra in extras:
        brought |= names(project["optional-dependencies"][extra])
    listed = {canonicalize_name(r.name) for r in pinned_requirements(lines)}
    listed |= {canonicalize_name(re.split(r"[=<>!\s]", s)[0]) for s in conda_specs(environment)}
    required = names(project["dependencies"])
    for extra in COURSE_EXTRAS:
        required |= names(project["optional-dependencies"][extra])
    assert required - (brought | listed) == set()


def test_torch_comes_first_pinned_as_the_makefile_pins_it(environment, project):
    lines = pip_lines(environment)
    install_at, _ = project_install(lines)
    makefile_pin = re.search(r"^TORCH\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)[1]
    torch = [i for i, r in enumerate(pinned_requirements(lines)) if r.name == "torch"]
    assert torch == [0] and install_at > 0, "torch must be installed before the project"
    assert lines[0] == makefile_pin


def test_pins_satisfy_the_projects_own_requirements(environment, project):
    declared = {canonicalize_name(r.name): r.specifier for r in map(Requirement, [
        *project["dependencies"], *(d for e in COURSE_EXTRAS
                                    for d in project["optional-dependencies"][e])])}
    for pin in pinned_requirements(pip_lines(environment)):
        versions = [s.version for s in pin.specifier if s.operator == "=="]
        name = canonicalize_name(pin.name)
        for version in versions:
            assert declared.get(name, SpecifierSet()).contains(version), f"{pin} vs pyproject"
