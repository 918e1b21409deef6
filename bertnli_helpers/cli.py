"""The ``bertnli`` command: download, finetune, pretrain, compare, evaluate, predict,
truncation-report, course, release.

Every subcommand explains itself with ``--help``; the choices it offers (pooling heads, models,
splits, strategies, profiles) are read from the package's registries. Bad arguments, files and
folders end with a one-line error and exit code 2 (:func:`main` catches the package's own errors
and the I/O errors of the user's files, nothing else, so a bug still shows its traceback); output
files are written atomically, so a failed command leaves nothing half-written, and a run folder
has one writer at a time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bertnli_helpers import hub
from bertnli_helpers.course.runner import PROFILES
from bertnli_helpers.data.nli_files import LABEL_ID_ORDERS
from bertnli_helpers.data.snli import SPLITS
from bertnli_helpers.data.truncation import STRATEGIES
from bertnli_helpers.errors import (
    BertNLIError,
    NonFiniteError,
    SettingError,
    UsageError,
    finite_number,
)
from bertnli_helpers.model.bert import POOLING_HEADS
from bertnli_helpers.model.precision import PRECISIONS
from bertnli_helpers.model.pretrained import NAMED_MODELS
from bertnli_helpers.study.backends import BACKENDS
from bertnli_helpers.study.grids import SETTINGS
from bertnli_helpers.train.pretraining import PRESETS as PRETRAIN_PRESETS

EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return value


def _whole_number(text: str) -> int:
    """``text`` as an int, or argparse's one-line error that quotes it ("3.5" is not one)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _max_len(text: str) -> int:
    from bertnli_helpers.data.dataset import checked_max_len

    try:
        return checked_max_len(_whole_number(text))
    except SettingError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive_float(text: str) -> float:
    """A finite number above zero (a learning rate): NaN, inf, 0 and -1 are refused here,
    with the value, before any data are read."""
    try:
        value = finite_number(float(text), "the value")
    except ValueError:  # float()'s own error, or NonFiniteError
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text!r}")
    return value


def _output_folder(text: str) -> str:
    """An ``--output`` that is not an existing file: refused by name before any work."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder: choose a folder")
    return text


def _strategy_name(text: str) -> str:
    """A truncation strategy's name as ``truncation.get_strategy`` reads it ('-' as '_')."""
    return text.strip().replace("-", "_")


# -- download --------------------------------------------------------------------------------
def cmd_download(args: argparse.Namespace) -> int:
    if args.list or not args.names:
        for name, res in hub.REGISTRY.items():
            print(f"{name:12s} {res.url}  sha1={res.sha1}")
        return 0
    for name in args.names:
        path = hub.download_extract(name)
        print(f"{name}: {path}")
    return 0


# -- finetune --------------------------------------------------------------------------------
def recipe(args: argparse.Namespace):
    """The ``RunInfo`` and ``TrainConfig`` that a finetune or compare command line asks for."""
    from bertnli_helpers.model.pretrained import suggested_pooling
    from bertnli_helpers.train.config import preset
    from bertnli_helpers.train.runs import RunInfo

    changes = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "seed", "device",
                                             "max_steps", "eval_every", "checkpoint_every",
                                             "precision")
               if getattr(args, k, None) is not None}
    pooling = suggested_pooling(args.model) if args.pooling == "auto" else args.pooling
    info = RunInfo(model=args.model, max_len=args.max_len, truncation=args.truncation,
                   freeze_encoder=args.freeze_encoder, pooling=pooling)
    return info, preset(args.preset, **changes)


def recipe_to_resume(out: Path, args: argparse.Namespace):
    """The recipe of the run being resumed in ``out`` (``runs.resumed_recipe``): what its
    ``run_inputs.json`` records, the options this command line names replacing their recorded
    values; ``args`` then samples the pairs as the run sampled them."""
    import dataclasses

    from bertnli_helpers.train.runs import resumed_recipe

    given = given_options(args)
    info, config = recipe(args)
    asked_info = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)
                  if f.name in given}
    asked_config = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                    if f.name in given or f.name == "device"}
    info, config, sizes = resumed_recipe(out, asked_info, asked_config,
                                         preset=config if "preset" in given else None)
    for name, value in {**sizes, "seed": config.seed}.items():
        if name not in given:
            setattr(args, name, value)
    return info, config


