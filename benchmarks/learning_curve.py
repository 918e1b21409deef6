"""Test accuracy against the number of labelled training pairs: why 1% of SNLI lands where it does.

A thin wrapper over ``grids.run_grid``: the tuned preset fine-tuned on nested random samples of
the data folder's train split (here the 1% sample: 5,498 pairs), each size with several seeds,
the epoch chosen on a dev sample and every run scored once on the whole test split. Run by hand
(not in CI); on 2 CPU cores the default grid takes about 35 minutes of both cores:

    .venv/bin/python benchmarks/learning_curve.py

Writes ``benchmarks/results/learning_curve.json`` (sizes, seeds, accuracies, the machine and the
command); notebook 6 draws it beside its own small live curve and the book's full-data figure.
Model: ``minilm`` by default (all-MiniLM-L6-v2, which saw SNLI's training pairs during its own
pretraining: say so next to its numbers).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from bertnli_helpers.data.snli import read_records, resolve_data_dir
from bertnli_helpers.files import atomic_write_json
from bertnli_helpers.model.pretrained import suggested_pooling
from bertnli_helpers.study.grids import GridSpec, run_grid
from bertnli_helpers.train.config import preset
from bertnli_helpers.train.runs import RunInfo

# The chapter's printed result: bert.small fine-tuned on all 549,367 training pairs, 5 epochs.
BOOK_REFERENCE = {"model": "bert.small", "train_pairs": 549_367, "test_accuracy": 0.783,
                  "source": "the chapter's printed result (5 epochs of the book's recipe)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="SNLI folder (default: $BERTNLI_DATA_DIR, else the official zip)")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--sizes", default="500,1000,2750,all",
                        help="train pairs per point, comma-separated; 'all' is the whole split")
    parser.add_argument("--seeds", default="0,1", help="training seeds, e.g. 0,1")
    parser.add_argument("--epochs", type=int, default=None, help="default: the tuned preset's")
    parser.add_argument("--dev-size", type=int, default=2000, help="dev pairs for the epoch")
    parser.add_argument("--test-size", type=int, default=None, help="default: the whole split")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", default="benchmarks/results/learning-curve-runs")
    parser.add_argument("--out", default="benchmarks/results/learning_curve.json")
    return parser.parse_args(argv)


def train_sizes(text: str, available: int) -> tuple[int, ...]:
    sizes = [available if s.strip() == "all" else int(s) for s in text.split(",")]
    if any(s <= 0 or s > available for s in sizes):
        raise SystemExit(f"--sizes {text!r}: each size must be 1 to {available} (the train pairs)")
    return tuple(sorted(set(sizes)))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    available = len(read_records(data_dir, "train"))
    sizes = train_sizes(args.sizes, available)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    changes = {"device": args.device, **({"epochs": args.epochs} if args.epochs else {})}
    spec = GridSpec(RunInfo(model=args.model, pooling=suggested_pooling(args.model)),
                    preset("tuned", **changes), {"train_size": sizes}, seeds=seeds,
                    baseline={"train_size": max(sizes)},  # every size against all the pairs
                    dev_size=args.dev_size, test_size=args.test_size, data_dir=str(data_dir),
                    score_on="test")
    tick = time.perf_counter()
    result = run_grid(spec, args.runs, jobs=1)
    rows = [{"train_size": dict(c.variant)["train_size"], "seed": c.seed,
             "test_accuracy": float(c.correct.mean()), "dev_accuracy": c.metrics["dev_accuracy"],
             "test_pairs": len(c.labels), "train_seconds": c.metrics["train_seconds"],
             "reused": c.reused} for c in result.cells]
    report = {
        "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/learning_curve.py",
                                                     *(sys.argv[1:] if argv is None else argv)]),
        "model": args.model, "preset": "tuned", "epochs": spec.config.epochs,
        "train_pairs_available": available, "sizes": list(sizes), "seeds": list(seeds),
        "rows": sorted(rows, key=lambda r: (r["train_size"], r["seed"])),
        "table": json.loads(result.table().to_json(orient="records")),
        "verdicts": json.loads(result.verdicts().to_json(orient="records")),
        "sentences": result.sentences(),
        "book_reference": BOOK_REFERENCE,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": args.device},
        "wall_seconds": time.perf_counter() - tick,
    }
    atomic_write_json(Path(args.out), report)
    for row in report["table"]:
        print(row)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
