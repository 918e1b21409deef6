"""Running the course: profiles, shared results, and executing every notebook in order.

A profile fixes how much of SNLI each notebook uses, so the same notebooks serve CI (``tiny``),
a CPU laptop (``quick``) and a GPU box with the whole corpus (``full``). Notebooks share results
through one output folder (notebook 4's fine-tuned run is what notebook 5 analyses) and record
their key numbers with :func:`record`, which the course summary table reads back.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
RESULTS_FILE = "results.json"
OUTPUT_ENV = "BERTNLI_COURSE_OUTPUT"
RUNS_DIR = "runs"
MAIN_RUN_PREFIX = "main-"
"""Run folders the course keeps whole: the main run (notebook 4) that notebooks 5 and 6, and a
student re-opening them, analyse. The weights of every other run are dropped after the course
unless ``keep_runs``: they are large (90 MB each for minilm) and only the course's own numbers,
already recorded, came from them."""


@dataclass(frozen=True, kw_only=True)
class Profile:
    """How much data and training each notebook uses (None: the whole split).

    Keyword fields only: eleven numbers in a row cannot be read, or reordered safely.
    """

    name: str
    train_size: int | None
    dev_size: int | None
    test_size: int | None
    epochs: int
    max_steps: int | None  # cap on optimizer steps of each fine-tuning run
    compare_train_size: int | None  # the smaller runs that compare recipes and strategies
    compare_epochs: int
    compare_max_steps: int | None
    analysis_size: int | None  # pairs shown in tables, histograms and widgets
    max_lens: tuple[int, ...]  # max_len values swept in the truncation notebook
    model: str = "minilm"
    bigger_model: str = "minilm"  # the exercise's "bigger BERT" when bert.base is not at hand
    compare_batch_size: int = 32  # smaller batches give short comparison runs enough steps
    compare_seeds: tuple[int, ...] = (0,)  # training seeds of each comparison (noise visible)
    precision: str = "auto"  # bf16 autocast where the device computes it natively (precision.py)


PROFILES: dict[str, Profile] = {
    # CI: every cell runs on a few real pairs; numbers are not meaningful.
    "tiny": Profile(name="tiny", train_size=64, dev_size=64, test_size=64, epochs=1, max_steps=4,
                    compare_train_size=48, compare_epochs=1, compare_max_steps=2,
                    analysis_size=200, max_lens=(16, 32)),
    # A CPU laptop: the whole course in about a quarter of an hour. Comparison runs take batches
    # of 16 so that one epoch of 1,000 pairs is 63 steps: enough for minilm to learn something.
    "quick": Profile(name="quick", train_size=2000, dev_size=1000, test_size=2000, epochs=2,
                     max_steps=None, compare_train_size=1000, compare_epochs=1,
                     compare_max_steps=None, analysis_size=3000, max_lens=(16, 24, 32, 64),
                     compare_batch_size=16, compare_seeds=(0, 1)),
    # A GPU and the whole corpus.
    "full": Profile(name="full", train_size=None, dev_size=None, test_size=None, epochs=3,
                    max_steps=None, compare_train_size=50000, compare_epochs=1,
                    compare_max_steps=None, analysis_size=None,
                    max_lens=(16, 24, 32, 48, 64, 128), bigger_model="bert.base",
                    compare_seeds=(0, 1, 2)),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def output_dir(default: str | Path = "course_output") -> Path:
    """The folder notebooks share results through: $BERTNLI_COURSE_OUTPUT, else ``default``."""
    folder = Path(os.environ.get(OUTPUT_ENV, default))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record(notebook: str, key: str, value: Any, folder: str | Path | None = None) -> Any:
    """Store one key number of a notebook for the course summary; returns the value."""
    from bertnli_helpers.files import atomic_write_json

    path = Path(folder or output_dir()) / RESULTS_FILE
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault(notebook, {})[key] = value
    atomic_write_json(path, results)
    return value


def read_results(folder: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(folder) / RESULTS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def course_notebooks(selection: list[str] | None = None) -> list[Path]:
    """The notebooks in reading order; ``selection`` picks by number ("3") or name."""
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks found in {NOTEBOOK_DIR}")
    if not selection:
        return notebooks
    chosen = []
    for item in selection:
        matches = [nb for nb in notebooks
                   if nb.stem == item or nb.name == item or nb.stem.split("_")[0] == item.zfill(2)]
        if not matches:
            names = ", ".join(nb.stem for nb in notebooks)
            raise ValueError(f"no notebook {item!r}; the course has {names}")
        chosen += matches
    return chosen


def notebook_parameters(profile: str, output: Path, model: str | None, data_dir: str | None,
                        device: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"profile": profile, "output_dir": str(output.resolve())}
    if model:
        params["model"] = model
    if data_dir:
        params["data_dir"] = str(Path(data_dir).resolve())
    if device:
        params["device"] = device
    return params


def drop_run_weights(output: Path) -> list[Path]:
    """Delete the weights and checkpoints of every run the course made (in ``runs/``, in grids,
    anywhere under ``output``) but the main run's; their ``run.json``, metrics and history stay.
    Returns the files removed."""
    from bertnli_helpers.model.checkpoints import BEST_WEIGHTS_FILE, CHECKPOINT_FILE

    output = Path(output)
    removed = []
    for name in (BEST_WEIGHTS_FILE, CHECKPOINT_FILE):
        for path in sorted(output.rglob(name)):
            run = path.parent
            if run.parent == output / RUNS_DIR and run.name.startswith(MAIN_RUN_PREFIX):
                continue
            path.unlink()
            removed.append(path)
    return removed


def folder_size(folder: Path) -> int:
    """Bytes in the files under ``folder``."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def kernel_config() -> Any:
    """The kernel manager's settings for running notebooks here.

    On POSIX the kernel talks to papermill over local (IPC) sockets, which only this user can
    open: nothing travels over TCP, and ipykernel has no reason to warn that it runs "over TCP
    without encryption" once per notebook. Elsewhere (Windows has no IPC transport) TCP stays.
    """
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc"}}) if os.name == "posix" else Config()