def given_options(args: argparse.Namespace) -> set[str]:
    """The options the command line of ``args`` names itself (defaults left out)."""
    sub = argparse.ArgumentParser().add_subparsers()
    SUBCOMMAND_PARSERS[args.command](sub)
    parser = sub.choices[args.command]
    absent = object()  # not a string: argparse would run a string default through its type
    parser.set_defaults(**dict.fromkeys(vars(args), absent))
    for action in parser._actions:  # these add to their default: theirs must stay None
        if isinstance(action, _BUILDS_ON_DEFAULT):
            action.default = None
    argv = args.argv[args.argv.index(args.command) + 1:]
    return {k for k, v in vars(parser.parse_args(argv)).items() if v is not absent and
            v is not None}


_BUILDS_ON_DEFAULT = (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction)


def cmd_finetune(args: argparse.Namespace) -> int:
    from bertnli_helpers.devices import resolve_device
    from bertnli_helpers.files import run_folder_lock

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {out} is a file, not a folder: choose a folder for the run")
    resolve_device(args.device)  # an unavailable device: refused before any data are read
    with run_folder_lock(out):  # the whole command, checks included: one writer per folder
        return _finetune_in(out, args)


def _finetune_in(out: Path, args: argparse.Namespace) -> int:
    from bertnli_helpers.course.callbacks import ProgressBar
    from bertnli_helpers.data.snli import sample_splits
    from bertnli_helpers.model.checkpoints import CHECKPOINT_FILE
    from bertnli_helpers.train.runs import check_new_run_folder, finetune_run, write_metrics

    if not args.resume:
        check_new_run_folder(out)  # nothing a user has there is replaced
    elif not (out / CHECKPOINT_FILE).exists():
        raise UsageError(f"--resume: no {CHECKPOINT_FILE} in {out} to continue from")
    info, config = recipe_to_resume(out, args) if args.resume else recipe(args)
    train, dev, test = sample_splits(args.data_dir, train_size=args.train_size,
                                     dev_size=args.dev_size, test_size=args.test_size,
                                     seed=args.seed)
    print(f"model {args.model}; train {len(train)}, dev {len(dev)}, test {len(test)} pairs; "
          f"preset {args.preset}", flush=True)
    started = time.perf_counter()
    outcome = finetune_run(out, info, train, dev, test, config, callbacks=[ProgressBar()],
                           resume=args.resume, reuse=False)
    metrics = outcome.metrics
    write_metrics(out, {"preset": args.preset, "wall_seconds": time.perf_counter() - started})
    print(f"dev accuracy {metrics['dev_accuracy']:.4f} (best epoch {metrics['best_epoch']}), "
          f"test accuracy {metrics['test_accuracy']:.4f}; run saved in {out}")
    return 0


# -- pretrain --------------------------------------------------------------------------------
def cmd_pretrain(args: argparse.Namespace) -> int:
    from bertnli_helpers.files import run_folder_lock

    with run_folder_lock(args.output):  # one writer per folder, its checks included
        return _pretrain_in(args)


