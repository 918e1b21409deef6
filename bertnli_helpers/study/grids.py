"""Comparing exercise variants as one grid: every variant x seed fine-tuned, then verdicts.

A grid is a base recipe (a ``RunInfo`` and a ``TrainConfig``), the settings to vary (for example
``truncation=longest_first,ratio`` and ``max_len=16,32``) and the training seeds. Each cell of the
grid is one :func:`~bertnli_helpers.train.runs.finetune_run` in its own folder, so a finished cell
is re-used and an interrupted one resumed when the grid runs again. The results are a table (each
variant's dev and test accuracy as mean and spread over seeds, speed, minutes) and paired verdicts
on the same test pairs (:func:`~bertnli_helpers.study.comparison.compare`), each between two
variants that differ in one setting only: with two settings varied, ``ratio`` at ``max_len=24`` is
compared with ``longest_first`` at ``max_len=24`` (and with ``ratio`` at the baseline's
``max_len``), never with the baseline that differs in both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bertnli_helpers.errors import BertNLIError, GridError
from bertnli_helpers.files import (
    LOCK_FILE,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    run_folder_lock,
)
from bertnli_helpers.study.backends import BackendOptions, open_backend
from bertnli_helpers.study.comparison import (
    compare,
    correct_mask,
    finding,
    finding_sentence,
    learning_check,
    seed_spread,
)

PROBS_FILE = "scored_probs.npy"  # probabilities on the split the verdicts are computed on
GRID_FILE = "grid.json"
LABELS_FILE = "scored_labels.npy"  # the gold labels of the scored pairs, for gathering grids
FIGURE_FILE = "grid.png"


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "yes", "no", "1", "0"):
        raise ValueError(f"{text!r} is not true or false")
    return lowered in ("true", "yes", "1")


def _strategy_names() -> list[str]:
    from bertnli_helpers.data.truncation import STRATEGIES

    return list(STRATEGIES)


def _pooling_names() -> list[str]:
    from bertnli_helpers.model.bert import POOLING_HEADS

    return list(POOLING_HEADS)


def _precision_names() -> list[str]:
    from bertnli_helpers.model.precision import PRECISIONS

    return list(PRECISIONS)


@dataclass(frozen=True)
class Setting:
    """One thing a grid can vary: where it lives, how its text parses, what values exist."""

    target: str  # "info" (RunInfo), "config" (TrainConfig) or "data" (the train sample)
    parse: Callable[[str], Any]
    choices: Callable[[], list[str]] | None = None


SETTINGS: dict[str, Setting] = {
    "truncation": Setting("info", str, _strategy_names),
    "max_len": Setting("info", int),
    "pooling": Setting("info", str, _pooling_names),
    "freeze_encoder": Setting("info", _parse_bool),
    "model": Setting("info", str),
    "lr": Setting("config", float),
    "batch_size": Setting("config", int),
    "epochs": Setting("config", int),
    "precision": Setting("config", str, _precision_names),
    "train_size": Setting("data", int),
}


def parse_value(name: str, text: str, option: str = "--vary") -> Any:
    """``text`` as a value of setting ``name``, or a GridError that says what is allowed and
    names the ``option`` it came from (``--vary`` or ``--baseline``)."""
    if name not in SETTINGS:
        raise GridError(f"{option} {name}: cannot vary {name!r}; what can vary: "
                        f"{', '.join(SETTINGS)}")
    setting = SETTINGS[name]
    try:
        value = setting.parse(text)
    except ValueError:
        raise GridError(f"{option} {name}: {text!r} is not a valid {name}") from None
    if setting.choices is not None and value not in setting.choices():
        raise GridError(f"{option} {name}: unknown value {text!r}; choose from "
                        f"{', '.join(setting.choices())}")
    if isinstance(value, float) and not math.isfinite(value):
        raise GridError(f"{option} {name}: {text!r} must be a finite number")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
        raise GridError(f"{option} {name}: {text!r} must be positive")
    return value


def parse_baseline(items: Sequence[str]) -> dict[str, Any]:
    """``["max_len=32"]`` as ``{name: value}``: the variant the others are compared with."""
    baseline: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not value.strip():
            raise GridError(f"--baseline {item!r}: write NAME=VALUE (e.g. max_len=32)")
        baseline[name] = parse_value(name, value.strip(), "--baseline")
    return baseline


def check_recipes(spec: GridSpec) -> None:
    """Build and check every cell's recipe (model name or path, ``max_len``, the training
    settings) before the first cell trains, so a typo in the last value costs no run and
    leaves no cell folder; the error names the variant."""
    from bertnli_helpers.data.dataset import checked_max_len
    from bertnli_helpers.model.pretrained import model_format

    for variant in spec.variants():
        try:
            info, _config, _train_size = cell_recipe(spec, variant, spec.seeds[0])
            checked_max_len(info.max_len)
            model_format(info.model)  # an unknown name, or a path that holds no model
        except BertNLIError as err:
            raise GridError(f"variant {variant_label(variant)}: {err}; nothing was run") from None


def parse_vary(items: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """``["truncation=longest_first,ratio", "max_len=16,32"]`` as ``{name: values}``."""
    vary: dict[str, tuple[Any, ...]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise GridError(f"--vary {item!r}: write NAME=VALUE,VALUE (e.g. max_len=16,32)")
        if name in vary:
            raise GridError(f"--vary {name} is given twice")
        parsed = tuple(parse_value(name, v.strip()) for v in values.split(","))
        if len(set(parsed)) != len(parsed):
            raise GridError(f"--vary {name}: a value is repeated")
        vary[name] = parsed
    return vary


Variant = tuple[tuple[str, Any], ...]  # ((name, value), ...) in the order of ``vary``


def variant_label(variant: Variant) -> str:
    return ", ".join(f"{name}={value}" for name, value in variant) or "base"


def variant_slug(variant: Variant) -> str:
    """A folder name for a variant: only letters, digits, '.', '_', '-' and '='."""
    text = "_".join(f"{name}={value}" for name, value in variant) or "base"
    return re.sub(r"[^A-Za-z0-9._=-]", "-", text)


@dataclass
class GridSpec:
    """What to run: the base recipe, the settings to vary, the seeds, and the data sizes."""

    info: Any  # RunInfo of the base recipe
    config: Any  # TrainConfig of the base recipe (its seed is replaced by each grid seed)
    vary: dict[str, tuple[Any, ...]]
    seeds: tuple[int, ...] = (0,)
    baseline: dict[str, Any] | None = None  # default: the first value of every setting
    train_size: int | None = None
    dev_size: int | None = None
    test_size: int | None = None
    data_seed: int = 0  # the pairs are the same for every seed: seeds vary the training only
    data_dir: str | None = None
    score_on: str = "test"  # the split the verdicts are computed on: "test", or "dev" when the
    # comparison drives a decision (the test split is then never looked at)
    only: tuple[dict[str, Any], ...] | None = None  # run just the baseline and these variants,
    # each written as the settings it changes from the baseline (None: every combination)
    cell_store: str | None = None  # a folder several grids share: each cell is stored by a
    # digest of everything that decides its run, so a run another grid made is re-used
    shared_runs: str | None = None  # a read-only folder laid out as this grid's root (or its
    # cell_store): a finished cell found there is re-used from it, never written or locked

    def __post_init__(self) -> None:
        if not self.seeds:
            raise GridError("a grid needs at least one seed")
        if self.score_on not in ("dev", "test"):
            raise GridError(f"score_on must be 'dev' or 'test', not {self.score_on!r}")
        for name, value in (self.baseline or {}).items():
            if value not in self.vary.get(name, ()):
                raise GridError(f"baseline {name}={value} is not one of the values varied")
        for changes in self.only or ():
            for name, value in changes.items():
                if value not in self.vary.get(name, ()):
                    raise GridError(f"variant {name}={value} is not one of the values varied")

    def variants(self) -> list[Variant]:
        """Every combination of ``vary``; with ``only``, the baseline and those variants (each
        changes just what it names, so a comparison with the baseline changes that alone)."""
        names = list(self.vary)
        if self.only is None:
            return [tuple(zip(names, values)) for values in itertools.product(*self.vary.values())]
        base = self.baseline_variant()
        chosen = [base]
        for changes in self.only:
            variant = tuple((name, changes.get(name, value)) for name, value in base)
            if variant not in chosen:
                chosen.append(variant)
        return chosen

    def baseline_variant(self) -> Variant:
        chosen = {name: values[0] for name, values in self.vary.items()}
        chosen.update(self.baseline or {})
        return tuple((name, chosen[name]) for name in self.vary)

    def cells(self) -> Iterator[tuple[Variant, int]]:
        for variant in self.variants():
            for seed in self.seeds:
                yield variant, seed


@dataclass
class CellResult:
    variant: Variant
    seed: int
    metrics: dict[str, Any]
    correct: np.ndarray  # which scored pairs (spec.score_on) the classifier got right
    labels: np.ndarray
    reused: bool
    folder: Path


def _splits(spec: GridSpec, train_size: int | None):
    from bertnli_helpers.data.snli import read_records

    train = read_records(spec.data_dir, "train").sample(train_size, spec.data_seed)
    dev = read_records(spec.data_dir, "dev").sample(spec.dev_size, spec.data_seed)
    test = (read_records(spec.data_dir, "test").sample(spec.test_size, spec.data_seed)
            if spec.score_on == "test" else None)
    return train, dev, test


def cell_recipe(spec: GridSpec, variant: Variant, seed: int):
    """The ``RunInfo``, ``TrainConfig`` and train size of one cell."""
    changes: dict[str, dict[str, Any]] = {"info": {}, "config": {"seed": seed}, "data": {}}
    for name, value in variant:
        changes[SETTINGS[name].target][name] = value
    info = dataclasses.replace(spec.info, **changes["info"])
    config = spec.config.replace(**changes["config"])
    return info, config, changes["data"].get("train_size", spec.train_size)


def cell_folder(spec: GridSpec, root: Path, variant: Variant, seed: int,
                inputs: dict[str, Any]) -> Path:
    """Where a cell's run lives: under the grid by its variant, or, with ``spec.cell_store``,
    under the store by the digest of its run's inputs and the split it is scored on."""
    if spec.cell_store is None:
        return root / "cells" / variant_slug(variant) / f"seed{seed}"
    key = json.dumps({"inputs": inputs, "scored": spec.score_on}, sort_keys=True)
    return Path(spec.cell_store) / f"seed{seed}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def run_cell(spec: GridSpec, root: Path, variant: Variant, seed: int) -> CellResult:
    """Fine-tune one cell (or re-use / resume it) and score its classifier on the scored pairs.

    A finished cell whose run inputs match and whose scores are kept is read back without its
    weights (which the course deletes to save disk)."""
    from bertnli_helpers.model.checkpoints import CHECKPOINT_FILE
    from bertnli_helpers.train.runs import run_inputs, shared_counterpart, stored_run_metrics

    info, config, train_size = cell_recipe(spec, variant, seed)
    train, dev, test = _splits(spec, train_size)
    scored = test if spec.score_on == "test" else dev
    inputs = run_inputs(info, train, dev, test, config)
    folder = cell_folder(spec, root, variant, seed, inputs)
    shared = shared_counterpart(folder, spec.cell_store or root, spec.shared_runs)
    labels = np.array([r.label for r in scored.records])
    for stored in (shared, folder):  # the shared store first: it is read, never written
        if stored is None:
            continue
        metrics, probs = stored_run_metrics(stored, inputs), _stored_probs(stored, len(labels))
        if metrics is not None and probs is not None:
            return CellResult(variant, seed, metrics, correct_mask(probs, labels), labels, True,
                              stored)
    with contextlib.redirect_stdout(io.StringIO()):  # the grid says the precision once
        metrics, probs, reused = _train_and_score(folder, info, train, dev, test, scored,
                                                  config, (folder / CHECKPOINT_FILE).exists(),
                                                  shared)
    return CellResult(variant, seed, metrics, correct_mask(probs, labels), labels, reused, folder)