def execute_notebook(notebook: Path, executed: Path, parameters: dict[str, Any],
                     timeout: int = 3600) -> None:
    """Run one notebook with papermill (parameters injected), writing the executed copy."""
    import papermill

    papermill.execute_notebook(
        str(notebook), str(executed), parameters=parameters, cwd=str(notebook.parent),
        kernel_name="python3", progress_bar=False, execution_timeout=timeout,
        config=kernel_config(),
        # a Ctrl-C that lands between two cells makes the kernel log its KeyboardInterrupt as a
        # traceback; the course says "interrupted" itself, and a cell's errors are in its output
        extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
    )


def run_course(
    profile: str = "quick",
    output: Path = Path("course_output"),
    notebooks: list[str] | None = None,
    model: str | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    html: bool = True,
    timeout: int = 3600,
    keep_runs: bool = False,
    precision: str | None = None,
) -> list[dict[str, Any]]:
    """Execute the notebooks in order with papermill; write executed copies, their HTML pages
    and ``index.html`` to ``output``; print and return a summary table. A failing notebook stops
    the course. Without ``keep_runs`` only the main run keeps its weights (see ``RUNS_DIR``).
    ``precision`` (fp32, bf16, fp16) replaces what ``"auto"`` picks in every notebook: training,
    scoring and the widgets (through ``$BERTNLI_PRECISION``, which each kernel inherits).
    ``output`` has one writer at a time (``files.run_folder_lock``); a notebook's executed copy
    replaces an earlier one only once it has run (see :func:`execute_atomically`), and a Ctrl-C
    is recorded as ``interrupted`` in ``summary.json`` and ``index.html`` before it propagates."""
    from bertnli_helpers.files import atomic_write_json, run_folder_lock

    chosen = get_profile(profile)
    output = Path(output)
    with run_folder_lock(output):
        params = notebook_parameters(profile, output, model, data_dir, device)
        os.environ[OUTPUT_ENV] = str(output.resolve())
        summary: list[dict[str, Any]] = []
        pages = _Pages(output, html, profile, model or chosen.model)
        try:
            for notebook in course_notebooks(notebooks):
                row = _run_one(notebook, output, params, timeout, precision, pages, summary)
                if row["status"] != "ok":
                    break
        finally:  # a Ctrl-C too: the summary says what ran, what failed, what was interrupted
            atomic_write_json(output / SUMMARY_FILE, summary)
        print(summary_table(summary))
        if not keep_runs:
            removed = drop_run_weights(output)
            print(f"removed {len(removed)} weight file(s) of comparison runs (--keep-runs keeps "
                  "them)")
        print(f"{output}: {folder_size(output) / 1e6:.0f} MB")
    return summary


