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
from bertnli_helpers.study.comparison import BETTER, CONFIDENCE, WITHIN_NOISE, WORSE
from bertnli_helpers.study.grids import GRID_FILE

REFERENCE_ROOT = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
RESULTS_CSV, VERDICTS_CSV = "results.csv", "verdicts.csv"
# How each stored grid was made: the command (as in docs/benchmarks.md, which a test holds it
# to) and its recipe in words, so a notebook can label the grid without typing either in.
RECIPES = {
    "truncation-grid": (
        "bertnli compare --dev-size 2000 --epochs 2 --vary truncation=longest_first,ratio "
        "--vary max_len=16,24,32 --seeds 0,1,2 --score-on test "
        "--output benchmarks/results/truncation-grid",
        "minilm fine-tuned with the tuned preset for 2 epochs on the whole 1% train sample, its "
        "epoch chosen on 2,000 dev pairs, verdicts on the whole test split"),
    "pooling-grid": (
        "bertnli compare --dev-size 2000 --epochs 2 --vary pooling=pair,cls --baseline "
        "pooling=pair --seeds 0,1,2 --score-on test --output benchmarks/results/pooling-grid",
        "minilm fine-tuned with the tuned preset for 2 epochs on the whole 1% train sample, its "
        "epoch chosen on 2,000 dev pairs, verdicts on the whole test split"),
}


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

    @property
    def command(self) -> str | None:
        """The ``bertnli compare`` command that made this grid, when the course knows it."""
        return RECIPES.get(self.folder.name, (None, None))[0]

    @property
    def recipe(self) -> str | None:
        """The grid's recipe in words, when the course knows it."""
        return RECIPES.get(self.folder.name, (None, None))[1]

    def learned(self, variant: str) -> str | None:
        """The ``learned`` cell of ``variant`` in results.csv ("3/3": seeds that learned)."""
        rows = self.results[self.results["variant"] == variant]
        return None if rows.empty else str(rows.iloc[0]["learned"])

    def all_learned(self, *variants: str) -> bool:
        """Whether every seed of each of ``variants`` learned (a verdict reads a difference)."""
        counts = [self.learned(v) for v in variants]
        return all(c is not None and c.split("/")[0] == c.split("/")[1] for c in counts)

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

    def beside(self, finding: str, a: str, b: str, name_a: str, name_b: str) -> str:
        """A student's ``finding`` for ``a`` against ``b`` set beside this grid's verdict: the
        same, another verdict, or a lesson the student's runs could not reach (one side or
        neither learned in their budget)."""
        row, said = self.verdict_row(a, b), self.sentence(a, b, name_a, name_b)
        if row is None:
            return f"Your runs: {finding}. {said}"
        if finding == row["verdict"]:
            return f"Your runs: {finding}, as in the reference. {said}"
        if finding in (BETTER, WORSE, WITHIN_NOISE):
            return (f"Your runs: {finding}; the reference, with more seeds and pairs, says "
                    f"{row['verdict']}. {said} Read yours as one more noisy measurement.")
        learned = (f"every seed of both learned ({self.learned(a)} and {self.learned(b)})"
                   if self.all_learned(a, b) else "not every seed of both learned either")
        return (f"Your runs: {finding}, so they cannot say how {name_a} and {name_b} compare "
                f"once both learn. In the reference, {learned}: {said}")

    def primer(self) -> str:
        """How to read a verdict, in Markdown, with this grid's own rows as the examples."""
        lines = []
        better = self._first(BETTER)
        if better is not None:
            lines.append(f"- **better**: {self._row_text(better)}. The whole interval is above "
                         f"0 and McNemar's p is below {1 - CONFIDENCE:.2f}: both tests agree.")
            lines.append(f"- **worse** is the same comparison read the other way round: "
                         f"`{better['B']}` against `{better['A']}` is "
                         f"{-100 * better['A - B']:+.1f} points, interval "
                         f"{-100 * better['95% high']:+.1f} to {-100 * better['95% low']:+.1f}.")
        noise = self._first(WITHIN_NOISE)
        if noise is not None:
            mcnemar = ("McNemar's p alone is below 0.05 here, yet the interval reaches across "
                       "0, and a direction is read only when both agree"
                       if noise["McNemar p"] < 1 - CONFIDENCE else "the interval reaches across 0")
            lines.append(f"- **within noise**: {self._row_text(noise)}: {mcnemar}. This grid "
                         "does not show either side better, which is not the same as showing "
                         "them equal.")
        return "\n".join([*lines, self._seed_line(), self._learned_line()])

    def _first(self, verdict: str) -> pd.Series | None:
        rows = self.verdicts[self.verdicts["verdict"] == verdict]
        return None if rows.empty else rows.iloc[0]

    def _row_text(self, row: pd.Series) -> str:
        return (f"`{row['A']}` against `{row['B']}`: {100 * row['A - B']:+.1f} points, 95% "
                f"interval {100 * row['95% low']:+.1f} to {100 * row['95% high']:+.1f}, "
                f"McNemar p = {row['McNemar p']:.3f}")

    def _seed_line(self) -> str:
        column = "test sd" if "test sd" in self.results else "dev sd"
        spread = self.results[column]
        return (f"- **why seeds**: over its {self.seeds} seeds, one variant's accuracy moves by "
                f"{100 * spread.min():.1f} to {100 * spread.max():.1f} points (the `{column}` "
                "column): a difference of that size needs several seeds before it means "
                "anything, and the interval resamples the seeds as well as the pairs.")

    def _learned_line(self) -> str:
        idle = [v for v in self.results["variant"] if not self.all_learned(v)]
        if not idle:
            return ("- **did not learn**: the `learned` column counts the seeds whose accuracy "
                    "beats always answering the largest class measurably; here every variant "
                    "learned on every seed, so every row above is a verdict on a difference. A "
                    "run that did not learn is compared with nothing: the finding is then *only A "
                    "learned* or *neither learned*.")
        return (f"- **did not learn**: not every seed of {', '.join(f'`{v}`' for v in idle)} "
                "beat the largest class measurably (the `learned` column); a comparison with "
                "such a variant reads *only A learned* or *neither learned*, not a difference.")


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
