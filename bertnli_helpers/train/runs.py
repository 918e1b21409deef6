"""A fine-tuning run's folder: what model and encoding it used, so it can be loaded again.

``run.json`` records the pretrained model, the encoding (``max_len``, truncation) and the
classifier settings; with ``best_model.pt`` beside it, ``load_finetuned(folder)`` rebuilds the
fine-tuned classifier and its tokenizer. Notebook 5 analyses what notebook 4 trained this way,
and ``bertnli evaluate`` / ``predict`` use the same function.

``run_inputs.json`` records everything that decided the run: the ``RunInfo`` as asked, how the
pairs were encoded (the ``encode`` function: whole pairs, or hypotheses only), the
``TrainConfig`` (but its ``device``) and a fingerprint of the train, dev and test pairs.
``finetune_run(reuse=True)`` loads a finished run only when all of them match the call's.

A shared run store (:data:`SHARED_RUNS_ENV`, or a command's ``--shared-runs``) is a folder laid
out like the user's own (a teacher's ``make course`` output, a teacher's grid) that many users
read and nobody writes: a finished run found at the same place there, made with the same inputs,
is loaded from it by the same rule, without writing into or locking it; everything new is
written in the user's own folder.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertnli_helpers.data.dataset import (
    MIN_MAX_LEN,
    SNLIBERTDataset,
    checked_max_len,
    pairs_fingerprint,
)
from bertnli_helpers.data.snli import SNLISplit
from bertnli_helpers.data.tokenization import TextTokenizer
from bertnli_helpers.data.truncation import STRATEGIES, strategy_fingerprint
from bertnli_helpers.devices import resolve_device
from bertnli_helpers.errors import (
    CheckpointError,
    EmptySplitError,
    InputTooLongError,
    SettingError,
    UsageError,
)
from bertnli_helpers.files import LOCK_FILE, atomic_write_json, is_temp_path, run_folder_lock
from bertnli_helpers.model.bert import POOLING_HEADS, BERTClassifier, BertConfig
from bertnli_helpers.model.checkpoints import (
    BEST_WEIGHTS_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    load_best_weights,
    load_checkpoint,
)
from bertnli_helpers.model.inference import evaluate
from bertnli_helpers.model.precision import resolve_precision
from bertnli_helpers.model.pretrained import is_sized_by_run, load_for_run
from bertnli_helpers.train.config import TrainConfig
from bertnli_helpers.train.loop import Callback, check_resumable, fine_tune

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
INPUTS_FILE = "run_inputs.json"
# What a run writes into its folder: removed before a fresh run, so nothing stale survives it.
RUN_FILES = (RUN_FILE, METRICS_FILE, INPUTS_FILE, BEST_WEIGHTS_FILE, CHECKPOINT_FILE,
             HISTORY_FILE, CONFIG_FILE)


@dataclass
class RunInfo:
    """How to rebuild a run's classifier: model name and encoding settings."""

    model: str
    max_len: int = 128
    truncation: str = "longest_first"
    freeze_encoder: bool = False
    pooling: str = "cls"  # what the MLP classifies: a name in model.POOLING_HEADS
    model_config: dict[str, Any] | None = None  # sizes of a model only the run holds ("scratch")

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / RUN_FILE
        atomic_write_json(path, dataclasses.asdict(self))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> RunInfo:
        path = Path(folder) / RUN_FILE
        if not path.exists():
            raise CheckpointError(
                f"{folder} is not a fine-tuning run folder (no {RUN_FILE}); "
                "pass the --output folder of 'bertnli finetune' or of notebook 4"
            )
        fields = read_json(path)
        if isinstance(fields, dict):
            fields.pop("extra", None)  # an empty field older versions wrote and nothing read
        return cls.from_dict(fields, path)

    @classmethod
    def from_dict(cls, raw: Any, source: Path) -> RunInfo:
        """The run's settings as ``run.json`` stores them; anything else names the file."""
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(raw, dict) or "model" not in raw:
            raise CheckpointError(f"{source} does not describe a run (no 'model' setting)")
        unknown = sorted(set(raw) - known)
        if unknown:
            raise CheckpointError(f"{source} has settings this version does not know: "
                                  f"{', '.join(unknown)} (made by a newer bertnli, or edited?)")
        for name, value in raw.items():
            problem = RUN_FIELD_CHECKS[name](value)
            if problem:
                raise CheckpointError(f"{source}: field {problem} (edited by hand?); restore "
                                      "the file or run again")
        return cls(**raw)