def _stored_probs(folder: Path, pairs: int) -> np.ndarray | None:
    try:
        probs = np.load(folder / PROBS_FILE)
    except (OSError, ValueError):
        return None
    return probs if len(probs) == pairs else None


def _train_and_score(folder: Path, info: Any, train: Any, dev: Any, test: Any, scored: Any,
                     config: Any, resume: bool, shared: Path | None = None
                     ) -> tuple[dict[str, Any], np.ndarray, bool]:
    """Fine-tune (or re-use, or resume) the cell's run, and write its probabilities on the
    scored pairs (into the user's ``folder``, also when the run came from ``shared``)."""
    from bertnli_helpers.data.dataset import SNLIBERTDataset
    from bertnli_helpers.model.inference import predict
    from bertnli_helpers.train.runs import finetune_run

    outcome = finetune_run(folder, info, train, dev, test, config, reuse=True, resume=resume,
                           keep_checkpoint=False, shared=shared)
    probs = _stored_probs(outcome.folder, len(scored)) if outcome.reused else None
    if probs is None:
        data = SNLIBERTDataset(scored, outcome.tokenizer, info.max_len, info.truncation)
        probs = predict(outcome.net, data, precision=config.precision)
        atomic_write(folder / PROBS_FILE, lambda handle: np.save(handle, probs))
    return outcome.metrics, probs, outcome.reused


