"""The routes in docs/students-machines.md (Windows, conda, Colab) give commands that exist here:
every ``bertnli`` line parses, every ``pip install -e`` names extras the project has, every file
it names is in the checkout."""

import re
import shlex
from pathlib import Path

import pytest

from bertnli_helpers.cli import build_parser

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "students-machines.md"


def commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [line.lstrip("!%").strip() for line in lines if line]


def test_the_page_has_commands_for_each_route():
    text = PAGE.read_text()
    for route in ("## Windows without `make`", "## Google Colab", "## Which device"):
        assert route in text
    assert sum(line.startswith("bertnli ") for line in commands()) >= 4


@pytest.mark.parametrize("line", [c for c in commands() if c.startswith("bertnli ")])
def test_every_bertnli_line_parses(line):
    build_parser().parse_args(shlex.split(line)[1:])


@pytest.mark.parametrize("line", [c for c in commands() if c.startswith("pip install -e")])
def test_every_editable_install_names_real_extras(line):
    extras = re.search(r'\.\[([a-z0-9_,]+)\]', line).group(1).split(",")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(extras) <= set(project["optional-dependencies"]), line


def test_every_file_and_make_target_named_exists():
    for line in commands():
        if line.startswith("conda env create -f "):
            assert (ROOT / line.split()[-1]).is_file(), line
        if line.startswith("jupyter lab "):
            assert (ROOT / line.split()[2]).is_dir()
            assert (ROOT / line.split("=", 1)[1]).is_dir(), line
        if line.startswith("make "):
            target = line.split()[1]
            assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), flags=re.M), line
    makefile = (ROOT / "Makefile").read_text()
    assert "d2l==1.0.3" in makefile and "d2l==1.0.3" in PAGE.read_text()  # same pin as make setup
