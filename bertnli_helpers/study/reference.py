"""Stored reference grids: what a comparison reached with more seeds and pairs than a lab affords.

A reference grid is the output folder of a ``bertnli compare`` run kept in the repository
(``benchmarks/results/<name>/``: ``grid.json``, ``results.csv``, ``verdicts.csv``; the command
that made each one is in ``docs/benchmarks.md``). A notebook shows it beside the student's own
runs, labelled as the reference, so that a lesson the student's short runs cannot reach on a
laptop is still seen, with the numbers that support it. Nothing here trains or writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bertnli_helpers.errors import GridError
from bertnli_helpers.study.comparison import WITHIN_NOISE
from bertnli_helpers.study.grids import GRID_FILE

REFERENCE_ROOT = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
RESULTS_CSV, VERDICTS_CSV = "results.csv", "verdicts.csv"


@dataclass(frozen=True)
class ReferenceGrid:
    """One stored grid: its variants' accuracies over seeds and its one-change verdicts."""

    folder: Path
    grid: dict[str, Any]
    results: pd.DataFrame
    verdicts: pd.DataFrame

    @property
    def seeds(self) -> int:
        return len(self.grid.get("seeds", ()))

    def verdict_row(self, a: str, b: str) -> pd.Series | None:
        """The row comparing variant ``a`` (label as in ``results.csv``) with ``b``, if any."""
        rows = self.verdicts[(self.verdicts["A"] == a) & (self.verdicts["B"] == b)]
        return None if rows.empty else rows.iloc[0]

    def sentence(self, a: str, b: str, name_a: str | None = None,
                 name_b: str | None = None) -> str:
        """What the reference grid found for ``a`` against ``b``, read off its verdict row."""
        row = self.verdict_row(a, b)
        name_a, name_b = name_a or a, name_b or b
        if row is None:
            return f"The reference grid has no verdict of {name_a} against {name_b}."
        interval = (f"{100 * row['A - B']:+.1f} points, 95% interval "
                    f"{100 * row['95% low']:+.1f} to {100 * row['95% high']:+.1f}, "
                    f"{self.seeds} seeds")
        verdict = row["verdict"]
        if verdict == WITHIN_NOISE:
            return f"Reference grid: {name_a} against {name_b} is within noise ({interval})."
        if verdict in ("better", "worse"):
            return f"Reference grid: {name_a} is {verdict} than {name_b} ({interval})."
        return f"Reference grid: {name_a} against {name_b}: {verdict}."


def reference_folder(name: str) -> Path:
    """Where the stored reference grid ``name`` lives in a clone of the course."""
    return REFERENCE_ROOT / name


def read_reference_grid(folder: str | Path) -> ReferenceGrid | None:
    """The stored grid in ``folder``; None when the folder is absent (a student edition without
    ``benchmarks/``). A folder that is there but incomplete or garbled is an error that names
    the file."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    paths = {name: folder / name for name in (GRID_FILE, RESULTS_CSV, VERDICTS_CSV)}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise GridError(f"{folder} is not a complete reference grid: {', '.join(missing)} "
                        "missing; make it again with the command in docs/benchmarks.md")
    try:
        grid = json.loads(paths[GRID_FILE].read_text())
        results = pd.read_csv(paths[RESULTS_CSV])
        verdicts = pd.read_csv(paths[VERDICTS_CSV])
    except (ValueError, pd.errors.ParserError) as err:
        raise GridError(f"{folder}: cannot read the reference grid ({err}); make it again with "
                        "the command in docs/benchmarks.md") from None
    needed = {"A", "B", "A - B", "95% low", "95% high", "verdict"}
    if not needed <= set(verdicts.columns):
        raise GridError(f"{paths[VERDICTS_CSV]} lacks the columns "
                        f"{', '.join(sorted(needed - set(verdicts.columns)))}")
    return ReferenceGrid(folder, grid, results, verdicts)