def _one_of(names: Callable[[], Any], what: str, field_name: str) -> Callable[[Any], str | None]:
    """A check that a field is a name of a registry (read when checked, so new entries count)."""
    def check(value: Any) -> str | None:
        known = list(names())
        if isinstance(value, str) and value in known:
            return None
        return f"{field_name!r} must be {what} ({', '.join(known)}), not {value!r}"
    return check


def _is(kind: type | tuple[type, ...], what: str, field_name: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        return f"{field_name!r} must be {what}, not {value!r}" if wrong else None
    return check


def _model_sizes_problem(value: Any) -> str | None:
    """``model_config``: null, or BERT sizes of the types ``BertConfig``'s defaults have."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"'model_config' must be an object of model sizes or null, not {value!r}"
    defaults = dataclasses.asdict(BertConfig(vocab_size=1))
    for key, given in value.items():
        if key not in defaults:
            return f"'model_config.{key}' is not a BERT size (known: {', '.join(defaults)})"
        if not _same_kind(given, defaults[key]):
            return f"'model_config.{key}' must be like {defaults[key]!r}, not {given!r}"
    try:
        BertConfig(**value)
    except (TypeError, ValueError) as err:
        return f"'model_config' does not describe a BERT ({err})"
    return None


def _same_kind(given: Any, default: Any) -> bool:
    """Whether a size read from JSON has the kind of its default (a whole number for an int, a
    number for a float or an optional one, text for text); true and false are no numbers."""
    if isinstance(given, bool):
        return isinstance(default, bool)
    if isinstance(default, int) and not isinstance(default, bool):
        return isinstance(given, int)
    if isinstance(default, float) or default is None:
        return given is None or (isinstance(given, int | float) and math.isfinite(given))
    return isinstance(given, type(default))


def _max_len_problem(value: Any) -> str | None:
    try:
        checked_max_len(value)
    except SettingError:
        return f"'max_len' must be a whole number of at least {MIN_MAX_LEN}, not {value!r}"
    return None


# What each field of run.json must hold: a hand-edited wrong type is refused naming the field,
# before any model is built from it.
RUN_FIELD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "model": _is(str, "a model name or path", "model"),
    "max_len": _max_len_problem,
    "truncation": _one_of(lambda: STRATEGIES, "a truncation strategy", "truncation"),
    "freeze_encoder": _is(bool, "true or false", "freeze_encoder"),
    "pooling": _one_of(lambda: POOLING_HEADS, "a pooling head", "pooling"),
    "model_config": _model_sizes_problem,
}


SHARED_RUNS_ENV = "BERTNLI_SHARED_RUNS"


def shared_runs_root(explicit: str | Path | None = None) -> Path | None:
    """The shared run store: ``explicit``, else ``$BERTNLI_SHARED_RUNS``, else none. A store that
    is not a folder is refused, naming it (a typo must not silently train everything again)."""
    chosen = explicit if explicit is not None else os.environ.get(SHARED_RUNS_ENV) or None
    if chosen is None:
        return None
    root = Path(chosen)
    if not root.is_dir():
        where = "--shared-runs" if explicit is not None else f"${SHARED_RUNS_ENV}"
        raise UsageError(f"{where} {root} is not a folder: point it at the folder a teacher's "
                         "run wrote (e.g. the shared course_output), or unset it")
    return root


def shared_counterpart(folder: str | Path, own_root: str | Path,
                       shared_root: str | Path | None) -> Path | None:
    """Where ``folder`` (a run folder under the user's ``own_root``) sits in the shared store."""
    if shared_root is None:
        return None
    try:
        relative = Path(folder).absolute().relative_to(Path(own_root).absolute())
    except ValueError:
        return None
    return Path(shared_root) / relative


def read_json(path: Path) -> Any:
    """A run folder's JSON file; bad JSON is an error that names the file and the line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path} is not UTF-8 text ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}, column "
                              f"{err.colno}); restore the file or run again") from None


def is_finished_run(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / RUN_FILE).exists() and (folder / BEST_WEIGHTS_FILE).exists()


def check_new_run_folder(folder: str | Path) -> None:
    """Refuse to start a new run in ``folder`` when that would replace what someone has there:
    a finished run, an interrupted one (its checkpoint), or files that are not a run of ours.
    Only a folder that is missing, empty, or holds what a run stopped before its first
    checkpoint wrote (``run_inputs.json`` and run files, nothing else) may take a new run."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    if is_finished_run(folder):
        raise CheckpointError(f"{folder} already holds a run; pass --resume to continue it, or "
                              "choose another --output")
    if (folder / CHECKPOINT_FILE).exists():
        step = load_checkpoint(folder).get("step", "?")
        raise CheckpointError(f"{folder} holds an interrupted run at step {step}: --resume to "
                              "continue, or remove it")
    names = {p.name for p in folder.iterdir() if p.name != LOCK_FILE and not is_temp_path(p)}
    if names and not (INPUTS_FILE in names and names <= set(RUN_FILES)):
        raise CheckpointError(
            f"{folder} is not empty and holds no run of bertnli (no {RUN_FILE}; it has "
            f"{', '.join(sorted(names)[:3])}{', ...' if len(names) > 3 else ''}): choose an "
            "empty or new --output folder")


def is_run_file(path: str | Path) -> bool:
    """Whether ``path`` is one of a run folder's own files (its settings, weights, checkpoint,
    history, metrics, lock): what no report or other command may write over."""
    path = Path(path)
    in_a_run = (path.parent / RUN_FILE).exists() or (path.parent / INPUTS_FILE).exists()
    return in_a_run and path.name in (*RUN_FILES, LOCK_FILE)


def evaluation_key(split: str, size: int | None, seed: int) -> str:
    """Where ``metrics.json`` keeps an evaluation on a split: the whole split under its name, a
    sample under its size and seed, so that a 10-pair check never replaces a 300-pair one."""
    return split if size is None else f"{split}-{size}pairs-seed{seed}"


def recorded_inputs(folder: str | Path) -> dict[str, Any]:
    """The ``run_inputs.json`` a resume continues from: every part present, else an error
    naming the file (a resume without it would train on whatever the new options pick)."""
    path = Path(folder) / INPUTS_FILE
    if not path.exists():
        raise CheckpointError(f"cannot resume the run in {folder}: it has no {INPUTS_FILE} to "
                              "say what it was made with; remove the folder and start again")
    saved = _in_current_form(read_json(path))
    parts = ("info", "train_config", "data")
    if not isinstance(saved, dict) or not all(isinstance(saved.get(k), dict) for k in parts):
        raise CheckpointError(f"{path} does not record a run (it needs {', '.join(parts)}); "
                              "restore the file, or remove the folder and start again")
    return saved


def resumed_recipe(folder: str | Path, asked_info: dict[str, Any],
                   asked_config: dict[str, Any], preset: TrainConfig | None = None
                   ) -> tuple[RunInfo, TrainConfig, dict[str, int | None]]:
    """What a resume of the run in ``folder`` continues with: the ``RunInfo`` and
    ``TrainConfig`` its ``run_inputs.json`` records, the settings asked (by field name)
    replacing theirs, so that a different one is listed by the resume's check instead of being
    quietly ignored; ``preset``, a recipe asked for by name, replaces the recorded training
    fields but the seed. Also the sizes of the recorded samples (``train_size``, ...)."""
    saved = recorded_inputs(folder)
    info_fields = {f.name for f in dataclasses.fields(RunInfo)}
    info = RunInfo(**{k: v for k, v in saved["info"].items() if k in info_fields})
    if "model" in asked_info:  # sizes recorded for another model are not this one's
        info.model_config = None
    info = dataclasses.replace(info, **asked_info)
    config_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    recorded = {k: v for k, v in saved["train_config"].items() if k in config_fields}
    if preset is not None:
        recorded.update({k: v for k, v in dataclasses.asdict(preset).items() if k != "seed"})
    config = TrainConfig(**{**recorded, **asked_config})
    sizes = {f"{name}_size": (saved["data"].get(name) or {}).get("pairs")
             for name in ("train", "dev", "test")}  # all pairs or more: the whole split
    return info, config, sizes


def build_classifier(
    info: RunInfo, device: str | torch.device | None = "cpu"
) -> tuple[BERTClassifier, TextTokenizer]:
    """The untrained classifier a run started from (pretrained encoder, new output layer)."""
    bert, tokenizer, _ = load_for_run(info.model, info.model_config)
    net = BERTClassifier(bert, freeze_encoder=info.freeze_encoder, pooling=info.pooling)
    return net.to(resolve_device(device)), tokenizer


def load_finetuned(
    folder: str | Path, device: str | torch.device | None = "cpu"
) -> tuple[BERTClassifier, TextTokenizer, RunInfo]:
    """The best-on-dev classifier of a finished run, in eval mode, with its tokenizer."""
    info = RunInfo.load(folder)
    net, tokenizer = build_classifier(info, "cpu")
    load_best_weights(net, folder)
    return net.to(resolve_device(device)).eval(), tokenizer, info


def read_metrics(folder: str | Path) -> dict[str, Any]:
    """A run's ``metrics.json`` ({} when it has none); one that is not a JSON object of
    metrics (hand-edited) is an error naming the file and the field."""
    path = Path(folder) / METRICS_FILE
    metrics = read_json(path) if path.exists() else {}
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{path} must hold a JSON object of metrics, not a "
                              f"{type(metrics).__name__}; restore the file or run again")
    if not isinstance(metrics.get("evaluations", {}), dict):
        raise CheckpointError(f"{path}: field 'evaluations' must be an object (split: "
                              "figures); restore the file or run again")
    return metrics


def write_metrics(folder: str | Path, metrics: dict[str, Any]) -> Path:
    path = Path(folder) / METRICS_FILE
    existing = read_metrics(folder)
    existing.update(metrics)
    atomic_write_json(path, existing)
    return path


def split_fingerprint(split: SNLISplit | None) -> dict[str, Any] | None:
    """Number of pairs and a short sha1 of their ids, sentences and labels (None: no split)."""
    if split is None:
        return None
    digest = hashlib.sha1(pairs_fingerprint(*split.triple("raw")).encode())
    digest.update("\x1e".join(r.pair_id for r in split.records).encode())
    return {"pairs": len(split), "sha1": digest.hexdigest()[:16]}


Encode = Callable[..., SNLIBERTDataset]
"""How a run turns pairs into a dataset: ``encode(pairs, tokenizer, max_len, truncation)``, as
``SNLIBERTDataset`` (the whole pair) or ``analysis.hypothesis_only_dataset`` (premises emptied)."""


def encoding_name(encode: Encode) -> str:
    """The importable name of ``encode``, which a run's fingerprint records: two runs that encode
    their pairs differently (whole pairs, hypotheses only) are different runs."""
    module = getattr(encode, "__module__", None)
    qualname = getattr(encode, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(
            f"encode must be a module-level function or class (not {encode!r}): a run's "
            "fingerprint records its name, so that a changed encoding is never re-used"
        )
    return f"{module}.{qualname}"


DEFAULT_ENCODING = encoding_name(SNLIBERTDataset)


def run_inputs(info: RunInfo, train: SNLISplit, dev: SNLISplit, test: SNLISplit | None,
               config: TrainConfig, encode: Encode = SNLIBERTDataset) -> dict[str, Any]:
    """What decides a run's result, as ``run_inputs.json`` stores it (``device`` left out,
    ``precision`` as it resolves here: "auto" is bf16 on one machine and fp32 on another)."""
    train_config = dataclasses.asdict(config)
    device = resolve_device(train_config.pop("device"))
    train_config["precision"] = resolve_precision(config.precision, device)
    info_inputs = _info_inputs({**dataclasses.asdict(info), "encode": encoding_name(encode)})
    if info.truncation in STRATEGIES and (code := strategy_fingerprint(info.truncation)):
        info_inputs["truncation_code"] = code  # a student's strategy: its code decides the run
    inputs = {"info": info_inputs,
              "train_config": train_config,
              "data": {name: split_fingerprint(split)
                       for name, split in (("train", train), ("dev", dev), ("test", test))}}
    return json.loads(json.dumps(inputs))  # compared with what JSON gives back


def _info_inputs(info: dict[str, Any]) -> dict[str, Any]:
    """A run's ``info`` as it decides the run: sizes given for a model that brings its own
    (anything but ``scratch``) are ignored by the run, so they are left out."""
    if not is_sized_by_run(str(info.get("model"))):
        info["model_config"] = None
    return info


def stored_run_metrics(folder: str | Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of the finished run in ``folder`` if it was made with exactly ``wanted``
    (:func:`run_inputs`), even when its weights were deleted to save disk: what a caller that
    keeps the run's scores (a grid) needs to skip it. None otherwise."""
    folder = Path(folder)
    if not (folder / RUN_FILE).exists() or _differences(saved_inputs(folder), wanted):
        return None
    try:
        return json.loads((folder / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None


def saved_inputs(folder: str | Path) -> dict[str, Any] | None:
    """The ``run_inputs.json`` of a run folder; None when missing or unreadable (old runs)."""
    try:
        saved = json.loads((Path(folder) / INPUTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return _in_current_form(saved)


def _in_current_form(saved: Any) -> Any:
    """Inputs saved by older versions, as this one writes them, so their runs are still re-used:
    those had an empty ``info.extra``, always encoded whole pairs and trained on cross-entropy."""
    info = saved.get("info") if isinstance(saved, dict) else None
    if isinstance(info, dict):
        if info.get("extra") == {}:
            del info["extra"]
        info.setdefault("encode", DEFAULT_ENCODING)
        _info_inputs(info)
    train_config = saved.get("train_config") if isinstance(saved, dict) else None
    if isinstance(train_config, dict):
        train_config.setdefault("objective", "cross_entropy")
    return saved


def _differences(saved: dict[str, Any] | None, wanted: dict[str, Any],
                 parts: Sequence[str] = ("info", "train_config", "data")) -> list[str]:
    """The settings that differ between a saved run and this call ('everything': none saved)."""
    if not isinstance(saved, dict):
        return [f"everything (no readable {INPUTS_FILE})"]
    found = []
    for part in parts:
        old, new = saved.get(part), wanted[part]
        if not isinstance(old, dict):
            found.append(part)
            continue
        found += [f"{part}.{k}: {old.get(k)!r} -> {new.get(k)!r}"
                  for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return found


def check_splits(train: SNLISplit, dev: SNLISplit, test: SNLISplit | None) -> None:
    """Every split given must hold pairs: a run on none reports nothing true."""
    for name, split in (("train", train), ("dev", dev), ("test", test)):
        if split is not None and len(split) == 0:
            raise EmptySplitError(
                f"the {name} split ({split.path}) has no usable pairs (an empty file, or only "
                "pairs without a gold label): point the data folder at a complete SNLI file")


def check_max_len(info: RunInfo, bert: Any) -> None:
    """Refuse a ``max_len`` the model has no positions for before any pair is encoded."""
    limit = bert.config.max_len
    if info.max_len > limit:
        raise InputTooLongError(f"max_len={info.max_len} is longer than model {info.model}'s "
                                f"{limit} positions: use a max_len of at most {limit}")


def _clear_run_files(folder: Path) -> None:
    """Remove what an earlier run wrote (only the run's own files: nothing else is touched)."""
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)


@dataclass
class RunOutcome:
    """A finished run: the best-on-dev classifier, its tokenizer, metrics and history, how it
    was made (``info``) and where it is saved (``folder``)."""

    net: BERTClassifier
    tokenizer: TextTokenizer
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    reused: bool
    info: RunInfo
    folder: Path


def _holding_its_folder(function: Callable[..., RunOutcome]) -> Callable[..., RunOutcome]:
    """Run ``function(folder, ...)`` as the folder's only writer (see ``run_folder_lock``)."""
    @functools.wraps(function)
    def locked(folder: str | Path, *args: Any, **kwargs: Any) -> RunOutcome:
        with run_folder_lock(folder):
            return function(folder, *args, **kwargs)
    return locked


@_holding_its_folder
def finetune_run(
    folder: str | Path,
    info: RunInfo,
    train: SNLISplit,
    dev: SNLISplit,
    test: SNLISplit | None,
    config: TrainConfig,
    *,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    reuse: bool = True,
    keep_checkpoint: bool = True,
    bias_probs: Any = None,
    encode: Encode = SNLIBERTDataset,
    shared: str | Path | None = None,
) -> RunOutcome:
    """Fine-tune ``info.model`` into ``folder`` and evaluate it on test.

    With ``reuse``, a run finished there is loaded instead of trained again (how notebooks share
    runs), but only when it was made with the same ``info``, ``config`` (its ``device`` aside) and
    train/dev/test pairs; any other run there (or one too old to say) is replaced by a new one.
    ``resume`` continues an interrupted run from its ``checkpoint.pt``; its pairs and ``info`` must
    be this call's, and so must its recipe. ``keep_checkpoint=False`` deletes that (large)
    resumable checkpoint once the run is finished; ``best_model.pt`` stays, which is all
    ``load_finetuned`` needs. The folder is locked for the call: a second writer is refused at
    once with the holder's pid. ``encode`` makes the datasets from the pairs (see ``Encode``): a
    hypothesis-only run passes ``analysis.hypothesis_only_dataset``, and its fingerprint says so.
    ``bias_probs``: the bias expert's probabilities of the train pairs, for a debiasing
    ``config.objective``; their fingerprint is part of the run's data, so a run is re-used (or
    resumed) only with the same bias expert. ``shared``: this run's folder in a read-only shared
    store (see :func:`shared_counterpart`); with ``reuse``, a finished run there made with the
    same inputs is loaded from it (nothing is written there, nor locked) before ``folder`` is
    looked at.
    """
    folder = Path(folder)
    check_splits(train, dev, test)
    resolve_device(config.device)  # an unavailable device: refused before anything is written
    wanted = _wanted_inputs(info, train, dev, test, config, encode, bias_probs)
    if reuse and shared is not None and is_reusable(shared, wanted):
        return _reuse(Path(shared), config, keep_checkpoint=True)  # never delete from it
    saved = saved_inputs(folder)
    finished = is_finished_run(folder) and (folder / METRICS_FILE).exists()
    if reuse and is_reusable(folder, wanted):
        return _reuse(folder, config, keep_checkpoint)
    resume = resume and not (reuse and finished)  # a finished run of other settings: replaced
    if resume and saved is not None:  # older folders: fine_tune's own checks only
        _check_resume(folder, saved, wanted, config)
    info, net, tokenizer = _new_classifier(info, config)
    if not resume:
        _clear_run_files(folder)  # no stale checkpoint, best weights or metrics survive
    folder.mkdir(parents=True, exist_ok=True)
    metrics, history = _train_and_score(
        folder, net, tokenizer, info, (train, dev, test), config, encode,
        callbacks=[_RecordInputs(folder / INPUTS_FILE, wanted), *callbacks],
        resume=resume, bias_probs=bias_probs)
    info.save(folder)
    write_metrics(folder, metrics)
    if not keep_checkpoint:
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
    return RunOutcome(net.eval(), tokenizer, metrics, history, reused=False, info=info,
                      folder=folder)


def _new_classifier(info: RunInfo, config: TrainConfig):
    """A copy of ``info`` (the caller's stays as asked) and its classifier, with the new output
    layer seeded so that it starts the same in every run."""
    info = dataclasses.replace(info)
    bert, tokenizer, info.model_config = load_for_run(info.model, info.model_config,
                                                      seed=config.seed)
    torch.manual_seed(config.seed)
    net = BERTClassifier(bert, freeze_encoder=info.freeze_encoder, pooling=info.pooling)
    check_max_len(info, bert)
    return info, net, tokenizer


def _train_and_score(folder: Path, net: BERTClassifier, tokenizer: TextTokenizer, info: RunInfo,
                     splits: tuple[SNLISplit, SNLISplit, SNLISplit | None], config: TrainConfig,
                     encode: Encode, *, callbacks: Sequence[Callback], resume: bool,
                     bias_probs: Any) -> tuple[dict[str, Any], list]:
    """Fine-tune on train (choosing on dev), then score test: the run's metrics and history."""
    train, dev, test = splits
    encoding = {"max_len": info.max_len, "truncation": info.truncation}
    train_set, dev_set = encode(train, tokenizer, **encoding), encode(dev, tokenizer, **encoding)
    result = fine_tune(net, train_set, dev_set, config, output_dir=folder, callbacks=callbacks,
                       resume_from=folder if resume else None, bias_probs=bias_probs)
    metrics = _run_metrics(info, result, len(train_set))
    if test is not None:
        test_metrics = evaluate(net, encode(test, tokenizer, **encoding),
                                precision=config.precision)
        metrics.update(test_accuracy=test_metrics["accuracy"], test_loss=test_metrics["loss"])
    return metrics, result.history


def is_reusable(folder: str | Path, wanted: dict[str, Any]) -> bool:
    """The rule for re-using a run: finished in ``folder``, with its metrics, made with exactly
    ``wanted`` (its device aside). Reads only."""
    folder = Path(folder)
    return (is_finished_run(folder) and (folder / METRICS_FILE).exists()
            and not _differences(saved_inputs(folder), wanted))


def _wanted_inputs(info: RunInfo, train: SNLISplit, dev: SNLISplit, test: SNLISplit | None,
                   config: TrainConfig, encode: Encode, bias_probs: Any) -> dict[str, Any]:
    """Everything that decides a run, as ``run_inputs.json`` records it (the bias expert's
    probabilities by their digest)."""
    wanted = run_inputs(info, train, dev, test, config, encode)
    if bias_probs is not None:
        digest = hashlib.sha1(np.ascontiguousarray(bias_probs, dtype=np.float32).tobytes())
        wanted["data"]["bias"] = {"sha1": digest.hexdigest()[:16]}
    return wanted


def _reuse(folder: Path, config: TrainConfig, keep_checkpoint: bool) -> RunOutcome:
    """The finished run in ``folder``, loaded instead of trained again."""
    net, tokenizer, saved_info = load_finetuned(
        folder, device=config.device if config.device != "auto" else None)
    history = json.loads((folder / HISTORY_FILE).read_text())
    if not keep_checkpoint:
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
    return RunOutcome(net, tokenizer, json.loads((folder / METRICS_FILE).read_text()),
                      history, reused=True, info=saved_info, folder=folder)


def _check_resume(folder: Path, saved: dict[str, Any], wanted: dict[str, Any],
                  config: TrainConfig) -> None:
    """Refuse, before anything is written, to resume a run made with other settings or pairs
    (its test pairs may differ: they are only scored at the end)."""
    differ = _differences(saved, wanted, ("info",)) + [
        d for d in _differences(saved, wanted, ("data",)) if not d.startswith("data.test")]
    if differ:
        raise CheckpointError(f"cannot resume the run in {folder}: it was made with other "
                              f"settings or pairs ({'; '.join(differ)})")
    if isinstance(saved.get("train_config"), dict):
        check_resumable(saved["train_config"], config, folder / INPUTS_FILE)


def _run_metrics(info: RunInfo, result: Any, train_pairs: int) -> dict[str, Any]:
    """What ``metrics.json`` records of a fine-tuning result."""
    return {
        "model": info.model,
        "precision": result.precision,
        "best_epoch": result.best_epoch + 1,
        "dev_accuracy": result.best_dev_accuracy,
        "train_pairs": train_pairs,
        "train_seconds": result.train_seconds,
        "examples_per_s": _mean([r["examples_per_s"] for r in result.history
                                 if "examples_per_s" in r]),
    }


class _RecordInputs(Callback):
    """Writes ``run_inputs.json`` as training begins: after a resume was accepted (a refused one
    leaves the folder as it was) and before the first step, so that resuming an interrupted run
    can check it continues the same one."""

    def __init__(self, path: Path, inputs: dict[str, Any]) -> None:
        self.path, self.inputs = path, inputs

    def on_train_begin(self, state) -> None:
        if state.is_main:
            atomic_write_json(self.path, self.inputs)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