def _pretrain_in(args: argparse.Namespace) -> int:
    from bertnli_helpers.course.callbacks import ProgressBar
    from bertnli_helpers.data.snli import read_records
    from bertnli_helpers.train.pretraining import (
        PRETRAIN_CHECKPOINT,
        new_pretrainer,
        prepare_pretraining,
        preset,
        pretrain,
        save_pretrained,
    )

    out = Path(args.output)
    if not args.resume and (out / PRETRAIN_CHECKPOINT).exists():
        raise UsageError(f"{out} already holds a pretraining run; pass --resume to continue it, "
                         "or choose another --output")
    changes = {k: getattr(args, k) for k in ("steps", "max_len", "batch_size", "lr", "train_size",
                                             "min_freq", "checkpoint_every", "seed", "device")
               if getattr(args, k) is not None}
    config = preset(args.preset, **changes)
    vocab, examples = prepare_pretraining(read_records(args.data_dir, "train"), config)
    print(f"pretraining on {len(examples):,} sentence pairs of the train split; vocabulary "
          f"{len(vocab):,} words; {config.steps} steps of {config.batch_size}", flush=True)
    model = new_pretrainer(config, len(vocab))
    result = pretrain(model, examples, config, pad_id=vocab.pad_id, output_dir=out,
                      resume=args.resume, callbacks=[ProgressBar("pretraining")])
    saved = save_pretrained(model, vocab, out)
    last = result.history[-1] if result.history else {}
    print(f"MLM loss {last.get('mlm_loss', float('nan')):.3f}, NSP loss "
          f"{last.get('nsp_loss', float('nan')):.3f} at step {result.steps}")
    print(f"book-format checkpoint: {saved.zip_path} (sha1 {saved.sha1}); load it with "
          f"load_pretrained('{saved.zip_path}') or --model {saved.zip_path}")
    return 0


# -- compare ---------------------------------------------------------------------------------
def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers separated by commas, "
                                         f"not {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"a seed is repeated in {text!r}")
    return seeds


def cmd_compare(args: argparse.Namespace) -> int:
    if args.gather:
        return gather_command(args)
    if not args.vary:
        raise UsageError("give --vary NAME=V1,V2 (the settings to compare), or --gather the "
                         "grid folders of a class")
    from bertnli_helpers.study.backends import BackendOptions
    from bertnli_helpers.study.grids import (
        GridSpec,
        markdown_table,
        parse_baseline,
        parse_vary,
        run_grid,
        variant_label,
    )
    from bertnli_helpers.train.runs import shared_runs_root

    vary = parse_vary(args.vary)
    baseline = parse_baseline(args.baseline or [])
    info, config = recipe(args)
    shared = shared_runs_root(args.shared_runs)
    spec = GridSpec(info, config, vary, seeds=args.seeds or (0,), baseline=baseline or None,
                    train_size=args.train_size, dev_size=args.dev_size,
                    test_size=args.test_size, data_seed=args.seed, data_dir=args.data_dir,
                    score_on=args.score_on, shared_runs=str(shared) if shared else None)
    cells = len(spec.variants()) * len(spec.seeds)
    print(f"grid: {len(spec.variants())} variants x {len(spec.seeds)} seeds = {cells} runs; "
          f"baseline {variant_label(spec.baseline_variant())}", flush=True)

    def report(cell) -> None:
        done = "re-used" if cell.reused else "trained"
        print(f"{variant_label(cell.variant)}, seed {cell.seed}: {done}, {args.score_on} accuracy "
              f"{cell.correct.mean():.4f}", flush=True)

    options = BackendOptions(jobs=args.jobs, device=args.device, ray_address=args.ray_address,
                             cpus_per_cell=args.cpus_per_cell)
    result = run_grid(spec, args.output, on_cell=report, backend=args.backend, options=options)
    print(markdown_table(result.table()))
    for sentence in result.sentences():
        print(sentence)
    print(f"tables in {Path(args.output)}: results.csv, results.md, verdicts.csv, verdicts.md")
    if len(spec.seeds) == 1:
        print(CLASS_HANDOUT)
    return 0


CLASS_HANDOUT = (
    "For a class: give every student this command with their own seed (student n: --seeds n) "
    "and their own --output, collect the folders, then merge them, every seed once: "
    "bertnli compare --gather FOLDER [FOLDER ...] --output CLASS")


def gather_command(args: argparse.Namespace) -> int:
    """``compare --gather``: the students' grids merged; the recipe is theirs, not the options."""
    from bertnli_helpers.study.gather import gather
    from bertnli_helpers.study.grids import markdown_table

    given = sorted(f"--{name.replace('_', '-')}" for name in given_options(args) - {"gather",
                                                                                  "output"})
    if given:
        raise UsageError(f"{', '.join(given)}: not with --gather (the gathered grids' own "
                         "recipe, variants and seeds are merged)")
    result, duplicates = gather(args.gather, args.output)
    seeds = sorted({cell.seed for cell in result.cells})
    print(f"gathered {len(result.cells)} runs from {len(args.gather)} grids: seeds "
          f"{', '.join(map(str, seeds))}" +
          (f"; {duplicates} duplicate run(s) dropped" if duplicates else ""))
    print(markdown_table(result.table()))
    for sentence in result.sentences():
        print(sentence)
    print(f"tables in {Path(args.output)}: results.csv, results.md, verdicts.csv, verdicts.md, "
          "grid.png")
    return 0