@dataclass
class GridResult:
    spec: GridSpec
    cells: list[CellResult] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per variant: accuracies as mean and spread over seeds, speed, minutes."""
        rows = []
        for variant in self.spec.variants():
            runs = [c for c in self.cells if c.variant == variant]
            if not runs:
                continue
            dev_mean, dev_sd = seed_spread([c.metrics["dev_accuracy"] for c in runs])
            row = {"variant": self.label(variant), "seeds": len(runs),
                   "dev mean": dev_mean, "dev sd": dev_sd}
            if self.spec.score_on == "test":
                row["test mean"], row["test sd"] = seed_spread([c.correct.mean() for c in runs])
            learned = sum(learning_check(c.correct, c.labels).learned for c in runs)
            rows.append({
                **row, "learned": f"{learned}/{len(runs)}",
                "examples/s": round(float(np.mean([c.metrics["examples_per_s"] for c in runs])), 1),
                "minutes": round(float(np.mean([c.metrics["train_seconds"] for c in runs])) / 60,
                                 2),
            })
        return pd.DataFrame(rows)

    def one_change_pairs(self) -> list[tuple[Variant, Variant]]:
        """``(variant, reference)`` pairs that differ in one setting: each variant against the
        variant that sets one of its non-baseline settings back to the baseline's value, so
        that every comparison changes one thing (with one setting varied: each against the
        baseline)."""
        base = dict(self.spec.baseline_variant())
        present = set(self.spec.variants())
        pairs = []
        for variant in self.spec.variants():
            for name, value in variant:
                reference = tuple((key, base[key] if key == name else other)
                                  for key, other in variant)
                if value != base[name] and reference in present:
                    pairs.append((variant, reference))
        return pairs

    def verdicts(self) -> pd.DataFrame:
        """Every one-change pair (:meth:`one_change_pairs`), paired on the same scored pairs
        and seeds."""
        rows = []
        for variant, reference in self.one_change_pairs():
            comparison, idle = self.against(variant, reference)
            if comparison is not None:
                row = comparison.row()
                if idle:  # the same rule as the sentences: no accuracy difference read from it
                    row["verdict"] = finding(comparison, idle)
                rows.append(row)
        return pd.DataFrame(rows)

    def comparison(self, variant: Variant, base: Variant):
        """The paired comparison of two variants over the seeds both have (None if none)."""
        seeds = sorted({c.seed for c in self.cells if c.variant == variant}
                       & {c.seed for c in self.cells if c.variant == base})
        if not seeds:
            return None
        by_key = {(c.variant, c.seed): c.correct for c in self.cells}
        return compare(np.stack([by_key[variant, s] for s in seeds]),
                       np.stack([by_key[base, s] for s in seeds]),
                       self.label(variant), self.label(base))

    def constant_settings(self) -> Variant:
        """The settings given a single value: the same in every run, so left out of labels."""
        return tuple((name, values[0]) for name, values in self.spec.vary.items()
                     if len(values) == 1)

    def label(self, variant: Variant) -> str:
        """A variant's name in tables and sentences: only the settings that vary in the grid;
        in a grid of chosen changes (``only``), just what it changes from the baseline."""
        if self.spec.only is not None:
            base = dict(self.spec.baseline_variant())
            changed = tuple(item for item in variant if item[1] != base[item[0]])
            return variant_label(changed) if changed else "baseline"
        constant = set(self.constant_settings())
        return variant_label(tuple(item for item in variant if item not in constant)) \
            if len(constant) < len(variant) else variant_label(variant)

    def correct_for(self, **settings: Any) -> np.ndarray:
        """``(seeds, pairs)``: which scored pairs the runs of the variant with these settings got
        right, one row per seed in seed order (to compare on a subset of the pairs)."""
        cells = [c for c in self.cells
                 if all(dict(c.variant).get(k) == v for k, v in settings.items())]
        variants = {c.variant for c in cells}
        if len(variants) != 1:
            raise GridError(f"{settings} matches {len(variants)} variants of the grid, not one")
        return np.stack([c.correct for c in sorted(cells, key=lambda c: c.seed)])

    def learned_seeds(self, variant: Variant) -> tuple[int, int]:
        """``(learned, seeds)``: how many of a variant's seeds beat the majority-class rate
        measurably, out of how many ran."""
        checks = [learning_check(c.correct, c.labels).learned
                  for c in self.cells if c.variant == variant]
        return sum(checks), len(checks)

    def learned(self, variant: Variant) -> bool:
        """Whether more than half of a variant's seeds beat the majority-class rate measurably
        (the rule every verdict of the grid applies)."""
        learned, seeds = self.learned_seeds(variant)
        return seeds > 0 and learned * 2 > seeds

    def sentences(self) -> list[str]:
        """What the grid shows, one generated sentence per one-change pair; a comparison with
        a side that did not learn says so instead of reading a direction."""
        sentences = []
        for variant, reference in self.one_change_pairs():
            comparison, idle = self.against(variant, reference)  # one bootstrap per pair
            if comparison is not None:
                sentences.append(self._sentence(comparison, idle, str(variant)))
        return sentences

    def against(self, variant: Variant, reference: Variant, name: str | None = None,
                reference_name: str | None = None):
        """``(comparison, idle)``: ``variant`` compared with ``reference``, named ``name`` /
        ``reference_name`` (None when no seed has both), and ``(name, note)`` for each side
        that did not learn measurably."""
        comparison = self.comparison(variant, reference)
        names = {variant: name or self.label(variant),
                 reference: reference_name or self.label(reference)}
        if comparison is not None:
            comparison = dataclasses.replace(comparison, name_a=names[variant],
                                             name_b=names[reference])
        return comparison, [(names[v], f"{names[v]} has {self._learned_note(v)}")
                            for v in (variant, reference) if not self.learned(v)]

    def _learned_note(self, variant: Variant) -> str:
        learned, seeds = self.learned_seeds(variant)
        return f"{learned} of {seeds} seed{'s' if seeds != 1 else ''} above the majority class"

    def against_baseline(self, changes: dict[str, Any], name: str | None = None,
                         base_name: str | None = None):
        """:meth:`against` for the variant that makes ``changes`` to the baseline."""
        base = self.spec.baseline_variant()
        variant = tuple((key, changes.get(key, value)) for key, value in base)
        return self.against(variant, base, name, base_name)

    def sentence(self, changes: dict[str, Any], name: str | None = None,
                 base_name: str | None = None) -> str:
        """One generated sentence for :meth:`against_baseline` (what it shows, or that it
        cannot be read because a side did not learn)."""
        return self._sentence(*self.against_baseline(changes, name, base_name),
                              str(name or changes))

    @staticmethod
    def _sentence(comparison, idle: list[tuple[str, str]], what: str) -> str:
        if comparison is None:
            return f"{what}: no run to compare yet."
        return finding_sentence(comparison, idle)

    def judged(self, changes: dict[str, Any], name: str | None = None,
               base_name: str | None = None) -> tuple[str, str, Any]:
        """``(verdict, sentence, comparison)`` of the variant that makes ``changes`` against the
        baseline: better / worse / within noise when both learned, else which side learned
        (:func:`finding`); the comparison is None when no seed has both."""
        comparison, idle = self.against_baseline(changes, name, base_name)
        if comparison is None:
            return "no runs", self._sentence(None, idle, str(name or changes)), None
        return finding(comparison, idle), finding_sentence(comparison, idle), comparison

    def cell_table(self) -> pd.DataFrame:
        """One row per run: its settings, seed and accuracy on the scored pairs."""
        return pd.DataFrame([{**dict(c.variant), "seed": c.seed, "accuracy": c.correct.mean()}
                             for c in self.cells])

    def figure(self):
        """Accuracy against the last setting that varies, one line per value of the first
        (mean and spread over seeds, each seed a dot, the majority-class rate)."""
        from bertnli_helpers.study.plots import grid_accuracy

        varying = [name for name, values in self.spec.vary.items() if len(values) > 1]
        names = varying or list(self.spec.vary)
        labels = self.cells[0].labels if self.cells else np.array([0])
        chance = float(np.bincount(labels).max() / len(labels))
        return grid_accuracy(self.cell_table(), x=names[-1],
                             by=names[0] if len(names) > 1 else None,
                             y="accuracy", chance=chance,
                             title=f"{self.spec.score_on} accuracy by {names[-1]}")

    def save(self, root: Path) -> list[Path]:
        """results.csv / results.md (the table), verdicts.csv / verdicts.md, grid.png."""
        import matplotlib.pyplot as plt

        written = []
        for name, frame in (("results", self.table()), ("verdicts", self.verdicts())):
            written.append(atomic_write_text(root / f"{name}.csv", frame.to_csv(index=False)))
            written.append(atomic_write_text(root / f"{name}.md", markdown_table(frame)))
        if self.cells:
            fig = self.figure()
            written.append(atomic_write(root / FIGURE_FILE,
                                        lambda handle: fig.savefig(handle, format="png", dpi=110)))
            plt.close(fig)
        return written


COLUMN_DIGITS = {"examples/s": 1, "minutes": 2}  # decimals where 4 would be false precision


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A pandas table as Markdown (numbers rounded), without an extra dependency."""
    def cell(value: Any, column: str) -> str:
        places = COLUMN_DIGITS.get(column, digits)
        return f"{value:.{places}f}" if isinstance(value, float) else str(value)

    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v, c) for v, c in zip(row, columns)) + " |"
              for row in frame.itertuples(False)]
    return "\n".join(lines) + "\n"