SUMMARY_FILE = "summary.json"


@dataclass
class _Pages:
    """The course's HTML: each executed notebook's page and ``index.html`` (when ``html``)."""

    output: Path
    html: bool
    profile: str
    model: str

    def update(self, executed: Path, summary: list[dict[str, Any]], page: bool) -> None:
        from bertnli_helpers.course.site import index_page, notebook_page

        if not self.html:
            return
        if page and executed.exists():
            notebook_page(executed)
        index_page(self.output, summary, profile=self.profile, model=self.model,
                   format_value=_format)


def _run_one(notebook: Path, output: Path, params: dict[str, Any], timeout: int,
             precision: str | None, pages: _Pages,
             summary: list[dict[str, Any]]) -> dict[str, Any]:
    """Execute one notebook into ``output``, add its row to ``summary`` and the pages."""
    from bertnli_helpers.model.precision import precision_override

    executed = output / notebook.name
    tick = time.perf_counter()
    status, error = "ok", ""
    try:
        with precision_override(precision):
            execute_atomically(notebook, executed, params, timeout)
    except KeyboardInterrupt:
        status, error = "interrupted", "stopped by Ctrl-C; the earlier executed copy is kept"
        raise
    except Exception as err:  # report which notebook failed, then stop
        status, error = "failed", str(err).strip().splitlines()[-1][:200] if str(err) else ""
    finally:
        row = {"notebook": notebook.stem, "seconds": round(time.perf_counter() - tick, 1),
               "status": status, "key numbers": read_results(output).get(notebook.stem, {}),
               "error": error}
        summary.append(row)
        print(_summary_line(row), flush=True)
        pages.update(executed, summary, page=status != "interrupted")
    return row


def execute_atomically(notebook: Path, executed: Path, parameters: dict[str, Any],
                       timeout: int = 3600) -> None:
    """:func:`execute_notebook` into a temporary file renamed onto ``executed`` when the run
    ends: finished, or failed (its traceback is what the reader needs to see). Interrupted, the
    partial copy is removed and an earlier finished one stays as it was."""
    from bertnli_helpers.files import temp_path_for

    partial = temp_path_for(executed, keep_suffix=True)
    try:
        execute_notebook(notebook, partial, parameters, timeout)
    except Exception:
        _move_if_written(partial, executed)
        raise
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _move_if_written(partial, executed)


def _move_if_written(partial: Path, executed: Path) -> None:
    if partial.exists():
        os.replace(partial, executed)


def _summary_line(row: dict[str, Any]) -> str:
    return f"{row['notebook']}: {row['status']} in {row['seconds']:.0f} s {row['error']}".strip()


def _format(value: Any) -> str:
    """Three decimals, but small rates (a learning rate of 1e-4) in their own form."""
    if not isinstance(value, float):
        return str(value)
    return f"{value:g}" if 0 < abs(value) < 0.01 else f"{value:.3f}"


def summary_table(summary: list[dict[str, Any]]) -> str:
    """A Markdown table of the course run: notebook, seconds, status, key numbers."""
    lines = ["| notebook | seconds | status | key numbers |", "| --- | ---: | --- | --- |"]
    for row in summary:
        numbers = ", ".join(f"{k} {_format(v)}" for k, v in row["key numbers"].items())
        lines.append(f"| {row['notebook']} | {row['seconds']:.0f} | {row['status']} | {numbers} |")
    total = sum(row["seconds"] for row in summary)
    lines.append(f"| total | {total:.0f} | | |")
    return "\n".join(lines)