# -- evaluate / predict ----------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.file:
        return evaluate_file_command(args)
    only_file = [f"--{name.replace('_', '-')}" for name in ("by", "label_ids", "out", "predictions")
                 if getattr(args, name)]
    if only_file:
        raise UsageError(f"{', '.join(only_file)}: only with --file (a split's accuracy has no "
                         "fields to break down and is recorded in the run's metrics.json)")
    from bertnli_helpers.data.dataset import SNLIBERTDataset
    from bertnli_helpers.data.snli import read_records
    from bertnli_helpers.files import run_folder_lock
    from bertnli_helpers.model.inference import evaluate
    from bertnli_helpers.train.runs import (
        evaluation_key,
        load_finetuned,
        read_metrics,
        write_metrics,
    )

    net, tokenizer, info = load_finetuned(args.run, device=args.device)
    split = read_records(args.data_dir, args.split).sample(args.size, args.seed)
    data = SNLIBERTDataset(split, tokenizer, info.max_len, info.truncation)
    metrics = evaluate(net, data, precision=_say_precision(args.precision, net))
    with run_folder_lock(args.run):  # the run's own figures stay; this one is added beside them
        evaluations = read_metrics(args.run).get("evaluations", {})
        key = evaluation_key(args.split, args.size, args.seed)
        evaluations[key] = {**metrics, "sample": args.size, "seed": args.seed}
        write_metrics(args.run, {"evaluations": evaluations})
    print(json.dumps({"split": args.split, **metrics}, indent=2))
    return 0


def _say_precision(precision: str, net) -> str:
    """Print (to stderr, so stdout stays data) which arithmetic scores the pairs; the choice."""
    from bertnli_helpers.model.inference import model_device
    from bertnli_helpers.model.precision import describe_precision

    print(describe_precision(precision, model_device(net)), file=sys.stderr)
    return precision


def evaluate_file_command(args: argparse.Namespace) -> int:
    """``evaluate --file``: the report goes to its own file, never into the run's metrics."""
    from bertnli_helpers.files import run_folder_lock
    from bertnli_helpers.study.robustness import evaluate_file, report_paths, write_report

    json_path, predictions_path = report_paths(args.run, args.file, args.out, args.predictions,
                                               size=args.size, seed=args.seed)
    report = evaluate_file(args.run, args.file, label_ids=args.label_ids, size=args.size,
                           seed=args.seed, device=args.device, by=args.by or (),
                           precision=args.precision)
    with run_folder_lock(args.run):  # the run's one writer while its report is written
        content = write_report(report, json_path, predictions_path, args.by or ())
    print(json.dumps(content, indent=2))
    print(f"accuracy {content['accuracy']:.4f} against {content['majority_rate']:.4f} for always "
          f"saying {content['majority_label']} (precision {content['precision']})",
          file=sys.stderr)
    if "note" in content:
        print(f"note: {content['note']}", file=sys.stderr)
    print(f"report in {json_path}, one line per pair in {predictions_path}", file=sys.stderr)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from bertnli_helpers.data.dataset import SNLIBERTDataset
    from bertnli_helpers.data.nli_files import read_pairs
    from bertnli_helpers.data.snli import LABEL_NAMES
    from bertnli_helpers.model.inference import predict
    from bertnli_helpers.train.runs import load_finetuned

    if args.file:
        premises, hypotheses = read_pairs(args.file)
    elif args.premise and args.hypothesis:
        premises, hypotheses = [args.premise], [args.hypothesis]
    else:
        raise UsageError("give a PREMISE and a HYPOTHESIS, or --file with one pair per line")
    net, tokenizer, info = load_finetuned(args.run, device=args.device)
    premises = [tokenizer.prepare_typed(p) for p in premises]
    hypotheses = [tokenizer.prepare_typed(h) for h in hypotheses]
    data = SNLIBERTDataset((premises, hypotheses, [0] * len(premises)), tokenizer,
                           info.max_len, info.truncation, cache=False)
    truncated = int(data.encoded.truncated.sum())
    if truncated:
        print(f"note: {truncated} pair(s) were longer than max_len={info.max_len} and truncated "
              f"({info.truncation})", file=sys.stderr)
    probs = predict(net, data, precision=_say_precision(args.precision, net))
    if not np.isfinite(probs).all():  # a model whose weights hold NaN: say so, print no nan
        raise NonFiniteError(f"the weights of {args.run} give non-finite probabilities "
                             "(trained to NaN?): fine-tune it again with a lower --lr")
    # csv quotes a sentence holding a tab, newline or quote, so every row stays one record
    out = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    out.writerow(["label", *LABEL_NAMES, "premise", "hypothesis"])
    for p, h, row in zip(premises, hypotheses, probs):
        out.writerow([LABEL_NAMES[int(row.argmax())], *(f"{x:.4f}" for x in row), p, h])
    return 0


