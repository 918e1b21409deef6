"""The lab plan: five 90-minute sessions, with compute times read from a measured course run.

The times in ``notebooks/README.md`` are not typed in: :func:`plan_table` writes them from the
``summary.json`` of measured quick courses of this version (kept in ``benchmarks/results/``), a
column per precision, with a line for each precision not measured and why; a test checks that the
README holds exactly that table, so a slower notebook cannot leave a stale plan behind. Reading
times are estimates of a first reading of the core sections, and say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


@dataclass(frozen=True)
class MeasuredCourse:
    """A quick course's ``summary.json``, kept with how and where it was run."""

    path: Path
    command: str
    when: str  # date, commit and the state of the machine


MEASURED: dict[str, MeasuredCourse] = {  # precision -> its measured run of this course
    "fp32": MeasuredCourse(RESULTS / "quick-course-fp32.json", "bertnli course --profile quick",
                           "2026-12-03, commit 5b5e79e, a quiet 2-core AMD EPYC without native "
                           "bf16, where `precision=auto` is fp32"),
}
NOT_MEASURED: dict[str, str] = {  # precision -> why this version of the course has no column
    "bf16": "not measured for this version of the course: its CPU had no native bf16 and no GPU "
            "was lent. On a 2-core CPU with native bf16 the training step is 1.97x as fast as "
            "fp32 (docs/benchmarks.md), and the quick course before the lab's exercises (commit "
            "c2c7c44, 2026-12-01) took 11 min there: "
            "`benchmarks/results/quick-course-bf16-c2c7c44.json`",
}


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


def load_times(path: Path) -> dict[str, float]:
    """Seconds per notebook from a course run's ``summary.json``."""
    return {row["notebook"]: float(row["seconds"]) for row in json.loads(path.read_text())}


def measured_times() -> dict[str, dict[str, float]]:
    """Seconds per notebook of each measured run, by precision."""
    return {precision: load_times(run.path) for precision, run in MEASURED.items()}


def plan_table(times: dict[str, dict[str, float]]) -> str:
    """The Markdown table of the sessions, with each session's measured compute per precision,
    and below it where each column was measured."""
    columns = list(times)
    lines = ["| session | notebooks | reading (estimate) | "
             + " | ".join(f"compute, {c} (quick, measured)" for c in columns) + " | hand in |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in columns) + " | --- |"]
    for session in SESSIONS:
        names = ", ".join(f"`{name}`" for name in session.notebooks)
        computes = [compute_phrase(sum(times[c][name] for name in session.notebooks))
                    for c in columns]
        lines.append(f"| {session.title} | {names} | {session.reading_minutes} min | "
                     + " | ".join(computes) + f" | {session.hand_in} |")
    totals = [f"**{compute_phrase(sum(times[c].values()))}**" for c in columns]
    lines.append("| **whole course** | | | " + " | ".join(totals) + " | |")
    lines += ["", *(f"- {c}: `{MEASURED[c].command}` ({MEASURED[c].when}), "
                    f"`{MEASURED[c].path.relative_to(RESULTS.parents[1])}`."
                    for c in columns if c in MEASURED),
              *(f"- {c}: {why}." for c, why in NOT_MEASURED.items() if c not in columns)]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m bertnli_helpers.course.lab_plan
    print(plan_table(measured_times()))