@dataclass
class NotebookContext:
    """What every notebook's set-up cell gives back: settings resolved once, in one place."""

    notebook: str
    profile: Profile
    model: str
    data_dir: Path
    device: Any
    seed: int
    output: Path
    precision: str = "auto"  # the TrainConfig precision of every run, and of scoring
    shared: Path | None = None  # a read-only course output whose finished runs are re-used
    # ($BERTNLI_SHARED_RUNS: a teacher's `make course` folder); nothing is written there

    def record(self, key: str, value: Any) -> Any:
        """Keep a key number for the course summary (and return it, to show in the cell)."""
        return record(self.notebook, key, value, self.output)

    def path(self, name: str) -> Path:
        """A file or folder in the shared output folder."""
        return self.output / name

    def splits(self, train_size: int | str | None = "profile"):
        """(train, dev, test) samples of SNLI at the profile's sizes, the same in every notebook.

        ``train_size="compare"`` gives the smaller train sample of the comparison runs.
        """
        from bertnli_helpers.data.snli import sample_splits

        size = {"profile": self.profile.train_size,
                "compare": self.profile.compare_train_size}.get(train_size, train_size)
        return sample_splits(self.data_dir, train_size=size, dev_size=self.profile.dev_size,
                             test_size=self.profile.test_size, seed=self.seed)

    def train_config(self, preset_name: str = "tuned", *, compare: bool = False, **changes: Any):
        """A preset sized for the profile: its epochs and step cap, this device and seed."""
        from bertnli_helpers.train.config import preset

        sizes = {"epochs": self.profile.compare_epochs if compare else self.profile.epochs,
                 "max_steps": self.profile.compare_max_steps if compare else self.profile.max_steps}
        if compare and preset_name != "book":  # the book's recipe keeps its own batch of 512
            sizes["batch_size"] = self.profile.compare_batch_size
        settings = {"device": str(self.device), "seed": self.seed, "precision": self.precision,
                    **sizes, **changes}
        return preset(preset_name, **settings)

    @property
    def pooling(self) -> str:
        """What the classifier reads: ``"pair"`` for a mean-pooling sentence embedder such as
        minilm, the book's ``"cls"`` for the book's BERTs (see ``suggested_pooling``)."""
        from bertnli_helpers.model.pretrained import suggested_pooling

        return suggested_pooling(self.model)

    def run_info(self, **changes: Any):
        """The ``RunInfo`` of a run of this notebook's model and pooling, changed as asked."""
        from bertnli_helpers.train.runs import RunInfo

        return RunInfo(**{"model": self.model, "pooling": self.pooling, **changes})

    def classifier(self, bert: Any, **changes: Any):
        """A new ``BERTClassifier`` on ``bert`` with this notebook's pooling."""
        from bertnli_helpers.model.bert import BERTClassifier

        return BERTClassifier(bert, **{"pooling": self.pooling, **changes})

    def main_run(self, callbacks: Sequence[Any] = (), config: Any = None):
        """The course's main fine-tuning run (notebook 4), re-made only when missing or made with
        other settings, so that notebooks 5 and 6 analyse the same model. ``config`` (default:
        the tuned preset at the profile's size) may be changed, e.g. ``ctx.train_config(lr=3e-4)``:
        the run's fingerprint then differs and it is trained again."""
        from bertnli_helpers.train.runs import finetune_run

        train, dev, test = self.splits()
        folder = (f"{RUNS_DIR}/{MAIN_RUN_PREFIX}{Path(self.model).name}-{self.profile.name}"
                  f"-seed{self.seed}")
        from bertnli_helpers.train.runs import shared_counterpart

        return finetune_run(self.path(folder), self.run_info(), train, dev, test,
                            config or self.train_config(), callbacks=callbacks,
                            keep_checkpoint=False,
                            shared=shared_counterpart(self.path(folder), self.output,
                                                      self.shared))

    def compare(self, name: str, vary: dict[str, Sequence[Any]], *, preset_name: str = "tuned",
                seeds: Sequence[int] | None = None, baseline: dict[str, Any] | None = None,
                info: dict[str, Any] | None = None, train_size: int | str | None = "compare",
                score_on: str = "dev", only: Sequence[dict[str, Any]] | None = None,
                **config_changes: Any):
        """Fine-tune every variant of ``vary`` once per seed at the profile's comparison size,
        and compare each with the baseline on the same pairs (``grids.run_grid``).

        Verdicts are computed on dev by default: a comparison that chooses a setting must not
        look at test. Finished runs are re-used, so running a cell again costs nothing. ``only``
        runs the baseline and just the variants listed, each as the settings it changes (e.g.
        ``[{"pooling": "cls"}, {"model": "scratch"}]``): several one-change comparisons that
        share one baseline, instead of every combination.
        """
        from bertnli_helpers.study.grids import GridSpec, run_grid

        size = {"profile": self.profile.train_size,
                "compare": self.profile.compare_train_size}.get(train_size, train_size)
        spec = GridSpec(self.run_info(**(info or {})),
                        self.train_config(preset_name, compare=True, **config_changes),
                        {key: tuple(values) for key, values in vary.items()},
                        seeds=tuple(seeds if seeds is not None else self.profile.compare_seeds),
                        baseline=baseline, train_size=size, dev_size=self.profile.dev_size,
                        test_size=self.profile.test_size, data_seed=self.seed,
                        data_dir=str(self.data_dir), score_on=score_on,
                        only=tuple(only) if only is not None else None,
                        cell_store=str(self.path("grids/cells")),
                        shared_runs=str(self.shared / "grids/cells") if self.shared else None)
        return run_grid(spec, self.path(f"grids/{name}-{self.profile.name}-seed{self.seed}"),
                        jobs=1)