# -- truncation-report -----------------------------------------------------------------------
def cmd_truncation_report(args: argparse.Namespace) -> int:
    from bertnli_helpers.data.snli import read_records
    from bertnli_helpers.data.truncation import truncation_summary
    from bertnli_helpers.model.pretrained import load_pretrained

    _, tokenizer = load_pretrained(args.model, device="cpu")
    split = read_records(args.data_dir, args.split).sample(args.size, args.seed)
    premises, hypotheses, _ = split.triple(tokenizer.text_form)
    p_lens = [len(x) for x in tokenizer.encode_batch(premises)]
    h_lens = [len(x) for x in tokenizer.encode_batch(hypotheses)]
    print(f"{args.split}: {len(p_lens)} pairs, {args.model} tokens, packed length = p + h + 3")
    print(f"{'max_len':>7} {'strategy':24} {'truncated':>9} {'p dropped':>9} {'h dropped':>9}")
    for max_len in args.max_len:
        for row in truncation_summary(p_lens, h_lens, max_len, args.strategies):
            print(f"{max_len:>7} {row['strategy']:24} {row['truncated_share']:>9.2%} "
                  f"{row['premise_tokens_dropped']:>9} {row['hypothesis_tokens_dropped']:>9}")
    return 0


# -- course ----------------------------------------------------------------------------------
def cmd_course(args: argparse.Namespace) -> int:
    from bertnli_helpers.course.runner import course_notebooks, run_course
    from bertnli_helpers.train.runs import SHARED_RUNS_ENV, shared_runs_root

    try:
        course_notebooks(args.notebooks)  # an unknown name: refused before any folder is made
    except ValueError as err:
        raise UsageError(str(err)) from None
    shared = shared_runs_root(args.shared_runs)
    if shared is not None:  # every notebook's kernel inherits it
        os.environ[SHARED_RUNS_ENV] = str(shared.resolve())
    summary = run_course(
        profile=args.profile, output=Path(args.output), notebooks=args.notebooks,
        model=args.model, data_dir=args.data_dir, device=args.device, html=not args.no_html,
        keep_runs=args.keep_runs, precision=args.precision,
    )
    return 0 if all(row["status"] == "ok" for row in summary) else 1


# -- release ---------------------------------------------------------------------------------
def cmd_release(args: argparse.Namespace) -> int:
    from bertnli_helpers.course.release import release
    from bertnli_helpers.course.runner import course_notebooks

    try:
        notebooks = course_notebooks(args.notebooks)
    except ValueError as err:
        raise UsageError(str(err)) from None
    written = release(notebooks, args.output)
    print(f"student edition of {len(written)} notebooks in {Path(args.output)} "
          "(solutions removed, outputs cleared)")
    return 0


# -- parser ----------------------------------------------------------------------------------
def _precision_arg(q: argparse.ArgumentParser) -> None:
    q.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="arithmetic: auto (default: bf16 autocast on a GPU or a CPU that "
                   "computes bf16 natively, else fp32), fp32, bf16, fp16 (GPU only)")