def run_grid(spec: GridSpec, root: str | Path, *, jobs: int | None = None,
             progress: bool = True, on_cell: Callable[[CellResult], None] | None = None,
             backend: str = "local", options: BackendOptions | None = None) -> GridResult:
    """Run every cell not finished yet on ``backend`` (:data:`~bertnli_helpers.study.backends.
    BACKENDS`; ``jobs`` cells at once), then save the tables; the grid folder is held as its
    only writer for the whole call (``files.run_folder_lock``)."""
    check_recipes(spec)  # every cell's recipe, before the folder or a first cell is made
    root, spec = Path(root).resolve(), _with_absolute_paths(spec)  # the same on every node
    options = options or BackendOptions(jobs=jobs, device=spec.config.device)
    with run_folder_lock(root):  # one writer per grid folder (its cells lock their own)
        return _run_grid_in(spec, root, backend, options, progress, on_cell)


def _run_grid_in(spec: GridSpec, root: Path, backend: str, options: BackendOptions,
                 progress: bool, on_cell: Callable[[CellResult], None] | None) -> GridResult:
    from bertnli_helpers.model.precision import describe_precision
    from bertnli_helpers.progress import progress_bar

    cells = list(spec.cells())
    _refuse_foreign_grid_folder(root)
    with open_backend(backend, options, len(cells)) as executor:  # checked before any write
        write_grid_file(spec, root)
        result = GridResult(spec)
        print(describe_precision(spec.config.precision, executor.device()), flush=True)
        print(executor.where(), flush=True)
        bar = progress_bar(total=len(cells), desc="grid", unit="run", disable=not progress)
        for cell in executor.map(functools.partial(_run_one, spec, root), cells):
            result.cells.append(cell)
            bar.update(1)
            if on_cell is not None:
                on_cell(cell)
        bar.close()
    if result.cells:
        labels = result.cells[0].labels
        atomic_write(root / LABELS_FILE, lambda handle: np.save(handle, labels))
    result.save(root)
    return result


