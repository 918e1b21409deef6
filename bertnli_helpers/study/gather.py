"""A class-wide grid: the finished cells of many students' grids, merged into one.

Each student runs the same ``bertnli compare`` recipe with their own seeds (student n:
``--seeds n``) or their own variants; a teacher gathers the folders into one results and verdict
table and ``grid.png``, with intervals over more seeds than one laptop can afford. Only grids of
the same recipe are merged: every grid folder's recipe (:func:`recipe_of`, recorded in its
``grid.json``) must be the same, and every cell's recorded run inputs must agree with the other
cells of its variant in everything but the seed (the same pairs, model, recipe and precision).
A cell found in several folders (the same variant and seed, so the same run digest) counts once.
Nothing is trained, and nothing is written into the students' folders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bertnli_helpers.errors import GridError
from bertnli_helpers.files import LOCK_FILE, atomic_write, run_folder_lock
from bertnli_helpers.study.comparison import correct_mask
from bertnli_helpers.study.grids import (
    GRID_FILE,
    LABELS_FILE,
    PROBS_FILE,
    CellResult,
    GridResult,
    GridSpec,
    Variant,
    cell_folder,
    write_grid_file,
)


def _read_grid(folder: Path) -> dict[str, Any]:
    path = folder / GRID_FILE
    try:
        grid = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GridError(f"{folder} is not a grid folder (no {GRID_FILE}): pass the --output "
                        "folders of 'bertnli compare'") from None
    except ValueError:
        raise GridError(f"{path} is not valid JSON: restore it, or run the grid's compare "
                        "command there again (finished runs are re-used)") from None
    if not isinstance(grid, dict) or "recipe" not in grid:
        raise GridError(f"{path} records no recipe (a grid made before gathering existed): run "
                        "its compare command there again (finished runs are re-used)")
    return grid


def _differing(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """The settings (dotted names) whose values differ between two nested dicts."""
    found = []
    for key in sorted(set(a) | set(b), key=str):
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            found += _differing(left, right, f"{prefix}{key}.")
        elif left != right:
            found.append(f"{prefix}{key} ({left!r} here, {right!r} in the first grid)")
    return found


def gathered_spec(folders: Sequence[Path]) -> GridSpec:
    """One spec over every variant and seed of the folders' grids, or an error naming the
    folder whose recipe differs and the setting that does."""
    grids = [_read_grid(folder) for folder in folders]
    try:
        return _merged_spec(folders, grids)
    except (KeyError, TypeError, ValueError) as err:  # a grid.json edited or from elsewhere
        raise GridError(f"a {GRID_FILE} in {', '.join(map(str, folders))} lacks or garbles "
                        f"{err}: run that grid's compare command again") from None


def _merged_spec(folders: Sequence[Path], grids: list[dict[str, Any]]) -> GridSpec:
    first = grids[0]["recipe"]
    for folder, grid in zip(folders[1:], grids[1:]):
        differ = _differing(grid["recipe"], first)
        if differ:
            raise GridError(f"{folder} was made with another recipe than {folders[0]}: "
                            f"{'; '.join(differ)}; gather only grids of the same recipe")
    vary: dict[str, list[Any]] = {name: [] for name in first["settings"]}
    for grid in grids:
        for name, values in grid["vary"].items():
            vary[name] += [v for v in values if v not in vary[name]]
    seeds = sorted({seed for grid in grids for seed in grid["seeds"]})
    return _spec(first, {k: tuple(v) for k, v in vary.items()}, tuple(seeds),
                 grids[0].get("baseline_values"))


def _spec(recipe: dict[str, Any], vary: dict[str, tuple[Any, ...]], seeds: tuple[int, ...],
          baseline: dict[str, Any] | None) -> GridSpec:
    from bertnli_helpers.train.config import TrainConfig
    from bertnli_helpers.train.runs import RunInfo

    return GridSpec(RunInfo(**recipe["info"]), TrainConfig(**recipe["config"]), vary,
                    seeds=seeds, baseline=baseline, train_size=recipe["train_size"],
                    dev_size=recipe["dev_size"], test_size=recipe["test_size"],
                    data_seed=recipe["data_seed"], score_on=recipe["score_on"])


def _labels(folders: Sequence[Path]) -> np.ndarray:
    """The gold labels of the scored pairs, the same in every grid (else not the same pairs)."""
    found = []
    for folder in folders:
        try:
            found.append(np.load(folder / LABELS_FILE))
        except (OSError, ValueError):
            raise GridError(f"{folder / LABELS_FILE} is missing or unreadable: run the grid's "
                            "compare command there again (finished runs are re-used)") from None
    for folder, labels in zip(folders[1:], found[1:]):
        if not np.array_equal(labels, found[0]):
            raise GridError(f"{folder} scored other pairs than {folders[0]} (another SNLI copy "
                            "or sample): gather only grids of the same data")
    return found[0]


def _cell_inputs(folder: Path) -> dict[str, Any] | None:
    """A finished cell's recorded run inputs without its seed; None if not finished."""
    from bertnli_helpers.train.runs import METRICS_FILE, saved_inputs

    inputs = saved_inputs(folder)
    if inputs is None or not (folder / METRICS_FILE).exists() or not (
            folder / PROBS_FILE).exists():
        return None
    inputs["train_config"].pop("seed", None)
    return inputs