def _shared_runs_arg(q: argparse.ArgumentParser, what: str) -> None:
    q.add_argument("--shared-runs", metavar="DIR",
                   help=f"a read-only run store ({what}) laid out like --output: finished runs "
                   "made with the same settings are re-used from it, nothing is written there "
                   "(default: $BERTNLI_SHARED_RUNS)")


def _data_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--data-dir", help="SNLI folder (default: $BERTNLI_DATA_DIR or download)")
    q.add_argument("--seed", type=_whole_number, default=0, help="seed for sampling and training")
    q.add_argument("--device", default=None, help="cpu, cuda, cuda:1 or auto (default)")


def _recipe_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--model", default="minilm",
                   help=f"{', '.join(NAMED_MODELS)}, or a model folder or zip "
                   "(default: minilm, which works offline)")
    _data_args(q)
    q.add_argument("--train-size", type=_positive_int, help="random sample of train pairs")
    q.add_argument("--dev-size", type=_positive_int, help="random sample of dev pairs")
    q.add_argument("--test-size", type=_positive_int, help="random sample of test pairs")
    q.add_argument("--max-len", type=_max_len, default=128,
                   help="packed length limit (default 128)")
    q.add_argument("--truncation", default="longest_first", type=_strategy_name,
                   choices=list(STRATEGIES), help="pair truncation strategy")
    q.add_argument("--preset", default="tuned", help="recipe: tuned (default) or book")
    q.add_argument("--epochs", type=_positive_int)
    q.add_argument("--batch-size", type=_positive_int)
    q.add_argument("--lr", type=_positive_float, help="peak learning rate")
    q.add_argument("--max-steps", type=_positive_int, help="stop after this many steps")
    q.add_argument("--eval-every", type=_positive_int, help="also evaluate every N steps")
    q.add_argument("--checkpoint-every", type=_positive_int,
                   help="checkpoint every N steps")
    q.add_argument("--freeze-encoder", action="store_true",
                   help="keep the pretrained encoder as loaded and train only the classifier "
                   "on top (of the --pooling head's vector)")
    q.add_argument("--pooling", default="auto", choices=["auto", *POOLING_HEADS],
                   help="what the classifier reads: the <cls> state (cls, the book's), the "
                   "mean of all token states (mean), premise and hypothesis means compared "
                   "(pair), or another registered head; 'auto' (default): the one that "
                   "suits the model, 'pair' for minilm, 'cls' for the book's BERTs")
    _precision_arg(q)


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fetch SNLI or a book checkpoint into the cache")
    p.add_argument("names", nargs="*", help=f"resource names: {', '.join(hub.REGISTRY)}")
    p.add_argument("--list", action="store_true", help="list the known resources")
    p.set_defaults(func=cmd_download)


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a pretrained BERT on SNLI",
                       description="Fine-tune, pick the best epoch on dev, report test accuracy. "
                                   "The output folder gets checkpoint, config, history, metrics.")
    _recipe_args(p)
    p.add_argument("--output", required=True, type=_output_folder, help="folder for the run")
    p.add_argument("--resume", action="store_true", help="continue the run in --output")
    p.set_defaults(func=cmd_finetune)


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain", help="pretrain a small book-format BERT (MLM + NSP) on SNLI's train sentences",
        description="Build the book's word vocabulary and masked-LM / next-sentence examples from "
        "the train split's sentences only, pretrain a BERT of the preset's sizes, and write "
        "OUTPUT/pretrained.zip in the book's format (vocab.json + pretrained.params), which "
        "load_pretrained and --model read like bert.small. Resumable with --resume.")
    p.add_argument("--output", required=True, type=_output_folder,
                   help="folder for the checkpoint and the zip")
    p.add_argument("--preset", default="quick", choices=list(PRETRAIN_PRESETS),
                   help="sizes and steps: tiny (seconds), quick (default, CPU minutes), full (GPU)")
    _data_args(p)
    p.add_argument("--steps", type=_positive_int, help="optimizer steps")
    p.add_argument("--max-len", type=_positive_int, help="longest packed sentence pair")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=_positive_float, help="peak learning rate")
    p.add_argument("--train-size", type=_positive_int, help="random sample of train pairs")
    p.add_argument("--min-freq", type=_positive_int, help="rarer words become <unk>")
    p.add_argument("--checkpoint-every", type=_positive_int, help="checkpoint every N steps")
    p.add_argument("--resume", action="store_true", help="continue the run in --output")
    p.set_defaults(func=cmd_pretrain)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="fine-tune a grid of variants x seeds and compare them with verdicts",
        description="Every combination of the --vary values is fine-tuned once per seed (the "
        "recipe options are the base; --seed picks the pairs, --seeds the training seeds); "
        "finished runs are re-used and interrupted ones resumed when the command runs again. "
        "Writes results and verdicts (CSV and Markdown) to --output: each verdict compares "
        "two variants that differ in one setting.")
    _recipe_args(p)
    p.add_argument("--vary", action="append", metavar="NAME=V1,V2",
                   help="a setting and its values, e.g. truncation=longest_first,ratio; "
                   "repeat for more settings. Can vary: " + ", ".join(SETTINGS))
    p.add_argument("--seeds", type=_seeds, help="training seeds, e.g. 0,1,2 (default 0); in a "
                   "class, one per student: student n runs --seeds n")
    p.add_argument("--gather", nargs="+", metavar="DIR",
                   help="instead of training: merge the finished runs of these grid folders "
                   "(students' --output folders of the same recipe, other seeds or variants) "
                   "into --output, every seed once")
    p.add_argument("--baseline", action="append", metavar="NAME=VALUE",
                   help="the variant the others are compared with (default: first values)")
    p.add_argument("--score-on", default="test", choices=["test", "dev"],
                   help="the split the verdicts are computed on (default test; dev when the "
                   "comparison chooses a setting and test must stay unseen)")
    p.add_argument("--jobs", type=_positive_int,
                   help="runs at once (default: one per GPU, else one per 4 CPU cores; on a "
                   "joined Ray cluster, as many as it has room for)")
    p.add_argument("--backend", default="local", choices=list(BACKENDS),
                   help="where the runs go: " + "; ".join(
                       f"{name}: {b.summary}" for name, b in BACKENDS.items())
                   + " (default local; docs/cluster.md)")
    p.add_argument("--ray-address", metavar="HOST:PORT",
                   help="with --backend ray: join the running cluster there (default: start "
                   "a Ray on this machine with --jobs cells' worth of CPUs)")
    p.add_argument("--cpus-per-cell", type=_positive_int,
                   help="with --backend ray: CPUs each run asks for when it runs on CPU "
                   "(default: the cores per job here; on a cluster, up to 4)")
    p.add_argument("--output", required=True, type=_output_folder,
                   help="folder for the grid's runs and tables")
    _shared_runs_arg(p, "a teacher's grid folder")
    p.set_defaults(func=cmd_compare)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="accuracy of a fine-tuned run on a split or any labelled NLI file",
        description="Score a run on an SNLI split (--split), or on any labelled NLI file "
        "(--file): SNLI or MultiNLI JSONL/TXT, a two-class file such as HANS (entailment / "
        "non-entailment), or your own JSONL/TSV with sentence1/sentence2/gold_label (or "
        "premise/hypothesis/label). A file's report (accuracy, the two-class view, --by tables, "
        "confusion) and a per-pair predictions file are written beside the run.")
    p.add_argument("--run", required=True, help="output folder of 'bertnli finetune'")
    _data_args(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--split", default="test", choices=SPLITS)
    source.add_argument("--file", help="a labelled NLI file (.jsonl, .txt, .tsv; .gz too)")
    p.add_argument("--size", type=_positive_int, help="random sample of pairs")
    _precision_arg(p)
    p.add_argument("--by", action="append", metavar="FIELD",
                   help="with --file: accuracy per value of a field (genre, heuristic, ...); "
                   "repeat for more")
    p.add_argument("--label-ids", choices=list(LABEL_ID_ORDERS),
                   help="with --file whose labels are ids: book (0 entailment, 1 contradiction, "
                   "2 neutral), hf (0 entailment, 1 neutral, 2 contradiction) or two-class "
                   "(0 entailment, 1 non-entailment)")
    p.add_argument("--out", help="with --file: the report's JSON (default: "
                   "RUN/eval-<file name>-<digest of its path and sample>.json)")
    p.add_argument("--predictions", help="with --file: the per-pair file, .jsonl, .tsv or .csv "
                   "(default: beside the report, <report name>-predictions.jsonl)")
    p.set_defaults(func=cmd_evaluate)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="label premise/hypothesis pairs with a fine-tuned run")
    p.add_argument("--run", required=True, help="output folder of 'bertnli finetune'")
    p.add_argument("premise", nargs="?")
    p.add_argument("hypothesis", nargs="?")
    p.add_argument("--file", help="pairs, one per line: premise<TAB>hypothesis, or .jsonl")
    p.add_argument("--device", default=None)
    _precision_arg(p)
    p.set_defaults(func=cmd_predict)