def show_grid(result: Any) -> None:
    """Display a grid's table and the sentences generated from its verdicts."""
    from IPython.display import Markdown, display

    from bertnli_helpers.study.grids import markdown_table

    constant = result.constant_settings()
    if constant:
        shared = ", ".join(f"`{name}={value}`" for name, value in constant)
        display(Markdown(f"Every run: {shared}"))
    display(Markdown(markdown_table(result.table())))
    display(Markdown("\n".join(f"- {sentence}" for sentence in result.sentences())))


def setup_notebook(
    notebook: str,
    *,
    profile: str = "quick",
    model: str | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    seed: int = 0,
    output_dir: str | None = None,
    precision: str | None = None,
) -> NotebookContext:
    """Resolve a notebook's parameters: profile, model, SNLI folder, device, seed, outputs.

    Says what it chose, so nothing is silently different from what the reader asked for, and says
    once that the train file is a sample (the SampleWarning is silenced for the notebook after).
    """
    import warnings

    import torch

    from bertnli_helpers.data.snli import SampleWarning, resolve_data_dir, train_sample_note
    from bertnli_helpers.devices import resolve_device
    from bertnli_helpers.model.precision import describe_precision
    from bertnli_helpers.train.runs import shared_runs_root

    chosen = get_profile(profile)
    folder = resolve_data_dir(data_dir)
    torch.manual_seed(seed)
    note = train_sample_note(folder)
    warnings.simplefilter("ignore", SampleWarning)  # said once below, not at every read
    ctx = NotebookContext(
        notebook=notebook,
        profile=chosen,
        model=model or chosen.model,
        data_dir=folder,
        device=resolve_device(device),
        seed=seed,
        output=output_dir_for(output_dir),
        precision=precision or chosen.precision,
        shared=shared_runs_root(),
    )
    print(f"profile {chosen.name} | model {ctx.model} | device {ctx.device} | data {folder} | "
          f"outputs {ctx.output}" + (f" | shared runs {ctx.shared}" if ctx.shared else ""))
    print(describe_precision(ctx.precision, ctx.device))
    if note:
        print(note)
    return ctx


def output_dir_for(explicit: str | None) -> Path:
    if explicit:
        folder = Path(explicit)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return output_dir(NOTEBOOK_DIR.parent / "course_output")


def show_source(obj: Any) -> Any:
    """Display the package's own source of a function or class (one source of truth)."""
    import inspect

    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