def _refuse_foreign_grid_folder(root: Path) -> None:
    """A grid writes its tables into a new folder or over a grid of its own (``grid.json``
    there), never over someone's files."""
    names = {p.name for p in root.iterdir()} - {LOCK_FILE}
    if names and GRID_FILE not in names:
        raise GridError(f"--output {root} is not empty and holds no grid of bertnli (no "
                        f"{GRID_FILE}; it has {', '.join(sorted(names)[:3])}): choose a new folder")


def recipe_of(spec: GridSpec) -> dict[str, Any]:
    """What makes grids comparable: everything of the spec but seeds, values varied and where
    the data and runs are (the device of each machine aside)."""
    config = {k: v for k, v in dataclasses.asdict(spec.config).items() if k not in ("seed",
                                                                                     "device")}
    return json.loads(json.dumps({
        "info": dataclasses.asdict(spec.info), "config": config, "settings": list(spec.vary),
        "train_size": spec.train_size, "dev_size": spec.dev_size, "test_size": spec.test_size,
        "data_seed": spec.data_seed, "score_on": spec.score_on}))


def write_grid_file(spec: GridSpec, root: Path, **extra: Any) -> Path:
    """``grid.json``: what was varied, the seeds, the baseline and the recipe, which
    ``bertnli compare --gather`` checks before merging grids (see ``study.gather``)."""
    return atomic_write_json(root / GRID_FILE, {
        "vary": {k: list(v) for k, v in spec.vary.items()}, "seeds": list(spec.seeds),
        "only": list(spec.only) if spec.only else None,
        "baseline": variant_label(spec.baseline_variant()),
        "baseline_values": dict(spec.baseline_variant()), "recipe": recipe_of(spec), **extra})


def _run_one(spec: GridSpec, root: Path, cell: tuple[Variant, int]) -> CellResult:
    """:func:`run_cell` of one ``(variant, seed)``: the function a backend maps over cells."""
    return run_cell(spec, root, *cell)


def _with_absolute_paths(spec: GridSpec) -> GridSpec:
    """The spec with its folders absolute, so a cell run elsewhere (another process's or
    node's working directory) reads and writes the same ones."""
    changes: dict[str, Any] = {name: str(Path(getattr(spec, name)).resolve())
                               for name in ("data_dir", "cell_store", "shared_runs")
                               if getattr(spec, name) is not None}
    if Path(spec.info.model).exists():  # a local model folder or zip, not a registered name
        changes["info"] = dataclasses.replace(spec.info, model=str(Path(spec.info.model).resolve()))
    return dataclasses.replace(spec, **changes) if changes else spec
