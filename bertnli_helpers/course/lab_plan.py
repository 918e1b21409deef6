"""The lab plan: five 90-minute sessions, with compute times read from a measured course run.

The times in ``notebooks/README.md`` are not typed in: :func:`plan_table` writes them from the
``summary.json`` of a measured quick course (kept in ``benchmarks/results/``), and a test checks
that the README holds exactly that table, so a slower notebook cannot leave a stale plan behind.
Reading times are estimates of a first reading of the core sections, and say so.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

MEASURED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "quick-course.json"


@dataclass(frozen=True)
class Session:
    """One lab session: the notebooks it covers, its reading estimate and what is handed in."""

    title: str
    notebooks: tuple[str, ...]
    reading_minutes: int
    hand_in: str


SESSIONS: tuple[Session, ...] = (
    Session("1. A pretrained BERT and the data", ("01_pretrained_bert", "02_snli_dataset"), 55,
            "the exercises of notebooks 1 and 2"),
    Session("2. Truncation", ("03_truncation",), 45, "your ratio truncation and its grid"),
    Session("3. Fine-tuning", ("04_fine_tuning",), 50,
            "the exercises and the comparisons' verdicts"),
    Session("4. Error analysis", ("05_error_analysis",), 55, "the exercises of notebook 5"),
    Session("5. The chapter's exercises (homework)", ("06_exercises",), 60,
            "your own variant through `compare`"),
    Session("Appendix (optional): pretraining", ("07_pretraining",), 40, "the masking exercise"),
)


def compute_phrase(seconds: float) -> str:
    """How long a student waits, as they would say it."""
    minutes = seconds / 60
    return "under 1 min" if minutes < 1 else f"about {round(minutes)} min"


def load_times(path: Path = MEASURED) -> dict[str, float]:
    """Seconds per notebook from a course run's ``summary.json``."""
    return {row["notebook"]: float(row["seconds"]) for row in json.loads(path.read_text())}


def plan_table(times: dict[str, float]) -> str:
    """The Markdown table of the sessions, with each session's measured compute."""
    lines = ["| session | notebooks | reading (estimate) | compute (quick, measured) | hand in |",
             "| --- | --- | ---: | ---: | --- |"]
    for session in SESSIONS:
        seconds = sum(times[name] for name in session.notebooks)
        names = ", ".join(f"`{name}`" for name in session.notebooks)
        lines.append(f"| {session.title} | {names} | {session.reading_minutes} min | "
                     f"{compute_phrase(seconds)} | {session.hand_in} |")
    lines.append(f"| **whole course** | | | **{compute_phrase(sum(times.values()))}** | |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m bertnli_helpers.course.lab_plan [summary.json]
    print(plan_table(load_times(Path(sys.argv[1]) if len(sys.argv) > 1 else MEASURED)))
