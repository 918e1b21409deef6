"""The package's layers: every import goes down (or sideways within a layer), never up, no circle.

The layers, bottom to top, are the single home of the rule that each subpackage's docstring states
in words; the README's module map is checked against the tree here too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bertnli_helpers"
README = PACKAGE.parent / "README.md"
BASE = ("errors", "files", "devices", "progress", "hub")
LAYERS = ("base", "data", "model", "train", "study", "course", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the package's own __init__ re-exports from every layer
        return len(LAYERS)
    head = parts[1]
    return 0 if head in BASE else LAYERS.index(head)


def imports_of(path: Path) -> set[str]:
    """Every bertnli_helpers module this file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "bertnli_helpers":
                continue
            for alias in node.names:  # `from pkg import module` names a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}: relative import; the package imports by absolute path")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bertnli_helpers.")}
    return found - {"bertnli_helpers"}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_every_module_is_in_a_layer() -> None:
    for name in MODULES:
        layer_of(name)  # raises ValueError for a folder that is not a layer


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_upward(module: str) -> None:
    upward = [dep for dep in GRAPH[module] if layer_of(dep) > layer_of(module)]
    assert not upward, f"{module} (layer {layer_of(module)}) imports from above: {upward}"


def test_no_import_circle() -> None:
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(GRAPH.get(node, ())):
            if state.get(dep) == "open":
                cycle = [*path[path.index(dep):], dep] if dep in path else [node, dep]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_each_layer_says_its_job_and_what_it_may_import() -> None:
    for layer in LAYERS[1:-1]:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and "may import" in doc, f"{layer}/__init__.py needs a docstring with its rule"


def test_the_readme_module_map_matches_the_tree() -> None:
    section = README.read_text().split("## The package", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    mapped = {re.fullmatch(r" `([a-z_]+(?:/[a-z_]+)?)\.py` ", row).group(1) for row in rows}
    on_disk = {str(p.relative_to(PACKAGE).with_suffix("")) for p in PACKAGE.rglob("*.py")
               if p.name != "__init__.py"}
    assert mapped == on_disk, (f"README map lacks {sorted(on_disk - mapped)}; "
                               f"names what is gone: {sorted(mapped - on_disk)}")