def _read_cell(folder: Path, variant: Variant, seed: int, labels: np.ndarray) -> CellResult:
    from bertnli_helpers.train.runs import METRICS_FILE

    try:
        probs = np.load(folder / PROBS_FILE)
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise GridError(f"a run file in {folder} is unreadable ({err}): run that grid's "
                        "compare command again (finished runs are re-used)") from None
    if len(probs) != len(labels) or not np.isfinite(probs).all():
        raise GridError(f"{folder / PROBS_FILE} does not hold finite probabilities for the "
                        f"{len(labels)} scored pairs: run that grid's compare command again")
    return CellResult(variant, seed, metrics, correct_mask(probs, labels), labels, True, folder)


def gather_cells(spec: GridSpec, folders: Sequence[Path]) -> tuple[list[CellResult], int]:
    """Every finished cell of the folders, each (variant, seed) once; and how many duplicates
    were dropped. Cells of one variant must agree in all their run inputs but the seed."""
    labels = _labels(folders)
    cells, duplicates = [], 0
    for variant in spec.variants():
        reference: tuple[Path, dict[str, Any]] | None = None
        for seed in spec.seeds:
            found = False
            for folder in folders:
                where = cell_folder(spec, folder, variant, seed, {})
                inputs = _cell_inputs(where)
                if inputs is None:
                    continue
                if reference is None:
                    reference = (where, inputs)
                elif inputs != reference[1]:
                    raise GridError(
                        f"{where} was made with other settings than {reference[0]}: "
                        f"{'; '.join(_differing(inputs, reference[1]))}; gather only grids "
                        "of the same recipe")
                if found:
                    duplicates += 1
                    continue
                cells.append(_read_cell(where, variant, seed, labels))
                found = True
    return cells, duplicates


def _refuse_foreign_output(output: Path) -> None:
    """A class grid is written into a new folder or over an earlier class grid, nothing else."""
    if output.exists() and not output.is_dir():
        raise GridError(f"--output {output} is a file, not a folder: choose a folder")
    if not output.exists() or all(p.name == LOCK_FILE for p in output.iterdir()):
        return  # a new folder (held by this command: only its lock file is there)
    try:
        earlier = json.loads((output / GRID_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict) or "gathered_from" not in earlier:
        raise GridError(f"--output {output} holds files that are not a gathered class grid: "
                        "choose a new folder")


def gather(folders: Sequence[str | Path], output: str | Path) -> tuple[GridResult, int]:
    """Merge the grids in ``folders`` into ``output``: tables, ``grid.png`` and a ``grid.json``
    (so a class grid can itself be gathered). Returns the result and the duplicates dropped."""
    folders = [Path(f) for f in folders]
    output = Path(output)
    if output.absolute() in {f.absolute() for f in folders}:
        raise GridError(f"--output {output} is one of the gathered grids: choose a new folder")
    if len(set(map(Path.absolute, folders))) != len(folders):
        raise GridError("a grid folder is given twice to --gather")
    _refuse_foreign_output(output)
    spec = gathered_spec(folders)
    cells, duplicates = gather_cells(spec, folders)
    if not cells:
        raise GridError(f"no finished cell in {', '.join(map(str, folders))}: run the grids "
                        "first")
    labels = cells[0].labels
    with run_folder_lock(output):
        _refuse_foreign_output(output)  # again, as its only writer
        write_grid_file(spec, output, gathered_from=[str(f.absolute()) for f in folders])
        atomic_write(output / LABELS_FILE, lambda handle: np.save(handle, labels))
        result = GridResult(spec, cells)
        result.save(output)
    return result, duplicates