def _add_truncation_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("truncation-report", help="how often each strategy truncates, per max_len")
    p.add_argument("--model", default="minilm", help="whose tokenizer counts the tokens")
    _data_args(p)
    p.add_argument("--split", default="dev", choices=SPLITS)
    p.add_argument("--size", type=_positive_int)
    p.add_argument("--max-len", type=_max_len, nargs="+", default=[16, 24, 32, 48, 64, 128])
    p.add_argument("--strategies", nargs="+", type=_strategy_name, choices=list(STRATEGIES),
                   help="default: all registered strategies")
    p.set_defaults(func=cmd_truncation_report)


def _add_course(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("course", help="run every notebook and write executed copies and HTML")
    p.add_argument("--profile", default="quick", choices=list(PROFILES))
    p.add_argument("--output", default="course_output", type=_output_folder)
    p.add_argument("--notebooks", nargs="+", help="only these notebooks (names or numbers)")
    p.add_argument("--model", default=None, help="override the profile's model")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--no-html", action="store_true")
    p.add_argument("--keep-runs", action="store_true",
                   help="keep the weights of every run (default: only the main run's)")
    _precision_arg(p)
    _shared_runs_arg(p, "a teacher's course output folder")
    p.set_defaults(func=cmd_course)


def _add_release(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "release", help="write the student edition of the notebooks (solutions removed)",
        description="Write the student version of every notebook with nbgrader's own "
        "preprocessors (needs the 'classroom' extra): cells tagged 'solution' removed, each "
        "### BEGIN SOLUTION ... ### END SOLUTION region replaced by 'answer = None  # your "
        "answer', outputs cleared, everything else as in notebooks/. Files the folder holds "
        "that an earlier release did not write are never overwritten.")
    p.add_argument("--output", required=True, help="folder for the student edition")
    p.add_argument("--notebooks", nargs="+", help="only these notebooks (names or numbers)")
    p.set_defaults(func=cmd_release)


SUBCOMMANDS = (_add_download, _add_finetune, _add_pretrain, _add_compare, _add_evaluate,
               _add_predict, _add_truncation_report, _add_course, _add_release)
SUBCOMMAND_PARSERS = {add.__name__.removeprefix("_add_").replace("_", "-"): add
                      for add in SUBCOMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertnli",
        description="Fine-tune a pretrained BERT for natural language inference on SNLI.",
        epilog="Data folder: --data-dir, else $BERTNLI_DATA_DIR, else the official SNLI download.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:  # each adds its subcommand and its options
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for given_options
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("bertnli: interrupted", file=sys.stderr)
        return 130
    except (BertNLIError, OSError) as err:  # bad input; any other exception is a bug: traceback
        print(f"bertnli {args.command}: error: {user_message(err)}", file=sys.stderr)
        return EXIT_USAGE


def user_message(err: BaseException) -> str:
    """What went wrong, naming the file: an OSError of the system's own says only
    "[Errno 13] Permission denied: '/x'"; ours carry their whole message."""
    if isinstance(err, OSError) and not isinstance(err, BertNLIError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        also = f" -> {err.filename2}" if err.filename2 else ""
        return f"{err.strerror}{where}{also}"
    return str(err)


if __name__ == "__main__":
    sys.exit(main())
